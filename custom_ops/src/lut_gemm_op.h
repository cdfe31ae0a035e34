// ONNX Runtime glue for com.tmac.LutGemm: schema, kernel creation (validation and weight
// preparation) and Compute.  The math lives in lut_gemm.h and kernels/.
#pragma once

#include <memory>
#include <string>

#include "kernels/registry.h"
#include "lut_gemm.h"
#include "ort_api.h"

namespace tmac {

constexpr const char* kDomain = "com.tmac";
constexpr const char* kOpName = "LutGemm";
constexpr const char* kKernelsOpName = "Kernels";
// Session option naming the kernel every LutGemm of the session runs (default: TMAC_ORT_KERNEL,
// else the best one this CPU has).
constexpr const char* kKernelConfigKey = "tmac.kernel";
// Session option: calls of at least this many rows take the kernel's int8 path, where it has
// one; 0 never (default: TMAC_ORT_INT8_MIN_ROWS, else the kernel's own choice per bit width,
// KernelOps::int8_min_rows).
constexpr const char* kInt8MinRowsConfigKey = "tmac.int8_min_rows";
// Its default where a session sets no tmac.int8_min_rows (read at every session creation).
constexpr const char* kInt8MinRowsEnvironment = "TMAC_ORT_INT8_MIN_ROWS";

// Inputs, in node order.
enum Input : size_t { kA = 0, kPackedWeights, kScales, kZeroPoints, kOffsets, kBias, kInputCount };

// What ORT creates per LutGemm node (ORT calls it the node's kernel; in this project "kernel"
// means an ISA kernel of the registry): the prepared weights and the node's name.
template <typename T>
struct LutGemmNode {
  LutGemmNode(std::unique_ptr<LutGemm> gemm, std::string node_name)
      : gemm_(std::move(gemm)), node_name_(std::move(node_name)) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

 private:
  std::unique_ptr<LutGemm> gemm_;
  std::string node_name_;
};

// T is float or Ort::Float16_t: the type of A, bias and Y.  One op object per kernel of the
// registry (sessions keep pointers to ops: they live for the whole process).
template <typename T>
struct LutGemmOp : Ort::CustomOpBase<LutGemmOp<T>, LutGemmNode<T>, /*WithStatus=*/true> {
  LutGemmOp(const KernelEntry* kernel, int64_t int8_min_rows) : kernel_(kernel), int8_min_rows_(int8_min_rows) {
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

 private:
  const KernelEntry* kernel_;
  int64_t int8_min_rows_;  // LutGemm::kKernelDefault unless the session option sets it
};

// com.tmac.Kernels: no inputs; outputs the registry as tensors [n], best first: `names`,
// `unavailable` (why a kernel cannot run in this process, "" when it can), `selected` ([1]:
// the kernel this session's LutGemm nodes run) and `int8_min_rows` (int64: from how many rows
// a kernel takes its int8 path by default, 0 where it has none).  tmac_ort.kernel_registry()
// reads it.
struct KernelsNode {
  explicit KernelsNode(const KernelEntry* selected) : selected_(selected) {}
  OrtStatusPtr ComputeV2(OrtKernelContext* context);

 private:
  const KernelEntry* selected_;
};

struct KernelsOp : Ort::CustomOpBase<KernelsOp, KernelsNode, /*WithStatus=*/true> {
  explicit KernelsOp(const KernelEntry* kernel) : kernel_(kernel) {}
  OrtStatusPtr CreateKernelV2(const OrtApi&, const OrtKernelInfo*, void** kernel) const {
    *kernel = new KernelsNode(kernel_);
    return nullptr;
  }
  const char* GetName() const { return kKernelsOpName; }
  size_t GetInputTypeCount() const { return 0; }
  ONNXTensorElementDataType GetInputType(size_t) const { return ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING; }
  size_t GetOutputTypeCount() const { return 5; }
  ONNXTensorElementDataType GetOutputType(size_t index) const {
    return index >= 3 ? ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64 : ONNX_TENSOR_ELEMENT_DATA_TYPE_STRING;
  }

 private:
  const KernelEntry* kernel_;
};

}  // namespace tmac
