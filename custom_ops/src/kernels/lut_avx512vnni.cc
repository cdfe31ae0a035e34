// AVX-512 VNNI kernel: the AVX2 kernel's table lookups for few rows, and for prefill (M at
// least KernelOps::int8_min_rows) an int8 path: activations quantised to int8 per block,
// weights decoded per tile and block to 8-bit integers, multiplied by vpdpbusd
// (docs/packed-format.md, "The int8 path").
//
// Why not lookups in zmm: on Zen 4 every 512-bit shuffle and multiply takes twice its 256-bit
// time (vpshufb 0.276 vs 0.136 ns, vpdpbusd 0.274 vs 0.146), so a zmm lookup loop does the
// AVX2 loop's work on the same two pipes: an AVX-512 kernel of layout v1 measured 0.97-1.14x
// AVX2's time (docs/performance.md).  What pays for M rows is doing less per weight and row:
// one vpdpbusd is 64 multiply-adds (16 channels x 4 k) at any bit width, against 2.5
// shuffle-pipe operations per 64 lookups of one plane and row; the decode that makes its
// operand costs two instructions per 64 weights (GFNI, below), once per tile for all M rows.
// Zen 4, 4096x4096, 1 thread, M=128: 11.3-13.6 ms at 1-4 bits against 15-31 ms for lookups
// and 22-25 ms for ORT's int8 kernel.
//
// Compiled with AVX-512 F/BW/VL/VNNI/VBMI, GFNI (and AVX2/FMA/F16C); only called after a
// run-time CPU check.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>

#include "lut_kernel.h"
#include "scratch.h"
#include "tables.h"

