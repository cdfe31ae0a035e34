// AVX2 kernel: one vpshufb looks up 32 int8 table entries from 32 4-bit weight indices.
//
// A 32-byte chunk of a step holds quad 2s in its low 128-bit lane and quad 2s+1 in its high
// lane, so a single 32-byte table load (both quads' tables) serves as the shuffle source.
// Pair chunks put planes 2p and 2p+1 of one channel in adjacent bytes, so vpmaddubsw with
// weights (1, 2) widens to int16 and combines the two planes in one instruction; the odd
// top plane is widened with weights (1, 0) and (0, 1).  Each lane accumulates its own quads
// in int16 for a window of steps short enough that no sum can overflow (static_asserts below
// bound the summed quantity for any weights and activations); each lane is then widened to
// int32 and the lanes added, and each block scaled in fp32.
//
// Prefill at 3 and 4 bits (from KernelOps::int8_min_rows rows) takes an int8 path instead:
// weights decoded once per tile and block to bytes, multiplied with every row by vpmaddubsw
// (below, "The int8 path").
// Compiled with -mavx2 -mfma -mf16c; only called after a run-time CPU check.
#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cstring>

#include "lut_kernel.h"
#include "scratch.h"
#include "tables.h"

namespace tmac {
namespace {

// The accumulators stay in registers only if the step loop (and the lambdas inside it) is
// inlined into the tile loop: as a call (which GCC chose for 4 bits, and for the lambdas
// once the file had more instantiations) they pass through memory.
#define TMAC_ALWAYS_INLINE inline __attribute__((always_inline))
#define TMAC_LAMBDA_INLINE __attribute__((always_inline))

// How far ahead of the step being computed the weight stream is prefetched.  Tiles lie one
// after another, so this runs on into the next tile.  It matters when weights come from
// DRAM: the hardware prefetcher alone left a 2-bit 14336x4096 GEMV at ~60% of stream
// bandwidth (Zen 3).  512 bytes ahead was chosen from single cold calls (a cache flush, then
// one GEMV), whose noise hid the rest; streamed as decoding streams them, layer after layer
// (12 4096x14336 matrices at group 32 with zero points, 5 interleaved runs, Zen 4), 4 KB ahead
// read 20.5 GB/s at 4 bits and 18.0 at 2 bits against 15.6 and 15.1 at 512 B (none: 14.4 and
// 13.7; 2-8 KB within 10% of 4 KB, 16 KB worse), and decoded a Llama-1.1B-shaped model
// 1.23-1.27x (4 bits) and 1.17-1.19x (2 bits) as fast on one thread, 1.11x / 1.05x on two.
constexpr int kPrefetchBytes = 4096;

// Widens the two lanes of 16 int16 partial sums (one quad of the step each, the same 8
// channels) to int32 and adds them.  Adding them in int16 first overflowed: a lane may hold
// up to 32767, two lanes twice that (4 bits, group 128, all-15 nibbles, positive activations).
inline __m256i MergeLanes(__m256i acc) {
  const __m256i low = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(acc));
  return _mm256_add_epi32(low, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(acc, 1)));
}

// Steps of a block whose two lanes can be added in int16: each lane holds at most
// steps * (2^bits - 1) * 127.
template <int kBits>
constexpr int64_t LanePairSteps() {
  return 32767 / (2 * ((1 << kBits) - 1) * 127);
}

// MergeLanes for all four accumulators of a row where the lanes can be added in int16
// (LanePairSteps): the lanes of accumulators 2i and 2i+1 are added in one int16 add and then
// widened, 12 instructions for 32 channels instead of 16.
inline void MergeLanePairs(const __m256i* acc, __m256i* sum) {
  for (int i = 0; i < 2; ++i) {
    const __m256i merged = _mm256_add_epi16(_mm256_permute2x128_si256(acc[2 * i], acc[2 * i + 1], 0x20),
                                            _mm256_permute2x128_si256(acc[2 * i], acc[2 * i + 1], 0x31));
    sum[2 * i] = _mm256_cvtepi16_epi32(_mm256_castsi256_si128(merged));
    sum[2 * i + 1] = _mm256_cvtepi16_epi32(_mm256_extracti128_si256(merged, 1));
  }
}

// Scales 8 fp32 outputs by row_scale * channel_scale[0..7] in double (both powers of two: one
// rounding, and no overflow or underflow on the way for any exponents).
inline __m256 ToOutputUnits(__m256 y, __m256d row_scale, const double* channel_scale) {
  const __m256d low = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(y)),
                                    _mm256_mul_pd(row_scale, _mm256_loadu_pd(channel_scale)));
  const __m256d high = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(y, 1)),
                                     _mm256_mul_pd(row_scale, _mm256_loadu_pd(channel_scale + 4)));
  return _mm256_set_m128(_mm256_cvtpd_ps(high), _mm256_cvtpd_ps(low));
}

// Row m of tile t to `out`: y = float(double(y') * row_scale * channel_scale) + bias for the
// tile's valid channels (y': the row's 32 channels in 4 vectors).  Both paths finish with it.
inline void StoreOutputRow(const PreparedWeights& w, const OutputRows& out, int64_t t, int64_t m, double row_scale,
                           const __m256* y) {
  const int64_t valid = std::min<int64_t>(kTileN, w.geo.N - t * kTileN);
  alignas(32) float tmp[kTileN];
  const __m256d units = _mm256_set1_pd(row_scale);
  for (int o = 0; o < 4; ++o)
    _mm256_store_ps(tmp + 8 * o, ToOutputUnits(y[o], units, &w.channel_scale[t * kTileN + 8 * o]));
  float* dst = out.y + m * out.ldy + t * kTileN;
  for (int64_t c = 0; c < valid; ++c) dst[c] = tmp[c] + (out.bias ? out.bias[t * kTileN + c] : 0.f);
}

