// Layout 1 against layout 2, paired in one process: L matrices (K x N, `bits`, group G) are
// streamed one after another as decoding reads them (GEMV, M=1, one thread), alternately as
// layout-1 and as layout-2 weights of the same bytes (the order decides only which q each
// byte means, not the time), for PAIRS pairs of passes in alternating order.  Neighbours on a
// shared machine change the memory bandwidth from second to second; a pair of passes 10-30 ms
// apart sees the same conditions, so the per-pair ratio is the measurement.  THREADS=2 adds a
// helper thread that spins for work, as ORT's pool does by default.
//
//   S=custom_ops/src; F="-std=c++17 -O3 -DTMAC_HAVE_AVX2=1 -I$S"
//   (F also needs -pthread)
//   g++ $F -c -mavx2 -mfma -mf16c $S/kernels/lut_avx2.cc -o lut_avx2.o
//   (F also needs -pthread)
//   g++ $F -c -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi -mgfni \
//       $S/kernels/lut_avx512vnni.cc -o lut_avx512vnni.o
//   g++ $F $S/lut_gemm.cc $S/kernels/registry.cc $S/kernels/lut_scalar.cc lut_avx2.o lut_avx512vnni.o \
//       layout_pairs.cc -o layout_pairs
//   ./layout_pairs 4096 14336 2 32 12 zp 20 [KERNEL]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/registry.h"
#include "lut_gemm.h"

int main(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr, "usage: layout_pairs K N BITS GROUP LAYERS zp|sym PAIRS [KERNEL]\n");
    return 2;
  }
  const int64_t K = atoll(argv[1]), N = atoll(argv[2]);
  const int bits = atoi(argv[3]), G = atoi(argv[4]), L = atoi(argv[5]);
  const bool zp = std::string(argv[6]) == "zp";
  const int pairs = atoi(argv[7]);
  const std::string kname = argc > 8 ? argv[8] : "avx2";
  size_t count = 0;
  const tmac::KernelEntry* kernels = tmac::Kernels(&count);
  const tmac::KernelOps* ops = nullptr;
  for (size_t i = 0; i < count; ++i)
    if (kname == kernels[i].name) ops = &kernels[i].ops();
  if (!ops) return std::fprintf(stderr, "no kernel %s\n", kname.c_str()), 2;
  tmac::Geometry geo[2];
  for (int v = 0; v < 2; ++v) tmac::MakeGeometry(K, N, bits, G, &geo[v], v + 1);
  const size_t plane_bytes = size_t(geo[0].n_tiles * geo[0].tile_bytes());
  uint8_t* planes = static_cast<uint8_t*>(std::aligned_alloc(4096, plane_bytes * L));
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < plane_bytes * L; i += 8) {
    const uint64_t r = rng();
    std::memcpy(planes + i, &r, 8);
  }
  std::vector<float> scales(size_t(N * geo[0].n_groups), 0.01f), offsets;
  std::vector<uint8_t> zps(size_t(N * geo[0].n_groups));
  for (auto& z : zps) z = uint8_t(rng() % (1u << bits));
  std::vector<std::unique_ptr<tmac::LutGemm>> layers[2];
  for (int v = 0; v < 2; ++v)
    for (int l = 0; l < L; ++l) {
      tmac::QuantParams quant{{scales.data()}, zp ? zps.data() : nullptr, {nullptr}};
      layers[v].emplace_back(new tmac::LutGemm(geo[v], planes + plane_bytes * l, quant, scales, offsets, *ops, 0));
    }
  std::vector<float> a(static_cast<size_t>(K)), y(static_cast<size_t>(N));
  for (auto& x : a) x = float(int(rng() % 2001) - 1000) / 1000.f;
  const int threads = getenv("THREADS") ? atoi(getenv("THREADS")) : 1;
  std::atomic<const std::function<void(size_t)>*> job{nullptr};
  std::atomic<size_t> next{0}, done{0}, total{0};
  std::atomic<bool> stop{false};
  std::atomic<int> active{0};  // helpers inside a job: the job's body lives until they leave
  auto work = [&](const std::function<void(size_t)>& body) {
    for (size_t i; (i = next.fetch_add(1)) < total.load();) body(i), done.fetch_add(1);
  };
  std::thread helper;
  if (threads > 1)
    helper = std::thread([&] {
      while (!stop.load()) {
        active.fetch_add(1);
        if (const auto* body = job.load()) work(*body);
        active.fetch_sub(1);
      }
    });
  auto serial = [&](size_t c, const std::function<void(size_t)>& body) {
    if (threads == 1) {
      for (size_t i = 0; i < c; ++i) body(i);
      return;
    }
    done = 0, next = 0, total = c, job = &body;
    work(body);
    while (done.load() < c) {
    }
    job = nullptr;
    while (active.load() > 0) {
    }
  };
  const double bytes = double(plane_bytes + N * geo[0].n_groups * (2 + (zp ? 0.5 : 0))) * L;
  auto pass = [&](int v) {
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& layer : layers[v]) layer->Run(a.data(), 1, nullptr, y.data(), serial);
    return bytes / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 1e9;
  };
  pass(0), pass(1);
  std::vector<double> gbs[2], ratio;
  for (int p = 0; p < pairs; ++p) {
    double r[2];
    const int first = p % 2;
    r[first] = pass(first);
    r[1 - first] = pass(1 - first);
    gbs[0].push_back(r[0]), gbs[1].push_back(r[1]), ratio.push_back(r[1] / r[0]);
  }
  auto quantile = [](std::vector<double> v, double f) {
    std::sort(v.begin(), v.end());
    return v[size_t(f * double(v.size() - 1) + 0.5)];
  };
  stop = true;
  if (helper.joinable()) helper.join();
  std::printf("%d thread(s) %s K=%lld N=%lld bits=%d g=%d L=%d %s: layout 2 %.1f GB/s, layout 1 %.1f GB/s (medians); "
              "per-pair ratio median %.3f, quartiles %.3f-%.3f (%d pairs)\n",
              threads, kname.c_str(), (long long)K, (long long)N, bits, G, L, zp ? "zp" : "sym", quantile(gbs[1], 0.5),
              quantile(gbs[0], 0.5), quantile(ratio, 0.5), quantile(ratio, 0.25), quantile(ratio, 0.75), pairs);
}
