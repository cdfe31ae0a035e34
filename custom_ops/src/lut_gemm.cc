#include "lut_gemm.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "kernels/tables.h"

#if defined(__linux__)
#include <sys/mman.h>
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25  // Linux 6.1 (glibc headers before 2.37 lack the name)
#endif
#endif

namespace tmac {

const KernelOps& ScalarKernel();

namespace {

// Items ForTileChunks splits the tiles into (a range each): enough for the pool to balance.
constexpr int64_t kMaxTileChunks = 64;

// Tile ranges per pool thread for one row over several K-chunks (LutGemm::RunTables).
constexpr int64_t kTileRangesPerThread = 2;

// How long a parallel call must last for the threads that ran its items to be all the pool
// has (LutGemm::PoolThreads): a sleeping worker (session option allow_spinning=0) joined a
// call 26-105 us after it began on Zen 4 (ORT 1.32, 2 threads), a spinning one after 2-3 us.
constexpr std::chrono::microseconds kPoolProbeTime{200};

// Which threads ran a parallel call's items (at most kMaxTileChunks are recorded).
class ThreadRecorder {
 public:
  void Record() { who_[std::min(items_.fetch_add(1), who_.size() - 1)] = std::this_thread::get_id(); }
  int64_t Count() {
    const auto end = who_.begin() + std::min(items_.load(), who_.size());
    std::sort(who_.begin(), end);
    return std::unique(who_.begin(), end) - who_.begin();
  }

