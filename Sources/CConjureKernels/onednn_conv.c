// oneDNN convolution primitives behind Conjure's convolution seam (see conjure_onednn_conv.h).
//
// Primitives are JIT-compiled per shape on first use and cached for the process (a lock-guarded
// list; a run has a few dozen shapes). Every primitive uses a user-provided scratchpad, so one
// primitive may run on several pool threads at once (oneDNN's rule for concurrent execution).
#include "conjure_onednn_conv.h"
#include "conjure_pool.h"
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void omp_set_num_threads(int num_threads);

static dnnl_engine_t engine;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;
static void make_engine(void) {
    if (dnnl_engine_create(&engine, dnnl_cpu, 0) != dnnl_success) engine = NULL;
}

static void fail(const char *what, dnnl_status_t s) {
    fprintf(stderr, "conjure: oneDNN %s failed (status %d)\n", what, (int)s);
    abort();
}

/// One operand's plain and chosen layouts and the reorder between them (NULL when equal).
typedef struct {
    dnnl_memory_desc_t plain, chosen;
    dnnl_primitive_t reorder;  // plain -> chosen for an input, chosen -> plain for the output
    size_t bytes;              // of the chosen layout
} operand;

typedef struct entry {
    int kind, bias;
    conjure_conv_geometry g;  // n = the chunk's images
    long f;
    int ok;
    dnnl_primitive_t conv;
    operand image, weight, columns;
    size_t scratch;  // the largest scratchpad of the convolution and the reorders
    char impl[64];
    struct entry *next;
} entry;

static entry *cache;
static long cached_primitives;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static size_t scratch_of(const_dnnl_primitive_desc_t pd) {
    const dnnl_memory_desc_t *md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    return md ? dnnl_memory_desc_get_size(md) : 0;
}

/// Sets `op->reorder` to a reorder between `op->plain` and `op->chosen` (input: plain to chosen).
static int make_reorder(operand *op, int input, const_dnnl_primitive_attr_t attr, size_t *scratch) {
    op->bytes = dnnl_memory_desc_get_size(&op->chosen);
    op->reorder = NULL;
    if (dnnl_memory_desc_equal(&op->plain, &op->chosen)) return 1;
    dnnl_primitive_desc_t pd;
    const dnnl_memory_desc_t *from = input ? &op->plain : &op->chosen, *to = input ? &op->chosen : &op->plain;
    if (dnnl_reorder_primitive_desc_create(&pd, from, engine, to, engine, attr) != dnnl_success) return 0;
    size_t s = scratch_of(pd);
    if (s > *scratch) *scratch = s;
    dnnl_status_t st = dnnl_primitive_create(&op->reorder, pd);
    dnnl_primitive_desc_destroy(pd);
    if (st != dnnl_success) return 0;
    cached_primitives++;
    return 1;
}

