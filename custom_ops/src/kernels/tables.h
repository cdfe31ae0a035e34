// Activation lookup tables, the part of the T-MAC method that runs once per call.
//
// For the quad (a0, a1, a2, a3) and a 4-bit index i, the table holds
//     T[i] = sum_j (bit j of i ? +a_j : -a_j)
// (the +-1 form of the bit planes, see docs/packed-format.md).  T[15 - i] = -T[i], so only
// the eight entries with bit 3 clear are computed and the rest are mirrored.  Entries are
// quantised to int8 with one step per block: max over the block's quads of sum_j |a_j|
// divided by 127, which keeps every entry within [-127, 127].
#pragma once

#include <algorithm>
#include <cmath>

#include "layout.h"

namespace tmac {

// Sum and quantisation step of block b: every kernel's table builder starts here, so the
// steps (and thus the int8 entries) are identical across kernels.
struct BlockStats {
  int64_t k0, k1;     // [k0, k1): the block's k range in the padded row
  float inv_step;     // 127 / max_abs, or 0 for an all-zero or non-finite block
};

inline BlockStats ComputeBlockStats(const Geometry& g, const float* a, int64_t b, float* half_scale,
                                    float* block_sum) {
  const int64_t k0 = b * g.block_k;
  const int64_t k1 = std::min(k0 + g.block_k, g.K_pad);
  float sum = 0.f, max_abs = 0.f;
  for (int64_t k = k0; k < k1 && k < g.K; ++k) sum += a[k];
  for (int64_t k = k0; k < k1; k += kQuadK) {
    float abs_sum = 0.f;
    for (int j = 0; j < kQuadK; ++j) abs_sum += k + j < g.K ? std::fabs(a[k + j]) : 0.f;
    max_abs = std::max(max_abs, abs_sum);
  }
  // A NaN or infinite activation makes max_abs non-finite; the tables become zero and the
  // block sum carries the NaN/Inf into the output, as a float matmul would.
  half_scale[b] = max_abs / 254.f;
  block_sum[b] = sum;
  return {k0, k1, (max_abs > 0.f && std::isfinite(max_abs)) ? 127.f / max_abs : 0.f};
}

// The eight entries with bit 3 clear, summed left to right, and their mirror images.
inline void QuantizeQuadsPortable(const Geometry& g, const float* a, const BlockStats& st, int8_t* tables) {
  for (int64_t k = st.k0; k < st.k1; k += kQuadK) {
    float v[kQuadK];
    for (int j = 0; j < kQuadK; ++j) v[j] = k + j < g.K ? a[k + j] : 0.f;
    int8_t* t = tables + (k / kQuadK) * kTableBytes;
    for (int i = 0; i < 8; ++i) {
      float e = (i & 1) ? v[0] : -v[0];
      e += (i & 2) ? v[1] : -v[1];
      e += (i & 4) ? v[2] : -v[2];
      e -= v[3];
      const float q = std::min(127.f, std::max(-127.f, std::nearbyint(e * st.inv_step)));
      t[i] = static_cast<int8_t>(q);
      t[15 - i] = static_cast<int8_t>(-q);
    }
  }
}

inline void BuildTablesPortable(const Geometry& g, const float* a, int8_t* tables, float* half_scale,
                                float* block_sum) {
  for (int64_t b = 0; b < g.n_blocks; ++b)
    QuantizeQuadsPortable(g, a, ComputeBlockStats(g, a, b, half_scale, block_sum), tables);
}

}  // namespace tmac
