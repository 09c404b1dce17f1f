import Foundation

// Longer than 400 lines on purpose: the convolution-family layers (Conv2d, ConvTranspose2d, BatchNorm2d, spectral norm) share initialisation and the SpectralNormalizable seam.

// MARK: - Initialisation shared by the convolution layers

/// Draws a weight of `shape` and an optional bias of `biasCount` as `initializer` says, weight
/// first (the order `Linear` uses), with PyTorch's fan-in / fan-out for the layer.
func convInitialParameters(weightShape: [Int], fanIn: Int, fanOut: Int, biasCount: Int, bias: Bool,
                       initializer: Initializer, rng: inout RandomGenerator) -> (Parameter, Parameter?) {
    switch initializer {
    case .pytorchDefault:
        // kaiming_uniform(a = sqrt(5)): bound = gain * sqrt(3 / fanIn) = 1 / sqrt(fanIn); bias likewise.
        let bound = 1 / Float(fanIn).squareRoot()
        let w = Parameter(.randomUniform(weightShape, low: -bound, high: bound, using: &rng))
        return (w, bias ? Parameter(.randomUniform([biasCount], low: -bound, high: bound, using: &rng)) : nil)
    case .normal(let std):
        return (Parameter(.randomNormal(weightShape, std: std, using: &rng)), bias ? Parameter(.zeros([biasCount])) : nil)
    case .xavierUniform:
        let a = (6 / Float(fanIn + fanOut)).squareRoot()
        return (Parameter(.randomUniform(weightShape, low: -a, high: a, using: &rng)), bias ? Parameter(.zeros([biasCount])) : nil)
    case .kaimingNormal:
        return (Parameter(.randomNormal(weightShape, std: (2 / Float(fanIn)).squareRoot(), using: &rng)),
                bias ? Parameter(.zeros([biasCount])) : nil)
    }
}

// MARK: - Convolutions

/// 2-D convolution (cross-correlation) layer (PyTorch's `nn.Conv2d`, dilation 1, groups 1).
///
/// - Shapes: input `[N, inChannels, H, W]`, output `[N, outChannels, Ho, Wo]` with
///   `Ho = (H + 2 padding - kernelSize) / stride + 1`; `weight`
///   `[outChannels, inChannels, kernelSize, kernelSize]`, `bias` `[outChannels]`.
/// - Initialisation: PyTorch's default, `U(-1/sqrt(fanIn), 1/sqrt(fanIn))` for weight and bias
///   with `fanIn = inChannels * kernelSize²` (kaiming_uniform with a = sqrt(5)).
public final class Conv2d: WeightBiasLayer {
    /// The kernel `[outChannels, inChannels, kernelSize, kernelSize]` (`state_dict` name `weight`).
    public let weight: Parameter
    /// The per-output-channel bias `[outChannels]`, or `nil` when built with `bias: false`.
    public let bias: Parameter?
    /// Step between kernel positions, in pixels, along both spatial axes (default 1).
    public let stride: Int
    /// Zero padding added on each side of both spatial axes, in pixels (default 0).
    public let padding: Int
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true

    /// A square `kernelSize × kernelSize` convolution from `inChannels` to `outChannels` channels.
    /// Parameters are drawn from `rng` as `initializer` says (weight first, then bias).
    /// Precondition: every size positive, `padding ≥ 0`.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, initializer: Initializer = .pytorchDefault, rng: inout RandomGenerator) {
        precondition(inChannels > 0 && outChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0,
                     "Conv2d: invalid sizes \(inChannels) -> \(outChannels), kernel \(kernelSize), stride \(stride), padding \(padding)")
        let rf = kernelSize * kernelSize
        (weight, self.bias) = convInitialParameters(
            weightShape: [outChannels, inChannels, kernelSize, kernelSize], fanIn: inChannels * rf,
            fanOut: outChannels * rf, biasCount: outChannels, bias: bias, initializer: initializer, rng: &rng)
        self.stride = stride
        self.padding = padding
    }

    /// The convolution of `x` `[N, inChannels, H, W]`: `[N, outChannels, Ho, Wo]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applying(x, weight: weight.value) }

    /// The convolution with `weight` in place of the layer's own (used by ``SpectralNorm``).
    public func applying(_ x: Tensor, weight: Tensor) -> Tensor {
        Tensor.conv2d(x, weight: weight, bias: bias?.value, stride: stride, padding: padding)
    }

}

