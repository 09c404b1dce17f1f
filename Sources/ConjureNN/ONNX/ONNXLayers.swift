import Foundation

// Every layer's ONNX form, in one place: a new layer is exportable with one conformance here.
// Each emits the layer's evaluation-mode function (BatchNorm with its running statistics,
// dropout and phase shuffle as the identity, spectral norm with the stored u, v).

/// A layer that can write its evaluation-mode function into an ONNX graph.
public protocol ONNXExportable {
    /// Emits the nodes computing the layer on `input` and returns the output's value name.
    /// Parameters become initializers named `scope.NAME` after their `state_dict` names.
    ///
    /// - Throws: ``ONNXExportError`` when the layer (or a child) has no ONNX form.
    func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String
}

/// A layer whose weight can be replaced when exported (the layers ``SpectralNorm`` wraps).
public protocol ONNXWeightExportable: ONNXExportable {
    /// Emits the layer with `weight` in place of its own (same shape).
    ///
    /// - Throws: ``ONNXExportError`` when the layer has no ONNX form.
    func exportONNX(_ input: String, weight: Tensor, to graph: ONNXGraphBuilder, scope: String) throws -> String
}

extension ONNXWeightExportable where Self: WeightBiasLayer {
    /// The layer with its own weight.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        try exportONNX(input, weight: weight.value, to: graph, scope: scope)
    }
}

/// Emits `layer` through its ``ONNXExportable`` conformance.
///
/// - Throws: ``ONNXExportError`` naming the layer's type and `scope` when it does not conform
///   (or a conformance fails).
public func exportONNXLayer(_ layer: any Module, input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
    guard let e = layer as? any ONNXExportable else {
        throw ONNXExportError(layer: "\(type(of: layer)) at '\(scope)'", problem: "the layer has no ONNX form (add an ONNXExportable conformance in Sources/ConjureNN/ONNX/ONNXLayers.swift)")
    }
    return try e.exportONNX(input, to: graph, scope: scope)
}

extension Sequential: ONNXExportable {
    /// Each layer in order, scoped `scope.0`, `scope.1`, ...
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        var h = input
        for (i, l) in layers.enumerated() { h = try exportONNXLayer(l, input: h, to: graph, scope: graph.join(scope, String(i))) }
        return h
    }
}

extension Linear: ONNXWeightExportable {
    /// `MatMul` by `weightᵀ` and `Add` of the bias over the last axis (any rank ≥ 2).
    public func exportONNX(_ input: String, weight: Tensor, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        graph.linear(input, weight: weight, bias: bias?.value, scope: scope)
    }
}

/// `Conv` or `ConvTranspose` attributes for a square kernel over `spatial` axes.
private func convAttributes(kernel: Int, stride: Int, padding: Int, outputPadding: Int?, spatial: Int) -> [ONNXAttribute] {
    var a = [ONNXAttribute("kernel_shape", .ints([Int](repeating: kernel, count: spatial))),
             ONNXAttribute("strides", .ints([Int](repeating: stride, count: spatial))),
             ONNXAttribute("pads", .ints([Int](repeating: padding, count: 2 * spatial)))]
    if let outputPadding { a.append(ONNXAttribute("output_padding", .ints([Int](repeating: outputPadding, count: spatial)))) }
    return a
}

/// A `Conv`/`ConvTranspose` node of `op` with the weight and optional bias as initializers.
private func convNode(_ op: String, _ input: String, weight: Tensor, bias: Tensor?, attributes: [ONNXAttribute], graph: ONNXGraphBuilder, scope: String) -> String {
    var ins = [input, graph.constant(weight, name: graph.join(scope, "weight"))]
    if let bias { ins.append(graph.constant(bias, name: graph.join(scope, "bias"))) }
    return graph.op(op, ins, attributes, name: graph.join(scope, op.lowercased()))
}