inline __m256 LoadHalf8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The unsigned vpmaddubsw operand that widens a looked-up chunk to int16 and weights it by
// its planes: bytes (2^2p, 2^(2p+1)) for pair p, whose adjacent bytes are planes 2p and 2p+1
// of one channel, so every plane lands in the same accumulator and no per-plane shift or
// add is left for the end of the block.
template <int kBits>
struct PlaneWeights {
  static constexpr int kPairs = kBits / 2;
  __m256i pair[kPairs > 0 ? kPairs : 1];
  __m256i single_even, single_odd;  // the odd top plane: bytes (2^(bits-1), 0) and (0, 2^(bits-1))
  PlaneWeights() {
    for (int p = 0; p < kPairs; ++p) pair[p] = _mm256_set1_epi16(int16_t((1 << 2 * p) | (2 << 2 * p) << 8));
    single_even = _mm256_set1_epi16(int16_t(1 << (kBits - 1)));
    single_odd = _mm256_set1_epi16(int16_t((1 << (kBits - 1)) << 8));
  }
};

// Steps an int16 accumulator can take before it might overflow: each step adds, per lane
// and channel, at most (2^bits - 1) * 127 (the lookups of every plane, weighted by 2^plane;
// lanes are merged in int32, see MergeLanes).
template <int kBits>
constexpr int64_t WindowSteps() {
  return 32767 / (((1 << kBits) - 1) * 127);
}
// vpmaddubsw saturates its int16 pair sums: the largest is 127 * (2^(bits-2) + 2^(bits-1)).
static_assert(127 * (4 + 8) <= 32767, "vpmaddubsw pair sum saturates");
// A block's int32 sums: at most 32 steps * 2 lanes * 127 * 15.
static_assert(int64_t(kMaxBlockK / kStepK) * 2 * 127 * 15 < (int64_t(1) << 31), "int32 block sum overflows");

// acc[r][o] (16 int16: channels 8o..8o+7 in each lane, one lane per quad of the step) +=
// the weighted table lookups of the n steps at `steps` (consecutive in memory; tables[r]: the
// first step's tables of row r) for kRows activation rows.  Each weight chunk is loaded and
// split into nibbles once and looked up in every row's table.
template <int kBits, int kRows>
TMAC_ALWAYS_INLINE void AccumulateSteps(const uint8_t* steps, const int8_t* const* tables, int64_t n,
                                        __m256i (*acc)[4]) {
  constexpr int kStepBytes = kTileN * kBits;
  constexpr int kPairs = kBits / 2;
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const PlaneWeights<kBits> weights;
  auto accumulate_step = [&](int64_t s) TMAC_LAMBDA_INLINE {
    const uint8_t* step = steps + s * kStepBytes;
    for (int i = 0; i < kStepBytes; i += 64) _mm_prefetch(reinterpret_cast<const char*>(step + kPrefetchBytes + i), _MM_HINT_T0);
    __m256i table[kRows];
    for (int r = 0; r < kRows; ++r) table[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tables[r] + s * 32));
    // Pair chunk 2p+c: low nibbles are channels 16c..16c+7 (o = 2c), high ones 16c+8.. (o = 2c+1).
    for (int p = 0; p < kPairs; ++p) {
      for (int c = 0; c < 2; ++c) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(step + 64 * p + 32 * c));
        const __m256i lo = _mm256_and_si256(v, low_nibble);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibble);
        for (int r = 0; r < kRows; ++r) {
          acc[r][2 * c] = _mm256_add_epi16(acc[r][2 * c], _mm256_maddubs_epi16(weights.pair[p], _mm256_shuffle_epi8(table[r], lo)));
          acc[r][2 * c + 1] =
              _mm256_add_epi16(acc[r][2 * c + 1], _mm256_maddubs_epi16(weights.pair[p], _mm256_shuffle_epi8(table[r], hi)));
        }
      }
    }
    // Single chunk: even bytes of the low nibbles are channels 0..7, odd bytes 8..15; high
    // nibbles likewise 16..23 and 24..31.
    if (kBits % 2 == 1) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(step + 64 * kPairs));
      const __m256i lo = _mm256_and_si256(v, low_nibble);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibble);
      for (int r = 0; r < kRows; ++r) {
        const __m256i t_lo = _mm256_shuffle_epi8(table[r], lo);
        const __m256i t_hi = _mm256_shuffle_epi8(table[r], hi);
        acc[r][0] = _mm256_add_epi16(acc[r][0], _mm256_maddubs_epi16(weights.single_even, t_lo));
        acc[r][2] = _mm256_add_epi16(acc[r][2], _mm256_maddubs_epi16(weights.single_even, t_hi));
        // At 1 bit the odd bytes are sign-extended by a shift instead: half the widening on
        // the shift pipes, half on the multiply pipes (Zen 4, 4096x4096 in cache: 1.04x the
        // GB/s; all four by shifts 0.65x; the same split at 3 bits, with a mask for the
        // plane weight 4, 0.96x).
        if (kBits == 1) {
          acc[r][1] = _mm256_add_epi16(acc[r][1], _mm256_srai_epi16(t_lo, 8));
          acc[r][3] = _mm256_add_epi16(acc[r][3], _mm256_srai_epi16(t_hi, 8));
        } else {
          acc[r][1] = _mm256_add_epi16(acc[r][1], _mm256_maddubs_epi16(weights.single_odd, t_lo));
          acc[r][3] = _mm256_add_epi16(acc[r][3], _mm256_maddubs_epi16(weights.single_odd, t_hi));
        }
      }
    }
  };
  int64_t s = 0;
  // Two steps per iteration for one row at 1 and 2 bits: a quarter fewer instructions per
  // step (the loop's own, and GCC's accumulator copies go).  At 3 and 4 bits GCC then
  // spills accumulators, so those stay at one step.
  if (kRows == 1 && kBits <= 2) {
    for (; s + 2 <= n; s += 2) {
      accumulate_step(s);
      accumulate_step(s + 1);
    }
  }
  for (; s < n; ++s) accumulate_step(s);
}

