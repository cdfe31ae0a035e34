// Every kernel of the registry against the exact float64 product and against the scalar
// kernel, without ONNX Runtime: the check that runs on ARM (under qemu) as on x86.
//
// Weights are random packed bytes (every byte string is a valid layout-v1 tensor), decoded by
// the layout's own map for the reference; activations and scales go to the float limits, as
// tests/test_exactness.py does through ONNX Runtime.  Per output the bound is the worst-case
// int8-table error (every entry off by half a step) plus 2^-10 of sum |a| (|s| (2^bits - 1)
// * 1.5 + |o|) for fp16 scales and fp32 sums; NaN and infinities must sit where a float
// matmul puts them.  One row of several K-chunks is run again on two threads (the second
// joining late, as a sleeping pool worker does), which splits it over them, and must give the
// same bits as on one.  Prints one line per kernel and exits non-zero on the first failure.
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/registry.h"
#include "kernels/tables.h"
#include "lut_gemm.h"

namespace {

using tmac::Geometry;

struct Case {
  std::string name;
  Geometry geo;
  int64_t M = 1;
  std::vector<uint8_t> planes;
  std::vector<float> scales, offsets, a;
  std::vector<uint8_t> zero_points;
};

std::mt19937_64 rng(1234);
double Uniform(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng); }
double Normal() { return std::normal_distribution<double>(0, 1)(rng); }

// The weights read back from the planes: q[n][k], and w[n][k] in fp32 as MatMulNBits
// dequantises it.
struct Weights {
  std::vector<int> q;
  std::vector<float> w;
};

Weights Dequantize(const Case& c) {
  const Geometry& g = c.geo;
  const auto where = tmac::NibblePositions(g.bits);
  Weights out{std::vector<int>(size_t(g.N * g.K)), std::vector<float>(size_t(g.N * g.K))};
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t k = 0; k < g.K; ++k) {
      const size_t i = size_t(n * g.n_groups + k / g.group_size);
      const int q = tmac::QuantAt(g, c.planes.data(), where, n, k);
      const float s = c.scales[i];
      out.q[n * g.K + k] = q;
      if (!c.offsets.empty()) {
        out.w[n * g.K + k] = s * float(q) + c.offsets[i];
      } else {
        const float z = c.zero_points.empty() ? float(1 << (g.bits - 1)) : float(c.zero_points[i]);
        out.w[n * g.K + k] = s * (float(q) - z);
      }
    }
  return out;
}

void Serially(size_t count, const std::function<void(size_t)>& body) {
  for (size_t i = 0; i < count; ++i) body(i);
}

// Runs a call's items on this thread and on a second one started with the call, which joins
// tens of microseconds late, as a sleeping worker of ONNX Runtime's pool does.
void WithLateWorker(size_t count, const std::function<void(size_t)>& body) {
  std::atomic<size_t> next{0};
  auto take = [&] {
    for (size_t i; (i = next.fetch_add(1)) < count;) body(i);
  };
  std::thread worker(take);
  take();
  worker.join();
}

// Bit for bit (NaN included).
bool SameBits(const std::vector<float>& x, const std::vector<float>& y) {
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
}

// The kernel's table lookups, or its int8 path (`int8`), at every row count.
std::vector<float> RunKernel(const Case& c, const tmac::KernelOps& ops, bool int8 = false,
                             const tmac::ParallelRunner& parallel = Serially) {
  tmac::QuantParams quant{{c.scales.data()}, c.zero_points.empty() ? nullptr : c.zero_points.data(),
                          {c.offsets.empty() ? nullptr : c.offsets.data()}};
  tmac::LutGemm gemm(c.geo, c.planes.data(), quant, c.scales, c.offsets, ops, int8 ? 1 : 0);
  std::vector<float> y(size_t(c.M * c.geo.N));
  gemm.Run(c.a.data(), c.M, nullptr, y.data(), parallel);
  return y;
}

