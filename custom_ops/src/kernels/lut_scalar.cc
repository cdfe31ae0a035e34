// Portable reference kernel: decodes the packed layout one nibble at a time.
// It runs on any CPU and is the ground truth the SIMD kernels are tested against.
#include <cstring>
#include <vector>

#include "lut_kernel.h"
#include "tables.h"

namespace tmac {
namespace {

// IEEE binary16 <-> binary32 without hardware help (round to nearest even).
float HalfToFloat(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal half: normalise
    exp = 113;
    while (!(mant & 0x400)) { mant <<= 1; --exp; }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | 0x7c00 | (abs > 0x7f800000u ? 0x200 : 0);  // Inf / NaN
  if (abs >= 0x477ff000u) return sign | 0x7c00;                                   // overflow
  if (abs < 0x38800000u) {                                                        // subnormal half
    if (abs < 0x33000000u) return sign;
    const uint32_t mant = (abs & 0x7fffff) | 0x800000;
    const int shift = 126 - int(abs >> 23);  // 14..24: half subnormals count units of 2^-24
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return sign | uint16_t(h);
  }
  uint32_t h = ((abs - 0x38000000u) >> 13);
  const uint32_t rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return sign | uint16_t(h);
}

struct SlotTable {
  std::vector<NibbleSlot> low, high;
  explicit SlotTable(int bits) {
    for (int byte = 0; byte < kTileN * bits; ++byte) {
      low.push_back(SlotOf(bits, byte, false));
      high.push_back(SlotOf(bits, byte, true));
    }
  }
};

// The constant term c' of channel c of the tile-group whose scales start at `at`, s' its
// scale (see PreparedWeights).
float ConstantTerm(const PreparedWeights& w, int64_t at, int c, float s) {
  switch (w.offsets) {
    case Offsets::kSymmetric: return -0.5f * s;
    case Offsets::kZeroPoints: {
      const uint8_t byte = w.zero_points[size_t(at / 2 + c % 16)];
      const int z = c < 16 ? byte & 15 : byte >> 4;
      return s * (float((1 << w.geo.bits) - 1) / 2.f - float(z));
    }
    default: return HalfToFloat(w.constant[size_t(at + c)]);
  }
}

const SlotTable& SlotsFor(int bits) {
  static const SlotTable tables[4] = {SlotTable(1), SlotTable(2), SlotTable(3), SlotTable(4)};
  return tables[bits - 1];
}

// The tiles [tile_begin, tile_end) of every row of `act`: y[c] of tile t and row m starts at 0
// (or from out.carry: one row may come as a block range, OutputRows), add_block(t, m, b, y)
// adds block b's terms, and y goes to out.y (or stays in the carry) as OutputRows says.
template <typename AddBlock>
void ScalarTiles(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                 const OutputRows& out, const AddBlock& add_block) {
  const Geometry& g = w.geo;
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    for (int64_t m = 0; m < act.rows; ++m) {
      float* carry = out.carry ? out.carry + t * kTileN : nullptr;
      const int64_t b_begin = carry ? out.block_begin : 0, b_end = carry ? out.block_end : g.n_blocks;
      float y[kTileN] = {};
      if (b_begin > 0) std::copy(carry, carry + kTileN, y);
      for (int64_t b = b_begin; b < b_end; ++b) add_block(t, m, b, y);
      if (carry && b_end < g.n_blocks) {
        std::copy(y, y + kTileN, carry);
        continue;
      }
      for (int c = 0; c < kTileN && t * kTileN + c < g.N; ++c) {
        const int64_t n = t * kTileN + c;
        const float scaled = float(double(y[c]) * act.row_scale[m] * w.channel_scale[n]);
        out.y[m * out.ldy + n] = scaled + (out.bias ? out.bias[n] : 0.f);
      }
    }
  }
}

// Integer sums per block in int32: at most block_k / 4 = 64 quads, each adding 127 * (2^bits - 1)
// over the planes, far below 2^31.
static_assert(int64_t(kMaxBlockK / kQuadK) * 127 * 15 < (int64_t(1) << 31), "int32 block sum overflows");

void GemmTilesScalar(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin,
                     int64_t tile_end, const OutputRows& out) {
  const Geometry& g = w.geo;
  const SlotTable& slots = SlotsFor(g.bits);
  ScalarTiles(w, act, tile_begin, tile_end, out, [&](int64_t t, int64_t m, int64_t b, float* y) {
    const int8_t* tables = act.tables + m * g.k_steps * g.table_step_bytes();
    int32_t acc[kTileN] = {};
    const int64_t s_begin = b * g.block_steps(), s_end = std::min(s_begin + g.block_steps(), g.k_steps);
    const uint8_t* block = w.planes + g.step_offset(t, s_begin);  // a block's steps follow each other
    for (int64_t s = s_begin; s < s_end; ++s) {
      const uint8_t* bytes = block + (s - s_begin) * g.step_bytes();
      const int8_t* step_tables = tables + s * g.table_step_bytes();
      for (int64_t i = 0; i < g.step_bytes(); ++i) {
        const int8_t* table = step_tables + QuadInStep(int(i)) * kTableBytes;
        const NibbleSlot lo = slots.low[i], hi = slots.high[i];
        acc[lo.channel] += int32_t(table[bytes[i] & 15]) * (1 << lo.plane);
        acc[hi.channel] += int32_t(table[bytes[i] >> 4]) * (1 << hi.plane);
      }
    }
    const int64_t at = g.group_entry(t, g.group_of_block(b)) * kTileN;
    const float hs = act.half_scale[m * g.n_blocks + b];
    const float block_sum = act.block_sum[m * g.n_blocks + b];
    for (int c = 0; c < kTileN; ++c) {
      const float s = HalfToFloat(w.scale[at + c]);
      y[c] += float(acc[c]) * (s * hs) + ConstantTerm(w, at, c, s) * block_sum;
    }
  });
}

// Layout 3: per block and channel the sum of its triples' entries, in int32 (at most 22 steps
// x 4 triples x 127 per block).
void GemmTriplesScalar(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                       const OutputRows& out) {
  const Geometry& g = w.geo;
  ScalarTiles(w, act, tile_begin, tile_end, out, [&](int64_t t, int64_t m, int64_t b, float* y) {
    const int8_t* tables = act.tables + m * g.k_steps * g.table_step_bytes();
    int32_t acc[kTileN] = {};
    const int64_t s_begin = b * g.block_steps(), s_end = std::min(s_begin + g.block_steps(), g.k_steps);
    const uint8_t* block = w.planes + g.step_offset(t, s_begin);
    for (int64_t s = s_begin; s < s_end; ++s) {
      const uint8_t* step = block + (s - s_begin) * g.step_bytes();
      const int8_t* step_tables = tables + s * g.table_step_bytes();
      for (int c = 0; c < kTileN; ++c)
        for (int j = 0; j < 4; ++j) acc[c] += step_tables[j * kTripleTableBytes + TripleField(step, c, j)];
    }
    const int64_t at = g.group_entry(t, g.group_of_block(b)) * kTileN;
    const float hs = act.half_scale[m * g.n_blocks + b];
    const float block_sum = act.block_sum[m * g.n_blocks + b];
    for (int c = 0; c < kTileN; ++c) {
      const float s = HalfToFloat(w.scale[at + c]);
      const float constant = w.offsets == Offsets::kSymmetric ? 0.f : HalfToFloat(w.constant[size_t(at + c)]);
      y[c] += float(2 * acc[c]) * (s * hs) + constant * block_sum;
    }
  });
}

void HalfToFloatScalar(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = HalfToFloat(src[i]);
}

void FloatToHalfScalar(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] = FloatToHalf(src[i]);
}

}  // namespace

const KernelOps& ScalarKernel() {
  static const KernelOps ops = [] {
    KernelOps o{BuildTablesPortable, GemmTilesScalar, HalfToFloatScalar, FloatToHalfScalar};
    o.build_triple_tables = BuildTripleTablesPortable;
    o.gemm_triple_tiles = GemmTriplesScalar;
    return o;
  }();
  return ops;
}

}  // namespace tmac