// The integer part of one block: sum[r][o] = 8 int32 channels.  Int16 accumulation runs in
// windows short enough not to overflow (one window per block except for 4 bits beyond
// 16 steps), and the two lanes (quads) are merged once per window: in int16 where both lanes
// together cannot overflow (blocks up to 8 steps at 4 bits, 18 at 3, every block at 1 and 2
// bits), two accumulators at a time, else each widened to int32 first.
// `steps`: the block's n consecutive steps; tables[r]: their first step's tables of row r.
template <int kBits, int kRows>
TMAC_ALWAYS_INLINE void AccumulateBlock(const uint8_t* steps, const int8_t* const* tables, int64_t n,
                                        __m256i (*sum)[4]) {
  constexpr int64_t kWindow = WindowSteps<kBits>() >= 32 ? 32 : 16;
  static_assert(kWindow * ((1 << kBits) - 1) * 127 <= 32767, "int16 window overflows");
  __m256i acc[kRows][4];
  auto accumulate_window = [&](int64_t w) TMAC_LAMBDA_INLINE {
    for (int r = 0; r < kRows; ++r)
      for (int o = 0; o < 4; ++o) acc[r][o] = _mm256_setzero_si256();
    const int8_t* window_tables[kRows];
    for (int r = 0; r < kRows; ++r) window_tables[r] = tables[r] + w * 2 * kTableBytes;
    AccumulateSteps<kBits, kRows>(steps + w * kTileN * kBits, window_tables, std::min(kWindow, n - w), acc);
  };
  accumulate_window(0);
  if (n <= std::min(kWindow, LanePairSteps<kBits>())) {
    for (int r = 0; r < kRows; ++r) MergeLanePairs(acc[r], sum[r]);
    return;
  }
  for (int r = 0; r < kRows; ++r)
    for (int o = 0; o < 4; ++o) sum[r][o] = MergeLanes(acc[r][o]);
  for (int64_t w = kWindow; w < n; w += kWindow) {
    accumulate_window(w);
    for (int r = 0; r < kRows; ++r)
      for (int o = 0; o < 4; ++o) sum[r][o] = _mm256_add_epi32(sum[r][o], MergeLanes(acc[r][o]));
  }
}

// mid - z of channels 8o..8o+7 (the lookups' mid = (2^bits - 1) / 2, the int8 path's
// 2^(bits-1)), z from the tile-group's 16 nibble bytes (see PreparedWeights::zero_points);
// exact in fp32.
inline __m256 CentredZeroPoint(const uint8_t* nibbles, int o, __m256 mid) {
  __m256i z = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(nibbles + 8 * (o & 1))));
  z = o < 2 ? _mm256_and_si256(z, _mm256_set1_epi32(15)) : _mm256_srli_epi32(z, 4);
  return _mm256_sub_ps(mid, _mm256_cvtepi32_ps(z));
}

// One tile of 32 channels for rows [m0, m0 + kRows), blocks [b_begin, b_end): y = sum over
// blocks of sum * s * step/2 + constant * block_sum, scales loaded once per block for all
// rows.  Offsets::kSymmetric: the constant is -s/2 (default zero points), so y += s * (sum *
// step/2 - block_sum/2) and no constant is read or computed; kZeroPoints computes it from the
// nibbles, kConstants loads it, once per block and 8 channels for all rows.
//
// With `carry` (kRows x 32 floats), y starts from it (unless b_begin is 0) and is left in it
// instead of going to `out` (OutputRows).
// `blocks`: the cursor at b_begin (the same for every tile).
template <int kBits, int kRows, Offsets kOffsets>
void TileRows(const PreparedWeights& w, const ActivationTables& act, int64_t t, int64_t m0, int64_t b_begin,
              int64_t b_end, GroupCursor blocks, const uint8_t* first_steps, float* carry, const OutputRows& out) {
  const Geometry& g = w.geo;
  const int64_t table_row = g.k_steps * 2 * kTableBytes;
  const int8_t* tables[kRows];
  for (int r = 0; r < kRows; ++r) tables[r] = act.tables + (m0 + r) * table_row;
  __m256 y[kRows][4];
  for (int r = 0; r < kRows; ++r)
    for (int o = 0; o < 4; ++o) y[r][o] = b_begin == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(carry + 32 * r + 8 * o);
  const uint8_t* steps = nullptr;  // the block's steps: found at each chunk's start, then stepped
  for (int64_t b = b_begin; b < b_end; ++b) {
    __m256i sum[kRows][4];
    const int64_t s0 = b * g.block_steps(), s1 = std::min(s0 + g.block_steps(), g.k_steps);
    if (b == b_begin) steps = first_steps;
    else if (blocks.ChunkStart()) steps = w.planes + g.step_offset(t, s0);
    const int8_t* block_tables[kRows];
    for (int r = 0; r < kRows; ++r) block_tables[r] = tables[r] + s0 * 2 * kTableBytes;
    AccumulateBlock<kBits, kRows>(steps, block_tables, s1 - s0, sum);
    steps += (s1 - s0) * g.step_bytes();
    const int64_t at = blocks.Entry(t) * kTileN;
    if (b + 1 < b_end) blocks.NextBlock();  // (past the call's last block: a chunk's divisions for nothing)
    for (int o = 0; o < 4; ++o) {
      const __m256 scale = LoadHalf8(&w.scale[at + 8 * o]);
      __m256 constant = _mm256_setzero_ps(), centred_zero_point = _mm256_setzero_ps();
      if (kOffsets == Offsets::kZeroPoints) {
        const __m256 mid = _mm256_set1_ps(float((1 << kBits) - 1) / 2.f);
        centred_zero_point = CentredZeroPoint(&w.zero_points[size_t(at / 2)], o, mid);
      } else if (kOffsets == Offsets::kConstants) {
        constant = LoadHalf8(&w.constant[at + 8 * o]);
      }
      for (int r = 0; r < kRows; ++r) {
        const int64_t rb = (m0 + r) * g.n_blocks + b;
        const __m256 half_scale = _mm256_set1_ps(act.half_scale[rb]);
        const __m256 sum_f = _mm256_cvtepi32_ps(sum[r][o]);
        if (kOffsets == Offsets::kSymmetric) {
          const __m256 half_block_sum = _mm256_set1_ps(act.block_sum[rb] * -0.5f);
          y[r][o] = _mm256_fmadd_ps(scale, _mm256_fmadd_ps(sum_f, half_scale, half_block_sum), y[r][o]);
        } else if (kOffsets == Offsets::kZeroPoints) {
          // s' (sum * step/2 + (mid - z) * block_sum): the symmetric form with the zero point's
          // term, the scale multiplied once.
          const __m256 block_sum = _mm256_set1_ps(act.block_sum[rb]);
          y[r][o] = _mm256_fmadd_ps(scale, _mm256_fmadd_ps(sum_f, half_scale, _mm256_mul_ps(centred_zero_point, block_sum)),
                                    y[r][o]);
        } else {
          const __m256 block_sum = _mm256_set1_ps(act.block_sum[rb]);
          y[r][o] = _mm256_fmadd_ps(sum_f, _mm256_mul_ps(scale, half_scale), _mm256_fmadd_ps(constant, block_sum, y[r][o]));
        }
      }
    }
  }
  if (carry && b_end < g.n_blocks) {
    for (int r = 0; r < kRows; ++r)
      for (int o = 0; o < 4; ++o) _mm256_storeu_ps(carry + 32 * r + 8 * o, y[r][o]);
    return;
  }
  for (int r = 0; r < kRows; ++r) StoreOutputRow(w, out, t, m0 + r, act.row_scale[m0 + r], y[r]);
}

