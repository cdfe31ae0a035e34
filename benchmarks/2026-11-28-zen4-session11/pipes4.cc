// The same loop for one tile, or two tiles sharing each step's table loads, weights from L2
// (span 32) or L3 (span 1000); cycles per tile and step (Zen 4: 7.6-7.8 against 6.4-7.1).
// Build: g++ -O2 -mavx512f -mavx512bw -mavx512vbmi -mavx512vnni pipes4.cc -o pipes4
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <initializer_list>
alignas(64) uint8_t data[1 << 24];
alignas(64) int8_t tabs[1 << 16];
const __m512i spread0 = _mm512_set_epi8(0,0,0,39,38,37,36,35, 0,0,0,34,33,32,31,30, 0,0,0,29,28,27,26,25, 0,0,0,24,23,22,21,20,
                                       0,0,0,19,18,17,16,15, 0,0,0,14,13,12,11,10, 0,0,0,9,8,7,6,5, 0,0,0,4,3,2,1,0);
#define IDX(raw, sp) _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(shifts, _mm512_permutexvar_epi8(sp, raw)), low5, jpat, 0xEA)
template <int kTiles>
double Run(int span) {
  const __m512i spread1 = _mm512_add_epi8(spread0, _mm512_set1_epi8(24));
  const __m512i shifts = _mm512_set1_epi64(0x231E19140F0A0500LL);
  const __m512i jpat = _mm512_set1_epi32(0x60402000), low5 = _mm512_set1_epi8(0x1f);
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  const int steps = 44;
  const int iters = 20000 / kTiles;
  auto start = std::chrono::steady_clock::now();
  for (int it = 0; it < iters; ++it) {
    const uint8_t* p = data + (it % span) * 80 * steps * kTiles;
    const uint8_t* q = p + 80 * steps;
    for (int s = 0; s < steps; s += 2) {
      __m512i t0 = _mm512_load_si512(tabs + s * 128), t1 = _mm512_load_si512(tabs + s * 128 + 64);
      a0 = _mm512_dpbusd_epi32(a0, ones, _mm512_permutex2var_epi8(t0, IDX(_mm512_loadu_si512(p + 80 * s), spread0), t1));
      a1 = _mm512_dpbusd_epi32(a1, ones, _mm512_permutex2var_epi8(t0, IDX(_mm512_loadu_si512(p + 80 * s + 16), spread1), t1));
      if (kTiles == 2) {
        b0 = _mm512_dpbusd_epi32(b0, ones, _mm512_permutex2var_epi8(t0, IDX(_mm512_loadu_si512(q + 80 * s), spread0), t1));
        b1 = _mm512_dpbusd_epi32(b1, ones, _mm512_permutex2var_epi8(t0, IDX(_mm512_loadu_si512(q + 80 * s + 16), spread1), t1));
      }
      t0 = _mm512_load_si512(tabs + s * 128 + 128), t1 = _mm512_load_si512(tabs + s * 128 + 192);
      a2 = _mm512_dpbusd_epi32(a2, ones, _mm512_permutex2var_epi8(t0, IDX(_mm512_loadu_si512(p + 80 * s + 80), spread0), t1));
      a3 = _mm512_dpbusd_epi32(a3, ones, _mm512_permutex2var_epi8(t0, IDX(_mm512_loadu_si512(p + 80 * s + 96), spread1), t1));
      if (kTiles == 2) {
        b2 = _mm512_dpbusd_epi32(b2, ones, _mm512_permutex2var_epi8(t0, IDX(_mm512_loadu_si512(q + 80 * s + 80), spread0), t1));
        b3 = _mm512_dpbusd_epi32(b3, ones, _mm512_permutex2var_epi8(t0, IDX(_mm512_loadu_si512(q + 80 * s + 96), spread1), t1));
      }
    }
  }
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  __m512i sum = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a0, a1), _mm512_add_epi32(a2, a3)), _mm512_add_epi32(_mm512_add_epi32(b0, b1), _mm512_add_epi32(b2, b3)));
  if (_mm512_reduce_add_epi32(sum) == 42) printf("x");
  return ns / iters / steps / kTiles * 3.67;
}
int main() {
  for (int i = 0; i < (1 << 24); ++i) data[i] = uint8_t(i * 37 + 11);
  for (int span : {32, 1000})
    for (int rep = 0; rep < 3; ++rep) printf("span %d: cycles per tile-step: 1 tile %.2f | 2 tiles %.2f\n", span, Run<1>(span), Run<2>(span));
}
