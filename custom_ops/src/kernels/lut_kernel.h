// Interface between the ISA-independent LutGemm driver and the per-ISA kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "layout.h"

namespace tmac {

// How a group's constant term c' (below) is had.
enum class Offsets : uint8_t {
  kSymmetric,   // every zero point is the default 2^(bits-1): c' = -s'/2, nothing stored
                // (layout 3: every zero point 1, c' = 0)
  kZeroPoints,  // integer zero points z: c' = s' ((2^bits - 1) / 2 - z), z stored as nibbles
  kConstants,   // float offsets: c' stored (fp16)
};

// Weights as every kernel reads them.  The bit planes are the ONNX initializer itself
// (never copied); the per-group scale and constant term are rearranged once at kernel
// creation into [tile][group][32] so a tile reads them sequentially.  They are stored as
// fp16 in units of a per-channel power of two 2^u[n] (the largest of the channel's finite
// |s| (and |constant|, where it is stored) lies in [2^14, 2^15)): in fp32 they would add 0.5
// bit per weight of memory traffic at group 128, a quarter of a 2-bit weight, while fp16
// rounding (2^-12 relative) is far below the int8 table error.  u[n] >= -126, so a subnormal
// fp32 scale (quantum 2^-149) lands on a multiple of 2^-23 and fp16 (quantum 2^-24) holds it
// exactly.
struct PreparedWeights {
  Geometry geo;
  const uint8_t* planes = nullptr;     // n_tiles * tile_bytes() bytes, owned by the session
  std::vector<uint16_t> scale;         // fp16 of s[n, g] / 2^u[n]
  std::vector<double> channel_scale;   // [N_pad] 2^u[n]
  Offsets offsets = Offsets::kConstants;
  // kConstants: fp16 of (s[n, g] * (2^bits - 1) / 2 + o[n, g]) / 2^u[n].
  std::vector<uint16_t> constant;
  // kZeroPoints: [tile][group][16] bytes, byte j the zero points of channels j (low nibble)
  // and j + 16 (high nibble).  Kernels compute c' = s' ((2^bits - 1) / 2 - z) in fp32, which
  // is exact (11 significant bits of s' times at most 5 of the half-integer): the weights are
  // then s' (q - z) exactly, where an fp16 constant rounds on its own.  4 bits per group
  // instead of 16: a 4-bit weight at group 32 (ORT's and onnxruntime-genai's int4 with zero
  // points) streams 4.625 bits instead of 5.0, a 2-bit one 2.625 instead of 3.0.
  std::vector<uint8_t> zero_points;
};

// Where one activation row's tables go (build_tables writes them).
//   tables         [k_steps][32]  int8: table of quad 2s in bytes 0..15, quad 2s+1 in 16..31
//                  (layout 3: [k_steps][4][32], the step's four triples' tables)
//   half_scale     [n_blocks]     table quantisation step / 2, in units of 2^E[b]
//   block_sum      [n_blocks]     sum of the block's finite activations, in units of 2^E[b]
//   block_exponent [n_blocks]     E[b] (see tables.h)
struct RowTables {
  int8_t* tables = nullptr;
  float* half_scale = nullptr;
  float* block_sum = nullptr;
  int32_t* block_exponent = nullptr;
};

// Lookup tables of M activation rows, as the tile kernels read them.  The driver rescales
// half_scale and block_sum of row m from block units to one unit per row, 2^R[m] with R[m]
// the row's largest block exponent, so blocks add up without per-block exponents.
//   tables     [M][k_steps][32]
//   half_scale [M][n_blocks], block_sum [M][n_blocks]   in units of 2^R[m]
//   row_scale  [M]                                       2^R[m]
struct ActivationTables {
  int64_t rows = 0;
  const int8_t* tables = nullptr;
  const float* half_scale = nullptr;
  const float* block_sum = nullptr;
  const double* row_scale = nullptr;
};

// Output rows y[m * ldy + n] for n < N; bias (length N) may be null.  Tile kernels sum
//   Y'[m, n] = sum_b s'[n, g(b)] * P[m, n, b] * half_scale[m, b] + c'[n, g(b)] * block_sum[m, b]
// (s', c' the fp16 values above, P the integer lookup sum) in fp32 and store
//   y = float(double(Y') * row_scale[m] * channel_scale[n]) + bias[n]
// (one rounding: the two factors are powers of two, exact in double).
struct OutputRows {
  float* y = nullptr;
  int64_t ldy = 0;
  const float* bias = nullptr;
  // With `carry`, table lookups of one row cover only blocks [block_begin, block_end) (one
  // K-chunk of layout 2 or 3, LutGemm::RunTables): each tile's sum starts from carry[t * 32 ..]
  // (from 0 where block_begin is 0) and is left there in the kernel's units, unless the range
  // ends with the last block, where it is written to y as without a carry.
  int64_t block_begin = 0, block_end = 0;
  float* carry = nullptr;
};

// The int8 path (prefill): each activation row quantised to int8 per block, multiplied with
// the weights decoded per tile to 8-bit integers by a dot-product instruction, instead of
// table lookups.  For M rows a tile's weights are decoded once and used M times, so from a
// few rows on it is cheaper than a lookup per row (kernels with a dot product only).
// Block b of a row: a[k] ~ 2^E[b] * step[b] * values[k] with step = (largest finite |a| /
// 2^E) / 127 and values in [-127, 127].
//   values         [K_pad]     int8, 0 beyond K and for NaN and infinities
//   step           [n_blocks]  in units of 2^E[b]
//   block_sum      [n_blocks]  sum of the block's finite activations, in units of 2^E[b]
//   value_sum      [n_blocks]  sum of the block's values (an integer: no rounding)
//   block_exponent [n_blocks]  E[b] (as for tables)
struct Int8Row {
  int8_t* values = nullptr;
  float* step = nullptr;
  float* block_sum = nullptr;
  int32_t* value_sum = nullptr;
  int32_t* block_exponent = nullptr;
};

// M rows as the int8 tile kernels read them; step and block_sum in units of 2^R[m] (rescaled
// by the driver, as for tables).  With q centred on 2^(bits-1), w = s (q - 2^(bits-1)) + o2
// (o2 = c + s/2 for the constant c of PreparedWeights, 0 for default zero points), tile
// kernels sum per block and channel
//   Y'[m, n] += step[m, b] * s'[n, g] * (P - 2^(bits-1) value_sum[m, b]) + o2'[n, g] * block_sum[m, b]
// with P = sum_k q[n, k] values[m, k] (an integer), then store y as OutputRows says.  Only
// the centred part goes through the int8 values (its error is at most 2^(bits-1) |s| per
// value, whatever the zero point); the offset part takes the exact block sum, as the tables'
// constant term does.
struct Int8Rows {
  int64_t rows = 0;
  int64_t stride = 0;  // bytes between rows of `values` (at least K_pad)
  const int8_t* values = nullptr;
  const float* step = nullptr;
  const float* block_sum = nullptr;
  const int32_t* value_sum = nullptr;
  const double* row_scale = nullptr;
};

struct KernelOps {
  // Builds the tables of one activation row `a` (K floats); returns false when the row holds
  // a NaN or an infinity (counted as 0 in the tables).
  bool (*build_tables)(const Geometry& geo, const float* a, const RowTables& out);
  // Computes the tiles [tile_begin, tile_end) for every row of `act`.
  void (*gemm_tiles)(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin,
                     int64_t tile_end, const OutputRows& out);
  void (*half_to_float)(const uint16_t* src, float* dst, size_t n);
  void (*float_to_half)(const float* src, uint16_t* dst, size_t n);
  // Layout 3 (ternary triples), or null where the kernel has none (the driver then takes the
  // scalar kernel's).  The tile kernels sum, per block and channel, P = the looked-up entries
  // of the channel's triples, and Y' += 2 P s' half_scale + c' block_sum (c' = 0 for
  // Offsets::kSymmetric, which layout 3 uses for zero points of 1; else kConstants).
  bool (*build_triple_tables)(const Geometry& geo, const float* a, const RowTables& out) = nullptr;
  void (*gemm_triple_tiles)(const PreparedWeights& w, const ActivationTables& act, int64_t tile_begin,
                            int64_t tile_end, const OutputRows& out) = nullptr;
  // The int8 path, or null where the kernel has none.  quantize_row returns false when the
  // row holds a NaN or an infinity (counted as 0, as build_tables does).
  bool (*quantize_row)(const Geometry& geo, const float* a, const Int8Row& out) = nullptr;
  void (*gemm_tiles_int8)(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin, int64_t tile_end,
                          const OutputRows& out) = nullptr;
  // Its layout-3 form, or null (layout 3 then takes the lookups at every row count): q in
  // 0..2 centred on 1, w = s (q - 1) + c with c the layout's constant (0 for kSymmetric), so
  // Y' += step s' (P - value_sum) + c' block_sum.
  void (*gemm_triple_tiles_int8)(const PreparedWeights& w, const Int8Rows& act, int64_t tile_begin,
                                 int64_t tile_end, const OutputRows& out) = nullptr;
  int64_t triple_int8_min_rows = 0;  // its default row count (tmac.int8_min_rows overrides both)
  // From how many rows a call takes the int8 path by default, per bit width (index bits - 1;
  // session option tmac.int8_min_rows overrides it); 0 where the kernel has none, or where its
  // lookups stay faster at that width.
  int64_t int8_min_rows[4] = {0, 0, 0, 0};
};

}  // namespace tmac