static void build(entry *e) {
    const conjure_conv_geometry *g = &e->g;
    dnnl_dims_t src_dims = {g->n, g->c, g->h, g->w}, wei_dims = {e->f, g->c, g->kh, g->kw};
    dnnl_dims_t dst_dims = {g->n, e->f, g->ho, g->wo}, bias_dims = {e->f};
    dnnl_dims_t strides = {g->sh, g->sw}, pad_l = {g->ph, g->pw};
    // oneDNN's right padding makes (h + pl + pr - kh) / sh + 1 = ho exactly.
    dnnl_dims_t pad_r = {(g->ho - 1) * g->sh + g->kh - g->h - g->ph, (g->wo - 1) * g->sw + g->kw - g->w - g->pw};
    if (pad_r[0] < 0) pad_r[0] = 0;
    if (pad_r[1] < 0) pad_r[1] = 0;
    dnnl_memory_desc_t src_any, wei_any, dst_any, bias_md;
    dnnl_memory_desc_init_by_tag(&e->image.plain, 4, src_dims, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&e->weight.plain, 4, wei_dims, dnnl_f32, dnnl_oihw);
    dnnl_memory_desc_init_by_tag(&e->columns.plain, 4, dst_dims, dnnl_f32, dnnl_nchw);
    dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&wei_any, 4, wei_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_init_by_tag(&bias_md, 1, bias_dims, dnnl_f32, dnnl_x);

    dnnl_primitive_attr_t attr;
    if (dnnl_primitive_attr_create(&attr) != dnnl_success) return;
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);

    dnnl_convolution_desc_t fwd, desc;
    dnnl_primitive_desc_t hint = NULL, pd = NULL;
    int bias = e->kind == CONJURE_CONV_FORWARD && e->bias;
    if (dnnl_convolution_forward_desc_init(&fwd, dnnl_forward_training, dnnl_convolution_direct, &src_any, &wei_any,
                                           bias ? &bias_md : NULL, &dst_any, strides, pad_l, pad_r) != dnnl_success)
        goto done;
    if (e->kind == CONJURE_CONV_FORWARD) {
        if (dnnl_primitive_desc_create(&pd, &fwd, attr, engine, NULL) != dnnl_success) { pd = NULL; goto done; }
    } else {
        if (dnnl_primitive_desc_create(&hint, &fwd, attr, engine, NULL) != dnnl_success) { hint = NULL; goto done; }
        dnnl_status_t st = e->kind == CONJURE_CONV_BACKWARD_DATA
            ? dnnl_convolution_backward_data_desc_init(&desc, dnnl_convolution_direct, &src_any, &wei_any, &dst_any,
                                                       strides, pad_l, pad_r)
            : dnnl_convolution_backward_weights_desc_init(&desc, dnnl_convolution_direct, &src_any, &wei_any, NULL,
                                                          &dst_any, strides, pad_l, pad_r);
        if (st != dnnl_success) goto done;
        if (dnnl_primitive_desc_create(&pd, &desc, attr, engine, hint) != dnnl_success) { pd = NULL; goto done; }
    }
    const char *impl = NULL;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(e->impl, sizeof e->impl, "%s", impl ? impl : "?");
    // oneDNN's gemm-based convolutions ("gemm:jit", "x64:gemm:jit") are im2col + GEMM, the
    // algorithm of Conjure's own path, which measured faster on WaveGAN's k25 s4 convolutions:
    // only direct (JIT-compiled) convolutions are used.
    if (strstr(e->impl, "gemm") != NULL) goto done;
    int k = e->kind;
    e->image.chosen = *dnnl_primitive_desc_query_md(pd, k == CONJURE_CONV_BACKWARD_DATA ? dnnl_query_diff_src_md : dnnl_query_src_md, 0);
    e->weight.chosen = *dnnl_primitive_desc_query_md(pd, k == CONJURE_CONV_BACKWARD_WEIGHTS ? dnnl_query_diff_weights_md : dnnl_query_weights_md, 0);
    e->columns.chosen = *dnnl_primitive_desc_query_md(pd, k == CONJURE_CONV_FORWARD ? dnnl_query_dst_md : dnnl_query_diff_dst_md, 0);
    e->scratch = scratch_of(pd);
    if (dnnl_primitive_create(&e->conv, pd) != dnnl_success) { e->conv = NULL; goto done; }
    cached_primitives++;
    if (!make_reorder(&e->image, k != CONJURE_CONV_BACKWARD_DATA, attr, &e->scratch)) goto done;
    if (!make_reorder(&e->weight, k != CONJURE_CONV_BACKWARD_WEIGHTS, attr, &e->scratch)) goto done;
    if (!make_reorder(&e->columns, k != CONJURE_CONV_FORWARD, attr, &e->scratch)) goto done;
    e->ok = 1;
done:
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (hint) dnnl_primitive_desc_destroy(hint);
    dnnl_primitive_attr_destroy(attr);
}

