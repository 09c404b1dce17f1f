import Foundation
import CConjureKernels

// MARK: - Broadcasting

extension Tensor {
    /// The NumPy broadcast of two shapes.
    ///
    /// - Precondition: the shapes are broadcast-compatible (each trailing pair equal or 1).
    public static func broadcastShape(_ a: [Int], _ b: [Int], op: String = "broadcast") -> [Int] {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            precondition(da == db || da == 1 || db == 1, "\(op): shapes \(a) and \(b) do not broadcast")
            out[i] = da == 1 ? db : da
        }
        return out
    }

    /// Row-major strides of `shape` as seen from a broadcast `outShape` (0 on broadcast axes).
    static func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
        let n = outShape.count
        var strides = [Int](repeating: 0, count: n)
        var s = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            let o = i + (n - shape.count)
            strides[o] = shape[i] == 1 ? 0 : s
            s *= shape[i]
        }
        return strides
    }

    /// Applies `Op` element-wise over the broadcast of `a` and `b` (`op` names it in a shape
    /// error). `Op` is a type, not a closure, so that every loop below is specialised with the
    /// operation inlined (and vectorised), also inside the closures handed to the pool.
    @inline(__always)
    static func zipBroadcast<Op: ScalarBinaryOperation>(_ a: Tensor, _ b: Tensor, op: String, _: Op.Type) -> ([Int], [Float]) {
        @inline(__always) func f(_ x: Float, _ y: Float) -> Float { Op.apply(x, y) }
        if a.shape == b.shape {
            let n = a.count
            let out = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
                if n > 0 {
                    let o = buf.baseAddress!
                    a.withUnsafeScalars { pa in
                        b.withUnsafeScalars { pb in
                            Parallel.forRanges(n) { r in for i in r { o[i] = f(pa[i], pb[i]) } }
                        }
                    }
                }
                initialised = n
            }
            return (a.shape, out)
        }
        let shape = broadcastShape(a.shape, b.shape, op: op)
        let n = shape.reduce(1, *)
        // One operand constant over trailing blocks of the other (a time embedding [N, C, 1, 1]
        // added to feature maps [N, C, H, W]): one value per block of `inner` elements.
        if n > 0, shape == a.shape, let inner = constantBlock(of: b.shape, over: a.shape) {
            return (shape, zipBlocks(a, b, n: n, inner: inner, bigFirst: true, Op.self))
        }
        if n > 0, shape == b.shape, let inner = constantBlock(of: a.shape, over: b.shape) {
            return (shape, zipBlocks(b, a, n: n, inner: inner, bigFirst: false, Op.self))
        }
        if b.count == 1 {
            let y = b.scalars[0]
            return (shape, a.mapScalars { f($0, y) })
        }
        if a.count == 1 {
            let x = a.scalars[0]
            return (shape, b.mapScalars { f(x, $0) })
        }
        // b repeats along leading axes of a (e.g. [N, D] with [D] or [1, D]).
        if shape == a.shape, a.count % b.count == 0, Array(a.shape.suffix(b.shape.count)) == b.shape
            || (b.shape.first == 1 && Array(a.shape.suffix(b.shape.count - 1)) == Array(b.shape.dropFirst())) {
            let m = b.count
            let out = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
                a.withUnsafeScalars { pa in
                    b.withUnsafeScalars { pb in
                        var base = 0
                        while base < n {
                            for j in 0..<m { buf[base + j] = f(pa[base + j], pb[j]) }
                            base += m
                        }
                    }
                }
                initialised = n
            }
            return (shape, out)
        }
        // General strided case.
        let sa = broadcastStrides(a.shape, to: shape)
        let sb = broadcastStrides(b.shape, to: shape)
        let rank = shape.count
        var index = [Int](repeating: 0, count: rank)
        var out = [Float](repeating: 0, count: n)
        var ia = 0, ib = 0
        a.withUnsafeScalars { pa in
            b.withUnsafeScalars { pb in
                for k in 0..<n {
                    out[k] = f(pa[ia], pb[ib])
                    var ax = rank - 1
                    while ax >= 0 {
                        index[ax] += 1
                        ia += sa[ax]; ib += sb[ax]
                        if index[ax] < shape[ax] { break }
                        ia -= sa[ax] * shape[ax]; ib -= sb[ax] * shape[ax]
                        index[ax] = 0
                        ax -= 1
                    }
                }
            }
        }
        return (shape, out)
    }

    /// The block length `inner` when `small` (padded with leading 1s to `big`'s rank) equals
    /// `big` on its first axes and is 1 on the rest, with at least one leading axis kept and a
    /// block of more than one element: `big[k...]` multiplied. Nil otherwise.
    static func constantBlock(of small: [Int], over big: [Int]) -> Int? {
        guard small.count <= big.count else { return nil }
        let padded = [Int](repeating: 1, count: big.count - small.count) + small
        var k = 0
        while k < big.count && padded[k] == big[k] { k += 1 }
        guard k >= 1, k < big.count, padded[k...].allSatisfy({ $0 == 1 }) else { return nil }
        let inner = big[k...].reduce(1, *)
        return inner > 1 ? inner : nil
    }

    /// `Op(big[i], small[i / inner])` (or `Op(small[i / inner], big[i])` when `bigFirst` is
    /// false) for every `i` of `big`'s `n` elements, split across the pool.
    @inline(__always)
    static func zipBlocks<Op: ScalarBinaryOperation>(_ big: Tensor, _ small: Tensor, n: Int, inner: Int, bigFirst: Bool,
                                                     _: Op.Type) -> [Float] {
        @inline(__always) func f(_ x: Float, _ y: Float) -> Float { Op.apply(x, y) }
        return [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            let o = buf.baseAddress!
            big.withUnsafeScalars { pa in
                small.withUnsafeScalars { pb in
                    Parallel.forRanges(n) { r in
                        var i = r.lowerBound
                        while i < r.upperBound {
                            let q = i / inner, end = Swift.min(r.upperBound, (q + 1) * inner), v = pb[q]
                            if bigFirst { while i < end { o[i] = f(pa[i], v); i += 1 } }
                            else { while i < end { o[i] = f(v, pa[i]); i += 1 } }
                        }
                    }
                }
            }
            initialised = n
        }
    }

    /// Sums this tensor down to `target`, undoing a broadcast (the backward of broadcasting).
    ///
    /// - Precondition: `target` broadcasts to `shape`.
    public func sumTo(_ target: [Int]) -> Tensor {
        if shape == target { return self }
        let n = shape.count
        let padded = [Int](repeating: 1, count: n - target.count) + target
        var axes: [Int] = []
        for i in 0..<n where padded[i] == 1 && shape[i] != 1 { axes.append(i) }
        precondition(zip(padded, shape).allSatisfy { $0 == $1 || $0 == 1 }, "sumTo: \(shape) does not reduce to \(target)")
        let s = axes.isEmpty ? self : sum(axes: axes, keepDims: true)
        return s.reshaped(target)
    }
}

