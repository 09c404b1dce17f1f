import Foundation
import CBLAS

/// A dense, row-major, contiguous Float32 n-dimensional array with optional reverse-mode
/// autodiff history.
///
/// `Tensor` is a value type. Its elements live either in a copy-on-write Swift array (every
/// op's result) or in a slice of a ``FlatBuffer`` (the parameters of a trained group, which
/// are views into one flat buffer so that an optimiser updates them in one pass). Either way
/// copies are cheap until one of them is mutated, and a mutation never shows through another
/// copy: writing a flat buffer in place first gives the other holders of a view their own
/// elements (see ``makeViewUnique()``). A tensor that takes part in differentiation carries a
/// reference to a node of the autodiff graph (see ``Tensor/gradients(of:wrt:createGraph:)``).
///
/// Shapes follow the usual conventions: images `[N, C, H, W]` (NCHW), vectors `[N, D]`,
/// Linear weights `[out, in]` as in PyTorch.
public struct Tensor: @unchecked Sendable {
    /// The extent of each axis; `[]` for a scalar.
    public internal(set) var shape: [Int]
    /// The elements when the tensor owns them (`view == nil`); empty for a view.
    var storage: [Float]
    /// The flat-buffer slice holding the elements, nil when the tensor owns them.
    var view: TensorView?
    /// The autodiff node that produced this tensor, or `nil` when it is a constant.
    var node: GradNode?

    /// The elements in row-major (C) order; `count == shape.reduce(1, *)`. For a view into a
    /// ``FlatBuffer`` this is a copy; kernels read through ``withUnsafeScalars(_:)`` instead.
    public var scalars: [Float] {
        if let view { return view.elements() }
        return storage
    }