namespace tmac {

const KernelOps& Avx2Kernel();
// Layout 3 (ternary triples), lut_avx512vnni_triples.cc.
bool BuildTripleTablesAvx512(const Geometry& g, const float* a, const RowTables& out);
void GemmTriplesAvx512(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                       const OutputRows& out);
// A block's n steps of layout 3 to 3 n decoded quads of digits 0..2 (q), 0 from k = len on.
void DecodeTripleBlock(const uint8_t* steps, int64_t n, int64_t len, uint8_t* out);

namespace {

#define TMAC_ALWAYS_INLINE inline __attribute__((always_inline))
#define TMAC_ALWAYS_INLINE_LAMBDA __attribute__((always_inline))

// Rows from which the int8 path is the default.  Zen 4, 4096x4096, 1 thread, int8 / lookups:
// M=2 1.2-2.1x the time (the decode is not yet paid back), M=4 0.69-0.95x at 2-4 bits but
// 1.17x at 1 bit, M=6 0.62-0.96x at every width (docs/performance.md).
constexpr int64_t kInt8MinRows = 4;

// The same for layout 3, whose lookups cost less and decoding more.  Zen 4, 4096x4096 ternary,
// 1 thread, int8 / lookups: M=8 1.46x the time, M=12 1.17x, M=16 1.01x, M=32 0.78x.
constexpr int64_t kTripleInt8MinRows = 16;

// Rows per pass over a decoded block: 8 rows x 2 zmm of 16 channels = 16 int32 accumulators
// and the two weight registers, inside the 32 zmm registers (activations come as vpdpbusd's
// embedded broadcast).
constexpr int kRowBlock = 8;

constexpr int kQuadBytes = 4 * kTileN;  // one decoded quad: 32 channels x 4 k, 128 bytes

// ---------------------------------------------------------------------------------------
// Activations

inline __mmask16 FirstLanes(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

// One row to int8, block by block (see Int8Row).  The same float operations in the same
// order as reference.quantize_int8: v * 2^-E (exact), times 127 / max, rounded to nearest even.
bool QuantizeRowAvx512(const Geometry& g, const float* a, const Int8Row& out) {
  const __m512 float_max = _mm512_set1_ps(FLT_MAX);
  const __m512i limit = _mm512_set1_epi32(127);
  bool finite = true;
  for (int64_t b = 0; b < g.n_blocks; ++b) {
    const int64_t k0 = b * g.block_k;
    const int64_t k1 = std::min(k0 + g.block_k, g.K_pad);  // the block in the padded row
    const int64_t k_end = std::min(k1, g.K);              // its real activations
    __m512 max_abs = _mm512_setzero_ps();
    for (int64_t k = k0; k < k_end; k += 16) {
      const __mmask16 in = FirstLanes(k_end - k);
      const __m512 v = _mm512_abs_ps(_mm512_maskz_loadu_ps(in, a + k));
      const __mmask16 ok = _mm512_mask_cmp_ps_mask(in, v, float_max, _CMP_LE_OQ);  // false for NaN, inf
      finite = finite && ok == in;
      max_abs = _mm512_mask_max_ps(max_abs, ok, max_abs, v);
    }
    const float largest = _mm512_reduce_max_ps(max_abs);
    const int exponent = BlockExponent(largest);
    const float max_scaled = largest * PowerOfTwo(-exponent);  // exact, below 4 (E is clamped)
    const float inv_step = max_scaled > 0.f ? 127.f / max_scaled : 0.f;
    out.step[b] = max_scaled / 127.f;
    out.block_exponent[b] = exponent;
    const __m512 scale = _mm512_set1_ps(PowerOfTwo(-exponent));
    const __m512 inv = _mm512_set1_ps(inv_step);
    __m512i sum = _mm512_setzero_si512();
    __m512 exact_sum = _mm512_setzero_ps();
    for (int64_t k = k0; k < k1; k += 16) {
      const __mmask16 in = FirstLanes(k_end - k);
      const __m512 v = _mm512_maskz_loadu_ps(in, a + k);
      const __mmask16 ok = _mm512_mask_cmp_ps_mask(in, _mm512_abs_ps(v), float_max, _CMP_LE_OQ);
      const __m512 scaled = _mm512_maskz_mul_ps(ok, v, scale);  // exact
      exact_sum = _mm512_add_ps(exact_sum, scaled);
      const __m512 x = _mm512_mul_ps(scaled, inv);
      // |x| <= 127 up to one rounding, so the clamp only guards that rounding
      __m512i q = _mm512_cvtps_epi32(x);
      q = _mm512_max_epi32(_mm512_min_epi32(q, limit), _mm512_sub_epi32(_mm512_setzero_si512(), limit));
      sum = _mm512_add_epi32(sum, q);
      _mm_mask_storeu_epi8(out.values + k, __mmask16(FirstLanes(k1 - k)), _mm512_cvtepi32_epi8(q));
    }
    out.value_sum[b] = _mm512_reduce_add_epi32(sum);
    out.block_sum[b] = _mm512_reduce_add_ps(exact_sum);
  }
  return finite;
}

// ---------------------------------------------------------------------------------------
// Weights: a step of layout v1 to two decoded quads [quad][channel][k], one q per byte.

// Decoded channel order.  Dword d of the zmm of channel half h is channel 16h + d/2 + 8(d%2):
// layout v1 keeps channels c and c+8 of a half in the two nibbles of one byte, so one qword of
// gathered bytes decodes both (below).  Scales are permuted to this order per block and
// outputs back to channel order per tile.
inline __m512 ToDecodedOrder(__m512 v) {
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15), v);
}
inline __m512 ToChannelOrder(__m512 v) {
  return _mm512_permutexvar_ps(_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15), v);
}
inline int DecodedChannel(int half, int dword) { return 16 * half + dword / 2 + 8 * (dword % 2); }

// How a step of a width is decoded, for the output zmm of quad `lane` and channel half `half`.
//
// Pair planes (GFNI): a gather (vpermb, or vpermi2b over 128 bytes at 4 bits) puts in qword l
// the byte holding plane i of channels 16h+l and 16h+8+l at byte 7-i (0 where there is no
// plane); then gf2p8affineqb with byte j of every qword equal to 1 << j makes output byte j
// the parity of (byte 7-i AND 1 << j) at bit i, i.e. bit j of plane i's byte: bytes 0-3 are
// q of channel 16h+l at k = 0..3 (low nibble), bytes 4-7 q of channel 16h+8+l (high nibble).
// Two instructions per 64 weights for every pair plane together.
//
// The odd top plane (1 and 3 bits) sits in the single chunk, where channels c and c+16 share
// a byte instead, so it is added on its own: vpermb fetches each output byte's source byte,
// vptestmb tests its bit, a masked add puts 2^(bits-1) there.
struct DecodePlan {
  alignas(64) uint8_t gather[2][2][64];        // [lane][half][byte], into the step's pair chunks
  uint64_t gather_mask = 0;                    // bytes of a qword that hold a pair plane
  alignas(64) uint8_t single_index[2][2][64];  // [lane][half][byte], into the single chunk
  alignas(64) uint8_t single_bit[2][64];       // [half][byte]
};