// MARK: - Arithmetic

/// A binary operation on scalars given as a type, so that generic loops over tensors are
/// specialised with it inlined (a closure passed down to the pool's workers is not).
protocol ScalarBinaryOperation {
    /// The operation on one pair of elements.
    static func apply(_ a: Float, _ b: Float) -> Float
}

/// `a + b`.
enum AddOperation: ScalarBinaryOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b }
}

/// `a - b`.
enum SubtractOperation: ScalarBinaryOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b }
}

/// `a * b`.
enum MultiplyOperation: ScalarBinaryOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b }
}

/// `a / b`.
enum DivideOperation: ScalarBinaryOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b }
}

/// `b` (broadcasting `b` to `a`'s shape).
enum SecondOperandOperation: ScalarBinaryOperation {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { b }
}

extension Tensor {
    /// Element-wise sum with NumPy broadcasting; each gradient is summed back to its input's shape.
    /// Precondition: the shapes broadcast.
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        let (shape, out) = zipBroadcast(a, b, op: "add", AddOperation.self)
        let sa = a.shape, sb = b.shape
        return Tensor.record(shape: shape, scalars: out, inputs: [a, b]) { g, _ in [g.sumTo(sa), g.sumTo(sb)] }
    }

    /// Element-wise difference `a - b` with NumPy broadcasting. Precondition: the shapes broadcast.
    public static func - (a: Tensor, b: Tensor) -> Tensor {
        let (shape, out) = zipBroadcast(a, b, op: "subtract", SubtractOperation.self)
        let sa = a.shape, sb = b.shape
        return Tensor.record(shape: shape, scalars: out, inputs: [a, b]) { g, _ in [g.sumTo(sa), (-g).sumTo(sb)] }
    }

    /// Element-wise product with NumPy broadcasting. Precondition: the shapes broadcast.
    public static func * (a: Tensor, b: Tensor) -> Tensor {
        let (shape, out) = zipBroadcast(a, b, op: "multiply", MultiplyOperation.self)
        return Tensor.record(shape: shape, scalars: out, inputs: [a, b]) { g, x in
            [x[0].node == nil ? nil : (g * x[1]).sumTo(x[0].shape),
             x[1].node == nil ? nil : (g * x[0]).sumTo(x[1].shape)]
        }
    }

    /// Element-wise quotient `a / b` with NumPy broadcasting (IEEE semantics: `x / 0` is ±inf or
    /// NaN). Precondition: the shapes broadcast.
    public static func / (a: Tensor, b: Tensor) -> Tensor {
        let (shape, out) = zipBroadcast(a, b, op: "divide", DivideOperation.self)
        return Tensor.record(shape: shape, scalars: out, inputs: [a, b]) { g, x in
            [x[0].node == nil ? nil : (g / x[1]).sumTo(x[0].shape),
             x[1].node == nil ? nil : (-(g * x[0]) / (x[1] * x[1])).sumTo(x[1].shape)]
        }
    }

    /// Element-wise negation.
    public static prefix func - (a: Tensor) -> Tensor {
        record(shape: a.shape, scalars: a.mapScalars { -$0 }, inputs: [a]) { g, _ in [-g] }
    }

    /// `a + s` for every element.
    public static func + (a: Tensor, s: Float) -> Tensor {
        record(shape: a.shape, scalars: a.mapScalars { $0 + s }, inputs: [a]) { g, _ in [g] }
    }
    /// `a - s` for every element.
    public static func - (a: Tensor, s: Float) -> Tensor { a + (-s) }
    /// `s + a` for every element.
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    /// `s - a` for every element.
    public static func - (s: Float, a: Tensor) -> Tensor { (-a) + s }

    /// `a · s` for every element.
    public static func * (a: Tensor, s: Float) -> Tensor {
        record(shape: a.shape, scalars: a.mapScalars { $0 * s }, inputs: [a]) { g, _ in [g * s] }
    }
    /// `s · a` for every element.
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    /// `a / s` for every element, computed as `a · (1/s)`.
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
}

