// Layers of diffusion U-Nets (GroupNorm, SiLU, nearest upsampling), transformers (GELU) and
// audio models (Conv1d, ConvTranspose1d), over the ConjureTensor primitives.

/// Group normalisation (Wu & He 2018; PyTorch's `nn.GroupNorm`) with per-channel affine
/// `weight` (ones) and `bias` (zeros); see `Tensor.groupNorm`. The same in training and
/// evaluation (no running statistics).
///
/// - Shapes: input and output `[N, numChannels, ...]`; `weight`, `bias` `[numChannels]`.
public final class GroupNorm: Layer {
    /// Number of channel groups normalised together; divides `numChannels`.
    public let numGroups: Int
    /// Number of channels `C` of the input `[N, C, ...]`.
    public let numChannels: Int
    /// Added to each group's variance before the square root (default 1e-5, as PyTorch).
    public let eps: Float
    /// The per-channel scale `[numChannels]`, starting at ones; `nil` without affine.
    public let weight: Parameter?
    /// The per-channel shift `[numChannels]`, starting at zeros; `nil` without affine.
    public let bias: Parameter?
    /// Unused (the same in training and evaluation).
    public var isTraining = true

    /// - Precondition: `numGroups` divides `numChannels`, both positive.
    public init(numGroups: Int, numChannels: Int, eps: Float = 1e-5, affine: Bool = true) {
        precondition(numGroups > 0 && numChannels > 0 && numChannels % numGroups == 0,
                     "GroupNorm: \(numChannels) channels cannot be split into \(numGroups) groups")
        self.numGroups = numGroups
        self.numChannels = numChannels
        self.eps = eps
        weight = affine ? Parameter(.ones([numChannels])) : nil
        bias = affine ? Parameter(.zeros([numChannels])) : nil
    }

    /// Normalises each group of `numChannels / numGroups` channels of each sample over its channels
    /// and spatial positions, then applies the affine map: `[N, numChannels, ...]` → same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 2 && x.shape[1] == numChannels, "GroupNorm: input \(x.shape) ([N, C, ...]) for \(numChannels) channels")
        return Tensor.groupNorm(x, groups: numGroups, weight: weight?.value, bias: bias?.value, eps: eps)
    }

    /// `silu(groupNorm(x))`, in one pass over the data when no gradient is recorded (the
    /// pre-activation of the U-Net's convolutions; ``Tensor/groupNorm(_:groups:weight:bias:eps:silu:)``).
    public func silu(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 2 && x.shape[1] == numChannels, "GroupNorm: input \(x.shape) ([N, C, ...]) for \(numChannels) channels")
        return Tensor.groupNorm(x, groups: numGroups, weight: weight?.value, bias: bias?.value, eps: eps, silu: true)
    }

    /// `weight`, then `bias` (none without affine).
    public var namedParameters: [(String, Parameter)] {
        if let weight, let bias { return [("weight", weight), ("bias", bias)] }
        return []
    }
}

/// SiLU / swish `x · sigmoid(x)` as a layer (PyTorch's `nn.SiLU`); see `Tensor.silu()`.
///
/// - Shapes: any; output like input.
public final class SiLU: Layer {
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true
    /// A SiLU layer (no parameters).
    public init() {}
    /// `x · sigmoid(x)` elementwise; output like `x`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.silu() }
}

/// GELU as a layer (PyTorch's `nn.GELU(approximate=...)`); see `Tensor.gelu(approximation:)`.
///
/// - Shapes: any; output like input.
public final class GELU: Layer {
    /// Exact (`.none`, with erf) or the tanh approximation (PyTorch's `approximate="tanh"`).
    public let approximation: GELUApproximation
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true
    /// A GELU layer; `approximation` defaults to the exact form, as PyTorch.
    public init(approximation: GELUApproximation = .none) { self.approximation = approximation }
    /// GELU of `x` elementwise; output like `x`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.gelu(approximation: approximation) }
}

/// Nearest-neighbour upsampling by an integer factor (PyTorch's
/// `nn.Upsample(scale_factor=scale, mode="nearest")`), the U-Net decoder's resize.
///
/// - Shapes: `[N, C, H, W]` → `[N, C, scale·H, scale·W]`.
public final class UpsampleNearest2d: Layer {
    /// The integer factor applied to height and width (default 2).
    public let scale: Int
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true
    /// Upsampling by `scale` ≥ 1 along both spatial axes.
    public init(scale: Int = 2) {
        precondition(scale >= 1, "UpsampleNearest2d: scale \(scale) must be ≥ 1")
        self.scale = scale
    }
    /// Each pixel of `x` `[N, C, H, W]` repeated in a `scale × scale` block: `[N, C, scale·H, scale·W]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { x.upsampleNearest2d(scale: scale) }
}

