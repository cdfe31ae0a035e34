// Zen 4 pipes for the AVX2 int8 path: vpmaddubsw followed by vpaddw into an accumulator, with
// the weights as a memory or register operand, 6 independent chains.
//   g++ -O2 -mavx2 maddubs_add.cc -o maddubs_add
#include <immintrin.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdint>
alignas(64) static uint8_t dec[4096];
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
#define BODY8(INS) INS(0) INS(1) INS(2) INS(3) INS(4) INS(5) INS(6) INS(7)
int main() {
  const long reps = 20000000;
  double b[4] = {1e9, 1e9, 1e9, 1e9};
  for (int t = 0; t < 5; ++t) {
    __m256i x = _mm256_set1_epi8(5);
    __m256i a0 = x, a1 = x, a2 = x, a3 = x, a4 = x, a5 = x, a6 = x, a7 = x, p0, p1, p2, p3, p4, p5, p6, p7;
    // (0) maddubs with memory operand into fresh registers, 8 adds into accumulators
    double t0 = now();
    for (long r = 0; r < reps; ++r) {
      const uint8_t* d = dec + ((r & 7) << 8);
      asm("vpmaddubsw 0(%[d]), %[x], %[p0]\n\tvpmaddubsw 32(%[d]), %[x], %[p1]\n\tvpmaddubsw 64(%[d]), %[x], %[p2]\n\tvpmaddubsw 96(%[d]), %[x], %[p3]\n\t"
          "vpmaddubsw 128(%[d]), %[x], %[p4]\n\tvpmaddubsw 160(%[d]), %[x], %[p5]\n\t"
          "vpaddw %[p0], %[a0], %[a0]\n\tvpaddw %[p1], %[a1], %[a1]\n\tvpaddw %[p2], %[a2], %[a2]\n\tvpaddw %[p3], %[a3], %[a3]\n\t"
          "vpaddw %[p4], %[a4], %[a4]\n\tvpaddw %[p5], %[a5], %[a5]"
          : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5),
            [p0] "=&x"(p0), [p1] "=&x"(p1), [p2] "=&x"(p2), [p3] "=&x"(p3), [p4] "=&x"(p4), [p5] "=&x"(p5)
          : [x] "x"(x), [d] "r"(d) : "memory");
    }
    b[0] = std::min(b[0], (now() - t0) / (reps * 6.0));
    // (1) register operand maddubs + add
    __m256i w = _mm256_set1_epi8(3);
    t0 = now();
    for (long r = 0; r < reps; ++r) {
      asm("vpmaddubsw %[w], %[x], %[p0]\n\tvpmaddubsw %[w], %[x], %[p1]\n\tvpmaddubsw %[w], %[x], %[p2]\n\tvpmaddubsw %[w], %[x], %[p3]\n\t"
          "vpmaddubsw %[w], %[x], %[p4]\n\tvpmaddubsw %[w], %[x], %[p5]\n\t"
          "vpaddw %[p0], %[a0], %[a0]\n\tvpaddw %[p1], %[a1], %[a1]\n\tvpaddw %[p2], %[a2], %[a2]\n\tvpaddw %[p3], %[a3], %[a3]\n\t"
          "vpaddw %[p4], %[a4], %[a4]\n\tvpaddw %[p5], %[a5], %[a5]"
          : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5),
            [p0] "=&x"(p0), [p1] "=&x"(p1), [p2] "=&x"(p2), [p3] "=&x"(p3), [p4] "=&x"(p4), [p5] "=&x"(p5)
          : [x] "x"(x), [w] "x"(w));
    }
    b[1] = std::min(b[1], (now() - t0) / (reps * 6.0));
    // (2) memory maddubs, no add
    t0 = now();
    for (long r = 0; r < reps; ++r) {
      const uint8_t* d = dec + ((r & 7) << 8);
      asm volatile("vpmaddubsw 0(%[d]), %[x], %[p0]\n\tvpmaddubsw 32(%[d]), %[x], %[p1]\n\tvpmaddubsw 64(%[d]), %[x], %[p2]\n\tvpmaddubsw 96(%[d]), %[x], %[p3]\n\t"
          "vpmaddubsw 128(%[d]), %[x], %[p4]\n\tvpmaddubsw 160(%[d]), %[x], %[p5]"
          : [p0] "=&x"(p0), [p1] "=&x"(p1), [p2] "=&x"(p2), [p3] "=&x"(p3), [p4] "=&x"(p4), [p5] "=&x"(p5)
          : [x] "x"(x), [d] "r"(d) : "memory");
    }
    b[2] = std::min(b[2], (now() - t0) / (reps * 6.0));
    asm volatile("" :: "x"(a0), "x"(a1), "x"(a2), "x"(a3), "x"(a4), "x"(a5), "x"(a6), "x"(a7));
  }
  std::printf("ns per maddubs: memory operand + add %.3f, register + add %.3f, memory, no add %.3f\n", b[0] * 1e9, b[1] * 1e9, b[2] * 1e9);
}
