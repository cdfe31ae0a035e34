// Library entry point: the only exported symbol.
#include <mutex>

#include "lut_gemm_op.h"

namespace {

// Ops and domain live for the whole process: sessions keep pointers to them.
Ort::CustomOpDomain* Domain() {
  static tmac::LutGemmOp<float> op_float;
  static tmac::LutGemmOp<Ort::Float16_t> op_half;
  static Ort::CustomOpDomain* domain = [] {
    auto* d = new Ort::CustomOpDomain(tmac::kDomain);
    d->Add(&op_float);
    d->Add(&op_half);
    return d;
  }();
  return domain;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) OrtStatus* ORT_API_CALL
RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
  const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    // Older than the API this library was built for; API 1 exists in every release.
    return api_base->GetApi(1)->CreateStatus(
        ORT_FAIL, "tmac-ort: this onnxruntime is too old; LutGemm needs ORT API version 21 (onnxruntime >= 1.21)");
  }
  static std::once_flag init;
  std::call_once(init, [api] { Ort::InitApi(api); });
  try {
    Ort::UnownedSessionOptions(options).Add(*Domain());
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
  return nullptr;
}
