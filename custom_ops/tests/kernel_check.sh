#!/usr/bin/env bash
# Builds custom_ops/tests/kernel_check.cc with every kernel of a target and runs it.
#   kernel_check.sh native    this machine's compiler and CPU (x86-64: scalar, AVX2, AVX-512 VNNI)
#   kernel_check.sh x86-older the x86-64 build under qemu-user as CPUs without AVX-512 (-cpu
#                             Haswell) and without AVX2 (-cpu Nehalem): each must skip the kernels
#                             it lacks and run the others without an instruction it lacks
#   kernel_check.sh aarch64   Debian's aarch64 cross compiler, run under qemu-user twice:
#                             -cpu cortex-a53 (no dot product) and -cpu max (dot product);
#                             AARCH64_CXX="clang++ --target=aarch64-linux-gnu" builds with clang
# Needs no ONNX Runtime.  Exits non-zero when a kernel is outside its bounds, and with 3 when
# the aarch64 tools are missing (it says which and how to get them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
src="$here/../src"
out="${KERNEL_CHECK_BUILD:-$here/../../build/kernel-check}"
mkdir -p "$out"
common=(-std=c++17 -O2 -pthread -Wall -Wextra -I"$src" "$src/lut_gemm.cc" "$src/kernels/registry.cc" "$src/kernels/lut_scalar.cc")

# An object compiled with ISA flags must define no weak symbols: the linker keeps one copy of
# each weak (inline, template) function for the whole library, and a baseline caller could get
# the copy compiled for AVX-512 or the dot product.  The kernels' files give their helpers
# internal linkage; this keeps it so.
no_weak_symbols() {
  local nm="$1"; shift
  local weak
  weak="$("$nm" -C "$@" | awk '$2 == "W" || ($2 == "V" && $3 !~ /^DW\.ref/)')"
  if [[ -n "$weak" ]]; then
    echo "kernel_check: weak symbols in an ISA-flagged object (give them internal linkage):" >&2
    echo "$weak" >&2
    exit 1
  fi
}

case "${1:-native}" in
  native)
    cxx="${CXX:-g++}"
    objs=()
    if [[ "$(uname -m)" == x86_64 ]]; then
      "$cxx" -std=c++17 -O2 -c -mavx2 -mfma -mf16c -DTMAC_HAVE_AVX2=1 -I"$src" "$src/kernels/lut_avx2.cc" -o "$out/lut_avx2.o"
      "$cxx" -std=c++17 -O2 -c -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi -mgfni \
        -DTMAC_HAVE_AVX2=1 -I"$src" "$src/kernels/lut_avx512vnni.cc" -o "$out/lut_avx512vnni.o"
      "$cxx" -std=c++17 -O2 -c -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi -mgfni \
        -DTMAC_HAVE_AVX2=1 -I"$src" "$src/kernels/lut_avx512vnni_triples.cc" -o "$out/lut_avx512vnni_triples.o"
      objs=("$out/lut_avx2.o" "$out/lut_avx512vnni.o" "$out/lut_avx512vnni_triples.o" -DTMAC_HAVE_AVX2=1)
      no_weak_symbols "${NM:-nm}" "$out/lut_avx2.o" "$out/lut_avx512vnni.o" "$out/lut_avx512vnni_triples.o"
    elif [[ "$(uname -m)" == aarch64 || "$(uname -m)" == arm64 ]]; then
      "$cxx" -std=c++17 -O2 -c -march=armv8.2-a+dotprod -DTMAC_HAVE_NEON=1 -I"$src" "$src/kernels/lut_neon_dotprod.cc" -o "$out/lut_neon_dotprod.o"
      objs=("$out/lut_neon_dotprod.o" "$src/kernels/lut_neon.cc" -DTMAC_HAVE_NEON=1)
      no_weak_symbols "${NM:-nm}" "$out/lut_neon_dotprod.o"
    fi
    "$cxx" "${common[@]}" "${objs[@]}" "$here/kernel_check.cc" -o "$out/kernel_check"
    "$out/kernel_check"
    ;;
  x86-older)
    if ! command -v qemu-x86_64 > /dev/null; then
      echo "kernel_check: missing qemu-user (Debian: apt-get install qemu-user)" >&2
      exit 3
    fi
    "$0" native > /dev/null
    for cpu in Haswell Nehalem; do
      echo "== qemu-x86_64 -cpu $cpu"
      qemu-x86_64 -cpu "$cpu" "$out/kernel_check" 2> >(grep -v "TCG doesn't support requested feature" >&2)
    done
    ;;
  aarch64)
    missing=()
    read -ra cxx <<< "${AARCH64_CXX:-aarch64-linux-gnu-g++}"
    command -v aarch64-linux-gnu-g++ > /dev/null || missing+=(g++-aarch64-linux-gnu)  # (clang links with its libraries)
    command -v qemu-aarch64 > /dev/null || missing+=(qemu-user)
    if (( ${#missing[@]} )); then
      echo "kernel_check: missing ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
      exit 3
    fi
    "${cxx[@]}" -std=c++17 -O2 -c -march=armv8.2-a+dotprod -DTMAC_HAVE_NEON=1 -I"$src" "$src/kernels/lut_neon_dotprod.cc" -o "$out/lut_neon_dotprod.o"
    no_weak_symbols aarch64-linux-gnu-nm "$out/lut_neon_dotprod.o"
    "${cxx[@]}" "${common[@]}" -DTMAC_HAVE_NEON=1 "$out/lut_neon_dotprod.o" "$src/kernels/lut_neon.cc" "$here/kernel_check.cc" \
      -static -o "$out/kernel_check_aarch64"
    for cpu in cortex-a53 max; do
      echo "== qemu-aarch64 -cpu $cpu"
      qemu-aarch64 -cpu "$cpu" "$out/kernel_check_aarch64"
    done
    ;;
  *)
    echo "usage: $0 [native|x86-older|aarch64]" >&2
    exit 2
    ;;
esac