/// 2-D transposed convolution layer (PyTorch's `nn.ConvTranspose2d`, dilation 1, groups 1).
///
/// - Shapes: input `[N, inChannels, H, W]`, output `[N, outChannels, Ho, Wo]` with
///   `Ho = (H - 1) stride - 2 padding + kernelSize + outputPadding`; `weight`
///   `[inChannels, outChannels, kernelSize, kernelSize]` (PyTorch's layout), `bias` `[outChannels]`.
/// - Initialisation: PyTorch's default, `U(-1/sqrt(fanIn), 1/sqrt(fanIn))` for weight and bias
///   where PyTorch computes `fanIn` from `weight.size(1)`: `fanIn = outChannels * kernelSize²`.
public final class ConvTranspose2d: WeightBiasLayer {
    /// The kernel `[inChannels, outChannels, kernelSize, kernelSize]` (PyTorch's transposed layout).
    public let weight: Parameter
    /// The per-output-channel bias `[outChannels]`, or `nil` when built with `bias: false`.
    public let bias: Parameter?
    /// Upsampling factor: the step, in output pixels, between the kernel's placements (default 1).
    public let stride: Int
    /// Pixels removed from each side of both output spatial axes (PyTorch's `padding`, default 0).
    public let padding: Int
    /// Extra pixels added to one side (bottom/right) of the output, in `0..<stride` (default 0).
    public let outputPadding: Int
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true

    /// A square `kernelSize × kernelSize` transposed convolution from `inChannels` to `outChannels`
    /// channels. Parameters are drawn from `rng` as `initializer` says (weight first, then bias).
    /// Precondition: every size positive, `padding ≥ 0`, `0 ≤ outputPadding < stride`.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, bias: Bool = true, initializer: Initializer = .pytorchDefault,
                rng: inout RandomGenerator) {
        precondition(inChannels > 0 && outChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0
                     && outputPadding >= 0 && outputPadding < stride,
                     "ConvTranspose2d: invalid sizes \(inChannels) -> \(outChannels), kernel \(kernelSize), stride \(stride), padding \(padding), outputPadding \(outputPadding)")
        let rf = kernelSize * kernelSize
        (weight, self.bias) = convInitialParameters(
            weightShape: [inChannels, outChannels, kernelSize, kernelSize], fanIn: outChannels * rf,
            fanOut: inChannels * rf, biasCount: outChannels, bias: bias, initializer: initializer, rng: &rng)
        self.stride = stride
        self.padding = padding
        self.outputPadding = outputPadding
    }

    /// The transposed convolution of `x` `[N, inChannels, H, W]`: `[N, outChannels, Ho, Wo]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { applying(x, weight: weight.value) }

    /// The transposed convolution with `weight` in place of the layer's own.
    public func applying(_ x: Tensor, weight: Tensor) -> Tensor {
        Tensor.convTranspose2d(x, weight: weight, bias: bias?.value, stride: stride, padding: padding,
                               outputPadding: outputPadding)
    }

}

// MARK: - Batch normalisation over channels

/// Batch normalisation per channel over the batch and spatial axes (Ioffe & Szegedy 2015;
/// PyTorch's `nn.BatchNorm2d`).
///
/// Training mode normalises with the batch mean and biased variance over `N·H·W` and updates
/// the running statistics with `momentum` (the running variance from the unbiased estimate,
/// factor `M/(M-1)`, `M = N·H·W`); evaluation mode uses the running statistics.
///
/// - Shapes: input and output `[N, C, H, W]`; `weight`, `bias`, `running_mean`, `running_var`
///   `[C]`; `num_batches_tracked` a scalar.
public final class BatchNorm2d: BatchNormBase, Layer {
    /// Batch normalisation of `channels` channels: `weight` ones, `bias` zeros, running mean 0 and
    /// variance 1. `eps` is added to the variance; `momentum` is the running-statistics update factor.
    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        super.init(features: channels, eps: eps, momentum: momentum, layer: "BatchNorm2d")
    }

    /// Normalises `x` `[N, C, H, W]` per channel (batch statistics in training, running ones in
    /// evaluation); output `[N, C, H, W]`. Training needs `N·H·W > 1`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let c = weight.shape[0]
        precondition(x.rank == 4 && x.shape[1] == c, "BatchNorm2d: input \(x.shape) ([N, C, H, W]) for \(c) channels")
        if !isTraining {
            let invStd = Tensor(shape: [c], scalars: runningVar.value.scalars.map { 1 / ($0 + eps).squareRoot() })
            let scale = weight.value * invStd
            return Tensor.channelAffine(x, scale: scale, shift: bias.value - runningMean.value * scale)
        }
        let m = x.shape[0] * x.shape[2] * x.shape[3]
        precondition(m > 1, "BatchNorm2d: training mode needs more than one value per channel, got input \(x.shape)")
        let (y, mean, variance) = Tensor.batchNorm2dTraining(x, weight: weight.value, bias: bias.value, eps: eps)
        foldRunningStatistics(mean: mean, variance: variance, count: m)
        return y
    }
}

