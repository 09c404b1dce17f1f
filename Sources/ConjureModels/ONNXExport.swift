import Foundation
import ConjureData
import ConjureNN

// The network each family's sampling evaluates, as an ONNX graph (see docs/onnx.md): a GAN's
// generator, a VAE's decoder, a diffusion model's denoiser (one evaluation) and a text model's
// next-character network, each with the weights sampling uses (the averages under `--ema`).

/// A model's sampling network as an ONNX graph, with what it computes.
public struct ONNXNetworkExport {
    /// The graph: named inputs and outputs with symbolic batch axis `N`.
    public var graph: ONNXGraph
    /// Which network: `generator`, `decoder`, `denoiser` or `next-token`.
    public var network: String
    /// `ema` when the averaged weights were exported, `live` otherwise.
    public var weights: String
    /// What the output means and how it relates to the data (metadata `conjure.output`).
    public var outputMeaning: String
    /// Family-specific metadata (`conjure.null_class`, `conjure.vocabulary`, ...).
    public var metadata: [(key: String, value: String)]

    /// An export of `graph`.
    public init(graph: ONNXGraph, network: String, weights: String, outputMeaning: String, metadata: [(key: String, value: String)] = []) {
        self.graph = graph; self.network = network; self.weights = weights; self.outputMeaning = outputMeaning; self.metadata = metadata
    }
}

/// A model whose sampling network can be written as ONNX.
public protocol ONNXExportableModel: GenerativeModel {
    /// The sampling network as a graph whose data-valued input or output has shape
    /// `[N] + sampleShape` (the data kind's sample shape, e.g. `[C, H, W]`; ignored by text models).
    ///
    /// - Throws: ``ONNXExportError`` naming a layer without an ONNX form.
    func exportONNX(sampleShape: [Int]) throws -> ONNXNetworkExport
}

/// `[N] + shape` as ONNX dimensions.
private func batchShape(_ shape: [Int]) -> [ONNXDimension] { [.symbol("N")] + shape.map { .value($0) } }

extension GAN: ONNXExportableModel {
    /// The generator (the averaged copy under `--ema`, with the live BatchNorm statistics):
    /// inputs `z` float32 `[N, noiseDim]` and, for a conditional GAN, `label` int64 `[N]` in
    /// `0..<K` (one-hot encoded in the graph and appended to z); output `x` float32
    /// `[N] + sampleShape` in the normalised range (what `sample` gives before the inverse
    /// normalisation).
    public func exportONNX(sampleShape: [Int]) throws -> ONNXNetworkExport {
        precondition(sampleShape.reduce(1, *) == config.dataDim, "GAN.exportONNX: sample shape \(sampleShape) for \(config.dataDim) values")
        let b = ONNXGraphBuilder()
        var h = b.addInput(ONNXValueInfo(name: "z", elementType: .float, shape: batchShape([config.noiseDim]),
                                         doc: "latent noise, standard normal N(0, I)"))
        let k = config.conditionalClasses
        if k > 0 {
            let label = b.addInput(ONNXValueInfo(name: "label", elementType: .int64, shape: [.symbol("N")],
                                                 doc: "class of each sample, 0..<\(k) (one-hot encoded and appended to z)"))
            let oneHot = b.op("OneHot", [label, b.constant(int64s: [Int64(k)], dims: [], name: "classes"), b.constant(floats: [0, 1], dims: [2], name: "one_hot_values")],
                              [ONNXAttribute("axis", .int(-1))], name: "one_hot")
            h = b.op("Concat", [h, oneHot], [ONNXAttribute("axis", .int(1))], name: "z_label")
        }
        let out = try samplingGenerator().exportONNX(h, to: b, scope: "generator")
        b.addOutput(b.reshape(out, [0] + sampleShape, name: "sample_shape"),
                    as: ONNXValueInfo(name: "x", elementType: .float, shape: batchShape(sampleShape),
                                      doc: "generated samples in the normalised range (\(config.outputActivation.rawValue) output); map to data units with conjure.to_data_units"))
        return ONNXNetworkExport(graph: b.graph(name: "generator", doc: "GAN generator G(z\(k > 0 ? " | label" : ""))"), network: "generator",
                                 weights: parameterGroups[0].averages == nil ? "live" : "ema",
                                 outputMeaning: "x: generated samples in the model's normalised units (apply conjure.to_data_units for the data's units)",
                                 metadata: k > 0 ? [("conjure.classes", String(k))] : [])
    }
}

