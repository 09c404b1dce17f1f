import CConjureKernels
// MARK: - Shape ops

extension Tensor {
    /// Reorders axes: output axis `i` is input axis `axes[i]` (NumPy's `transpose(axes)`).
    public func permuted(_ axes: [Int]) -> Tensor {
        precondition(axes.sorted() == Array(0..<rank), "permuted: \(axes) is not a permutation of the axes of \(shape)")
        let outShape = axes.map { shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * shape[i + 1] }
        let s = axes.map { inStrides[$0] }
        // Trailing axes that stay in place form contiguous blocks copied whole; an odometer over
        // the other output axes finds each block's source.
        var kept = 0
        while kept < rank && axes[rank - 1 - kept] == rank - 1 - kept { kept += 1 }
        let outer = rank - kept
        let block = shape[outer...].reduce(1, *)
        let n = count
        let out = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            withUnsafeScalars { p in
                guard n > 0, let src0 = p.baseAddress, let dst = buf.baseAddress else { return }
                if outer == 0 { dst.update(from: src0, count: n); return }
                // The last two axes swapped: a tiled transpose per leading index, split across the pool.
                if rank >= 2, Array(axes.prefix(rank - 2)) == Array(0..<(rank - 2)), axes[rank - 2] == rank - 1 {
                    let rows = shape[rank - 2], cols = shape[rank - 1], batch = n / (rows * cols)
                    Tensor.forRowRanges(rows: batch, rowLength: rows * cols, work: n) { r in
                        conjure_transpose_batched(src0, dst, r.lowerBound, r.upperBound, rows, cols)
                    }
                    return
                }
                var index = [Int](repeating: 0, count: outer)
                index.withUnsafeMutableBufferPointer { idx in
                    var src = 0
                    var k = 0
                    while k < n {
                        if block == 1 { dst[k] = src0[src] } else { (dst + k).update(from: src0 + src, count: block) }
                        k += block
                        var a = outer - 1
                        while a >= 0 {
                            idx[a] += 1; src += s[a]
                            if idx[a] < outShape[a] { break }
                            src -= s[a] * outShape[a]; idx[a] = 0; a -= 1
                        }
                    }
                }
            }
            initialised = n
        }
        var inverse = [Int](repeating: 0, count: rank)
        for (i, a) in axes.enumerated() { inverse[a] = i }
        return Tensor.record(shape: outShape, scalars: out, inputs: [self]) { g, _ in [g.permuted(inverse)] }
    }

    /// The transpose of a 2-D tensor.
    public func transposed() -> Tensor {
        precondition(rank == 2, "transposed: expected a 2-D tensor, got \(shape)")
        return permuted([1, 0])
    }

    /// Elements `range` along `axis` (PyTorch's `narrow`).
    public func slice(axis: Int = 0, _ range: Range<Int>) -> Tensor {
        let ax = axis < 0 ? axis + rank : axis
        precondition(ax >= 0 && ax < rank && range.lowerBound >= 0 && range.upperBound <= shape[ax],
                     "slice: range \(range) on axis \(axis) out of bounds for shape \(shape)")
        let outer = shape[..<ax].reduce(1, *)
        let inner = shape[(ax + 1)...].reduce(1, *)
        var outShape = shape
        outShape[ax] = range.count
        var out = [Float]()
        out.reserveCapacity(outer * range.count * inner)
        for o in 0..<outer {
            let base = (o * shape[ax] + range.lowerBound) * inner
            out.append(contentsOf: scalars[base..<(base + range.count * inner)])
        }
        let full = shape
        return Tensor.record(shape: outShape, scalars: out, inputs: [self]) { g, _ in
            let before = range.lowerBound, after = full[ax] - range.upperBound
            var parts: [Tensor] = []
            if before > 0 { var s = full; s[ax] = before; parts.append(.zeros(s)) }
            parts.append(g)
            if after > 0 { var s = full; s[ax] = after; parts.append(.zeros(s)) }
            return [parts.count == 1 ? g : Tensor.concat(parts, axis: ax)]
        }
    }

    /// Joins tensors along `axis`; all other extents must agree.
    public static func concat(_ parts: [Tensor], axis: Int = 0) -> Tensor {
        precondition(!parts.isEmpty, "concat: no tensors")
        let r = parts[0].rank
        let ax = axis < 0 ? axis + r : axis
        for p in parts {
            precondition(p.rank == r && (0..<r).allSatisfy { $0 == ax || p.shape[$0] == parts[0].shape[$0] },
                         "concat: shapes \(parts.map(\.shape)) differ off axis \(axis)")
        }
        let outer = parts[0].shape[..<ax].reduce(1, *)
        var outShape = parts[0].shape
        outShape[ax] = parts.reduce(0) { $0 + $1.shape[ax] }
        var out = [Float]()
        out.reserveCapacity(outShape.reduce(1, *))
        let chunk = parts.map { $0.count / Swift.max(outer, 1) }
        for o in 0..<outer {
            for (p, c) in zip(parts, chunk) { out.append(contentsOf: p.scalars[(o * c)..<((o + 1) * c)]) }
        }
        let sizes = parts.map { $0.shape[ax] }
        return record(shape: outShape, scalars: out, inputs: parts) { g, _ in
            var start = 0
            return sizes.map { n in defer { start += n }; return g.slice(axis: ax, start..<(start + n)) }
        }
    }

    /// Rows (entries along axis 0) at `indices`, in that order; the backward scatters back.
    public func gathered(rows indices: [Int]) -> Tensor {
        precondition(rank >= 1, "gathered(rows:): tensor of shape \(shape) has no axis 0")
        let inner = count / Swift.max(shape[0], 1)
        var out = [Float](repeating: 0, count: indices.count * inner)
        withUnsafeScalars { p in
            out.withUnsafeMutableBufferPointer { o in
                for (k, i) in indices.enumerated() {
                    precondition(i >= 0 && i < shape[0], "gathered(rows:): index \(i) out of range 0..<\(shape[0])")
                    (o.baseAddress! + k * inner).update(from: p.baseAddress! + i * inner, count: inner)
                }
            }
        }
        var outShape = shape
        outShape[0] = indices.count
        let full = shape
        return Tensor.record(shape: outShape, scalars: out, inputs: [self]) { g, _ in
            precondition(!GradMode.enabled, "gathered(rows:): second-order gradients are not supported")
            var acc = [Float](repeating: 0, count: full.reduce(1, *))
            for (k, i) in indices.enumerated() {
                for j in 0..<inner { acc[i * inner + j] += g.scalars[k * inner + j] }
            }
            return [Tensor(shape: full, scalars: acc)]
        }
    }
}
