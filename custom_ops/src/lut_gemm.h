// The LutGemm computation independent of ONNX Runtime: weight preparation and the
// per-call driver (tables, then tiles), parallelised through a caller-supplied runner.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/lut_kernel.h"

namespace tmac {

// Runs body(i) for i in [0, count), possibly in parallel.
using ParallelRunner = std::function<void(size_t count, const std::function<void(size_t)>& body)>;

// Per-group float values of a constant input as the file stores them: float32 or fp16.
struct GroupValues {
  const void* data = nullptr;
  bool half = false;
  bool present() const { return data != nullptr; }
};

// The quantisation parameters of one weight, as the op's inputs give them (the session's
// initializers: they outlive the LutGemm, which reads them in place and copies nothing).
struct QuantParams {
  GroupValues scales;                    // [N, n_groups]
  const uint8_t* zero_points = nullptr;  // [N, n_groups] or null
  GroupValues offsets;                   // [N, n_groups] or absent (w = s*q + offset)
};

// values[0, count) as float32, a temporary (fp16 values are converted by `kernel`); empty when
// the values are absent.
std::vector<float> ToFloats(const GroupValues& values, size_t count, const KernelOps& kernel);

class LutGemm {
 public:
  // `planes` and `quant` must outlive this object (they are the session's initializers).
  // `scales` and `offsets` are quant's values as float32 (ToFloats; offsets empty when absent):
  // the preparation reads them, and the op glue has made them already to check them.
  // `int8_min_rows`: calls of at least this many rows take the kernel's int8 path (where it
  // has one); 0 never; kKernelDefault: the kernel's own choice (KernelOps::int8_min_rows).
  static constexpr int64_t kKernelDefault = -1;
  LutGemm(const Geometry& geo, const uint8_t* planes, const QuantParams& quant, const std::vector<float>& scales,
          const std::vector<float>& offsets, const KernelOps& kernel, int64_t int8_min_rows = kKernelDefault);

  // Y[M, N] = A[M, K] * W^T (+ bias).  A, Y and bias are float32.
  void Run(const float* a, int64_t rows, const float* bias, float* y, const ParallelRunner& parallel) const;

  const Geometry& geometry() const { return weights_.geo; }
  const KernelOps& kernel() const { return kernel_; }

 private:
  // The two ways of a call: lookup tables per row, or int8 rows and a dot product.
  void RunTables(const float* a, int64_t rows, char* finite, const OutputRows& out, const ParallelRunner& parallel) const;
  void RunInt8(const float* a, int64_t rows, char* finite, const OutputRows& out, const ParallelRunner& parallel) const;
  // Runs tiles(begin, end) over the tiles in chunks, in parallel.
  void ForTileChunks(const ParallelRunner& parallel, const std::function<void(int64_t, int64_t)>& tiles) const;
  // How many threads `parallel` runs items on, learnt once per object from a long call or
  // by a probe (the session's pool does not change).
  int64_t PoolThreads(const ParallelRunner& parallel) const;

  // w[n, k] in fp32 as MatMulNBits dequantises it: s * (q - z) or s * q + o.
  float Dequantized(int64_t n, int64_t k) const;
  // y[n] += a[k] * w[n, k] for every k whose a[k] is NaN or infinite (see docs/packed-format.md).
  void AddNonFiniteTerms(const float* a, float* y) const;

  // one per-group value (float32 or fp16 in the file) as float
  float ValueAt(const GroupValues& values, size_t i) const;

  PreparedWeights weights_;
  QuantParams quant_;
  NibbleMap nibble_positions_;  // for Dequantized
  const KernelOps& kernel_;
  // The lookup path's two functions: the kernel's, or for layout 3 its triple functions (the
  // scalar kernel's where it has none).
  decltype(KernelOps::build_tables) build_tables_;
  decltype(KernelOps::gemm_tiles) gemm_tiles_;
  decltype(KernelOps::gemm_tiles_int8) gemm_tiles_int8_;  // the int8 path's (layout 3: its triple form)
  int64_t int8_min_rows_;  // 0: no int8 path
  mutable std::atomic<int64_t> pool_threads_{0};  // 0: not probed yet
};

}  // namespace tmac
