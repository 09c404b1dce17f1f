/// A trainable tensor owned by a layer (PyTorch's `nn.Parameter`).
///
/// `value` is a leaf of the autodiff graph, so `Tensor.gradients(of: loss, wrt: [p.value])`
/// gives its gradient. Optimisers replace the value in place with ``update(_:)``.
public final class Parameter {
    /// The current value, a leaf that records gradients. Once the parameter belongs to a
    /// ``FlatParameters`` group the value is a view into the group's flat buffer.
    public private(set) var value: Tensor

    /// A parameter holding a detached copy of `value` that records gradients.
    public init(_ value: Tensor) { self.value = value.detached().requiringGrad() }

    /// The shape of the value.
    public var shape: [Int] { value.shape }

    /// Replaces the value (as a new leaf of the graph). A parameter in a flat group keeps its
    /// place in the group's buffer: the new elements are written there.
    public func assign(_ newValue: Tensor) {
        precondition(newValue.shape == value.shape, "Parameter.assign: shape \(newValue.shape) for parameter of shape \(value.shape)")
        if value.flatLocation != nil {
            value.withUnsafeMutableScalars { dst in
                newValue.withUnsafeScalars { src in if let s = src.baseAddress { dst.baseAddress!.update(from: s, count: src.count) } }
            }
            value = value.requiringGrad()
        } else {
            value = newValue.detached().requiringGrad()
        }
    }

    /// Mutates the elements through an array (copied in and out for a parameter in a flat
    /// group); the value becomes a new leaf. Optimisers use ``updateInPlace(_:)``.
    public func update(_ body: (inout [Float]) -> Void) {
        var v = value
        value = Parameter.placeholder  // drop this reference so the buffer is mutated in place when unshared
        v.withMutableScalars(body)
        value = v.requiringGrad()
    }

    /// Mutates the elements in place through a pointer (in the group's flat buffer for a
    /// parameter in a flat group; other copies of the old value keep theirs); the value becomes
    /// a new leaf.
    public func updateInPlace(_ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        var v = value
        value = Parameter.placeholder
        v.withUnsafeMutableScalars(body)
        value = v.requiringGrad()
    }

    /// Places the value in `buffer` at element `offset` (copying the current elements there);
    /// the value becomes a view of that slice. Used by ``FlatParameters``.
    func bind(to buffer: FlatBuffer, offset: Int) {
        value.withUnsafeScalars { src in if let s = src.baseAddress { (buffer.base + offset).update(from: s, count: src.count) } }
        value = buffer.view(offset: offset, shape: value.shape).requiringGrad()
    }

    /// Before the group's buffer is written in place: gives other holders of the current value
    /// their own copy (see ``Tensor/makeViewUnique()``).
    func prepareInPlaceWrite() {
        value.makeViewUnique()
    }

    /// After an in-place write of the group's buffer: the value becomes a new leaf.
    func refreshLeaf() { value = value.requiringGrad() }

    private static let placeholder = Tensor(shape: [0], scalars: [])
}

/// A parameter group laid out in one flat Float32 buffer: each parameter's value is a view of
/// its slice of ``values``, and the group's gradients can be gathered into ``gradients`` with
/// the same layout, so that gradient clipping, an optimiser's update and (later) an all-reduce
/// is one pass over one buffer (the layout of PyTorch DDP's gradient buckets and of fused
/// optimisers' flat parameters). `Optimization` gathers only when it clips; otherwise the
/// optimiser reads each gradient in place and the gradient buffer is never allocated.
///
/// Parameters keep their order; parameter `i` occupies `offsets[i] ..< offsets[i] + count_i`.
/// Values are copied into the buffer on construction; a parameter later assigned (a checkpoint
/// loaded) writes its new elements into its slice.
public final class FlatParameters {
    /// The parameters in buffer order.
    public let parameters: [Parameter]
    /// The element offset of each parameter in both buffers.
    public let offsets: [Int]
    /// The parameters' values, back to back.
    public let values: FlatBuffer
    /// The group's gradients, back to back (filled by ``gather(_:)``); allocated by the first
    /// gather, so a group whose gradients are never gathered costs no second buffer.
    public var gradients: FlatBuffer {
        if let g = gradientStorage { return g }
        let g = FlatBuffer(count: count)
        gradientStorage = g
        return g
    }
    private var gradientStorage: FlatBuffer?
    /// Whether ``gradients`` has been allocated (by a gather or a read).
    public var gradientBufferAllocated: Bool { gradientStorage != nil }

    /// Lays `parameters` out in one buffer, in order; their values become views of it.
    ///
    /// - Precondition: no parameter is listed twice.
    public init(_ parameters: [Parameter]) {
        precondition(Set(parameters.map(ObjectIdentifier.init)).count == parameters.count, "FlatParameters: a parameter is listed twice")
        self.parameters = parameters
        var offsets: [Int] = [], total = 0
        for p in parameters { offsets.append(total); total += p.value.count }
        self.offsets = offsets
        values = FlatBuffer(count: total)
        for (p, o) in zip(parameters, offsets) { p.bind(to: values, offset: o) }
    }

