#include "conjure_kernels.h"

// The core's Float32 multiply-add rate, probed. Cloned like kernels.c: the loader runs the
// AVX-512 clone where the CPU has AVX-512 (zmm FMAs), the AVX2 clone where it has AVX2 + FMA
// (two ymm FMAs per vector), else baseline SSE (multiplies and adds).
#if defined(__x86_64__) && defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
float conjure_fma_probe(long rounds) {
#pragma STDC FP_CONTRACT ON
    typedef float v16 __attribute__((vector_size(64)));
    // 12 independent chains cover the FMA units' latency (2 units x 4 cycles on Zen 4/5 and
    // Sapphire Rapids). Each chain a <- a * b + c converges to c / (1 - b) = 1000: no overflow,
    // no subnormals, so no slow path.
    v16 a[12], b, c;
    for (int j = 0; j < 16; j++) { b[j] = 0.999f; c[j] = 1.0f; }
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 16; j++) a[i][j] = (float)(i + j);
    for (long r = 0; r < rounds; r++) {
#pragma clang loop unroll(full)
        for (int i = 0; i < 12; i++) a[i] = a[i] * b + c;
    }
    float s = 0;
    for (int i = 0; i < 12; i++)
        for (int j = 0; j < 16; j++) s += a[i][j];
    return s;
}