extension Conv2d: ONNXWeightExportable {
    /// `Conv` with the kernel, stride and symmetric padding on both spatial axes.
    public func exportONNX(_ input: String, weight: Tensor, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        convNode("Conv", input, weight: weight, bias: bias?.value,
                 attributes: convAttributes(kernel: weight.shape[2], stride: stride, padding: padding, outputPadding: nil, spatial: 2), graph: graph, scope: scope)
    }
}

extension ConvTranspose2d: ONNXWeightExportable {
    /// `ConvTranspose` (weight `[in, out, k, k]`, the layout ONNX uses too) with `pads` and
    /// `output_padding`, so the output extent is `(H - 1) stride - 2 padding + k + outputPadding`.
    public func exportONNX(_ input: String, weight: Tensor, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        convNode("ConvTranspose", input, weight: weight, bias: bias?.value,
                 attributes: convAttributes(kernel: weight.shape[2], stride: stride, padding: padding, outputPadding: outputPadding, spatial: 2), graph: graph, scope: scope)
    }
}

extension Conv1d: ONNXWeightExportable {
    /// `Conv` over the length axis.
    public func exportONNX(_ input: String, weight: Tensor, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        convNode("Conv", input, weight: weight, bias: bias?.value,
                 attributes: convAttributes(kernel: weight.shape[2], stride: stride, padding: padding, outputPadding: nil, spatial: 1), graph: graph, scope: scope)
    }
}

extension ConvTranspose1d: ONNXWeightExportable {
    /// `ConvTranspose` over the length axis (WaveGAN: kernel 25, stride 4, padding 11, output padding 1).
    public func exportONNX(_ input: String, weight: Tensor, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        convNode("ConvTranspose", input, weight: weight, bias: bias?.value,
                 attributes: convAttributes(kernel: weight.shape[2], stride: stride, padding: padding, outputPadding: outputPadding, spatial: 1), graph: graph, scope: scope)
    }
}

extension SpectralNorm: ONNXExportable {
    /// The wrapped layer with the evaluation-mode weight `W / σ`, σ from the stored `weight_u`
    /// and `weight_v` (no power iteration; the weight is stored normalised under `scope.weight`).
    ///
    /// - Throws: ``ONNXExportError`` when the wrapped layer cannot be exported.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        guard let inner = layer as? any ONNXWeightExportable else {
            throw ONNXExportError(layer: "\(type(of: layer)) under spectral norm at '\(scope)'", problem: "the layer cannot take a replacement weight")
        }
        let was = isTraining
        isTraining = false
        defer { isTraining = was }
        let w = withoutGrad { normalizedWeight() }
        return try inner.exportONNX(input, weight: w, to: graph, scope: scope)
    }
}

extension Activation: ONNXExportable {
    /// `Relu`, `LeakyRelu` (alpha = the slope), `Tanh`, `Sigmoid` or nothing for the identity.
    ///
    /// - Throws: ``ONNXExportError`` for an activation function without an ONNX form.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        let name = kind.name
        switch name {
        case "relu": return graph.op("Relu", [input], name: graph.join(scope, "relu"))
        case "tanh": return graph.op("Tanh", [input], name: graph.join(scope, "tanh"))
        case "sigmoid": return graph.op("Sigmoid", [input], name: graph.join(scope, "sigmoid"))
        case "identity": return input
        default:
            if name.hasPrefix("leaky_relu("), name.hasSuffix(")"), let slope = Float(name.dropFirst(11).dropLast()) {
                return graph.op("LeakyRelu", [input], [ONNXAttribute("alpha", .float(slope))], name: graph.join(scope, "leaky_relu"))
            }
            throw ONNXExportError(layer: "Activation '\(name)' at '\(scope)'", problem: "no ONNX operator is known for this activation function")
        }
    }
}

