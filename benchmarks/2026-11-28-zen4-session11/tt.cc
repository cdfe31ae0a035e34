// One-row GEMV through tmac::LutGemm (no ORT), 4096x4096 ternary, layouts 2 and 3 with the
// registry's best kernel, and the table builder alone; us per call.  Build from the repo root
// after `KERNEL_CHECK_BUILD=/tmp/kc bash custom_ops/tests/kernel_check.sh native` (objects):
//   src=custom_ops/src; g++ -std=c++17 -O3 -pthread -I$src tt.cc $src/lut_gemm.cc \
//     $src/kernels/registry.cc $src/kernels/lut_scalar.cc /tmp/kc/lut_avx2.o /tmp/kc/lut_avx512vnni.o \
//     /tmp/kc/lut_avx512vnni_triples.o -DTMAC_HAVE_AVX2=1 -o tt
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>
#include "kernels/registry.h"
#include "kernels/tables.h"
#include "lut_gemm.h"
using namespace tmac;
int main(int argc, char** argv) {
  int64_t K = 4096, N = 4096;
  if (argc > 2) { K = atoll(argv[1]); N = atoll(argv[2]); }
  size_t count; const KernelEntry* ks = Kernels(&count);
  const KernelOps& ops = ks[0].ops();
  std::mt19937 rng(1);
  std::vector<float> a(K); for (auto& v : a) v = std::normal_distribution<float>()(rng);
  for (int layout : {2, 3}) {
    Geometry g; MakeGeometry(K, N, 2, K, &g, layout);
    std::vector<uint8_t> planes(g.n_tiles * g.tile_bytes()); for (auto& b : planes) b = rng();
    std::vector<float> scales(N, 0.01f); std::vector<uint8_t> zp(N, 1);
    QuantParams q{{scales.data()}, zp.data(), {nullptr}};
    LutGemm gemm(g, planes.data(), q, scales, {}, ops, 0);
    std::vector<float> y(N);
    auto serial = [](size_t n, const std::function<void(size_t)>& f) { for (size_t i = 0; i < n; ++i) f(i); };
    std::vector<int8_t> t(g.k_steps * g.table_step_bytes()); std::vector<float> hs(g.n_blocks), bs(g.n_blocks); std::vector<int32_t> e(g.n_blocks);
    for (int rep = 0; rep < 3; ++rep) {
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 200; ++i) gemm.Run(a.data(), 1, nullptr, y.data(), serial);
      auto t1 = std::chrono::steady_clock::now();
      for (int i = 0; i < 200; ++i) (layout == 3 ? ops.build_triple_tables : ops.build_tables)(g, a.data(), {t.data(), hs.data(), bs.data(), e.data()});
      auto t2 = std::chrono::steady_clock::now();
      printf("layout %d: run %.1f us, tables %.1f us\n", layout, std::chrono::duration<double, std::micro>(t1 - t0).count() / 200,
             std::chrono::duration<double, std::micro>(t2 - t1).count() / 200);
    }
  }
}
