// NEON kernel for ARMv8.2 with the dot-product extension: plane pairs summed by sdot into
// int32 (lut_neon_impl.h).  Compiled with -march=armv8.2-a+dotprod; chosen at run time only
// on CPUs that have it (registry.cc).
#define TMAC_NEON_DOTPROD 1
#include "lut_neon_impl.h"

namespace tmac {

const KernelOps& NeonDotprodKernel() {
  static const KernelOps ops = {neon::BuildTables, neon::GemmTilesDispatch<true>, neon::HalfToFloat,
                                neon::FloatToHalf};
  return ops;
}

}  // namespace tmac
