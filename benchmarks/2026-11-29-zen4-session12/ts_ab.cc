// Streamed one-row GEMVs of ternary weights, two planes (layout 2) against triples (layout 3)
// in one process: copies of each (128 MB in all, beyond the L3), one GEMV each in turn, as
// decoding streams layers; 15 interleaved rounds, medians.  OFF=n places every copy n bytes
// past a 64-byte boundary (ORT's initializers are 64-byte aligned); WARM=1 uses one copy
// (in cache).  Usage: ts_ab K N.  Build from the repo root after
// `KERNEL_CHECK_BUILD=/tmp/kc bash custom_ops/tests/kernel_check.sh native` (objects):
//   src=custom_ops/src; g++ -std=c++17 -O3 -pthread -I$src benchmarks/2026-11-29-zen4-session12/ts_ab.cc
//     $src/lut_gemm.cc $src/kernels/registry.cc $src/kernels/lut_scalar.cc /tmp/kc/lut_avx2.o
//     /tmp/kc/lut_avx512vnni.o /tmp/kc/lut_avx512vnni_triples.o -DTMAC_HAVE_AVX2=1 -o ts_ab
// (one command line)
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <vector>

#include "kernels/registry.h"
#include "kernels/tables.h"
#include "lut_gemm.h"
using namespace tmac;

struct Copies {
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<std::unique_ptr<LutGemm>> gemms;
  size_t bytes = 0;
};

Copies Make(int64_t K, int64_t N, int layout, const KernelOps& ops, std::mt19937& rng, std::vector<float>& scales,
            std::vector<uint8_t>& zero_points) {
  Copies c;
  Geometry g;
  MakeGeometry(K, N, 2, K, &g, layout);
  c.bytes = g.n_tiles * g.tile_bytes();
  const int copies = getenv("WARM") ? 1 : std::max<int>(2, int(128e6 / c.bytes));
  const int offset = getenv("OFF") ? atoi(getenv("OFF")) : 0;
  c.buffers.resize(copies);
  QuantParams q{{scales.data()}, zero_points.data(), {nullptr}};
  for (auto& buffer : c.buffers) {
    buffer.resize(c.bytes + 128);
    uint8_t* base = buffer.data() + ((64 - (uintptr_t(buffer.data()) & 63)) & 63) + offset;
    for (size_t i = 0; i < c.bytes; ++i) base[i] = layout == 3 ? uint8_t(rng() % 27) : uint8_t(rng());
    c.gemms.emplace_back(new LutGemm(g, base, q, scales, {}, ops, 0));
  }
  return c;
}

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const int64_t K = atoll(argv[1]), N = atoll(argv[2]);
  size_t count;
  const KernelOps& ops = Kernels(&count)[0].ops();
  std::mt19937 rng(1);
  std::vector<float> a(K);
  for (auto& v : a) v = std::normal_distribution<float>()(rng);
  std::vector<float> scales(N, 0.01f);
  std::vector<uint8_t> zero_points(N, 1);
  Copies planes = Make(K, N, 2, ops, rng, scales, zero_points), triples = Make(K, N, 3, ops, rng, scales, zero_points);
  std::vector<float> y(N);
  auto serial = [](size_t n, const std::function<void(size_t)>& f) { for (size_t i = 0; i < n; ++i) f(i); };
  auto pass = [&](Copies& c) {
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& gemm : c.gemms) gemm->Run(a.data(), 1, nullptr, y.data(), serial);
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / c.gemms.size();
  };
  std::vector<double> tp, tt;
  for (int round = 0; round < 15; ++round) {
    tp.push_back(pass(planes));
    tt.push_back(pass(triples));
  }
  std::sort(tp.begin(), tp.end());
  std::sort(tt.begin(), tt.end());
  std::printf("K %ld N %ld%s: planes %.3f ms (%.1f GB/s), triples %.3f ms (%.1f GB/s), triples / planes %.2f\n", K, N,
              getenv("WARM") ? " warm" : " streamed", tp[7], planes.bytes / tp[7] / 1e6, tt[7],
              triples.bytes / tt[7] / 1e6, tt[7] / tp[7]);
}
