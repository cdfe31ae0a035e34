#include "lut_gemm.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace tmac {

namespace {

// The power of two that brings the largest finite |x| just under 2^15, well inside fp16.
float Fp16Unit(const std::vector<float>& x) {
  float max_abs = 0.f;
  for (float v : x)
    if (std::isfinite(v)) max_abs = std::max(max_abs, std::fabs(v));
  if (max_abs == 0.f) return 1.f;
  int exponent = 0;
  std::frexp(max_abs, &exponent);  // max_abs < 2^exponent
  return std::ldexp(1.f, exponent - 15);
}

std::vector<uint16_t> ToFp16Units(std::vector<float> x, float unit, const KernelOps& kernel) {
  for (float& v : x) v /= unit;  // exact: unit is a power of two
  std::vector<uint16_t> out(x.size());
  kernel.float_to_half(x.data(), out.data(), x.size());
  return out;
}

}  // namespace

LutGemm::LutGemm(const Geometry& geo, const uint8_t* planes, const QuantParams& quant,
                 const KernelOps& kernel)
    : kernel_(kernel) {
  weights_.geo = geo;
  weights_.planes = planes;
  const size_t prepared = size_t(geo.n_tiles) * geo.n_groups * kTileN;
  std::vector<float> scale(prepared, 0.f), constant(prepared, 0.f);
  // The kernels compute sum_k a_k q_k from +-1 planes: q = sum_i 2^i (s_i + 1) / 2, which
  // leaves (2^bits - 1) / 2 * sum_k a_k; fold it with the zero point or offset into one term.
  const float mid = float((1 << geo.bits) - 1) / 2.f;
  const float default_zero = float(1 << (geo.bits - 1));
  bool symmetric = true;  // every zero point the default (see PreparedWeights::symmetric)
  for (int64_t n = 0; n < geo.N; ++n) {
    for (int64_t grp = 0; grp < geo.n_groups; ++grp) {
      const int64_t src = n * geo.n_groups + grp;
      const int64_t dst = ((n / kTileN) * geo.n_groups + grp) * kTileN + n % kTileN;
      const float s = quant.scales[src];
      scale[dst] = s;
      if (quant.offsets) {
        symmetric = false;
        constant[dst] = s * mid + quant.offsets[src];
      } else {
        const float zero = quant.zero_points ? float(quant.zero_points[src]) : default_zero;
        symmetric = symmetric && zero == default_zero;
        // s * mid - s * 2^(bits-1) is -s/2 in exact arithmetic; fp32 may round it otherwise
        constant[dst] = zero == default_zero ? -0.5f * s : s * mid - s * zero;
      }
    }
  }
  weights_.scale_unit = Fp16Unit(scale);
  weights_.scale = ToFp16Units(std::move(scale), weights_.scale_unit, kernel);
  weights_.symmetric = symmetric;
  if (!symmetric) {  // (a symmetric weight keeps no constant array)
    weights_.constant_unit = Fp16Unit(constant);
    weights_.constant = ToFp16Units(std::move(constant), weights_.constant_unit, kernel);
  }
}

void LutGemm::Run(const float* a, int64_t rows, const float* bias, float* y,
                  const ParallelRunner& parallel) const {
  const Geometry& g = weights_.geo;
  if (rows <= 0) return;
  // Scratch belongs to the calling thread; workers only write through pointers into it.
  thread_local std::vector<int8_t> tables;
  thread_local std::vector<float> block_info;
  const size_t table_row = size_t(g.k_steps) * 2 * kTableBytes;
  tables.resize(table_row * rows);
  block_info.resize(size_t(2) * g.n_blocks * rows);
  float* half_scale = block_info.data();
  float* block_sum = block_info.data() + g.n_blocks * rows;

  int8_t* tables_data = tables.data();
  auto build_row = [&](size_t m) {
    kernel_.build_tables(g, a + m * g.K, tables_data + m * table_row, half_scale + m * g.n_blocks,
                         block_sum + m * g.n_blocks);
  };
  if (rows == 1) {
    build_row(0);
  } else {
    parallel(size_t(rows), build_row);
  }

  const ActivationTables act{rows, tables_data, half_scale, block_sum};
  const OutputRows out{y, g.N, bias};
  // Tiles are split into chunks; each chunk runs all rows so a tile's weights are read from
  // memory once and reused from cache for the following rows.
  const int64_t chunks = std::min<int64_t>(g.n_tiles, 64);
  parallel(size_t(chunks), [&](size_t c) {
    const int64_t begin = g.n_tiles * int64_t(c) / chunks;
    const int64_t end = g.n_tiles * int64_t(c + 1) / chunks;
    kernel_.gemm_tiles(weights_, act, begin, end, out);
  });
}

}  // namespace tmac
