// The NEON (aarch64) kernel, shared by lut_neon.cc (ARMv8.0 AdvSIMD) and lut_neon_dotprod.cc
// (ARMv8.2 dot product): included once by each, with kDot saying which aggregation to use.
//
// Layout v1 as it is: each 16-byte half of a 32-byte chunk holds one quad's indices (the
// AVX2 lanes), so one `tbl` (vqtbl1q_s8) looks up 16 indices in that quad's 16-entry table.
// Aggregation into per-channel integer sums:
//   * plain NEON: `smlal` (int8 x int8 -> int16 multiply-accumulate) with the plane weights
//     2^plane per byte position, in int16 windows short enough not to overflow, then a
//     pairwise add-long (`sadalp`) merges the two planes of a channel into int32;
//   * dot product: the two quads' lookups are interleaved (`zip1/zip2`) so that each 4-byte
//     group is one channel's planes (2p, 2p, 2p+1, 2p+1); `sdot` with weights
//     (4^p, 4^p, 2*4^p, 2*4^p) sums them straight into int32 (no window, no merge).
// The odd top plane (1 and 3 bits) uses `smlal` in both.
// Layout 3 (ternary triples): one lookup path for both (`tbl` over two triples' 64 bytes of
// tables, `sadalp`), below.
// Tables: built four lanes at a time, the same int8 bytes as the portable builder; fp16 <->
// fp32 with the AdvSIMD conversions.
#pragma once

#include <arm_neon.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "lut_kernel.h"
#include "tables.h"

