// The int8 path's 8-row loop (8 rows x 2 zmm of 16 channels, one 128-k block of decoded
// weights, L1-resident), ns per vpdpbusd: 0, activations as vpdpbusd's embedded broadcast (as
// the kernel); 1, broadcast into registers first; 2, as 0 with one accumulator copied through
// another register around its vpdpbusd (what GCC emits in the kernel's symmetric instances).
//   g++ -O3 -mavx512f -mavx512bw -mavx512vnni vnni_loop.cc -o vnni_loop && ./vnni_loop
#include <immintrin.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <vector>
constexpr int kQuads = 32;  // one 128-k block
alignas(64) static uint8_t w[kQuads * 128];
alignas(64) static int8_t a[8 * 256];
template <int kVariant>
__attribute__((noinline)) int Run(int reps) {
  __m512i a00 = _mm512_setzero_si512(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00, a30 = a00, a31 = a00,
          a40 = a00, a41 = a00, a50 = a00, a51 = a00, a60 = a00, a61 = a00, a70 = a00, a71 = a00;
  const int64_t stride = 256;
  for (int rep = 0; rep < reps; ++rep) {
    for (int j = 0; j < kQuads; ++j) {
      const __m512i w0 = _mm512_load_si512(w + j * 128), w1 = _mm512_load_si512(w + j * 128 + 64);
      const int8_t* row = a + 4 * j;
      if (kVariant != 1) {
#define D(acc, wv, r) asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(wv), "m"(*reinterpret_cast<const int32_t*>(row + r * stride)))
        D(a00, w0, 0); D(a01, w1, 0); D(a10, w0, 1); D(a11, w1, 1); D(a20, w0, 2); D(a21, w1, 2); D(a30, w0, 3); D(a31, w1, 3);
        D(a40, w0, 4); D(a41, w1, 4); D(a50, w0, 5); D(a51, w1, 5); D(a60, w0, 6); D(a61, w1, 6); D(a70, w0, 7);
        if (kVariant == 2) {
          __m512i t;
          asm("vmovdqa64 %1, %0" : "=v"(t) : "v"(a71));
          asm("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(t) : "v"(w1), "m"(*reinterpret_cast<const int32_t*>(row + 7 * stride)));
          asm("vmovdqa64 %1, %0" : "=v"(a71) : "v"(t));
        } else {
          D(a71, w1, 7);
        }
#undef D
      } else {
#define D(acc, wv, x) asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(wv), "v"(x))
#define B(r) const __m512i x##r = _mm512_set1_epi32(*reinterpret_cast<const int32_t*>(row + r * stride))
        B(0); B(1); B(2); B(3); B(4); B(5); B(6); B(7);
        D(a00, w0, x0); D(a01, w1, x0); D(a10, w0, x1); D(a11, w1, x1); D(a20, w0, x2); D(a21, w1, x2); D(a30, w0, x3); D(a31, w1, x3);
        D(a40, w0, x4); D(a41, w1, x4); D(a50, w0, x5); D(a51, w1, x5); D(a60, w0, x6); D(a61, w1, x6); D(a70, w0, x7); D(a71, w1, x7);
#undef D
#undef B
      }
    }
  }
  __m512i s = _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a00, a01), _mm512_add_epi32(a10, a11)),
                               _mm512_add_epi32(_mm512_add_epi32(a20, a21), _mm512_add_epi32(a30, a31)));
  s = _mm512_add_epi32(s, _mm512_add_epi32(_mm512_add_epi32(_mm512_add_epi32(a40, a41), _mm512_add_epi32(a50, a51)),
                                           _mm512_add_epi32(_mm512_add_epi32(a60, a61), _mm512_add_epi32(a70, a71))));
  return _mm512_reduce_add_epi32(s);
}
template <int kVariant>
double Time() {
  const int reps = 300000;
  std::vector<double> ts; int sink = 0;
  for (int r = 0; r < 7; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    sink += Run<kVariant>(reps);
    ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ts.begin(), ts.end());
  const double ns = ts[3] * 1e9 / (double(reps) * kQuads * 16);
  printf("variant %d: %.4f ns per vpdpbusd (%d)\n", kVariant, ns, sink & 1);
  return ns;
}
int main() {
  for (auto& b : w) b = rand() & 3;
  for (auto& b : a) b = rand();
  for (int i = 0; i < 3; ++i) { Time<0>(); Time<1>(); Time<2>(); }
}