// MARK: - Unary functions

extension Tensor {
    /// `f` of every element, in pointer loops the compiler vectorises (`Array.map` does not),
    /// split across ``Parallel``'s pool from ``Parallel/elementwiseSplitCount`` elements.
    @inline(__always)
    func mapScalars(_ f: (Float) -> Float) -> [Float] {
        let n = count
        return [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            if n > 0 {
                let o = buf.baseAddress!
                withUnsafeScalars { p in
                    Parallel.forRanges(n) { r in for i in r { o[i] = f(p[i]) } }
                }
            }
            initialised = n
        }
    }

    /// A constant tensor of this shape from `f` applied to each element (no history). Large
    /// tensors are split across the pool, so `f` may run on several threads at once and must
    /// not have side effects.
    public func map(_ f: (Float) -> Float) -> Tensor { Tensor(shape: shape, scalars: mapScalars(f)) }

    /// Elements per thread from which the element-wise C kernels (ReLU, LeakyReLU, tanh and
    /// their gradients) split across the pool; any split gives the same values.
    static let mapSplitCount = 1 << 14

    /// Whether an element-wise pass over `n` elements is split across the pool (from 2 ·
    /// ``mapSplitCount`` elements, with more than one thread).
    @inline(__always)
    static func splitsAcrossPool(_ n: Int) -> Bool { n >= 2 * mapSplitCount && Parallel.threads > 1 }

    /// A C kernel `body(offset, count)` over `0..<n`, split across the pool from 2 ·
    /// ``mapSplitCount`` elements.
    @inline(__always)
    static func splitKernel(_ n: Int, _ body: (Int, Int) -> Void) {
        if !splitsAcrossPool(n) { if n > 0 { body(0, n) }; return }
        Parallel.forRanges(n, minimum: mapSplitCount) { r in body(r.lowerBound, r.count) }
    }