    /// Creates a constant tensor from elements in row-major order.
    ///
    /// - Precondition: `scalars.count == shape.reduce(1, *)` and no extent is negative.
    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor(shape:scalars:): negative extent in shape \(shape)")
        precondition(scalars.count == shape.reduce(1, *),
                     "Tensor(shape:scalars:): shape \(shape) holds \(shape.reduce(1, *)) elements, got \(scalars.count)")
        self.shape = shape
        self.storage = scalars
        self.view = nil
        self.node = nil
    }

    init(shape: [Int], scalars: [Float], node: GradNode?) {
        self.shape = shape
        self.storage = scalars
        self.view = nil
        self.node = node
    }

    /// The elements of `other` (owned or viewed, not copied) under `shape` with history `node`.
    init(shape: [Int], elementsOf other: Tensor, node: GradNode?) {
        self.shape = shape
        self.storage = other.storage
        self.view = other.view
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
    public var count: Int { view?.count ?? storage.count }
    /// Number of axes.
    public var rank: Int { shape.count }
    /// The single element of a tensor with one element.
    public var item: Float {
        precondition(count == 1, "Tensor.item: tensor of shape \(shape) has \(count) elements, expected 1")
        return withUnsafeScalars { $0[0] }
    }

    /// Whether gradients flow into this tensor (it is a leaf marked with
    /// ``requiringGrad()`` or the result of an op on such a tensor).
    public var requiresGrad: Bool { node != nil }

    /// This tensor's values with no autodiff history (PyTorch's `detach()`); shares the elements.
    public func detached() -> Tensor { Tensor(shape: shape, elementsOf: self, node: nil) }

    /// A leaf copy of this tensor whose gradient can be asked for; shares the elements.
    public func requiringGrad() -> Tensor {
        Tensor(shape: shape, elementsOf: self, node: GradNode(leafShape: shape))
    }

    /// The same elements with a new shape (one extent may be `-1`, inferred); shares the elements.
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
        if GradMode.enabled && node != nil {
            return Tensor(shape: s, elementsOf: self, node: GradNode(shape: s, inputs: [self]) { g, _ in [g.reshaped(old)] })
        }
        return Tensor(shape: s, elementsOf: self, node: nil)
    }

    /// Calls `body` with a read-only pointer to the elements in row-major order, valid inside
    /// `body` only. Kernels read through this rather than ``scalars``, which copies a view.
    @inline(__always)
    public func withUnsafeScalars<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if let view { return try view.withElements(body) }
        return try storage.withUnsafeBufferPointer(body)
    }

    /// Mutable access to the elements of a constant tensor as an array (used by layers that own
    /// their buffers). The autodiff history, if any, is dropped. A view into a ``FlatBuffer``
    /// that no other tensor shares is written back to its slice (so `body` must keep the
    /// count); a shared one becomes a tensor owning a copy (copy-on-write).
    public mutating func withMutableScalars<R>(_ body: (inout [Float]) throws -> R) rethrows -> R {
        node = nil
        if view != nil {
            guard isKnownUniquelyReferenced(&view), let v = view, v.detachedCopy == nil else {
                storage = view!.elements()
                view = nil
                return try body(&storage)
            }
            var elements = v.elements()
            v.willWrite()
            defer {
                precondition(elements.count == v.count, "withMutableScalars: a view of \(v.count) elements cannot change its count to \(elements.count)")
                elements.withUnsafeBufferPointer { v.pointer.update(from: $0.baseAddress!, count: v.count) }
            }
            return try body(&elements)
        }
        return try body(&storage)
    }

    /// Mutable access to the elements in place, without a copy when this tensor is the only
    /// holder of its elements: a view into a ``FlatBuffer`` is written in its slice (after
    /// ``makeViewUnique()``, so other holders keep their values). The autodiff history is dropped.
    public mutating func withUnsafeMutableScalars<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        node = nil
        if view != nil {
            makeViewUnique()
            if let v = view { return try body(UnsafeMutableBufferPointer(start: v.pointer, count: v.count)) }
        }
        return try storage.withUnsafeMutableBufferPointer { try body($0) }
    }

    /// Where this tensor's elements live when it is a view into a ``FlatBuffer`` (the buffer and
    /// the element offset of its first element); nil when it owns its elements.
    public var flatLocation: (buffer: FlatBuffer, offset: Int)? {
        guard let view, view.detachedCopy == nil else { return nil }
        return (view.buffer, view.offset)
    }

    /// Prepares an in-place write of this view's slice: when other tensors share the view, they
    /// are given their own copy of its current elements first (copy-on-write turned around, so
    /// that the flat buffer stays the parameter's storage and no other copy sees the write).
    /// Nothing happens for a tensor that owns its elements or is the view's only holder.
    ///
    /// - Returns: true when a copy was made for other holders.
    @discardableResult
    public mutating func makeViewUnique() -> Bool {
        guard view != nil else { return false }
        if isKnownUniquelyReferenced(&view) {
            view!.willWrite()  // an in-place write follows: the cached copy goes stale
            return false
        }
        let old = view!
        if old.detachedCopy != nil {  // this tensor was itself detached from the buffer earlier
            storage = old.elements()
            view = nil
            return false
        }
        old.detachedCopy = old.elements()
        view = TensorView(buffer: old.buffer, offset: old.offset, count: old.count)
        TensorView.copiesForOtherHolders.increment()
        return true
    }

    /// A pointer to the elements of `tensors` taken together, when they are views lying back to
    /// back, in order, in one ``FlatBuffer`` (a parameter group's values or gradients); nil
    /// otherwise. Valid while the tensors are alive.
    public static func contiguousElements(_ tensors: [Tensor]) -> UnsafeMutablePointer<Float>? {
        guard let first = tensors.first?.flatLocation else { return nil }
        var next = first.offset
        for t in tensors {
            guard let l = t.flatLocation, l.buffer === first.buffer, l.offset == next else { return nil }
            next += t.count
        }
        return first.buffer.base + first.offset
    }
}

/// One contiguous Float32 allocation that tensors view slices of: a parameter group's weights
/// and its gradients, so that an optimiser, gradient clipping or an all-reduce passes over the
/// whole group once. 64-byte aligned, zero-filled, freed with the last view.
///
/// While views of it are alive, write the buffer only through them
/// (``Tensor/withUnsafeMutableScalars(_:)``), through ``rewrite(shapes:offsets:_:)`` or through
/// `FlatParameters.updateValues`, which keep the views' value semantics; a raw write through
/// ``base`` would show through every copy of a view.
public final class FlatBuffer: @unchecked Sendable {
    /// Number of Float32 elements.
    public let count: Int
    /// The first element; valid while this object is alive.
    public let base: UnsafeMutablePointer<Float>