 private:
  std::array<std::thread::id, kMaxTileChunks> who_{};
  std::atomic<size_t> items_{0};
};

// Backs the packed planes with 2 MB pages where Linux allows it (MADV_COLLAPSE, Linux 6.1+;
// THP is usually "madvise" only, so weights in anonymous memory sit on 4 KB pages).  Cold
// GEMVs stream weights from DRAM and, on 4 KB pages, take a page walk every 4 KB.  Zen 4,
// 1 thread: cold 4-bit 14336x4096 and 4096x14336 GEMVs (29 MB each, `tmac-ort bench --cold`)
// ran 0.81x the time (median of 6 interleaved runs against a build without this; the same
// pair with it turned off: 0.99x); 2-bit (15 MB) gained nothing measurable; the matmuls of a
// Llama-3.2-1B-shaped 4-bit model (772 MB, weights embedded in the file) 0.96x, for +0.5 s of
// session creation.  External data that ORT memory-maps is already on 2 MB pages where the
// page cache has them (FilePmdMapped), and changes nothing.  The planes are the session's
// memory, read in place: advice changes no byte, and a refusal (fragmented memory, an older
// kernel, another OS) changes nothing.  TMAC_ORT_HUGE_PAGES=0 turns it off (measurements).
//
// Small planes (SmolLM2's layers are 0.1-0.5 MB) span no whole 2 MB page of their own, so the
// 2 MB pages around them are collapsed too: ORT keeps embedded initializers side by side on its
// heap, where one 2 MB page then holds several layers.  Only MADV_COLLAPSE reaches past the
// planes (a one-off move onto a huge page; the neighbours' advice is not changed).  Zen 4, 1
// thread, SmolLM2-135M's genai models given to InferenceSession as bytes (weights in the heap,
// as a single-file model is loaded), a one-token step against TMAC_ORT_HUGE_PAGES=0, four
// alternating runs: 4 bits 0.83-0.87x the time (120 MB on 2 MB pages instead of none, the same
// RSS, +0.3 s for the first session), 2 bits 0.88-0.97x; the Optimum export (one 181 MB file,
// its fp32 lm_head outside LutGemm) 0.93-0.99x.  ORT maps each external initializer on its own
// (onnxruntime-genai's model.onnx.data): Linux refuses to collapse those file pages (EINVAL),
// and those models do not change (0.96-1.02x).
void AdviseHugePages(const void* data, size_t bytes) {
#if defined(__linux__)
  static const bool enabled = [] {
    const char* value = std::getenv("TMAC_ORT_HUGE_PAGES");
    return value == nullptr || std::string(value) != "0";
  }();
  if (!enabled) return;
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t first = reinterpret_cast<uintptr_t>(data), last = first + bytes;
  for (uintptr_t page = first & ~(kHuge - 1); page < last; page += kHuge) {  // (a refusal stops no other page)
    void* start = reinterpret_cast<void*>(page);
    if (page >= first && page + kHuge <= last) madvise(start, kHuge, MADV_HUGEPAGE);  // (file mappings may refuse)
    madvise(start, kHuge, MADV_COLLAPSE);
  }
#else
  (void)data;
  (void)bytes;
#endif
}

// The exponent u of a channel whose largest finite |value| is `max_abs`: max_abs / 2^u lies in
// [2^14, 2^15), well inside fp16; never below -126 (see PreparedWeights).
int ChannelExponent(float max_abs) {
  if (max_abs == 0.f) return 0;
  int exponent = 0;
  std::frexp(max_abs, &exponent);  // max_abs < 2^exponent
  return std::max(exponent - 15, -126);
}

// Rearranges per-group values [N][n_groups] to entries of 32 (Geometry::group_entry) in fp16
// units of 2^u[n].
std::vector<uint16_t> ToFp16Channels(const Geometry& g, const float* values, const std::vector<int>& exponent,
                                     const KernelOps& kernel) {
  std::vector<float> scaled(size_t(g.n_tiles) * g.n_groups * kTileN, 0.f);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t grp = 0; grp < g.n_groups; ++grp)
      scaled[g.group_entry(n / kTileN, grp) * kTileN + n % kTileN] =
          float(std::ldexp(double(values[n * g.n_groups + grp]), -exponent[n]));  // exact
  std::vector<uint16_t> out(scaled.size());
  kernel.float_to_half(scaled.data(), out.data(), out.size());
  return out;
}

// Rearranges zero points [N][n_groups] to entries (Geometry::group_entry) of 16 nibble pairs: byte j holds
// channel j in its low nibble and channel j + 16 in its high one (channels beyond N: 0).
std::vector<uint8_t> ToNibbleChannels(const Geometry& g, const uint8_t* zero_points) {
  std::vector<uint8_t> out(size_t(g.n_tiles) * g.n_groups * (kTileN / 2), 0);
  for (int64_t n = 0; n < g.N; ++n) {
    const int64_t c = n % kTileN;
    for (int64_t grp = 0; grp < g.n_groups; ++grp) {
      uint8_t& byte = out[size_t(g.group_entry(n / kTileN, grp) * (kTileN / 2) + c % 16)];
      byte = uint8_t(byte | zero_points[n * g.n_groups + grp] << (c < 16 ? 0 : 4));
    }
  }
  return out;
}

// A row's two per-block values (half step or step, and block sum) from block
// units to one unit per row, 2^R with R the row's largest block exponent: blocks far below
// the row's largest may underflow here, as their share of the sum would in fp32.  Returns 2^R.
double ToRowUnits(int64_t n_blocks, const int32_t* exponent, float* first, float* second) {
  const int32_t r = *std::max_element(exponent, exponent + n_blocks);
  for (int64_t i = 0; i < n_blocks; ++i) {
    // (the product in double is exact; one rounding to float, as ldexp's)
    const double unit = PowerOfTwoDouble(exponent[i] - r);
    first[i] = float(double(first[i]) * unit);
    second[i] = float(double(second[i]) * unit);
  }
  return std::ldexp(1.0, r);
}

}  // namespace

std::vector<float> ToFloats(const GroupValues& values, size_t count, const KernelOps& kernel) {
  std::vector<float> out(values.present() ? count : 0);
  if (!values.present()) return out;
  if (values.half) {
    kernel.half_to_float(static_cast<const uint16_t*>(values.data), out.data(), count);
  } else {
    const auto* data = static_cast<const float*>(values.data);
    std::copy(data, data + count, out.begin());
  }
  return out;
}

float LutGemm::ValueAt(const GroupValues& values, size_t i) const {
  if (!values.half) return static_cast<const float*>(values.data)[i];
  float value = 0.f;
  kernel_.half_to_float(static_cast<const uint16_t*>(values.data) + i, &value, 1);
  return value;
}

