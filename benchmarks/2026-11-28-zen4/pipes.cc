// Throughput of the instructions a LUT kernel is made of, 8 independent chains each, on the
// session's CPU (AMD EPYC Zen 4, 2 vCPUs).  Built and run with
//     g++ -O2 -march=icelake-server pipes.cc -o pipes && ./pipes      (output: pipes.txt)
// (GCC 12 has no -march=znver4; icelake-server enables the same AVX-512 subsets).
// Result: every zmm shuffle/multiply-class instruction takes twice its ymm time (Zen 4 runs
// 512-bit operations as two 256-bit halves), vpermb costs what vpshufb costs, and only the
// adds run four per cycle.  See docs/performance.md, "AVX-512 on Zen 4".
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#define REP8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
template <typename F> double run(F f, long N) {
  auto t0 = std::chrono::steady_clock::now(); f();
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / (N * 8.0);
}
#define BENCH(NAME, TYPE, INIT, OP) { \
  TYPE v0=INIT(1),v1=INIT(2),v2=INIT(3),v3=INIT(4),v4=INIT(5),v5=INIT(6),v6=INIT(7),v7=INIT(8); \
  const long N=50000000; \
  double ns = run([&]{ for (long n=0;n<N;++n){ \
    v0=OP(v0); v1=OP(v1); v2=OP(v2); v3=OP(v3); v4=OP(v4); v5=OP(v5); v6=OP(v6); v7=OP(v7); \
    __asm__ volatile("" : "+v"(v0),"+v"(v1),"+v"(v2),"+v"(v3),"+v"(v4),"+v"(v5),"+v"(v6),"+v"(v7)); } }, N); \
  printf("%-28s %.3f ns/op\n", NAME, ns); }
int main() {
  const __m512i t = _mm512_set1_epi8(5), w = _mm512_set1_epi16(0x0201), m = _mm512_set1_epi8(15);
  const __m256i ty = _mm256_set1_epi8(5), wy = _mm256_set1_epi16(0x0201);
#define Z(i) _mm512_set1_epi8(i)
#define Y(i) _mm256_set1_epi8(i)
#define SHUF(x) _mm512_shuffle_epi8(t, x)
#define MADD(x) _mm512_maddubs_epi16(w, x)
#define SM(x) _mm512_maddubs_epi16(w, _mm512_shuffle_epi8(t, x))
#define DP(x) _mm512_dpbusd_epi32(x, w, t)
#define SD(x) _mm512_dpbusd_epi32(x, w, _mm512_shuffle_epi8(t, x))
#define PERMB(x) _mm512_permutexvar_epi8(x, t)
#define SRL(x) _mm512_srli_epi16(x, 1)
#define ADD(x) _mm512_add_epi16(x, t)
#define MS(x) _mm512_multishift_epi64_epi8(x, t)
#define SHUFY(x) _mm256_shuffle_epi8(ty, x)
#define MADDY(x) _mm256_maddubs_epi16(wy, x)
#define DPY(x) _mm256_dpbusd_epi32(x, wy, ty)
#define SRLY(x) _mm256_srli_epi16(x, 1)
#define ADDY(x) _mm256_add_epi16(x, ty)
  BENCH("zmm vpshufb", __m512i, Z, SHUF) BENCH("zmm vpmaddubsw", __m512i, Z, MADD) BENCH("zmm vpshufb+vpmaddubsw (2 ops)", __m512i, Z, SM)
  BENCH("zmm vpdpbusd", __m512i, Z, DP) BENCH("zmm vpshufb+vpdpbusd (2 ops)", __m512i, Z, SD) BENCH("zmm vpermb", __m512i, Z, PERMB)
  BENCH("zmm vpsrlw", __m512i, Z, SRL) BENCH("zmm vpaddw", __m512i, Z, ADD) BENCH("zmm vpmultishiftqb", __m512i, Z, MS)
  BENCH("ymm vpshufb", __m256i, Y, SHUFY) BENCH("ymm vpmaddubsw", __m256i, Y, MADDY) BENCH("ymm vpdpbusd", __m256i, Y, DPY)
  BENCH("ymm vpsrlw", __m256i, Y, SRLY) BENCH("ymm vpaddw", __m256i, Y, ADDY)
}
