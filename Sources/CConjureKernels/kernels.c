#include "conjure_kernels.h"
#include <math.h>

// Compiled for AVX-512, AVX2 and baseline x86-64; the loader picks the best at run time.
#if defined(__x86_64__) && defined(__clang__)
#define CONJURE_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CONJURE_CLONES
#endif

CONJURE_CLONES
void conjure_adam_update(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                         float b1, float b2, float step_size, float inv_sqrt_bc2, float eps, float weight_decay) {
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    for (size_t i = 0; i < n; i++) {
        float gi = g[i] + weight_decay * w[i];
        float mi = b1 * m[i] + c1 * gi;
        float vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] -= step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
    }
}

static inline float conjure_expf_poly(float x) {
    x = x < -87.3f ? -87.3f : (x > 88.7f ? 88.7f : x);
    const float magic = 12582912.0f;  /* 1.5 * 2^23: rounds x*log2(e) to an integer in the low bits */
    float t = x * 1.44269504f + magic;
    float nf = t - magic;
    float r = x - nf * 0.693359375f - nf * -2.12194440e-4f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    union { float f; int i; } tb = { t }, sb;
    sb.i = ((tb.i - 0x4B400000) + 127) << 23;
    return p * sb.f;
}

CONJURE_CLONES
void conjure_tanh(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float xi = x[i];
        float a = fabsf(xi);
        float ac = a > 20.0f ? 20.0f : a;
        float e = conjure_expf_poly(2.0f * ac);
        float large = 1.0f - 2.0f / (e + 1.0f);
        float x2 = a * a;
        float p = 0.000590027440945586f;
        p = p * x2 - 0.001455834387051318f;
        p = p * x2 + 0.003592128036572481f;
        p = p * x2 - 0.008863235529902197f;
        p = p * x2 + 0.021869488536155203f;
        p = p * x2 - 0.05396825396825397f;
        p = p * x2 + 0.13333333333333333f;
        p = p * x2 - 0.3333333333333333f;
        float small = a + a * x2 * p;
        float t = a >= 0.625f ? large : small;
        y[i] = copysignf(t, xi);
    }
}

CONJURE_CLONES
void conjure_ema_update(float *restrict avg, const float *restrict w, size_t n, float decay) {
    const float keep = decay, take = 1.0f - decay;
    for (size_t i = 0; i < n; i++) avg[i] = keep * avg[i] + take * w[i];
}