// Rows go in blocks whose tables fit in L2 (each tile then reads them from there rather than
// from L3), two rows at a time within a block.
template <int kBits, Offsets kOffsets>
void GemmTilesAvx2(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin,
                   int64_t tile_end, const OutputRows& out) {
  if (out.carry) {  // one row, some blocks (LutGemm::RunTables)
    const GroupCursor blocks(w.geo, out.block_begin);
    const StepOfTiles first(w.geo, out.block_begin * w.geo.block_steps());
    for (int64_t t = tile_begin; t < tile_end; ++t)
      TileRows<kBits, 1, kOffsets>(w, act, t, 0, out.block_begin, out.block_end, blocks, first.In(w.planes, t),
                                   out.carry + t * kTileN, out);
    return;
  }
  const GroupCursor blocks(w.geo, 0);
  const StepOfTiles first(w.geo, 0);
  constexpr int64_t kTableBudget = 256 * 1024;
  const int64_t table_row_bytes = w.geo.k_steps * 2 * kTableBytes;
  const int64_t block_rows = std::max<int64_t>(2, kTableBudget / table_row_bytes) & ~int64_t(1);
  for (int64_t m_begin = 0; m_begin < act.rows; m_begin += block_rows) {
    const int64_t m_end = std::min(act.rows, m_begin + block_rows);
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      int64_t m = m_begin;
      const uint8_t* steps = first.In(w.planes, t);
      for (; m + 2 <= m_end; m += 2)
        TileRows<kBits, 2, kOffsets>(w, act, t, m, 0, w.geo.n_blocks, blocks, steps, nullptr, out);
      if (m < m_end) TileRows<kBits, 1, kOffsets>(w, act, t, m, 0, w.geo.n_blocks, blocks, steps, nullptr, out);
    }
  }
}

template <Offsets kOffsets>
void GemmTilesBits(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin, int64_t tile_end,
                   const OutputRows& out) {
  switch (w.geo.bits) {
    case 1: return GemmTilesAvx2<1, kOffsets>(w, act, tile_begin, tile_end, out);
    case 2: return GemmTilesAvx2<2, kOffsets>(w, act, tile_begin, tile_end, out);
    case 3: return GemmTilesAvx2<3, kOffsets>(w, act, tile_begin, tile_end, out);
    default: return GemmTilesAvx2<4, kOffsets>(w, act, tile_begin, tile_end, out);
  }
}

void GemmTilesDispatch(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin,
                       int64_t tile_end, const OutputRows& out) {
  switch (w.offsets) {
    case Offsets::kSymmetric: return GemmTilesBits<Offsets::kSymmetric>(w, act, tile_begin, tile_end, out);
    case Offsets::kZeroPoints: return GemmTilesBits<Offsets::kZeroPoints>(w, act, tile_begin, tile_end, out);
    default: return GemmTilesBits<Offsets::kConstants>(w, act, tile_begin, tile_end, out);
  }
}

inline float HorizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  return _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
}

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

// The statistics of a block that lies wholly inside K, eight activations at a time, and its
// activations times 2^-E in `scaled`.  Returns false (nothing written) when the block holds a
// NaN or an infinity: the portable path takes it.  The quad sums |a0|+|a1| + |a2|+|a3| are
// two horizontal adds, in QuadAbsSum's order, so the int8 bytes equal the portable ones.
bool BlockStatsAvx2(const Geometry& g, const float* a, int64_t b, const RowTables& out, float* scaled,
                    BlockStats* stats) {
  const int64_t n = g.block_k;  // a multiple of 8 here
  const float* x = a + b * g.block_k;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 float_max = _mm256_set1_ps(FLT_MAX);
  __m256 max_abs = _mm256_setzero_ps(), all_finite = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  for (int64_t k = 0; k < n; k += 8) {
    const __m256 v = _mm256_and_ps(_mm256_loadu_ps(x + k), abs_mask);
    const __m256 finite = _mm256_cmp_ps(v, float_max, _CMP_LE_OQ);  // false for NaN and inf
    all_finite = _mm256_and_ps(all_finite, finite);
    max_abs = _mm256_max_ps(max_abs, v);
  }
  if (_mm256_movemask_ps(all_finite) != 0xff) return false;
  const int exponent = BlockExponent(HorizontalMax(max_abs));
  const __m256 scale = _mm256_set1_ps(PowerOfTwo(-exponent));
  __m256 sum = _mm256_setzero_ps(), max_quad = _mm256_setzero_ps();
  for (int64_t k = 0; k < n; k += 16) {
    const __m256 v0 = _mm256_mul_ps(_mm256_loadu_ps(x + k), scale);
    const __m256 v1 = k + 8 < n ? _mm256_mul_ps(_mm256_loadu_ps(x + k + 8), scale) : _mm256_setzero_ps();
    _mm256_store_ps(scaled + k, v0);
    _mm256_store_ps(scaled + k + 8, v1);  // (scaled has room: kMaxBlockK + 8)
    const __m256 pairs = _mm256_hadd_ps(_mm256_and_ps(v0, abs_mask), _mm256_and_ps(v1, abs_mask));
    max_quad = _mm256_max_ps(max_quad, _mm256_hadd_ps(pairs, pairs));
    sum = _mm256_add_ps(sum, _mm256_add_ps(v0, v1));
  }
  *stats = FinishBlockStats(g, b, exponent, HorizontalMax(max_quad), HorizontalSum(sum), true, out);
  return true;
}

