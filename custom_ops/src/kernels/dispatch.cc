// Chooses the kernel at run time, so one build runs on any x86-64 (or other) CPU.
#include <cstring>

#include "lut_kernel.h"

namespace tmac {
namespace {

bool CpuHasAvx2() {
#if defined(TMAC_HAVE_AVX2)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

}  // namespace

const KernelOps* SelectKernel(const char* forced) {
  const bool want_any = forced == nullptr || *forced == '\0';
#if defined(TMAC_HAVE_AVX2)
  if ((want_any || std::strcmp(forced, "avx2") == 0) && CpuHasAvx2()) return &Avx2Kernel();
#endif
  if (want_any || std::strcmp(forced, "scalar") == 0) return &ScalarKernel();
  return nullptr;
}

}  // namespace tmac