extension VAE: ONNXExportableModel {
    /// The decoder's mean `E[x|z]` (the averaged copy under `--ema`): input `z` float32
    /// `[N, latentDim]`, output `x` float32 `[N] + sampleShape` (a sigmoid of the logits for the
    /// Bernoulli likelihood, the mean for the Gaussian), what `sample` gives before the inverse
    /// normalisation.
    public func exportONNX(sampleShape: [Int]) throws -> ONNXNetworkExport {
        precondition(sampleShape.reduce(1, *) == config.dataDim, "VAE.exportONNX: sample shape \(sampleShape) for \(config.dataDim) values")
        let b = ONNXGraphBuilder()
        let z = b.addInput(ONNXValueInfo(name: "z", elementType: .float, shape: batchShape([config.latentDim]), doc: "latent code; the prior is N(0, I)"))
        let model = samplingModel()
        var out = try model.decoder.exportONNX(z, to: b, scope: "decoder")
        if config.likelihood == .bernoulli { out = b.op("Sigmoid", [out], name: "bernoulli_mean") }
        b.addOutput(b.reshape(out, [0] + sampleShape, name: "sample_shape"),
                    as: ONNXValueInfo(name: "x", elementType: .float, shape: batchShape(sampleShape),
                                      doc: "decoder mean E[x|z] in the normalised range; map to data units with conjure.to_data_units"))
        return ONNXNetworkExport(graph: b.graph(name: "decoder", doc: "VAE decoder mean E[x|z] (\(config.likelihood.rawValue) likelihood)"), network: "decoder",
                                 weights: parameterGroups[0].averages == nil ? "live" : "ema",
                                 outputMeaning: "x: the decoder's mean E[x|z] (\(config.likelihood == .bernoulli ? "sigmoid of the Bernoulli logits" : "Gaussian mean")) in the model's normalised units (apply conjure.to_data_units)")
    }
}

extension DiffusionModel: ONNXExportableModel {
    /// One evaluation of the denoiser (the averaged copy under `--ema`): inputs `x_t` float32
    /// `[N] + imageShape`, `t` int64 `[N]` (0-based steps in `0..<T`) and, for a conditional
    /// model, `label` int64 `[N]` in `0...K` where `K` is the null (unconditional) class; output
    /// `eps` (or `v` for v-prediction) of the shape of `x_t`. The metadata holds the schedule's
    /// ᾱ_t for t = 0..<T (`conjure.alphas_cumprod`, JSON) so a sampler needs nothing else.
    public func exportONNX(sampleShape: [Int]) throws -> ONNXNetworkExport {
        let shape = config.imageShape
        let k = config.conditionalClasses
        let name = config.prediction == .epsilon ? "eps" : "v"
        let b = ONNXGraphBuilder()
        let x = b.addInput(ONNXValueInfo(name: "x_t", elementType: .float, shape: batchShape(shape),
                                         doc: "noisy samples x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps in the normalised range"))
        let t = b.addInput(ONNXValueInfo(name: "t", elementType: .int64, shape: [.symbol("N")], doc: "0-based diffusion step of each sample, 0..<\(config.timesteps)"))
        var label: String?
        if k > 0 {
            label = b.addInput(ONNXValueInfo(name: "label", elementType: .int64, shape: [.symbol("N")],
                                             doc: "class of each sample, 0..<\(k); \(k) is the null class (the unconditional prediction of classifier-free guidance)"))
        }
        let out = try samplingNetwork().exportONNX(x: x, t: t, label: label, to: b, scope: "unet")
        let meaning = config.prediction == .epsilon
            ? "eps: the predicted noise ε_θ(x_t, t\(k > 0 ? ", label" : "")) of the shape of x_t"
            : "v: the predicted velocity v_θ(x_t, t\(k > 0 ? ", label" : "")) = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0, the shape of x_t"
        b.addOutput(out, as: ONNXValueInfo(name: name, elementType: .float, shape: batchShape(shape), doc: meaning))
        var metadata: [(key: String, value: String)] = [
            ("conjure.prediction", config.prediction.rawValue), ("conjure.timesteps", String(config.timesteps)),
            ("conjure.noise_schedule", config.schedule.rawValue),
            ("conjure.alphas_cumprod", "[" + schedule.alphasCumprod.map { "\($0)" }.joined(separator: ",") + "]"),
            ("conjure.data_scale", "\(config.inputScale)"),
        ]
        if k > 0 { metadata += [("conjure.classes", String(k)), ("conjure.null_class", String(k))] }
        return ONNXNetworkExport(graph: b.graph(name: "denoiser", doc: "diffusion U-Net, one network evaluation"), network: "denoiser",
                                 weights: parameterGroups[0].averages == nil ? "live" : "ema", outputMeaning: meaning, metadata: metadata)
    }

