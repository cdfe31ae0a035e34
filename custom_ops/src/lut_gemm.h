// The LutGemm computation independent of ONNX Runtime: weight preparation and the
// per-call driver (tables, then tiles), parallelised through a caller-supplied runner.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/lut_kernel.h"

namespace tmac {

// Runs body(i) for i in [0, count), possibly in parallel.
using ParallelRunner = std::function<void(size_t count, const std::function<void(size_t)>& body)>;

// The quantisation parameters of one weight, as the op's inputs give them (the session's
// initializers: they outlive the LutGemm).
struct QuantParams {
  const float* scales = nullptr;         // [N, n_groups]
  const uint8_t* zero_points = nullptr;  // [N, n_groups] or null
  const float* offsets = nullptr;        // [N, n_groups] or null (w = s*q + offset)
};

// Scales or offsets that the file stores as fp16, converted to float once; `quant` points into
// them, and the LutGemm keeps them (moving a vector keeps its buffer).
struct ConvertedParams {
  std::vector<float> scales, offsets;
};

class LutGemm {
 public:
  // `planes` and `quant` must outlive this object (they are the session's initializers, or
  // `converted`, which it keeps).
  LutGemm(const Geometry& geo, const uint8_t* planes, const QuantParams& quant, const KernelOps& kernel,
          ConvertedParams converted = {});

  // Y[M, N] = A[M, K] * W^T (+ bias).  A, Y and bias are float32.
  void Run(const float* a, int64_t rows, const float* bias, float* y, const ParallelRunner& parallel) const;

  const Geometry& geometry() const { return weights_.geo; }
  const KernelOps& kernel() const { return kernel_; }

 private:
  // w[n, k] in fp32 as MatMulNBits dequantises it: s * (q - z) or s * q + o.
  float Dequantized(int64_t n, int64_t k) const;
  // y[n] += a[k] * w[n, k] for every k whose a[k] is NaN or infinite (see docs/packed-format.md).
  void AddNonFiniteTerms(const float* a, float* y) const;

  PreparedWeights weights_;
  ConvertedParams converted_;
  QuantParams quant_;
  std::vector<NibblePosition> nibble_positions_;  // for Dequantized
  const KernelOps& kernel_;
};

}  // namespace tmac
