// How close does one-row decoding come to the machine's read bandwidth?  L matrices (K x N,
// `bits`, group G, layout 2) are streamed one after another as decoding reads them (GEMV,
// M=1, one thread), paired with a pass that only reads the same bytes (planes + fp16 scales
// + zero points) with 64-byte loads, for PAIRS pairs in alternating order.  The per-pair
// ratio (LutGemm GB/s / read GB/s) is the measurement: neighbours on a shared machine change
// the bandwidth from second to second, a pair 10-30 ms apart sees the same conditions.
//
//   S=custom_ops/src; F="-std=c++17 -O3 -pthread -DTMAC_HAVE_AVX2=1 -I$S"
//   g++ $F -c -mavx2 -mfma -mf16c $S/kernels/lut_avx2.cc -o lut_avx2.o
//   g++ $F -c -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi -mgfni \
//       $S/kernels/lut_avx512vnni.cc -o lut_avx512vnni.o
//   g++ $F -mavx512f $S/lut_gemm.cc $S/kernels/registry.cc $S/kernels/lut_scalar.cc lut_avx2.o \
//       lut_avx512vnni.o stream_vs_read.cc -o stream_vs_read
//   ./stream_vs_read 4096 14336 2 128 12 sym 20 [KERNEL]
#include <immintrin.h>

#include <algorithm>
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

// Sums every 64-byte line of [p, p + n): the cheapest way to pull the bytes through the core.
static __attribute__((noinline)) uint64_t ReadAll(const uint8_t* p, size_t n) {
  __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 256 <= n; i += 256) {
    s0 = _mm512_add_epi64(s0, _mm512_load_si512(p + i));
    s1 = _mm512_add_epi64(s1, _mm512_load_si512(p + i + 64));
    s2 = _mm512_add_epi64(s2, _mm512_load_si512(p + i + 128));
    s3 = _mm512_add_epi64(s3, _mm512_load_si512(p + i + 192));
  }
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
}

int main(int argc, char** argv) {
  if (argc < 8) return std::fprintf(stderr, "usage: stream_vs_read K N BITS GROUP LAYERS zp|sym PAIRS [KERNEL]\n"), 2;
  const int64_t K = atoll(argv[1]), N = atoll(argv[2]);
  const int bits = atoi(argv[3]), G = atoi(argv[4]), L = atoi(argv[5]);
  const bool zp = std::string(argv[6]) == "zp";
  const int pairs = atoi(argv[7]);
  const std::string kname = argc > 8 ? argv[8] : "avx512vnni";
  size_t count = 0;
  const tmac::KernelEntry* kernels = tmac::Kernels(&count);
  const tmac::KernelOps* ops = nullptr;
  for (size_t i = 0; i < count; ++i)
    if (kname == kernels[i].name) ops = &kernels[i].ops();
  if (!ops) return std::fprintf(stderr, "no kernel %s\n", kname.c_str()), 2;
  tmac::Geometry geo;
  tmac::MakeGeometry(K, N, bits, G, &geo, 2);
  const size_t plane_bytes = size_t(geo.n_tiles * geo.tile_bytes());
  const size_t groups = size_t(N * geo.n_groups);
  // per layer: planes, then fp16 scales, then nibble zero points, like one model's initializers
  const size_t layer_bytes = (plane_bytes + groups * 2 + (zp ? groups / 2 : 0) + 255) / 256 * 256;
  uint8_t* blob = static_cast<uint8_t*>(std::aligned_alloc(4096, layer_bytes * L));
  std::mt19937_64 rng(1);
  for (size_t i = 0; i < layer_bytes * L; i += 8) {
    const uint64_t r = rng();
    std::memcpy(blob + i, &r, 8);
  }
  std::vector<float> scales(groups, 0.01f), offsets;
  std::vector<std::unique_ptr<tmac::LutGemm>> layers;
  for (int l = 0; l < L; ++l) {
    uint8_t* base = blob + layer_bytes * l;
    uint16_t* half = reinterpret_cast<uint16_t*>(base + plane_bytes);
    for (size_t g = 0; g < groups; ++g) half[g] = 0x2000;  // fp16 ~0.0078
    tmac::QuantParams quant{{half, true}, zp ? base + plane_bytes + groups * 2 : nullptr, {nullptr}};
    layers.emplace_back(new tmac::LutGemm(geo, base, quant, scales, offsets, *ops, 0));
  }
  std::vector<float> a(static_cast<size_t>(K)), y(static_cast<size_t>(N));
  for (auto& x : a) x = float(int(rng() % 2001) - 1000) / 1000.f;
  auto serial = [](size_t c, const std::function<void(size_t)>& body) {
    for (size_t i = 0; i < c; ++i) body(i);
  };
  const double bytes = double(plane_bytes + groups * (2 + (zp ? 0.5 : 0))) * L;
  volatile uint64_t sink = 0;
  auto seconds_since = [](auto t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  auto gemv_pass = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& layer : layers) layer->Run(a.data(), 1, nullptr, y.data(), serial);
    return bytes / seconds_since(t0) / 1e9;
  };
  auto read_pass = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    for (int l = 0; l < L; ++l) sink = sink + ReadAll(blob + layer_bytes * l, layer_bytes);
    return double(layer_bytes) * L / seconds_since(t0) / 1e9;
  };
  gemv_pass(), read_pass();
  std::vector<double> gemv, read, ratio;
  for (int p = 0; p < pairs; ++p) {
    double g, r;
    if (p % 2) g = gemv_pass(), r = read_pass();
    else r = read_pass(), g = gemv_pass();
    gemv.push_back(g), read.push_back(r), ratio.push_back(g / r);
  }
  auto quantile = [](std::vector<double> v, double f) {
    std::sort(v.begin(), v.end());
    return v[size_t(f * double(v.size() - 1) + 0.5)];
  };
  std::printf("%s K=%lld N=%lld bits=%d g=%d L=%d %s (%.0f MB per pass): LutGemm %.1f GB/s, read %.1f GB/s (medians); "
              "per-pair ratio median %.3f, quartiles %.3f-%.3f (%d pairs)\n",
              kname.c_str(), (long long)K, (long long)N, bits, G, L, zp ? "zp" : "sym", bytes / 1e6,
              quantile(gemv, 0.5), quantile(read, 0.5), quantile(ratio, 0.5), quantile(ratio, 0.25),
              quantile(ratio, 0.75), pairs);
}
