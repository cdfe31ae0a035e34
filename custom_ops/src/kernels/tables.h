// Activation lookup tables, the part of the T-MAC method that runs once per call.
//
// For the quad (a0, a1, a2, a3) and a 4-bit index i, the table holds
//     T[i] = sum_j (bit j of i ? +a_j : -a_j)
// (the +-1 form of the bit planes, see docs/packed-format.md).  T[15 - i] = -T[i], so only
// the eight entries with bit 3 clear are computed and the rest are mirrored.
//
// Float range.  Each block is first scaled by a power of two 2^-E (exact) that brings its
// largest finite |a| into [0.5, 1): sums of four, the block sum (<= 256) and the step can
// then neither overflow (four activations of 1e38 sum past FLT_MAX) nor lose precision to
// subnormals (a step of 1e-37 activations is itself subnormal).  Entries are quantised to
// int8 with one step per block: max over the block's quads of sum_j |a_j|, divided by 127,
// which keeps every entry within [-127, 127].  Scaling by a power of two commutes with every
// rounding here, so the bytes are those of the unscaled arithmetic wherever that had no
// overflow or underflow.  NaN and infinities count as 0 here; the driver adds their
// products exactly as a float matmul would (LutGemm::AddNonFiniteTerms).
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "lut_kernel.h"

