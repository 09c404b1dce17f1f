// MARK: - Reductions

extension Tensor {
    /// Sum of all elements (a scalar tensor). Accumulates in Double.
    public func sum() -> Tensor {
        var s = 0.0
        scalars.withUnsafeBufferPointer { p in for v in p { s += Double(v) } }
        let shp = shape
        return Tensor.record(shape: [], scalars: [Float(s)], inputs: [self]) { g, _ in [g.expanded(to: shp)] }
    }

    /// Mean of all elements (a scalar tensor).
    public func mean() -> Tensor { sum() * (1 / Float(Swift.max(count, 1))) }

    /// Sums over `axes`, keeping them as extent 1 when `keepDims` is true.
    ///
    /// - Precondition: each axis is in `0..<rank` (negative counts from the end).
    public func sum(axes: [Int], keepDims: Bool = false) -> Tensor {
        let ax = Set(axes.map { $0 < 0 ? $0 + rank : $0 })
        precondition(ax.allSatisfy { $0 >= 0 && $0 < rank }, "sum(axes:): axes \(axes) out of range for shape \(shape)")
        var kept = shape
        for a in ax { kept[a] = 1 }
        let outCount = kept.reduce(1, *)
        var out = [Double](repeating: 0, count: outCount)
        // Fast path: reduce the leading axis of a 2-D view [outer, inner].
        if ax == [0] || (ax.count > 0 && ax == Set(0..<ax.count)) {
            let inner = outCount
            let outer = count / Swift.max(inner, 1)
            scalars.withUnsafeBufferPointer { p in
                out.withUnsafeMutableBufferPointer { o in
                    let (p0, o0) = (p.baseAddress, o.baseAddress)
                    // Column ranges: each column's sum keeps its row order, so any split gives the
                    // same values (a bias gradient over a large batch is split across the pool).
                    func columns(_ cols: Range<Int>) {
                        for i in 0..<outer {
                            let row = p0! + i * inner
                            for j in cols { o0![j] += Double(row[j]) }
                        }
                    }
                    if Tensor.splitsAcrossPool(count) && inner >= 32 {
                        Parallel.forRanges(inner, minimum: 16, columns)
                    } else if count > 0 {
                        columns(0..<inner)
                    }
                }
            }
        } else if ax.count > 0 && ax == Set((rank - ax.count)..<rank) {
            let inner = count / Swift.max(outCount, 1)
            scalars.withUnsafeBufferPointer { p in
                for i in 0..<outCount {
                    var s = 0.0
                    let base = i * inner
                    for j in 0..<inner { s += Double(p[base + j]) }
                    out[i] = s
                }
            }
        } else {
            let ostr = Tensor.broadcastStrides(kept, to: shape)
            var index = [Int](repeating: 0, count: rank)
            var o = 0
            scalars.withUnsafeBufferPointer { p in
                for k in 0..<count {
                    out[o] += Double(p[k])
                    var a = rank - 1
                    while a >= 0 {
                        index[a] += 1; o += ostr[a]
                        if index[a] < shape[a] { break }
                        o -= ostr[a] * shape[a]; index[a] = 0; a -= 1
                    }
                }
            }
        }
        let outShape = keepDims ? kept : shape.enumerated().filter { !ax.contains($0.offset) }.map(\.element)
        let full = shape
        return Tensor.record(shape: outShape, scalars: out.map { Float($0) }, inputs: [self]) { g, _ in
            [g.reshaped(kept).expanded(to: full)]
        }
    }

    /// Mean over `axes`.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { shape[$0 < 0 ? $0 + rank : $0] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Broadcasts to `target` (NumPy rules), copying elements; the backward sums back.
    public func expanded(to target: [Int]) -> Tensor {
        if shape == target { return self }
        let (_, out) = Tensor.zipBroadcast(Tensor.zeros(target), self.detached(), op: "expand") { _, b in b }
        let src = shape
        return Tensor.record(shape: target, scalars: out, inputs: [self]) { g, _ in [g.sumTo(src)] }
    }

    /// Largest element (no history).
    public var maxValue: Float { scalars.max() ?? .nan }
    /// Smallest element (no history).
    public var minValue: Float { scalars.min() ?? .nan }
}
