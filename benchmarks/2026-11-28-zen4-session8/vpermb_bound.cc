// Compute bound of two lookup loops, data in L1 (no memory stalls):
//  (v1)   the AVX2 loop of layout v1: per 32-byte chunk (64 weights at 4 bits) a shift, two
//         ands, two vpshufb over 4-activation tables, two vpmaddubsw (planes 2p, 2p+1), two adds
//  (vbmi) a 6-activation layout: one index per byte, 16 channels x 4 planes per 64 bytes
//         (96 weights at 4 bits), one vpermb over the sextet's 64-entry table and one vpdpbusd
//         with plane weights (1, 2, 4, 8) into int32; at 2 bits 32 channels x 2 planes per 64
//         bytes (192 weights) and vpmaddubsw with (1, 2) plus vpaddw instead
//   g++ -O2 -mavx2 -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi vpermb_bound.cc
#include <immintrin.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstring>
alignas(64) static uint8_t idx[16384];
alignas(64) static int8_t tab[64 * 64];
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main() {
  for (int i = 0; i < 16384; ++i) idx[i] = uint8_t(i * 37 + 11);
  for (int i = 0; i < 4096; ++i) tab[i] = int8_t(i * 13 - 50);
  const int reps = 20000;
  // v1: 16 KB of chunks = 512 chunks per pass
  double best_v1 = 1e9, best_vb = 1e9;
  for (int trial = 0; trial < 7; ++trial) {
    __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
    const __m256i lowmask = _mm256_set1_epi8(15), w = _mm256_set1_epi16(0x0201);
    double t0 = now();
    for (int r = 0; r < reps; ++r) {
      for (int c = 0; c < 512; c += 2) {
        const __m256i table = _mm256_load_si256(reinterpret_cast<const __m256i*>(tab + (c & 127) * 32));
        for (int u = 0; u < 2; ++u) {
          const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx + (c + u) * 32));
          const __m256i lo = _mm256_and_si256(v, lowmask), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), lowmask);
          acc[2 * u] = _mm256_add_epi16(acc[2 * u], _mm256_maddubs_epi16(w, _mm256_shuffle_epi8(table, lo)));
          acc[2 * u + 1] = _mm256_add_epi16(acc[2 * u + 1], _mm256_maddubs_epi16(w, _mm256_shuffle_epi8(table, hi)));
        }
      }
      asm volatile("" : "+x"(acc[0]), "+x"(acc[1]), "+x"(acc[2]), "+x"(acc[3]));
    }
    best_v1 = std::min(best_v1, (now() - t0) / (double(reps) * 512 * 64));  // s per 4-bit weight
    __m512i a[8]; for (auto& x : a) x = _mm512_setzero_si512();
    const __m512i pw = _mm512_set1_epi32(0x08040201);
    t0 = now();
    for (int r = 0; r < reps; ++r) {
      for (int c = 0; c < 256; c += 8) {  // 16 KB = 256 vectors of 64 indices
        const __m512i table = _mm512_load_si512(tab + (c & 63) * 64);
        for (int u = 0; u < 8; ++u) {
          const __m512i v = _mm512_load_si512(idx + (c + u) * 64);
          a[u] = _mm512_dpbusd_epi32(a[u], pw, _mm512_permutexvar_epi8(v, table));
        }
      }
      asm volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]), "+v"(a[6]), "+v"(a[7]));
    }
    best_vb = std::min(best_vb, (now() - t0) / (double(reps) * 256 * 96));
  }
  double best_v2 = 1e9;
  for (int trial = 0; trial < 7; ++trial) {
    __m512i a[8]; for (auto& x : a) x = _mm512_setzero_si512();
    const __m512i pw = _mm512_set1_epi16(0x0201);
    double t0 = now();
    for (int r = 0; r < reps; ++r) {
      for (int c = 0; c < 256; c += 8) {
        const __m512i table = _mm512_load_si512(tab + (c & 63) * 64);
        for (int u = 0; u < 8; ++u) {
          const __m512i v = _mm512_load_si512(idx + (c + u) * 64);
          a[u] = _mm512_add_epi16(a[u], _mm512_maddubs_epi16(pw, _mm512_permutexvar_epi8(v, table)));
        }
      }
      asm volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]), "+v"(a[6]), "+v"(a[7]));
    }
    best_v2 = std::min(best_v2, (now() - t0) / (double(reps) * 256 * 192));
  }
  std::printf("2-bit weights per ns: v1 AVX2 loop %.1f (the same chunk loop, 128 weights per chunk), 6-activation vpermb+vpmaddubsw %.1f (%.2fx)\n",
              2e-9 / best_v1, 1e-9 / best_v2, best_v1 / 2 / best_v2);
  std::printf("4-bit weights per ns, L1-resident, 1 thread: v1 AVX2 loop %.1f, 6-activation vpermb+vpdpbusd %.1f (%.2fx)\n",
              1e-9 / best_v1, 1e-9 / best_vb, best_v1 / best_vb);
  std::printf("bytes per weight bit: v1 0.125, vpermb layout %.3f\n", 8.0 / 6.0 / 8);
}
