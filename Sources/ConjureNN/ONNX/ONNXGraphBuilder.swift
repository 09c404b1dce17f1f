import Foundation

/// A network or layer that cannot be written as ONNX: names the layer (its type and
/// `state_dict` scope) and the problem.
public struct ONNXExportError: Error, CustomStringConvertible {
    /// The layer's type and place, e.g. `PhaseShuffle at 'discriminator.2'`.
    public var layer: String
    /// What cannot be exported.
    public var problem: String
    /// An error for `layer` with `problem`.
    public init(layer: String, problem: String) { self.layer = layer; self.problem = problem }
    /// `cannot export LAYER to ONNX: PROBLEM`.
    public var description: String { "cannot export \(layer) to ONNX: \(problem)" }
}

/// Builds an ONNX graph (opset ``ONNXModel/opsetVersion``) node by node: graph inputs and
/// outputs, constant initializers (named by their PyTorch `state_dict` names where they are
/// parameters) and operator nodes whose output names are made unique.
///
/// Values are referred to by name (`String`). Every helper emits evaluation-mode semantics.
public final class ONNXGraphBuilder {
    /// The nodes added so far, in topological order (each node's inputs exist before it).
    public private(set) var nodes: [ONNXNode] = []
    /// The initializers added so far.
    public private(set) var initializers: [ONNXTensor] = []
    /// The graph inputs declared so far.
    public private(set) var inputs: [ONNXValueInfo] = []
    /// The graph outputs declared so far.
    public private(set) var outputs: [ONNXValueInfo] = []
    private var used: Set<String> = []

    /// An empty graph.
    public init() {}

    /// `hint` if no value, initializer or node has that name yet, else `hint_1`, `hint_2`, ...
    public func unique(_ hint: String) -> String {
        var name = hint, i = 0
        while used.contains(name) { i += 1; name = "\(hint)_\(i)" }
        used.insert(name)
        return name
    }

    /// Declares a graph input and returns its name (`info.name`, which must be unused).
    ///
    /// - Precondition: the name is not taken.
    @discardableResult
    public func addInput(_ info: ONNXValueInfo) -> String {
        precondition(!used.contains(info.name), "ONNXGraphBuilder: input name '\(info.name)' is taken")
        used.insert(info.name)
        inputs.append(info)
        return info.name
    }

    /// Declares `value` a graph output named `info.name` (through an `Identity` node).
    ///
    /// - Precondition: the output name is not taken.
    public func addOutput(_ value: String, as info: ONNXValueInfo) {
        precondition(!used.contains(info.name), "ONNXGraphBuilder: output name '\(info.name)' is taken")
        used.insert(info.name)
        nodes.append(ONNXNode(opType: "Identity", inputs: [value], outputs: [info.name], name: unique("output/\(info.name)")))
        outputs.append(info)
    }

    /// A float32 initializer holding `tensor` (its shape and elements) named `name` (made unique).
    public func constant(_ tensor: Tensor, name: String) -> String {
        let n = unique(name)
        initializers.append(ONNXTensor(name: n, dims: tensor.shape, floats: tensor.scalars))
        return n
    }

    /// A float32 initializer of shape `dims` (empty for a scalar).
    public func constant(floats: [Float], dims: [Int], name: String) -> String {
        let n = unique(name)
        initializers.append(ONNXTensor(name: n, dims: dims, floats: floats))
        return n
    }

    /// An int64 initializer of shape `dims` (empty for a scalar), e.g. a shape or axes list.
    public func constant(int64s: [Int64], dims: [Int], name: String) -> String {
        let n = unique(name)
        initializers.append(ONNXTensor(name: n, dims: dims, int64s: int64s))
        return n
    }

    /// A 1-D int64 initializer of `values` (a target shape, axes, starts ...).
    public func ints(_ values: [Int], name: String) -> String {
        constant(int64s: values.map(Int64.init), dims: [values.count], name: name)
    }