static entry *lookup(int kind, const conjure_conv_geometry *g, long f, long n, int bias) {
    pthread_once(&engine_once, make_engine);
    if (!engine) return NULL;
    conjure_conv_geometry key = *g;
    key.n = n;
    bias = kind == CONJURE_CONV_FORWARD && bias;
    pthread_mutex_lock(&cache_lock);
    entry *e = cache;
    for (; e; e = e->next)
        if (e->kind == kind && e->bias == bias && e->f == f && memcmp(&e->g, &key, sizeof key) == 0) break;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (e) {
            e->kind = kind; e->bias = bias; e->g = key; e->f = f;
            build(e);
            e->next = cache;
            cache = e;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return e && e->ok ? e : NULL;
}

// MARK: - Execution

/// The calling thread's stream and scratch buffer (pool threads live for the process).
static __thread dnnl_stream_t tl_stream;
static __thread char *tl_buffer;
static __thread size_t tl_capacity;

/// `*buf` grown to at least `bytes` (64-byte aligned; the old contents are not kept).
static char *grown(char **buf, size_t *capacity, size_t bytes, const char *what) {
    if (bytes > *capacity) {
        free(*buf);
        *buf = aligned_alloc(64, (bytes + 63) / 64 * 64);
        if (!*buf) { fprintf(stderr, "conjure: out of memory (%zu bytes of convolution %s)\n", bytes, what); abort(); }
        *capacity = bytes;
    }
    return *buf;
}

static char *thread_buffer(size_t bytes) { return grown(&tl_buffer, &tl_capacity, bytes, "scratch"); }

static dnnl_memory_t memory(const dnnl_memory_desc_t *md, void *ptr) {
    dnnl_memory_t m;
    dnnl_status_t s = dnnl_memory_create(&m, md, engine, ptr);
    if (s != dnnl_success) fail("memory_create", s);
    return m;
}

static void run(dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args) {
    dnnl_status_t s = dnnl_primitive_execute(p, tl_stream, nargs, args);
    if (s != dnnl_success) fail("primitive_execute", s);
}

/// Reorders `from` (in `from_md`) into `to` (in `to_md`) with `r`, scratchpad `scratch`.
static void reorder(dnnl_primitive_t r, const dnnl_memory_desc_t *from_md, const void *from,
                    const dnnl_memory_desc_t *to_md, void *to, const dnnl_memory_desc_t *scratch_md, void *scratch) {
    dnnl_memory_t a = memory(from_md, (void *)from), b = memory(to_md, to), s = memory(scratch_md, scratch);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}, {DNNL_ARG_SCRATCHPAD, s}};
    run(r, 3, args);
    dnnl_memory_destroy(a); dnnl_memory_destroy(b); dnnl_memory_destroy(s);
}

typedef struct {
    int kind;
    const conjure_conv_geometry *g;
    long f, per, chunks;
    entry *full, *last;       // the entries of a full chunk and of the last (shorter) one
    const float *image, *columns, *bias;
    const void *weight;       // in the chosen layout of the entries (inputs)
    float *out;
    char *partials;           // backward weights: one chosen-layout weight gradient per chunk
} job;

/// The memory a chunk's product uses for one operand: for the operand it writes (`written`),
/// the scratch `buf` when a reorder back to the plain layout follows, else the output `out`; for
/// an input, `plain` itself or its reorder into `buf`.
static void *side(const operand *op, int written, const float *plain, float *out, char *buf,
                  const dnnl_memory_desc_t *s_md, char *s_buf) {
    if (written) return op->reorder ? (void *)buf : (void *)out;
    if (!op->reorder) return (void *)plain;
    reorder(op->reorder, &op->plain, plain, &op->chosen, buf, s_md, s_buf);
    return buf;
}