// Returns an empty string, or what is wrong.  The int8 path (`int8`) has its own bound: every
// activation off by at most half its block's step (largest |a| / 127), multiplying only the
// centred weight s (q - 2^(bits-1)) (the offset takes the exact block sum), so per block the
// sum is off by at most step / 2 * sum_k |s| |q_k - 2^(bits-1)|; it is not compared with the
// scalar kernel, which has no int8 path (tests/test_exactness.py compares it with its numpy
// reference).
std::string Check(const Case& c, const std::vector<float>& y, const std::vector<float>& y_scalar, bool int8 = false) {
  const Geometry& g = c.geo;
  const Weights weights = Dequantize(c);
  const std::vector<float>& w = weights.w;
  const int levels = (1 << g.bits) - 1;
  const int centre = g.triples ? 1 : 1 << (g.bits - 1);  // what the int8 path's values multiply: q - centre
  for (int64_t m = 0; m < c.M; ++m) {
    const float* a = &c.a[m * g.K];
    // table bound per block: n_quads * step / 2 * levels / 2 * |s|; layout 3: n_triples * step
    // / 2 * |s| (every weight is -1, 0 or +1 times s there), the step over the block's triples
    std::vector<double> block_step(size_t(g.n_blocks), 0.0), block_quads(size_t(g.n_blocks), 0.0);
    std::vector<double> int8_step(size_t(g.n_blocks), 0.0);
    const auto finite_abs = [&](int64_t k) { return k < g.K && std::isfinite(a[k]) ? std::fabs(double(a[k])) : 0.0; };
    for (int64_t k = 0; k < g.K; ++k) int8_step[k / g.block_k] = std::max(int8_step[k / g.block_k], finite_abs(k) / 127);
    for (int64_t k = 0; k < g.K_pad && !g.triples; k += 4) {
      double quad = 0;
      for (int j = 0; j < 4; ++j) quad += finite_abs(k + j);
      const int64_t b = k / g.block_k;
      block_step[b] = std::max(block_step[b], quad / 127);
      block_quads[b] += 1;
    }
    for (int64_t b = 0; b < g.n_blocks && g.triples; ++b) {
      const int64_t end = std::min((b + 1) * g.block_k, g.K);
      for (int64_t k = b * g.block_k; k < end; k += tmac::kTripleK) {
        double triple = 0;
        for (int64_t d = k; d < std::min(k + tmac::kTripleK, end); ++d) triple += finite_abs(d);
        block_step[b] = std::max(block_step[b], triple / 127);
        block_quads[b] += 1;
      }
    }
    const double levels_factor = g.triples ? 1.0 : levels / 2.0;
    for (int64_t n = 0; n < g.N; ++n) {
      double exact = 0, magnitude = 0, bound = 0;
      bool nan = false;
      int inf_sign = 0;
      double int8_bound = 0;
      for (int64_t k = 0; k < g.K; ++k) {
        const size_t i = size_t(n * g.n_groups + k / g.group_size);
        const double wk = w[n * g.K + k];
        int8_bound += int8_step[k / g.block_k] / 2 * std::fabs(double(c.scales[i])) *
                      std::abs(weights.q[n * g.K + k] - centre);
        if (!std::isfinite(a[k])) {
          const double t = double(a[k]) * wk;
          if (std::isnan(t) || (inf_sign && (t > 0 ? 1 : -1) != inf_sign)) nan = true;
          else inf_sign = t > 0 ? 1 : -1;
          continue;
        }
        exact += double(a[k]) * wk;
        const double s = std::fabs(double(c.scales[i]));
        const double o = c.offsets.empty() ? s * (c.zero_points.empty() ? (1 << (g.bits - 1)) : c.zero_points[i])
                                           : std::fabs(double(c.offsets[i]));
        magnitude += std::fabs(double(a[k])) * (s * levels * 1.5 + o);
      }
      for (int64_t b = 0; b < g.n_blocks; ++b)
        bound += block_quads[b] * block_step[b] / 2 * levels_factor *
                 std::fabs(double(c.scales[n * g.n_groups + g.group_of_block(b)]));
      if (int8) bound = int8_bound * (1 + std::ldexp(1.0, -8));
      bound += std::ldexp(magnitude, -10) + std::ldexp(1.0, -140);
      const double got = y[m * g.N + n], scalar = y_scalar[m * g.N + n];
      const std::string at = "row " + std::to_string(m) + " channel " + std::to_string(n) + ": got " +
                             std::to_string(got) + ", exact " + std::to_string(exact);
      if (nan || inf_sign) {
        const bool ok = nan ? std::isnan(got) : std::isinf(got) && (got > 0) == (inf_sign > 0);
        if (!ok) return at + " (a float matmul gives " + (nan ? "NaN" : inf_sign > 0 ? "+inf" : "-inf") + ")";
        continue;
      }
      const double float_max = 3.4028234663852886e38;
      if ((got == INFINITY && exact + bound >= float_max) || (got == -INFINITY && exact - bound <= -float_max)) continue;
      if (!(std::fabs(got - exact) <= bound)) return at + ", beyond the error bound " + std::to_string(bound);
      if (!int8 && !(std::fabs(got - scalar) <= 1e-5 * magnitude + std::ldexp(1.0, -140)))
        return at + ", scalar kernel " + std::to_string(scalar);
    }
  }
  return "";
}

