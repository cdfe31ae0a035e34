// Library entry point: the only exported symbol.
#include <cstdlib>
#include <memory>
#include <mutex>
#include <vector>

#include "lut_gemm_op.h"

namespace {

// The com.tmac domain whose ops run `kernel` (int8 path from `int8_min_rows`).  Ops and
// domains live for the whole process (sessions keep pointers to them): one set per choice,
// made on first use.
struct KernelDomain {
  KernelDomain(const tmac::KernelEntry* kernel, int64_t int8_min_rows)
      : kernel(kernel),
        int8_min_rows(int8_min_rows),
        op_float(kernel, int8_min_rows),
        op_half(kernel, int8_min_rows),
        kernels_op(kernel),
        domain(tmac::kDomain) {
    domain.Add(&op_float);
    domain.Add(&op_half);
    domain.Add(&kernels_op);
  }
  const tmac::KernelEntry* kernel;
  int64_t int8_min_rows;
  tmac::LutGemmOp<float> op_float;
  tmac::LutGemmOp<Ort::Float16_t> op_half;
  tmac::KernelsOp kernels_op;
  Ort::CustomOpDomain domain;
};

Ort::CustomOpDomain& DomainFor(const tmac::KernelEntry* kernel, int64_t int8_min_rows) {
  static std::mutex mutex;
  static std::vector<std::unique_ptr<KernelDomain>>* domains = new std::vector<std::unique_ptr<KernelDomain>>();
  std::lock_guard<std::mutex> lock(mutex);
  for (auto& d : *domains)
    if (d->kernel == kernel && d->int8_min_rows == int8_min_rows) return d->domain;
  domains->push_back(std::make_unique<KernelDomain>(kernel, int8_min_rows));
  return domains->back()->domain;
}

// The int8 threshold a session asks for: session option tmac.int8_min_rows, else the
// environment variable TMAC_ORT_INT8_MIN_ROWS where set and not empty (for pipelines that
// pass no session options of their own, such as onnxruntime-genai's), else
// LutGemm::kKernelDefault.  Sets `error` when the value is not a non-negative integer.
int64_t ReadInt8MinRows(Ort::UnownedSessionOptions& options, std::string* error) {
  std::string value, source;
  if (options.HasConfigEntry(tmac::kInt8MinRowsConfigKey)) {
    value = options.GetConfigEntry(tmac::kInt8MinRowsConfigKey);
    source = std::string("session option ") + tmac::kInt8MinRowsConfigKey;
  } else if (const char* env = std::getenv(tmac::kInt8MinRowsEnvironment); env != nullptr && *env != '\0') {
    value = env;
    source = tmac::kInt8MinRowsEnvironment;
  } else {
    return tmac::LutGemm::kKernelDefault;
  }
  if (value.empty() || value.size() > 12 || value.find_first_not_of("0123456789") != std::string::npos) {
    *error = "tmac-ort: " + source + " must be a count of rows (0: never)";
    return 0;
  }
  return std::stoll(value);
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
    const int64_t int8_min_rows = ReadInt8MinRows(session_options, &error);
    if (!error.empty()) return api->CreateStatus(ORT_INVALID_ARGUMENT, error.c_str());
    session_options.Add(DomainFor(kernel, int8_min_rows));
  } catch (const std::exception& e) {
    return api->CreateStatus(ORT_FAIL, e.what());
  }
  return nullptr;
}