    /// Adds a node applying `opType` to `inputs` and returns its `outputCount` output names,
    /// `name`, `name_1`, ... made unique (the node is named after its first output).
    @discardableResult
    public func node(_ opType: String, _ inputs: [String], attributes: [ONNXAttribute] = [], outputCount: Int = 1, name: String) -> [String] {
        let outs = (0..<outputCount).map { unique($0 == 0 ? name : "\(name):\($0)") }
        nodes.append(ONNXNode(opType: opType, inputs: inputs, outputs: outs, name: outs[0], attributes: attributes))
        return outs
    }

    /// A one-output node: the output's name.
    public func op(_ opType: String, _ inputs: [String], _ attributes: [ONNXAttribute] = [], name: String) -> String {
        node(opType, inputs, attributes: attributes, name: name)[0]
    }

    /// The graph built so far, named `name` and documented by `doc`.
    public func graph(name: String, doc: String) -> ONNXGraph {
        ONNXGraph(name: name, nodes: nodes, initializers: initializers, inputs: inputs, outputs: outputs, doc: doc)
    }

    // MARK: - Helpers shared by the layers

    /// `x Wᵀ + b` over the last axis of `x` (any rank ≥ 2): `MatMul` with the transposed
    /// weight (a `Transpose` of the initializer `scope.weight`), then `Add` of `scope.bias`.
    ///
    /// - Shapes: `x` `[..., in]`, `weight` `[out, in]`, `bias` `[out]` → `[..., out]`.
    public func linear(_ x: String, weight: Tensor, bias: Tensor?, scope: String, weightName: String = "weight", biasName: String = "bias") -> String {
        precondition(weight.rank == 2, "ONNXGraphBuilder.linear: weight \(weight.shape) is not [out, in]")
        let w = constant(weight, name: join(scope, weightName))
        let wt = op("Transpose", [w], [ONNXAttribute("perm", .ints([1, 0]))], name: join(scope, "\(weightName)_t"))
        var y = op("MatMul", [x, wt], name: join(scope, "matmul"))
        if let bias { y = op("Add", [y, constant(bias, name: join(scope, biasName))], name: join(scope, "add_bias")) }
        return y
    }

    /// `Reshape` of `x` to `shape` (ONNX rules: 0 copies the input's extent, -1 is inferred).
    public func reshape(_ x: String, _ shape: [Int], name: String) -> String {
        op("Reshape", [x, ints(shape, name: name + "/shape")], name: name)
    }

    /// `Transpose` of `x` by `perm`.
    public func transpose(_ x: String, _ perm: [Int], name: String) -> String {
        op("Transpose", [x], [ONNXAttribute("perm", .ints(perm))], name: name)
    }

    /// `x · sigmoid(x)` (SiLU / swish) as `Sigmoid` and `Mul`.
    public func silu(_ x: String, name: String) -> String {
        op("Mul", [x, op("Sigmoid", [x], name: name + "/sigmoid")], name: name)
    }

    /// Nearest-neighbour upsampling of the trailing `spatialDims` axes of `x` `[N, C, ...]` by
    /// the integer `scale`: `Resize` with mode `nearest`, coordinate transformation
    /// `asymmetric` and `floor` rounding, so output pixel `i` reads input pixel `floor(i / scale)`.
    public func upsampleNearest(_ x: String, scale: Int, spatialDims: Int, name: String) -> String {
        let scales = constant(floats: [1, 1] + [Float](repeating: Float(scale), count: spatialDims), dims: [2 + spatialDims], name: name + "/scales")
        return op("Resize", [x, "", scales], [ONNXAttribute("mode", .string("nearest")),
                                             ONNXAttribute("coordinate_transformation_mode", .string("asymmetric")),
                                             ONNXAttribute("nearest_mode", .string("floor"))], name: name)
    }

    /// `scope.name`, or `name` when `scope` is empty.
    public func join(_ scope: String, _ name: String) -> String { scope.isEmpty ? name : scope + "." + name }
}
