// The AVX2 kernel's 2-bit lookup step (one 32-channel step of 8 activations: two 32-byte pair
// chunks, nibble masks and a shift, four vpshufb, four vpmaddubsw, four adds) and nothing else:
// no table building, no per-block scaling, no output, tables in L1.  Weights from L1 (128 steps,
// 8 KB) and from L3 (65,536 steps, 4 MB: the 4096x4096 2-bit GEMV's planes, beyond the 1 MB L2),
// with the kernel's prefetch 4 KB ahead.  Prints ns per step and what a 4096x4096 GEMV's 65,536
// steps would take at that rate: the floor of any GEMV built on this loop.
//   g++ -O3 -mavx2 lookup_loop_bound.cc -o lookup_loop_bound && ./lookup_loop_bound
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

constexpr int kStepBytes = 64;  // 32 channels x 2 planes x 8 activations / 8

template <bool kPrefetch>
__attribute__((noinline)) int Run(const uint8_t* w, const int8_t* tables, int steps, int reps) {
  const __m256i low_nibble = _mm256_set1_epi8(15), plane_weights = _mm256_set1_epi16(0x0201);
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (int rep = 0; rep < reps; ++rep) {
    for (int s = 0; s < steps; ++s) {
      const uint8_t* step = w + size_t(s) * kStepBytes;
      if (kPrefetch) _mm_prefetch(reinterpret_cast<const char*>(step) + 4096, _MM_HINT_T0);
      const __m256i table = _mm256_load_si256(reinterpret_cast<const __m256i*>(tables + (s & 63) * 32));
      const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(step));
      const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(step + 32));
      const __m256i lo0 = _mm256_and_si256(v0, low_nibble), hi0 = _mm256_and_si256(_mm256_srli_epi16(v0, 4), low_nibble);
      const __m256i lo1 = _mm256_and_si256(v1, low_nibble), hi1 = _mm256_and_si256(_mm256_srli_epi16(v1, 4), low_nibble);
      a0 = _mm256_add_epi16(a0, _mm256_maddubs_epi16(plane_weights, _mm256_shuffle_epi8(table, lo0)));
      a1 = _mm256_add_epi16(a1, _mm256_maddubs_epi16(plane_weights, _mm256_shuffle_epi8(table, hi0)));
      a2 = _mm256_add_epi16(a2, _mm256_maddubs_epi16(plane_weights, _mm256_shuffle_epi8(table, lo1)));
      a3 = _mm256_add_epi16(a3, _mm256_maddubs_epi16(plane_weights, _mm256_shuffle_epi8(table, hi1)));
    }
  }
  return _mm256_extract_epi16(_mm256_add_epi16(_mm256_add_epi16(a0, a1), _mm256_add_epi16(a2, a3)), 0);
}

double NsPerStep(const uint8_t* w, const int8_t* tables, int steps, int reps) {
  std::vector<double> times;
  int sink = 0;
  for (int round = 0; round < 9; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    sink += Run<true>(w, tables, steps, reps);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  if (sink == 12345) std::puts("");
  return times[4] * 1e9 / (double(steps) * reps);
}

int main() {
  constexpr int kL3Steps = 65536;
  std::vector<uint8_t> storage(size_t(kL3Steps) * kStepBytes + 8192 + 64);
  uint8_t* w = storage.data() + ((64 - (uintptr_t(storage.data()) & 63)) & 63);
  alignas(64) static int8_t tables[64 * 32];
  for (size_t i = 0; i < size_t(kL3Steps) * kStepBytes + 8192; ++i) w[i] = uint8_t(std::rand());
  for (auto& t : tables) t = int8_t(std::rand() % 255 - 127);
  for (int run = 0; run < 3; ++run) {
    const double l1 = NsPerStep(w, tables, 128, 100000), l3 = NsPerStep(w, tables, kL3Steps, 200);
    std::printf("ns per step: L1 %.3f, L3 %.3f; a 4096x4096 GEMV (65,536 steps) at least %.1f us (L1), %.1f us (L3)\n",
                l1, l3, 65536 * l1 / 1e3, 65536 * l3 / 1e3);
  }
}