    /// Total number of elements.
    public var count: Int { values.count }

    /// Copies `grads` (one per parameter, of its shape) into ``gradients`` and returns them as
    /// views of it, in order. One pass, split across the pool. Views returned by an earlier
    /// call that are still held keep their values (``FlatBuffer/rewrite(shapes:offsets:_:)``).
    ///
    /// - Precondition: one gradient per parameter, of its element count.
    public func gather(_ grads: [Tensor]) -> [Tensor] {
        gather(grads) { copy in
            Parallel.forSegments(grads.map(\.count)) { s, r in _ = copy(s, r) }
        }
    }

    /// Like ``gather(_:)`` with the copy done piece by piece by `body`, so that a pass over the
    /// gradients (an optimiser's update) can copy each piece just before it uses it: `copy(s, r)`
    /// copies elements `r` of gradient `s` into the buffer and returns where they now are.
    /// `body` must copy every element once.
    ///
    /// - Precondition: one gradient per parameter, of its element count.
    public func gather(_ grads: [Tensor], during body: (_ copy: (Int, Range<Int>) -> UnsafePointer<Float>) -> Void) -> [Tensor] {
        precondition(grads.count == parameters.count, "FlatParameters.gather: \(grads.count) gradients for \(parameters.count) parameters")
        for (i, g) in grads.enumerated() {
            precondition(g.count == parameters[i].value.count, "FlatParameters.gather: gradient \(g.shape) for parameter \(parameters[i].shape)")
        }
        var pointers: [UnsafePointer<Float>?] = []
        pointers.reserveCapacity(grads.count)
        var views: [Tensor] = []
        let offsets = self.offsets
        func hold(_ i: Int) {
            if i == grads.count {
                views = gradients.rewrite(shapes: grads.map(\.shape), offsets: offsets) { dst in
                    body { s, r in
                        let d = dst + offsets[s] + r.lowerBound
                        d.update(from: pointers[s]! + r.lowerBound, count: r.count)
                        return UnsafePointer(d)
                    }
                }
                return
            }
            grads[i].withUnsafeScalars { p in pointers.append(p.baseAddress); hold(i + 1) }
        }
        hold(0)
        return views
    }

    /// Calls `body` with the group's values as one mutable buffer, after giving other holders
    /// of the parameters' current values their own copies; each parameter's value is a new
    /// leaf afterwards.
    public func updateValues(_ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        for p in parameters { p.prepareInPlaceWrite() }
        body(UnsafeMutableBufferPointer(start: values.base, count: values.count))
        for p in parameters { p.refreshLeaf() }
    }

    /// Whether `parameters` are, in order, exactly the parameters of one flat group lying back
    /// to back (so one pass over the buffer updates them all), and the group's buffer.
    public static func contiguous(_ parameters: [Parameter]) -> FlatBuffer? {
        guard let first = parameters.first?.value.flatLocation, first.offset == 0 else { return nil }
        var next = 0
        for p in parameters {
            guard let l = p.value.flatLocation, l.buffer === first.buffer, l.offset == next else { return nil }
            next += p.value.count
        }
        return next == first.buffer.count ? first.buffer : nil
    }

    /// Like ``updateValues(_:)`` for parameters that ``contiguous(_:)`` accepts, without holding
    /// their group: prepares each parameter, calls `body` with the whole buffer, refreshes.
    public static func updateContiguous(_ parameters: [Parameter], buffer: FlatBuffer, _ body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        for p in parameters { p.prepareInPlaceWrite() }
        body(UnsafeMutableBufferPointer(start: buffer.base, count: buffer.count))
        for p in parameters { p.refreshLeaf() }
    }
}

/// A non-trainable tensor kept with a layer's state (BatchNorm running statistics).
public final class Buffer {
    /// The current value (no gradient history).
    public var value: Tensor
    /// A buffer holding `value`.
    public init(_ value: Tensor) { self.value = value }
}

/// A module: named trainable parameters, buffers and child modules, with a train/eval flag
/// (PyTorch's `nn.Module`).
///
/// Parameters, buffers, `state_dict` names and train/eval mode recurse through ``children``
/// to any depth: a module's full names are its own parameters' names, then its buffers', then
/// each child's names prefixed with the child's name and a dot (`down.0.conv.weight`), the
/// order of PyTorch's `state_dict`. Blocks with several inputs (a U-Net block taking `x` and a
/// time embedding, attention taking a mask) are modules with ordinary methods; blocks of one
/// input are ``Layer``s as well.
public protocol Module: AnyObject {
    /// This module's own trainable parameters in `state_dict` order (not its children's).
    var namedParameters: [(String, Parameter)] { get }
    /// This module's own non-trainable state in `state_dict` order (running statistics).
    var namedBuffers: [(String, Buffer)] { get }
    /// The child modules in registration order, each with its name.
    var children: [(String, any Module)] { get }
    /// Training (`true`, batch statistics, dropout on) or evaluation mode. Containers pass a
    /// new value on to their children (see ``setTraining(_:)``).
    var isTraining: Bool { get set }
}

