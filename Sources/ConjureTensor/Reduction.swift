// MARK: - Reductions

extension Tensor {
    /// Sum of all elements (a scalar tensor). Accumulates in Double: in order below
    /// ``Tensor/laneSumCount`` elements, else as ``laneSum(_:)``.
    public func sum() -> Tensor {
        let s = withUnsafeScalars { Tensor.orderedOrLaneSum($0) }
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
            withUnsafeScalars { p in
                out.withUnsafeMutableBufferPointer { o in
                    let (p0, o0) = (p.baseAddress, o.baseAddress)
                    // Column ranges: each column's sum keeps its row order, so any split gives the
                    // same values (a bias gradient over a large batch is split across the pool).
                    // Unwrapped pointers and a wrapping counter leave the inner loop free of
                    // checks, so the compiler vectorises it (bounds: cols is within 0..<inner).
                    func columns(_ cols: Range<Int>) {
                        guard let p0, let o0 else { return }
                        let (lo, hi) = (cols.lowerBound, cols.upperBound)
                        var row = p0
                        for _ in 0..<outer {
                            var j = lo
                            while j < hi { o0[j] += Double(row[j]); j &+= 1 }
                            row += inner
                        }
                    }
                    if inner == 1 {
                        if let o0 { o0[0] = Tensor.orderedOrLaneSum(p) }
                    } else if count > 0 {
                        Tensor.forFeatureColumns(n: outer, f: inner, columns)
                    }
                }
            }
        } else if ax.count > 0 && ax == Set((rank - ax.count)..<rank) {
            let inner = count / Swift.max(outCount, 1)
            withUnsafeScalars { p in
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
            withUnsafeScalars { p in
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

    /// Sums of at least this many elements into one value (a whole tensor, or a leading-axes
    /// reduction to one column) use ``laneSum(_:)``.
    public static let laneSumCount = 1 << 15

    /// The Double sum of `p`: element by element in order below ``laneSumCount`` elements;
    /// above it, as ``laneSum(_:)``.
    @inline(__always)
    static func orderedOrLaneSum(_ p: UnsafeBufferPointer<Float>) -> Double {
        if p.count >= laneSumCount { return laneSum(p) }
        var s = 0.0
        for v in p { s += Double(v) }
        return s
    }

    /// The Double sum of `p` in 8 interleaved lanes (lane `l` adds elements `l, l + 8, ...` in
    /// order), the lanes then added pairwise ((0+1)+(2+3))+((4+5)+(6+7)): one fixed order for
    /// any thread count, 8 additions in flight instead of one chain. Rounds differently from
    /// the one-chain sum only at the Double level (the Float result almost always equal).
    static func laneSum(_ p: UnsafeBufferPointer<Float>) -> Double {
        var l0 = 0.0, l1 = 0.0, l2 = 0.0, l3 = 0.0, l4 = 0.0, l5 = 0.0, l6 = 0.0, l7 = 0.0
        let n = p.count, whole = n / 8 * 8
        var i = 0
        while i < whole {
            l0 += Double(p[i]); l1 += Double(p[i + 1]); l2 += Double(p[i + 2]); l3 += Double(p[i + 3])
            l4 += Double(p[i + 4]); l5 += Double(p[i + 5]); l6 += Double(p[i + 6]); l7 += Double(p[i + 7])
            i += 8
        }
        if i < n { l0 += Double(p[i]) }
        if i + 1 < n { l1 += Double(p[i + 1]) }
        if i + 2 < n { l2 += Double(p[i + 2]) }
        if i + 3 < n { l3 += Double(p[i + 3]) }
        if i + 4 < n { l4 += Double(p[i + 4]) }
        if i + 5 < n { l5 += Double(p[i + 5]) }
        if i + 6 < n { l6 += Double(p[i + 6]) }
        return ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
    }

    /// Mean over `axes`.
    public func mean(axes: [Int], keepDims: Bool = false) -> Tensor {
        let n = axes.map { shape[$0 < 0 ? $0 + rank : $0] }.reduce(1, *)
        return sum(axes: axes, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Broadcasts to `target` (NumPy rules), copying elements; the backward sums back.
    public func expanded(to target: [Int]) -> Tensor {
        if shape == target { return self }
        let out: [Float]
        if count == 1 {
            _ = Tensor.broadcastShape(target, shape, op: "expand")
            out = [Float](repeating: scalars[0], count: target.reduce(1, *))
        } else {
            out = Tensor.zipBroadcast(Tensor.zeros(target), self.detached(), op: "expand", SecondOperandOperation.self).1
        }
        let src = shape
        return Tensor.record(shape: target, scalars: out, inputs: [self]) { g, _ in [g.sumTo(src)] }
    }

    /// Largest element (no history).
    public var maxValue: Float { scalars.max() ?? .nan }
    /// Smallest element (no history).
    public var minValue: Float { scalars.min() ?? .nan }
}
