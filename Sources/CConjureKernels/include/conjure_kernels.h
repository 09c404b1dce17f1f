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


/// Standard normal pairs by the Box-Muller transform of raw 64-bit draws, in double:
/// u1 = 1 - (raw[2j] >> 11) 2^-53 in (0, 1], u2 = (raw[2j+1] >> 11) 2^-53 in [0, 1),
/// rad = sqrt(-2 log u1), then out[2j] = mean + std * (float)(rad cos 2 pi u2) and
/// out[2j+1] = mean + std * (float)(rad sin 2 pi u2) while below n (so pairs = ceil(n / 2)).
/// log by fdlibm's e_log.c reduction and polynomial; sin and cos of 2 pi u2 by reducing u2
/// exactly to the nearest quarter turn, then fdlibm's k_sin.c/k_cos.c polynomials on
/// [-pi/4, pi/4]. No contraction into FMA, so every CPU gives the same bits; against glibc's
/// log/sin/cos the float results differ in about 1 pair of 10^7 (angles next to a quarter turn,
/// where rounding 2 pi u2 first, as a libm call must, loses the bits this keeps).
void conjure_box_muller(const unsigned long long *restrict raw, size_t n, float mean, float std, float *restrict out);

/// One pair of conjure_box_muller from draws a and b, unscaled: out[0] = (float)(rad cos 2 pi u2),
/// out[1] = (float)(rad sin 2 pi u2).
void conjure_normal_pair(unsigned long long a, unsigned long long b, float *out);

/// y = tanh(x): 1 - 2/(e^{2|x|} + 1) for |x| >= 0.625, the odd Taylor series to x^17 below;
/// e^r by Cody-Waite reduction and a degree-7 polynomial. Relative error below 5e-7.
void conjure_tanh(const float *restrict x, float *restrict y, size_t n);

/// im2col over image planes q0..<q1 of a chunk of nb images [nb, c, h, w] (plane q is channel
/// q / nb of image q % nb). taps[r * l + p] is the index in a plane (ih * w + iw) that kernel
/// offset r = i * kw + j reads for output position p = oh * wo + ow, or -1 in the padding.
/// col is [c * khw, nb * l]: row ci * khw + r, column b * l + p.
void conjure_im2col_planes(const float *restrict image, long nb, long c, long hw, const int *restrict taps, long khw,
                           long l, float *restrict col, long q0, long q1);

/// col2im (the adjoint of conjure_im2col_planes) over planes q0..<q1: every image element p of
/// a plane is the sum, in order, of the `taps` column entries gather[p * taps + u] (offsets from
/// the plane's first entry, row ci * khw, column b * l; -1 for none). Overwrites the planes.
void conjure_col2im_planes(const float *restrict col, long nb, long c, long hw, const int *restrict gather, long taps,
                           long khw, long l, float *restrict image, long q0, long q1);


/// Batch-norm helpers over [n, c, inner] tensors (NCHW, inner = H*W). Sums accumulate into the
/// double outputs (which the caller zeroes): each (b, ch) plane in 8 interleaved partial sums,
/// planes in order of b.
/// out[ch] += sum of x[b, ch, :]
void conjure_channel_sums_f64(const float *restrict x, long n, long c, long inner, double *restrict out);
/// out[ch] += sum of (x[b, ch, :] - mean[ch])^2
void conjure_channel_sq_dev_f64(const float *restrict x, long n, long c, long inner, const double *restrict mean,
                                double *restrict out);
/// sum_g[ch] += sum of g[b, ch, :]; sum_gh[ch] += sum of g * h
void conjure_channel_dot_f64(const float *restrict g, const float *restrict h, long n, long c, long inner,
                             double *restrict sum_g, double *restrict sum_gh);
/// h = (x - mean[ch]) * inv_std[ch] in double; xhat = (float)h, y = (float)(h * weight[ch] + bias[ch]).
void conjure_bn_normalize(const float *restrict x, long n, long c, long inner, const double *restrict mean,
                          const double *restrict inv_std, const double *restrict weight, const double *restrict bias,
                          float *restrict xhat, float *restrict y);
