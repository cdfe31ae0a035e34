// Throughput of layout 3's lookup sequence (vpermb, vpmultishiftqb, vpternlogd, vpermt2b,
// vpdpbusd) per 64 lookups, eight independent streams, tables in registers (Zen 4: 3.2-3.4
// cycles).  Build: g++ -O2 -mavx512f -mavx512bw -mavx512vbmi -mavx512vnni pipes.cc -o pipes
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstring>
// Throughput of the ternary-triple lookup sequence per 64 lookups (192 weights), 8 independent streams.
alignas(64) uint8_t data[1 << 16];
int main() {
  for (int i = 0; i < (1 << 16); ++i) data[i] = uint8_t(i * 37 + 11);
  const __m512i spread = _mm512_set_epi8(0,0,0,39,38,37,36,35, 0,0,0,34,33,32,31,30, 0,0,0,29,28,27,26,25, 0,0,0,24,23,22,21,20,
                                         0,0,0,19,18,17,16,15, 0,0,0,14,13,12,11,10, 0,0,0,9,8,7,6,5, 0,0,0,4,3,2,1,0);
  const __m512i shifts = _mm512_set1_epi64(0x231E19140F0A0500LL);
  const __m512i jpat = _mm512_set1_epi32(0x60402000);
  const __m512i t0 = _mm512_loadu_si512(data + 1000), t1 = _mm512_loadu_si512(data + 2000);
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i acc[8];
  for (int i = 0; i < 8; ++i) acc[i] = _mm512_setzero_si512();
  const int iters = 200000;
  for (int rep = 0; rep < 5; ++rep) {
    auto start = std::chrono::steady_clock::now();
    for (int it = 0; it < iters; ++it) {
      const uint8_t* p = data + (it & 511) * 80;
#pragma GCC unroll 8
      for (int s = 0; s < 8; ++s) {
        __m512i raw = _mm512_loadu_si512(p + 40 * s);
        __m512i sp = _mm512_permutexvar_epi8(spread, raw);
        __m512i f = _mm512_multishift_epi64_epi8(shifts, sp);
        __m512i idx = _mm512_ternarylogic_epi32(f, _mm512_set1_epi8(0x1f), jpat, 0xEA);  // (f & m) | j
        __m512i v = _mm512_permutex2var_epi8(t0, idx, t1);
        acc[s] = _mm512_dpbusd_epi32(acc[s], ones, v);
      }
    }
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    printf("per 64 lookups (192 weights): %.3f ns = %.2f cycles at 3.67 GHz -> per 256 weights %.2f cycles\n", ns / iters / 8,
           ns / iters / 8 * 3.67, ns / iters / 8 * 3.67 * 256 / 192);
  }
  int64_t sum = 0;
  for (int i = 0; i < 8; ++i) sum += _mm512_reduce_add_epi32(acc[i]);
  printf("%lld\n", (long long)sum);
}