/// `BatchNormalization` in inference mode (running statistics) for `[N, C, ...]` input.
private func batchNormNode(_ bn: BatchNormBase, _ input: String, graph: ONNXGraphBuilder, scope: String) -> String {
    let ins = [input, graph.constant(bn.weight.value, name: graph.join(scope, "weight")), graph.constant(bn.bias.value, name: graph.join(scope, "bias")),
               graph.constant(bn.runningMean.value, name: graph.join(scope, "running_mean")), graph.constant(bn.runningVar.value, name: graph.join(scope, "running_var"))]
    return graph.op("BatchNormalization", ins, [ONNXAttribute("epsilon", .float(bn.eps))], name: graph.join(scope, "batchnorm"))
}

extension BatchNorm1d: ONNXExportable {
    /// `BatchNormalization` with the running mean and variance on `[N, features]`.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        batchNormNode(self, input, graph: graph, scope: scope)
    }
}

extension BatchNorm2d: ONNXExportable {
    /// `BatchNormalization` with the running mean and variance on `[N, C, H, W]`.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        batchNormNode(self, input, graph: graph, scope: scope)
    }
}

extension GroupNorm: ONNXExportable {
    /// Opset 17 has no GroupNormalization: `[N, C, ...]` is reshaped to `[N, G, -1]`, each
    /// group normalised with its mean and biased variance (`ReduceMean` over axis 2),
    /// `(x - μ) / sqrt(σ² + eps)`, reshaped to `[N, C, -1]`, scaled by `weight` and shifted by
    /// `bias` (as `[C, 1]`), and reshaped back to the input's shape.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        let s = { (n: String) in graph.join(scope, n) }
        let grouped = graph.reshape(input, [0, numGroups, -1], name: s("group"))
        let axes: [ONNXAttribute] = [ONNXAttribute("axes", .ints([2])), ONNXAttribute("keepdims", .int(1))]
        let mean = graph.op("ReduceMean", [grouped], axes, name: s("mean"))
        let centred = graph.op("Sub", [grouped, mean], name: s("centred"))
        let variance = graph.op("ReduceMean", [graph.op("Mul", [centred, centred], name: s("squared"))], axes, name: s("variance"))
        let std = graph.op("Sqrt", [graph.op("Add", [variance, graph.constant(floats: [eps], dims: [], name: s("eps"))], name: s("variance_eps"))], name: s("std"))
        var y = graph.reshape(graph.op("Div", [centred, std], name: s("normalized")), [0, numChannels, -1], name: s("channels"))
        if let weight, let bias {
            y = graph.op("Mul", [y, graph.constant(weight.value.reshaped([numChannels, 1]), name: s("weight"))], name: s("scale"))
            y = graph.op("Add", [y, graph.constant(bias.value.reshaped([numChannels, 1]), name: s("bias"))], name: s("shift"))
        }
        return graph.op("Reshape", [y, graph.op("Shape", [input], name: s("input_shape"))], name: s("groupnorm"))
    }
}

extension LayerNorm: ONNXExportable {
    /// `LayerNormalization` over the trailing `normalizedShape` axes (ones and zeros without affine).
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        let scale = graph.constant(weight?.value ?? .ones(normalizedShape), name: graph.join(scope, "weight"))
        let shift = graph.constant(bias?.value ?? .zeros(normalizedShape), name: graph.join(scope, "bias"))
        return graph.op("LayerNormalization", [input, scale, shift], [ONNXAttribute("axis", .int(-normalizedShape.count)), ONNXAttribute("epsilon", .float(eps))],
                        name: graph.join(scope, "layernorm"))
    }
}

extension SiLU: ONNXExportable {
    /// `x · Sigmoid(x)`.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        graph.silu(input, name: graph.join(scope, "silu"))
    }
}

extension GELU: ONNXExportable {
    /// Opset 17 has no Gelu: `0.5 x (1 + Erf(x / √2))`, or with the tanh approximation
    /// `0.5 x (1 + Tanh(√(2/π) (x + 0.044715 x³)))`.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        try exportGELU(input, approximation: approximation, graph: graph, scope: scope)
    }
}