DecodePlan MakeDecodePlan(int bits) {
  DecodePlan plan{};
  const NibbleMap where = NibblePositions(bits);
  const int pair_planes = PairChunks(bits);
  for (int half = 0; half < 2; ++half)
    for (int byte = 0; byte < 64; ++byte) {
      const int l = byte / 8, j = byte % 8;
      const int plane = 7 - j;  // the gathered qword's byte j holds plane 7 - j
      if (plane < pair_planes) {
        const NibblePosition pos = where[size_t(plane) * kTileN + 16 * half + l];  // low nibble: channel 16h+l
        for (int lane = 0; lane < 2; ++lane) plan.gather[lane][half][byte] = uint8_t(pos.byte + 16 * lane);
        plan.gather_mask |= uint64_t(1) << byte;
      }
      if (bits % 2 == 1) {
        const int channel = DecodedChannel(half, byte / 4), t = byte % 4;
        const NibblePosition pos = where[size_t(bits - 1) * kTileN + channel];
        for (int lane = 0; lane < 2; ++lane)
          plan.single_index[lane][half][byte] = uint8_t(pos.byte + 16 * lane - 32 * pair_planes);
        plan.single_bit[half][byte] = uint8_t(1 << (t + (pos.high ? 4 : 0)));
      }
    }
  return plan;
}

const DecodePlan& PlanFor(int bits) {
  static const std::array<DecodePlan, 4> plans = {MakeDecodePlan(1), MakeDecodePlan(2), MakeDecodePlan(3),
                                                   MakeDecodePlan(4)};
  return plans[size_t(bits - 1)];
}

// The n consecutive steps at `steps` to `out`: 2 quads of kQuadBytes per step, [quad][dword
// in decoded order][k].
template <int kBits>
TMAC_ALWAYS_INLINE void DecodeSteps(const DecodePlan& plan, const uint8_t* steps, int64_t n, uint8_t* out) {
  constexpr int kPairs = kBits / 2;
  const __m512i select_bit = _mm512_set1_epi64(0x8040201008040201);  // byte j: 1 << j
  const __m512i top_plane = _mm512_set1_epi8(char(1 << (kBits - 1)));
  for (int64_t s = 0; s < n; ++s) {
    const uint8_t* step = steps + s * kTileN * kBits;
    // (a 1-bit step is 32 bytes, its single chunk: a 64-byte load could run past the planes)
    const __m512i pairs0 = kPairs > 0 ? _mm512_loadu_si512(step)
                                      : _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(step)));
    const __m512i pairs1 = kPairs == 2 ? _mm512_loadu_si512(step + 64) : pairs0;
    uint8_t* dst = out + s * 2 * kQuadBytes;
    for (int lane = 0; lane < 2; ++lane)
      for (int half = 0; half < 2; ++half) {
        __m512i q = _mm512_setzero_si512();
        if (kPairs > 0) {
          const __m512i index = _mm512_load_si512(plan.gather[lane][half]);
          const __m512i gathered = kPairs == 2 ? _mm512_maskz_permutex2var_epi8(plan.gather_mask, pairs0, index, pairs1)
                                               : _mm512_maskz_permutexvar_epi8(plan.gather_mask, index, pairs0);
          q = _mm512_gf2p8affine_epi64_epi8(select_bit, gathered, 0);
        }
        if (kBits % 2 == 1) {
          const __m512i single = kPairs > 0 ? _mm512_castsi256_si512(_mm256_loadu_si256(
                                                  reinterpret_cast<const __m256i*>(step + 64 * kPairs)))
                                            : pairs0;
          const __m512i bytes = _mm512_permutexvar_epi8(_mm512_load_si512(plan.single_index[lane][half]), single);
          const __mmask64 set = _mm512_test_epi8_mask(bytes, _mm512_load_si512(plan.single_bit[half]));
          q = _mm512_mask_add_epi8(q, set, q, top_plane);
        }
        _mm512_store_si512(dst + lane * kQuadBytes + half * 64, q);
      }
  }
}

// ---------------------------------------------------------------------------------------
// The product

