// Per-thread scratch for the kernels' files.
#pragma once

#include <cstddef>
#include <new>

namespace tmac {
// Internal linkage, like tables.h: each ISA kernel's file includes this with its own flags.
namespace {

// A thread's 64-byte-aligned float scratch, grown as needed.  Not a std::vector: a template
// instantiated in a kernel's file is compiled with that file's ISA flags and is a weak symbol
// the linker may pick for the baseline code's calls too (it did not, by link order, but
// nothing made it so).
class AlignedScratch {
 public:
  ~AlignedScratch() { ::operator delete[](data_, std::align_val_t(64)); }
  float* Get(size_t n) {
    if (n > size_) {
      ::operator delete[](data_, std::align_val_t(64));
      data_ = static_cast<float*>(::operator new[](n * sizeof(float), std::align_val_t(64)));
      size_ = n;
    }
    return data_;
  }

 private:
  float* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace
}  // namespace tmac