// MARK: - Spectral normalisation

/// A layer whose `weight` can be spectrally normalised: it can run with a replacement weight.
public protocol SpectralNormalizable: Layer {
    /// The weight to normalise (`weight_orig` once wrapped by ``SpectralNorm``).
    var weight: Parameter { get }
    /// The layer's bias, if any; it is not normalised.
    var bias: Parameter? { get }
    /// The axis of `weight` that becomes the rows of the matrix whose largest singular value is
    /// normalised (PyTorch: 0, except 1 for transposed convolutions).
    var spectralNormAxis: Int { get }
    /// The layer's map with `weight` in place of its own.
    func applying(_ x: Tensor, weight: Tensor) -> Tensor
}

extension Linear: SpectralNormalizable {
    /// 0: `weight` `[out, in]` already has the output features as rows.
    public var spectralNormAxis: Int { 0 }
    /// `x Wᵀ + b` with `weight` in place of the layer's own: `[N, in]` → `[N, out]`.
    public func applying(_ x: Tensor, weight: Tensor) -> Tensor { Tensor.linear(x, weight: weight, bias: bias?.value) }
}
extension Conv2d: SpectralNormalizable {
    /// 0: the output channels of `weight` `[out, in, k, k]`.
    public var spectralNormAxis: Int { 0 }
}
extension ConvTranspose2d: SpectralNormalizable {
    /// 1: the output channels of `weight` `[in, out, k, k]` (as PyTorch's `spectral_norm` does).
    public var spectralNormAxis: Int { 1 }
}

/// Spectral normalisation of a layer's weight (Miyato et al. 2018), exactly as
/// `torch.nn.utils.spectral_norm`: the layer runs with `W / σ(W)` where σ is estimated by one
/// power iteration per training forward on `W_mat` (the weight with ``SpectralNormalizable/spectralNormAxis``
/// first, reshaped to `[rows, -1]`):
/// `v ← normalize(W_matᵀ u)`, `u ← normalize(W_mat v)`, `σ = uᵀ W_mat v`, with u and v constants
/// in the backward (the gradient still flows through σ's dependence on W). Evaluation mode uses
/// the stored u and v without iterating.
///
/// - State dict (PyTorch's names and order): `bias` (if any), `weight_orig`, then buffers
///   `weight_u` `[rows]`, `weight_v` `[cols]`.
/// - Shapes: those of the wrapped layer.
public final class SpectralNorm<Wrapped: SpectralNormalizable>: Layer {
    /// The wrapped layer; its `weight` holds `weight_orig` and its bias is used unchanged.
    public let layer: Wrapped
    /// The unnormalised weight (`weight_orig`); the same parameter as `layer.weight`.
    public var weightOrig: Parameter { layer.weight }
    /// The left singular vector estimate `[rows]` (`weight_u`), updated by each training forward.
    public let u: Buffer
    /// The right singular vector estimate `[cols]` (`weight_v`), updated by each training forward.
    public let v: Buffer
    /// Power iterations per training forward (default 1, as PyTorch).
    public let powerIterations: Int
    /// Lower bound of the norm when normalising u and v (default 1e-12, as PyTorch).
    public let eps: Float
    /// σ from the last forward (no history).
    public private(set) var lastSigma: Float = .nan
    /// Training (power iteration each forward) or evaluation (stored u, v); passed on to `layer`.
    public var isTraining = true {
        didSet { layer.isTraining = isTraining }
    }