static void chunk_task(void *ctx, long index) {
    job *j = ctx;
    entry *e = index == j->chunks - 1 ? j->last : j->full;
    const conjure_conv_geometry *g = j->g;
    omp_set_num_threads(1);
    if (!tl_stream && dnnl_stream_create(&tl_stream, engine, dnnl_stream_default_flags) != dnnl_success)
        fail("stream_create", dnnl_out_of_memory);
    long b0 = index * j->per;
    size_t image_plane = (size_t)g->c * g->h * g->w, column_plane = (size_t)j->f * g->ho * g->wo;
    const float *image = j->image ? j->image + b0 * image_plane : NULL;
    const float *columns = j->columns ? j->columns + b0 * column_plane : NULL;
    float *out = j->out;

    size_t a_bytes = e->image.reorder ? e->image.bytes : 0, c_bytes = e->columns.bytes;
    if (!e->columns.reorder) c_bytes = 0;
    size_t scratch_bytes = e->scratch ? e->scratch : 64;
    char *buf = thread_buffer(a_bytes + c_bytes + scratch_bytes + 128);
    char *a_buf = buf, *c_buf = buf + (a_bytes + 63) / 64 * 64, *s_buf = c_buf + (c_bytes + 63) / 64 * 64;
    dnnl_memory_desc_t s_md;
    dnnl_dims_t s_dims = {(dnnl_dim_t)scratch_bytes};
    dnnl_memory_desc_init_by_tag(&s_md, 1, s_dims, dnnl_u8, dnnl_x);

    // The image and columns sides: the operand the product writes goes to the chunk's scratch
    // when it needs a reorder back, else straight to the output; an input is reordered into
    // the scratch when its chosen layout differs.
    void *image_mem = side(&e->image, j->kind == CONJURE_CONV_BACKWARD_DATA, image, out + b0 * image_plane, a_buf, &s_md, s_buf);
    void *columns_mem = side(&e->columns, j->kind == CONJURE_CONV_FORWARD, columns, out + b0 * column_plane, c_buf, &s_md, s_buf);
    void *weight_mem = j->kind == CONJURE_CONV_BACKWARD_WEIGHTS
        ? (void *)(j->partials + (size_t)index * ((e->weight.bytes + 63) / 64 * 64)) : (void *)j->weight;

    dnnl_memory_t im = memory(&e->image.chosen, image_mem), wm = memory(&e->weight.chosen, weight_mem);
    dnnl_memory_t cm = memory(&e->columns.chosen, columns_mem), sm = memory(&s_md, s_buf), bm = NULL;
    dnnl_exec_arg_t args[5];
    int n = 0;
    switch (j->kind) {
    case CONJURE_CONV_FORWARD:
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, im};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wm};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DST, cm};
        if (e->bias) {
            dnnl_memory_desc_t b_md;
            dnnl_dims_t b_dims = {j->f};
            dnnl_memory_desc_init_by_tag(&b_md, 1, b_dims, dnnl_f32, dnnl_x);
            bm = memory(&b_md, (void *)j->bias);
            args[n++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, bm};
        }
        break;
    case CONJURE_CONV_BACKWARD_DATA:
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, cm};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, wm};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_SRC, im};
        break;
    default:
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SRC, im};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_DST, cm};
        args[n++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_WEIGHTS, wm};
        break;
    }
    args[n++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, sm};
    run(e->conv, n, args);
    dnnl_memory_destroy(im); dnnl_memory_destroy(wm); dnnl_memory_destroy(cm); dnnl_memory_destroy(sm);
    if (bm) dnnl_memory_destroy(bm);

    // Outputs back to the plain layout.
    if (j->kind == CONJURE_CONV_FORWARD && e->columns.reorder)
        reorder(e->columns.reorder, &e->columns.chosen, c_buf, &e->columns.plain, out + b0 * column_plane, &s_md, s_buf);
    if (j->kind == CONJURE_CONV_BACKWARD_DATA && e->image.reorder)
        reorder(e->image.reorder, &e->image.chosen, a_buf, &e->image.plain, out + b0 * image_plane, &s_md, s_buf);
}

/// The entries of a full chunk of `*per` images and of the last one (`*per` clamped to the
/// batch), or 0 when oneDNN has no direct implementation for either or they disagree on the
/// weight layout (both must share the one reordered weight).
static int resolve(int kind, const conjure_conv_geometry *g, long f, long *per, int bias, entry **full, entry **last) {
    if (g->n <= 0 || *per <= 0) return 0;
    if (*per > g->n) *per = g->n;
    long chunks = (g->n + *per - 1) / *per, rest = g->n - (chunks - 1) * *per;
    *full = lookup(kind, g, f, *per, bias);
    *last = rest == *per ? *full : lookup(kind, g, f, rest, bias);
    if (!*full || !*last) return 0;
    return dnnl_memory_desc_equal(&(*full)->weight.chosen, &(*last)->weight.chosen);
}

