// Throughput of vpmaddubsw and vpshufb (ymm, 8 independent chains) and of the two interleaved.
//   g++ -O2 -mavx2 pipes_maddubs.cc -o pipes_maddubs
#include <immintrin.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }
int main() {
  const long reps = 20000000;
  double b1 = 1e9, b2 = 1e9, b3 = 1e9;
  for (int t = 0; t < 5; ++t) {
    __m256i w = _mm256_set1_epi8(3), x = _mm256_set1_epi8(5);
    __m256i a0 = w, a1 = w, a2 = w, a3 = w, a4 = w, a5 = w, a6 = w, a7 = w;
    double t0 = now();
    for (long r = 0; r < reps; ++r) {
      asm("vpmaddubsw %[x], %[a0], %[a0]\n\tvpmaddubsw %[x], %[a1], %[a1]\n\tvpmaddubsw %[x], %[a2], %[a2]\n\tvpmaddubsw %[x], %[a3], %[a3]\n\t"
          "vpmaddubsw %[x], %[a4], %[a4]\n\tvpmaddubsw %[x], %[a5], %[a5]\n\tvpmaddubsw %[x], %[a6], %[a6]\n\tvpmaddubsw %[x], %[a7], %[a7]"
          : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7) : [x] "x"(x));
    }
    b1 = std::min(b1, (now() - t0) / (reps * 8.0));
    t0 = now();
    for (long r = 0; r < reps; ++r) {
      asm("vpshufb %[x], %[a0], %[a0]\n\tvpshufb %[x], %[a1], %[a1]\n\tvpshufb %[x], %[a2], %[a2]\n\tvpshufb %[x], %[a3], %[a3]\n\t"
          "vpshufb %[x], %[a4], %[a4]\n\tvpshufb %[x], %[a5], %[a5]\n\tvpshufb %[x], %[a6], %[a6]\n\tvpshufb %[x], %[a7], %[a7]"
          : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7) : [x] "x"(x));
    }
    b2 = std::min(b2, (now() - t0) / (reps * 8.0));
    t0 = now();
    for (long r = 0; r < reps; ++r) {
      asm("vpmaddubsw %[x], %[a0], %[a0]\n\tvpshufb %[x], %[a1], %[a1]\n\tvpmaddubsw %[x], %[a2], %[a2]\n\tvpshufb %[x], %[a3], %[a3]\n\t"
          "vpmaddubsw %[x], %[a4], %[a4]\n\tvpshufb %[x], %[a5], %[a5]\n\tvpmaddubsw %[x], %[a6], %[a6]\n\tvpshufb %[x], %[a7], %[a7]"
          : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4), [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7) : [x] "x"(x));
    }
    b3 = std::min(b3, (now() - t0) / (reps * 8.0));
    asm volatile("" :: "x"(a0), "x"(a1), "x"(a2), "x"(a3), "x"(a4), "x"(a5), "x"(a6), "x"(a7));
  }
  std::printf("ns per instruction, 8 chains: vpmaddubsw %.3f, vpshufb %.3f, mixed half/half %.3f\n", b1 * 1e9, b2 * 1e9, b3 * 1e9);
}