    /// The denoiser's output for given inputs, exactly as sampling evaluates it (evaluation mode,
    /// averaged weights under `--ema`, no autodiff history): the reference an ONNX export is
    /// checked against.
    ///
    /// - Shapes: `x` `[N] + imageShape`, `t` N steps in `0..<T`, `labels` N classes in `0...K`
    ///   (K the null class) for a conditional model, else nil → the shape of `x`.
    public func denoiserOutput(x: Tensor, t: [Int], labels: [Int]?) -> Tensor {
        let net = samplingNetwork()
        let was = net.isTraining
        net.setTraining(false)
        defer { net.setTraining(was) }
        return withoutGrad { net(x, t: t, labels: labels) }
    }
}

extension UNet {
    /// The U-Net on `x` (`[N] + imageShape`), steps `t` (int64 `[N]`) and `label` (int64 `[N]`,
    /// conditional nets): the sinusoidal embeddings of all T steps are a constant table
    /// (`time_embed.sinusoid`, computed in Double as in training) gathered at `t`.
    ///
    /// - Throws: ``ONNXExportError`` from a layer.
    func exportONNX(x: String, t: String, label: String?, to b: ONNXGraphBuilder, scope: String) throws -> String {
        let s = { (n: String) in b.join(scope, n) }
        let table = timestepEmbedding((0..<config.timesteps).map(Double.init), dim: config.baseWidth)
        let sinusoid = b.op("Gather", [b.constant(table, name: s("time_embed.sinusoid")), t], [ONNXAttribute("axis", .int(0))], name: s("time_embed.gather"))
        var temb = try timeEmbed.exportONNX(sinusoid, to: b, scope: s("time_embed"))
        if let labelEmbed {
            guard let label else { preconditionFailure("UNet.exportONNX: a conditional network needs the label input") }
            temb = b.op("Add", [temb, try labelEmbed.exportONNX(label, to: b, scope: s("label_embed"))], name: s("temb_label"))
        }
        let tembAct = b.silu(temb, name: s("temb_silu"))
        let dims = config.spatialDims
        func residual(_ r: ResidualBlock, _ x: String, _ scope: String) throws -> String {
            let q = { (n: String) in b.join(scope, n) }
            var h = try exportONNXLayer(r.conv1, input: b.silu(try r.norm1.exportONNX(x, to: b, scope: q("norm1")), name: q("silu1")), to: b, scope: q("conv1"))
            let tp = try r.timeProjection.exportONNX(tembAct, to: b, scope: q("time_emb_proj"))
            h = b.op("Add", [h, b.reshape(tp, [0, -1] + [Int](repeating: 1, count: dims), name: q("time_emb_broadcast"))], name: q("add_time"))
            h = try exportONNXLayer(r.conv2, input: b.silu(try r.norm2.exportONNX(h, to: b, scope: q("norm2")), name: q("silu2")), to: b, scope: q("conv2"))
            let skip = try r.shortcut.map { try exportONNXLayer($0, input: x, to: b, scope: q("conv_shortcut")) } ?? x
            return b.op("Add", [skip, h], name: q("residual"))
        }
        func attention(_ a: AttentionBlock, _ x: String, _ scope: String) throws -> String {
            let q = { (n: String) in b.join(scope, n) }
            let c = a.norm.numChannels
            let seq = b.transpose(b.reshape(try a.norm.exportONNX(x, to: b, scope: q("norm")), [0, c, -1], name: q("positions")), [0, 2, 1], name: q("sequence"))
            let out = b.transpose(try a.attention.exportONNX(seq, to: b, scope: q("attn")), [0, 2, 1], name: q("channels_first"))
            let back = b.op("Reshape", [out, b.op("Shape", [x], name: q("input_shape"))], name: q("feature_map"))
            return b.op("Add", [x, back], name: q("residual"))
        }
        var h = try exportONNXLayer(convIn, input: x, to: b, scope: s("conv_in"))
        var skips = [h]
        for (l, item) in down.items.enumerated() {
            let level = item as! DownLevel
            for (i, r) in level.resnets.items.enumerated() {
                h = try residual(r as! ResidualBlock, h, s("down.\(l).resnets.\(i)"))
                if let a = level.attentions { h = try attention(a.items[i] as! AttentionBlock, h, s("down.\(l).attentions.\(i)")) }
                skips.append(h)
            }
            if let d = level.downsample { h = try exportONNXLayer(d, input: h, to: b, scope: s("down.\(l).downsample.conv")); skips.append(h) }
        }
        h = try residual(midResnet1, h, s("mid.resnet1"))
        h = try attention(midAttention, h, s("mid.attention"))
        h = try residual(midResnet2, h, s("mid.resnet2"))
        for (l, item) in up.items.enumerated() {
            let level = item as! UpLevel
            for (i, r) in level.resnets.items.enumerated() {
                let joined = b.op("Concat", [h, skips.removeLast()], [ONNXAttribute("axis", .int(1))], name: s("up.\(l).resnets.\(i).concat_skip"))
                h = try residual(r as! ResidualBlock, joined, s("up.\(l).resnets.\(i)"))
                if let a = level.attentions { h = try attention(a.items[i] as! AttentionBlock, h, s("up.\(l).attentions.\(i)")) }
            }
            if let u = level.upsample {
                let up = b.upsampleNearest(h, scale: config.downsampling, spatialDims: dims, name: s("up.\(l).upsample.resize"))
                h = try exportONNXLayer(u, input: up, to: b, scope: s("up.\(l).upsample.conv"))
            }
        }
        let normed = b.silu(try normOut.exportONNX(h, to: b, scope: s("norm_out")), name: s("silu_out"))
        return try exportONNXLayer(convOut, input: normed, to: b, scope: s("conv_out"))
    }
}

