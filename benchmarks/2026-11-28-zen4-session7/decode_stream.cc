// Decode-like streaming: L matrices (K x N, `bits`, group G) one after another, each once per
// pass (weights far beyond L3 for L=12 of 4096x14336), GEMV M=1 through one kernel, serially,
// best of 7 passes.  Prints GB/s of planes + fp16 scales (+ nibble zero points).
//
//   S=custom_ops/src
//   g++ -std=c++17 -O2 -c -mavx2 -mfma -mf16c -DTMAC_HAVE_AVX2=1 -I$S $S/kernels/lut_avx2.cc -o lut_avx2.o
//   g++ -std=c++17 -O2 -c -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi -mgfni \
//       -DTMAC_HAVE_AVX2=1 -I$S $S/kernels/lut_avx512vnni.cc -o lut_avx512vnni.o
//   g++ -std=c++17 -O2 -DTMAC_HAVE_AVX2=1 -I$S $S/lut_gemm.cc $S/kernels/registry.cc $S/kernels/lut_scalar.cc \
//       lut_avx2.o lut_avx512vnni.o decode_stream.cc -o decode_stream
//   ./decode_stream 4096 14336 4 32 12 zp [KERNEL]     # K N bits group layers [zp] [avx2]
#include <sys/mman.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
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
    layers.emplace_back(new tmac::LutGemm(geo, planes + plane_bytes * l, quant, scales, offsets, *ops, 0));
  }
  std::vector<float> a(static_cast<size_t>(K)), y(static_cast<size_t>(N));
  for (auto& v : a) v = float(int(rng() % 2001) - 1000) / 1000.f;
  auto serial = [](size_t c, const std::function<void(size_t)>& body) { for (size_t i = 0; i < c; ++i) body(i); };
  const double bytes = double(plane_bytes + N * geo.n_groups * (2 + (zp ? 0.5 : 0))) * L;
  double best = 1e9;
  for (int pass = 0; pass < 7; ++pass) {
    auto t0 = std::chrono::steady_clock::now();
    for (auto& layer : layers) layer->Run(a.data(), 1, nullptr, y.data(), serial);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("%s K=%lld N=%lld bits=%d g=%d L=%d%s: %.2f ms per pass, %.1f GB/s\n", kname, (long long)K, (long long)N,
              bits, G, L, zp ? " zp" : "", best * 1e3, bytes / best / 1e9);
}
