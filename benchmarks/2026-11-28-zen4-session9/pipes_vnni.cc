// What an op of the int8 path's epilogue costs beside vpdpbusd zmm (Zen 4): 12 independent
// vpdpbusd per iteration, plus 4 (or 1-2) of op X; ns per iteration against vpdpbusd alone.
//   g++ -O2 -mavx512f pipes_vnni.cc -o pipes_vnni && ./pipes_vnni
#include <chrono>
#include <cstdio>
#define DP "vpdpbusd %%zmm0, %%zmm1, %%zmm2\n vpdpbusd %%zmm0, %%zmm1, %%zmm3\n vpdpbusd %%zmm0, %%zmm1, %%zmm4\n vpdpbusd %%zmm0, %%zmm1, %%zmm5\n" \
  "vpdpbusd %%zmm0, %%zmm1, %%zmm6\n vpdpbusd %%zmm0, %%zmm1, %%zmm7\n vpdpbusd %%zmm0, %%zmm1, %%zmm8\n vpdpbusd %%zmm0, %%zmm1, %%zmm9\n" \
  "vpdpbusd %%zmm0, %%zmm1, %%zmm10\n vpdpbusd %%zmm0, %%zmm1, %%zmm11\n vpdpbusd %%zmm0, %%zmm1, %%zmm12\n vpdpbusd %%zmm0, %%zmm1, %%zmm13\n"
#define CLOB "xmm2","xmm3","xmm4","xmm5","xmm6","xmm7","xmm8","xmm9","xmm10","xmm11","xmm12","xmm13","xmm14","xmm15","xmm16","xmm17","xmm18","xmm19"
template <class F> double T(F f) { double best = 1e9; for (int r = 0; r < 5; ++r) { auto t0 = std::chrono::steady_clock::now(); f(); double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); if (t < best) best = t; } return best; }
int main() {
  const long m = 20000000;
  float buf[256] __attribute__((aligned(64))) = {};
  double base = T([&] { for (long i = 0; i < m; ++i) asm volatile(DP ::: CLOB); });
  printf("12 vpdpbusd alone:          %.3f ns/iter\n", base / m * 1e9);
#define X(name, ops) XN(name, 4, ops)
#define XN(name, n, ops) { double t = T([&] { for (long i = 0; i < m; ++i) asm volatile(DP ops :: "r"(buf) : CLOB, "memory"); }); \
  printf("+%d %-22s %.3f ns/iter (+%.3f ns per op)\n", n, name, t / m * 1e9, (t - base) / m * 1e9 / n); }
  X("vcvtdq2ps", "vcvtdq2ps %%zmm0, %%zmm14\n vcvtdq2ps %%zmm0, %%zmm15\n vcvtdq2ps %%zmm0, %%zmm16\n vcvtdq2ps %%zmm0, %%zmm17\n")
  X("vmulps", "vmulps %%zmm0, %%zmm1, %%zmm14\n vmulps %%zmm0, %%zmm1, %%zmm15\n vmulps %%zmm0, %%zmm1, %%zmm16\n vmulps %%zmm0, %%zmm1, %%zmm17\n")
  X("vfmadd231ps", "vfmadd231ps %%zmm0, %%zmm1, %%zmm14\n vfmadd231ps %%zmm0, %%zmm1, %%zmm15\n vfmadd231ps %%zmm0, %%zmm1, %%zmm16\n vfmadd231ps %%zmm0, %%zmm1, %%zmm17\n")
  X("vaddps", "vaddps %%zmm0, %%zmm1, %%zmm14\n vaddps %%zmm0, %%zmm1, %%zmm15\n vaddps %%zmm0, %%zmm1, %%zmm16\n vaddps %%zmm0, %%zmm1, %%zmm17\n")
  X("vpaddd", "vpaddd %%zmm0, %%zmm1, %%zmm14\n vpaddd %%zmm0, %%zmm1, %%zmm15\n vpaddd %%zmm0, %%zmm1, %%zmm16\n vpaddd %%zmm0, %%zmm1, %%zmm17\n")
  X("vpbroadcastd m32", "vpbroadcastd (%0), %%zmm14\n vpbroadcastd 4(%0), %%zmm15\n vpbroadcastd 8(%0), %%zmm16\n vpbroadcastd 12(%0), %%zmm17\n")
  X("vmovaps store", "vmovaps %%zmm0, (%0)\n vmovaps %%zmm1, 64(%0)\n vmovaps %%zmm0, 128(%0)\n vmovaps %%zmm1, 192(%0)\n")
  XN("vmovaps store", 1, "vmovaps %%zmm0, 256(%0)\n")
  XN("vmovaps store", 2, "vmovaps %%zmm0, 256(%0)\n vmovaps %%zmm1, 320(%0)\n")
  X("vmovaps ymm store", "vmovaps %%ymm0, (%0)\n vmovaps %%ymm1, 64(%0)\n vmovaps %%ymm0, 128(%0)\n vmovaps %%ymm1, 192(%0)\n")
  X("vpmulld", "vpmulld %%zmm0, %%zmm1, %%zmm14\n vpmulld %%zmm0, %%zmm1, %%zmm15\n vpmulld %%zmm0, %%zmm1, %%zmm16\n vpmulld %%zmm0, %%zmm1, %%zmm17\n")
  X("vpermps", "vpermps %%zmm0, %%zmm1, %%zmm14\n vpermps %%zmm0, %%zmm1, %%zmm15\n vpermps %%zmm0, %%zmm1, %%zmm16\n vpermps %%zmm0, %%zmm1, %%zmm17\n")
}