// The eight entries of a quad in one vector: lane i holds sum_j (bit j of i ? a_j : -a_j),
// summed in the portable order (sign flips by xor are exact), so the int8 tables are the same
// bytes the scalar kernel builds.  Blocks that run past K or hold a NaN or an infinity take
// the portable path.
bool BuildTablesAvx2(const Geometry& g, const float* a, const RowTables& out) {
  const __m256 sign_bit = _mm256_set1_ps(-0.f);
  const __m256 flip0 = _mm256_and_ps(sign_bit, _mm256_castsi256_ps(_mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0)));
  const __m256 flip1 = _mm256_and_ps(sign_bit, _mm256_castsi256_ps(_mm256_setr_epi32(-1, -1, 0, 0, -1, -1, 0, 0)));
  const __m256 flip2 = _mm256_and_ps(sign_bit, _mm256_castsi256_ps(_mm256_setr_epi32(-1, -1, -1, -1, 0, 0, 0, 0)));
  const __m128i reverse_words = _mm_setr_epi8(14, 15, 12, 13, 10, 11, 8, 9, 6, 7, 4, 5, 2, 3, 0, 1);
  bool finite = true;
  alignas(32) float scaled[kMaxBlockK + 8];
  for (int64_t b = 0; b < g.n_blocks; ++b) {
    BlockStats st;
    if ((b + 1) * g.block_k > g.K || !BlockStatsAvx2(g, a, b, out, scaled, &st)) {
      finite = BuildBlockPortable(g, a, b, out) && finite;
      continue;
    }
    const __m256 inv_step = _mm256_set1_ps(st.inv_step);
    for (int64_t k = 0; k < st.k1 - st.k0; k += kQuadK) {
      __m256 e = _mm256_xor_ps(_mm256_broadcast_ss(scaled + k), flip0);
      e = _mm256_add_ps(e, _mm256_xor_ps(_mm256_broadcast_ss(scaled + k + 1), flip1));
      e = _mm256_add_ps(e, _mm256_xor_ps(_mm256_broadcast_ss(scaled + k + 2), flip2));
      e = _mm256_sub_ps(e, _mm256_broadcast_ss(scaled + k + 3));
      // |e| <= max_quad, so e * 127 / max_quad rounds into [-127, 127]: no clamp needed
      const __m256i q32 = _mm256_cvtps_epi32(_mm256_mul_ps(e, inv_step));
      const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q32), _mm256_extracti128_si256(q32, 1));
      const __m128i mirror = _mm_shuffle_epi8(_mm_sub_epi16(_mm_setzero_si128(), q16), reverse_words);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.tables + ((st.k0 + k) / kQuadK) * kTableBytes),
                       _mm_packs_epi16(q16, mirror));
    }
  }
  return finite;
}

void HalfToFloatF16c(const uint16_t* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

void FloatToHalfF16c(const float* src, uint16_t* dst, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

// ---------------------------------------------------------------------------------------
// The int8 path (prefill; see Int8Rows): each activation row quantised to int8 per block,
// each tile's weights decoded once per block to one byte per weight and multiplied with every
// row by vpmaddubsw (32 multiply-adds per instruction at any bit width).  Per 256
// multiply-adds and row that is 8 vpmaddubsw and an eighth of a shuffle for the activations
// (a table lookup needs 20 shuffle-pipe instructions at 4 bits, 17 at 3, 10 at 2); the decode
// (5 instructions per plane and 32 weights) is paid once per tile and block for all rows.

// Rows from which the int8 path is the default, per bit width.  Zen 3, 1 thread, int8 /
// lookups (benchmarks/2026-12-06-zen3/, three runs): 4096x4096 at 4 bits M=16 1.14-1.18x,
// M=32 0.88-0.91x, M=128 0.68-0.81x; at 3 bits M=16 0.68-1.06x, M=32 0.83-0.93x, M=128
// 0.65-0.71x; SmolLM2's group-32 layers at M=32 0.82-0.98x, M=128 0.72-0.78x.  At 1 and 2
// bits the lookups do less than the multiplies (1.1-1.5x at M=128), so those widths keep them.
constexpr int64_t kInt8MinRowsAvx2[4] = {0, 0, 32, 32};

// Int32 lanes [0, n) set (n clamped to 0..8), for masked loads.
inline __m256i FirstLanes8(int64_t n) {
  const int32_t count = int32_t(std::max<int64_t>(0, std::min<int64_t>(8, n)));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline int32_t HorizontalSumInt(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1)));
}