    /// Wraps `layer`; u and v start as normalised N(0, 1) draws from `rng` (u first, as PyTorch).
    public init(_ layer: Wrapped, powerIterations: Int = 1, eps: Float = 1e-12, rng: inout RandomGenerator) {
        precondition(powerIterations >= 1, "SpectralNorm: powerIterations must be ≥ 1, got \(powerIterations)")
        self.layer = layer
        self.powerIterations = powerIterations
        self.eps = eps
        let (rows, cols) = SpectralNorm.matrixSize(layer.weight.shape, axis: layer.spectralNormAxis)
        u = Buffer(Tensor(shape: [rows], scalars: SpectralNorm.normalized(Tensor.randomNormal([rows], using: &rng).scalars.map(Double.init), eps: eps).map(Float.init)))
        v = Buffer(Tensor(shape: [cols], scalars: SpectralNorm.normalized(Tensor.randomNormal([cols], using: &rng).scalars.map(Double.init), eps: eps).map(Float.init)))
    }

    static func matrixSize(_ shape: [Int], axis: Int) -> (Int, Int) {
        let rows = shape[axis]
        return (rows, shape.reduce(1, *) / Swift.max(rows, 1))
    }

    static func normalized(_ x: [Double], eps: Float) -> [Double] {
        let norm = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
        let d = Swift.max(norm, Double(eps))
        return x.map { $0 / d }
    }

    /// The weight as the row-major `[rows, cols]` matrix (axis `spectralNormAxis` first).
    static func matrix(_ w: Tensor, axis: Int) -> [Float] {
        if axis == 0 { return w.scalars }
        var perm = [axis]
        perm += (0..<w.rank).filter { $0 != axis }
        return w.detached().permuted(perm).scalars
    }

    /// `[rows, cols]` matrix in weight layout (the inverse of ``matrix(_:axis:)``).
    static func toWeightLayout(_ m: [Float], shape: [Int], axis: Int) -> Tensor {
        if axis == 0 { return Tensor(shape: shape, scalars: m) }
        var perm = [axis]
        perm += (0..<shape.count).filter { $0 != axis }
        var inverse = [Int](repeating: 0, count: perm.count)
        for (i, a) in perm.enumerated() { inverse[a] = i }
        return Tensor(shape: perm.map { shape[$0] }, scalars: m).permuted(inverse).detached()
    }

    /// Runs the power iteration (in training mode) and returns `W / σ` with history to `weight_orig`.
    public func normalizedWeight() -> Tensor {
        let w = layer.weight.value
        let axis = layer.spectralNormAxis
        let (rows, cols) = SpectralNorm.matrixSize(w.shape, axis: axis)
        let mat = SpectralNorm.matrix(w, axis: axis)
        var uu = u.value.scalars.map(Double.init), vv = v.value.scalars.map(Double.init)
        if isTraining {
            for _ in 0..<powerIterations {
                var wtu = [Double](repeating: 0, count: cols)
                for i in 0..<rows { let ui = uu[i]; for j in 0..<cols { wtu[j] += Double(mat[i * cols + j]) * ui } }
                vv = SpectralNorm.normalized(wtu, eps: eps)
                var wv = [Double](repeating: 0, count: rows)
                // Each row's dot product in column order; four rows at a time (four chains of
                // additions in flight, the same sums).
                mat.withUnsafeBufferPointer { m in
                    vv.withUnsafeBufferPointer { v in
                        var i = 0
                        while i + 4 <= rows {
                            let r0 = m.baseAddress! + i * cols, r1 = r0 + cols, r2 = r1 + cols, r3 = r2 + cols
                            var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
                            for j in 0..<cols {
                                let vj = v[j]
                                s0 += Double(r0[j]) * vj; s1 += Double(r1[j]) * vj; s2 += Double(r2[j]) * vj; s3 += Double(r3[j]) * vj
                            }
                            wv[i] = s0; wv[i + 1] = s1; wv[i + 2] = s2; wv[i + 3] = s3
                            i += 4
                        }
                        while i < rows {
                            var s = 0.0
                            for j in 0..<cols { s += Double(m[i * cols + j]) * v[j] }
                            wv[i] = s
                            i += 1
                        }
                    }
                }
                uu = SpectralNorm.normalized(wv, eps: eps)
            }
            u.value = Tensor(shape: [rows], scalars: uu.map(Float.init))
            v.value = Tensor(shape: [cols], scalars: vv.map(Float.init))
        }
        // σ = uᵀ W_mat v = <W, u vᵀ> with u vᵀ laid out like W: differentiable in W, u and v constant.
        var outer = [Float](repeating: 0, count: rows * cols)
        let uf = u.value.scalars, vf = v.value.scalars
        for i in 0..<rows { for j in 0..<cols { outer[i * cols + j] = uf[i] * vf[j] } }
        let uvT = SpectralNorm.toWeightLayout(outer, shape: w.shape, axis: axis)
        let sigma = (w * uvT).sum()
        lastSigma = sigma.item
        return w / sigma
    }