LutGemm::LutGemm(const Geometry& geo, const uint8_t* planes, const QuantParams& quant,
                 const std::vector<float>& scales, const std::vector<float>& offsets, const KernelOps& kernel,
                 int64_t int8_min_rows)
    : quant_(quant),
      nibble_positions_(NibblePositions(int(geo.bits))),
      kernel_(kernel),
      build_tables_(!geo.triples                      ? kernel.build_tables
                    : kernel.build_triple_tables      ? kernel.build_triple_tables
                                                      : ScalarKernel().build_triple_tables),
      gemm_tiles_(!geo.triples                ? kernel.gemm_tiles
                  : kernel.gemm_triple_tiles  ? kernel.gemm_triple_tiles
                                              : ScalarKernel().gemm_triple_tiles),
      gemm_tiles_int8_(geo.triples ? kernel.gemm_triple_tiles_int8 : kernel.gemm_tiles_int8),
      int8_min_rows_(gemm_tiles_int8_ == nullptr            ? 0
                     : int8_min_rows != kKernelDefault ? int8_min_rows
                     : geo.triples                     ? kernel.triple_int8_min_rows
                                                       : kernel.int8_min_rows[geo.bits - 1]) {
  weights_.geo = geo;
  weights_.planes = planes;
  AdviseHugePages(planes, size_t(geo.n_tiles) * geo.k_steps * geo.step_bytes());
  const size_t per_group = size_t(geo.N) * geo.n_groups;
  // `scales` and `offsets` are float copies for the preparation only: the kernel keeps fp16
  // units, the session the file's values.  (Keeping float copies of fp16 scales and offsets
  // cost 0.25 bytes per weight at group 32: loading a 4-bit Llama-shaped model took 1.8x its
  // file size, benchmarks/memory.py.)
  std::vector<float> constant;  // float offsets only
  // The kernels compute sum_k a_k q_k from +-1 planes: q = sum_i 2^i (s_i + 1) / 2, which
  // leaves (2^bits - 1) / 2 * sum_k a_k; fold it with the zero point or offset into one term.
  // Layout 3's tables sum t = q - 1, which leaves 1 * sum_k a_k: zero points of 1 need no
  // term; any others, and offsets, a stored constant s (1 - z) or s + o (exact in fp16 for
  // zero points: s' times 0, +-1 or 2).
  const float mid = geo.triples ? 1.f : float((1 << geo.bits) - 1) / 2.f;
  const int default_zero = 1 << (geo.bits - 1);
  const int symmetric_zero = geo.triples ? 1 : default_zero;
  const bool all_symmetric = quant.zero_points == nullptr
                                 ? !geo.triples
                                 : std::all_of(quant.zero_points, quant.zero_points + per_group,
                                               [&](uint8_t z) { return z == symmetric_zero; });
  Offsets kind = Offsets::kSymmetric;
  if (!offsets.empty()) {
    kind = Offsets::kConstants;
    constant.resize(per_group);
    for (size_t i = 0; i < per_group; ++i) constant[i] = scales[i] * mid + offsets[i];
  } else if (!all_symmetric && geo.triples) {
    kind = Offsets::kConstants;
    constant.resize(per_group);
    for (size_t i = 0; i < per_group; ++i)
      constant[i] = scales[i] * (1.f - float(quant.zero_points ? quant.zero_points[i] : default_zero));
  } else if (!all_symmetric) {
    kind = Offsets::kZeroPoints;
  }
  weights_.offsets = kind;
  // One unit per channel; only a stored constant takes part in choosing it (the others are
  // s' times at most 2^(bits-1) in fp32, far from any limit).
  std::vector<int> exponent(size_t(geo.N_pad), 0);
  weights_.channel_scale.assign(size_t(geo.N_pad), 1.0);
  for (int64_t n = 0; n < geo.N; ++n) {
    float max_abs = 0.f;
    for (int64_t grp = 0; grp < geo.n_groups; ++grp) {
      const size_t i = size_t(n * geo.n_groups + grp);
      max_abs = std::max(max_abs, std::fabs(scales[i]));
      if (kind == Offsets::kConstants) max_abs = std::max(max_abs, std::fabs(constant[i]));
    }
    exponent[n] = ChannelExponent(max_abs);
    weights_.channel_scale[n] = std::ldexp(1.0, exponent[n]);
  }
  weights_.scale = ToFp16Channels(geo, scales.data(), exponent, kernel);
  if (kind == Offsets::kConstants) weights_.constant = ToFp16Channels(geo, constant.data(), exponent, kernel);
  if (kind == Offsets::kZeroPoints) weights_.zero_points = ToNibbleChannels(geo, quant.zero_points);
}

