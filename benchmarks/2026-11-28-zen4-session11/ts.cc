// Streamed one-row GEMVs: copies of a K x N ternary weight (128 MB in all, beyond the L3),
// one GEMV each in turn, as decoding streams layers; ms per GEMV and GB/s.  Usage: ts K N LAYOUT.
// Build as tt.cc.
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <vector>
#include <algorithm>
#include "kernels/registry.h"
#include "kernels/tables.h"
#include "lut_gemm.h"
using namespace tmac;
// streamed: `copies` matrices (> L3 in all), one GEMV each in turn; ms per GEMV
int main(int argc, char** argv) {
  int64_t K = atoll(argv[1]), N = atoll(argv[2]); int layout = atoi(argv[3]);
  size_t count; const KernelEntry* ks = Kernels(&count);
  const KernelOps& ops = ks[0].ops();
  std::mt19937 rng(1);
  std::vector<float> a(K); for (auto& v : a) v = std::normal_distribution<float>()(rng);
  Geometry g; MakeGeometry(K, N, 2, K, &g, layout);
  const size_t bytes = g.n_tiles * g.tile_bytes();
  const int copies = std::max<int>(2, int(128e6 / bytes));
  std::vector<std::vector<uint8_t>> planes(copies);
  std::vector<float> scales(N, 0.01f); std::vector<uint8_t> zp(N, 1);
  QuantParams q{{scales.data()}, zp.data(), {nullptr}};
  std::vector<std::unique_ptr<LutGemm>> gemms;
  for (auto& p : planes) { p.resize(bytes); for (auto& b : p) b = rng(); gemms.emplace_back(new LutGemm(g, p.data(), q, scales, {}, ops, 0)); }
  std::vector<float> y(N);
  auto serial = [](size_t n, const std::function<void(size_t)>& f) { for (size_t i = 0; i < n; ++i) f(i); };
  std::vector<double> t;
  for (int rep = 0; rep < 5; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    for (auto& gm : gemms) gm->Run(a.data(), 1, nullptr, y.data(), serial);
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / copies);
  }
  std::sort(t.begin(), t.end());
  printf("layout %d K %ld N %ld streamed: %.3f ms, %.1f GB/s\n", layout, K, N, t[2], bytes / t[2] / 1e6);
}