namespace tmac {
namespace neon {
// Internal linkage: this header is compiled twice with different -march flags (with and
// without the dot product).  Inline functions with external linkage would be weak symbols the
// linker merges, so the plain kernel could run the dot-product build's copy.
namespace {

#define TMAC_ALWAYS_INLINE inline __attribute__((always_inline))
#define TMAC_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))

// int32 sums of one block: sum[j] holds channels 4j..4j+3.
struct BlockSums {
  int32x4_t c[8];
};

// int16 windows.  Per step an int16 lane of the pair accumulators (one byte position: plane
// 2p or 2p+1 of one channel, for every pair p) takes two lookups (the step's two quads) of at
// most 127 per pair, weighted 2^(2p+1) at most: 2 * 127 * (2 + 8) = 2540 at 4 bits (8 steps
// stay below 2^15), 2 * 127 * 2 = 508 at 2 and 3 bits.  The odd plane's lanes take
// 2 * 127 * 2^(bits-1) per step.
template <int kBits>
constexpr int64_t PairLaneStepMax() {
  return kBits >= 4 ? 2 * 127 * (2 + 8) : kBits >= 2 ? 2 * 127 * 2 : 0;
}
template <int kBits>
constexpr int64_t WindowSteps() {
  return kBits == 4 ? 8 : 16;
}
static_assert(PairLaneStepMax<4>() * WindowSteps<4>() <= 32767, "4-bit int16 window overflows");
static_assert(PairLaneStepMax<3>() * WindowSteps<3>() <= 32767, "3-bit int16 window overflows");
static_assert(2 * 127 * 4 * WindowSteps<3>() <= 32767, "3-bit odd-plane int16 window overflows");
static_assert(PairLaneStepMax<2>() * WindowSteps<2>() <= 32767, "2-bit int16 window overflows");
static_assert(2 * 127 * 1 * WindowSteps<1>() <= 32767, "1-bit int16 window overflows");
// int32 block sums: at most 32 steps * 2 quads * 127 * 15 per channel.
static_assert(int64_t(kMaxBlockK / kStepK) * 2 * 127 * 15 < (int64_t(1) << 31), "int32 block sum overflows");

template <int kBits, bool kDot>
struct Accumulators {
  int16x8_t pair[2][2][2];  // [h][low/high nibble][bytes 0-7 / 8-15]: int16 per (plane, channel), plain only
  int16x8_t odd[2][2];      // [low/high nibble][bytes 0-7 / 8-15]
};

// The plane weights of a pair chunk's byte positions: 2^(2p) for even bytes, 2^(2p+1) for odd.
TMAC_ALWAYS_INLINE int8x16_t PairWeights(int p) {
  const int8_t even = int8_t(1 << (2 * p)), odd = int8_t(2 << (2 * p));
  const int8_t w[16] = {even, odd, even, odd, even, odd, even, odd, even, odd, even, odd, even, odd, even, odd};
  return vld1q_s8(w);
}

#if defined(TMAC_NEON_DOTPROD)
// sdot weights for the zipped lookups: each 4-byte group is (plane 2p, 2p, 2p+1, 2p+1) of one channel.
TMAC_ALWAYS_INLINE int8x16_t DotWeights(int p) {
  const int8_t a = int8_t(1 << (2 * p)), b = int8_t(2 << (2 * p));
  const int8_t w[16] = {a, a, b, b, a, a, b, b, a, a, b, b, a, a, b, b};
  return vld1q_s8(w);
}
#endif

// One step: the plane pairs and the odd plane of 32 channels.
template <int kBits, bool kDot>
TMAC_ALWAYS_INLINE void Step(const uint8_t* step, const int8_t* tables, Accumulators<kBits, kDot>* acc,
                             BlockSums* sum) {
  (void)sum;  // (written by the dot-product path only)
  const int8x16_t t0 = vld1q_s8(tables), t1 = vld1q_s8(tables + 16);  // quads 2s and 2s+1
  const uint8x16_t low_nibble = vdupq_n_u8(0x0f);
  // Fully unrolled: the accumulators are indexed by p, h and e, and stay in registers only
  // when those are constants (at 4 bits GCC otherwise kept a loop and the sums in memory:
  // 6.8 M instructions for a 4096x1024 GEMV instead of 1.7 M).
#pragma GCC unroll 2
  for (int p = 0; p < kBits / 2; ++p) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
      const uint8x16_t v0 = vld1q_u8(step + 64 * p + 32 * h), v1 = vld1q_u8(step + 64 * p + 32 * h + 16);
      const int8x16_t looked_up[2][2] = {
          {vqtbl1q_s8(t0, vandq_u8(v0, low_nibble)), vqtbl1q_s8(t1, vandq_u8(v1, low_nibble))},
          {vqtbl1q_s8(t0, vshrq_n_u8(v0, 4)), vqtbl1q_s8(t1, vshrq_n_u8(v1, 4))}};
#pragma GCC unroll 2
      for (int e = 0; e < 2; ++e) {  // low nibbles: channels 16h + (i>>1); high: 16h + 8 + (i>>1)
#if defined(TMAC_NEON_DOTPROD)
        if (kDot) {
          const int8x16_t w = DotWeights(p);
          int32x4_t& first = sum->c[4 * h + 2 * e];
          int32x4_t& second = sum->c[4 * h + 2 * e + 1];
          first = vdotq_s32(first, vzip1q_s8(looked_up[e][0], looked_up[e][1]), w);
          second = vdotq_s32(second, vzip2q_s8(looked_up[e][0], looked_up[e][1]), w);
          continue;
        }
#endif
        const int8x16_t w = PairWeights(p);
#pragma GCC unroll 2
        for (int q = 0; q < 2; ++q) {
          acc->pair[h][e][0] = vmlal_s8(acc->pair[h][e][0], vget_low_s8(looked_up[e][q]), vget_low_s8(w));
          acc->pair[h][e][1] = vmlal_high_s8(acc->pair[h][e][1], looked_up[e][q], w);
        }
      }
    }
  }
  if (kBits % 2) {  // the odd plane: low nibble of byte i is channel 8(i&1) + (i>>1), high nibble 16 + that
    const int8x16_t w = vdupq_n_s8(int8_t(1 << (kBits - 1)));
    const uint8x16_t v0 = vld1q_u8(step + 64 * (kBits / 2)), v1 = vld1q_u8(step + 64 * (kBits / 2) + 16);
    const int8x16_t looked_up[2][2] = {
        {vqtbl1q_s8(t0, vandq_u8(v0, low_nibble)), vqtbl1q_s8(t1, vandq_u8(v1, low_nibble))},
        {vqtbl1q_s8(t0, vshrq_n_u8(v0, 4)), vqtbl1q_s8(t1, vshrq_n_u8(v1, 4))}};
#pragma GCC unroll 2
    for (int e = 0; e < 2; ++e)
#pragma GCC unroll 2
      for (int q = 0; q < 2; ++q) {
        acc->odd[e][0] = vmlal_s8(acc->odd[e][0], vget_low_s8(looked_up[e][q]), vget_low_s8(w));
        acc->odd[e][1] = vmlal_high_s8(acc->odd[e][1], looked_up[e][q], w);
      }
  }
}

// Widens a window's int16 sums into the block's int32 sums.
template <int kBits, bool kDot>
TMAC_ALWAYS_INLINE void Flush(const Accumulators<kBits, kDot>& acc, BlockSums* sum) {
  if (!kDot && kBits >= 2) {
    // int16 lane i of pair[h][e][u] is plane 2p + (i&1) of channel 16h + 8e + 4u + (i>>1)
    for (int h = 0; h < 2; ++h)
      for (int e = 0; e < 2; ++e)
        for (int u = 0; u < 2; ++u) sum->c[4 * h + 2 * e + u] = vpadalq_s16(sum->c[4 * h + 2 * e + u], acc.pair[h][e][u]);
  }
  if (kBits % 2) {
    // int16 lane i of odd[e][u] is channel 16e + 8(i&1) + 4u + (i>>1)
    for (int e = 0; e < 2; ++e)
      for (int u = 0; u < 2; ++u) {
        const int16x8_t even = vuzp1q_s16(acc.odd[e][u], acc.odd[e][u]);
        const int16x8_t odd = vuzp2q_s16(acc.odd[e][u], acc.odd[e][u]);
        sum->c[4 * e + u] = vaddw_s16(sum->c[4 * e + u], vget_low_s16(even));
        sum->c[4 * e + 2 + u] = vaddw_s16(sum->c[4 * e + 2 + u], vget_low_s16(odd));
      }
  }
}

// The block's n consecutive steps at `steps`; `tables`: their first step's tables.
template <int kBits, bool kDot>
TMAC_ALWAYS_INLINE void AccumulateBlock(const uint8_t* steps, const int8_t* tables, int64_t n, BlockSums* sum) {
  constexpr int kStepBytes = kTileN * kBits;
  for (auto& c : sum->c) c = vdupq_n_s32(0);
  for (int64_t w = 0; w < n; w += WindowSteps<kBits>()) {
    Accumulators<kBits, kDot> acc;
    for (auto& a : acc.pair) for (auto& b : a) for (auto& c : b) c = vdupq_n_s16(0);
    for (auto& a : acc.odd) for (auto& b : a) b = vdupq_n_s16(0);
    const int64_t end = std::min(w + WindowSteps<kBits>(), n);
    for (int64_t s = w; s < end; ++s) Step<kBits, kDot>(steps + s * kStepBytes, tables + s * 32, &acc, sum);
    Flush<kBits, kDot>(acc, sum);
  }
}

// Layout 3: ternary triples (docs/packed-format.md).  A step is 80 bytes: half h (bytes 40h..)
// holds 64 five-bit fields, lane 4c + j for channel 16h + c and triple j, so the two fields of
// triples 0 and 1 of a channel are ten consecutive bits (20c..), and those of triples 2 and 3
// the next ten.  Per eight channels and triple pair: one `tbl` gathers each channel's ten bits
// into a 16-bit lane (two bytes), `ushl` aligns them (shifts 0/4, or 2/6 for triples 2-3), a
// shift and two bit-selects put the fields in bytes 0 and 1 with 32 added to byte 1, and one
// 4-register `tbl` looks both up in the pair's two 32-entry tables (indices 0-31 and 32-63);
// `sadalp` adds each channel's two bytes to its int16 sum.  Per 16 lookups (48 weights): 7
// instructions; the step's loop (384 weights) is 71 with its loads (GCC 12, -O2).  Counted
// under qemu (benchmarks/arm_instructions.py --ternary, 4096x1024 at one group per row): a
// tile's 4096 k take 30 k instructions against 27 k for two planes with `sdot`, the whole
// GEMV 1.15x (1.11x against plain NEON's planes) for 0.83x the weight bytes.  No multiply,
// so the plain and the dot-product kernels share it.
//
// int16 sums: per step a lane takes four entries of at most 127; a block has at most 22 steps.
static_assert((kMaxBlockK + kTripleStepK - 1) / kTripleStepK * 4 * 127 <= 32767, "layout 3 int16 block sum overflows");

struct TripleGather {
  // [pair of triples: 0-1 / 2-3][quarter v of the step]: byte indices into the two registers
  // that hold quarter v's bytes (v = 2h + (channels 8-15 of half h): registers v and v + 1 of
  // the step's five); lane c of a 16-bit pair takes the bytes of bit 20c (+ 10) of the quarter.
  uint8x16_t index[2][4];
  int16x8_t shift[2];  // right shifts (negative left shifts) of the 16-bit windows
  TripleGather() {
    for (int pair = 0; pair < 2; ++pair) {
      alignas(16) uint8_t bytes[16];
      alignas(16) int16_t right[8];
      for (int c = 0; c < 8; ++c) {
        const int bit = 20 * c + 10 * pair;
        bytes[2 * c] = uint8_t(bit / 8);
        bytes[2 * c + 1] = uint8_t(bit / 8 + 1);
        right[c] = int16_t(-(bit % 8));
      }
      // Quarter v starts at byte 20v of the step; its register pair at byte 16v.
      for (int v = 0; v < 4; ++v) index[pair][v] = vaddq_u8(vld1q_u8(bytes), vdupq_n_u8(uint8_t(4 * v)));
      shift[pair] = vld1q_s16(right);
    }
  }
};

// Indices of one 16-bit lane per channel: its first field in byte 0, its second plus 32 in
// byte 1 (the bits above each field, the next fields', cleared).
TMAC_ALWAYS_INLINE uint8x16_t TriplePairIndices(uint8x16x2_t bytes, uint8x16_t index, int16x8_t shift) {
  const uint16x8_t window = vshlq_u16(vreinterpretq_u16_u8(vqtbl2q_u8(bytes, index)), shift);  // fields at bits 0, 5
  const uint16x8_t fields = vbslq_u16(vdupq_n_u16(0x00ff), window, vshlq_n_u16(window, 3));   // ... at bits 0, 8
  return vbslq_u8(vdupq_n_u8(0x1f), vreinterpretq_u8_u16(fields), vreinterpretq_u8_u16(vdupq_n_u16(0x2000)));
}

// int16 sums of one row's block: v (channels 8v..8v+7).
struct TripleSums {
  int16x8_t v0 = vdupq_n_s16(0), v1 = vdupq_n_s16(0), v2 = vdupq_n_s16(0), v3 = vdupq_n_s16(0);
};

// One step for kRows rows (1 or 2: two rows share the indices, 5 of the 7 instructions per 16
// lookups): a (row 0) and b (row 1) += the entries of their channels' four triples; tables0/1:
// the rows' tables of the step.  Quarter v's bytes are loaded as a register pair of their own
// (four overlapping 32-byte `ld1`): pairs made from one 80-byte load cost GCC a move per
// register (tbl wants them consecutive), 88 instructions a step against 71; pairs of 16-byte
// loads went through the stack (96).  Written out per row, with no arrays: loops over rows
// and arrays of tables or sums sent GCC through the stack every step.
template <int kRows>
TMAC_ALWAYS_INLINE void TripleStep(const TripleGather& k, const uint8_t* step, const int8_t* tables0,
                                   const int8_t* tables1, TripleSums& a, TripleSums& b) {
  const int8x16x4_t a01 = vld1q_s8_x4(tables0), a23 = vld1q_s8_x4(tables0 + 2 * kTripleTableBytes);
  int8x16x4_t b01 = a01, b23 = a23;
  if constexpr (kRows == 2) {
    b01 = vld1q_s8_x4(tables1);
    b23 = vld1q_s8_x4(tables1 + 2 * kTripleTableBytes);
  }
  auto quarter = [&](int v, int16x8_t& sum_a, int16x8_t& sum_b) TMAC_ALWAYS_INLINE_LAMBDA {
    const uint8x16x2_t bytes = vld1q_u8_x2(step + 16 * v);
    const uint8x16_t index01 = TriplePairIndices(bytes, k.index[0][v], k.shift[0]);
    const uint8x16_t index23 = TriplePairIndices(bytes, k.index[1][v], k.shift[1]);
    sum_a = vpadalq_s8(sum_a, vqtbl4q_s8(a01, index01));
    sum_a = vpadalq_s8(sum_a, vqtbl4q_s8(a23, index23));
    if constexpr (kRows == 2) {
      sum_b = vpadalq_s8(sum_b, vqtbl4q_s8(b01, index01));
      sum_b = vpadalq_s8(sum_b, vqtbl4q_s8(b23, index23));
    }
  };
  quarter(0, a.v0, b.v0);
  quarter(1, a.v1, b.v1);
  quarter(2, a.v2, b.v2);
  quarter(3, a.v3, b.v3);
}

// 2 P of channels 4j..4j+3 in sum->c[j] (what TileRows scales by half_scale).
TMAC_ALWAYS_INLINE void TwicePerChannel(const TripleSums& p, BlockSums* sum) {
  const int16x8_t v[4] = {p.v0, p.v1, p.v2, p.v3};
  for (int i = 0; i < 4; ++i) {
    sum->c[2 * i] = vshll_n_s16(vget_low_s16(v[i]), 1);
    sum->c[2 * i + 1] = vshll_high_n_s16(v[i], 1);
  }
}

// A block of n steps for kRows rows: sum[r] its block sums; tables[r]: row r's tables of the
// block's first step.
template <int kRows>
TMAC_ALWAYS_INLINE void AccumulateTripleBlock(const uint8_t* steps, const int8_t* const* tables, int64_t n,
                                              BlockSums* sum) {
  static const TripleGather k;
  TripleSums a, b;
  const int8_t* tables0 = tables[0];
  const int8_t* tables1 = tables[kRows - 1];
  for (int64_t s = 0; s < n; ++s)
    TripleStep<kRows>(k, steps + s * kTripleStepBytes, tables0 + s * 4 * kTripleTableBytes,
                      tables1 + s * 4 * kTripleTableBytes, a, b);
  TwicePerChannel(a, &sum[0]);
  if constexpr (kRows == 2) TwicePerChannel(b, &sum[1]);
}

TMAC_ALWAYS_INLINE float32x4_t LoadHalf4(const uint16_t* p) {
  float16x4_t h;
  std::memcpy(&h, p, sizeof(h));
  return vcvt_f32_f16(h);
}

// c' = s' (mid - z) of channels 4j..4j+3, z from the tile-group's 16 nibble bytes (see
// PreparedWeights::zero_points); exact in fp32.
TMAC_ALWAYS_INLINE float32x4_t ZeroPointConstant(const uint8_t* nibbles, int j, float32x4_t scale, float mid) {
  uint32_t word;
  std::memcpy(&word, nibbles + 4 * (j & 3), sizeof(word));
  uint32x4_t z = vmovl_u16(vget_low_u16(vmovl_u8(vreinterpret_u8_u32(vdup_n_u32(word)))));
  z = j < 4 ? vandq_u32(z, vdupq_n_u32(15)) : vshrq_n_u32(z, 4);
  return vmulq_f32(scale, vsubq_f32(vdupq_n_f32(mid), vcvtq_f32_u32(z)));
}

// Tile t, rows [m0, m0 + kRows), blocks [b_begin, b_end); with `carry` (32 floats, one row),
// y starts from it (unless b_begin is 0) and is left in it instead of going to `out`
// (OutputRows).  kTriples: layout 3 (the block's sums are 2 P, and kSymmetric has no constant
// term), whose rows go two at a time (kRows = 2) sharing the weights' indices.
template <int kBits, bool kDot, Offsets kOffsets, bool kTriples = false, int kRows = 1>
void TileRows(const PreparedWeights& w, const ActivationTables& act, int64_t t, int64_t m0, int64_t b_begin,
              int64_t b_end, GroupCursor blocks, const uint8_t* first_steps, float* carry, const OutputRows& out) {
  static_assert(kRows == 1 || kTriples, "rows share indices in layout 3 only");
  const Geometry& g = w.geo;
  const int8_t* tables[kRows];
  for (int r = 0; r < kRows; ++r) tables[r] = act.tables + (m0 + r) * g.k_steps * g.table_step_bytes();
  float32x4_t y[kRows][8];
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < 8; ++j) y[r][j] = b_begin == 0 ? vdupq_n_f32(0.f) : vld1q_f32(carry + 4 * j);
  const uint8_t* steps = nullptr;  // the block's steps: found at each chunk's start, then stepped
  for (int64_t b = b_begin; b < b_end; ++b) {
    BlockSums sum[kRows];
    const int64_t s0 = b * g.block_steps(), s1 = std::min(s0 + g.block_steps(), g.k_steps);
    if (b == b_begin) steps = first_steps;
    else if (blocks.ChunkStart()) steps = w.planes + g.step_offset(t, s0);
    const int8_t* block_tables[kRows];
    for (int r = 0; r < kRows; ++r) block_tables[r] = tables[r] + s0 * g.table_step_bytes();
    if constexpr (kTriples)
      AccumulateTripleBlock<kRows>(steps, block_tables, s1 - s0, sum);
    else
      AccumulateBlock<kBits, kDot>(steps, block_tables[0], s1 - s0, &sum[0]);
    steps += (s1 - s0) * g.step_bytes();
    const int64_t at = blocks.Entry(t) * kTileN;
    if (b + 1 < b_end) blocks.NextBlock();  // (past the call's last block: a chunk's divisions for nothing)
    for (int r = 0; r < kRows; ++r) {
      const int64_t mb = (m0 + r) * g.n_blocks + b;
      const float half_scale = act.half_scale[mb], block_sum = act.block_sum[mb];
      for (int j = 0; j < 8; ++j) {
        const float32x4_t scale = LoadHalf4(&w.scale[at + 4 * j]);
        const float32x4_t sum_f = vcvtq_f32_s32(sum[r].c[j]);
        if (kOffsets == Offsets::kSymmetric) {  // y += s * (P * step/2 - block_sum/2); layout 3: s * 2P step/2
          y[r][j] = vfmaq_f32(y[r][j], scale, vfmaq_n_f32(vdupq_n_f32(kTriples ? 0.f : -0.5f * block_sum), sum_f, half_scale));
        } else {
          const float32x4_t constant =
              kOffsets == Offsets::kZeroPoints
                  ? ZeroPointConstant(&w.zero_points[size_t(at / 2)], j, scale, float((1 << kBits) - 1) / 2.f)
                  : LoadHalf4(&w.constant[at + 4 * j]);
          y[r][j] = vfmaq_f32(vfmaq_n_f32(y[r][j], constant, block_sum), sum_f, vmulq_n_f32(scale, half_scale));
        }
      }
    }
  }
  if (carry && b_end < g.n_blocks) {
    for (int j = 0; j < 8; ++j) vst1q_f32(carry + 4 * j, y[0][j]);
    return;
  }
  const int64_t valid = std::min<int64_t>(kTileN, g.N - t * kTileN);
  for (int r = 0; r < kRows; ++r) {
    float tmp[kTileN];
    const float64x2_t row_scale = vdupq_n_f64(act.row_scale[m0 + r]);
    for (int j = 0; j < 8; ++j) {  // y * 2^R * 2^u in double: one rounding
      const double* channel_scale = &w.channel_scale[t * kTileN + 4 * j];
      const float64x2_t low = vmulq_f64(vcvt_f64_f32(vget_low_f32(y[r][j])), vmulq_f64(row_scale, vld1q_f64(channel_scale)));
      const float64x2_t high = vmulq_f64(vcvt_high_f64_f32(y[r][j]), vmulq_f64(row_scale, vld1q_f64(channel_scale + 2)));
      vst1q_f32(tmp + 4 * j, vcvt_high_f32_f64(vcvt_f32_f64(low), high));
    }
    float* dst = out.y + (m0 + r) * out.ldy + t * kTileN;
    for (int64_t c = 0; c < valid; ++c) dst[c] = tmp[c] + (out.bias ? out.bias[t * kTileN + c] : 0.f);
  }
}