float LutGemm::Dequantized(int64_t n, int64_t k) const {
  const Geometry& g = weights_.geo;
  const int q = QuantAt(g, weights_.planes, nibble_positions_, n, k);
  const size_t i = size_t(n * g.n_groups + k / g.group_size);
  const float s = ValueAt(quant_.scales, i);
  if (quant_.offsets.present()) return s * float(q) + ValueAt(quant_.offsets, i);
  const float zero = quant_.zero_points ? float(quant_.zero_points[i]) : float(1 << (g.bits - 1));
  return s * (float(q) - zero);
}

void LutGemm::AddNonFiniteTerms(const float* a, float* y) const {
  const Geometry& g = weights_.geo;
  for (int64_t k = 0; k < g.K; ++k) {
    if (IsFinite(a[k])) continue;
    for (int64_t n = 0; n < g.N; ++n) y[n] += a[k] * Dequantized(n, k);
  }
}

void LutGemm::Run(const float* a, int64_t rows, const float* bias, float* y,
                  const ParallelRunner& parallel) const {
  const Geometry& g = weights_.geo;
  if (rows <= 0) return;
  thread_local std::vector<char> row_finite;  // (the calling thread's; workers write through a pointer)
  row_finite.resize(size_t(rows));
  const OutputRows out{y, g.N, bias};
  if (int8_min_rows_ > 0 && rows >= int8_min_rows_) {
    RunInt8(a, rows, row_finite.data(), out, parallel);
  } else {
    RunTables(a, rows, row_finite.data(), out, parallel);
  }
  for (int64_t m = 0; m < rows; ++m)
    if (!row_finite[m]) AddNonFiniteTerms(a + m * g.K, y + m * g.N);
}

void LutGemm::ForTileChunks(const ParallelRunner& parallel, const std::function<void(int64_t, int64_t)>& tiles) const {
  // Tiles are split into chunks; each chunk runs all rows so a tile's weights are read from
  // memory once and reused from cache for the following rows.
  const int64_t n_tiles = weights_.geo.n_tiles;
  const int64_t chunks = std::min<int64_t>(n_tiles, kMaxTileChunks);
  // Until the pool's size is known, a call this long (a prefill) tells it as PoolThreads'
  // probe would; after that the items record nothing.
  const bool learning = chunks > 1 && pool_threads_.load(std::memory_order_relaxed) == 0;
  ThreadRecorder threads;
  const auto start = std::chrono::steady_clock::now();
  parallel(size_t(chunks), [&](size_t c) {
    if (learning) threads.Record();
    tiles(n_tiles * int64_t(c) / chunks, n_tiles * int64_t(c + 1) / chunks);
  });
  if (learning && std::chrono::steady_clock::now() - start >= kPoolProbeTime)
    pool_threads_.store(threads.Count(), std::memory_order_relaxed);
}

int64_t LutGemm::PoolThreads(const ParallelRunner& parallel) const {
  // Found once per object, from a call of ForTileChunks that lasted kPoolProbeTime (a
  // prefill) or else by a probe: items that each sleep until kPoolProbeTime after the start
  // show which threads take part (a session run on one thread that never prefills pays that
  // once per node).  Sleeping, not spinning: the probe's instructions are the same however
  // long it waits, so callgrind's counts stay repeatable.
  //
  // Threads seen running a decoding call's items are not enough: a chunk's items may all be
  // done before a sleeping worker wakes, and with that count a decoding call ran on one
  // thread (Zen 4, 2 threads, allow_spinning=0: a 2-bit 14336x4096 GEMV took 0.54 ms on one
  // thread and on two).  With the probe, 2 threads, `tmac-ort bench` against the previous
  // build in one process: 14336x4096 0.70x the time at 1 bit, 0.82x at 2, 1.02x at 4;
  // 4096x4096 and 4096x14336 0.95-1.05x.
  int64_t known = pool_threads_.load(std::memory_order_relaxed);
  if (known > 0) return known;
  ThreadRecorder threads;
  const auto start = std::chrono::steady_clock::now();
  parallel(size_t(kMaxTileChunks), [&](size_t) {
    threads.Record();
    std::this_thread::sleep_until(start + kPoolProbeTime);
  });
  known = threads.Count();
  pool_threads_.store(known, std::memory_order_relaxed);
  return known;
}