int conjure_onednn_conv_supported(int kind, const conjure_conv_geometry *g, long f, long per, int bias) {
    entry *full, *last;
    return resolve(kind, g, f, &per, bias, &full, &last);
}

/// The calling thread's buffer for a reordered weight (apart from the chunks' scratch, which
/// the calling thread also uses when it runs chunks).
static __thread char *tl_weights;
static __thread size_t tl_weights_capacity;

static char *weights_buffer(size_t bytes) { return grown(&tl_weights, &tl_weights_capacity, bytes, "weights"); }

int conjure_onednn_conv(int kind, const conjure_conv_geometry *g, long f, long per, const float *image,
                        const float *weight, const float *columns, const float *bias, float *out) {
    entry *full, *last;
    if (!resolve(kind, g, f, &per, bias != NULL, &full, &last)) return 1;
    long chunks = (g->n + per - 1) / per;
    pthread_once(&engine_once, make_engine);
    omp_set_num_threads(1);
    if (!tl_stream && dnnl_stream_create(&tl_stream, engine, dnnl_stream_default_flags) != dnnl_success)
        fail("stream_create", dnnl_out_of_memory);

    job j = {kind, g, f, per, chunks, full, last, image, columns, bias, weight, out, NULL};
    dnnl_memory_desc_t s_md;
    size_t scratch = full->scratch > 64 ? full->scratch : 64;
    dnnl_dims_t s_dims = {(dnnl_dim_t)scratch};
    dnnl_memory_desc_init_by_tag(&s_md, 1, s_dims, dnnl_u8, dnnl_x);
    if (kind != CONJURE_CONV_BACKWARD_WEIGHTS && full->weight.reorder) {
        // The weight's reorder before the chunks start, with the thread's scratch (free until then).
        size_t wbytes = (full->weight.bytes + 63) / 64 * 64;
        char *wbuf = weights_buffer(wbytes);
        reorder(full->weight.reorder, &full->weight.plain, weight, &full->weight.chosen, wbuf, &s_md, thread_buffer(scratch));
        j.weight = wbuf;
    }
    size_t wstride = (full->weight.bytes + 63) / 64 * 64;
    if (kind == CONJURE_CONV_BACKWARD_WEIGHTS) {
        j.partials = aligned_alloc(64, wstride * chunks);
        if (!j.partials) { fprintf(stderr, "conjure: out of memory (convolution weight gradients)\n"); abort(); }
    }
    conjure_parallel_for(chunks, chunk_task, &j);
    if (kind == CONJURE_CONV_BACKWARD_WEIGHTS) {
        // Sum the chunks' gradients in chunk order (padding lanes of blocked layouts included).
        float *sum = (float *)j.partials;
        size_t count = full->weight.bytes / sizeof(float);
        for (long c = 1; c < chunks; c++) {
            const float *p = (const float *)(j.partials + (size_t)c * wstride);
            for (size_t i = 0; i < count; i++) sum[i] += p[i];
        }
        if (full->weight.reorder) {
            reorder(full->weight.reorder, &full->weight.chosen, sum, &full->weight.plain, out, &s_md, thread_buffer(scratch));
        } else {
            memcpy(out, sum, full->weight.bytes);
        }
        free(j.partials);
    }
    return 0;
}

int conjure_onednn_conv_impl(int kind, const conjure_conv_geometry *g, long f, long per, char *name, long size) {
    entry *e = lookup(kind, g, f, per, 0);
    if (!e) return 1;
    snprintf(name, (size_t)size, "%s", e->impl);
    return 0;
}

long conjure_onednn_conv_cached(void) {
    pthread_mutex_lock(&cache_lock);
    long n = cached_primitives;
    pthread_mutex_unlock(&cache_lock);
    return n;
}