// One row may come as a block range with a carry (LutGemm::RunTables); otherwise each tile
// takes all its blocks for every row (layout 3: two rows at a time).
template <int kBits, bool kDot, Offsets kOffsets, bool kTriples = false>
void GemmTiles(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
               const OutputRows& out) {
  const Geometry& g = w.geo;
  if (out.carry) {
    const GroupCursor blocks(g, out.block_begin);
    const StepOfTiles first(g, out.block_begin * g.block_steps());
    for (int64_t t = tile_begin; t < tile_end; ++t)
      TileRows<kBits, kDot, kOffsets, kTriples>(w, act, t, 0, out.block_begin, out.block_end, blocks,
                                                first.In(w.planes, t), out.carry + t * kTileN, out);
    return;
  }
  const GroupCursor blocks(g, 0);
  const StepOfTiles first(g, 0);
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    int64_t m = 0;
    if constexpr (kTriples)
      for (; m + 2 <= act.rows; m += 2)
        TileRows<kBits, kDot, kOffsets, true, 2>(w, act, t, m, 0, g.n_blocks, blocks, first.In(w.planes, t), nullptr, out);
    for (; m < act.rows; ++m)
      TileRows<kBits, kDot, kOffsets, kTriples>(w, act, t, m, 0, g.n_blocks, blocks, first.In(w.planes, t), nullptr, out);
  }
}