/// GELU of `input` (see ``GELU/exportONNX(_:to:scope:)``).
///
/// - Throws: never for the two known approximations; declared for symmetry with the layers.
public func exportGELU(_ input: String, approximation: GELUApproximation, graph: ONNXGraphBuilder, scope: String) throws -> String {
    let s = { (n: String) in graph.join(scope, n) }
    let inner: String
    switch approximation {
    case .none:
        inner = graph.op("Erf", [graph.op("Mul", [input, graph.constant(floats: [0.70710678118654752], dims: [], name: s("inv_sqrt2"))], name: s("scaled"))], name: s("erf"))
    case .tanh:
        let cube = graph.op("Mul", [input, graph.op("Mul", [input, input], name: s("square"))], name: s("cube"))
        let poly = graph.op("Add", [input, graph.op("Mul", [cube, graph.constant(floats: [0.044715], dims: [], name: s("a"))], name: s("a_cube"))], name: s("poly"))
        inner = graph.op("Tanh", [graph.op("Mul", [poly, graph.constant(floats: [0.79788456080286536], dims: [], name: s("c"))], name: s("c_poly"))], name: s("tanh"))
    }
    let onePlus = graph.op("Add", [inner, graph.constant(floats: [1], dims: [], name: s("one"))], name: s("one_plus"))
    let half = graph.op("Mul", [input, graph.constant(floats: [0.5], dims: [], name: s("half"))], name: s("half_x"))
    return graph.op("Mul", [half, onePlus], name: s("gelu"))
}

extension UpsampleNearest2d: ONNXExportable {
    /// `Resize` (nearest, asymmetric, floor) by `scale` on height and width.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        graph.upsampleNearest(input, scale: scale, spatialDims: 2, name: graph.join(scope, "upsample"))
    }
}

extension Flatten: ONNXExportable {
    /// `Flatten` with axis 1: `[N, d1, d2, ...]` → `[N, d1·d2·...]`.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        graph.op("Flatten", [input], [ONNXAttribute("axis", .int(1))], name: graph.join(scope, "flatten"))
    }
}

extension Reshape: ONNXExportable {
    /// `Reshape` to `[N] + shape` (the batch extent copied with ONNX's 0).
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        graph.reshape(input, [0] + shape, name: graph.join(scope, "reshape"))
    }
}

extension Dropout: ONNXExportable {
    /// The identity (evaluation mode): no node.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String { input }
}

extension PhaseShuffle: ONNXExportable {
    /// The identity (evaluation mode): no node.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String { input }
}

extension Embedding: ONNXExportable {
    /// `Gather` of the rows of `scope.weight` at int64 indices: `[...]` → `[..., dimension]`.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        graph.op("Gather", [graph.constant(weight.value, name: graph.join(scope, "weight")), input], [ONNXAttribute("axis", .int(0))],
                 name: graph.join(scope, "gather"))
    }
}

