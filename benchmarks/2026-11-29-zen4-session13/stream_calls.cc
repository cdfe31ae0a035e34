// One-row GEMVs through tmac::LutGemm without ONNX Runtime, streamed as decoding streams layers:
// copies of one weight (256 MB in all, far beyond the L3), one call each in turn; GB/s of
// weight bytes (planes, fp16 scales, zero-point nibbles) and microseconds per call, medians of
// 9 rounds.  `WARM=1`: one copy (in cache).  What a call costs beyond its bytes shows on small
// matrices (SmolLM2's 576-wide layers).  The copies lie side by side in one anonymous mapping
// on 4 KB pages, as ORT's heap holds embedded initializers; `HUGE=1` advises it onto 2 MB pages
// (MADV_HUGEPAGE) first.
// Usage: stream_calls K N BITS GROUP [ZERO_POINTS(0|1)].  Build from the repo root with the
// kernels compiled as the library compiles them (-O3; the triples' file -O2), one line each:
//   src=custom_ops/src; x="-mavx2 -mfma -mf16c"; v="$x -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi -mgfni"
//   g++ -std=c++17 -O3 -c -I$src $x -DTMAC_HAVE_AVX2=1 $src/kernels/lut_avx2.cc -o /tmp/avx2.o
//   g++ -std=c++17 -O3 -c -I$src $v -DTMAC_HAVE_AVX2=1 $src/kernels/lut_avx512vnni.cc -o /tmp/vnni.o
//   g++ -std=c++17 -O2 -c -I$src $v -DTMAC_HAVE_AVX2=1 $src/kernels/lut_avx512vnni_triples.cc -o /tmp/tri.o
//   g++ -std=c++17 -O3 -pthread -I$src benchmarks/2026-11-29-zen4-session13/stream_calls.cc $src/lut_gemm.cc
//     $src/kernels/registry.cc $src/kernels/lut_scalar.cc /tmp/avx2.o /tmp/vnni.o /tmp/tri.o -DTMAC_HAVE_AVX2=1
//     -o stream_calls
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>
#include <sys/mman.h>

#include "kernels/registry.h"
#include "kernels/tables.h"
#include "lut_gemm.h"
using namespace tmac;

int main(int argc, char** argv) {
  if (argc < 5) return 2;
  const int64_t K = atoll(argv[1]), N = atoll(argv[2]), bits = atoll(argv[3]), group = atoll(argv[4]);
  const bool zero_points = argc > 5 && atoi(argv[5]);
  size_t count;
  const KernelOps& ops = Kernels(&count)[0].ops();
  Geometry g;
  if (const char* why = MakeGeometry(K, N, bits, group, &g)) return std::puts(why), 2;
  const size_t plane_bytes = size_t(g.n_tiles * g.tile_bytes());
  const size_t groups = size_t(g.n_blocks);  // (group <= 256 here: one group per block)
  const size_t bytes = plane_bytes + size_t(g.N_pad) * groups * 2 + (zero_points ? size_t(g.N_pad) * groups / 2 : 0);
  const int copies = getenv("WARM") ? 1 : std::max<int>(2, int(256e6 / bytes));
  std::mt19937 rng(1);
  std::vector<float> scales(size_t(N) * groups);
  for (auto& s : scales) s = 0.01f + 0.001f * float(rng() % 100);
  std::vector<uint8_t> zp(size_t(N) * groups);
  for (auto& z : zp) z = uint8_t(rng() % (1u << bits));
  const size_t stride = (plane_bytes + 4095) / 4096 * 4096;
  const size_t total = stride * copies + (size_t(2) << 20);
  uint8_t* arena = static_cast<uint8_t*>(mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (getenv("HUGE")) madvise(arena, total, MADV_HUGEPAGE);
  std::vector<std::unique_ptr<LutGemm>> gemms;
  for (int c = 0; c < copies; ++c) {
    uint8_t* p = arena + size_t(c) * stride;
    for (size_t i = 0; i < plane_bytes; ++i) p[i] = uint8_t(rng());
    QuantParams q{{scales.data()}, zero_points ? zp.data() : nullptr, {nullptr}};
    gemms.emplace_back(new LutGemm(g, p, q, scales, {}, ops, 0));
  }
  std::vector<float> a(K), y(N);
  for (auto& v : a) v = std::normal_distribution<float>()(rng);
  const ParallelRunner serial = [](size_t n, const std::function<void(size_t)>& f) {
    for (size_t i = 0; i < n; ++i) f(i);
  };
  const int calls = std::max(copies, 2000);
  std::vector<double> times;
  for (int round = 0; round < 10; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < calls; ++c) gemms[size_t(c % copies)]->Run(a.data(), 1, nullptr, y.data(), serial);
    if (round) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / calls);
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  std::printf("%s K=%ld N=%ld bits=%ld group=%ld%s%s: %.2f us a call, %.0f KB, %.1f GB/s\n", Kernels(&count)[0].name, K,
              N, bits, group, zero_points ? " zero points" : "", getenv("WARM") ? " warm" : "", t * 1e6,
              bytes / 1e3, bytes / t / 1e9);
}
