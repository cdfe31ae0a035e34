#include "lut_gemm_op.h"

#include <atomic>
#include <cmath>
#include <exception>
#include <type_traits>
#include <utility>
#include <vector>

namespace tmac {
namespace {

using Shape = std::vector<int64_t>;

// "com.tmac.LutGemm", for messages
const std::string& FullOpName() {
  static const std::string name = std::string(kDomain) + "." + kOpName;
  return name;
}

std::string ShapeText(const Shape& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// A constant (initializer) input of the node, checked for dtype and shape.
struct ConstantInput {
  const void* data = nullptr;
  bool present = false;
};

// Everything kernel creation reads from the node; errors carry the node name.
class NodeReader {
 public:
  NodeReader(const OrtApi& api, const OrtKernelInfo* info) : api_(api), info_(info), ki_(info) {
    name_ = ki_.GetNodeName();
  }

  const std::string& name() const { return name_; }

  std::string Error(const std::string& what) const {
    return FullOpName() + " node '" + name_ + "': " + what;
  }

  // A warning in the session's log (it loads, but not as well as it could).
  void Warn(const std::string& what) const {
    ORT_CXX_LOG(ki_.GetLogger(), ORT_LOGGING_LEVEL_WARNING, Error(what).c_str());
  }

  bool ReadInt(const char* attr, int64_t* value, std::string* error) const {
    OrtStatus* status = api_.KernelInfoGetAttribute_int64(info_, attr, value);
    if (status == nullptr) return true;
    api_.ReleaseStatus(status);
    *error = Error(std::string("missing or non-integer attribute '") + attr + "'");
    return false;
  }

  bool HasInput(size_t index) const { return index < ki_.GetInputCount() && !ki_.GetInputName(index).empty(); }

  // Reads input `index` as a constant tensor of `type` and exactly `shape`.
  bool ReadConstant(size_t index, const char* what, ONNXTensorElementDataType type, const Shape& shape,
                    ConstantInput* out, std::string* error) const {
    if (!HasInput(index)) return true;
    Ort::ConstValue value{nullptr};
    if (!Constant(index, what, &value, error)) return false;
    const ONNXTensorElementDataType actual = value.GetTensorTypeAndShapeInfo().GetElementType();
    if (actual != type) {
      *error = Error(std::string(what) + " has the wrong element type (" + std::to_string(actual) + ", expected " +
                     std::to_string(type) + ")");
      return false;
    }
    return CheckShape(value, what, shape, out, error);
  }

  // Reads a float or float16 constant in place (the file keeps scales and offsets as fp16
  // when they are exact fp16 numbers: docs/packed-format.md).
  bool ReadFloats(size_t index, const char* what, const Shape& shape, GroupValues* out, std::string* error) const {
    if (!HasInput(index)) return true;
    Ort::ConstValue value{nullptr};
    if (!Constant(index, what, &value, error)) return false;
    const ONNXTensorElementDataType type = value.GetTensorTypeAndShapeInfo().GetElementType();
    if (type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT && type != ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16) {
      *error = Error(std::string(what) + " has the wrong element type (" + std::to_string(type) +
                     ", expected float or float16)");
      return false;
    }
    ConstantInput constant;
    if (!CheckShape(value, what, shape, &constant, error)) return false;
    out->data = constant.data;
    out->half = type == ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
    return true;
  }

 private:
  // Input `index` as a constant tensor, or false (it is a graph input, not an initializer).
  bool Constant(size_t index, const char* what, Ort::ConstValue* value, std::string* error) const {
    int is_constant = 0;
    *value = ki_.GetTensorConstantInput(index, &is_constant);
    if (!is_constant || *value == nullptr) {
      *error = Error(std::string(what) + " must be a constant initializer (it is read once at session creation)");
      return false;
    }
    return true;
  }

  // `value` (its type already checked) with exactly `shape`.
  bool CheckShape(const Ort::ConstValue& value, const char* what, const Shape& shape, ConstantInput* out,
                  std::string* error) const {
    const Shape actual = value.GetTensorTypeAndShapeInfo().GetShape();
    if (actual != shape) {
      *error = Error(std::string(what) + " has shape " + ShapeText(actual) + ", expected " + ShapeText(shape));
      return false;
    }
    out->data = value.GetTensorRawData();
    out->present = true;
    return true;
  }

  const OrtApi& api_;
  const OrtKernelInfo* info_;
  Ort::ConstKernelInfo ki_;
  std::string name_;
};

// Validates the node and prepares the weights; returns null and sets `error` on bad input.
std::unique_ptr<LutGemm> CreateGemm(const NodeReader& node, const KernelOps& kernel, int64_t int8_min_rows,
                                    std::string* error) {
  int64_t K, N, bits, group_size, layout_version;
  if (!node.ReadInt("K", &K, error) || !node.ReadInt("N", &N, error) || !node.ReadInt("bits", &bits, error) ||
      !node.ReadInt("group_size", &group_size, error) || !node.ReadInt("layout_version", &layout_version, error))
    return nullptr;
  if (layout_version < kOldestLayoutVersion || layout_version > kNewestLayoutVersion) {
    *error = node.Error("layout_version " + std::to_string(layout_version) + " is not supported (this library reads " +
                        std::to_string(kOldestLayoutVersion) + " to " + std::to_string(kNewestLayoutVersion) + ")");
    return nullptr;
  }
  Geometry geo;
  if (const char* why = MakeGeometry(K, N, bits, group_size, &geo, layout_version)) {
    *error = node.Error(std::string(why) + " (K=" + std::to_string(K) + ", N=" + std::to_string(N) +
                        ", bits=" + std::to_string(bits) + ", group_size=" + std::to_string(group_size) + ")");
    return nullptr;
  }
  ConstantInput planes, zero_points;
  GroupValues scales, offsets;
  const Shape per_group{geo.N, geo.n_groups};
  if (!node.HasInput(kPackedWeights) || !node.HasInput(kScales)) {
    *error = node.Error("packed_weights and scales inputs are required");
    return nullptr;
  }
  // layout 1: [tile][step][byte]; layouts 2 and 3: [step in storage order][byte] (chunk by chunk)
  const Shape planes_shape = layout_version == 1 ? Shape{geo.n_tiles, geo.k_steps, geo.step_bytes()}
                                                 : Shape{geo.n_tiles * geo.k_steps, geo.step_bytes()};
  if (!node.ReadConstant(kPackedWeights, "packed_weights", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, planes_shape,
                         &planes, error) ||
      !node.ReadFloats(kScales, "scales", per_group, &scales, error) ||
      !node.ReadConstant(kZeroPoints, "zero_points", ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8, per_group, &zero_points,
                         error) ||
      !node.ReadFloats(kOffsets, "offsets", per_group, &offsets, error))
    return nullptr;
  if (zero_points.present && offsets.present()) {
    *error = node.Error("give zero_points or offsets, not both");
    return nullptr;
  }
  if (zero_points.present) {
    const auto* zp = static_cast<const uint8_t*>(zero_points.data);
    for (int64_t i = 0; i < geo.N * geo.n_groups; ++i) {
      if (zp[i] >= (1 << bits)) {
        *error = node.Error("zero point " + std::to_string(zp[i]) + " does not fit in " + std::to_string(bits) + " bits");
        return nullptr;
      }
    }
  }
  // Finite scales and offsets are the op's contract (docs/packed-format.md): NaN and infinities
  // of a float product come from the activations only.
  const size_t count = size_t(geo.N * geo.n_groups);
  // (float temporaries, which the preparation reads too)
  const std::vector<float> scale_values = ToFloats(scales, count, kernel);
  const std::vector<float> offset_values = ToFloats(offsets, count, kernel);
  for (size_t i = 0; i < count; ++i) {
    const bool scale_ok = std::isfinite(scale_values[i]);
    if (!scale_ok || (!offset_values.empty() && !std::isfinite(offset_values[i]))) {
      *error = node.Error(std::string(scale_ok ? "offsets" : "scales") + " hold a NaN or an " +
                          "infinity (channel " + std::to_string(i / geo.n_groups) + ", group " +
                          std::to_string(i % geo.n_groups) + ")");
      return nullptr;
    }
  }
  QuantParams quant{scales, static_cast<const uint8_t*>(zero_points.data), offsets};
  return std::make_unique<LutGemm>(geo, static_cast<const uint8_t*>(planes.data), quant, scale_values, offset_values,
                                   kernel, int8_min_rows);
}

OrtStatusPtr MakeStatus(OrtErrorCode code, const std::string& message) {
  return Ort::GetApi().CreateStatus(code, message.c_str());
}

}  // namespace

template <typename T>
ONNXTensorElementDataType LutGemmOp<T>::ElementType() {
  return std::is_same<T, float>::value ? ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT : ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
}

template <typename T>
ONNXTensorElementDataType LutGemmOp<T>::GetInputType(size_t index) const {
  switch (index) {
    case kA:
    case kBias: return ElementType();
    case kPackedWeights:
    case kZeroPoints: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8;
    // float or float16 (checked at kernel creation): UNDEFINED lets ORT take either
    default: return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  }
}

template <typename T>
OrtStatusPtr LutGemmOp<T>::CreateKernelV2(const OrtApi&, const OrtKernelInfo* info, void** kernel) const {
  std::string error;
  try {
    NodeReader node(Ort::GetApi(), info);
    std::unique_ptr<LutGemm> gemm = CreateGemm(node, kernel_->ops(), int8_min_rows_, &error);
    if (!gemm) return MakeStatus(ORT_INVALID_ARGUMENT, error);
    if (gemm->geometry().triples && kernel_->ops().gemm_triple_tiles == nullptr)
      node.Warn(std::string("layout 3 (ternary triples) has no code in kernel ") + kernel_->name +
                ": it runs on the scalar kernel's, many times slower; layout 2 (tmac-ort rewrite without "
                "--ternary-layout 3) is fast on every CPU");
    *kernel = new LutGemmNode<T>(std::move(gemm), node.name());
    return nullptr;
  } catch (const std::exception& e) {
    return MakeStatus(ORT_INVALID_ARGUMENT, FullOpName() + ": " + e.what());
  }
}

// Y has A's leading dimensions and N.  Written against the C API: the 1.21 C++ wrapper
// marks symbolic dims with -2, which newer runtimes reject.
template <typename T>
OrtStatusPtr LutGemmOp<T>::InferShape(OrtShapeInferContext* ctx) {
  const OrtApi& api = Ort::GetApi();
  const OrtOpAttr* attr = nullptr;
  int64_t N = 0;
  size_t size = 0;
  OrtStatus* status = api.ShapeInferContext_GetAttribute(ctx, "N", &attr);
  if (!status) status = api.ReadOpAttr(attr, ORT_OP_ATTR_INT, &N, sizeof(N), &size);
  OrtTensorTypeAndShapeInfo* a_info = nullptr;  // owned by the context: not released here
  if (!status) status = api.ShapeInferContext_GetInputTypeShape(ctx, kA, &a_info);
  size_t rank = 0;
  // Y takes A's type: ORT runs one schema's inference for both the float and float16 op.
  ONNXTensorElementDataType type = ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
  if (!status) status = api.GetTensorElementType(a_info, &type);
  if (!status) status = api.GetDimensionsCount(a_info, &rank);
  std::vector<int64_t> dims(rank);
  std::vector<const char*> names(rank, "");
  if (!status && rank > 0) status = api.GetDimensions(a_info, dims.data(), rank);
  if (!status && rank > 0) status = api.GetSymbolicDimensions(a_info, names.data(), rank);
  if (status) return status;
  if (rank == 0) return api.CreateStatus(ORT_INVALID_ARGUMENT, (FullOpName() + ": A must have at least one dimension").c_str());
  // ORT writes a dim without a symbolic name as a concrete value, so an unnamed dynamic dim
  // would become the number -1 and graph optimisers would fold Shape(Y) into -1s.  Such dims
  // get a fresh name instead: unknown, and unconstrained like ORT's own "unk__" dims.
  std::vector<std::string> fresh_names(rank);
  for (size_t i = 0; i < rank; ++i) {
    if (names[i] == nullptr) names[i] = "";
    if (dims[i] < 0 && names[i][0] == '\0') {
      static std::atomic<uint64_t> counter{0};
      fresh_names[i] = "tmac_unk__" + std::to_string(counter++);
      names[i] = fresh_names[i].c_str();
    }
    if (dims[i] < 0) dims[i] = -1;
  }
  dims.back() = N;
  names.back() = "";
  OrtTensorTypeAndShapeInfo* y_info = nullptr;
  status = api.CreateTensorTypeAndShapeInfo(&y_info);
  if (!status) status = api.SetTensorElementType(y_info, type);
  if (!status) status = api.SetDimensions(y_info, dims.data(), rank);
  if (!status) status = api.SetSymbolicDimensions(y_info, names.data(), rank);
  if (!status) status = api.ShapeInferContext_SetOutputTypeShape(ctx, 0, y_info);
  if (y_info) api.ReleaseTensorTypeAndShapeInfo(y_info);
  return status;
}

template <typename T>
OrtStatusPtr LutGemmNode<T>::ComputeV2(OrtKernelContext* context) {
  try {
    Ort::KernelContext ctx(context);
    const Geometry& g = gemm_->geometry();
    auto fail = [&](const std::string& what) {
      return MakeStatus(ORT_INVALID_ARGUMENT, FullOpName() + " node '" + node_name_ + "': " + what);
    };
    Ort::ConstValue a = ctx.GetInput(kA);
    const Shape a_shape = a.GetTensorTypeAndShapeInfo().GetShape();
    if (a_shape.empty() || a_shape.back() != g.K)
      return fail("A has shape " + ShapeText(a_shape) + ", its last dimension must be K=" + std::to_string(g.K));
    int64_t rows = 1;
    for (size_t i = 0; i + 1 < a_shape.size(); ++i) rows *= a_shape[i];
    const T* bias = nullptr;
    if (ctx.GetInputCount() > kBias) {
      Ort::ConstValue b = ctx.GetInput(kBias);
      if (b != nullptr) {
        const Shape b_shape = b.GetTensorTypeAndShapeInfo().GetShape();
        if (b_shape != Shape{g.N}) return fail("bias has shape " + ShapeText(b_shape) + ", expected [N]");
        bias = b.GetTensorData<T>();
      }
    }
    Shape y_shape = a_shape;
    y_shape.back() = g.N;
    Ort::UnownedValue y = ctx.GetOutput(0, y_shape);
    if (rows == 0) return nullptr;

    const std::function<void(size_t)>* job = nullptr;
    ParallelRunner parallel = [&](size_t count, const std::function<void(size_t)>& body) {
      if (count == 1) return body(0);
      job = &body;
      ctx.ParallelFor([](void* data, size_t i) { (**static_cast<const std::function<void(size_t)>**>(data))(i); },
                      count, 0, &job);
    };
    const KernelOps& kernel = gemm_->kernel();
    if constexpr (std::is_same<T, float>::value) {
      gemm_->Run(a.GetTensorData<float>(), rows, bias, y.GetTensorMutableData<float>(), parallel);
    } else {
      // float16 A: compute in float32 and round the result once.
      thread_local std::vector<float> a32, y32, bias32;
      a32.resize(size_t(rows * g.K));
      y32.resize(size_t(rows * g.N));
      kernel.half_to_float(reinterpret_cast<const uint16_t*>(a.GetTensorData<T>()), a32.data(), a32.size());
      if (bias) {
        bias32.resize(size_t(g.N));
        kernel.half_to_float(reinterpret_cast<const uint16_t*>(bias), bias32.data(), bias32.size());
      }
      gemm_->Run(a32.data(), rows, bias ? bias32.data() : nullptr, y32.data(), parallel);
      kernel.float_to_half(y32.data(), reinterpret_cast<uint16_t*>(y.GetTensorMutableData<T>()), y32.size());
    }
    return nullptr;
  } catch (const std::exception& e) {
    return MakeStatus(ORT_RUNTIME_EXCEPTION, FullOpName() + " node '" + node_name_ + "': " + e.what());
  }
}

OrtStatusPtr KernelsNode::ComputeV2(OrtKernelContext* context) {
  try {
    Ort::KernelContext ctx(context);
    const std::vector<KernelListing> kernels = ListKernels();
    std::vector<const char*> names, reasons;
    for (const KernelListing& k : kernels) {
      names.push_back(k.name.c_str());
      reasons.push_back(k.unavailable.c_str());
    }
    const size_t count = kernels.size();
    const int64_t n = int64_t(count), one = 1;
    ctx.GetOutput(0, &n, 1).FillStringTensor(names.data(), count);
    ctx.GetOutput(1, &n, 1).FillStringTensor(reasons.data(), count);
    const char* selected = selected_->name;
    ctx.GetOutput(2, &one, 1).FillStringTensor(&selected, 1);
    const int64_t by_width[2] = {n, 4};
    int64_t* int8_rows = ctx.GetOutput(3, by_width, 2).GetTensorMutableData<int64_t>();
    for (size_t i = 0; i < count; ++i)
      for (size_t b = 0; b < 4; ++b) int8_rows[4 * i + b] = kernels[i].int8_min_rows[b];
    int64_t* triple_rows = ctx.GetOutput(4, &n, 1).GetTensorMutableData<int64_t>();
    for (size_t i = 0; i < count; ++i) triple_rows[i] = kernels[i].triple_int8_min_rows;
    return nullptr;
  } catch (const std::exception& e) {
    return MakeStatus(ORT_RUNTIME_EXCEPTION, std::string("com.tmac.Kernels: ") + e.what());
  }
}

template struct LutGemmOp<float>;
template struct LutGemmOp<Ort::Float16_t>;
template struct LutGemmNode<float>;
template struct LutGemmNode<Ort::Float16_t>;

}  // namespace tmac