extension MultiheadSelfAttention: ONNXExportable {
    /// Self-attention of `[B, T, E]` (``causal`` decides the mask): the stacked projection,
    /// heads split as `[3, B, H, T, d]`, `softmax(q kᵀ / √d + mask) v`, heads merged, `out_proj`.
    /// The causal mask is built for the input's own `T` (`Trilu` of a `-inf` matrix above the
    /// diagonal), so any length works.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        let s = { (n: String) in graph.join(scope, n) }
        let e = embedDim, h = numHeads, d = e / h
        let qkv = graph.linear(input, weight: inProjWeight.value, bias: inProjBias.value, scope: scope, weightName: "in_proj_weight", biasName: "in_proj_bias")
        let heads = graph.transpose(graph.reshape(qkv, [0, 0, 3, h, d], name: s("split_heads")), [2, 0, 3, 1, 4], name: s("heads"))
        func part(_ i: Int, _ n: String) -> String {
            graph.op("Gather", [heads, graph.constant(int64s: [Int64(i)], dims: [], name: s("index_\(n)"))], [ONNXAttribute("axis", .int(0))], name: s(n))
        }
        let q = graph.op("Mul", [part(0, "q"), graph.constant(floats: [1 / Float(d).squareRoot()], dims: [], name: s("inv_sqrt_d"))], name: s("q_scaled"))
        let k = part(1, "k"), v = part(2, "v")
        var scores = graph.op("MatMul", [q, graph.transpose(k, [0, 1, 3, 2], name: s("k_t"))], name: s("scores"))
        if causal {
            let shape = graph.op("Shape", [input], name: s("input_shape"))
            let t = graph.op("Slice", [shape, graph.ints([1], name: s("t_start")), graph.ints([2], name: s("t_end"))], name: s("t"))
            let tt = graph.op("Concat", [t, t], [ONNXAttribute("axis", .int(0))], name: s("t_t"))
            let full = graph.op("ConstantOfShape", [tt], [ONNXAttribute("value", .tensor(ONNXTensor(name: "value", dims: [1], floats: [-.infinity])))], name: s("minus_inf"))
            let mask = graph.op("Trilu", [full, graph.constant(int64s: [1], dims: [], name: s("k_above"))], [ONNXAttribute("upper", .int(1))], name: s("causal_mask"))
            scores = graph.op("Add", [scores, mask], name: s("masked_scores"))
        }
        let weights = graph.op("Softmax", [scores], [ONNXAttribute("axis", .int(-1))], name: s("softmax"))
        let context = graph.transpose(graph.op("MatMul", [weights, v], name: s("context")), [0, 2, 1, 3], name: s("context_t"))
        let merged = graph.reshape(context, [0, 0, e], name: s("merge_heads"))
        return graph.linear(merged, weight: outProjWeight.value, bias: outProjBias.value, scope: s("out_proj"))
    }
}

extension GRU: ONNXExportable {
    /// ONNX `GRU` with `linear_before_reset = 1` (PyTorch's form, `b_hn` inside the reset
    /// product) from a zero state: the gate rows reordered from PyTorch's `[r; z; n]` to ONNX's
    /// `[z; r; h]`, `B = [b_ih; b_hh]`; `[B, T, in]` is transposed to time-major and the output
    /// `[T, 1, B, H]` back to `[B, T, H]`.
    public func exportONNX(_ input: String, to graph: ONNXGraphBuilder, scope: String) throws -> String {
        let s = { (n: String) in graph.join(scope, n) }
        let hs = hiddenSize
        func zrn(_ t: Tensor) -> [Float] {
            let rows = t.scalars.count / (3 * hs), v = t.scalars
            let r = Array(v[0..<(hs * rows)]), z = Array(v[(hs * rows)..<(2 * hs * rows)]), n = Array(v[(2 * hs * rows)...])
            return z + r + n
        }
        let w = graph.constant(floats: zrn(weightIH.value), dims: [1, 3 * hs, inputSize], name: s("weight_ih_l0"))
        let r = graph.constant(floats: zrn(weightHH.value), dims: [1, 3 * hs, hs], name: s("weight_hh_l0"))
        let b = graph.constant(floats: zrn(biasIH.value) + zrn(biasHH.value), dims: [1, 6 * hs], name: s("bias_l0"))
        let x = graph.transpose(input, [1, 0, 2], name: s("time_major"))
        let y = graph.op("GRU", [x, w, r, b], [ONNXAttribute("hidden_size", .int(hs)), ONNXAttribute("linear_before_reset", .int(1))], name: s("gru"))
        let squeezed = graph.op("Squeeze", [y, graph.ints([1], name: s("direction_axis"))], name: s("squeeze"))
        return graph.transpose(squeezed, [1, 0, 2], name: s("batch_major"))
    }
}
