#ifndef CONJURE_KERNELS_H
#define CONJURE_KERNELS_H
#include <stddef.h>
#include "conjure_pool.h"

/// One Adam step over flat buffers (PyTorch's formula, bias corrections folded into
/// step_size = lr / (1 - beta1^t) and inv_sqrt_bc2 = 1 / sqrt(1 - beta2^t)):
///   g' = g + wd * w; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
///   w -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps)
void conjure_adam_update(float *restrict w, const float *restrict g, float *restrict m, float *restrict v, size_t n,
                         float b1, float b2, float step_size, float inv_sqrt_bc2, float eps, float weight_decay);

/// One exponential-moving-average step over flat buffers: avg = decay * avg + (1 - decay) * w.
void conjure_ema_update(float *restrict avg, const float *restrict w, size_t n, float decay);

#endif

/// y = tanh(x): 1 - 2/(e^{2|x|} + 1) for |x| >= 0.625, the odd Taylor series to x^17 below;
/// e^r by Cody-Waite reduction and a degree-7 polynomial. Relative error below 5e-7.
void conjure_tanh(const float *restrict x, float *restrict y, size_t n);
