import CBLAS

/// A dense, row-major, contiguous Float32 n-dimensional array with optional reverse-mode
/// autodiff history.
///
/// `Tensor` is a value type: its element buffer is a copy-on-write Swift array, so copies are
/// cheap until one of them is mutated. A tensor that takes part in differentiation carries a
/// reference to a node of the autodiff graph (see ``Tensor/gradients(of:wrt:createGraph:)``).
///
/// Shapes follow the usual conventions: images `[N, C, H, W]` (NCHW), vectors `[N, D]`,
/// Linear weights `[out, in]` as in PyTorch.
public struct Tensor: @unchecked Sendable {
    /// The extent of each axis; `[]` for a scalar.
    public internal(set) var shape: [Int]
    /// The elements in row-major (C) order; `count == shape.reduce(1, *)`.
    public internal(set) var scalars: [Float]
    /// The autodiff node that produced this tensor, or `nil` when it is a constant.
    var node: GradNode?

    /// Creates a constant tensor from elements in row-major order.
    ///
    /// - Precondition: `scalars.count == shape.reduce(1, *)` and no extent is negative.
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor(shape:scalars:): negative extent in shape \(shape)")
        precondition(scalars.count == shape.reduce(1, *),
                     "Tensor(shape:scalars:): shape \(shape) holds \(shape.reduce(1, *)) elements, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
        self.node = nil
    }

    init(shape: [Int], scalars: [Float], node: GradNode?) {
        self.shape = shape
        self.scalars = scalars
        self.node = node
    }

    /// A tensor of the given shape filled with `value`.
    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    /// A scalar (rank-0) tensor.
    public init(_ value: Float) { self.init(shape: [], scalars: [value]) }

    /// All zeros of the given shape.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }
    /// All ones of the given shape.
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }

    /// Number of elements.
    public var count: Int { scalars.count }
    /// Number of axes.
    public var rank: Int { shape.count }
    /// The single element of a tensor with one element.
    public var item: Float {
        precondition(scalars.count == 1, "Tensor.item: tensor of shape \(shape) has \(scalars.count) elements, expected 1")
        return scalars[0]
    }

    /// Whether gradients flow into this tensor (it is a leaf marked with
    /// ``requiringGrad()`` or the result of an op on such a tensor).
    public var requiresGrad: Bool { node != nil }

    /// This tensor's values with no autodiff history (PyTorch's `detach()`).
    public func detached() -> Tensor { Tensor(shape: shape, scalars: scalars, node: nil) }

    /// A leaf copy of this tensor whose gradient can be asked for.
    public func requiringGrad() -> Tensor {
        Tensor(shape: shape, scalars: scalars, node: GradNode(leafShape: shape))
    }

    /// The same elements with a new shape (one extent may be `-1`, inferred).
    ///
    /// - Precondition: the element counts agree.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshaped: cannot infer -1 in \(newShape) for shape \(shape)")
            s[i] = count / known
        }
        precondition(s.reduce(1, *) == count, "reshaped: shape \(shape) (\(count) elements) cannot become \(newShape)")
        let old = shape
        return Tensor.record(shape: s, scalars: scalars, inputs: [self]) { g, _ in [g.reshaped(old)] }
    }

    /// Calls `body` with a read-only pointer to the elements in row-major order, valid inside
    /// `body` only. Kernels read through this rather than ``scalars``, which may copy.
    @inline(__always)
    public func withUnsafeScalars<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer(body)
    }

    /// Mutable access to the elements of a constant tensor (used by optimisers and layers that
    /// own their buffers). The autodiff history, if any, is dropped.
    public mutating func withMutableScalars<R>(_ body: (inout [Float]) throws -> R) rethrows -> R {
        node = nil
        return try body(&scalars)
    }
}

extension Tensor: CustomStringConvertible {
    /// `Tensor(shape: [...], [first 8 elements, ...])`, for debugging.
    public var description: String {
        let shown = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(shown)\(count > 8 ? ", ..." : "")])"
    }
}

/// Number of threads OpenBLAS may use for one GEMM (the process-wide setting).
public enum BLAS {
    /// Sets OpenBLAS's thread count (`openblas_set_num_threads`).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(max(1, n))) }
    /// OpenBLAS's current thread count.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
