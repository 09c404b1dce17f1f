/// A trainable tensor owned by a layer (PyTorch's `nn.Parameter`).
///
/// `value` is a leaf of the autodiff graph, so `Tensor.gradients(of: loss, wrt: [p.value])`
/// gives its gradient. Optimisers replace the value in place with ``update(_:)``.
public final class Parameter {
    /// The current value, a leaf that records gradients.
    public private(set) var value: Tensor

    /// A parameter holding a detached copy of `value` that records gradients.
    public init(_ value: Tensor) { self.value = value.detached().requiringGrad() }

    /// The shape of the value.
    public var shape: [Int] { value.shape }

    /// Replaces the value (as a new leaf of the graph).
    public func assign(_ newValue: Tensor) {
        precondition(newValue.shape == value.shape, "Parameter.assign: shape \(newValue.shape) for parameter of shape \(value.shape)")
        value = newValue.detached().requiringGrad()
    }

    /// Mutates the elements in place (used by optimisers); the value becomes a new leaf.
    public func update(_ body: (inout [Float]) -> Void) {
        var v = value
        value = Parameter.placeholder  // drop this reference so the buffer is mutated in place when unshared
        v.withMutableScalars(body)
        value = v.requiringGrad()
    }

    private static let placeholder = Tensor(shape: [0], scalars: [])
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
