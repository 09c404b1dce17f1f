import Foundation
import CConjureKernels

// MARK: - Batched matrix products and softmax (attention)

extension Tensor {
    /// Batched matrix product `op(a[i]) @ op(b[i])` for each of the `B` leading slices
    /// (PyTorch's `torch.bmm`, with transposes handed to the matrix backend as flags, no copy; ``sgemmStridedBatched(transposeA:transposeB:m:n:k:alpha:a:lda:strideA:b:ldb:strideB:beta:c:ldc:strideC:batch:)``).
    ///
    /// - Shapes: `a` `[B, M, K]` (or `[B, K, M]` with `transposeA`), `b` `[B, K, N]` (or
    ///   `[B, N, K]` with `transposeB`) → `[B, M, N]`.
    /// - Gradient: `ga = g @ op(b)ᵀ`, `gb = op(a)ᵀ @ g` per slice, as batched products
    ///   themselves (differentiable again).
    public static func batchedMatmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0],
                     "batchedMatmul: expected [B, M, K] and [B, K, N] with one B, got \(a.shape) and \(b.shape)")
        let batch = a.shape[0]
        let m = transposeA ? a.shape[2] : a.shape[1]
        let k = transposeA ? a.shape[1] : a.shape[2]
        let kb = transposeB ? b.shape[2] : b.shape[1]
        let n = transposeB ? b.shape[1] : b.shape[2]
        precondition(k == kb, "batchedMatmul: inner extents differ: \(a.shape)\(transposeA ? "ᵀ" : "") @ \(b.shape)\(transposeB ? "ᵀ" : "")")
        let size = batch * m * n
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            if k == 0 { buf.initialize(repeating: 0) } else if size > 0 {
                a.withUnsafeScalars { pa in
                    b.withUnsafeScalars { pb in
                        sgemmStridedBatched(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                                            a: pa.baseAddress!, lda: transposeA ? m : k, strideA: m * k,
                                            b: pb.baseAddress!, ldb: transposeB ? k : n, strideB: k * n,
                                            c: buf.baseAddress!, ldc: n, strideC: m * n, batch: batch)
                    }
                }
            }
            initialised = size
        }
        return record(shape: [batch, m, n], scalars: out, inputs: [a, b]) { g, x in
            let ga: Tensor? = x[0].node == nil ? nil
                : (transposeA ? batchedMatmul(x[1], g, transposeA: transposeB, transposeB: true)
                              : batchedMatmul(g, x[1], transposeB: !transposeB))
            let gb: Tensor? = x[1].node == nil ? nil
                : (transposeB ? batchedMatmul(g, x[0], transposeA: true, transposeB: transposeA)
                              : batchedMatmul(x[0], g, transposeA: !transposeA))
            return [ga, gb]
        }
    }

    /// Softmax along `axis`, `exp(x - max) / Σ exp(x - max)` with the maximum subtracted first
    /// (sums in Double), so any finite logits and `-inf` entries (masked positions, which get
    /// probability 0) are safe as long as each slice has one finite entry.
    ///
    /// - Shapes: any rank ≥ 1; output like `self`. `axis` may be negative (from the end).
    /// - Gradient: `y (g - Σ_axis g y)` from the saved output; with `createGraph` built from
    ///   differentiable ops (second order).
    public func softmax(axis: Int = -1) -> Tensor {
        let ax = axis < 0 ? axis + rank : axis
        precondition(ax >= 0 && ax < rank, "softmax: axis \(axis) out of range for shape \(shape)")
        if ax == rank - 1 && count > 0 { return lastAxisSoftmax(causal: false) }
        let k = shape[ax], inner = shape[(ax + 1)...].reduce(1, *), outer = count / Swift.max(k * inner, 1)
        let n = count
        let y = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            withUnsafeScalars { px in
                let (p, o) = (px.baseAddress, buf.baseAddress)
                Tensor.softmaxRows(outer: outer, k: k, inner: inner, work: n) { q in
                    let base = (q / inner) * k * inner + q % inner
                    var m = -Float.infinity
                    for j in 0..<k { m = Swift.max(m, p![base + j * inner]) }
                    var s = 0.0
                    for j in 0..<k { let e = Foundation.exp(p![base + j * inner] - m); o![base + j * inner] = e; s += Double(e) }
                    let inv = Float(1 / s)
                    for j in 0..<k { o![base + j * inner] *= inv }
                }
            }
            initialised = n
        }
        let yConst = Tensor(shape: shape, scalars: y)
        return Tensor.record(shape: shape, scalars: y, inputs: [self]) { g, x in
            if GradMode.enabled {
                let s = x[0].softmax(axis: ax)
                let gs = g * s
                return [gs - s * gs.sum(axes: [ax], keepDims: true)]
            }
            let dx = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
                g.withUnsafeScalars { pg in
                    yConst.withUnsafeScalars { py in
                        let (gp, yp, o) = (pg.baseAddress, py.baseAddress, buf.baseAddress)
                        Tensor.softmaxRows(outer: outer, k: k, inner: inner, work: n) { q in
                            let base = (q / inner) * k * inner + q % inner
                            var s = 0.0
                            for j in 0..<k { s += Double(gp![base + j * inner]) * Double(yp![base + j * inner]) }
                            let sf = Float(s)
                            for j in 0..<k { let i = base + j * inner; o![i] = yp![i] * (gp![i] - sf) }
                        }
                    }
                }
                initialised = n
            }
            return [Tensor(shape: g.shape, scalars: dx)]
        }
    }

    /// Softmax over the last axis with a causal mask: for `[..., T, T]` attention scores, row
    /// `i` of each matrix is the softmax of its entries `0...i` and 0 at `j > i` (the same as
    /// adding PyTorch's `-inf` upper-triangular `attn_mask` first, without building it).
    ///
    /// - Shapes: `[..., T, T]` → the same.
    /// - Gradient: `y (g - Σ_j g_j y_j)` per row (masked entries have `y = 0`); differentiable
    ///   again (second order).
    public func causalSoftmax() -> Tensor {
        precondition(rank >= 2 && shape[rank - 1] == shape[rank - 2], "causalSoftmax: expected [..., T, T], got \(shape)")
        return count == 0 ? self : lastAxisSoftmax(causal: true)
    }

    /// Row softmax of a non-empty tensor over its last axis through the C kernel, split across
    /// the pool by rows (each row's result does not depend on the split).
    func lastAxisSoftmax(causal: Bool) -> Tensor {
        let k = shape[rank - 1], rows = count / k, n = count
        let y = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            withUnsafeScalars { px in
                let (p, o) = (px.baseAddress!, buf.baseAddress!)
                Tensor.forRowRanges(rows: rows, rowLength: k, work: n, body: { r in
                    conjure_softmax_rows(p, o, r.lowerBound, r.upperBound, k, causal ? 1 : 0)
                })
            }
            initialised = n
        }
        let yConst = Tensor(shape: shape, scalars: y)
        return Tensor.record(shape: shape, scalars: y, inputs: [self]) { g, x in
            if GradMode.enabled {
                let s = causal ? x[0].causalSoftmax() : x[0].softmax(axis: -1)
                let gs = g * s
                return [gs - s * gs.sum(axes: [s.rank - 1], keepDims: true)]
            }
            let dx = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
                g.withUnsafeScalars { pg in
                    yConst.withUnsafeScalars { py in
                        let (gp, yp, o) = (pg.baseAddress!, py.baseAddress!, buf.baseAddress!)
                        Tensor.forRowRanges(rows: rows, rowLength: k, work: n, body: { r in
                            let off = r.lowerBound * k
                            conjure_softmax_rows_backward(gp + off, yp + off, o + off, r.count, k)
                        })
                    }
                }
                initialised = n
            }
            return [Tensor(shape: g.shape, scalars: dx)]
        }
    }

    /// Runs `body(r)` over ranges of `rows` rows of `rowLength` elements (row softmax, layer norm,
    /// GRU gates), split across the pool when the pass touches at least 2 · ``mapSplitCount``
    /// elements; each row's result must not depend on the split.
    @inline(__always)
    static func forRowRanges(rows: Int, rowLength: Int, work: Int, body: (Range<Int>) -> Void) {
        if rows == 0 || rowLength == 0 { return }
        if splitsAcrossPool(work) && rows >= 2 {
            Parallel.forRanges(rows, minimum: Swift.max(1, mapSplitCount / rowLength), alignment: 1, body)
        } else {
            body(0..<rows)
        }
    }

    /// Runs `body(q)` for each of the `outer · inner` softmax slices, split across the pool when
    /// the pass touches at least 2 · ``mapSplitCount`` elements (each slice is one task's).
    @inline(__always)
    static func softmaxRows(outer: Int, k: Int, inner: Int, work: Int, _ body: (Int) -> Void) {
        let slices = outer * inner
        if slices == 0 || k == 0 { return }
        if splitsAcrossPool(work) && slices >= 2 {
            Parallel.forRanges(slices, minimum: Swift.max(1, mapSplitCount / k)) { r in for q in r { body(q) } }
        } else {
            for q in 0..<slices { body(q) }
        }
    }
}

