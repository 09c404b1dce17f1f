#include "conjure_kernels.h"
#include <math.h>
#include <stdlib.h>

// Longer than 400 lines on purpose: the vectorised kernels share their AVX-512/AVX2/baseline dispatch and helpers.

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

// MARK: Box-Muller normal draws (see the header)

static inline double conjure_log_unit(double x) {  // x in (0, 1], normal
    _Pragma("clang fp contract(off)")
    const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    const double Lg1 = 6.666666666666735130e-01, Lg2 = 3.999999999940941908e-01, Lg3 = 2.857142874366239149e-01,
                 Lg4 = 2.222219843214978396e-01, Lg5 = 1.818357216161805012e-01, Lg6 = 1.531383769920937332e-01,
                 Lg7 = 1.479819860511658591e-01;
    unsigned long long bits;
    __builtin_memcpy(&bits, &x, 8);
    long long k = (long long)(bits >> 52) - 1023;
    unsigned long long mb = (bits & 0x000FFFFFFFFFFFFFull) | 0x3FF0000000000000ull;
    // x = 2^k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)): mantissas above sqrt(2) are halved.
    int big = mb > 0x3FF6A09E667F3BCDull;
    mb -= big ? 0x0010000000000000ull : 0;
    k += big;
    double m;
    __builtin_memcpy(&m, &mb, 8);
    double f = m - 1.0;
    double s = f / (2.0 + f), z = s * s, w = z * z;
    double t1 = w * (Lg2 + w * (Lg4 + w * Lg6));
    double t2 = z * (Lg1 + w * (Lg3 + w * (Lg5 + w * Lg7)));
    double r = t2 + t1, hfsq = 0.5 * f * f, dk = (double)k;
    return dk * ln2_hi - ((hfsq - (s * (hfsq + r) + dk * ln2_lo)) - f);
}

static inline void conjure_sincos_turns(double u, double *sn, double *cs) {  // sin, cos of 2 pi u, u in [0, 1)
    _Pragma("clang fp contract(off)")
    const double S1 = -1.66666666666666324348e-01, S2 = 8.33333333332248946124e-03, S3 = -1.98412698298579493134e-04,
                 S4 = 2.75573137070700676789e-06, S5 = -2.50507602534068634195e-08, S6 = 1.58969099521155010221e-10;
    const double C1 = 4.16666666666666019037e-02, C2 = -1.38888888888741095749e-03, C3 = 2.48015872894767294178e-05,
                 C4 = -2.75573143513906633035e-07, C5 = 2.08757232129817482790e-09, C6 = -1.13596475577881948265e-11;
    const double twopi_hi = 6.283185307179586232e+00, twopi_lo = 2.449293598294706e-16;
    double qd = __builtin_floor(u * 4.0 + 0.5);  // the nearest quarter turn
    double t = u - qd * 0.25;                     // exact, in [-1/8, 1/8]
    double x = t * twopi_hi + t * twopi_lo;       // |x| <= pi/4
    double z = x * x;
    double s = x + (z * x) * (S1 + z * (S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)))));
    double cr = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
    double hz = 0.5 * z, w = 1.0 - hz;
    double c = w + (((1.0 - w) - hz) + z * cr);
    int q = (int)qd & 3;
    double ss = (q & 1) ? c : s, cc = (q & 1) ? s : c;
    *sn = (q & 2) ? -ss : ss;
    *cs = ((q + 1) & 2) ? -cc : cc;
}

static inline void conjure_box_muller_pair(unsigned long long a, unsigned long long b, float *c0, float *s0) {
    _Pragma("clang fp contract(off)")
    double u1 = 1.0 - (double)(a >> 11) * (1.0 / 9007199254740992.0);
    double u2 = (double)(b >> 11) * (1.0 / 9007199254740992.0);
    double rad = __builtin_sqrt(-2.0 * conjure_log_unit(u1));
    double sn, cs;
    conjure_sincos_turns(u2, &sn, &cs);
    *c0 = (float)(rad * cs);
    *s0 = (float)(rad * sn);
}

void conjure_normal_pair(unsigned long long a, unsigned long long b, float *out) {
    conjure_box_muller_pair(a, b, &out[0], &out[1]);
}