// The kernel's table builder writes the portable builder's bytes, steps and exponents (block
// sums may differ by fp32 summation order).
std::string CheckTables(const Case& c, const tmac::KernelOps& ops) {
  const Geometry& g = c.geo;
  if (g.triples && ops.build_triple_tables == nullptr) return "";  // (the scalar kernel's are taken)
  const auto build = g.triples ? ops.build_triple_tables : ops.build_tables;
  const auto portable = g.triples ? tmac::BuildTripleTablesPortable : tmac::BuildTablesPortable;
  const size_t table_bytes = size_t(g.k_steps * g.table_step_bytes()), blocks = size_t(g.n_blocks);
  std::vector<int8_t> t1(table_bytes), t2(table_bytes);
  std::vector<float> hs1(blocks), hs2(blocks), bs1(blocks), bs2(blocks);
  std::vector<int32_t> e1(blocks), e2(blocks);
  for (int64_t m = 0; m < c.M; ++m) {
    const float* a = &c.a[m * g.K];
    const bool f1 = build(g, a, {t1.data(), hs1.data(), bs1.data(), e1.data()});
    const bool f2 = portable(g, a, {t2.data(), hs2.data(), bs2.data(), e2.data()});
    if (f1 != f2 || t1 != t2 || hs1 != hs2 || e1 != e2) return "tables differ from the portable builder's, row " + std::to_string(m);
  }
  return "";
}

// kTernary: zero points all 1 (ternary weights -s, 0, +s; layout 3's symmetric case).
enum class Quant { kSymmetric, kZeroPoints, kOffsets, kTernary };

// Layout 3: every field of every step the given value (26: three weights q = 2).
void FillTriples(std::vector<uint8_t>& planes, int field) {
  for (size_t half = 0; half < planes.size() / 40; ++half)
    for (int lane = 0; lane < 64; ++lane)
      for (int bit = 0; bit < 5; ++bit)
        if (field >> bit & 1) planes[half * 40 + size_t(5 * lane + bit) / 8] |= uint8_t(1 << ((5 * lane + bit) % 8));
}

