#include <stdio.h>
#include <time.h>
int main() {
  for (int rep = 0; rep < 5; ++rep) {
    struct timespec a, b; long n = 400000000; unsigned long x = 1;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; ++i) __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) * 1e-9;
    printf("%.2f GHz (4 dependent adds per iteration, loop overhead hidden)\n", 4.0 * n / s / 1e9);
  }
}