// acc += the dot products of w's unsigned bytes and the four signed bytes at `a` (broadcast to
// every int32 lane by the instruction's own load), in place.
TMAC_ALWAYS_INLINE void DotAccumulate(__m512i& acc, __m512i w, const int8_t* a) {
  asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(a)));
}

// What the epilogue of one block needs for the two channel halves of a tile.
struct BlockWeights {
  __m512 scale[2];   // s' of channels 0..15, 16..31 (decoded order)
  __m512 offset[2];  // o2' = c' + s'/2 (non-symmetric weights only; see Int8Rows)
};

// kRows rows [m0, m0 + kRows) of one block: P = sum q * values over the block's n_quads
// decoded quads, then y' += the block's term (see Int8Rows).  P needs no overflow window: at
// most 256 k * 15 * 127 per block (and the start below at most 8 * 256 * 127),
// which vpdpbusd sums, four u8 x s8 products at a time, into int32 without saturation, and
// which fp32 holds exactly.
//
// The accumulators are named variables updated in place by asm: with an array, or with the
// intrinsic, GCC 12 copied every accumulator to another register around each use and spilled
// some (twice the instructions of the loop).
template <int kBits, bool kSymmetric, int kRows>
TMAC_ALWAYS_INLINE void RowsOfBlock(const uint8_t* decoded, int64_t n_quads, const Int8Rows& act, int64_t m0,
                                    int64_t k0, int64_t rb, int64_t n_blocks, const BlockWeights& bw, float* ybuf) {
  static_assert(kRows >= 1 && kRows <= 8, "the accumulators below are named for 8 rows");
  static_assert(int64_t(kMaxBlockK) * (15 + 8) * 127 < (int64_t(1) << 24), "a block's P is not exact in fp32");
  const int8_t* row = act.values + m0 * act.stride + k0;
  const int64_t stride = act.stride;
  // The accumulators start at -2^(bits-1) value_sum, so they end at the centred sum.
  auto start = [&](int r) TMAC_ALWAYS_INLINE_LAMBDA {
    return r < kRows ? _mm512_set1_epi32(-act.value_sum[(m0 + r) * n_blocks + rb] * (1 << (kBits - 1)))
                     : _mm512_setzero_si512();
  };
  __m512i acc0_0 = start(0), acc0_1 = acc0_0, acc1_0 = start(1), acc1_1 = acc1_0, acc2_0 = start(2), acc2_1 = acc2_0,
          acc3_0 = start(3), acc3_1 = acc3_0, acc4_0 = start(4), acc4_1 = acc4_0, acc5_0 = start(5), acc5_1 = acc5_0,
          acc6_0 = start(6), acc6_1 = acc6_0, acc7_0 = start(7), acc7_1 = acc7_0;
  for (int64_t j = 0; j < n_quads; ++j) {
    const __m512i w0 = _mm512_load_si512(decoded + j * kQuadBytes);
    const __m512i w1 = _mm512_load_si512(decoded + j * kQuadBytes + 64);
#define TMAC_ROW(r)                                        \
  if constexpr (kRows > r) {                               \
    DotAccumulate(acc##r##_0, w0, row + r * stride + 4 * j); \
    DotAccumulate(acc##r##_1, w1, row + r * stride + 4 * j); \
  }
    TMAC_ROW(0) TMAC_ROW(1) TMAC_ROW(2) TMAC_ROW(3) TMAC_ROW(4) TMAC_ROW(5) TMAC_ROW(6) TMAC_ROW(7)
#undef TMAC_ROW
  }
  const __m512i sums[8][2] = {{acc0_0, acc0_1}, {acc1_0, acc1_1}, {acc2_0, acc2_1}, {acc3_0, acc3_1},
                              {acc4_0, acc4_1}, {acc5_0, acc5_1}, {acc6_0, acc6_1}, {acc7_0, acc7_1}};
  for (int r = 0; r < kRows; ++r) {
    const int64_t at = (m0 + r) * n_blocks + rb;
    float* y = ybuf + (m0 + r) * kTileN;
    for (int h = 0; h < 2; ++h) {
      const __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(sums[r][h]), _mm512_set1_ps(act.step[at]));
      __m512 yh = _mm512_fmadd_ps(p, bw.scale[h], _mm512_load_ps(y + 16 * h));
      if (!kSymmetric) yh = _mm512_fmadd_ps(bw.offset[h], _mm512_set1_ps(act.block_sum[at]), yh);
      _mm512_store_ps(y + 16 * h, yh);
    }
  }
}

template <int kBits, bool kSymmetric>
void RowsOfBlockDispatch(int rows, const uint8_t* decoded, int64_t n_quads, const Int8Rows& act, int64_t m0,
                         int64_t k0, int64_t rb, int64_t n_blocks, const BlockWeights& bw, float* ybuf) {
  switch (rows) {
#define TMAC_ROWS(R) \
  case R: return RowsOfBlock<kBits, kSymmetric, R>(decoded, n_quads, act, m0, k0, rb, n_blocks, bw, ybuf);
    TMAC_ROWS(1) TMAC_ROWS(2) TMAC_ROWS(3) TMAC_ROWS(4) TMAC_ROWS(5) TMAC_ROWS(6) TMAC_ROWS(7)
#undef TMAC_ROWS
    default: return RowsOfBlock<kBits, kSymmetric, kRowBlock>(decoded, n_quads, act, m0, k0, rb, n_blocks, bw, ybuf);
  }
}

// y = float(double(y') * row_scale * channel_scale) + bias for the valid channels of tile t
// (y' in decoded order).
void StoreTile(const PreparedWeights& w, const Int8Rows& act, int64_t t, const float* ybuf, const OutputRows& out) {
  const Geometry& g = w.geo;
  const int64_t valid = std::min<int64_t>(kTileN, g.N - t * kTileN);
  for (int64_t m = 0; m < act.rows; ++m) {
    alignas(64) float tmp[kTileN];
    for (int h = 0; h < 2; ++h) _mm512_store_ps(tmp + 16 * h, ToChannelOrder(_mm512_load_ps(ybuf + m * kTileN + 16 * h)));
    const __m512d row_scale = _mm512_set1_pd(act.row_scale[m]);
    for (int o = 0; o < kTileN; o += 8) {
      const __m512d v = _mm512_cvtps_pd(_mm256_load_ps(tmp + o));
      const __m512d units = _mm512_mul_pd(row_scale, _mm512_loadu_pd(&w.channel_scale[t * kTileN + o]));
      _mm256_store_ps(tmp + o, _mm512_cvtpd_ps(_mm512_mul_pd(v, units)));
    }
    float* dst = out.y + m * out.ldy + t * kTileN;
    for (int64_t c = 0; c < valid; ++c) dst[c] = tmp[c] + (out.bias ? out.bias[t * kTileN + c] : 0.f);
  }
}

// o2' = c' + s'/2 of channels 16h..16h+15 in decoded order (s' given so), for weights with
// zero points or offsets: s' (2^(bits-1) - z) for zero points (exact in fp32), else from the
// stored constant.
template <int kBits>
__m512 CentredOffset(const PreparedWeights& w, int64_t at, int h, __m512 scale) {
  if (w.offsets == Offsets::kZeroPoints) {
    const __m512i bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(&w.zero_points[at / 2])));
    const __m512i z = h == 0 ? _mm512_and_si512(bytes, _mm512_set1_epi32(15)) : _mm512_srli_epi32(bytes, 4);
    return _mm512_mul_ps(scale, _mm512_sub_ps(_mm512_set1_ps(float(1 << (kBits - 1))), ToDecodedOrder(_mm512_cvtepi32_ps(z))));
  }
  const __m512 constant =
      ToDecodedOrder(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&w.constant[at + 16 * h]))));
  return _mm512_fmadd_ps(scale, _mm512_set1_ps(0.5f), constant);
}