    /// The wrapped layer applied with `W / σ(W)` (see ``normalizedWeight()``); shapes of the layer.
    public func callAsFunction(_ x: Tensor) -> Tensor { layer.applying(x, weight: normalizedWeight()) }

    /// `bias` (if any), then `weight_orig` (PyTorch's order after `spectral_norm`).
    public var namedParameters: [(String, Parameter)] {
        (layer.bias.map { [("bias", $0)] } ?? []) + [("weight_orig", layer.weight)]
    }
    /// `weight_u`, then `weight_v`.
    public var namedBuffers: [(String, Buffer)] { [("weight_u", u), ("weight_v", v)] }
}

// MARK: - Shape layers

/// Flattens every axis after the first: `[N, d1, d2, ...]` → `[N, d1·d2·...]` (PyTorch's `nn.Flatten`).
public final class Flatten: Layer {
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true
    /// A flatten layer (no parameters).
    public init() {}
    /// `x` `[N, d1, d2, ...]` reshaped to `[N, d1·d2·...]`. Precondition: rank ≥ 1.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 1, "Flatten: input \(x.shape) has no batch axis")
        return x.reshaped([x.shape[0], x.count / Swift.max(x.shape[0], 1)])
    }
}

/// Reshapes each sample: `[N, ...]` → `[N] + shape` (one extent of `shape` may be -1), e.g.
/// `[N, 128·7·7]` → `[N, 128, 7, 7]` in a DCGAN generator (PyTorch's `nn.Unflatten(1, shape)`).
public final class Reshape: Layer {
    /// The shape of each sample after the layer, without the batch axis (one extent may be -1).
    public let shape: [Int]
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true
    /// A layer reshaping each sample to `shape` (without the batch axis).
    public init(_ shape: [Int]) { self.shape = shape }
    /// `x` `[N, ...]` reshaped to `[N] + shape`; the element count per sample must match.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 1, "Reshape: input \(x.shape) has no batch axis")
        return x.reshaped([x.shape[0]] + shape)
    }
}

// MARK: - Dropout, LayerNorm, Embedding

/// Inverted dropout (Srivastava et al. 2014; PyTorch's `nn.Dropout`): in training each element
/// is zeroed with probability `p` and the survivors scaled by `1/(1-p)`; identity in evaluation.
///
/// The layer owns a generator derived from `rng` at construction, so its masks are reproducible.
/// - Shapes: any; output like input.
public final class Dropout: Layer {
    /// Probability of zeroing each element in training, in `[0, 1)` (default 0.5).
    public let p: Float
    /// The layer's own generator for masks, seeded from the `rng` given at construction.
    public var rng: RandomGenerator
    /// Training (masks drawn) or evaluation (identity).
    public var isTraining = true

    /// Dropout with probability `p` in `[0, 1)`; takes one draw from `rng` to seed its own generator.
    public init(_ p: Float = 0.5, rng: inout RandomGenerator) {
        precondition(p >= 0 && p < 1, "Dropout: probability \(p) outside [0, 1)")
        self.p = p
        self.rng = RandomGenerator(seed: rng.next())
    }

    /// In training, `x · mask / (1 - p)` with a fresh Bernoulli(1 - p) mask; otherwise `x`. Any
    /// shape; output like `x`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        if !isTraining || p == 0 { return x }
        let keep = 1 - p, scale = 1 / keep
        var mask = [Float](repeating: 0, count: x.count)
        for i in 0..<mask.count { mask[i] = rng.nextUniform() < keep ? scale : 0 }
        return x * Tensor(shape: x.shape, scalars: mask)
    }
}