/// A module applied to one input: a differentiable function with named state.
///
/// Names follow PyTorch's `state_dict` (`weight`, `bias`, `running_mean`, ...), and
/// containers prefix their children's names with the child's index or name.
public protocol Layer: Module {
    /// Applies the layer. Shapes are given by each layer's documentation.
    func callAsFunction(_ x: Tensor) -> Tensor
}

/// A layer whose own parameters are a `weight` and an optional `bias` (Linear, the convolutions):
/// conforming gives it ``namedParameters`` in PyTorch's `state_dict` order.
public protocol WeightBiasLayer: Layer {
    /// The layer's weight.
    var weight: Parameter { get }
    /// The layer's bias, or nil when built without one.
    var bias: Parameter? { get }
}

extension WeightBiasLayer {
    /// `weight`, then `bias` if present (PyTorch's `state_dict` order).
    public var namedParameters: [(String, Parameter)] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }
}

extension Module {
    /// No own parameters.
    public var namedParameters: [(String, Parameter)] { [] }
    /// No own buffers.
    public var namedBuffers: [(String, Buffer)] { [] }
    /// No children.
    public var children: [(String, any Module)] { [] }

    /// Every trainable parameter of this module and its descendants, in `state_dict` order.
    public var parameters: [Parameter] { allNamedParameters().map(\.1) }

    /// Sets the mode of this module and every descendant.
    public func setTraining(_ training: Bool) {
        isTraining = training
        for (_, c) in children { c.setTraining(training) }
    }

    /// Parameters and buffers in PyTorch `state_dict` order: for each module its parameters,
    /// then its buffers, then its children's, recursively.
    public func stateDict(prefix: String = "") -> [(String, Tensor)] {
        var out = namedParameters.map { (prefix + $0.0, $0.1.value.detached()) }
        out += namedBuffers.map { (prefix + $0.0, $0.1.value) }
        for (name, c) in children { out += c.stateDict(prefix: prefix + name + ".") }
        return out
    }

    /// Loads values by `state_dict` name. Every parameter and buffer must be present with the
    /// same shape.
    ///
    /// - Throws: ``StateDictError`` naming the missing key or the mismatched shapes.
    public func loadStateDict(_ values: [String: Tensor], prefix: String = "") throws {
        for (name, p) in allNamedParameters(prefix: prefix) {
            guard let v = values[name] else { throw StateDictError(key: name, problem: "missing") }
            guard v.shape == p.shape else {
                throw StateDictError(key: name, problem: "shape \(v.shape) does not match the model's \(p.shape)")
            }
            p.assign(v)
        }
        for (name, b) in allNamedBuffers(prefix: prefix) {
            guard let v = values[name] else { throw StateDictError(key: name, problem: "missing") }
            guard v.count == b.value.count else {
                throw StateDictError(key: name, problem: "shape \(v.shape) does not match the model's \(b.value.shape)")
            }
            b.value = v.reshaped(b.value.shape).detached()
        }
    }

    /// All trainable parameters of this module and its descendants with full names.
    public func allNamedParameters(prefix: String = "") -> [(String, Parameter)] {
        namedParameters.map { (prefix + $0.0, $0.1) } + children.flatMap { $0.1.allNamedParameters(prefix: prefix + $0.0 + ".") }
    }

    /// All buffers of this module and its descendants with full names.
    public func allNamedBuffers(prefix: String = "") -> [(String, Buffer)] {
        namedBuffers.map { (prefix + $0.0, $0.1) } + children.flatMap { $0.1.allNamedBuffers(prefix: prefix + $0.0 + ".") }
    }
}

/// A state-dict key that is missing or has the wrong shape.
public struct StateDictError: Error, CustomStringConvertible {
    /// The full `state_dict` name concerned (`generator.net.0.weight`).
    public var key: String
    /// What is wrong with it: `missing`, or the two shapes that differ.
    public var problem: String
    /// An error for `key` with `problem`.
    public init(key: String, problem: String) { self.key = key; self.problem = problem }
    /// `state_dict key 'KEY': PROBLEM`.
    public var description: String { "state_dict key '\(key)': \(problem)" }
}

/// Layers applied in order (PyTorch's `nn.Sequential`); children are named `0`, `1`, ...
public final class Sequential: Layer {
    /// The layers in order.
    public let layers: [any Layer]
    /// The mode; setting it sets every layer's.
    public var isTraining: Bool = true {
        didSet { for l in layers { l.isTraining = isTraining } }
    }

    /// Layers applied in order.
    public init(_ layers: [any Layer]) { self.layers = layers }

    /// The layers, named by index.
    public var children: [(String, any Module)] { layers.enumerated().map { (String($0.offset), $0.element as any Module) } }

    /// Each layer applied to the previous one's output, in order; shapes as the layers say.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for l in layers { h = l(h) }
        return h
    }
}