extension TextModel: ONNXExportableModel {
    /// The next-character network (the averaged copy under `--ema`). GRU and transformer:
    /// input `tokens` int64 `[N, L]` (token indices; `L ≤ blockSize` for the transformer), output
    /// `logits` float32 `[N, L, V]` where position `i` scores the token after `tokens[:, i]`.
    /// MLP: input `context` int64 `[N, k]` (the k previous tokens, oldest first; V stands for
    /// "before the start"), output `logits` float32 `[N, V]`. The vocabulary is in the metadata.
    public func exportONNX(sampleShape: [Int]) throws -> ONNXNetworkExport {
        let b = ONNXGraphBuilder()
        let v = vocabulary.count
        let net = samplingNetwork
        let out: String
        let outShape: [ONNXDimension]
        switch net {
        case let mlp as CharMLP:
            let context = b.addInput(ONNXValueInfo(name: "context", elementType: .int64, shape: [.symbol("N"), .value(mlp.k)],
                                                   doc: "the \(mlp.k) tokens before the predicted one, oldest first; \(v) stands for a position before the start of the text"))
            let e = try mlp.wte.exportONNX(context, to: b, scope: "wte")
            out = try mlp.mlp.exportONNX(b.reshape(e, [0, mlp.k * mlp.wte.weight.shape[1]], name: "concat_embeddings"), to: b, scope: "mlp")
            outShape = [.symbol("N"), .value(v)]
        case let gru as CharGRU:
            let tokens = b.addInput(ONNXValueInfo(name: "tokens", elementType: .int64, shape: [.symbol("N"), .symbol("L")], doc: "token indices 0..<\(v)"))
            let e = try gru.wte.exportONNX(tokens, to: b, scope: "wte")
            out = try gru.head.exportONNX(try gru.rnn.exportONNX(e, to: b, scope: "rnn"), to: b, scope: "lm_head")
            outShape = [.symbol("N"), .symbol("L"), .value(v)]
        case let gpt as CharTransformer:
            let tokens = b.addInput(ONNXValueInfo(name: "tokens", elementType: .int64, shape: [.symbol("N"), .symbol("L")],
                                                  doc: "token indices 0..<\(v), L ≤ \(gpt.blockSize) positions"))
            out = try gpt.exportONNX(tokens, to: b)
            outShape = [.symbol("N"), .symbol("L"), .value(v)]
        default:
            throw ONNXExportError(layer: "\(type(of: net))", problem: "no ONNX form for this text network")
        }
        let meaning = net is CharMLP
            ? "logits: unnormalised log-probabilities [N, V] of the next token after the context (softmax gives the distribution)"
            : "logits: unnormalised log-probabilities [N, L, V]; position i scores the token after tokens[:, i] given tokens[:, 0...i]"
        b.addOutput(out, as: ONNXValueInfo(name: "logits", elementType: .float, shape: outShape, doc: meaning))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let vocabJSON = String(decoding: (try? encoder.encode(vocabulary)) ?? Data(), as: UTF8.self)
        let tokens = (0..<v).map { vocabulary.token(Int32($0)) }
        let tokensJSON = String(decoding: (try? encoder.encode(tokens)) ?? Data(), as: UTF8.self)
        var metadata: [(key: String, value: String)] = [("conjure.vocabulary", vocabJSON), ("conjure.tokens", tokensJSON),
                                                        ("conjure.text_mode", textMode.rawValue), ("conjure.architecture", config.architecture.rawValue)]
        if let eos = vocabulary.endOfSample { metadata.append(("conjure.end_of_sample", String(eos))) }
        if let mlp = net as? CharMLP { metadata.append(("conjure.context", String(mlp.k))) }
        if let gpt = net as? CharTransformer { metadata.append(("conjure.block_size", String(gpt.blockSize))) }
        return ONNXNetworkExport(graph: b.graph(name: "next_token", doc: "character model: next-token logits"), network: "next-token",
                                 weights: parameterGroups[0].averages == nil ? "live" : "ema", outputMeaning: meaning, metadata: metadata)
    }