Case Make(const std::string& name, int64_t K, int64_t N, int bits, int64_t group, int64_t M, Quant quant,
          double a_scale = 1.0, double s_scale = 0.02, bool all_max = false, bool positive = false,
          int layout_version = tmac::kLayoutVersion) {
  Case c;
  c.name = name;
  if (const char* why = tmac::MakeGeometry(K, N, bits, group, &c.geo, layout_version)) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), why);
    std::exit(2);
  }
  c.M = M;
  c.planes.resize(size_t(c.geo.n_tiles * c.geo.tile_bytes()));
  for (auto& b : c.planes) b = all_max ? (c.geo.triples ? 0 : 0xff) : uint8_t(rng());
  if (all_max && c.geo.triples) FillTriples(c.planes, 26);
  const size_t per_group = size_t(N * c.geo.n_groups);
  c.scales.resize(per_group);
  for (auto& s : c.scales) s = float(s_scale * Uniform(0.5, 1.0));
  if (quant == Quant::kZeroPoints || quant == Quant::kTernary || all_max) {
    c.zero_points.resize(per_group);
    for (auto& z : c.zero_points) z = all_max ? 0 : quant == Quant::kTernary ? 1 : uint8_t(rng() % (1u << bits));
  } else if (quant == Quant::kOffsets) {
    c.offsets.resize(per_group);
    for (auto& o : c.offsets) o = float(s_scale * Normal());
  }
  c.a.resize(size_t(M * K));
  for (auto& v : c.a) {
    const double x = positive ? Uniform(0, 1) : std::max(-3.0, std::min(3.0, Normal()));
    v = float(a_scale * x);
  }
  return c;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  const Quant quants[] = {Quant::kSymmetric, Quant::kZeroPoints, Quant::kOffsets};
  for (int bits = 1; bits <= 4; ++bits) {
    for (int64_t group : {32, 128, 256, 512}) {
      for (Quant q : quants)
        for (int64_t M : {1, 3, 17})
          cases.push_back(Make("bits " + std::to_string(bits) + " group " + std::to_string(group) + " M " +
                                   std::to_string(M),
                               512, 70, bits, group, M, q));
      cases.push_back(Make("all-max nibbles, positive activations, bits " + std::to_string(bits) + " group " +
                               std::to_string(group),
                           512, 40, bits, group, 2, Quant::kZeroPoints, 1.0, 1.0, true, true));
    }
    for (int64_t group : {128, 32768})
      cases.push_back(Make("K 32768 all-max, bits " + std::to_string(bits) + " group " + std::to_string(group), 32768,
                           32, bits, group, 1, Quant::kZeroPoints, 1.0, 1.0, true, true));
    cases.push_back(Make("short last group K 576/128, bits " + std::to_string(bits), 576, 40, bits, 128, 3,
                         Quant::kZeroPoints));
    cases.push_back(Make("short last group K 1001/64, bits " + std::to_string(bits), 1001, 40, bits, 64, 2,
                         Quant::kOffsets));
  }
  // Several K-chunks (layout 2, 512 k each) against one (layout 1), decoding and prefill.
  for (int layout : {1, 2})
    for (int bits : {2, 3})
      for (int64_t group : {32, 128, 1024})
        for (int64_t M : {1, 5})
          cases.push_back(Make("layout " + std::to_string(layout) + " K 2200 bits " + std::to_string(bits) +
                                   " group " + std::to_string(group) + " M " + std::to_string(M),
                               2200, 300, bits, group, M, Quant::kZeroPoints, 1.0, 0.02, false, false, layout));
  // Layout 3 (ternary triples, bits 2): random fields (27-31 read as 13), every quantisation,
  // blocks padded to whole steps, several K-chunks, the limits.
  constexpr int kTriples = tmac::kTernaryLayout;
  const Quant triple_quants[] = {Quant::kTernary, Quant::kSymmetric, Quant::kZeroPoints, Quant::kOffsets};
  for (int64_t group : {32, 96, 128, 256, 512, 2200})
    for (Quant q : triple_quants)
      for (int64_t M : {1, 3})
        cases.push_back(Make("layout 3 K 2200 group " + std::to_string(group) + " quant " + std::to_string(int(q)) +
                                 " M " + std::to_string(M),
                             2200, 100, 2, group, M, q, 1.0, 0.02, false, false, kTriples));
  cases.push_back(Make("layout 3 short K 1001/64", 1001, 40, 2, 64, 2, Quant::kTernary, 1.0, 0.02, false, false, kTriples));
  for (int64_t K : {252, 253, 758})  // whole rows: 252-k blocks (K = 252 has K_pad 256)
    for (int64_t M : {1, 5})
      cases.push_back(Make("layout 3 whole row K " + std::to_string(K) + " M " + std::to_string(M), K, 40, 2, K, M,
                           Quant::kOffsets, 1.0, 0.02, false, false, kTriples));
  for (int64_t group : {128, 32768})
    cases.push_back(Make("layout 3 K 32768 all-max, group " + std::to_string(group), 32768, 32, 2, group, 1,
                         Quant::kZeroPoints, 1.0, 1.0, true, true, kTriples));
  cases.push_back(Make("layout 3 all-max positive group 256", 512, 40, 2, 256, 2, Quant::kZeroPoints, 1.0, 1.0, true,
                       true, kTriples));
  for (double a_scale : {1e-45, 1e-38, 1e30, 1e38})
    cases.push_back(Make("layout 3 activations x " + std::to_string(a_scale), 256, 48, 2, 64, 2, Quant::kTernary,
                         a_scale, a_scale > 1 ? 1e-5 : 1.0, false, false, kTriples));
  for (double s_scale : {0.0, 1e-44, 1e-20, 1e30})
    for (Quant q : triple_quants)
      cases.push_back(Make("layout 3 scales x " + std::to_string(s_scale), 256, 48, 2, 64, 2, q, 1.0, s_scale, false,
                           false, kTriples));
  for (int kind = 0; kind < 3; ++kind) {
    Case c = Make("layout 3 non-finite activation " + std::to_string(kind), 256, 40, 2, 64, 2, Quant::kTernary, 1.0,
                  0.02, false, false, kTriples);
    c.a[50] = kind == 0 ? INFINITY : kind == 1 ? -INFINITY : NAN;
    if (kind == 1) c.a[200] = INFINITY;
    cases.push_back(c);
  }
  for (double a_scale : {1e-45, 1e-38, 1e-37, 1e30, 1e38})
    cases.push_back(Make("activations x " + std::to_string(a_scale), 256, 48, 4, 64, 2, Quant::kZeroPoints, a_scale,
                         a_scale > 1 ? 1e-5 : 1.0));
  for (double s_scale : {0.0, 1e-44, 1e-40, 1e-20, 1e30})
    for (Quant q : quants)
      cases.push_back(Make("scales x " + std::to_string(s_scale), 256, 48, 4, 64, 2, q, 1.0, s_scale));
  Case quad = Make("quad of 1e38s", 256, 40, 4, 128, 1, Quant::kZeroPoints, 1e30, 0.001);
  for (int k = 8; k < 12; ++k) quad.a[k] = k < 10 ? 1e38f : -1e38f;
  cases.push_back(quad);
  for (int kind = 0; kind < 3; ++kind) {
    Case c = Make("non-finite activation " + std::to_string(kind), 256, 40, 2, 64, 2, Quant::kZeroPoints);
    c.a[50] = kind == 0 ? INFINITY : kind == 1 ? -INFINITY : NAN;
    if (kind == 1) c.a[200] = INFINITY;
    cases.push_back(c);
  }
  return cases;
}

}  // namespace

// `kernel_check gemv KERNEL K N BITS [LAYOUT [GROUP [ternary|symmetric [M]]]]`: one GEMV (M=1
// and group 128 unless given; symmetric weights, or ternary: zero points 1) and nothing else,
// for counting instructions (benchmarks/arm_instructions.py runs it under qemu).
int Gemv(const std::string& name, int64_t K, int64_t N, int bits, int layout_version, int64_t group, bool ternary,
         int64_t M) {
  size_t count = 0;
  const tmac::KernelEntry* kernels = tmac::Kernels(&count);
  for (size_t i = 0; i < count; ++i) {
    if (name != kernels[i].name) continue;
    if (const char* missing = kernels[i].missing_cpu_features()) {
      std::fprintf(stderr, "kernel %s: this CPU lacks %s\n", name.c_str(), missing);
      return 2;
    }
    const Case c = Make("gemv", K, N, bits, group, M, ternary ? Quant::kTernary : Quant::kSymmetric, 1.0, 0.02, false,
                        false, layout_version);
    const std::vector<float> y = RunKernel(c, kernels[i].ops());
    std::printf("%s y[0] %g\n", kernels[i].name, double(y[0]));
    return 0;
  }
  std::fprintf(stderr, "no kernel %s\n", name.c_str());
  return 2;
}

