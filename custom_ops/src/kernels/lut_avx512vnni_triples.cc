// AVX-512 VBMI/VNNI lookups of layout 3 (ternary triples), part of the avx512vnni kernel.
//
// Compiled with the AVX-512 kernel's flags and -O2 (custom_ops/CMakeLists.txt: at -O3 these
// loops streamed weights from DRAM at 0.8x the speed, though they ran alike in cache); only
// called after the avx512vnni kernel's run-time CPU check.
#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cstdint>

#include "lut_kernel.h"
#include "tables.h"

namespace tmac {
namespace {

#define TMAC_ALWAYS_INLINE inline __attribute__((always_inline))
#define TMAC_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))

inline __mmask16 FirstLanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// Layout 3: ternary triples (docs/packed-format.md).  A step's four triples have four 32-entry
// tables, 128 bytes: two zmm, which one vpermt2b reads as one 128-entry table.  Half h of a
// step is 64 five-bit fields, lane 4c + j for channel 16h + c and triple j; index 32 j + field
// looks lane 4c + j up in triple j's table, and vpdpbusd with ones adds the four lanes of a
// channel into its int32 sum.  Per 64 lookups (192 weights): vpermb spreads the 40 bytes to
// five per qword, vpmultishiftqb moves each field to its byte, vpternlogd keeps its five bits
// and sets 32 j, then vpermt2b and vpdpbusd; no int16 window, no per-plane combining.  Zen 4,
// eight independent streams of these five: 3.2-3.4 cycles per 64 lookups, 4.2-4.6 per 256
// weights.  In the kernel (4096x4096, one row, weights from L3, two tiles a pass as in the
// eleventh session): 7.9 cycles per tile and step, 5.3 per 256 weights, against 8.1 for two
// planes' lookups (the AVX2 loop); one tile a pass, as now, takes 1.09-1.10x that time.

// Byte i of qword q of the spread register is byte 5q + i of the half (i < 5; bytes 5-7 repeat
// byte 4: lane 8q + 7's window reads bits 35-42, and the three above its field are masked).
inline __m512i SpreadHalf(int first) {
  alignas(64) uint8_t index[64];
  for (int i = 0; i < 64; ++i) index[i] = uint8_t(first + 5 * (i / 8) + std::min(i % 8, 4));
  return _mm512_load_si512(index);
}

// Byte i of every qword: the field of lane 8q + i starts at bit 5i of the qword.
inline __m512i FieldShifts() { return _mm512_set1_epi64(0x231e19140f0a0500LL); }

struct TripleConstants {
  __m512i spread[2];  // half 0 from the load at the step, half 1 from the load 16 bytes on
  __m512i shifts = FieldShifts();
  __m512i low5 = _mm512_set1_epi8(0x1f);
  __m512i table_of_lane = _mm512_set1_epi32(0x60402000);  // lane 4c + j: 32 j
  __m512i ones = _mm512_set1_epi8(1);
  TripleConstants() : spread{SpreadHalf(0), SpreadHalf(24)} {}
};

// Half h of the step at `step`: byte l holds lane l's field in its five low bits (the bits
// above are the next field's).  Two 64-byte loads per step, the second at step + 16.  (The
// first 64 bytes and the last 16, the second half spread by vpermt2b, took 1.06x the time:
// 4096x4096, 8 alternating runs.)
TMAC_ALWAYS_INLINE __m512i HalfFields(const TripleConstants& k, const uint8_t* step, int h) {
  return _mm512_multishift_epi64_epi8(k.shifts, _mm512_permutexvar_epi8(k.spread[h], _mm512_loadu_si512(step + 16 * h)));
}

// The lookups' table indices of half h: the fields' five bits kept and 32 j set.
TMAC_ALWAYS_INLINE __m512i HalfIndices(const TripleConstants& k, const uint8_t* step, int h) {
  return _mm512_ternarylogic_epi32(HalfFields(k, step, h), k.low5, k.table_of_lane, 0xea);  // (f & low5) | 32 j
}

// acc += the lookups of half h of one step for one row (table_low/high: the step's tables),
// in place by asm, as the int8 path's DotAccumulate (with the intrinsic GCC copied
// accumulators from register to register around their uses: 4-8 zmm moves per 2 steps).
TMAC_ALWAYS_INLINE void LookUpTriples(__m512i& acc, const TripleConstants& k, __m512i index, __m512i table_low,
                                      __m512i table_high) {
  const __m512i looked_up = _mm512_permutex2var_epi8(table_low, index, table_high);
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(k.ones), "v"(looked_up));
}

// The int32 sums P of n steps of one tile for kRows rows (1 or 2: two rows share the
// weights' indices), channels 16h..16h+15 of row r in sum##r##h.  steps: the tile's steps,
// tables[r]: row r's tables of the first step.  A block's P is at most 22 steps * 4 * 127.
//
// Named variables, not arrays: GCC kept an array of accumulators on the stack.  Odd steps sum
// into their own accumulators: one row's two chains alone waited on vpdpbusd's latency.
//
// One tile at a time, not two sharing the step's table loads (the eleventh session's choice,
// measured in cache): streamed from DRAM as decoding reads them, two tiles' interleaved
// streams took 1.19-1.23x the time of one (`tmac-ort bench --ternary --stream`, 2560x6912,
// 6912x2560, 14336x4096, one process) and decoded the BitNet-2B-shaped model at 0.87x the
// speed; in cache a lone tile takes 1.09-1.10x the time of a pair (twelfth session).
//
// No software prefetch: one tile's steps are one sequential stream, which the hardware
// prefetcher follows.  Prefetching the next tile's part of the K-chunk (80 bytes a step, the
// rule two interleaved tiles needed) took 1.05-1.22x the time of none streamed from DRAM
// (2560x6912, 6912x2560, 14336x4096 at one group per row, as ternary models have them, one
// process) and decoded the BitNet-2B-shaped model at 0.89x the speed; warm it cost
// 1.03-1.13x (twelfth session).  (Prefetching twice as far ahead, 4 or 8 KB ahead of the
// tile's own steps, or with the T1 or NTA hints was no better.)
template <int kRows>
TMAC_ALWAYS_INLINE void AccumulateTriples(const TripleConstants& k, const uint8_t* steps, const int8_t* const* tables,
                                          int64_t n, __m512i& sum00, __m512i& sum01, __m512i& sum10, __m512i& sum11) {
  static_assert(kRows == 1 || kRows == 2, "accumulators are named for two rows");
  static_assert(int64_t(kMaxBlockK / kTripleStepK + 1) * 4 * 127 < (int64_t(1) << 24), "P is not exact in fp32");
  const __m512i zero = _mm512_setzero_si512();
  __m512i even00 = zero, even01 = zero, even10 = zero, even11 = zero, odd00 = zero, odd01 = zero, odd10 = zero,
          odd11 = zero;
  auto step_into = [&](int64_t s, __m512i& s00, __m512i& s01, __m512i& s10, __m512i& s11) TMAC_ALWAYS_INLINE_LAMBDA {
    const uint8_t* step = steps + s * kTripleStepBytes;
    const __m512i index0 = HalfIndices(k, step, 0), index1 = HalfIndices(k, step, 1);
    const int8_t* t0 = tables[0] + s * 4 * kTripleTableBytes;
    const __m512i low0 = _mm512_load_si512(t0), high0 = _mm512_load_si512(t0 + 64);
    LookUpTriples(s00, k, index0, low0, high0);
    LookUpTriples(s01, k, index1, low0, high0);
    if constexpr (kRows == 2) {
      const int8_t* t1 = tables[1] + s * 4 * kTripleTableBytes;
      const __m512i low1 = _mm512_load_si512(t1), high1 = _mm512_load_si512(t1 + 64);
      LookUpTriples(s10, k, index0, low1, high1);
      LookUpTriples(s11, k, index1, low1, high1);
    }
  };
  int64_t s = 0;
  for (; s + 2 <= n; s += 2) {
    step_into(s, even00, even01, even10, even11);
    step_into(s + 1, odd00, odd01, odd10, odd11);
  }
  if (s < n) step_into(s, even00, even01, even10, even11);
  sum00 = _mm512_add_epi32(even00, odd00);
  sum01 = _mm512_add_epi32(even01, odd01);
  sum10 = _mm512_add_epi32(even10, odd10);
  sum11 = _mm512_add_epi32(even11, odd11);
}

// Tile t for rows [m0, m0 + kRows), blocks [b_begin, b_end), as the AVX2 kernel's TileRows
// (the same carry rule): y += 2 P s' half_scale (+ c' block_sum).  first_steps: the tile's
// steps of block b_begin.
template <int kRows, Offsets kOffsets>
void TripleTiles(const PreparedWeights& w, const ActivationTables& act, int64_t t, int64_t m0, int64_t b_begin,
                 int64_t b_end, GroupCursor blocks, const uint8_t* first_steps, float* carry, const OutputRows& out) {
  static_assert(kOffsets != Offsets::kZeroPoints, "layout 3 stores its zero points' term as a constant");
  const Geometry& g = w.geo;
  static const TripleConstants k;  // (made once, not per call)
  const int64_t table_row = g.k_steps * g.table_step_bytes();
  __m512 y[kRows][2];
  for (int r = 0; r < kRows; ++r)
    for (int h = 0; h < 2; ++h) y[r][h] = b_begin == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(carry + 16 * h);
  const uint8_t* steps = nullptr;
  for (int64_t b = b_begin; b < b_end; ++b) {
    const int64_t s0 = b * g.block_steps(), s1 = std::min(s0 + g.block_steps(), g.k_steps);
    if (b == b_begin || blocks.ChunkStart()) steps = b == b_begin ? first_steps : w.planes + g.step_offset(t, s0);
    const int8_t* tables[kRows];
    for (int r = 0; r < kRows; ++r) tables[r] = act.tables + (m0 + r) * table_row + s0 * g.table_step_bytes();
    __m512i acc[2][2];
    AccumulateTriples<kRows>(k, steps, tables, s1 - s0, acc[0][0], acc[0][1], acc[1][0], acc[1][1]);
    steps += (s1 - s0) * kTripleStepBytes;
    const int64_t at = blocks.Entry(t) * kTileN;
    for (int r = 0; r < kRows; ++r) {
      const int64_t rb = (m0 + r) * g.n_blocks + b;
      const __m512 step_scale = _mm512_set1_ps(act.half_scale[rb]);
      for (int h = 0; h < 2; ++h) {
        const __m512 scale = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&w.scale[at + 16 * h])));
        const __m512 twice_p = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[r][h], acc[r][h]));  // exact: below 2^24
        y[r][h] = _mm512_fmadd_ps(twice_p, _mm512_mul_ps(scale, step_scale), y[r][h]);
        if (kOffsets == Offsets::kConstants) {
          const __m512 constant =
              _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&w.constant[at + 16 * h])));
          y[r][h] = _mm512_fmadd_ps(constant, _mm512_set1_ps(act.block_sum[rb]), y[r][h]);
        }
      }
    }
    if (b + 1 < b_end) blocks.NextBlock();  // (past the call's last block: a chunk's divisions for nothing)
  }
  if (carry && b_end < g.n_blocks) {  // (a carry comes with one row)
    for (int h = 0; h < 2; ++h) _mm512_storeu_ps(carry + 16 * h, y[0][h]);
    return;
  }
  for (int r = 0; r < kRows; ++r) {
    const int64_t m = m0 + r;
    alignas(64) float tmp[kTileN];
    const __m512d row_scale = _mm512_set1_pd(act.row_scale[m]);
    for (int h = 0; h < 2; ++h) _mm512_store_ps(tmp + 16 * h, y[r][h]);
    for (int o = 0; o < kTileN; o += 8) {
      const __m512d units = _mm512_mul_pd(row_scale, _mm512_loadu_pd(&w.channel_scale[t * kTileN + o]));
      _mm256_store_ps(tmp + o, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm256_load_ps(tmp + o)), units)));
    }
    const int64_t valid = std::min<int64_t>(kTileN, g.N - t * kTileN);
    float* dst = out.y + m * out.ldy + t * kTileN;
    for (int64_t c = 0; c < valid; ++c) dst[c] = tmp[c] + (out.bias ? out.bias[t * kTileN + c] : 0.f);
  }
}

