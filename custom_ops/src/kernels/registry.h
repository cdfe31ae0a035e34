// The kernel registry: every ISA kernel this build has, best first.  Adding a kernel is one
// source file (defining its KernelOps and a CPU check), one entry in registry.cc and one
// line in custom_ops/CMakeLists.txt.
#pragma once

#include <cstddef>
#include <string>

#include "lut_kernel.h"

namespace tmac {

struct KernelEntry {
  const char* name;
  // Null when this CPU runs the kernel, else what it lacks ("AVX2, FMA and F16C").
  const char* (*missing_cpu_features)();
  const KernelOps& (*ops)();
};

// The kernels compiled into this build, best first.
const KernelEntry* Kernels(size_t* count);

// Why `entry` cannot run in this process, or an empty string when it can: the CPU lacks a
// feature, or TMAC_ORT_KERNEL (read once per process) names another kernel.
std::string UnavailableReason(const KernelEntry& entry);

// The kernel a session gets: `name` if given (empty: TMAC_ORT_KERNEL, else the best one
// available).  Returns null and sets `error` when that kernel is unknown or unavailable.
const KernelEntry* ChooseKernel(const std::string& name, std::string* error);

}  // namespace tmac