int main(int argc, char** argv) {
  if (argc >= 6 && argc <= 10 && std::string(argv[1]) == "gemv")
    return Gemv(argv[2], std::atoll(argv[3]), std::atoll(argv[4]), std::atoi(argv[5]),
                argc >= 7 ? std::atoi(argv[6]) : tmac::kLayoutVersion, argc >= 8 ? std::atoll(argv[7]) : 128,
                argc >= 9 && std::string(argv[8]) == "ternary", argc >= 10 ? std::atoll(argv[9]) : 1);
  // the listing the com.tmac.Kernels op returns: under qemu as an older CPU this must not run
  // the instructions of the kernels that CPU lacks
  for (const tmac::KernelListing& k : tmac::ListKernels()) {
    std::printf("listed %-14s int8 from rows", k.name.c_str());
    for (int64_t rows : k.int8_min_rows) std::printf(" %lld", static_cast<long long>(rows));
    std::printf(" (1-4 bits)%s%s\n", k.unavailable.empty() ? "" : "; ", k.unavailable.c_str());
  }
  size_t count = 0;
  const tmac::KernelEntry* kernels = tmac::Kernels(&count);
  const tmac::KernelOps* scalar = nullptr;
  for (size_t i = 0; i < count; ++i)
    if (std::string(kernels[i].name) == "scalar") scalar = &kernels[i].ops();
  const std::vector<Case> cases = Cases();
  int failed = 0, passed = 0;
  for (size_t i = 0; i < count; ++i) {
    const std::string unavailable = tmac::UnavailableReason(kernels[i]);
    if (!unavailable.empty()) {
      std::printf("%-14s skipped: %s\n", kernels[i].name, unavailable.c_str());
      continue;
    }
    const tmac::KernelOps& ops = kernels[i].ops();
    for (bool int8 : {false, true}) {
      if (int8 && ops.gemm_tiles_int8 == nullptr) continue;
      const std::string name = std::string(kernels[i].name) + (int8 ? "+int8" : "");
      int ok = 0, run = 0;
      for (const Case& c : cases) {
        if (int8 && c.geo.triples && ops.gemm_triple_tiles_int8 == nullptr) continue;  // (then the lookups run)
        ++run;
        std::string why = int8 ? "" : CheckTables(c, ops);
        const std::vector<float> y_scalar = RunKernel(c, *scalar);
        const std::vector<float> y = RunKernel(c, ops, int8);
        if (why.empty()) why = Check(c, y, y_scalar, int8);
        // one row of several K-chunks is split over the threads (LutGemm::RunTables), by
        // tiles: bit for bit the one-thread result
        if (why.empty() && c.M == 1 && c.geo.n_chunks() > 1 && !SameBits(RunKernel(c, ops, int8, WithLateWorker), y))
          why = "two threads changed the result";
        if (why.empty()) {
          ++ok;
        } else {
          std::printf("FAILED %s: %s: %s\n", name.c_str(), c.name.c_str(), why.c_str());
          ++failed;
        }
      }
      passed += ok;
      std::printf("%-15s %d of %d cases within the bounds\n", name.c_str(), ok, run);
    }
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