// kTriples: layout 3, its triples decoded to q (0, 1, 2) per byte (DecodeTripleBlock, 0 where
// a step pads its block) and centred on 1: w = s (q - 1) + c with c the stored constant (0
// for zero points of 1), so P starts at -value_sum (RowsOfBlock's centre at 1 bit) and the
// offset is c itself; 3 quads a step, up to 66 (264 k) for a 256-k block (22 steps).
template <int kBits, bool kSymmetric, bool kTriples = false>
void GemmTilesInt8(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin, int64_t tile_end,
                   const OutputRows& out) {
  static_assert(!kTriples || kBits == 1, "layout 3 is centred on q = 1, RowsOfBlock's centre at 1 bit");
  const Geometry& g = w.geo;
  constexpr int64_t kMaxQuads = kTriples ? 3 * ((kMaxBlockK + kTripleStepK - 1) / kTripleStepK) : kMaxBlockK / kQuadK;
  alignas(64) uint8_t decoded[kMaxQuads * kQuadBytes];  // one block of a tile: <= 8.25 KB
  thread_local AlignedScratch scratch;
  float* ybuf = scratch.Get(size_t(act.rows) * kTileN);  // y' of every row for one tile
  const GroupCursor first_block(g, 0);
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    std::fill(ybuf, ybuf + act.rows * kTileN, 0.f);
    GroupCursor blocks = first_block;
    for (int64_t b = 0; b < g.n_blocks; ++b) {
      const int64_t s0 = b * g.block_steps(), s1 = std::min(s0 + g.block_steps(), g.k_steps);
      const int64_t k0 = b * g.block_k;
      if constexpr (kTriples) {
        DecodeTripleBlock(w.planes + g.step_offset(t, s0), s1 - s0, std::min(g.block_k, g.K - k0), decoded);
      } else {
        DecodeSteps<kBits>(PlanFor(kBits), w.planes + g.step_offset(t, s0), s1 - s0, decoded);
      }
      PrefetchNextBlock(g, w.planes, t, s1, (s1 - s0) * g.step_bytes());
      BlockWeights bw;
      const int64_t at = blocks.Entry(t) * kTileN;
      for (int h = 0; h < 2; ++h) {
        bw.scale[h] = ToDecodedOrder(
            _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&w.scale[at + 16 * h]))));
        bw.offset[h] = _mm512_setzero_ps();
        if (!kSymmetric && kTriples)
          bw.offset[h] = ToDecodedOrder(
              _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(&w.constant[at + 16 * h]))));
        else if (!kSymmetric)
          bw.offset[h] = CentredOffset<kBits>(w, at, h, bw.scale[h]);
      }
      blocks.NextBlock();
      const int64_t quads = (kTriples ? 3 : 2) * (s1 - s0);
      for (int64_t m0 = 0; m0 < act.rows; m0 += kRowBlock)
        RowsOfBlockDispatch<kBits, kSymmetric>(int(std::min<int64_t>(kRowBlock, act.rows - m0)), decoded, quads, act,
                                               m0, k0, b, g.n_blocks, bw, ybuf);
    }
    StoreTile(w, act, t, ybuf, out);
  }
}