template <bool kDot, Offsets kOffsets>
void GemmTilesBits(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                   const OutputRows& out) {
  switch (w.geo.bits) {
    case 1: return GemmTiles<1, kDot, kOffsets>(w, act, tile_begin, tile_end, out);
    case 2: return GemmTiles<2, kDot, kOffsets>(w, act, tile_begin, tile_end, out);
    case 3: return GemmTiles<3, kDot, kOffsets>(w, act, tile_begin, tile_end, out);
    default: return GemmTiles<4, kDot, kOffsets>(w, act, tile_begin, tile_end, out);
  }
}

template <bool kDot>
void GemmTilesDispatch(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                       const OutputRows& out) {
  switch (w.offsets) {
    case Offsets::kSymmetric: return GemmTilesBits<kDot, Offsets::kSymmetric>(w, act, tile_begin, tile_end, out);
    case Offsets::kZeroPoints: return GemmTilesBits<kDot, Offsets::kZeroPoints>(w, act, tile_begin, tile_end, out);
    default: return GemmTilesBits<kDot, Offsets::kConstants>(w, act, tile_begin, tile_end, out);
  }
}

// Layout 3: zero points of 1 (kSymmetric) or a stored constant (kConstants), never nibbles.
template <bool kDot>
void GemmTriplesDispatch(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                         const OutputRows& out) {
  if (w.offsets == Offsets::kSymmetric)
    return GemmTiles<2, kDot, Offsets::kSymmetric, true>(w, act, tile_begin, tile_end, out);
  return GemmTiles<2, kDot, Offsets::kConstants, true>(w, act, tile_begin, tile_end, out);
}