// One row to int8, block by block (see Int8Row): the float operations of
// reference.quantize_int8 in its order, v * 2^-E (exact), times 127 / max, rounded to nearest
// even; NaN, infinities and the padding beyond K count as 0.
bool QuantizeRowAvx2(const Geometry& g, const float* a, const Int8Row& out) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 float_max = _mm256_set1_ps(FLT_MAX);
  const __m256i limit = _mm256_set1_epi32(127), negative_limit = _mm256_set1_epi32(-127);
  bool finite = true;
  for (int64_t b = 0; b < g.n_blocks; ++b) {
    const int64_t k0 = b * g.block_k;
    const int64_t k1 = std::min(k0 + g.block_k, g.K_pad);  // the block in the padded row (whole 8s)
    const int64_t k_end = std::min(k1, g.K);              // its real activations
    __m256 max_abs = _mm256_setzero_ps();
    for (int64_t k = k0; k < k_end; k += 8) {
      const __m256i in = FirstLanes8(k_end - k);
      const __m256 v = _mm256_and_ps(_mm256_maskload_ps(a + k, in), abs_mask);
      const __m256 ok = _mm256_and_ps(_mm256_cmp_ps(v, float_max, _CMP_LE_OQ), _mm256_castsi256_ps(in));  // false for NaN, inf
      finite = finite && _mm256_movemask_ps(ok) == _mm256_movemask_ps(_mm256_castsi256_ps(in));
      max_abs = _mm256_max_ps(max_abs, _mm256_and_ps(v, ok));
    }
    const float largest = HorizontalMax(max_abs);
    const int exponent = BlockExponent(largest);
    const float max_scaled = largest * PowerOfTwo(-exponent);  // exact, below 4 (E is clamped)
    const float inv_step = max_scaled > 0.f ? 127.f / max_scaled : 0.f;
    out.step[b] = max_scaled / 127.f;
    out.block_exponent[b] = exponent;
    const __m256 scale = _mm256_set1_ps(PowerOfTwo(-exponent));
    const __m256 inv = _mm256_set1_ps(inv_step);
    __m256i sum = _mm256_setzero_si256();
    __m256 exact_sum = _mm256_setzero_ps();
    for (int64_t k = k0; k < k1; k += 8) {
      const __m256i in = FirstLanes8(k_end - k);
      const __m256 v = _mm256_maskload_ps(a + k, in);
      const __m256 ok = _mm256_and_ps(_mm256_cmp_ps(_mm256_and_ps(v, abs_mask), float_max, _CMP_LE_OQ),
                                      _mm256_castsi256_ps(in));
      const __m256 scaled = _mm256_and_ps(_mm256_mul_ps(v, scale), ok);  // exact
      exact_sum = _mm256_add_ps(exact_sum, scaled);
      // |x| <= 127 up to one rounding, so the clamp only guards that rounding
      __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(scaled, inv));
      q = _mm256_max_epi32(_mm256_min_epi32(q, limit), negative_limit);
      sum = _mm256_add_epi32(sum, q);
      const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out.values + k), _mm_packs_epi16(q16, q16));
    }
    out.value_sum[b] = HorizontalSumInt(sum);
    out.block_sum[b] = HorizontalSum(exact_sum);
  }
  return finite;
}

// A step decoded (its bytes are the same in layouts 1 and 2): [quad][o][32 bytes], vector o of a quad holding channels
// 8o..8o+7, one dword of q (k = 0..3 of the quad) per channel, so that one broadcast dword of
// activations multiplies it.  The decode works on vectors e of channels 4e..4e+3 with the
// step's first quad in the low 128-bit lane and its second in the high one, as the layout
// keeps them (every shuffle stays in its lane), and swaps lanes once at the end.
constexpr int kDecodedQuadBytes = kTileN * kQuadK;           // 128
constexpr int kDecodedStepBytes = 2 * kDecodedQuadBytes;      // 256

// How plane p of vector e is decoded: its four channels' nibbles lie in one chunk and nibble
// half; vpshufb with `pattern` copies channel d's byte into the four bytes of dword d, and a
// bit test per byte (bit t for byte t) gives that plane's bit of k = t.
struct DecodePlanAvx2 {
  alignas(32) uint8_t pattern[4][8][32];  // [plane][e][byte]
  uint8_t chunk[4][8];
  uint8_t high[4][8];
};

DecodePlanAvx2 MakeDecodePlanAvx2(int bits) {
  DecodePlanAvx2 plan{};
  const NibbleMap where = NibblePositions(bits);
  for (int p = 0; p < bits; ++p)
    for (int e = 0; e < 8; ++e)
      for (int d = 0; d < 4; ++d) {
        const NibblePosition pos = where[size_t(p) * kTileN + 4 * e + d];  // (the same chunk and half for all d)
        plan.chunk[p][e] = uint8_t(pos.byte / 32);
        plan.high[p][e] = pos.high ? 1 : 0;
        for (int t = 0; t < 4; ++t)
          for (int lane = 0; lane < 2; ++lane) plan.pattern[p][e][16 * lane + 4 * d + t] = uint8_t(pos.byte % 16);
      }
  return plan;
}

const DecodePlanAvx2& PlanForAvx2(int bits) {
  static const DecodePlanAvx2 plans[4] = {MakeDecodePlanAvx2(1), MakeDecodePlanAvx2(2), MakeDecodePlanAvx2(3),
                                          MakeDecodePlanAvx2(4)};
  return plans[bits - 1];
}

// The n consecutive steps at `steps` to `out` (kDecodedStepBytes per step).
template <int kBits>
void DecodeStepsAvx2(const DecodePlanAvx2& plan, const uint8_t* steps, int64_t n, uint8_t* out) {
  const __m256i low_nibble = _mm256_set1_epi8(0x0f);
  const __m256i bit_of_k = _mm256_set1_epi32(0x08040201);  // byte t of every dword: 1 << t
  for (int64_t s = 0; s < n; ++s) {
    const uint8_t* step = steps + s * kTileN * kBits;
    __m256i nibbles[kBits][2];  // [chunk][high]
    for (int c = 0; c < kBits; ++c) {
      const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(step + 32 * c));
      nibbles[c][0] = _mm256_and_si256(v, low_nibble);
      nibbles[c][1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low_nibble);
    }
    uint8_t* dst = out + s * kDecodedStepBytes;
    __m256i q[8];
    for (int e = 0; e < 8; ++e) {
      q[e] = _mm256_setzero_si256();
      for (int p = 0; p < kBits; ++p) {
        const __m256i x = _mm256_shuffle_epi8(nibbles[plan.chunk[p][e]][plan.high[p][e]],
                                              _mm256_load_si256(reinterpret_cast<const __m256i*>(plan.pattern[p][e])));
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(x, bit_of_k), bit_of_k);
        q[e] = _mm256_add_epi8(q[e], _mm256_and_si256(set, _mm256_set1_epi8(char(1 << p))));
      }
    }
    for (int o = 0; o < 4; ++o) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 32 * o), _mm256_permute2x128_si256(q[2 * o], q[2 * o + 1], 0x20));
      _mm256_store_si256(reinterpret_cast<__m256i*>(dst + kDecodedQuadBytes + 32 * o),
                         _mm256_permute2x128_si256(q[2 * o], q[2 * o + 1], 0x31));
    }
  }
}

