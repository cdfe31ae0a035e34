// The kernel registry and the run-time choice of kernel.  This file is compiled for the
// baseline ISA: CPU checks must not run instructions the CPU may lack.
#include "registry.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#if defined(TMAC_HAVE_NEON) && defined(__APPLE__)
#include <sys/sysctl.h>
#elif defined(TMAC_HAVE_NEON)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace tmac {

const KernelOps& ScalarKernel();
#if defined(TMAC_HAVE_AVX2)
const KernelOps& Avx512VnniKernel();
const KernelOps& Avx2Kernel();
#endif
#if defined(TMAC_HAVE_NEON)
const KernelOps& NeonDotprodKernel();
const KernelOps& NeonKernel();
#endif

namespace {

#if defined(TMAC_HAVE_AVX2)
// GCC's checks include the OS's XSAVE support for the wider registers.
#define TMAC_CPU_HAS(feature) (__builtin_cpu_init(), __builtin_cpu_supports(feature))
#endif

const char* ScalarMissing() { return nullptr; }

#if defined(TMAC_HAVE_NEON)
const char* NeonMissing() { return nullptr; }  // AdvSIMD is part of every aarch64 CPU

const char* NeonDotprodMissing() {
#if defined(__APPLE__)
  int has = 0;
  size_t size = sizeof(has);
  return sysctlbyname("hw.optional.arm.FEAT_DotProd", &has, &size, nullptr, 0) == 0 && has ? nullptr
                                                                                           : "the dot-product extension";
#else
  return getauxval(AT_HWCAP) & HWCAP_ASIMDDP ? nullptr : "the dot-product extension (asimddp)";
#endif
}
#endif

#if defined(TMAC_HAVE_AVX2)
const char* Avx2Missing() {
  return TMAC_CPU_HAS("avx2") && TMAC_CPU_HAS("fma") && TMAC_CPU_HAS("f16c") ? nullptr : "AVX2, FMA and F16C";
}

// Below int8_min_rows the kernel is the AVX2 one, so it needs AVX2's features too.
const char* Avx512VnniMissing() {
  const bool avx512 = TMAC_CPU_HAS("avx512f") && TMAC_CPU_HAS("avx512bw") && TMAC_CPU_HAS("avx512vl") &&
                      TMAC_CPU_HAS("avx512vnni") && TMAC_CPU_HAS("avx512vbmi") && TMAC_CPU_HAS("gfni");
  return avx512 && Avx2Missing() == nullptr ? nullptr : "AVX-512 F/BW/VL/VNNI/VBMI and GFNI (and AVX2, FMA, F16C)";
}
#endif

const KernelEntry kKernels[] = {
#if defined(TMAC_HAVE_AVX2)
    {"avx512vnni", Avx512VnniMissing, Avx512VnniKernel},
    {"avx2", Avx2Missing, Avx2Kernel},
#endif
#if defined(TMAC_HAVE_NEON)
    {"neon-dotprod", NeonDotprodMissing, NeonDotprodKernel},
    {"neon", NeonMissing, NeonKernel},
#endif
    {"scalar", ScalarMissing, ScalarKernel},
};

// TMAC_ORT_KERNEL, read once: it limits the whole process to one kernel.
const std::string& ForcedByEnvironment() {
  static const std::string forced = [] {
    const char* v = std::getenv("TMAC_ORT_KERNEL");
    return std::string(v ? v : "");
  }();
  return forced;
}

const KernelEntry* Find(const std::string& name) {
  for (const KernelEntry& e : kKernels)
    if (name == e.name) return &e;
  return nullptr;
}

std::string KnownNames() {
  std::string names;
  for (const KernelEntry& e : kKernels) names += std::string(names.empty() ? "" : ", ") + e.name;
  return names;
}

}  // namespace

const KernelEntry* Kernels(size_t* count) {
  *count = sizeof(kKernels) / sizeof(kKernels[0]);
  return kKernels;
}

std::string UnavailableReason(const KernelEntry& entry) {
  if (const char* missing = entry.missing_cpu_features()) return std::string("this CPU lacks ") + missing;
  const std::string& forced = ForcedByEnvironment();
  if (!forced.empty() && forced != entry.name) return "TMAC_ORT_KERNEL=" + forced + " selects another kernel";
  return "";
}

std::vector<KernelListing> ListKernels() {
  std::vector<KernelListing> rows;
  for (const KernelEntry& e : kKernels) {
    std::array<int64_t, 4> int8_rows{};
    int64_t triple_rows = 0;
    if (!e.missing_cpu_features()) {
      const KernelOps& ops = e.ops();
      std::copy(ops.int8_min_rows, ops.int8_min_rows + 4, int8_rows.begin());
      triple_rows = ops.gemm_triple_tiles_int8 ? ops.triple_int8_min_rows : 0;
    }
    rows.push_back({e.name, UnavailableReason(e), int8_rows, triple_rows});
  }
  return rows;
}

const KernelEntry* ChooseKernel(const std::string& name, std::string* error) {
  const std::string& wanted = name.empty() ? ForcedByEnvironment() : name;
  const char* source = name.empty() ? "TMAC_ORT_KERNEL" : "session option tmac.kernel";
  if (wanted.empty()) {
    for (const KernelEntry& e : kKernels)
      if (UnavailableReason(e).empty()) return &e;
    *error = "no kernel available";  // unreachable: scalar runs everywhere
    return nullptr;
  }
  const KernelEntry* entry = Find(wanted);
  if (entry == nullptr) {
    *error = std::string(source) + "=" + wanted + " names no kernel of this build (it has: " + KnownNames() + ")";
    return nullptr;
  }
  if (const char* missing = entry->missing_cpu_features()) {
    *error = std::string(source) + "=" + wanted + ": this CPU lacks " + missing;
    return nullptr;
  }
  return entry;
}

}  // namespace tmac