// The statistics of a block that lies wholly inside K, four activations at a time, and its
// activations times 2^-E in `scaled`; false (nothing written) when the block holds a NaN or an
// infinity.  Quad sums are (|a0|+|a1|) + (|a2|+|a3|), QuadAbsSum's order: the int8 bytes equal
// the portable builder's.
inline bool BlockStatsNeon(const Geometry& g, const float* a, int64_t b, const RowTables& out, float* scaled,
                           BlockStats* stats) {
  const int64_t n = g.block_k;
  const float* x = a + b * g.block_k;
  float32x4_t max_abs = vdupq_n_f32(0.f);
  uint32x4_t all_finite = vdupq_n_u32(~0u);
  for (int64_t k = 0; k < n; k += 4) {
    const float32x4_t v = vabsq_f32(vld1q_f32(x + k));
    all_finite = vandq_u32(all_finite, vcleq_f32(v, vdupq_n_f32(FLT_MAX)));  // false for NaN and inf
    max_abs = vmaxq_f32(max_abs, v);
  }
  if (vminvq_u32(all_finite) == 0) return false;
  const int exponent = BlockExponent(vmaxvq_f32(max_abs));
  const float scale = PowerOfTwo(-exponent);
  float32x4_t sum = vdupq_n_f32(0.f), max_quad = vdupq_n_f32(0.f);
  for (int64_t k = 0; k < n; k += 8) {
    const float32x4_t v0 = vmulq_n_f32(vld1q_f32(x + k), scale), v1 = vmulq_n_f32(vld1q_f32(x + k + 4), scale);
    vst1q_f32(scaled + k, v0);
    vst1q_f32(scaled + k + 4, v1);
    const float32x4_t pairs = vpaddq_f32(vabsq_f32(v0), vabsq_f32(v1));  // |a0|+|a1|, |a2|+|a3| of both quads
    max_quad = vmaxq_f32(max_quad, vpaddq_f32(pairs, pairs));
    sum = vaddq_f32(sum, vaddq_f32(v0, v1));
  }
  *stats = FinishBlockStats(g, b, exponent, vmaxvq_f32(max_quad), vaddvq_f32(sum), true, out);
  return true;
}