/// 1-D convolution layer (PyTorch's `nn.Conv1d`, dilation 1, groups 1); see `Tensor.conv1d`.
///
/// - Shapes: input `[N, inChannels, L]`, output `[N, outChannels, Lo]` with
///   `Lo = (L + 2 padding - kernelSize) / stride + 1`; `weight` `[outChannels, inChannels,
///   kernelSize]`, `bias` `[outChannels]`.
/// - Initialisation: PyTorch's default `U(-1/sqrt(fanIn), 1/sqrt(fanIn))`, `fanIn = inChannels ·
///   kernelSize`, or as `initializer` says.
public final class Conv1d: WeightBiasLayer {
    /// The kernel `[outChannels, inChannels, kernelSize]` (`state_dict` name `weight`).
    public let weight: Parameter
    /// The per-output-channel bias `[outChannels]`, or `nil` when built with `bias: false`.
    public let bias: Parameter?
    /// Step between kernel positions, in samples (default 1).
    public let stride: Int
    /// Zeros added at each end of the length axis, in samples (default 0).
    public let padding: Int
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true

    /// A convolution of width `kernelSize` from `inChannels` to `outChannels` channels, parameters
    /// drawn from `rng` as `initializer` says. Precondition: sizes positive, `padding ≥ 0`.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, initializer: Initializer = .pytorchDefault, rng: inout RandomGenerator) {
        precondition(inChannels > 0 && outChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0,
                     "Conv1d: invalid sizes \(inChannels) -> \(outChannels), kernel \(kernelSize), stride \(stride), padding \(padding)")
        (weight, self.bias) = convInitialParameters(
            weightShape: [outChannels, inChannels, kernelSize], fanIn: inChannels * kernelSize,
            fanOut: outChannels * kernelSize, biasCount: outChannels, bias: bias, initializer: initializer, rng: &rng)
        self.stride = stride
        self.padding = padding
    }

    /// The convolution of `x` `[N, inChannels, L]`: `[N, outChannels, Lo]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.conv1d(x, weight: weight.value, bias: bias?.value, stride: stride, padding: padding)
    }

}

/// 1-D transposed convolution layer (PyTorch's `nn.ConvTranspose1d`, dilation 1, groups 1);
/// see `Tensor.convTranspose1d`. WaveGAN: kernel 25, stride 4, padding 11, output padding 1.
///
/// - Shapes: input `[N, inChannels, L]`, output `[N, outChannels, Lo]` with
///   `Lo = (L - 1) stride - 2 padding + kernelSize + outputPadding`; `weight` `[inChannels,
///   outChannels, kernelSize]` (PyTorch's layout), `bias` `[outChannels]`.
/// - Initialisation: PyTorch's default `U(-1/sqrt(fanIn), 1/sqrt(fanIn))` with PyTorch's
///   `fanIn = outChannels · kernelSize` (from `weight.size(1)`), or as `initializer` says.
public final class ConvTranspose1d: WeightBiasLayer {
    /// The kernel `[inChannels, outChannels, kernelSize]` (PyTorch's transposed layout).
    public let weight: Parameter
    /// The per-output-channel bias `[outChannels]`, or `nil` when built with `bias: false`.
    public let bias: Parameter?
    /// Upsampling factor: the step, in output samples, between the kernel's placements (default 1).
    public let stride: Int
    /// Samples removed from each end of the output (PyTorch's `padding`, default 0).
    public let padding: Int
    /// Extra samples added at the end of the output, in `0..<stride` (default 0).
    public let outputPadding: Int
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true

    /// A transposed convolution of width `kernelSize` from `inChannels` to `outChannels` channels,
    /// parameters drawn from `rng` as `initializer` says. Precondition: sizes positive,
    /// `padding ≥ 0`, `0 ≤ outputPadding < stride`.
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                outputPadding: Int = 0, bias: Bool = true, initializer: Initializer = .pytorchDefault,
                rng: inout RandomGenerator) {
        precondition(inChannels > 0 && outChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0
                     && outputPadding >= 0 && outputPadding < stride,
                     "ConvTranspose1d: invalid sizes \(inChannels) -> \(outChannels), kernel \(kernelSize), stride \(stride), padding \(padding), outputPadding \(outputPadding)")
        (weight, self.bias) = convInitialParameters(
            weightShape: [inChannels, outChannels, kernelSize], fanIn: outChannels * kernelSize,
            fanOut: inChannels * kernelSize, biasCount: outChannels, bias: bias, initializer: initializer, rng: &rng)
        self.stride = stride
        self.padding = padding
        self.outputPadding = outputPadding
    }

    /// The transposed convolution of `x` `[N, inChannels, L]`: `[N, outChannels, Lo]`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        Tensor.convTranspose1d(x, weight: weight.value, bias: bias?.value, stride: stride, padding: padding,
                               outputPadding: outputPadding)
    }

}

