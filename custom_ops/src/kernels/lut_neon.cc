// NEON kernel for ARMv8.0 AdvSIMD (every aarch64 CPU): tbl lookups, smlal aggregation.
// The code is lut_neon_impl.h, shared with the dot-product kernel.
#include "lut_neon_impl.h"

namespace tmac {

const KernelOps& NeonKernel() {
  static const KernelOps ops = [] {
    KernelOps o{neon::BuildTables, neon::GemmTilesDispatch<false>, neon::HalfToFloat, neon::FloatToHalf};
    o.build_triple_tables = neon::BuildTripleTables;
    o.gemm_triple_tiles = neon::GemmTriplesDispatch<false>;
    return o;
  }();
  return ops;
}

}  // namespace tmac