// The eight entries of a quad in two vectors, summed in the portable order (sign flips are
// exact), rounded to nearest even as the portable builder's nearbyint; blocks that run past K
// or hold a NaN or an infinity take the portable path.
inline bool BuildTables(const Geometry& g, const float* a, const RowTables& out) {
  // entry i: (bit j of i ? +a_j : -a_j); lanes 0-3 are i = 0..3, lanes 4-7 (second vector) i = 4..7
  const float sign0[4] = {-1, 1, -1, 1}, sign1[4] = {-1, -1, 1, 1};
  const float32x4_t flip0 = vld1q_f32(sign0), flip1 = vld1q_f32(sign1);
  bool finite = true;
  float scaled[kMaxBlockK];
  for (int64_t b = 0; b < g.n_blocks; ++b) {
    BlockStats st;
    if ((b + 1) * g.block_k > g.K || !BlockStatsNeon(g, a, b, out, scaled, &st)) {
      finite = BuildBlockPortable(g, a, b, out) && finite;
      continue;
    }
    for (int64_t k = 0; k < st.k1 - st.k0; k += kQuadK) {
      const float* v = scaled + k;
      const float32x4_t e01 = vaddq_f32(vmulq_n_f32(flip0, v[0]), vmulq_n_f32(flip1, v[1]));
      const float32x4_t low = vsubq_f32(vsubq_f32(e01, vdupq_n_f32(v[2])), vdupq_n_f32(v[3]));   // i = 0..3: -a2
      const float32x4_t high = vsubq_f32(vaddq_f32(e01, vdupq_n_f32(v[2])), vdupq_n_f32(v[3]));  // i = 4..7: +a2
      const int16x8_t q = vcombine_s16(vqmovn_s32(vcvtnq_s32_f32(vmulq_n_f32(low, st.inv_step))),
                                       vqmovn_s32(vcvtnq_s32_f32(vmulq_n_f32(high, st.inv_step))));
      const int8x8_t entries = vqmovn_s16(q);                    // T[0..7]
      const int8x8_t mirror = vrev64_s8(vneg_s8(entries));       // T[15 - i] = -T[i]
      vst1q_s8(out.tables + ((st.k0 + k) / kQuadK) * kTableBytes, vcombine_s8(entries, mirror));
    }
  }
  return finite;
}