void LutGemm::RunTables(const float* a, int64_t rows, char* finite, const OutputRows& out,
                        const ParallelRunner& parallel) const {
  const Geometry& g = weights_.geo;
  // Scratch belongs to the calling thread; workers only write through pointers into it.
  thread_local std::vector<int8_t> tables;
  thread_local std::vector<float> block_info;
  thread_local std::vector<int32_t> block_exponent;
  thread_local std::vector<double> row_scale;
  const size_t table_row = size_t(g.k_steps) * g.table_step_bytes();
  tables.resize(table_row * rows + 63);
  block_info.resize(size_t(2) * g.n_blocks * rows);
  block_exponent.resize(size_t(g.n_blocks) * rows);
  row_scale.resize(size_t(rows));
  // (thread_local names inside the lambdas below would be the worker's own: use pointers)
  float* half_scale = block_info.data();
  float* block_sum = block_info.data() + g.n_blocks * rows;
  int32_t* exponents = block_exponent.data();
  double* row_scales = row_scale.data();
  // 64-byte aligned: layout 3's kernels load a step's tables as two zmm, and a load that
  // crosses a cache line takes two (Zen 4, a 4096x4096 ternary GEMV in cache, alternating
  // runs: 120-130 us against 142-156 unaligned).
  int8_t* tables_data = tables.data() + (-reinterpret_cast<uintptr_t>(tables.data()) & 63);
  auto build_row = [&](size_t m) {
    const size_t at = m * size_t(g.n_blocks);
    const RowTables row{tables_data + m * table_row, half_scale + at, block_sum + at, exponents + at};
    finite[m] = build_tables_(g, a + m * g.K, row);
    row_scales[m] = ToRowUnits(g.n_blocks, row.block_exponent, row.half_scale, row.block_sum);
  };
  if (rows == 1) {
    build_row(0);
  } else {
    parallel(size_t(rows), build_row);
  }
  const ActivationTables act{rows, tables_data, half_scale, block_sum, row_scales};
  if (rows > 1 || g.n_chunks() == 1) {
    ForTileChunks(parallel, [&](int64_t begin, int64_t end) { gemm_tiles_(weights_, act, begin, end, out); });
    return;
  }
  // One row of layout-2 (or 3) weights: K-chunk by K-chunk, every tile's part of a chunk before the
  // next chunk.  That is the order the weights are stored in, and a chunk's tables (2 KB)
  // stay in L1, where tile by tile a 4096-wide row's 16 KB of tables was evicted by each
  // tile's weights.  Zen 4, one thread, 12-24 matrices streamed as decoding reads them, paired
  // with the same bytes as layout 1 (benchmarks/2026-11-28-zen4-session9/layout_pairs.cc):
  // 1.15-1.35x the GB/s at K = 2560-14336, 1.0-1.04x at SmolLM2's K = 576 and 1536.
  //
  // On one thread (PoolThreads) the chunks follow each other in storage order, here.  With
  // more, the tiles are split into ranges, each run chunk by chunk by one thread, so every
  // tile is summed in the same order (as on one thread, and as layout 1 and several rows
  // are): the outputs depend neither on the pool's size nor on how fast a worker wakes.
  // The tenth session cut the storage order into one piece per thread instead, each summed
  // in its own carry and added at the end; its outputs changed with the piece count, which
  // follows the pool's size as PoolThreads' timed probe finds it (Zen 3 under load: 12
  // two-thread sessions gave two distinct outputs, 7 equal to one thread's).  Cost: a range
  // leaves the storage order at each chunk.  Zen 3, one thread streaming 14336x4096 from
  // DRAM in 2 / 4 / 8 / 16 ranges took 1.01-1.10x / 1.06-1.09x / 1.12-1.34x / 1.18-1.41x the
  // storage order's time at 1-4 bits, 4096x14336 (wider ranges) 0.99-1.07x up to 8 ranges
  // (benchmarks/2026-12-06-zen3-session15; the unchanged build measured 1.00-1.06x its own
  // time in the same runs).  So few ranges, but more than one per thread so that a worker
  // waking late still takes some (a lone piece each often left both to the caller).  Sums
  // per chunk, added in chunk order at the end, kept the stream but cost more: the final
  // pass over 8 chunks of 14336 outputs written on two cores took 0.07-0.10 ms a call
  // (4096x14336 in cache, 2 threads, 1-2 bits: 1.02-1.21x the time of one piece per thread).
  const int64_t n_chunks = g.n_chunks();
  thread_local std::vector<float> carry;  // each tile's sum so far, n_tiles * 32 floats
  carry.resize(size_t(g.n_tiles) * kTileN);
  float* sums = carry.data();
  auto run_tiles = [&](int64_t tile_begin, int64_t tile_end) {  // chunk by chunk; the last writes y
    OutputRows p = out;
    p.carry = sums;
    for (int64_t c = 0; c < n_chunks; ++c) {
      p.block_begin = c * g.chunk_blocks();
      p.block_end = std::min(g.n_blocks, p.block_begin + g.chunk_blocks());
      gemm_tiles_(weights_, act, tile_begin, tile_end, p);
    }
  };
  const int64_t threads = PoolThreads(parallel);
  if (threads == 1) {
    run_tiles(0, g.n_tiles);
    return;
  }
  const int64_t ranges = std::min(g.n_tiles, threads * kTileRangesPerThread);
  parallel(size_t(ranges), [&](size_t i) {
    run_tiles(g.n_tiles * int64_t(i) / ranges, g.n_tiles * int64_t(i + 1) / ranges);
  });
}