template <bool kSymmetric>
void GemmTilesInt8Bits(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin, int64_t tile_end,
                       const OutputRows& out) {
  switch (w.geo.bits) {
    case 1: return GemmTilesInt8<1, kSymmetric>(w, act, tile_begin, tile_end, out);
    case 2: return GemmTilesInt8<2, kSymmetric>(w, act, tile_begin, tile_end, out);
    case 3: return GemmTilesInt8<3, kSymmetric>(w, act, tile_begin, tile_end, out);
    default: return GemmTilesInt8<4, kSymmetric>(w, act, tile_begin, tile_end, out);
  }
}

void GemmTriplesInt8Dispatch(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin, int64_t tile_end,
                             const OutputRows& out) {
  if (w.offsets == Offsets::kSymmetric) return GemmTilesInt8<1, true, true>(w, act, tile_begin, tile_end, out);
  GemmTilesInt8<1, false, true>(w, act, tile_begin, tile_end, out);
}

void GemmTilesInt8Dispatch(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin, int64_t tile_end,
                           const OutputRows& out) {
  if (w.offsets == Offsets::kSymmetric) return GemmTilesInt8Bits<true>(w, act, tile_begin, tile_end, out);
  GemmTilesInt8Bits<false>(w, act, tile_begin, tile_end, out);
}

}  // namespace

const KernelOps& Avx512VnniKernel() {
  static const KernelOps ops = [] {
    KernelOps o = Avx2Kernel();  // the lookup path below int8_min_rows
    o.build_triple_tables = BuildTripleTablesAvx512;
    o.gemm_triple_tiles = GemmTriplesAvx512;
    o.gemm_triple_tiles_int8 = GemmTriplesInt8Dispatch;
    o.triple_int8_min_rows = kTripleInt8MinRows;
    o.quantize_row = QuantizeRowAvx512;
    o.gemm_tiles_int8 = GemmTilesInt8Dispatch;
    for (int64_t& rows : o.int8_min_rows) rows = kInt8MinRows;
    return o;
  }();
  return ops;
}

}  // namespace tmac