// Two rows at a time (sharing the weights' index extraction), then a lone row.
template <Offsets kOffsets>
void GemmTriples(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                 const OutputRows& out) {
  const int64_t b_begin = out.carry ? out.block_begin : 0, b_end = out.carry ? out.block_end : w.geo.n_blocks;
  const GroupCursor blocks(w.geo, b_begin);
  const StepOfTiles first(w.geo, b_begin * w.geo.block_steps());
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    const uint8_t* steps = first.In(w.planes, t);
    int64_t m = 0;
    for (; m + 2 <= act.rows; m += 2) TripleTiles<2, kOffsets>(w, act, t, m, b_begin, b_end, blocks, steps, nullptr, out);
    if (m < act.rows)
      TripleTiles<1, kOffsets>(w, act, t, m, b_begin, b_end, blocks, steps, out.carry ? out.carry + t * kTileN : nullptr,
                               out);
  }
}

// Entries 0-15 of a triple's table, each ((c0 a0) + c1 a1) + c2 a2 with the digits'
// coefficients c, in the portable order (c a is exact, so each fma rounds as the add), times
// 127 / step rounded to nearest even: the portable builder's bytes.
struct TripleCoefficients {
  __m512 c[kTripleK];  // [digit], lane e: digit d of e, minus 1
  TripleCoefficients() {
    for (int d = 0; d < kTripleK; ++d) {
      alignas(64) float v[16];
      for (int e = 0; e < 16; ++e) v[e] = float(TripleDigit(e, d) - 1);
      c[d] = _mm512_load_ps(v);
    }
  }
};

