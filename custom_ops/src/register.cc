// Library entry point: the only exported symbol.
#include <memory>
#include <mutex>
#include <vector>

#include "lut_gemm_op.h"

namespace {

// The com.tmac domain whose ops run `kernel`.  Ops and domains live for the whole process
// (sessions keep pointers to them): one set per kernel of the registry, made on first use.
struct KernelDomain {
  explicit KernelDomain(const tmac::KernelEntry* kernel)
      : kernel(kernel), op_float(kernel), op_half(kernel), kernels_op(kernel), domain(tmac::kDomain) {
    domain.Add(&op_float);
    domain.Add(&op_half);
    domain.Add(&kernels_op);
  }
  const tmac::KernelEntry* kernel;
  tmac::LutGemmOp<float> op_float;
  tmac::LutGemmOp<Ort::Float16_t> op_half;
  tmac::KernelsOp kernels_op;
  Ort::CustomOpDomain domain;
};

Ort::CustomOpDomain& DomainFor(const tmac::KernelEntry* kernel) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<KernelDomain>>* domains = new std::vector<std::unique_ptr<KernelDomain>>();
  std::lock_guard<std::mutex> lock(mutex);
  for (auto& d : *domains)
    if (d->kernel == kernel) return d->domain;
  domains->push_back(std::make_unique<KernelDomain>(kernel));
  return domains->back()->domain;
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
    Ort::UnownedSessionOptions session_options(options);
    const std::string wanted = session_options.HasConfigEntry(tmac::kKernelConfigKey)
                                   ? session_options.GetConfigEntry(tmac::kKernelConfigKey)
                                   : std::string();
    std::string error;
    const tmac::KernelEntry* kernel = tmac::ChooseKernel(wanted, &error);
    if (kernel == nullptr) return api->CreateStatus(ORT_INVALID_ARGUMENT, ("tmac-ort: " + error).c_str());
    session_options.Add(DomainFor(kernel));
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
  return nullptr;
}
