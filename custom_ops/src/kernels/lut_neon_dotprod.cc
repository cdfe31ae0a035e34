// NEON kernel for ARMv8.2 with the dot-product extension: plane pairs summed by sdot into
// int32 (lut_neon_impl.h).  Compiled with -march=armv8.2-a+dotprod; chosen at run time only
// on CPUs that have it (registry.cc).
#define TMAC_NEON_DOTPROD 1
#include "lut_neon_impl.h"

namespace tmac {

const KernelOps& NeonDotprodKernel() {
  static const KernelOps ops = [] {
    KernelOps o{neon::BuildTables, neon::GemmTilesDispatch<true>, neon::HalfToFloat, neon::FloatToHalf};
    o.build_triple_tables = neon::BuildTripleTables;
    o.gemm_triple_tiles = neon::GemmTriplesDispatch<true>;
    return o;
  }();
  return ops;
}

}  // namespace tmac