// The int8 path's decoding (DecodeTripleBlock): per step, half h and output quad u (k = 12 s
// + 4 u + p), byte 4 d + p of the output zmm is digit i = (4 u + p) % 3 of the field of
// triple j = (4 u + p) / 3 and channel c = d / 2 + 8 (d % 2) of the half (the int8 path's
// decoded channel order).  `gather[u]` fetches that field from lane 4 c + j, `digit_of[u]`
// adds 32 i, and one vpermt2b reads the digit from a 96-byte table (fields 27-31: 1, as 13).
struct TripleDecodePlan {
  __m512i gather[3], digit_of[3], digits_low, digits_high;
  TripleDecodePlan() {
    alignas(64) uint8_t table[128] = {};
    for (int i = 0; i < kTripleK; ++i)
      for (int f = 0; f < 32; ++f) table[32 * i + f] = uint8_t(TripleDigit(f < kTripleFields ? f : 13, i));
    digits_low = _mm512_load_si512(table);
    digits_high = _mm512_load_si512(table + 64);
    for (int u = 0; u < 3; ++u) {
      alignas(64) uint8_t index[64], digit[64];
      for (int b = 0; b < 64; ++b) {
        const int d = b / 4, p = b % 4, c = d / 2 + 8 * (d % 2), k = 4 * u + p;
        index[b] = uint8_t(4 * c + k / kTripleK);
        digit[b] = uint8_t(32 * (k % kTripleK));
      }
      gather[u] = _mm512_load_si512(index);
      digit_of[u] = _mm512_load_si512(digit);
    }
  }
};

