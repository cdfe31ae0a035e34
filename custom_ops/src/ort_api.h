// The one place this library includes the ONNX Runtime C++ API (version 21, manual init).
#pragma once
#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT
