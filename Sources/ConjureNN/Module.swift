/// A trainable tensor owned by a layer (PyTorch's `nn.Parameter`).
///
/// `value` is a leaf of the autodiff graph, so `Tensor.gradients(of: loss, wrt: [p.value])`
/// gives its gradient. Optimisers replace the value in place with ``update(_:)``.
public final class Parameter {
    /// The current value, a leaf that records gradients.
    public private(set) var value: Tensor

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
    public var value: Tensor
    public init(_ value: Tensor) { self.value = value }
}

/// A neural-network layer: a differentiable function of its input with named state.
///
/// Names follow PyTorch's `state_dict` (`weight`, `bias`, `running_mean`, ...), and
/// containers prefix their children's names with the child's index or name.
public protocol Layer: AnyObject {
    /// Applies the layer. Shapes are given by each layer's documentation.
    func callAsFunction(_ x: Tensor) -> Tensor
    /// Trainable parameters in `state_dict` order, named relative to this layer.
    var namedParameters: [(String, Parameter)] { get }
    /// Non-trainable state in `state_dict` order (running statistics).
    var namedBuffers: [(String, Buffer)] { get }
    /// Training (`true`, batch statistics, dropout on) or evaluation mode, per layer.
    var isTraining: Bool { get set }
}

extension Layer {
    public var namedParameters: [(String, Parameter)] { [] }
    public var namedBuffers: [(String, Buffer)] { [] }
    /// The trainable parameters in order, without names.
    public var parameters: [Parameter] { namedParameters.map(\.1) }

    /// Parameters and buffers in PyTorch `state_dict` order: for each layer its parameters,
    /// then its buffers.
    public func stateDict(prefix: String = "") -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        if let seq = self as? Sequential {
            for (i, child) in seq.layers.enumerated() {
                out += child.stateDict(prefix: prefix + "\(i).")
            }
            return out
        }
        out += namedParameters.map { (prefix + $0.0, $0.1.value.detached()) }
        out += namedBuffers.map { (prefix + $0.0, $0.1.value) }
        return out
    }

    /// Loads values by `state_dict` name. Every parameter and buffer must be present with the
    /// same shape.
    ///
    /// - Throws: ``StateDictError`` naming the missing key or the mismatched shapes.
    public func loadStateDict(_ values: [String: Tensor], prefix: String = "") throws {
        let params = allNamedParameters(prefix: prefix)
        let buffers = allNamedBuffers(prefix: prefix)
        for (name, p) in params {
            guard let v = values[name] else { throw StateDictError(key: name, problem: "missing") }
            guard v.shape == p.shape else {
                throw StateDictError(key: name, problem: "shape \(v.shape) does not match the model's \(p.shape)")
            }
            p.assign(v)
        }
        for (name, b) in buffers {
            guard let v = values[name] else { throw StateDictError(key: name, problem: "missing") }
            guard v.count == b.value.count else {
                throw StateDictError(key: name, problem: "shape \(v.shape) does not match the model's \(b.value.shape)")
            }
            b.value = v.reshaped(b.value.shape).detached()
        }
    }

    /// All trainable parameters of this layer and its children with full names.
    public func allNamedParameters(prefix: String = "") -> [(String, Parameter)] {
        if let seq = self as? Sequential {
            return seq.layers.enumerated().flatMap { $0.element.allNamedParameters(prefix: prefix + "\($0.offset).") }
        }
        return namedParameters.map { (prefix + $0.0, $0.1) }
    }

    /// All buffers of this layer and its children with full names.
    public func allNamedBuffers(prefix: String = "") -> [(String, Buffer)] {
        if let seq = self as? Sequential {
            return seq.layers.enumerated().flatMap { $0.element.allNamedBuffers(prefix: prefix + "\($0.offset).") }
        }
        return namedBuffers.map { (prefix + $0.0, $0.1) }
    }
}

/// A state-dict key that is missing or has the wrong shape.
public struct StateDictError: Error, CustomStringConvertible {
    public var key: String
    public var problem: String
    public init(key: String, problem: String) { self.key = key; self.problem = problem }
    public var description: String { "state_dict key '\(key)': \(problem)" }
}

/// Layers applied in order (PyTorch's `nn.Sequential`); children are named `0`, `1`, ...
public final class Sequential: Layer {
    public let layers: [any Layer]
    public var isTraining: Bool = true {
        didSet { for l in layers { l.isTraining = isTraining } }
    }

    public init(_ layers: [any Layer]) { self.layers = layers }

    public func callAsFunction(_ x: Tensor) -> Tensor {
        var h = x
        for l in layers { h = l(h) }
        return h
    }

    public var namedParameters: [(String, Parameter)] { allNamedParameters() }
    public var namedBuffers: [(String, Buffer)] { allNamedBuffers() }
}