/// Batch normalisation of the columns j0..<j1 of x [n, f] (training mode), in double: mean[j]
/// and var[j] (biased) accumulated from zero in row order, inv_std[j] = 1 / sqrt(var + eps),
/// h = (x - mean) * inv_std, xhat = (float)h, y = (float)(h * weight[j] + bias[j]).
void conjure_bn1d_forward(const float *restrict x, long n, long f, long j0, long j1, float eps,
                          const float *restrict weight, const float *restrict bias, double *restrict mean,
                          double *restrict var, double *restrict inv_std, float *restrict xhat, float *restrict y);
/// Backward of conjure_bn1d_forward over columns j0..<j1: db[j] += g, dw[j] += g * xhat in row
/// order (from zero); with dx, dx = (float)((g·w - db·w/n - xhat·dw·w/n) · inv_std) in double.
void conjure_bn1d_backward(const float *restrict g, const float *restrict xhat, long n, long f, long j0, long j1,
                           const float *restrict weight, const double *restrict inv_std, double *restrict dw,
                           double *restrict db, float *restrict dx);
/// dx = (float)(scale[ch] * (g - mean_g[ch] - xhat * mean_gh[ch])) in double.
void conjure_bn_backward_input(const float *restrict g, const float *restrict xhat, long n, long c, long inner,
                               const double *restrict scale, const double *restrict mean_g,
                               const double *restrict mean_gh, float *restrict dx);

/// The geometry of a 2-D cross-correlation as ConvGeometry has it: n images [c, h, w],
/// outputs [ho, wo], kernel kh x kw, strides sh, sw, paddings ph, pw.
typedef struct { long n, c, h, w, ho, wo, kh, kw, sh, sw, ph, pw; } conjure_conv_geometry;

/// 1 when conjure_im2col_rows / conjure_col2im_rows apply: the CPU has AVX-512F, wo <= 16,
/// kh <= 32, and the padded rows read and written fit in 32 lanes ((wo-1)*sw + kw <= 32,
/// pw + w <= 32).
int conjure_conv_rows_fit(const conjure_conv_geometry *g);
/// im2col over planes q0..<q1 (as conjure_im2col_planes) with row loads and permutes.
void conjure_im2col_rows(const float *restrict image, const conjure_conv_geometry *g, float *restrict col,
                         long q0, long q1);
/// col2im over planes q0..<q1 (as conjure_col2im_planes, the same sums in the same order).
void conjure_col2im_rows(const float *restrict col, const conjure_conv_geometry *g, float *restrict image,
                         long q0, long q1);

/// 1-D im2col (h = ho = kh = 1, no padding along the height) over planes q0..<q1, without a tap
/// table: col[ci * kw + r, b * wo + p] = image[b, ci, p * sw + r - pw], 0 outside the signal.
/// The same values as conjure_im2col_planes.
void conjure_im2col_1d(const float *restrict image, const conjure_conv_geometry *g, float *restrict col,
                       long q0, long q1);
/// 1-D col2im (the adjoint of conjure_im2col_1d) over planes q0..<q1: image[b, ci, x] is the sum,
/// in increasing kernel offset r, of col[ci * kw + r, b * wo + p] over p * sw + r - pw = x. The
/// same sums in the same order as conjure_col2im_planes. Overwrites the planes.
void conjure_col2im_1d(const float *restrict col, const conjure_conv_geometry *g, float *restrict image,
                       long q0, long q1);

/// dx = g * (1 - y^2): the gradient through y = tanh(x), evaluated as written (no fused multiply-add).
void conjure_tanh_backward(const float *restrict g, const float *restrict y, float *restrict dx, size_t n);

/// y = x > 0 ? x : 0 (NaN gives 0).
void conjure_relu(const float *restrict x, float *restrict y, size_t n);
/// dx = x > 0 ? g : g * 0 (g * 0 keeps the sign of zero and turns infinities into NaN, as g * mask).
void conjure_relu_backward(const float *restrict g, const float *restrict x, float *restrict dx, size_t n);
/// y = x > 0 ? x : x * slope.
void conjure_leaky_relu(const float *restrict x, float *restrict y, size_t n, float slope);
/// dx = x > 0 ? g : g * slope.
void conjure_leaky_relu_backward(const float *restrict g, const float *restrict x, float *restrict dx, size_t n, float slope);

