// The kernel registry: every ISA kernel this build has, best first.  Adding a kernel is one
// source file (defining its KernelOps and a CPU check), one entry in registry.cc and one
// line in custom_ops/CMakeLists.txt.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "lut_kernel.h"

namespace tmac {

struct KernelEntry {
  const char* name;
  // Null when this CPU runs the kernel, else what it lacks ("AVX2, FMA and F16C").
  const char* (*missing_cpu_features)();
  // Runs code compiled for the kernel's ISA (copying a KernelOps there may use AVX-512
  // registers): call it only after missing_cpu_features() returned null.  On a Zen 3 the
  // kernel listing once called it for every kernel and died of SIGILL.
  const KernelOps& (*ops)();
};

// One row of the kernel listing (the com.tmac.Kernels op, kernel_check).
struct KernelListing {
  std::string name;
  std::string unavailable;  // UnavailableReason: empty when this process can run it
  // from how many rows it takes its int8 path, per bit width (index bits - 1); 0: it has none
  // at that width, or this CPU lacks it
  std::array<int64_t, 4> int8_min_rows;
  int64_t triple_int8_min_rows;  // the same for layout 3 (ternary triples); 0: no int8 form of it
};

// The kernels compiled into this build, best first.
const KernelEntry* Kernels(size_t* count);

// Why `entry` cannot run in this process, or an empty string when it can: the CPU lacks a
// feature, or TMAC_ORT_KERNEL (read once per process) names another kernel.
std::string UnavailableReason(const KernelEntry& entry);

// Every kernel of this build, best first; asks ops() only of kernels this CPU can run.
std::vector<KernelListing> ListKernels();

// The kernel a session gets: `name` if given (empty: TMAC_ORT_KERNEL, else the best one
// available).  Returns null and sets `error` when that kernel is unknown or unavailable.
const KernelEntry* ChooseKernel(const std::string& name, std::string* error);

}  // namespace tmac
