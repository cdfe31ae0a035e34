// Streams a 1 GiB buffer once per pass with W vector ops of work per 64-byte line, optional
// software prefetch D bytes ahead; reports GB/s.  Question: does this core overlap compute
// with DRAM streaming?  g++ -O3 -mavx2 -mfma stream.cc -o stream && ./stream
#include <immintrin.h>
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <initializer_list>
template <int W>
__attribute__((noinline)) __m256i Pass(const uint8_t* p, size_t n, size_t dist) {
  __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
  const __m256i tbl = _mm256_set1_epi64x(0x0706050403020100LL), m = _mm256_set1_epi8(15), wts = _mm256_set1_epi16(0x0201);
  for (size_t i = 0; i < n; i += 128) {
    if (dist) { _mm_prefetch((const char*)p + i + dist, _MM_HINT_T0); _mm_prefetch((const char*)p + i + dist + 64, _MM_HINT_T0); }
    for (int j = 0; j < 4; ++j) {
      const __m256i v = _mm256_load_si256((const __m256i*)(p + i + 32 * j));
      if (W == 0) { acc0 = _mm256_add_epi8(acc0, v); continue; }
      const __m256i lo = _mm256_and_si256(v, m), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m);
      for (int w = 0; w < W; ++w) {
        const __m256i t = _mm256_set1_epi8(char(w));
        acc1 = _mm256_add_epi16(acc1, _mm256_maddubs_epi16(wts, _mm256_shuffle_epi8(_mm256_xor_si256(tbl, t), lo)));
        acc2 = _mm256_add_epi16(acc2, _mm256_maddubs_epi16(wts, _mm256_shuffle_epi8(_mm256_xor_si256(tbl, t), hi)));
      }
    }
  }
  return _mm256_add_epi16(_mm256_add_epi16(acc0, acc1), _mm256_add_epi16(acc2, acc3));
}
int main(int argc, char** argv) {
  const size_t n = size_t(1) << 30;
  uint8_t* p = (uint8_t*)aligned_alloc(1 << 21, n);
  madvise(p, n, MADV_HUGEPAGE);
  memset(p, 1, n);
  auto run = [&](auto f, const char* name, size_t dist) {
    double best = 1e9;
    for (int r = 0; r < 3; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      __m256i s = f(p, n, dist);
      double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      volatile int sink = _mm256_extract_epi32(s, 0); (void)sink;
      if (t < best) best = t;
    }
    std::printf("%-10s prefetch %5zu B: %5.1f GB/s\n", name, dist, n / best / 1e9);
  };
  // warm-rate reference: a 4 MB slice repeated (L2/L3), same work
  for (size_t d : {size_t(0), size_t(512), size_t(2048), size_t(8192)}) { run(Pass<0>, "W=0", d); }
  for (size_t d : {size_t(0), size_t(512), size_t(2048), size_t(8192)}) { run(Pass<1>, "W=1", d); }
  for (size_t d : {size_t(0), size_t(512), size_t(2048), size_t(8192)}) { run(Pass<2>, "W=2", d); }
  for (size_t d : {size_t(0), size_t(512), size_t(2048), size_t(8192)}) { run(Pass<4>, "W=4", d); }
  // compute-only rate: the same passes over a 2 MB slice many times
  const size_t small = size_t(2) << 20;
  for (int W : {1, 2, 4}) {
    auto t0 = std::chrono::steady_clock::now();
    __m256i s = _mm256_setzero_si256();
    for (int r = 0; r < 512; ++r) s = _mm256_add_epi16(s, W == 1 ? Pass<1>(p + 64 * r, small, 0) : W == 2 ? Pass<2>(p + 64 * r, small, 0) : Pass<4>(p + 64 * r, small, 0));
    double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    volatile int sink = _mm256_extract_epi32(s, 0); (void)sink;
    std::printf("W=%d in cache: %5.1f GB/s\n", W, 512.0 * small / t / 1e9);
  }
}