// Bytes of an output quad whose k (the quad's first at `first`) lies below `len`: a
// nibble per channel dword.
inline __mmask64 QuadBelow(int64_t first, int64_t len) {
  const int64_t valid = len - first;
  if (valid >= 4) return ~__mmask64(0);
  if (valid <= 0) return 0;
  return __mmask64((1u << valid) - 1) * 0x1111111111111111ULL;
}

}  // namespace

void DecodeTripleBlock(const uint8_t* steps, int64_t n, int64_t len, uint8_t* out) {
  static const TripleConstants k;
  static const TripleDecodePlan plan;
  for (int64_t s = 0; s < n; ++s) {
    const uint8_t* step = steps + s * kTripleStepBytes;
    for (int h = 0; h < 2; ++h) {
      const __m512i fields = _mm512_and_si512(HalfFields(k, step, h), k.low5);
      for (int u = 0; u < 3; ++u) {
        const __m512i index = _mm512_or_si512(_mm512_permutexvar_epi8(plan.gather[u], fields), plan.digit_of[u]);
        const __m512i digits = _mm512_maskz_permutex2var_epi8(QuadBelow(kTripleStepK * s + 4 * u, len), plan.digits_low,
                                                              index, plan.digits_high);
        _mm512_store_si512(out + (3 * s + u) * 4 * kTileN + 64 * h, digits);
      }
    }
  }
}