/// Rows r0..<r1 of the outer product c[i * ldc + j] = fmaf(a[i * a_stride], b[j], 0) for j < n: a
/// product of `k = 1`, the product rounded once (an exact zero product is +0, one that
/// underflowed keeps its sign, 0 * inf is NaN). OpenBLAS 0.3.21's Cooperlake kernel gives the
/// same bits; its Haswell kernel gives +0 for a negative product that underflows.
void conjure_outer_rows(const float *restrict a, long a_stride, const float *restrict b, float *restrict c, long ldc,
                        long n, long r0, long r1);

/// Row softmax of rows r0 ..< r1 of contiguous rows of length k: y = exp(x - max) / sum. With
/// causal != 0 the rows are those of T x T attention score matrices (k == T): row r keeps
/// columns 0 ... r % T and its other outputs are 0 (the additive -inf mask of a causal decoder).
/// exp by Cody-Waite reduction and the degree-7 Taylor polynomial of conjure_tanh's exp; sums in float.
void conjure_softmax_rows(const float *restrict x, float *restrict y, long r0, long r1, long k, int causal);

/// Softmax backward on rows: dx = y * (g - sum_j g_j y_j) per row (masked entries have y = 0).
void conjure_softmax_rows_backward(const float *restrict g, const float *restrict y, float *restrict dx, long rows, long k);

/// Exact GELU x * Phi(x), Phi(x) = erfc(-x / sqrt 2) / 2 with erfc by the Chebyshev fit of
/// Numerical Recipes (6.2; relative error below 1.2e-7) and the exp above.
void conjure_gelu(const float *restrict x, float *restrict y, long n);

/// GELU backward: dx = g * (Phi(x) + x phi(x)), phi the standard normal density.
void conjure_gelu_backward(const float *restrict x, const float *restrict g, float *restrict dx, long n);

/// SiLU x * sigmoid(x) with sigmoid = 1 / (1 + exp(-x)) (the exp above).
void conjure_silu(const float *restrict x, float *restrict y, long n);

/// SiLU backward: dx = g * s (1 + x (1 - s)), s = sigmoid(x).
void conjure_silu_backward(const float *restrict x, const float *restrict g, float *restrict dx, long n);

/// Layer normalisation of rows r0 ..< r1 of [rows, d]: xhat = (x - mean) * rstd with the biased
/// variance (mean and variance summed in 8 double lanes, combined in a fixed order), y = xhat * w + b (w, b may be NULL: 1 and 0).
/// Writes xhat and rstd (one per row) for the backward.
void conjure_layernorm_rows(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                            float *restrict xhat, float *restrict rstd, long r0, long r1, long d, float eps);

/// Layer-norm input gradient of rows r0 ..< r1: with g' = g * w,
/// dx = rstd * (g' - mean(g') - xhat * mean(g' xhat)) per row (means in double).
/// The sums run in 8 double lanes (j mod 8), combined in a fixed order.
void conjure_layernorm_rows_backward(const float *restrict g, const float *restrict xhat, const float *restrict rstd,
                                     const float *restrict w, float *restrict dx, long r0, long r1, long d);

/// Group normalisation of groups q0 ..< q1 of [N * groups, cpg, inner] (q = sample * groups +
/// group): the sum and the sum of squares in one pass of 8 double lanes combined in a fixed
/// order, mean and biased variance var = E[x^2] - mean^2 from them, inv_std[q] =
/// 1 / sqrt(var + eps), xhat = x * inv_std - mean * inv_std, y = x * a[c] + c[c] with
/// a = inv_std * w[c], c = b[c] - mean * a (float FMAs; w, b may be NULL; xhat may be NULL
/// when no backward needs it). With silu nonzero (xhat must be NULL), y is followed by
/// conjure_silu's SiLU in the same pass: the bits of the two calls in sequence.
void conjure_groupnorm_forward(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                               float *restrict xhat, double *restrict inv_std, long q0, long q1, long groups, long cpg,
                               long inner, float eps, int silu);
/// Per row r in r0 ..< r1 of [rows, len]: sg[r] = sum g, sgh[r] = sum g * h (8 double lanes).
void conjure_row_sums2(const float *restrict g, const float *restrict h, double *restrict sg, double *restrict sgh,
                       long r0, long r1, long len);
