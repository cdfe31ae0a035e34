// Ternary weights at 1.6 bits: five weights per byte (base 3, sign-symmetric: bit 7 the sign,
// bits 0-6 the magnitude index 0..121 of the pattern), looked up in a 128-entry int8 table per
// quintet of activations with AVX-512 VBMI vpermi2b, the sign applied by a masked subtract,
// widened to int16 by two vpmaddubsw.  Against LutGemm's two-plane ternary (layout v1, the
// AVX2 loop) on the same shapes, weights streamed from DRAM layer after layer as decoding
// does.  A bound for a layout that does not exist yet: tables are built once (not per call),
// the epilogue is one int32 widening per 64 quintets, outputs are not scaled.
//   g++ -O3 -std=c++17 -mavx512f -mavx512bw -mavx512vl -mavx512vbmi base3_bound.cc -o base3_bound
//   ./base3_bound K N LAYERS [TILE_CHANNELS=64|128|256]   (a tile shares each quintet table load)
#include <immintrin.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

int main(int argc, char** argv) {
  const int64_t K = atoll(argv[1]), N = atoll(argv[2]), L = atoll(argv[3]);
  const int tile = argc > 4 ? atoi(argv[4]) : 64;
  const int64_t Q = (K + 4) / 5, n_tiles = (N + tile - 1) / tile;
  const size_t bytes = size_t(n_tiles) * Q * tile;  // one byte per 5 weights and channel
  uint8_t* w = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes * L));
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < bytes * L; ++i) {
    const int v = int(rng() % 243);
    w[i] = v >= 121 ? uint8_t(v - 121) : uint8_t(0x80 | (121 - v));
  }
  int8_t* tables = static_cast<int8_t*>(std::aligned_alloc(64, size_t(Q) * 128));  // 64-byte aligned: one line per load
  for (int64_t i = 0; i < Q * 128; ++i) tables[i] = int8_t(int(rng() % 255) - 127);
  std::vector<int32_t> y(size_t(n_tiles) * tile);
  const int64_t kBlockQ = 64;  // quintets per int16 window: at most 64 * 127 per lane
  double best = 1e9;
  for (int pass = 0; pass < 7; ++pass) {
    const double t0 = now();
    for (int64_t l = 0; l < L; ++l) {
      const uint8_t* layer = w + bytes * l;
      for (int64_t t = 0; t < n_tiles; ++t) {
        // every 64-channel vector of the tile looks up the quintet's table loaded once
        constexpr int kMaxH = 4;
        const int hs = tile / 64;
        const uint8_t* p = layer + (t * Q) * tile;
        const __m512i even = _mm512_set1_epi16(0x0001), odd = _mm512_set1_epi16(0x0100);
        __m512i sum[kMaxH][2];
        for (int h = 0; h < kMaxH; ++h) sum[h][0] = sum[h][1] = _mm512_setzero_si512();
        for (int64_t j0 = 0; j0 < Q; j0 += kBlockQ) {
          __m512i acc[kMaxH][2];
          for (int h = 0; h < kMaxH; ++h) acc[h][0] = acc[h][1] = _mm512_setzero_si512();
          const int64_t j1 = std::min(Q, j0 + kBlockQ);
          for (int64_t j = j0; j < j1; ++j) {
            const __m512i lo = _mm512_load_si512(&tables[size_t(j) * 128]);
            const __m512i hi = _mm512_load_si512(&tables[size_t(j) * 128 + 64]);
#pragma GCC unroll 4
            for (int h = 0; h < kMaxH; ++h) {
              if (h >= hs) break;
              _mm_prefetch(reinterpret_cast<const char*>(p + j * tile + 64 * h + 4096), _MM_HINT_T0);
              const __m512i idx = _mm512_loadu_si512(p + j * tile + 64 * h);
              __m512i v = _mm512_permutex2var_epi8(lo, idx, hi);
              v = _mm512_mask_sub_epi8(v, _mm512_movepi8_mask(idx), _mm512_setzero_si512(), v);
              acc[h][0] = _mm512_add_epi16(acc[h][0], _mm512_maddubs_epi16(even, v));
              acc[h][1] = _mm512_add_epi16(acc[h][1], _mm512_maddubs_epi16(odd, v));
            }
          }
          for (int h = 0; h < hs; ++h)
            for (int e = 0; e < 2; ++e) sum[h][e] = _mm512_add_epi32(sum[h][e], _mm512_madd_epi16(acc[h][e], _mm512_set1_epi16(1)));
        }
        for (int h = 0; h < hs; ++h) _mm512_storeu_si512(&y[size_t(t) * tile + 64 * h], _mm512_add_epi32(sum[h][0], sum[h][1]));
      }
    }
    best = std::min(best, now() - t0);
  }
  const double weights = double(K) * N * L;
  std::printf("base-3 1.6-bit K=%lld N=%lld L=%lld tile=%d: %.3f ms per pass, %.1f GB/s of weight bytes, %.1f G weights/s\n",
              (long long)K, (long long)N, (long long)L, tile, best * 1e3, bytes * L / best / 1e9, weights / best / 1e9);
  return int(y[0] & 1) * 0;
}
