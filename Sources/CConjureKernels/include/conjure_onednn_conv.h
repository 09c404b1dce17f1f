#ifndef CONJURE_ONEDNN_CONV_H
#define CONJURE_ONEDNN_CONV_H

#include "conjure_kernels.h"

/// The three convolution products of oneDNN (Debian's libdnnl-dev 2.x) on Conjure's NCHW
/// tensors: forward (image, weight [, bias] -> columns), backward data (columns, weight ->
/// image) and backward weights (image, columns -> weight). The geometry is Conjure's
/// `conjure_conv_geometry` (image [n, c, h, w], columns [n, f, ho, wo], weight [f, c, kh, kw]).
///
/// The batch is cut into chunks of `per` images, fixed by the caller from the shape only; each
/// chunk runs on one thread of Conjure's pool (`conjure_parallel_for`) with one OpenMP thread,
/// in the layouts oneDNN chooses for the shape (`format_tag_any`: nChw16c and blocked weights
/// with AVX-512), with reorders from and to the plain layouts around it. The chunks' weight
/// gradients are summed in chunk order, so the bits depend on the shape, `per` and the CPU,
/// never on the thread count.
enum { CONJURE_CONV_FORWARD = 0, CONJURE_CONV_BACKWARD_DATA = 1, CONJURE_CONV_BACKWARD_WEIGHTS = 2 };

/// Whether conjure_onednn_conv would run this product (1) or refuse it (0: no direct oneDNN
/// implementation for the shape, or none that shares one weight layout between a full chunk of
/// `per` images and the last); the primitives are built and cached on the first ask, so a
/// caller checks before it allocates the output.
int conjure_onednn_conv_supported(int kind, const conjure_conv_geometry *g, long f, long per, int bias);

/// Runs one convolution product over the whole batch `g->n` in chunks of `per` images.
///   CONJURE_CONV_FORWARD:          out [n, f, ho, wo] = conv(image, weight) (+ bias[f] if bias)
///   CONJURE_CONV_BACKWARD_DATA:    out [n, c, h, w]   = conv_transpose(columns, weight)
///   CONJURE_CONV_BACKWARD_WEIGHTS: out [f, c, kh, kw] = sum over images of image (x) columns
/// Unused operands may be NULL. Returns 0 on success, 1 when oneDNN has no implementation for
/// the shape (nothing is written; the caller falls back to im2col + GEMM). Must be called from
/// one thread at a time (it uses the pool).
int conjure_onednn_conv(int kind, const conjure_conv_geometry *g, long f, long per, const float *image,
                        const float *weight, const float *columns, const float *bias, float *out);

/// The implementation oneDNN picked for the primitive of `kind` on a chunk of `per` images
/// (e.g. "jit:avx512_core", "gemm:jit"), copied into `name` (at most `size` bytes with the NUL);
/// returns 0, or 1 when the shape has no implementation.
int conjure_onednn_conv_impl(int kind, const conjure_conv_geometry *g, long f, long per, char *name, long size);

/// How many oneDNN primitives (convolutions and reorders) the cache holds.
long conjure_onednn_conv_cached(void);

#endif