void LutGemm::RunInt8(const float* a, int64_t rows, char* finite, const OutputRows& out,
                      const ParallelRunner& parallel) const {
  const Geometry& g = weights_.geo;
  thread_local std::vector<int8_t> values;
  thread_local std::vector<float> block_floats;   // steps, then block sums
  thread_local std::vector<int32_t> block_ints;   // value sums, then exponents
  thread_local std::vector<double> row_scale;
  const size_t blocks = size_t(g.n_blocks) * rows;
  // Rows one cache line further apart than whole lines: the product reads a block of 8 rows
  // at a time, and rows 4 KB apart (K = 4096) all fall into one L1 set.  Zen 4, M=32-128,
  // 4-bit group 32 with zero points: 0.92-0.96x the time (medians of 9 interleaved runs).
  const int64_t stride = (g.K_pad + 63) / 64 * 64 + 64;
  values.resize(size_t(stride) * rows);
  block_floats.resize(2 * blocks);
  block_ints.resize(2 * blocks);
  row_scale.resize(size_t(rows));
  int8_t* values_data = values.data();
  float* steps = block_floats.data();
  float* block_sums = block_floats.data() + blocks;
  int32_t* value_sums = block_ints.data();
  int32_t* exponents = block_ints.data() + blocks;
  double* row_scales = row_scale.data();
  parallel(size_t(rows), [&](size_t m) {
    const size_t at = m * size_t(g.n_blocks);
    const Int8Row row{values_data + m * stride, steps + at, block_sums + at, value_sums + at, exponents + at};
    finite[m] = kernel_.quantize_row(g, a + m * g.K, row);
    row_scales[m] = ToRowUnits(g.n_blocks, row.block_exponent, row.step, row.block_sum);
  });
  const Int8Rows act{rows, stride, values_data, steps, block_sums, value_sums, row_scales};
  ForTileChunks(parallel, [&](int64_t begin, int64_t end) { gemm_tiles_int8_(weights_, act, begin, end, out); });
}

}  // namespace tmac