// MARK: - Nearest-neighbour upsampling

extension Tensor {
    /// Nearest-neighbour upsampling of images by an integer `scale` in both spatial axes
    /// (PyTorch's `nn.Upsample(scale_factor=scale, mode="nearest")`): `y[n, c, i, j] =
    /// x[n, c, i / scale, j / scale]`.
    ///
    /// - Shapes: `[N, C, H, W]` → `[N, C, scale·H, scale·W]`.
    /// - Gradient: the sum of each `scale × scale` block (``blockSum2d(_:)``), differentiable.
    public func upsampleNearest2d(scale: Int = 2) -> Tensor {
        precondition(rank == 4 && scale >= 1, "upsampleNearest2d: expected [N, C, H, W] and scale ≥ 1, got \(shape), scale \(scale)")
        let planes = shape[0] * shape[1], h = shape[2], w = shape[3]
        let ho = h * scale, wo = w * scale
        let size = planes * ho * wo
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            withUnsafeScalars { px in
                let (p, o) = (px.baseAddress, buf.baseAddress)
                for q in 0..<planes {
                    for i in 0..<h {
                        let src = p! + (q * h + i) * w
                        let row = o! + (q * ho + i * scale) * wo
                        for j in 0..<w { let v = src[j]; for s in 0..<scale { row[j * scale + s] = v } }
                        for r in 1..<Swift.max(scale, 1) { (row + r * wo).update(from: row, count: wo) }
                    }
                }
            }
            initialised = size
        }
        return Tensor.record(shape: [shape[0], shape[1], ho, wo], scalars: out, inputs: [self]) { g, _ in
            [g.blockSum2d(scale)]
        }
    }

    /// Sums of non-overlapping `scale × scale` blocks (the adjoint of
    /// ``upsampleNearest2d(scale:)``), accumulated in Double.
    ///
    /// - Shapes: `[N, C, scale·H, scale·W]` → `[N, C, H, W]`.
    /// - Gradient: ``upsampleNearest2d(scale:)`` of the upstream gradient.
    public func blockSum2d(_ scale: Int) -> Tensor {
        precondition(rank == 4 && scale >= 1 && shape[2] % scale == 0 && shape[3] % scale == 0,
                     "blockSum2d: expected [N, C, H, W] with H and W multiples of \(scale), got \(shape)")
        let planes = shape[0] * shape[1], ho = shape[2] / scale, wo = shape[3] / scale, w = shape[3]
        let size = planes * ho * wo
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            withUnsafeScalars { px in
                let (p, o) = (px.baseAddress, buf.baseAddress)
                for q in 0..<planes { for i in 0..<ho { for j in 0..<wo {
                    var s = 0.0
                    for r in 0..<scale {
                        let row = p! + (q * shape[2] + i * scale + r) * w + j * scale
                        for c in 0..<scale { s += Double(row[c]) }
                    }
                    o![(q * ho + i) * wo + j] = Float(s)
                } } }
            }
            initialised = size
        }
        return Tensor.record(shape: [shape[0], shape[1], ho, wo], scalars: out, inputs: [self]) { g, _ in
            [g.upsampleNearest2d(scale: scale)]
        }
    }
}