    /// A zero-filled buffer of `count` elements.
    ///
    /// - Precondition: `count >= 0`.
    public init(count: Int) {
        precondition(count >= 0, "FlatBuffer: negative count \(count)")
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Float>.stride, alignment: 64)
        base = raw.bindMemory(to: Float.self, capacity: max(1, count))
        base.initialize(repeating: 0, count: max(1, count))
    }

    deinit { UnsafeMutableRawPointer(base).deallocate() }

    /// The views the last ``rewrite(shapes:offsets:_:)`` returned, held weakly.
    private var rewritten: [WeakView] = []

    /// Rewrites the buffer in place with `write` and returns views of the slices at `offsets`
    /// with `shapes`, for a buffer filled anew each time (a group's gradients). Views returned by
    /// the previous call that are still held somewhere get their own copy first, so a rewrite
    /// never changes a tensor already handed out.
    ///
    /// - Precondition: every slice lies inside the buffer; one offset per shape.
    public func rewrite(shapes: [[Int]], offsets: [Int], _ write: (UnsafeMutablePointer<Float>) -> Void) -> [Tensor] {
        precondition(shapes.count == offsets.count, "FlatBuffer.rewrite: \(shapes.count) shapes for \(offsets.count) offsets")
        for w in rewritten {
            if let v = w.view, v.detachedCopy == nil { v.detachedCopy = v.elements(); TensorView.copiesForOtherHolders.increment() }
        }
        write(base)
        let views = zip(shapes, offsets).map { view(offset: $1, shape: $0) }
        rewritten = views.map { WeakView(view: $0.view) }
        return views
    }

    /// A constant tensor of `shape` whose elements are this buffer's from `offset` on (no copy).
    ///
    /// - Precondition: the slice lies inside the buffer.
    public func view(offset: Int, shape: [Int]) -> Tensor {
        let n = shape.reduce(1, *)
        precondition(offset >= 0 && n >= 0 && offset + n <= count, "FlatBuffer.view: elements \(offset)..<\(offset + n) outside a buffer of \(count)")
        var t = Tensor(shape: shape, scalars: [], node: nil)
        t.view = TensorView(buffer: self, offset: offset, count: n)
        return t
    }
}

struct WeakView { weak var view: TensorView? }

/// A count, safe to bump from any thread.
final class AtomicCount: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func increment() { lock.lock(); value += 1; lock.unlock() }
    var current: Int { lock.lock(); defer { lock.unlock() }; return value }
}

/// A tensor's slice of a ``FlatBuffer``. Tensors share one of these while they are copies of
/// each other; an in-place write of the slice by one of them first gives the others their own
/// copy (``detachedCopy``), which they read from then on.
final class TensorView {
    let buffer: FlatBuffer
    let offset: Int
    let count: Int
    /// The elements as they were when the slice was last written in place for another holder.
    var detachedCopy: [Float]?

    init(buffer: FlatBuffer, offset: Int, count: Int) {
        self.buffer = buffer
        self.offset = offset
        self.count = count
    }

    var pointer: UnsafeMutablePointer<Float> { buffer.base + offset }

    @inline(__always)
    func withElements<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        if let d = detachedCopy { return try d.withUnsafeBufferPointer(body) }
        return try body(UnsafeBufferPointer(start: pointer, count: count))
    }

    /// A copy of the elements made by the first ``elements()`` since the last in-place write,
    /// so that repeated `scalars` reads (`t.scalars[i]` in a loop) copy once.
    private var cached: [Float]?
    private let lock = NSLock()
    /// How many times an in-place write had to copy a view for its other holders (tests check
    /// that a training step makes none).
    static let copiesForOtherHolders = AtomicCount()

    /// The elements as an array (a copy, made once per in-place write).
    func elements() -> [Float] {
        if let d = detachedCopy { return d }
        lock.lock()
        defer { lock.unlock() }
        if let c = cached { return c }
        let c = Array(UnsafeBufferPointer(start: pointer, count: count))
        cached = c
        return c
    }

    /// Forgets the cached copy; called before the slice is written in place.
    func willWrite() {
        lock.lock()
        cached = nil
        lock.unlock()
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