    /// `y[i] = f(x + i, y + i, count)` for an element-wise C kernel `f` (split across the pool).
    @inline(__always)
    func mapKernel(_ f: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> [Float] {
        let n = count
        return [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            withUnsafeScalars { x in
                Tensor.splitKernel(n) { o, c in f(x.baseAddress! + o, buf.baseAddress! + o, c) }
            }
            initialised = n
        }
    }

    /// `dx` from an element-wise C kernel `f(g, x, dx, count)` of the gradient `g` and the input
    /// `x` (split across the pool).
    @inline(__always)
    static func backwardKernel(_ g: Tensor, _ x: Tensor, _ f: (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void) -> Tensor {
        precondition(g.count == x.count, "backward: gradient \(g.shape) for input \(x.shape)")
        let n = g.count
        let dx = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            g.withUnsafeScalars { pg in
                x.withUnsafeScalars { px in
                    Tensor.splitKernel(n) { o, c in f(pg.baseAddress! + o, px.baseAddress! + o, buf.baseAddress! + o, c) }
                }
            }
            initialised = n
        }
        return Tensor(shape: g.shape, scalars: dx)
    }

    /// `max(x, 0)`. The gradient at 0 is 0, as in PyTorch.
    public func relu() -> Tensor {
        Tensor.record(shape: shape, scalars: mapKernel { conjure_relu($0, $1, $2) }, inputs: [self]) { g, x in
            if GradMode.enabled { return [g * x[0].map { $0 > 0 ? 1 : 0 }] }
            // One pass, the same values as g * mask (g * 0 keeps the sign of zero).
            return [Tensor.backwardKernel(g, x[0]) { conjure_relu_backward($0, $1, $2, $3) }]
        }
    }

    /// `x` for `x > 0`, `slope * x` otherwise (Maas et al. 2013).
    public func leakyRelu(_ slope: Float = 0.01) -> Tensor {
        Tensor.record(shape: shape, scalars: mapKernel { conjure_leaky_relu($0, $1, $2, slope) }, inputs: [self]) { g, x in
            if GradMode.enabled { return [g * x[0].map { $0 > 0 ? 1 : slope }] }
            return [Tensor.backwardKernel(g, x[0]) { conjure_leaky_relu_backward($0, $1, $2, $3, slope) }]
        }
    }

    /// Hyperbolic tangent; derivative `1 - tanh(x)^2`.
    public func tanh() -> Tensor {
        let y = mapKernel { conjure_tanh($0, $1, $2) }
        let yConst = Tensor(shape: shape, scalars: y)
        return Tensor.record(shape: shape, scalars: y, inputs: [self]) { g, x in
            if GradMode.enabled { let t = x[0].tanh(); return [g * (1 - t * t)] }
            // Exactly g * (1 - y * y), from the saved output.
            return [Tensor.backwardKernel(g, yConst) { conjure_tanh_backward($0, $1, $2, $3) }]
        }
    }

    /// Logistic sigmoid `1 / (1 + exp(-x))`, computed without overflow for large |x|.
    public func sigmoid() -> Tensor {
        let y = mapScalars { Tensor.stableSigmoid($0) }
        let yConst = Tensor(shape: shape, scalars: y)
        return Tensor.record(shape: shape, scalars: y, inputs: [self]) { g, x in
            let s = GradMode.enabled ? x[0].sigmoid() : yConst
            return [g * (s * (1 - s))]
        }
    }

    /// Scalar logistic sigmoid `1 / (1 + e^-x)`, computed as `e^x / (1 + e^x)` for negative `x` so
    /// that no exponential overflows.
    @inline(__always)
    public static func stableSigmoid(_ x: Float) -> Float {
        if x >= 0 { return 1 / (1 + Foundation.exp(-x)) }
        let e = Foundation.exp(x)
        return e / (1 + e)
    }

    /// `exp(x)`.
    public func exp() -> Tensor {
        let y = mapScalars { Foundation.exp($0) }
        let yConst = Tensor(shape: shape, scalars: y)
        return Tensor.record(shape: shape, scalars: y, inputs: [self]) { g, x in
            [g * (GradMode.enabled ? x[0].exp() : yConst)]
        }
    }

    /// Natural logarithm.
    public func log() -> Tensor {
        Tensor.record(shape: shape, scalars: mapScalars { Foundation.log($0) }, inputs: [self]) { g, x in [g / x[0]] }
    }

    /// `sqrt(x)`.
    public func sqrt() -> Tensor {
        let y = mapScalars { $0.squareRoot() }
        return Tensor.record(shape: shape, scalars: y, inputs: [self]) { g, x in [g / (2 * x[0].sqrt())] }
    }

    /// `x * x`.
    public func squared() -> Tensor { self * self }

    /// `softplus(x) = log(1 + exp(x))`, computed as `max(x, 0) + log1p(exp(-|x|))`.
    public func softplus() -> Tensor {
        let y = mapScalars { Swift.max($0, 0) + Foundation.log1p(Foundation.exp(-Swift.abs($0))) }
        return Tensor.record(shape: shape, scalars: y, inputs: [self]) { g, x in [g * x[0].sigmoid()] }
    }

    /// Element-wise mask `x > threshold` as 1/0 (no history).
    public func greater(_ threshold: Float) -> Tensor { map { $0 > threshold ? 1 : 0 } }

    /// Clamps to `[lo, hi]`; the gradient is passed where the input is inside the range.
    public func clamped(_ lo: Float, _ hi: Float) -> Tensor {
        Tensor.record(shape: shape, scalars: mapScalars { Swift.min(Swift.max($0, lo), hi) }, inputs: [self]) { g, x in
            [g * x[0].map { $0 >= lo && $0 <= hi ? 1 : 0 }]
        }
    }
}
