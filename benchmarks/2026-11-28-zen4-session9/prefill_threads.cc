// decode_stream.cc (seventh session) for M rows and 1-2 threads: L matrices (K x N, `bits`,
// group G) one after another through one kernel, best of PASSES passes.  ROWS=M (default 1),
// INT8=rows from which the int8 path runs (LutGemm's int8_min_rows; 0 = never), THREADS=2
// adds a spinning helper thread that takes chunks from a counter (prints each thread's busy
// time).  Prints ms per pass (the GB/s column is only meaningful for M=1).
//
//   S=custom_ops/src; F="-std=c++17 -O3 -pthread -DTMAC_HAVE_AVX2=1 -I$S"
//   g++ $F -c -mavx2 -mfma -mf16c $S/kernels/lut_avx2.cc -o lut_avx2.o
//   g++ $F -c -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi -mgfni \
//       $S/kernels/lut_avx512vnni.cc -o lut_avx512vnni.o
//   g++ $F $S/lut_gemm.cc $S/kernels/registry.cc $S/kernels/lut_scalar.cc lut_avx2.o lut_avx512vnni.o \
//       prefill_threads.cc -o prefill_threads
//   ROWS=128 INT8=4 THREADS=2 ./prefill_threads 4096 4096 2 128 1 x avx512vnni
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <functional>
#include <atomic>
#include <thread>
#include <random>
#include <string>
#include <vector>
#include "kernels/registry.h"
#include "lut_gemm.h"
int main(int argc, char** argv) {
  const int64_t K = atoll(argv[1]), N = atoll(argv[2]);
  const int bits = atoi(argv[3]), G = atoi(argv[4]), L = atoi(argv[5]);
  const bool zp = argc > 6 && std::string(argv[6]) == "zp";
  const char* kname = argc > 7 ? argv[7] : "avx2";
  size_t count = 0;
  const tmac::KernelEntry* kernels = tmac::Kernels(&count);
  const tmac::KernelOps* ops = nullptr;
  for (size_t i = 0; i < count; ++i) if (std::string(kernels[i].name) == kname) ops = &kernels[i].ops();
  tmac::Geometry geo;
  tmac::MakeGeometry(K, N, bits, G, &geo);
  const size_t plane_bytes = size_t(geo.n_tiles * geo.tile_bytes());
  // one big allocation, like ORT's initializers of a loaded model
  uint8_t* planes = static_cast<uint8_t*>(std::aligned_alloc(4096, plane_bytes * L));
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < plane_bytes * L; i += 8) { uint64_t r = rng(); std::memcpy(planes + i, &r, 8); }
  std::vector<float> scales(size_t(N * geo.n_groups), 0.01f), offsets;
  std::vector<uint8_t> zps(size_t(N * geo.n_groups));
  for (auto& z : zps) z = uint8_t(rng() % (1u << bits));
  std::vector<std::unique_ptr<tmac::LutGemm>> layers;
  for (int l = 0; l < L; ++l) {
    tmac::QuantParams quant{{scales.data()}, zp ? zps.data() : nullptr, {nullptr}};
    layers.emplace_back(new tmac::LutGemm(geo, planes + plane_bytes * l, quant, scales, offsets, *ops, getenv("INT8") ? atoll(getenv("INT8")) : 0));
  }
  const int64_t M = getenv("ROWS") ? atoll(getenv("ROWS")) : 1;
  std::vector<float> a(static_cast<size_t>(K * M)), y(static_cast<size_t>(N * M));
  for (auto& v : a) v = float(int(rng() % 2001) - 1000) / 1000.f;
  // THREADS=2: a second thread spins on a job slot (as ORT's pool spins), takes chunks from a counter.
  const int threads = getenv("THREADS") ? atoi(getenv("THREADS")) : 1;
  std::atomic<const std::function<void(size_t)>*> job{nullptr};
  std::atomic<size_t> next{0}, done{0}, total{0};
  std::atomic<bool> stop{false};
  std::atomic<int> active{0};
  std::atomic<size_t> helper_items{0}; std::atomic<long> helper_ns{0}, main_ns{0};
  auto work = [&](const std::function<void(size_t)>* body) {
    for (size_t i; (i = next.fetch_add(1)) < total.load();) { auto q0 = std::chrono::steady_clock::now(); (*body)(i); main_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - q0).count(); done.fetch_add(1); }
  };
  std::thread helper;
  if (threads > 1) helper = std::thread([&] { while (!stop.load()) { active.fetch_add(1); auto* b = job.load(); if (b) { for (size_t i; (i = next.fetch_add(1)) < total.load();) { auto q0 = std::chrono::steady_clock::now(); (*b)(i); helper_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - q0).count(); done.fetch_add(1); helper_items.fetch_add(1); } } active.fetch_sub(1); } });
  auto serial = [&](size_t c, const std::function<void(size_t)>& body) {
    if (threads == 1) { for (size_t i = 0; i < c; ++i) body(i); return; }
    done = 0; next = 0; total = c; job = &body;
    work(&body);
    while (done.load() < c) {}
    job = nullptr;
    while (active.load() > 0) {}  // the body lives until the helper has left it
  };
  const double bytes = double(plane_bytes + N * geo.n_groups * (2 + (zp ? 0.5 : 0))) * L;
  double best = 1e9;
  const int passes = getenv("PASSES") ? atoi(getenv("PASSES")) : 7;
  for (int pass = 0; pass < passes; ++pass) {
    auto t0 = std::chrono::steady_clock::now();
    for (auto& layer : layers) layer->Run(a.data(), M, nullptr, y.data(), serial);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  stop = true; if (helper.joinable()) helper.join();
  if (threads > 1) std::fprintf(stderr, "helper did %zu items, busy %.1f ms; main busy %.1f ms\n", helper_items.load(), helper_ns.load()/1e6, main_ns.load()/1e6);
  std::printf("%s K=%lld N=%lld bits=%d g=%d L=%d%s: %.4f ms per pass, %.1f GB/s\n", kname, (long long)K, (long long)N,
              bits, G, L, zp ? " zp" : "", best * 1e3, bytes / best / 1e9);
}