/// Layer normalisation over the trailing `normalizedShape` axes (Ba et al. 2016; PyTorch's
/// `nn.LayerNorm`): `y = (x - mean) / sqrt(var + eps) * weight + bias` with the biased variance
/// of each sample's trailing block.
///
/// - Shapes: input `[..., normalizedShape...]`, output the same; `weight`, `bias` `normalizedShape`.
public final class LayerNorm: Layer {
    /// The trailing shape normalised over, e.g. `[D]` for `[N, D]` inputs.
    public let normalizedShape: [Int]
    /// The elementwise scale, shape `normalizedShape`, starting at ones; `nil` without affine.
    public let weight: Parameter?
    /// The elementwise shift, shape `normalizedShape`, starting at zeros; `nil` without affine.
    public let bias: Parameter?
    /// Added to the variance before the square root (default 1e-5, as PyTorch).
    public let eps: Float
    /// Unused (no mode-dependent behaviour: statistics are always the sample's own).
    public var isTraining = true

    /// Layer normalisation over trailing axes `normalizedShape`, with a learned `weight` and `bias`
    /// when `elementwiseAffine` (default). Precondition: `normalizedShape` non-empty, positive.
    public init(_ normalizedShape: [Int], eps: Float = 1e-5, elementwiseAffine: Bool = true) {
        precondition(!normalizedShape.isEmpty && normalizedShape.allSatisfy { $0 > 0 },
                     "LayerNorm: invalid normalizedShape \(normalizedShape)")
        self.normalizedShape = normalizedShape
        self.eps = eps
        weight = elementwiseAffine ? Parameter(.ones(normalizedShape)) : nil
        bias = elementwiseAffine ? Parameter(.zeros(normalizedShape)) : nil
    }

    /// Normalises each trailing block of `x` `[..., normalizedShape...]`; output the same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let k = normalizedShape.count
        precondition(x.rank > k && Array(x.shape.suffix(k)) == normalizedShape,
                     "LayerNorm: input \(x.shape) does not end in normalizedShape \(normalizedShape)")
        return Tensor.layerNorm(x, featureCount: normalizedShape.reduce(1, *), weight: weight?.value, bias: bias?.value, eps: eps)
    }

    /// `weight`, then `bias` (none without affine).
    public var namedParameters: [(String, Parameter)] {
        if let weight, let bias { return [("weight", weight), ("bias", bias)] }
        return []
    }
}

/// A lookup table of learned vectors (PyTorch's `nn.Embedding`), e.g. class embeddings of a
/// conditional GAN. Weights start as N(0, 1), as in PyTorch.
///
/// - Shapes: input any shape of integer indices stored as Float32 (each in `0..<count`),
///   output `input.shape + [dimension]`; `weight` `[count, dimension]`.
public final class Embedding: Layer {
    /// The table `[count, dimension]`: row `i` is the vector of index `i`.
    public let weight: Parameter
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true

    /// A table of `count` vectors of `dimension` elements drawn from N(0, 1) with `rng`.
    public init(_ count: Int, _ dimension: Int, rng: inout RandomGenerator) {
        precondition(count > 0 && dimension > 0, "Embedding: sizes must be positive, got \(count) x \(dimension)")
        weight = Parameter(.randomNormal([count, dimension], using: &rng))
    }

    /// The vectors of the indices in `x` (integers in `0..<count` stored as Float32): output
    /// `x.shape + [dimension]`. Precondition: every index is an integer in range.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let count = weight.shape[0]
        let indices = x.scalars.map { v -> Int in
            let i = Int(v)
            precondition(Float(i) == v && i >= 0 && i < count, "Embedding: index \(v) is not an integer in 0..<\(count) (input \(x.shape))")
            return i
        }
        return lookup(indices).reshaped(x.shape + [weight.shape[1]])
    }

    /// The rows at `indices`: `[indices.count, dimension]`.
    public func lookup(_ indices: [Int]) -> Tensor { weight.value.gathered(rows: indices) }

    /// `weight`.
    public var namedParameters: [(String, Parameter)] { [("weight", weight)] }
}
