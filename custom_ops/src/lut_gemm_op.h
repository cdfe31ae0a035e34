// ONNX Runtime glue for com.tmac.LutGemm: schema, kernel creation (validation and weight
// preparation) and Compute.  The math lives in lut_gemm.h and kernels/.
#pragma once

#include <memory>
#include <string>

#include "lut_gemm.h"
#include "ort_api.h"

namespace tmac {

constexpr const char* kDomain = "com.tmac";
constexpr const char* kOpName = "LutGemm";

// Inputs, in node order.
enum Input : size_t { kA = 0, kPackedWeights, kScales, kZeroPoints, kOffsets, kBias, kInputCount };

template <typename T>
struct LutGemmKernel {
  LutGemmKernel(std::unique_ptr<LutGemm> gemm, std::string node_name)
      : gemm_(std::move(gemm)), node_name_(std::move(node_name)) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

 private:
  std::unique_ptr<LutGemm> gemm_;
  std::string node_name_;
};

// T is float or Ort::Float16_t: the type of A, bias and Y.
template <typename T>
struct LutGemmOp : Ort::CustomOpBase<LutGemmOp<T>, LutGemmKernel<T>, /*WithStatus=*/true> {
  LutGemmOp() {
    // Set directly rather than through CustomOpBase::SetShapeInferFn (see InferShape).
    OrtCustomOp::InferOutputShapeFn = [](const OrtCustomOp*, OrtShapeInferContext* ctx) { return InferShape(ctx); };
  }
  OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const;
  const char* GetName() const { return kOpName; }
  size_t GetInputTypeCount() const { return kInputCount; }
  ONNXTensorElementDataType GetInputType(size_t index) const;
  OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
    return index <= kScales ? INPUT_OUTPUT_REQUIRED : INPUT_OUTPUT_OPTIONAL;
  }
  size_t GetOutputTypeCount() const { return 1; }
  ONNXTensorElementDataType GetOutputType(size_t) const { return ElementType(); }
  static ONNXTensorElementDataType ElementType();
  static OrtStatusPtr InferShape(OrtShapeInferContext* ctx);
};

}  // namespace tmac