    /// Next-token logits as sampling computes them (evaluation mode, averaged weights under
    /// `--ema`): the reference an ONNX export is checked against.
    ///
    /// - Parameters: `tokens` `batch × length` indices, row-major. For the GRU and transformer
    ///   they are token rows and the result is `[batch, length, V]` (every position); for the
    ///   MLP each row is one context window (`length` = the context size, `V` meaning "before
    ///   the start") and the result is `[batch, V]`.
    public func evaluationLogits(tokens: [Int], batch: Int, length: Int) -> Tensor {
        let net = samplingNetwork
        var noise = RandomGenerator(seed: 0)
        return evaluating(net) {
            if let mlp = net as? CharMLP {
                precondition(length == mlp.k && tokens.count == batch * length, "TextModel.evaluationLogits: \(tokens.count) tokens as \(batch) contexts of \(mlp.k)")
                return mlp.mlp(mlp.wte.lookup(tokens).reshaped([batch, mlp.k * mlp.wte.weight.shape[1]]))
            }
            let logits = net.logits(tokens: tokens, batch: batch, length: length, positions: Array(0..<(batch * length)), noise: &noise)
            return logits.reshaped([batch, length, logits.shape[1]])
        }
    }
}

extension CharTransformer {
    /// nanoGPT's forward in evaluation mode on `tokens` int64 `[N, L]`: token embeddings plus the
    /// first L rows of `wpe`, the blocks, `ln_f`, and the head tied to `wte` (one initializer used
    /// by the `Gather` and the final `MatMul`) → `[N, L, V]`.
    ///
    /// - Throws: ``ONNXExportError`` from a layer.
    func exportONNX(_ tokens: String, to b: ONNXGraphBuilder) throws -> String {
        let wte = b.constant(body.wte.weight.value, name: "transformer.wte.weight")
        let tok = b.op("Gather", [wte, tokens], [ONNXAttribute("axis", .int(0))], name: "transformer.wte.gather")
        let length = b.op("Slice", [b.op("Shape", [tokens], name: "tokens_shape"), b.ints([1], name: "length_start"), b.ints([2], name: "length_end")], name: "length")
        let pos = b.op("Slice", [b.constant(body.wpe.weight.value, name: "transformer.wpe.weight"), b.ints([0], name: "position_start"), length, b.ints([0], name: "position_axis")],
                       name: "transformer.wpe.slice")
        var x = b.op("Add", [tok, pos], name: "embeddings")
        for (i, block) in body.h.blocks.enumerated() {
            let s = "transformer.h.\(i)"
            x = b.op("Add", [x, try block.attn.exportONNX(try block.ln1.exportONNX(x, to: b, scope: s + ".ln_1"), to: b, scope: s + ".attn")], name: s + ".attn_residual")
            let fc = try block.mlp.fc.exportONNX(try block.ln2.exportONNX(x, to: b, scope: s + ".ln_2"), to: b, scope: s + ".mlp.c_fc")
            let proj = try block.mlp.proj.exportONNX(try exportGELU(fc, approximation: .none, graph: b, scope: s + ".mlp.gelu"), to: b, scope: s + ".mlp.c_proj")
            x = b.op("Add", [x, proj], name: s + ".mlp_residual")
        }
        let normed = try body.lnF.exportONNX(x, to: b, scope: "transformer.ln_f")
        return b.op("MatMul", [normed, b.transpose(wte, [1, 0], name: "lm_head.weight_t")], name: "lm_head")
    }
}