/// Group-norm input gradient of groups q0 ..< q1 from the per-(sample, channel) sums of
/// conjure_row_sums2: with g' = g * w[c], m1 = mean(g'), m2 = mean(g' xhat) over the group,
/// dx = (g' - m1 - xhat * m2) * inv_std.
void conjure_groupnorm_backward(const float *restrict g, const float *restrict xhat, const float *restrict w,
                                const double *restrict sg, const double *restrict sgh, const double *restrict inv_std,
                                float *restrict dx, long q0, long q1, long groups, long cpg, long inner);

/// One GRU step (PyTorch's gate layout r, z, n) on rows b0 ..< b1: gi, gh are [B, 3H] (input and
/// hidden projections with their biases), h is [B, H]:
///   r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z), n = tanh(gi_n + r gh_n),
///   out = (1 - z) n + z h, written as n + z (h - n).
/// r, z, n are kept ([B, H] each) for the backward.
void conjure_gru_cell(const float *restrict gi, const float *restrict gh, const float *restrict h, float *restrict out,
                      float *restrict r, float *restrict z, float *restrict n, long b0, long b1, long hs);

/// Backward of conjure_gru_cell on rows b0 ..< b1 given dout [B, H]: writes dgi and dgh [B, 3H]
/// (equal for the r and z gates; d(gh_n) = d(gi_n) r) and dh [B, H].
void conjure_gru_cell_backward(const float *restrict dout, const float *restrict h, const float *restrict gh,
                               const float *restrict r, const float *restrict z, const float *restrict n,
                               float *restrict dgi, float *restrict dgh, float *restrict dh, long b0, long b1, long hs);

/// Fused multi-head self-attention forward (Vaswani et al. 2017) on slices s0 ..< s1 of the
/// B * H (batch, head) slices, read straight from the stacked in-projection output and written
/// straight into the heads-concatenated layout (no permuted copies):
///   qkv [B * T, 3 * H * d]: row b * T + t holds q (columns h * d ..), k (H * d + h * d ..) and
///   v (2 * H * d + h * d ..) of every head h;
///   out [B * T, H * d]: row b * T + t, columns h * d .. h * d + d, the context of head h;
///   stats [B * H, T, 2]: per query row the maximum score and 1 / sum of the exponentials, from
///   which the backward recomputes the attention weights softmax(scale * q k^T) (0 above the
///   diagonal with causal != 0, where row i attends to keys 0 ... i only).
/// Scores are computed for the kept keys in blocks of 16; sums run in 16 float lanes combined in
/// a fixed order, so each slice's result does not depend on how slices are split across threads.
void conjure_attention_forward(const float *restrict qkv, float *restrict out, float *restrict stats, long t, long h,
                               long d, float scale, int causal, long s0, long s1);

/// Backward of conjure_attention_forward on slices s0 ..< s1, given dout [B * T, H * d] and the
/// saved stats: writes that slice's columns of dqkv [B * T, 3 * H * d] (dq, dk, dv), with P the
/// recomputed weights: dv = P^T dO, dP = dO v^T, dS = P (dP - rowsum(P dP)), dq = scale dS k,
/// dk = scale dS^T q.
void conjure_attention_backward(const float *restrict qkv, const float *restrict stats, const float *restrict dout,
                                float *restrict dqkv, long t, long h, long d, float scale, int causal, long s0, long s1);

/// For each batch b in b0 ..< b1 of x [batch, rows, cols]: y[b] = x[b]^T ([batch, cols, rows]),
/// in 16x16 tiles.
void conjure_transpose_batched(const float *restrict x, float *restrict y, long b0, long b1, long rows, long cols);

/// `rounds` rounds of 12 independent chains a <- a * b + c on vectors of 16 floats (the CPU's
/// widest fused multiply-add where it has one): 384 FLOPs a round, nothing read from memory.
/// Returns the sum of the chains' final values (about 12 * 16 * 1000 once `rounds` >> 1000), so
/// that nothing is optimised away. Timing it gives the core's Float32 FMA peak.
float conjure_fma_probe(long rounds);

#endif