extension Dropout {
    /// Inverted dropout with the mask drawn from the caller's generator instead of the layer's
    /// own (for data-parallel runs that derive streams from (seed, rank)); identity in
    /// evaluation mode or when `p` is 0, and then `rng` is not advanced.
    ///
    /// - Shapes: any; output like `x`.
    public func callAsFunction(_ x: Tensor, rng: inout RandomGenerator) -> Tensor {
        if !isTraining || p == 0 { return x }
        let keep = 1 - p, scale = 1 / keep
        var mask = [Float](repeating: 0, count: x.count)
        for i in 0..<mask.count { mask[i] = rng.nextUniform() < keep ? scale : 0 }
        return x * Tensor(shape: x.shape, scalars: mask)
    }
}

extension Loss {
    /// Mean next-token cross-entropy in nats: `mean over B·T positions of
    /// -log softmax(logits[b, t])[targets[b, t]]` (PyTorch's `F.cross_entropy` on logits
    /// reshaped to `[B·T, V]`), through `Tensor.softmaxCrossEntropy`.
    ///
    /// - Shapes: `logits` `[B, T, V]` (or `[N, V]`), `targets` `B·T` integers in `0..<V`
    ///   in row-major order.
    /// - Gradient: `(softmax(logits) - onehot(targets)) / (B·T)` with respect to the logits.
    public static func tokenCrossEntropy(logits: Tensor, targets: [Int]) -> Tensor {
        precondition(logits.rank >= 2 && logits.count / Swift.max(logits.shape.last!, 1) == targets.count,
                     "tokenCrossEntropy: logits \(logits.shape) ([B, T, V]) for \(targets.count) targets")
        let v = logits.shape.last!
        return Tensor.softmaxCrossEntropy(logits: logits.reshaped([targets.count, v]), labels: targets)
    }
}

/// Phase shuffle (Donahue et al. 2019, "Adversarial Audio Synthesis", §3.3): in training each
/// example's feature map is shifted along its length by its own integer drawn uniformly from
/// `-n...n`, the vacated samples filled by reflection; identity in evaluation. WaveGAN's critic
/// applies it (n = 2) after each of its first four activations, so that the critic cannot
/// rely on the phase of the generator's periodic transposed-convolution artefacts.
///
/// The shifts come from the layer's ``rng``: a model reseeds it each training step from a
/// ``RandomStream`` at a saved update count, so that a resumed run draws the same shifts.
/// Every call in training advances `rng` by one draw per example.
///
/// - Shapes: `[N, C, L]` → `[N, C, L]`, `L > n`.
/// - Gradient: see `Tensor.phaseShuffled(shifts:)` (differentiable twice).
public final class PhaseShuffle: Layer {
    /// The largest shift, in samples (the paper's n = 2).
    public let n: Int
    /// The generator of the shifts, seeded at construction and reseeded by the model per step.
    public var rng: RandomGenerator
    /// Training (shifts drawn) or evaluation (identity).
    public var isTraining = true
    /// The shifts of the last call in training, one per example (for tests and diagnostics).
    public private(set) var lastShifts: [Int] = []

    /// Phase shuffle by up to `n ≥ 0` samples; takes one draw from `rng` to seed its own generator.
    public init(n: Int = 2, rng: inout RandomGenerator) {
        precondition(n >= 0, "PhaseShuffle: n \(n) must be ≥ 0")
        self.n = n
        self.rng = RandomGenerator(seed: rng.next())
    }

    /// In training, `x` with example `i` shifted by `k_i ~ U{-n..n}` (reflection at the
    /// borders); otherwise `x`. `[N, C, L]` → same shape.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] > n, "PhaseShuffle: input \(x.shape) must be [N, C, L] with L > n = \(n)")
        if !isTraining || n == 0 { return x }
        let span = UInt64(2 * n + 1)
        lastShifts = (0..<x.shape[0]).map { _ in Int(rng.next() % span) - n }
        return x.phaseShuffled(shifts: lastShifts)
    }
}