extension Tensor {
    /// Nearest-neighbour upsampling of signals by an integer `scale` along the length axis
    /// (PyTorch's `nn.Upsample(scale_factor=scale, mode="nearest")` on `[N, C, L]`):
    /// `y[n, c, i] = x[n, c, i / scale]`.
    ///
    /// - Shapes: `[N, C, L]` → `[N, C, scale·L]`.
    /// - Gradient: the sum of each run of `scale` samples (``blockSum1d(_:)``), differentiable.
    public func upsampleNearest1d(scale: Int = 2) -> Tensor {
        precondition(rank == 3 && scale >= 1, "upsampleNearest1d: expected [N, C, L] and scale ≥ 1, got \(shape), scale \(scale)")
        let rows = shape[0] * shape[1], l = shape[2], lo = l * scale
        let size = rows * lo
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            withUnsafeScalars { px in
                let (p, o) = (px.baseAddress!, buf.baseAddress!)
                for i in 0..<(rows * l) { let v = p[i]; for s in 0..<scale { o[i * scale + s] = v } }
            }
            initialised = size
        }
        return Tensor.record(shape: [shape[0], shape[1], lo], scalars: out, inputs: [self]) { g, _ in
            [g.blockSum1d(scale)]
        }
    }

    /// Sums of non-overlapping runs of `scale` samples along the length axis (the adjoint of
    /// ``upsampleNearest1d(scale:)``), accumulated in Double.
    ///
    /// - Shapes: `[N, C, scale·L]` → `[N, C, L]`.
    /// - Gradient: ``upsampleNearest1d(scale:)`` of the upstream gradient.
    public func blockSum1d(_ scale: Int) -> Tensor {
        precondition(rank == 3 && scale >= 1 && shape[2] % scale == 0,
                     "blockSum1d: expected [N, C, L] with L a multiple of \(scale), got \(shape)")
        let size = shape[0] * shape[1] * (shape[2] / scale)
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            withUnsafeScalars { px in
                let (p, o) = (px.baseAddress!, buf.baseAddress!)
                for i in 0..<size {
                    var s = 0.0
                    for r in 0..<scale { s += Double(p[i * scale + r]) }
                    o[i] = Float(s)
                }
            }
            initialised = size
        }
        return Tensor.record(shape: [shape[0], shape[1], shape[2] / scale], scalars: out, inputs: [self]) { g, _ in
            [g.upsampleNearest1d(scale: scale)]
        }
    }
}