// Layout 3's tables (tables.h), the portable builder's bytes.  A block that lies wholly inside K
// and is finite is scaled into `scaled`, padded with zeros to whole steps; each triple's
// entries 0-15 are ((c0 a0) + c1 a1) + c2 a2 by two fused multiply-adds (c a is exact, so each
// rounds as the portable add), rounded to nearest even, and `tbl` writes the 32 bytes: entries
// 0-13, the mirror images -T[12..0] at 14-26, zeros at 27-31.  Other blocks take the portable
// path.
struct TripleEntries {
  float32x4_t c[kTripleK][4];  // [digit][entries 4i..4i+3]: digit minus 1
  uint8x16_t low, high;        // bytes 0-15 and 16-31 from {T[0..15], -T[0..15]}
  TripleEntries() {
    for (int d = 0; d < kTripleK; ++d)
      for (int i = 0; i < 4; ++i) {
        float v[4];
        for (int e = 0; e < 4; ++e) v[e] = float(TripleDigit(4 * i + e, d) - 1);
        c[d][i] = vld1q_f32(v);
      }
    uint8_t bytes[kTripleTableBytes];
    for (int e = 0; e < kTripleTableBytes; ++e)
      bytes[e] = e < 14 ? uint8_t(e) : e < kTripleFields ? uint8_t(16 + 26 - e) : uint8_t(0xff);  // (0xff: 0)
    low = vld1q_u8(bytes);
    high = vld1q_u8(bytes + 16);
  }
};

