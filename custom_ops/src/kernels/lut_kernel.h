// Interface between the ISA-independent LutGemm driver and the per-ISA kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "layout.h"

namespace tmac {

// Weights as every kernel reads them.  The bit planes are the ONNX initializer itself
// (never copied); the per-group scale and constant term are rearranged once at kernel
// creation into [tile][group][32] so a tile reads them sequentially.  They are stored as
// fp16 in units of a per-tensor power of two (so no scale underflows or overflows fp16):
// in fp32 they would add 0.5 bit per weight of memory traffic at group 128, a quarter of
// a 2-bit weight, while fp16 rounding (2^-12 relative) is far below the int8 table error.
struct PreparedWeights {
  Geometry geo;
  const uint8_t* planes = nullptr;  // packed_bytes() bytes, owned by the session
  std::vector<uint16_t> scale;      // fp16 of s[n, g] / scale_unit
  std::vector<uint16_t> constant;   // fp16 of (s[n, g] * (2^bits - 1) / 2 + o[n, g]) / constant_unit
  float scale_unit = 1.f;
  float constant_unit = 1.f;
  // Every zero point is the default 2^(bits-1), so the constant is exactly -s/2: `constant`
  // stays empty and kernels derive it from the scale (0.5 bit per weight less traffic at
  // group 32: a tenth of what a 4-bit weight streams, a sixth at 2 bits).
  bool symmetric = false;
};

// Lookup tables of M activation rows, built once per call.
//   tables     [M][k_steps][32]  int8: table of quad 2s in bytes 0..15, quad 2s+1 in 16..31
//   half_scale [M][n_blocks]     table quantisation step / 2
//   block_sum  [M][n_blocks]     exact sum of the activations of the block
struct ActivationTables {
  int64_t rows = 0;
  const int8_t* tables = nullptr;
  const float* half_scale = nullptr;
  const float* block_sum = nullptr;
};

// Output rows y[m * ldy + n] for n < N; bias (length N) may be null.
struct OutputRows {
  float* y = nullptr;
  int64_t ldy = 0;
  const float* bias = nullptr;
};

struct KernelOps {
  const char* name;
  // Builds the tables of one activation row `a` (K floats).
  void (*build_tables)(const Geometry& geo, const float* a, int8_t* tables, float* half_scale,
                       float* block_sum);
  // Computes the tiles [tile_begin, tile_end) for every row of `act`.
  void (*gemm_tiles)(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin,
                     int64_t tile_end, const OutputRows& out);
  void (*half_to_float)(const uint16_t* src, float* dst, size_t n);
  void (*float_to_half)(const float* src, uint16_t* dst, size_t n);
};

const KernelOps& ScalarKernel();
#if defined(TMAC_HAVE_AVX2)
const KernelOps& Avx2Kernel();
#endif

// The fastest kernel this CPU runs, or the one named by `forced` ("scalar", "avx2").
// Returns null when `forced` names a kernel this build or CPU lacks.
const KernelOps* SelectKernel(const char* forced);

}  // namespace tmac