CONJURE_CLONES
void conjure_box_muller(const unsigned long long *restrict raw, size_t n, float mean, float std, float *restrict out) {
    _Pragma("clang fp contract(off)")
    size_t full = n / 2;
    for (size_t j = 0; j < full; j++) {
        float a, b;
        conjure_box_muller_pair(raw[2 * j], raw[2 * j + 1], &a, &b);
        out[2 * j] = mean + std * a;
        out[2 * j + 1] = mean + std * b;
    }
    if (n % 2) {
        float a, b;
        conjure_box_muller_pair(raw[2 * full], raw[2 * full + 1], &a, &b);
        out[2 * full] = mean + std * a;
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

static inline float conjure_sigmoidf(float x) { return 1.0f / (1.0f + conjure_expf_poly(-x)); }

// tanh(x) = 1 - 2 / (e^{2|x|} + 1) for |x| >= 0.625, the odd Taylor series to x^17 below.
static inline float conjure_tanhf(float xi) {
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
    return copysignf(a >= 0.625f ? large : small, xi);
}

CONJURE_CLONES
void conjure_tanh(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = conjure_tanhf(x[i]);
}

CONJURE_CLONES
void conjure_ema_update(float *restrict avg, const float *restrict w, size_t n, float decay) {
    const float keep = decay, take = 1.0f - decay;
    for (size_t i = 0; i < n; i++) avg[i] = keep * avg[i] + take * w[i];
}

CONJURE_CLONES
void conjure_im2col_planes(const float *restrict image, long nb, long c, long hw, const int *restrict taps, long khw,
                           long l, float *restrict col, long q0, long q1) {
    const long nl = nb * l;
    for (long q = q0; q < q1; q++) {
        const long ci = q / nb, b = q % nb;
        const float *restrict src = image + (b * c + ci) * hw;
        float *restrict dst = col + ci * khw * nl + b * l;
        for (long r = 0; r < khw; r++) {
            const int *restrict t = taps + r * l;
            float *restrict d = dst + r * nl;
            for (long p = 0; p < l; p++) {
                const int s = t[p];
                d[p] = s >= 0 ? src[s] : 0.0f;
            }
        }
    }
}

CONJURE_CLONES
void conjure_col2im_planes(const float *restrict col, long nb, long c, long hw, const int *restrict gather, long taps,
                           long khw, long l, float *restrict image, long q0, long q1) {
    const long nl = nb * l;
    for (long q = q0; q < q1; q++) {
        const long ci = q / nb, b = q % nb;
        const float *restrict base = col + ci * khw * nl + b * l;
        float *restrict dst = image + (b * c + ci) * hw;
        for (long p = 0; p < hw; p++) {
            const int *restrict t = gather + p * taps;
            float s = 0.0f;
            for (long u = 0; u < taps; u++) {
                const int o = t[u];
                s += o >= 0 ? base[o] : 0.0f;
            }
            dst[p] = s;
        }
    }
}

// Batch-norm statistics and maps over [n, c, inner] (NCHW with inner = H*W). Sums are in double,
// each plane in 8 interleaved partial sums; planes are added to their channel in order of b.
// The element-wise maps are evaluated exactly as written (no fused multiply-add).

static inline double conjure_plane_sum(const float *restrict p, long m) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0;
    for (; i + 8 <= m; i += 8)
        for (int k = 0; k < 8; k++) acc[k] += (double)p[i + k];
    double tail = 0;
    for (; i < m; i++) tail += (double)p[i];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
}

CONJURE_CLONES
void conjure_channel_sums_f64(const float *restrict x, long n, long c, long inner, double *restrict out) {
    for (long b = 0; b < n; b++)
        for (long ch = 0; ch < c; ch++) out[ch] += conjure_plane_sum(x + (b * c + ch) * inner, inner);
}

CONJURE_CLONES
void conjure_channel_sq_dev_f64(const float *restrict x, long n, long c, long inner, const double *restrict mean,
                                double *restrict out) {
#pragma clang fp contract(off)
    for (long b = 0; b < n; b++)
        for (long ch = 0; ch < c; ch++) {
            const float *restrict p = x + (b * c + ch) * inner;
            const double mu = mean[ch];
            double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            long i = 0;
            for (; i + 8 <= inner; i += 8)
                for (int k = 0; k < 8; k++) { double d = (double)p[i + k] - mu; acc[k] += d * d; }
            double tail = 0;
            for (; i < inner; i++) { double d = (double)p[i] - mu; tail += d * d; }
            out[ch] += ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
        }
}

CONJURE_CLONES
void conjure_channel_dot_f64(const float *restrict g, const float *restrict h, long n, long c, long inner,
                             double *restrict sum_g, double *restrict sum_gh) {
#pragma clang fp contract(off)
    for (long b = 0; b < n; b++)
        for (long ch = 0; ch < c; ch++) {
            const long base = (b * c + ch) * inner;
            const float *restrict pg = g + base, *restrict ph = h + base;
            double a0[8] = {0, 0, 0, 0, 0, 0, 0, 0}, a1[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            long i = 0;
            for (; i + 8 <= inner; i += 8)
                for (int k = 0; k < 8; k++) {
                    double gv = (double)pg[i + k];
                    a0[k] += gv;
                    a1[k] += gv * (double)ph[i + k];
                }
            double t0 = 0, t1 = 0;
            for (; i < inner; i++) { double gv = (double)pg[i]; t0 += gv; t1 += gv * (double)ph[i]; }
            sum_g[ch] += ((a0[0] + a0[4]) + (a0[1] + a0[5])) + ((a0[2] + a0[6]) + (a0[3] + a0[7])) + t0;
            sum_gh[ch] += ((a1[0] + a1[4]) + (a1[1] + a1[5])) + ((a1[2] + a1[6]) + (a1[3] + a1[7])) + t1;
        }
}

CONJURE_CLONES
void conjure_bn_normalize(const float *restrict x, long n, long c, long inner, const double *restrict mean,
                          const double *restrict inv_std, const double *restrict weight, const double *restrict bias,
                          float *restrict xhat, float *restrict y) {
#pragma clang fp contract(off)
    for (long b = 0; b < n; b++)
        for (long ch = 0; ch < c; ch++) {
            const long base = (b * c + ch) * inner;
            const double mu = mean[ch], inv = inv_std[ch], wv = weight[ch], bv = bias[ch];
            for (long i = 0; i < inner; i++) {
                double h = ((double)x[base + i] - mu) * inv;
                xhat[base + i] = (float)h;
                y[base + i] = (float)(h * wv + bv);
            }
        }
}

CONJURE_CLONES
void conjure_bn1d_forward(const float *restrict x, long n, long f, long j0, long j1, float eps,
                          const float *restrict weight, const float *restrict bias, double *restrict mean,
                          double *restrict var, double *restrict inv_std, float *restrict xhat, float *restrict y) {
#pragma clang fp contract(off)
    const double dn = (double)n;
    for (long i = 0; i < n; i++) {
        const float *restrict row = x + i * f;
        for (long j = j0; j < j1; j++) mean[j] += (double)row[j];
    }
    for (long j = j0; j < j1; j++) mean[j] /= dn;
    for (long i = 0; i < n; i++) {
        const float *restrict row = x + i * f;
        for (long j = j0; j < j1; j++) { double d = (double)row[j] - mean[j]; var[j] += d * d; }
    }
    for (long j = j0; j < j1; j++) { var[j] /= dn; inv_std[j] = 1.0 / sqrt(var[j] + (double)eps); }
    for (long i = 0; i < n; i++) {
        const float *restrict row = x + i * f;
        float *restrict hr = xhat + i * f, *restrict yr = y + i * f;
        for (long j = j0; j < j1; j++) {
            double h = ((double)row[j] - mean[j]) * inv_std[j];
            hr[j] = (float)h;
            yr[j] = (float)(h * (double)weight[j] + (double)bias[j]);
        }
    }
}

CONJURE_CLONES
void conjure_bn1d_backward(const float *restrict g, const float *restrict xhat, long n, long f, long j0, long j1,
                           const float *restrict weight, const double *restrict inv_std, double *restrict dw,
                           double *restrict db, float *restrict dx) {
#pragma clang fp contract(off)
    const double dn = (double)n;
    for (long i = 0; i < n; i++) {
        const float *restrict gr = g + i * f, *restrict hr = xhat + i * f;
        for (long j = j0; j < j1; j++) {
            double gv = (double)gr[j];
            db[j] += gv;
            dw[j] += gv * (double)hr[j];
        }
    }
    if (!dx) return;
    for (long i = 0; i < n; i++) {
        const float *restrict gr = g + i * f, *restrict hr = xhat + i * f;
        float *restrict dr = dx + i * f;
        for (long j = j0; j < j1; j++) {
            double w = (double)weight[j];
            double gv = (double)gr[j] * w;
            dr[j] = (float)((gv - db[j] * w / dn - (double)hr[j] * dw[j] * w / dn) * inv_std[j]);
        }
    }
}

CONJURE_CLONES
void conjure_bn_backward_input(const float *restrict g, const float *restrict xhat, long n, long c, long inner,
                               const double *restrict scale, const double *restrict mean_g,
                               const double *restrict mean_gh, float *restrict dx) {
#pragma clang fp contract(off)
    for (long b = 0; b < n; b++)
        for (long ch = 0; ch < c; ch++) {
            const long base = (b * c + ch) * inner;
            const double s = scale[ch], a = mean_g[ch], bb = mean_gh[ch];
            for (long i = 0; i < inner; i++)
                dx[base + i] = (float)(s * ((double)g[base + i] - a - (double)xhat[base + i] * bb));
        }
}

// ---------------------------------------------------------------------------------------------
// im2col / col2im by rows with AVX-512 permutes, for images whose padded rows fit in 32 lanes
// (every DCGAN layer up to 28x28). A source row is loaded once into two registers (lanes
// x = iw + pw, zero in the padding); kernel column j's outputs ow come from lanes ow*sw + j by one
// permute. col2im runs the same map backwards, adding each (i, j) in increasing order.

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>

// The geometry's extents, and the lane masks: mlo/mhi the padded-row lanes x = iw + pw that hold
// image columns (lanes 0-15 and 16-31), mout the wo lanes of one output row.
#define CONJURE_ROWS_SETUP(g)                                                                                 \
    const long n = (g)->n, c = (g)->c, h = (g)->h, w = (g)->w, ho = (g)->ho, wo = (g)->wo, kh = (g)->kh;    \
    const long kw = (g)->kw, sh = (g)->sh, sw = (g)->sw, ph = (g)->ph, pw = (g)->pw;                         \
    const long l = ho * wo, nl = n * l, khw = kh * kw, hy = (ho - 1) * sh + kh;                              \
    const unsigned long long valid = ((1ULL << w) - 1) << pw;                                                \
    const __mmask16 mlo = (__mmask16)(valid & 0xFFFF), mhi = (__mmask16)((valid >> 16) & 0xFFFF);            \
    const __mmask16 mout = (__mmask16)((1U << wo) - 1)

int conjure_conv_rows_fit(const conjure_conv_geometry *g) {
    // kh <= 32 bounds the (i, oh) pairs a source row feeds (conjure_im2col_rows keeps 32).
    return __builtin_cpu_supports("avx512f") && g->wo >= 1 && g->wo <= 16 && (g->wo - 1) * g->sw + g->kw <= 32 &&
           g->pw + g->w <= 32 && g->kh <= 32;
}

__attribute__((target("avx512f")))
void conjure_im2col_rows(const float *restrict image, const conjure_conv_geometry *g, float *restrict col,
                         long q0, long q1) {
    CONJURE_ROWS_SETUP(g);
    __m512i idx[32];
    for (long j = 0; j < kw; j++) {
        int lanes[16];
        for (int ow = 0; ow < 16; ow++) lanes[ow] = ow < wo ? (int)(ow * sw + j) : 0;
        idx[j] = _mm512_loadu_si512(lanes);
    }
    const __m512 zero = _mm512_setzero_ps();
    for (long q = q0; q < q1; q++) {
        const long ci = q / n, b = q % n;
        const float *src = image + (b * c + ci) * h * w;
        float *dst = col + ci * khw * nl + b * l;
        for (long y = 0; y < hy; y++) {
            const long ih = y - ph;
            __m512 lo = zero, hi = zero;
            if (ih >= 0 && ih < h) {
                const float *row = src + ih * w - pw;
                lo = _mm512_maskz_loadu_ps(mlo, row);
                hi = _mm512_maskz_loadu_ps(mhi, row + 16);
            }
            // The (kernel row i, output row oh) pairs that read row y: y = oh*sh + i.
            long pairs = 0, ri[32], ro[32];
            for (long oh = y / sh, i = y - oh * sh; i < kh && oh >= 0; i += sh, oh--)
                if (oh < ho) { ri[pairs] = i; ro[pairs] = oh; pairs++; }
            for (long j = 0; j < kw; j++) {
                const __m512 v = _mm512_permutex2var_ps(lo, idx[j], hi);
                for (long u = 0; u < pairs; u++) {
                    _mm512_mask_storeu_ps(dst + (ri[u] * kw + j) * nl + ro[u] * wo, mout, v);
                }
            }
        }
    }
}

__attribute__((target("avx512f")))
void conjure_col2im_rows(const float *restrict col, const conjure_conv_geometry *g, float *restrict image,
                         long q0, long q1) {
    CONJURE_ROWS_SETUP(g);
    // Kernel column j sends input lane ow to lane x = ow*sw + j: the inverse permutation and the
    // lanes that receive, for lanes 0..15 and 16..31.
    __m512i inv_lo[32], inv_hi[32];
    __mmask16 rcv_lo[32], rcv_hi[32];
    for (long j = 0; j < kw; j++) {
        int lo[16], hi[16];
        unsigned ml = 0, mh = 0;
        for (int x = 0; x < 32; x++) {
            long d = x - j, ow = d / sw;
            int ok = d >= 0 && d % sw == 0 && ow < wo;
            if (x < 16) { lo[x] = ok ? (int)ow : 0; ml |= (unsigned)ok << x; }
            else { hi[x - 16] = ok ? (int)ow : 0; mh |= (unsigned)ok << (x - 16); }
        }
        inv_lo[j] = _mm512_loadu_si512(lo);
        inv_hi[j] = _mm512_loadu_si512(hi);
        rcv_lo[j] = (__mmask16)ml;
        rcv_hi[j] = (__mmask16)mh;
    }
    for (long q = q0; q < q1; q++) {
        const long ci = q / n, b = q % n;
        const float *base = col + ci * khw * nl + b * l;
        float *dst = image + (b * c + ci) * h * w;
        for (long ih = 0; ih < h; ih++) {
            const long y = ih + ph;
            __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps();
            if (y < hy) {
                for (long i = y % sh; i < kh; i += sh) {
                    const long oh = (y - i) / sh;
                    if (oh < 0) break;
                    if (oh >= ho) continue;
                    for (long j = 0; j < kw; j++) {
                        const __m512 v = _mm512_maskz_loadu_ps(mout, base + (i * kw + j) * nl + oh * wo);
                        lo = _mm512_mask_add_ps(lo, rcv_lo[j], lo, _mm512_permutexvar_ps(inv_lo[j], v));
                        hi = _mm512_mask_add_ps(hi, rcv_hi[j], hi, _mm512_permutexvar_ps(inv_hi[j], v));
                    }
                }
            }
            float *row = dst + ih * w - pw;
            _mm512_mask_storeu_ps(row, mlo, lo);
            _mm512_mask_storeu_ps(row + 16, mhi, hi);
        }
    }
}
#else
int conjure_conv_rows_fit(const conjure_conv_geometry *g) { (void)g; return 0; }
void conjure_im2col_rows(const float *restrict image, const conjure_conv_geometry *g, float *restrict col,
                         long q0, long q1) { (void)image; (void)g; (void)col; (void)q0; (void)q1; }
void conjure_col2im_rows(const float *restrict col, const conjure_conv_geometry *g, float *restrict image,
                         long q0, long q1) { (void)col; (void)g; (void)image; (void)q0; (void)q1; }
#endif

CONJURE_CLONES
void conjure_tanh_backward(const float *restrict g, const float *restrict y, float *restrict dx, size_t n) {
#pragma clang fp contract(off)
    for (size_t i = 0; i < n; i++) dx[i] = g[i] * (1.0f - y[i] * y[i]);
}

// MARK: ReLU and LeakyReLU (the same values as the Swift expressions they replace)

CONJURE_CLONES
void conjure_relu(const float *restrict x, float *restrict y, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

CONJURE_CLONES
void conjure_relu_backward(const float *restrict g, const float *restrict x, float *restrict dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? g[i] : g[i] * 0.0f;
}

CONJURE_CLONES
void conjure_leaky_relu(const float *restrict x, float *restrict y, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

CONJURE_CLONES
void conjure_leaky_relu_backward(const float *restrict g, const float *restrict x, float *restrict dx, size_t n, float slope) {
    for (size_t i = 0; i < n; i++) dx[i] = x[i] > 0.0f ? g[i] : g[i] * slope;
}

// MARK: Outer product (a matrix product with k = 1)

CONJURE_CLONES
void conjure_outer_rows(const float *restrict a, long a_stride, const float *restrict b, float *restrict c, long ldc,
                        long n, long r0, long r1) {
    for (long i = r0; i < r1; i++) {
        const float ai = a[i * a_stride];
        float *restrict row = c + i * ldc;
        for (long j = 0; j < n; j++) row[j] = fmaf(ai, b[j], 0.0f);
    }
}

// MARK: Softmax, GELU, SiLU and layer normalisation (text and diffusion networks)

CONJURE_CLONES
void conjure_softmax_rows(const float *restrict x, float *restrict y, long r0, long r1, long k, int causal) {
    for (long r = r0; r < r1; r++) {
        const float *xr = x + r * k;
        float *yr = y + r * k;
        long valid = causal ? (r % k) + 1 : k;
        float m = xr[0];
        for (long j = 1; j < valid; j++) m = xr[j] > m ? xr[j] : m;
        float s = 0.0f;
        for (long j = 0; j < valid; j++) { float e = conjure_expf_poly(xr[j] - m); yr[j] = e; s += e; }
        float inv = 1.0f / s;
        for (long j = 0; j < valid; j++) yr[j] *= inv;
        for (long j = valid; j < k; j++) yr[j] = 0.0f;
    }
}

CONJURE_CLONES
void conjure_softmax_rows_backward(const float *restrict g, const float *restrict y, float *restrict dx, long rows, long k) {
    for (long r = 0; r < rows; r++) {
        const float *gr = g + r * k, *yr = y + r * k;
        float *dr = dx + r * k;
        float s = 0.0f;
        for (long j = 0; j < k; j++) s += gr[j] * yr[j];
        for (long j = 0; j < k; j++) dr[j] = yr[j] * (gr[j] - s);
    }
}

// Phi(x) = erfc(-x / sqrt 2) / 2, erfc(z) for z >= 0 by Numerical Recipes' Chebyshev fit
// t exp(-z^2 + P(t)), t = 1 / (1 + z / 2); erfc(-z) = 2 - erfc(z).
static inline float conjure_normal_cdf(float x) {
    float z = -x * 0.70710678118654752f;
    float a = z < 0 ? -z : z;
    float t = 1.0f / (1.0f + 0.5f * a);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float c = t * conjure_expf_poly(-a * a + p);
    float erfc = z >= 0 ? c : 2.0f - c;
    return 0.5f * erfc;
}

CONJURE_CLONES
void conjure_gelu(const float *restrict x, float *restrict y, long n) {
    for (long i = 0; i < n; i++) y[i] = x[i] * conjure_normal_cdf(x[i]);
}

CONJURE_CLONES
void conjure_gelu_backward(const float *restrict x, const float *restrict g, float *restrict dx, long n) {
    for (long i = 0; i < n; i++) {
        float v = x[i];
        float pdf = 0.39894228040143268f * conjure_expf_poly(-0.5f * v * v);
        dx[i] = g[i] * (conjure_normal_cdf(v) + v * pdf);
    }
}

CONJURE_CLONES
void conjure_silu(const float *restrict x, float *restrict y, long n) {
    for (long i = 0; i < n; i++) y[i] = x[i] / (1.0f + conjure_expf_poly(-x[i]));
}

CONJURE_CLONES
void conjure_silu_backward(const float *restrict x, const float *restrict g, float *restrict dx, long n) {
    for (long i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + conjure_expf_poly(-x[i]));
        dx[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

// The sum of 8 lanes, pairwise in a fixed order.
static inline __attribute__((always_inline)) double conjure_lanes8(const double *acc) {
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

CONJURE_CLONES
void conjure_layernorm_rows(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                            float *restrict xhat, float *restrict rstd, long r0, long r1, long d, float eps) {
    for (long r = r0; r < r1; r++) {
        const float *xr = x + r * d;
        // Sums in 8 double lanes (j mod 8), combined in a fixed order.
        double acc[8] = {0};
        long j = 0;
        for (; j + 8 <= d; j += 8)
            for (int l = 0; l < 8; l++) acc[l] += xr[j + l];
        for (; j < d; j++) acc[j & 7] += xr[j];
        double mean = conjure_lanes8(acc) / (double)d;
        for (int l = 0; l < 8; l++) acc[l] = 0;
        for (j = 0; j + 8 <= d; j += 8)
            for (int l = 0; l < 8; l++) { double c = xr[j + l] - mean; acc[l] += c * c; }
        for (; j < d; j++) { double c = xr[j] - mean; acc[j & 7] += c * c; }
        double v = conjure_lanes8(acc);
        float inv = (float)(1.0 / __builtin_sqrt(v / (double)d + (double)eps));
        float mf = (float)mean;
        rstd[r] = inv;
        float *hr = xhat + r * d, *yr = y + r * d;
        for (long j = 0; j < d; j++) {
            float h = (xr[j] - mf) * inv;
            hr[j] = h;
            yr[j] = w ? h * w[j] + b[j] : h;
        }
    }
}

CONJURE_CLONES
void conjure_layernorm_rows_backward(const float *restrict g, const float *restrict xhat, const float *restrict rstd,
                                     const float *restrict w, float *restrict dx, long r0, long r1, long d) {
    for (long r = r0; r < r1; r++) {
        const float *gr = g + r * d, *hr = xhat + r * d;
        // Sums in 8 double lanes (j mod 8), combined in a fixed order.
        double a1[8] = {0}, a2[8] = {0};
        long j = 0;
        for (; j + 8 <= d; j += 8)
            for (int l = 0; l < 8; l++) { float gv = w ? gr[j + l] * w[j + l] : gr[j + l]; a1[l] += gv; a2[l] += (double)gv * hr[j + l]; }
        for (; j < d; j++) { float gv = w ? gr[j] * w[j] : gr[j]; a1[j & 7] += gv; a2[j & 7] += (double)gv * hr[j]; }
        double m1 = conjure_lanes8(a1), m2 = conjure_lanes8(a2);
        float a = (float)(m1 / (double)d), c = (float)(m2 / (double)d), inv = rstd[r];
        float *dr = dx + r * d;
        for (long j = 0; j < d; j++) { float gv = w ? gr[j] * w[j] : gr[j]; dr[j] = (gv - a - hr[j] * c) * inv; }
    }
}

// MARK: Group normalisation

/// Sums x[0..<len] and (with y) x*y in 8 double lanes (i mod 8), combined in a fixed order.
static inline __attribute__((always_inline)) void conjure_sums8(const float *restrict x, const float *restrict y, long len,
                                                               double *s1, double *s2) {
    double a1[8] = {0}, a2[8] = {0};
    long i = 0;
    for (; i + 8 <= len; i += 8)
        for (int l = 0; l < 8; l++) { a1[l] += x[i + l]; if (y) a2[l] += (double)x[i + l] * y[i + l]; }
    for (; i < len; i++) { a1[i & 7] += x[i]; if (y) a2[i & 7] += (double)x[i] * y[i]; }
    *s1 = conjure_lanes8(a1);
    if (s2) *s2 = conjure_lanes8(a2);
}

/// The sum and the sum of squares of x[0 ..< len] in 16 double lanes each (two 8-wide vectors
/// of float-to-double conversions per 16 elements), the lanes combined in a fixed order.
static inline __attribute__((always_inline)) void conjure_sum_squares16(const float *restrict x, long len,
                                                                        double *s1, double *s2) {
    typedef double v8d __attribute__((vector_size(64)));
    typedef float v8f __attribute__((vector_size(32)));
    v8d a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
    long i = 0;
    for (; i + 16 <= len; i += 16) {
        v8f f0, f1;
        __builtin_memcpy(&f0, x + i, sizeof f0);
        __builtin_memcpy(&f1, x + i + 8, sizeof f1);
        v8d d0 = __builtin_convertvector(f0, v8d), d1 = __builtin_convertvector(f1, v8d);
        a0 += d0; a1 += d1; b0 += d0 * d0; b1 += d1 * d1;
    }
    double a[8], b[8];
    for (int l = 0; l < 8; l++) { a[l] = a0[l] + a1[l]; b[l] = b0[l] + b1[l]; }
    for (; i < len; i++) { double d = (double)x[i]; a[i & 7] += d; b[i & 7] += d * d; }
    *s1 = conjure_lanes8(a);
    *s2 = conjure_lanes8(b);
}

CONJURE_CLONES
void conjure_groupnorm_forward(const float *restrict x, const float *restrict w, const float *restrict b, float *restrict y,
                               float *restrict xhat, double *restrict inv_std, long q0, long q1, long groups, long cpg,
                               long inner, float eps, int silu) {
    long per = cpg * inner;
    for (long q = q0; q < q1; q++) {
        const float *xq = x + q * per;
        // One pass for the sum and the sum of squares: a float's square is exact in double, so
        // var = E[x^2] - mean^2 loses only what the accumulation rounds (relative 1e-16 times
        // mean^2 / var, far below float resolution for any float data).
        double s, ss;
        conjure_sum_squares16(xq, per, &s, &ss);
        double mean = s / (double)per;
        double var = ss / (double)per - mean * mean;
        if (var < 0) var = 0;
        double inv = 1.0 / __builtin_sqrt(var + (double)eps);
        inv_std[q] = inv;
        float hs = (float)inv, hc0 = (float)(-mean * inv);
        long c0 = (q % groups) * cpg;
        for (long ch = 0; ch < cpg; ch++) {
            double sc = w ? (double)w[c0 + ch] : 1.0, sh = b ? (double)b[c0 + ch] : 0.0;
            // y = x * a + c with a = inv * w, c = b - mean * inv * w (float FMA per element).
            float a = (float)(inv * sc), c = (float)(sh - mean * inv * sc);
            const float *xc = xq + ch * inner;
            float *yc = y + q * per + ch * inner;
            if (xhat) {
                float *hc = xhat + q * per + ch * inner;
                for (long j = 0; j < inner; j++) { hc[j] = xc[j] * hs + hc0; yc[j] = xc[j] * a + c; }
            } else if (silu) {
                // The SiLU of conjure_silu on the same float, in the same pass.
                for (long j = 0; j < inner; j++) {
                    float v = xc[j] * a + c;
                    yc[j] = v / (1.0f + conjure_expf_poly(-v));
                }
            } else {
                for (long j = 0; j < inner; j++) yc[j] = xc[j] * a + c;
            }
        }
    }
}

CONJURE_CLONES
void conjure_row_sums2(const float *restrict g, const float *restrict h, double *restrict sg, double *restrict sgh,
                       long r0, long r1, long len) {
    for (long r = r0; r < r1; r++) conjure_sums8(g + r * len, h + r * len, len, sg + r, sgh + r);
}

CONJURE_CLONES
void conjure_groupnorm_backward(const float *restrict g, const float *restrict xhat, const float *restrict w,
                                const double *restrict sg, const double *restrict sgh, const double *restrict inv_std,
                                float *restrict dx, long q0, long q1, long groups, long cpg, long inner) {
    long per = cpg * inner;
    for (long q = q0; q < q1; q++) {
        long c0 = (q % groups) * cpg, row0 = q * cpg;
        double m1 = 0, m2 = 0;
        for (long ch = 0; ch < cpg; ch++) {
            double sc = w ? (double)w[c0 + ch] : 1.0;
            m1 += sc * sg[row0 + ch];
            m2 += sc * sgh[row0 + ch];
        }
        m1 /= (double)per; m2 /= (double)per;
        float a = (float)m1, c = (float)m2, inv = (float)inv_std[q];
        for (long ch = 0; ch < cpg; ch++) {
            float sc = w ? w[c0 + ch] : 1.0f;
            const float *gc = g + q * per + ch * inner, *hc = xhat + q * per + ch * inner;
            float *dc = dx + q * per + ch * inner;
            for (long j = 0; j < inner; j++) dc[j] = (gc[j] * sc - a - hc[j] * c) * inv;
        }
    }
}

// MARK: GRU cell

CONJURE_CLONES
void conjure_gru_cell(const float *restrict gi, const float *restrict gh, const float *restrict h, float *restrict out,
                      float *restrict r, float *restrict z, float *restrict n, long b0, long b1, long hs) {
    for (long b = b0; b < b1; b++) {
        const float *gib = gi + b * 3 * hs, *ghb = gh + b * 3 * hs, *hb = h + b * hs;
        float *ob = out + b * hs, *rb = r + b * hs, *zb = z + b * hs, *nb = n + b * hs;
        for (long j = 0; j < hs; j++) {
            float rj = conjure_sigmoidf(gib[j] + ghb[j]);
            float zj = conjure_sigmoidf(gib[hs + j] + ghb[hs + j]);
            float nj = conjure_tanhf(gib[2 * hs + j] + rj * ghb[2 * hs + j]);
            rb[j] = rj; zb[j] = zj; nb[j] = nj;
            ob[j] = nj + zj * (hb[j] - nj);
        }
    }
}

CONJURE_CLONES
void conjure_gru_cell_backward(const float *restrict dout, const float *restrict h, const float *restrict gh,
                               const float *restrict r, const float *restrict z, const float *restrict n,
                               float *restrict dgi, float *restrict dgh, float *restrict dh, long b0, long b1, long hs) {
    for (long b = b0; b < b1; b++) {
        const float *db = dout + b * hs, *hb = h + b * hs, *ghb = gh + b * 3 * hs;
        const float *rb = r + b * hs, *zb = z + b * hs, *nb = n + b * hs;
        float *dgib = dgi + b * 3 * hs, *dghb = dgh + b * 3 * hs, *dhb = dh + b * hs;
        for (long j = 0; j < hs; j++) {
            float d = db[j], rj = rb[j], zj = zb[j], nj = nb[j];
            float dn = d * (1.0f - zj) * (1.0f - nj * nj);  // through tanh
            float dz = d * (hb[j] - nj) * zj * (1.0f - zj);  // through sigmoid
            float dr = dn * ghb[2 * hs + j] * rj * (1.0f - rj);
            dgib[j] = dr;
            dgib[hs + j] = dz;
            dgib[2 * hs + j] = dn;
            dghb[j] = dr;
            dghb[hs + j] = dz;
            dghb[2 * hs + j] = dn * rj;
            dhb[j] = d * zj;
        }
    }
}

// 1-D im2col / col2im (WaveGAN's kernel 25, stride 4): row by row, no tap tables. For kernel
// offset r the valid outputs are p_lo <= p < p_hi with 0 <= p * sw + r - pw < w.
static inline void conjure_1d_range(const conjure_conv_geometry *g, long r, long *lo, long *hi) {
    const long sw = g->sw, off = r - g->pw;
    long a = off >= 0 ? 0 : (-off + sw - 1) / sw;
    long b = g->w - 1 - off < 0 ? 0 : (g->w - 1 - off) / sw + 1;
    if (b > g->wo) b = g->wo;
    if (a > b) a = b;
    *lo = a;
    *hi = b;
}

// Both go through the signal's sw phases (phase f holds x[j * sw + f], j < m = ceil(w / sw)):
// kernel offset r reads (writes) phase (r - pw) mod sw at a constant shift, so each row is one
// contiguous copy (add) instead of a strided one.
static inline void conjure_1d_phase(const conjure_conv_geometry *g, long r, long m, long *start) {
    const long sw = g->sw, off = r - g->pw;
    const long f = ((off % sw) + sw) % sw, o = (off - f) / sw;
    *start = f * m + o;
}

CONJURE_CLONES
void conjure_im2col_1d(const float *restrict image, const conjure_conv_geometry *g, float *restrict col,
                       long q0, long q1) {
    const long nb = g->n, c = g->c, w = g->w, wo = g->wo, kw = g->kw, sw = g->sw, nl = nb * wo;
    const long m = (w + sw - 1) / sw;
    float *restrict ph = (float *)malloc(sizeof(float) * (size_t)(sw * m));
    for (long q = q0; q < q1; q++) {
        const long ci = q / nb, b = q % nb;
        const float *restrict src = image + (b * c + ci) * w;
        for (long f = 0; f < sw; f++) {
            float *restrict pf = ph + f * m;
            for (long j = 0; j < m; j++) {
                const long idx = j * sw + f;
                pf[j] = idx < w ? src[idx] : 0.0f;
            }
        }
        for (long r = 0; r < kw; r++) {
            float *restrict d = col + (ci * kw + r) * nl + b * wo;
            long lo, hi, start;
            conjure_1d_range(g, r, &lo, &hi);
            conjure_1d_phase(g, r, m, &start);
            for (long p = 0; p < lo; p++) d[p] = 0.0f;
            for (long p = lo; p < hi; p++) d[p] = ph[start + p];
            for (long p = hi; p < wo; p++) d[p] = 0.0f;
        }
    }
    free(ph);
}

CONJURE_CLONES
void conjure_col2im_1d(const float *restrict col, const conjure_conv_geometry *g, float *restrict image,
                       long q0, long q1) {
    const long nb = g->n, c = g->c, w = g->w, wo = g->wo, kw = g->kw, sw = g->sw, nl = nb * wo;
    const long m = (w + sw - 1) / sw;
    float *restrict acc = (float *)malloc(sizeof(float) * (size_t)(sw * m));
    for (long q = q0; q < q1; q++) {
        const long ci = q / nb, b = q % nb;
        float *restrict dst = image + (b * c + ci) * w;
        for (long i = 0; i < sw * m; i++) acc[i] = 0.0f;
        // Each element accumulates its entries in increasing r, as conjure_col2im_planes.
        for (long r = 0; r < kw; r++) {
            const float *restrict row = col + (ci * kw + r) * nl + b * wo;
            long lo, hi, start;
            conjure_1d_range(g, r, &lo, &hi);
            conjure_1d_phase(g, r, m, &start);
            for (long p = lo; p < hi; p++) acc[start + p] += row[p];
        }
        for (long f = 0; f < sw; f++) {
            const float *restrict af = acc + f * m;
            for (long j = 0; j < m; j++) {
                const long idx = j * sw + f;
                if (idx < w) dst[idx] = af[j];
            }
        }
    }
    free(acc);
}

// MARK: Fused multi-head attention (see the header)

#define CONJURE_INLINE static inline __attribute__((always_inline))

// Sum of x[0 ..< n] in 16 float lanes, combined pairwise in a fixed order.
CONJURE_INLINE float conjure_lane_sum(const float *restrict x, long n) {
    float acc[16] = {0};
    long j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) acc[l] += x[j + l];
    for (int l = 0; j < n; j++, l++) acc[l] += x[j];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

// Sum of x[j] * y[j] for j < n in 16 float lanes, combined pairwise in a fixed order.
CONJURE_INLINE float conjure_lane_dot(const float *restrict x, const float *restrict y, long n) {
    float acc[16] = {0};
    long j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) acc[l] += x[j + l] * y[j + l];
    for (int l = 0; j < n; j++, l++) acc[l] += x[j] * y[j];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

CONJURE_INLINE float conjure_lane_max(const float *restrict x, long n) {
    float acc[16];
    for (int l = 0; l < 16; l++) acc[l] = x[0];
    long j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
    for (int l = 0; j < n; j++, l++) acc[l] = x[j] > acc[l] ? x[j] : acc[l];
    float m = acc[0];
    for (int l = 1; l < 16; l++) m = acc[l] > m ? acc[l] : m;
    return m;
}

// out[r * ldo + j] = sum_c a[r * lda + c] * mt[c * ld + j] for 4 rows r and j in blocks of 16
// covering 0 ..< nb (a multiple of 16; mt is padded to whole blocks): four rows share each load
// of mt, four independent FMA chains. Each row's sums run over c in order.
CONJURE_INLINE void conjure_rows4_times_transposed(const float *restrict a, long lda, const float *restrict mt, long ld,
                                                   long d, long nb, float *restrict out, long ldo) {
    for (long j0 = 0; j0 < nb; j0 += 16) {
        float acc[4][16] = {{0}};
        for (long c = 0; c < d; c++) {
            const float *m = mt + c * ld + j0;
            for (int r = 0; r < 4; r++) {
                const float ac = a[r * lda + c];
                for (int l = 0; l < 16; l++) acc[r][l] += ac * m[l];
            }
        }
        for (int r = 0; r < 4; r++)
            for (int l = 0; l < 16; l++) out[r * ldo + j0 + l] = acc[r][l];
    }
}

// The attention weights of one row from its scores over nb keys (a multiple of 16), the first n
// kept: x_j = exp(s_j - m) for j < n, 0 after, then times inv (the same operations in the
// forward, which finds m and inv, and in the backward, which recomputes them).
CONJURE_INLINE void conjure_attention_weights(float *restrict srow, long n, long nb, float m, float inv) {
    for (long j = 0; j < nb; j++) { float x = conjure_expf_poly(srow[j] - m); srow[j] = j < n ? x : 0.0f; }
    for (long j = 0; j < nb; j++) srow[j] *= inv;
}

// The forward on slices s0 ..< s1, four query rows at a time. Local copies: q (scaled) and v
// rows with a stride of dp (d rounded up to 16), k transposed with a stride of tp (t rounded up
// to 16), zero-padded, so every loop runs over whole blocks of 16.
CONJURE_CLONES
void conjure_attention_forward(const float *restrict qkv, float *restrict out, float *restrict stats, long t, long h,
                               long d, float scale, int causal, long s0, long s1) {
    const long e = h * d, row = 3 * e, tp = (t + 15) / 16 * 16, dp = (d + 15) / 16 * 16;
    float *buf = malloc(sizeof(float) * (size_t)(tp * d + 2 * tp * dp + 4 * tp));
    float *kt = buf, *v = kt + tp * d, *q = v + tp * dp, *sc = q + tp * dp;
    for (long x = 0; x < tp * d + 2 * tp * dp; x++) buf[x] = 0.0f;
    for (long s = s0; s < s1; s++) {
        const long b = s / h, hh = s % h;
        const float *base = qkv + b * t * row + hh * d;
        for (long j = 0; j < t; j++) {
            const float *qj = base + j * row, *kj = qj + e, *vj = qj + 2 * e;
            for (long c = 0; c < d; c++) q[j * dp + c] = qj[c] * scale;
            for (long c = 0; c < d; c++) kt[c * tp + j] = kj[c];
            for (long c = 0; c < d; c++) v[j * dp + c] = vj[c];
        }
        for (long i0 = 0; i0 < t; i0 += 4) {
            const long nb = causal ? (i0 + 4 + 15) / 16 * 16 : tp;
            conjure_rows4_times_transposed(q + i0 * dp, dp, kt, tp, d, nb, sc, tp);
            for (int r = 0; r < 4; r++) {
                float *srow = sc + r * tp;
                const long i = i0 + r, n = causal ? (i + 1 < t ? i + 1 : t) : t;
                for (long j = 0; j < nb; j++) srow[j] = j < n ? srow[j] : -INFINITY;
                const float m = conjure_lane_max(srow, nb);
                for (long j = 0; j < nb; j++) { float x = conjure_expf_poly(srow[j] - m); srow[j] = j < n ? x : 0.0f; }
                const float inv = 1.0f / conjure_lane_sum(srow, nb);
                for (long j = 0; j < nb; j++) srow[j] *= inv;
                if (i < t) { stats[2 * (s * t + i)] = m; stats[2 * (s * t + i) + 1] = inv; }
            }
            for (long c0 = 0; c0 < dp; c0 += 16) {
                float acc[4][16] = {{0}};
                for (long j = 0; j < nb; j++) {
                    const float *vj = v + j * dp + c0;
                    for (int r = 0; r < 4; r++) {
                        const float pj = sc[r * tp + j];
                        for (int l = 0; l < 16; l++) acc[r][l] += pj * vj[l];
                    }
                }
                for (int r = 0; r < 4 && i0 + r < t; r++) {
                    float *dst = out + (b * t + i0 + r) * e + hh * d + c0;
                    for (long l = 0; l < 16 && c0 + l < d; l++) dst[l] = acc[r][l];
                }
            }
        }
    }
    free(buf);
}

// The backward on slices s0 ..< s1, four query rows at a time (each key's dk and dv rows are
// loaded and stored once per four rows), with the local layouts of the forward.
CONJURE_CLONES
void conjure_attention_backward(const float *restrict qkv, const float *restrict stats, const float *restrict dout,
                                float *restrict dqkv, long t, long h, long d, float scale, int causal, long s0, long s1) {
    const long e = h * d, row = 3 * e, tp = (t + 15) / 16 * 16, dp = (d + 15) / 16 * 16;
    float *buf = malloc(sizeof(float) * (size_t)(2 * tp * d + 5 * tp * dp + 12 * tp));
    float *vt = buf, *kt = vt + tp * d, *k = kt + tp * d, *q = k + tp * dp, *go_s = q + tp * dp, *dk = go_s + tp * dp;
    float *dv = dk + tp * dp, *pw = dv + tp * dp, *dpw = pw + 4 * tp, *ds = dpw + 4 * tp;
    for (long x = 0; x < 2 * tp * d + 5 * tp * dp; x++) buf[x] = 0.0f;
    for (long s = s0; s < s1; s++) {
        const long b = s / h, hh = s % h;
        const float *base = qkv + b * t * row + hh * d;
        for (long j = 0; j < t; j++) {
            const float *qj = base + j * row, *kj = qj + e, *vj = qj + 2 * e;
            const float *gj = dout + (b * t + j) * e + hh * d;
            for (long c = 0; c < d; c++) q[j * dp + c] = qj[c] * scale;
            for (long c = 0; c < d; c++) k[j * dp + c] = kj[c];
            for (long c = 0; c < d; c++) go_s[j * dp + c] = gj[c];
            for (long c = 0; c < dp; c++) { dk[j * dp + c] = 0.0f; dv[j * dp + c] = 0.0f; }
            for (long c = 0; c < d; c++) vt[c * tp + j] = vj[c];
            for (long c = 0; c < d; c++) kt[c * tp + j] = kj[c];
        }
        for (long i0 = 0; i0 < t; i0 += 4) {
            const long nb = causal ? (i0 + 4 + 15) / 16 * 16 : tp;
            // The forward's weights, recomputed from each row's saved maximum and 1 / sum (the
            // same operations, so the same bits); rows past t (padding) get weights 0.
            conjure_rows4_times_transposed(q + i0 * dp, dp, kt, tp, d, nb, pw, tp);
            conjure_rows4_times_transposed(go_s + i0 * dp, dp, vt, tp, d, nb, dpw, tp);
            for (int r = 0; r < 4; r++) {
                float *p = pw + r * tp, *dpr = dpw + r * tp, *dsr = ds + r * tp;
                const long i = i0 + r, n = causal ? (i + 1 < t ? i + 1 : t) : t;
                if (i < t) {
                    conjure_attention_weights(p, n, nb, stats[2 * (s * t + i)], stats[2 * (s * t + i) + 1]);
                } else {
                    for (long j = 0; j < nb; j++) p[j] = 0.0f;
                }
                const float dot = conjure_lane_dot(p, dpr, nb);
                for (long j = 0; j < nb; j++) dsr[j] = p[j] * (dpr[j] - dot);
            }
            for (long c0 = 0; c0 < dp; c0 += 16) {
                float acc[4][16] = {{0}}, qc[4][16], gc[4][16];
                for (int r = 0; r < 4; r++)
                    for (int l = 0; l < 16; l++) { qc[r][l] = q[(i0 + r) * dp + c0 + l]; gc[r][l] = go_s[(i0 + r) * dp + c0 + l]; }
                for (long j = 0; j < nb; j++) {
                    const float *kj = k + j * dp + c0;
                    float *dkj = dk + j * dp + c0, *dvj = dv + j * dp + c0;
                    float kv[16], dkv[16], dvv[16];
                    for (int l = 0; l < 16; l++) { kv[l] = kj[l]; dkv[l] = dkj[l]; dvv[l] = dvj[l]; }
                    for (int r = 0; r < 4; r++) {
                        const float sj = ds[r * tp + j], pj = pw[r * tp + j];
                        for (int l = 0; l < 16; l++) acc[r][l] += sj * kv[l];
                        for (int l = 0; l < 16; l++) dkv[l] += sj * qc[r][l];
                        for (int l = 0; l < 16; l++) dvv[l] += pj * gc[r][l];
                    }
                    for (int l = 0; l < 16; l++) { dkj[l] = dkv[l]; dvj[l] = dvv[l]; }
                }
                for (int r = 0; r < 4 && i0 + r < t; r++) {
                    float *dst = dqkv + (b * t + i0 + r) * row + hh * d + c0;
                    for (long l = 0; l < 16 && c0 + l < d; l++) dst[l] = acc[r][l] * scale;
                }
            }
        }
        for (long j = 0; j < t; j++) {
            float *dst = dqkv + (b * t + j) * row + hh * d;
            for (long c = 0; c < d; c++) dst[e + c] = dk[j * dp + c];
            for (long c = 0; c < d; c++) dst[2 * e + c] = dv[j * dp + c];
        }
    }
    free(buf);
}

CONJURE_CLONES
void conjure_transpose_batched(const float *restrict x, float *restrict y, long b0, long b1, long rows, long cols) {
    const long tile = 16;
    for (long b = b0; b < b1; b++) {
        const float *xb = x + b * rows * cols;
        float *yb = y + b * rows * cols;
        for (long i0 = 0; i0 < rows; i0 += tile) {
            long i1 = i0 + tile < rows ? i0 + tile : rows;
            for (long j0 = 0; j0 < cols; j0 += tile) {
                long j1 = j0 + tile < cols ? j0 + tile : cols;
                for (long j = j0; j < j1; j++)
                    for (long i = i0; i < i1; i++) yb[j * rows + i] = xb[i * cols + j];
            }
        }
    }
}