// (Unrolled by hand, the constants passed in registers: with a loop over i and the constants
// read from the static struct GCC kept q[] on the stack and reloaded every constant per
// triple, 70 instructions a triple.)
TMAC_ALWAYS_INLINE void QuantizeTriple(const TripleEntries& k, const float* v, float inv_step, int8_t* table) {
  auto quarter = [&](int i) TMAC_ALWAYS_INLINE_LAMBDA {
    const float32x4_t x = vfmaq_n_f32(vfmaq_n_f32(vmulq_n_f32(k.c[0][i], v[0]), k.c[1][i], v[1]), k.c[2][i], v[2]);
    return vqmovn_s32(vcvtnq_s32_f32(vmulq_n_f32(x, inv_step)));
  };
  const int8x16_t entries = vcombine_s8(vqmovn_s16(vcombine_s16(quarter(0), quarter(1))),
                                        vqmovn_s16(vcombine_s16(quarter(2), quarter(3))));
  const int8x16x2_t both = {{entries, vnegq_s8(entries)}};
  vst1q_s8(table, vqtbl2q_s8(both, k.low));
  vst1q_s8(table + 16, vqtbl2q_s8(both, k.high));
}

inline bool BuildTripleTables(const Geometry& g, const float* a, const RowTables& out) {
  static const TripleEntries k;
  bool finite = true;
  float scaled[(kMaxBlockK + kTripleStepK - 1) / kTripleStepK * kTripleStepK];
  for (int64_t b = 0; b < g.n_blocks; ++b) {
    const float* x = a + b * g.block_k;
    const int64_t n = g.block_k, steps = g.block_steps();  // (block_k is a multiple of 4)
    const bool inside_k = (b + 1) * g.block_k <= g.K;
    float32x4_t max_abs = vdupq_n_f32(0.f);
    uint32x4_t all_finite = vdupq_n_u32(~0u);
    for (int64_t i = 0; inside_k && i < n; i += 4) {
      const float32x4_t v = vabsq_f32(vld1q_f32(x + i));
      all_finite = vandq_u32(all_finite, vcleq_f32(v, vdupq_n_f32(FLT_MAX)));  // false for NaN and inf
      max_abs = vmaxq_f32(max_abs, v);
    }
    if (!inside_k || vminvq_u32(all_finite) == 0) {
      finite = BuildTripleBlockPortable(g, a, b, out) && finite;
      continue;
    }
    const int exponent = BlockExponent(vmaxvq_f32(max_abs));
    const float scale = PowerOfTwo(-exponent);
    float32x4_t sum = vdupq_n_f32(0.f);
    for (int64_t i = 0; i < n; i += 4) {
      const float32x4_t v = vmulq_n_f32(vld1q_f32(x + i), scale);
      vst1q_f32(scaled + i, v);
      sum = vaddq_f32(sum, v);
    }
    std::fill(scaled + n, scaled + steps * kTripleStepK, 0.f);
    float32x4_t max_triple = vdupq_n_f32(0.f);
    for (int64_t s = 0; s < steps; ++s) {  // lanes: the step's four triples
      const float32x4x3_t v = vld3q_f32(scaled + s * kTripleStepK);
      max_triple = vmaxq_f32(max_triple, vaddq_f32(vaddq_f32(vabsq_f32(v.val[0]), vabsq_f32(v.val[1])), vabsq_f32(v.val[2])));
    }
    const BlockStats st = FinishBlockStats(g, b, exponent, vmaxvq_f32(max_triple), vaddvq_f32(sum), true, out);
    int8_t* tables = out.tables + b * steps * g.table_step_bytes();
    const TripleEntries constants = k;  // (in registers for the loop)
    for (int64_t t = 0; t < steps * 4; ++t)
      QuantizeTriple(constants, scaled + t * kTripleK, st.inv_step, tables + t * kTripleTableBytes);
  }
  return finite;
}

inline void HalfToFloat(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, LoadHalf4(src + i));
  for (; i < n; ++i) {
    float16x4_t h = vdup_n_f16(0);
    std::memcpy(&h, src + i, 2);
    dst[i] = vgetq_lane_f32(vcvt_f32_f16(h), 0);
  }
}

inline void FloatToHalf(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    const float16x4_t h = vcvt_f16_f32(vld1q_f32(src + i));  // round to nearest even
    std::memcpy(dst + i, &h, sizeof(h));
  }
  for (; i < n; ++i) {
    const float16x4_t h = vcvt_f16_f32(vdupq_n_f32(src[i]));
    std::memcpy(dst + i, &h, 2);
  }
}

}  // namespace
}  // namespace neon
}  // namespace tmac