namespace tmac {
// Internal linkage: every ISA kernel's file includes this with its own compiler flags, and
// inline functions with external linkage would be weak symbols the linker merges (a scalar or
// AVX2 caller could run a copy compiled for AVX-512 or the dot product).
namespace {

// Block exponents are clamped so that 2^-E is a normal float: a block whose largest |a| is
// below 2^-126 (subnormal) is scaled by 2^125, which still brings it to 2^-24 or above; one
// near FLT_MAX ends below 4 (quad sums below 16, block sums below 1024).
constexpr int kMinBlockExponent = -125;
constexpr int kMaxBlockExponent = 126;

inline bool IsFinite(float x) { return std::fabs(x) <= FLT_MAX; }  // false for NaN and +-inf

// Quantisation step of block b: every kernel's table builder starts here, so the steps (and
// thus the int8 entries) are identical across kernels.
struct BlockStats {
  int64_t k0, k1;     // [k0, k1): the block's k range in the padded row
  float scale;        // 2^-E: activations are multiplied by this before anything else
  float inv_step;     // 127 / (scaled max quad |sum|), or 0 for an all-zero block
  bool finite;        // no NaN or infinity in the block
};

// Powers of two from their bits, not std::ldexp: the table builders need a few per block, and
// each libm call cost ~45 instructions, 30% of building the tables of a 4096-wide row at
// group 32 (callgrind).  PowerOfTwo: e in [-126, 127] (normal floats); PowerOfTwoDouble: e in
// [-1022, 1023].
inline float PowerOfTwo(int e) {
  const uint32_t bits = uint32_t(e + 127) << 23;
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

inline double PowerOfTwoDouble(int e) {
  const uint64_t bits = uint64_t(e + 1023) << 52;
  double value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

// E (the block is scaled by 2^-E) for a block whose largest finite |a| is `max_abs` (E = 0
// for an all-zero block): frexp's exponent, max_abs in [2^(E-1), 2^E), read from the bits.  A
// subnormal max_abs has E <= -126, which the clamp makes kMinBlockExponent.
inline int BlockExponent(float max_abs) {
  if (!(max_abs > 0.f)) return 0;
  uint32_t bits;
  std::memcpy(&bits, &max_abs, sizeof(bits));
  const int biased = int(bits >> 23) & 0xff;
  const int exponent = biased == 0 ? kMinBlockExponent : biased - 126;
  return std::min(kMaxBlockExponent, std::max(kMinBlockExponent, exponent));
}

// |a0| + |a1| + |a2| + |a3| in the one order every builder uses: pairs first, as a vector
// horizontal add does.
inline float QuadAbsSum(float v0, float v1, float v2, float v3) {
  return (std::fabs(v0) + std::fabs(v1)) + (std::fabs(v2) + std::fabs(v3));
}

// Writes block b's half step, sum (both in units of 2^E) and E; returns its stats.  `sum`
// may be summed in any order (it is exact to fp32 rounding either way); `max_quad` decides
// the int8 bytes and must come from QuadAbsSum.
inline BlockStats FinishBlockStats(const Geometry& g, int64_t b, int exponent, float max_quad, float sum, bool finite,
                                   const RowTables& out) {
  out.half_scale[b] = max_quad / 254.f;
  out.block_sum[b] = sum;
  out.block_exponent[b] = exponent;
  const int64_t k0 = b * g.block_k;
  return {k0, std::min(k0 + g.block_k, g.K_pad), PowerOfTwo(-exponent), max_quad > 0.f ? 127.f / max_quad : 0.f,
          finite};
}

// The largest finite |a[k]| of k in [k0, k_end); `finite` is cleared when one is not finite.
inline float LargestFiniteAbs(const float* a, int64_t k0, int64_t k_end, bool* finite) {
  float max_abs = 0.f;
  for (int64_t k = k0; k < k_end; ++k) {
    const float v = std::fabs(a[k]);
    *finite = *finite && IsFinite(v);
    max_abs = IsFinite(v) && v > max_abs ? v : max_abs;
  }
  return max_abs;
}

// The portable statistics of block b.
inline BlockStats ComputeBlockStats(const Geometry& g, const float* a, int64_t b, const RowTables& out) {
  const int64_t k0 = b * g.block_k;
  const int64_t k1 = std::min(k0 + g.block_k, g.K_pad);
  const int64_t k_end = std::min(k1, g.K);
  bool finite = true;
  const int exponent = BlockExponent(LargestFiniteAbs(a, k0, k_end, &finite));
  const float scale = PowerOfTwo(-exponent);
  float sum = 0.f, max_quad = 0.f;
  for (int64_t k = k0; k < k1; k += kQuadK) {
    float v[kQuadK];
    for (int j = 0; j < kQuadK; ++j) {
      v[j] = k + j < g.K && IsFinite(a[k + j]) ? a[k + j] * scale : 0.f;
      sum += v[j];
    }
    max_quad = std::max(max_quad, QuadAbsSum(v[0], v[1], v[2], v[3]));
  }
  return FinishBlockStats(g, b, exponent, max_quad, sum, finite, out);
}

// The eight entries with bit 3 clear, summed left to right, and their mirror images.
inline void QuantizeQuadsPortable(const Geometry& g, const float* a, const BlockStats& st, int8_t* tables) {
  for (int64_t k = st.k0; k < st.k1; k += kQuadK) {
    float v[kQuadK];
    for (int j = 0; j < kQuadK; ++j) v[j] = k + j < g.K && IsFinite(a[k + j]) ? a[k + j] * st.scale : 0.f;
    int8_t* t = tables + (k / kQuadK) * kTableBytes;
    for (int i = 0; i < 8; ++i) {
      float e = (i & 1) ? v[0] : -v[0];
      e += (i & 2) ? v[1] : -v[1];
      e += (i & 4) ? v[2] : -v[2];
      e -= v[3];
      const float q = std::min(127.f, std::max(-127.f, std::nearbyint(e * st.inv_step)));
      t[i] = static_cast<int8_t>(q);
      t[15 - i] = static_cast<int8_t>(-q);
    }
  }
}

// One block the portable way; returns false when it holds a NaN or an infinity.  The SIMD
// builders take this path for blocks that run past K or are not finite.
inline bool BuildBlockPortable(const Geometry& g, const float* a, int64_t b, const RowTables& out) {
  const BlockStats st = ComputeBlockStats(g, a, b, out);
  QuantizeQuadsPortable(g, a, st, out.tables);
  return st.finite;
}

inline bool BuildTablesPortable(const Geometry& g, const float* a, const RowTables& out) {
  bool finite = true;
  for (int64_t b = 0; b < g.n_blocks; ++b) finite = BuildBlockPortable(g, a, b, out) && finite;
  return finite;
}

// ---------------------------------------------------------------------------------------
// Layout 3: ternary triples.  For the triple (a0, a1, a2) and a field e = d0 + 3 d1 + 9 d2
// (digits 0..2, weight t_i = d_i - 1), the table holds
//     T[e] = ((d0 - 1) a0 + (d1 - 1) a1) + (d2 - 1) a2
// summed left to right; entries 27-31 are 0 (the fields the packer never writes read as 13,
// whose entry is 0 too).  T[26 - e] = -T[e], so 13 are computed and mirrored.  The block's
// step is max over its triples of (|a0| + |a1|) + |a2|, divided by 127; a block is padded to
// whole steps of 12 k with activations 0 (its weights there are 0).

inline float TripleAbsSum(float v0, float v1, float v2) { return (std::fabs(v0) + std::fabs(v1)) + std::fabs(v2); }

// The first k of triple j of step s_in_block (counted from the block's first step) of block b.
inline int64_t TripleStart(const Geometry& g, int64_t b, int64_t s_in_block, int j) {
  return b * g.block_k + s_in_block * kTripleStepK + int64_t(j) * kTripleK;
}

// Steps of block b (the last block may be shorter).
inline int64_t TripleStepsOfBlock(const Geometry& g, int64_t b) {
  return std::min(g.block_steps(), g.k_steps - b * g.block_steps());
}

// Activation k of block b scaled, 0 where it pads the block, lies beyond K or is not finite.
inline float TripleActivation(const Geometry& g, const float* a, int64_t b, int64_t k, float scale) {
  const int64_t end = std::min((b + 1) * g.block_k, g.K);
  return k < end && IsFinite(a[k]) ? a[k] * scale : 0.f;
}

// Block b's statistics for layout 3: as ComputeBlockStats, with the step taken over triples.
inline BlockStats ComputeTripleBlockStats(const Geometry& g, const float* a, int64_t b, const RowTables& out) {
  const int64_t k0 = b * g.block_k;
  const int64_t k_end = std::min(k0 + g.block_k, g.K);
  bool finite = true;
  const int exponent = BlockExponent(LargestFiniteAbs(a, k0, k_end, &finite));
  const float scale = PowerOfTwo(-exponent);
  float sum = 0.f, max_triple = 0.f;
  for (int64_t k = k0; k < k_end; ++k) sum += TripleActivation(g, a, b, k, scale);
  for (int64_t s = 0; s < TripleStepsOfBlock(g, b); ++s)
    for (int j = 0; j < 4; ++j) {
      const int64_t k = TripleStart(g, b, s, j);
      max_triple = std::max(max_triple, TripleAbsSum(TripleActivation(g, a, b, k, scale), TripleActivation(g, a, b, k + 1, scale),
                                                     TripleActivation(g, a, b, k + 2, scale)));
    }
  return FinishBlockStats(g, b, exponent, max_triple, sum, finite, out);
}

// One triple's 32 entries from its scaled activations.
inline void QuantizeTriplePortable(const float v[kTripleK], float inv_step, int8_t* t) {
  for (int e = 0; e < kTripleTableBytes; ++e) t[e] = 0;
  for (int e = 0; e < 13; ++e) {
    float x = float(TripleDigit(e, 0) - 1) * v[0];
    x += float(TripleDigit(e, 1) - 1) * v[1];
    x += float(TripleDigit(e, 2) - 1) * v[2];
    const float q = std::min(127.f, std::max(-127.f, std::nearbyint(x * inv_step)));
    t[e] = static_cast<int8_t>(q);
    t[26 - e] = static_cast<int8_t>(-q);
  }
}

inline bool BuildTripleBlockPortable(const Geometry& g, const float* a, int64_t b, const RowTables& out) {
  const BlockStats st = ComputeTripleBlockStats(g, a, b, out);
  int8_t* tables = out.tables + b * g.block_steps() * g.table_step_bytes();
  for (int64_t s = 0; s < TripleStepsOfBlock(g, b); ++s)
    for (int j = 0; j < 4; ++j) {
      const int64_t k = TripleStart(g, b, s, j);
      const float v[kTripleK] = {TripleActivation(g, a, b, k, st.scale), TripleActivation(g, a, b, k + 1, st.scale),
                                 TripleActivation(g, a, b, k + 2, st.scale)};
      QuantizeTriplePortable(v, st.inv_step, tables + s * g.table_step_bytes() + j * kTripleTableBytes);
    }
  return st.finite;
}

inline bool BuildTripleTablesPortable(const Geometry& g, const float* a, const RowTables& out) {
  bool finite = true;
  for (int64_t b = 0; b < g.n_blocks; ++b) finite = BuildTripleBlockPortable(g, a, b, out) && finite;
  return finite;
}

}  // namespace
}  // namespace tmac