// vpmaddubsw multiplies unsigned bytes by signed ones: the decoded q (0..2^bits - 1) are the
// unsigned side and the activations the signed one, so P = sum_k q values needs no correction
// and a pair sum is at most 2 * 127 * (2^bits - 1) (no saturation).  (The other way round, a
// + 128 against q, as the eighth session's version had it so that q could be the memory
// operand, needs P = S - 128 Q and halves the int16 window: Zen 3, 4096x4096, M=128, it took
// 1.00x the lookups' time at 4 bits.)
// Quads an int16 accumulator takes before it might overflow: 8 at 4 bits, 18 at 3, 43 at 2.
template <int kBits>
constexpr int64_t Int8WindowQuads() {
  return 32767 / (2 * 127 * ((1 << kBits) - 1));
}

// Activations k..k+3 of a row in every dword.
inline __m256i BroadcastQuad(const int8_t* values) {
  int32_t four;
  std::memcpy(&four, values, sizeof(four));
  return _mm256_set1_epi32(four);
}

// acc += vpmaddubsw(q unsigned, a signed) in place.  Written as intrinsics over accumulator
// arrays, GCC 12 copied every accumulator between registers around each use and kept one on
// the stack (Zen 3, 4096x4096, M=128: 25-27 ms at every width, a third of the multiply pipes).
TMAC_ALWAYS_INLINE void MultiplyAccumulate(__m256i& acc, __m256i q, __m256i a) {
  __m256i product;
  asm("vpmaddubsw %[a], %[q], %[product]\n\tvpaddw %[product], %[acc], %[acc]"
      : [acc] "+x"(acc), [product] "=&x"(product)
      : [q] "x"(q), [a] "x"(a));
}

// P = sum_k q values of kRows (1 to 4) rows (row r's block at values + r * stride) over a
// decoded block of n_quads quads, the tile's 32 channels: s[r][o] = channels 8o..8o+7 in int32
// (at most 256 k * 15 * 127: no overflow, and exact in fp32).  The block is passed over twice,
// 16 channels at a time, so that 4 rows share every weight load: 2 loads and 4 broadcasts per
// 8 vpmaddubsw, 8 accumulators, 2 weights, an activation and a product in the 16 ymm
// registers.  (Two rows over all 32 channels at once left GCC no register for the weights:
// it loaded each twice, 10 loads per 8 vpmaddubsw.)
template <int kBits, int kRows>
TMAC_ALWAYS_INLINE void RowsOfBlockInt8(const uint8_t* decoded, int64_t n_quads, const int8_t* values, int64_t stride,
                                        __m256i (*s)[4]) {
  static_assert(kRows >= 1 && kRows <= 4, "the accumulators below are named for four rows");
  const __m256i ones = _mm256_set1_epi16(1);
  constexpr int64_t kWindow = Int8WindowQuads<kBits>();
  for (int r = 0; r < kRows; ++r)
    for (int o = 0; o < 4; ++o) s[r][o] = _mm256_setzero_si256();
  for (int half = 0; half < 2; ++half) {
    for (int64_t w0 = 0; w0 < n_quads; w0 += kWindow) {
      const int64_t w1 = std::min(w0 + kWindow, n_quads);
      const __m256i zero = _mm256_setzero_si256();
      __m256i a0_0 = zero, a0_1 = zero, a1_0 = zero, a1_1 = zero, a2_0 = zero, a2_1 = zero, a3_0 = zero, a3_1 = zero;
      for (int64_t j = w0; j < w1; ++j) {
        const uint8_t* d = decoded + j * kDecodedQuadBytes + 64 * half;
        const __m256i q0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(d));
        const __m256i q1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(d + 32));
        const int8_t* x = values + kQuadK * j;
#define TMAC_ROW(r)                                              \
  if constexpr (kRows > r) {                                     \
    const __m256i xr = BroadcastQuad(x + r * stride);            \
    MultiplyAccumulate(a##r##_0, q0, xr);                        \
    MultiplyAccumulate(a##r##_1, q1, xr);                        \
  }
        TMAC_ROW(0) TMAC_ROW(1) TMAC_ROW(2) TMAC_ROW(3)
#undef TMAC_ROW
      }
      const __m256i acc[4][2] = {{a0_0, a0_1}, {a1_0, a1_1}, {a2_0, a2_1}, {a3_0, a3_1}};
      for (int r = 0; r < kRows; ++r)
        for (int i = 0; i < 2; ++i)
          s[r][2 * half + i] = _mm256_add_epi32(s[r][2 * half + i], _mm256_madd_epi16(acc[r][i], ones));
    }
  }
}

// o2' = c' + s'/2 of channels 8o..8o+7 for weights with zero points (s' (2^(bits-1) - z), exact
// in fp32) or offsets (from the stored constant).
template <int kBits>
__m256 CentredOffsetAvx2(const PreparedWeights& w, int64_t at, int o, __m256 scale) {
  if (w.offsets == Offsets::kZeroPoints) {
    const __m256 centre = _mm256_set1_ps(float(1 << (kBits - 1)));
    return _mm256_mul_ps(scale, CentredZeroPoint(&w.zero_points[size_t(at / 2)], o, centre));
  }
  return _mm256_fmadd_ps(scale, _mm256_set1_ps(0.5f), LoadHalf8(&w.constant[at + 8 * o]));
}