void GemmTriplesAvx512(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                       const OutputRows& out) {
  if (w.offsets == Offsets::kSymmetric) return GemmTriples<Offsets::kSymmetric>(w, act, tile_begin, tile_end, out);
  GemmTriples<Offsets::kConstants>(w, act, tile_begin, tile_end, out);
}

// Blocks wholly inside K with finite activations; the others take the portable path.
bool BuildTripleTablesAvx512(const Geometry& g, const float* a, const RowTables& out) {
  static const TripleCoefficients coefficients;
  bool finite = true;
  alignas(64) float scaled[kMaxBlockK + 32];  // a block padded to whole steps, in whole zmm
  for (int64_t b = 0; b < g.n_blocks; ++b) {
    const int64_t k0 = b * g.block_k;
    if (k0 + g.block_k > g.K) {
      finite = BuildTripleBlockPortable(g, a, b, out) && finite;
      continue;
    }
    const __m512 float_max = _mm512_set1_ps(FLT_MAX);
    __m512 max_abs = _mm512_setzero_ps();
    __mmask16 all_finite = 0xffff;
    for (int64_t k = 0; k < g.block_k; k += 16) {
      const __mmask16 in = FirstLanes(g.block_k - k);
      const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(in, a + k0 + k));
      all_finite &= __mmask16(_mm512_mask_cmp_ps_mask(in, v, float_max, _CMP_LE_OQ) | ~in);
      max_abs = _mm512_max_ps(max_abs, v);
    }
    if (all_finite != 0xffff) {
      finite = BuildTripleBlockPortable(g, a, b, out) && finite;
      continue;
    }
    const int exponent = BlockExponent(_mm512_reduce_max_ps(max_abs));
    const float scale = PowerOfTwo(-exponent);
    const int64_t steps = g.block_steps();
    // (the block sum in another order than the portable builder's: any order is exact to fp32
    // rounding; the step, which decides the bytes, is summed as it is)
    __m512 sums = _mm512_setzero_ps();
    for (int64_t k = 0; k < steps * kTripleStepK; k += 16) {
      const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(FirstLanes(g.block_k - k), a + k0 + k), _mm512_set1_ps(scale));
      _mm512_store_ps(scaled + k, v);
      sums = _mm512_add_ps(sums, v);
    }
    const float sum = _mm512_reduce_add_ps(sums);
    // (scalar: the same with vgatherdps took 1.3x the builder's time)
    float max_triple = 0.f;
    for (int64_t k = 0; k < steps * kTripleStepK; k += kTripleK)
      max_triple = std::max(max_triple, TripleAbsSum(scaled[k], scaled[k + 1], scaled[k + 2]));
    const BlockStats st = FinishBlockStats(g, b, exponent, max_triple, sum, true, out);
    const __m512 inv_step = _mm512_set1_ps(st.inv_step);
    int8_t* tables = out.tables + b * steps * g.table_step_bytes();
    // Entries 16-26 are entries 10-0 negated (T[26 - e] = -T[e], exactly, rounding included).
    const __m512i mirror = _mm512_setr_epi32(10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0, 0, 0, 0);
    for (int64_t i = 0; i < steps * 4; ++i) {  // triple i of the block
      const float* v = scaled + kTripleK * i;
      __m512 e = _mm512_mul_ps(coefficients.c[0], _mm512_set1_ps(v[0]));
      e = _mm512_fmadd_ps(coefficients.c[1], _mm512_set1_ps(v[1]), e);
      e = _mm512_fmadd_ps(coefficients.c[2], _mm512_set1_ps(v[2]), e);
      // |e| <= the block's largest triple sum, so e * 127 / it rounds into [-127, 127]
      const __m512i low = _mm512_cvtps_epi32(_mm512_mul_ps(e, inv_step));
      const __m512i high = _mm512_maskz_sub_epi32(0x07ff, _mm512_setzero_si512(), _mm512_permutexvar_epi32(mirror, low));
      int8_t* t = tables + i * kTripleTableBytes;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t), _mm512_cvtepi32_epi8(low));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(t + 16), _mm512_cvtepi32_epi8(high));
    }
  }
  return finite;
}

}  // namespace tmac