// Rows [m, m + kRows) of one block: P by RowsOfBlockInt8, then y' += step * s' * (P - 2^(bits-1)
// value_sum) + o2' * block_sum (see Int8Rows).
template <int kBits, int kRows, bool kSymmetric>
TMAC_ALWAYS_INLINE void RowsInt8(const uint8_t* decoded, int64_t quads, const Int8Rows& act, const int8_t* values,
                                 int64_t m, int64_t b, int64_t n_blocks, const __m256* scale, const __m256* offset,
                                 float* ybuf) {
  __m256i sums[kRows][4];
  RowsOfBlockInt8<kBits, kRows>(decoded, quads, values + m * act.stride, act.stride, sums);
  for (int r = 0; r < kRows; ++r) {
    const int64_t rb = (m + r) * n_blocks + b;
    const __m256i centring = _mm256_set1_epi32(act.value_sum[rb] * (1 << (kBits - 1)));
    const __m256 step = _mm256_set1_ps(act.step[rb]), block_sum = _mm256_set1_ps(act.block_sum[rb]);
    float* y = ybuf + (m + r) * kTileN;
    for (int o = 0; o < 4; ++o) {
      const __m256i centred = _mm256_sub_epi32(sums[r][o], centring);
      __m256 yo = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(centred), step), scale[o], _mm256_load_ps(y + 8 * o));
      if (!kSymmetric) yo = _mm256_fmadd_ps(offset[o], block_sum, yo);
      _mm256_store_ps(y + 8 * o, yo);
    }
  }
}

template <int kBits, bool kSymmetric>
void GemmTilesInt8Avx2(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin, int64_t tile_end,
                       const OutputRows& out) {
  const Geometry& g = w.geo;
  const DecodePlanAvx2& plan = PlanForAvx2(kBits);
  alignas(32) uint8_t decoded[kMaxBlockK / kStepK * kDecodedStepBytes];  // one block of a tile: <= 8 KB
  thread_local AlignedScratch scratch;
  float* ybuf = scratch.Get(size_t(act.rows) * kTileN);  // y' of every row for one tile
  const GroupCursor first_block(g, 0);
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    std::fill(ybuf, ybuf + act.rows * kTileN, 0.f);
    GroupCursor blocks = first_block;
    for (int64_t b = 0; b < g.n_blocks; ++b) {
      const int64_t s0 = b * g.block_steps(), s1 = std::min(s0 + g.block_steps(), g.k_steps);
      DecodeStepsAvx2<kBits>(plan, w.planes + g.step_offset(t, s0), s1 - s0, decoded);
      PrefetchNextBlock(g, w.planes, t, s1, (s1 - s0) * g.step_bytes());
      const int64_t at = blocks.Entry(t) * kTileN;
      __m256 scale[4], offset[4];
      for (int o = 0; o < 4; ++o) {
        scale[o] = LoadHalf8(&w.scale[at + 8 * o]);
        offset[o] = kSymmetric ? _mm256_setzero_ps() : CentredOffsetAvx2<kBits>(w, at, o, scale[o]);
      }
      blocks.NextBlock();
      // y' += step * s' * (P - 2^(bits-1) value_sum) + o2' * block_sum.
      const int8_t* values = act.values + s0 * kStepK;
      const int64_t quads = 2 * (s1 - s0);
      int64_t m = 0;
      for (; m + 4 <= act.rows; m += 4)
        RowsInt8<kBits, 4, kSymmetric>(decoded, quads, act, values, m, b, g.n_blocks, scale, offset, ybuf);
      switch (act.rows - m) {
        case 3: RowsInt8<kBits, 3, kSymmetric>(decoded, quads, act, values, m, b, g.n_blocks, scale, offset, ybuf); break;
        case 2: RowsInt8<kBits, 2, kSymmetric>(decoded, quads, act, values, m, b, g.n_blocks, scale, offset, ybuf); break;
        case 1: RowsInt8<kBits, 1, kSymmetric>(decoded, quads, act, values, m, b, g.n_blocks, scale, offset, ybuf); break;
        default: break;
      }
    }
    for (int64_t m = 0; m < act.rows; ++m) {
      const __m256 y[4] = {_mm256_load_ps(ybuf + m * kTileN), _mm256_load_ps(ybuf + m * kTileN + 8),
                           _mm256_load_ps(ybuf + m * kTileN + 16), _mm256_load_ps(ybuf + m * kTileN + 24)};
      StoreOutputRow(w, out, t, m, act.row_scale[m], y);
    }
  }
}

template <bool kSymmetric>
void GemmTilesInt8BitsAvx2(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin, int64_t tile_end,
                           const OutputRows& out) {
  switch (w.geo.bits) {
    case 1: return GemmTilesInt8Avx2<1, kSymmetric>(w, act, tile_begin, tile_end, out);
    case 2: return GemmTilesInt8Avx2<2, kSymmetric>(w, act, tile_begin, tile_end, out);
    case 3: return GemmTilesInt8Avx2<3, kSymmetric>(w, act, tile_begin, tile_end, out);
    default: return GemmTilesInt8Avx2<4, kSymmetric>(w, act, tile_begin, tile_end, out);
  }
}

void GemmTilesInt8DispatchAvx2(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin, int64_t tile_end,
                               const OutputRows& out) {
  if (w.offsets == Offsets::kSymmetric) return GemmTilesInt8BitsAvx2<true>(w, act, tile_begin, tile_end, out);
  GemmTilesInt8BitsAvx2<false>(w, act, tile_begin, tile_end, out);
}

}  // namespace

const KernelOps& Avx2Kernel() {
  static const KernelOps ops = [] {
    KernelOps o = {BuildTablesAvx2, GemmTilesDispatch, HalfToFloatF16c, FloatToHalfF16c};
    o.quantize_row = QuantizeRowAvx2;
    o.gemm_tiles_int8 = GemmTilesInt8DispatchAvx2;
    std::copy(kInt8MinRowsAvx2, kInt8MinRowsAvx2 + 4, o.int8_min_rows);
    return o;
  }();
  return ops;
}

}  // namespace tmac
