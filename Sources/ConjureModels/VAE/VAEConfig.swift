import Foundation
import ConjureData
import ConjureNN
import ConjureOptim

/// Network family of a variational autoencoder.
public enum VAEArchitecture: String, Codable, Sendable, CaseIterable {
    /// Fully connected encoder and decoder on flat samples.
    case mlp
    /// Convolutional encoder and transposed-convolutional decoder on `[C, H, W]` images
    /// (28x28 or 32x32).
    case conv
}

/// The decoder's observation model `p(x|z)`.
public enum VAELikelihood: String, Codable, Sendable, CaseIterable {
    /// Independent Bernoulli per dimension: the decoder outputs logits, data must lie in [0, 1].
    /// `-log p(x|z) = Σ_d softplus(l_d) - l_d x_d` (binary cross-entropy on logits).
    case bernoulli
    /// Independent Gaussian per dimension: the decoder outputs the mean `μ`, the standard
    /// deviation is ``VAEConfig/gaussianSigma`` or learned per dimension.
    /// `-log p(x|z) = Σ_d ½ log 2π + log σ_d + ½ ((x_d - μ_d) / σ_d)²`.
    case gaussian
}

/// Hidden-layer non-linearity of a VAE.
public enum VAEActivation: String, Codable, Sendable, CaseIterable {
    /// `relu`: ReLU (the presets); `tanh`: tanh (the network of Burda et al. 2016).
    case relu, tanh
}

/// Everything that defines a variational autoencoder (Kingma & Welling 2014) and its
/// optimisation. A preset is only a set of defaults.
///
/// The encoder maps a sample to `[μ, log σ²]` of a diagonal Gaussian `q(z|x)` over
/// `latentDim` dimensions; the prior is `p(z) = N(0, I)`; the decoder maps `z` to the
/// parameters of ``likelihood``. Training minimises the negative evidence lower bound
/// `-ELBO = E_q[-log p(x|z)] + KL(q(z|x) ‖ p(z))` in nats per sample.
public struct VAEConfig: FamilyConfig, OptimizationFields, VectorOrImageConfig, Equatable {
    /// The preset this configuration started from (`vae`, `conv-vae`, ...).
    public var preset: String
    /// Size of the latent `z`.
    public var latentDim: Int
    /// Flattened size of one data sample (784 for 28x28 MNIST).
    public var dataDim: Int
    /// Hidden widths of the MLP encoder, input side first (must be empty for `conv`).
    public var encoderHidden: [Int]
    /// Hidden widths of the MLP decoder, latent side first (must be empty for `conv`).
    public var decoderHidden: [Int]
    /// Non-linearity after every hidden layer (both architectures).
    public var activation: VAEActivation
    /// Fully connected (`mlp`) or convolutional (`conv`, needs ``imageShape``) networks.
    public var architecture: VAEArchitecture
    /// `[C, H, W]` of samples; required for `conv` (28x28 or 32x32, 1-4 channels), optional for
    /// `mlp` (used for image grids), and then its product must equal `dataDim`.
    public var imageShape: [Int]?
    /// The decoder's observation model `p(x|z)` (Bernoulli logits in the presets).
    public var likelihood: VAELikelihood
    /// Fixed standard deviation of the Gaussian likelihood (in data units); nil learns one
    /// log standard deviation per data dimension (parameter `log_sigma`, initialised to 0,
    /// clamped to ``VAE/logSigmaRange``). Ignored for the Bernoulli likelihood.
    public var gaussianSigma: Float?
    /// The encoder's log-variance is clamped to this range before use (gradients pass inside
    /// the range only), so `exp(log σ²)` neither overflows nor underflows in Float32:
    /// the default `-30...20` allows standard deviations from 3e-7 to 2.2e4.
    public var logvarClamp: ClosedRange<Float>
    /// Dynamic binarisation (Salakhutdinov & Murray 2008): each training batch `x` is
    /// replaced by fresh Bernoulli(`x`) draws, the standard protocol for binarised MNIST.
    /// Only acts with the Bernoulli likelihood; evaluation never binarises.
    public var binarize: Bool
    /// KL warm-up (Bowman et al. 2016; Sønderby et al. 2016): the KL term's weight in the
    /// training objective rises linearly from `1/klWarmupSteps` to 1 over this many steps.
    /// 0: no warm-up. Reported losses are always the true negative ELBO.
    public var klWarmupSteps: Int
    /// The base learning rate (1e-3 in the presets), scaled by ``lrSchedule``.
    public var lr: Float
    /// Adam's β1 (0.9 in the presets).
    public var beta1: Float
    /// Adam's β2 (0.999 in the presets).
    public var beta2: Float
    /// The optimiser's ε in the denominator (1e-8 in the presets).
    public var eps: Float
    /// Samples per training step (100 in the presets).
    public var batchSize: Int
    /// Passes over the training split; the run's total steps are `epochs × steps per epoch`.
    public var epochs: Int
    /// The run's seed: every random stream (initialisation, latents, batches) derives from it.
    public var seed: UInt64
    /// Learning-rate schedule over the run's total steps.
    public var lrSchedule: LRSchedule = .constant
    /// The optimiser (Adam by default; `beta1`/`beta2` are Adam's betas).
    public var optimizer: OptimizerKind = .adam
    /// Weight decay: decoupled for AdamW, an L2 term for Adam and RMSprop; 0: none.
    public var weightDecay: Float = 0
    /// Clips the total gradient L2 norm to this value before each update; nil: no clipping.
    public var clipGradNorm: Float? = nil
    /// Exponential moving average of every weight with this decay (warmed up as
    /// `min(decay, (1+t)/(10+t))`); when set, samples come from the averaged weights. nil: off.
    public var emaDecay: Float? = nil

    enum CodingKeys: String, CodingKey {
        case preset, latentDim, dataDim, encoderHidden, decoderHidden, activation, architecture, imageShape, likelihood,
             gaussianSigma, logvarClamp, binarize, klWarmupSteps, lr, beta1, beta2, eps, batchSize, epochs, seed, lrSchedule,
             optimizer, weightDecay, clipGradNorm, emaDecay
    }

    /// Encodes every field; the optional optimiser fields only when set, so that configurations
    /// of runs that do not use them read as before.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(preset, forKey: .preset); try c.encode(latentDim, forKey: .latentDim); try c.encode(dataDim, forKey: .dataDim)
        try c.encode(encoderHidden, forKey: .encoderHidden); try c.encode(decoderHidden, forKey: .decoderHidden)
        try c.encode(activation, forKey: .activation); try c.encode(architecture, forKey: .architecture)
        try c.encodeIfPresent(imageShape, forKey: .imageShape); try c.encode(likelihood, forKey: .likelihood)
        try c.encodeIfPresent(gaussianSigma, forKey: .gaussianSigma); try c.encode(logvarClamp, forKey: .logvarClamp)
        try c.encode(binarize, forKey: .binarize); try c.encode(klWarmupSteps, forKey: .klWarmupSteps)
        try c.encode(lr, forKey: .lr); try c.encode(beta1, forKey: .beta1); try c.encode(beta2, forKey: .beta2); try c.encode(eps, forKey: .eps)
        try c.encode(batchSize, forKey: .batchSize); try c.encode(epochs, forKey: .epochs); try c.encode(seed, forKey: .seed)
        try c.encode(lrSchedule, forKey: .lrSchedule)
        if optimizer != .adam { try c.encode(optimizer, forKey: .optimizer) }
        if weightDecay != 0 { try c.encode(weightDecay, forKey: .weightDecay) }
        try c.encodeIfPresent(clipGradNorm, forKey: .clipGradNorm)
        try c.encodeIfPresent(emaDecay, forKey: .emaDecay)
    }

    /// A configuration; `binarize` defaults to true for the Bernoulli likelihood.
    public init(preset: String = "custom", latentDim: Int = 50, dataDim: Int = 784, encoderHidden: [Int] = [200, 200],
                decoderHidden: [Int] = [200, 200], activation: VAEActivation = .relu, architecture: VAEArchitecture = .mlp,
                imageShape: [Int]? = nil, likelihood: VAELikelihood = .bernoulli, gaussianSigma: Float? = nil,
                logvarClamp: ClosedRange<Float> = -30...20, binarize: Bool? = nil, klWarmupSteps: Int = 0,
                lr: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                batchSize: Int = 100, epochs: Int = 100, seed: UInt64 = 0) {
        self.preset = preset; self.latentDim = latentDim; self.dataDim = dataDim
        self.encoderHidden = encoderHidden; self.decoderHidden = decoderHidden; self.activation = activation
        self.architecture = architecture; self.imageShape = imageShape; self.likelihood = likelihood
        self.gaussianSigma = gaussianSigma; self.logvarClamp = logvarClamp
        self.binarize = binarize ?? (likelihood == .bernoulli); self.klWarmupSteps = klWarmupSteps
        self.lr = lr; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.batchSize = batchSize; self.epochs = epochs; self.seed = seed
    }

    /// Decodes a configuration; keys other than `latentDim` and `dataDim` fall back to the
    /// defaults of ``init(preset:latentDim:dataDim:encoderHidden:decoderHidden:activation:architecture:imageShape:likelihood:gaussianSigma:logvarClamp:binarize:klWarmupSteps:lr:beta1:beta2:eps:batchSize:epochs:seed:)``.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = VAEConfig()
        let likelihood = try c.decodeIfPresent(VAELikelihood.self, forKey: .likelihood) ?? d.likelihood
        self.init(
            preset: try c.decodeIfPresent(String.self, forKey: .preset) ?? d.preset,
            latentDim: try c.decode(Int.self, forKey: .latentDim),
            dataDim: try c.decode(Int.self, forKey: .dataDim),
            encoderHidden: try c.decodeIfPresent([Int].self, forKey: .encoderHidden) ?? d.encoderHidden,
            decoderHidden: try c.decodeIfPresent([Int].self, forKey: .decoderHidden) ?? d.decoderHidden,
            activation: try c.decodeIfPresent(VAEActivation.self, forKey: .activation) ?? d.activation,
            architecture: try c.decodeIfPresent(VAEArchitecture.self, forKey: .architecture) ?? d.architecture,
            imageShape: try c.decodeIfPresent([Int].self, forKey: .imageShape),
            likelihood: likelihood,
            gaussianSigma: try c.decodeIfPresent(Float.self, forKey: .gaussianSigma),
            logvarClamp: try c.decodeIfPresent(ClosedRange<Float>.self, forKey: .logvarClamp) ?? d.logvarClamp,
            binarize: try c.decodeIfPresent(Bool.self, forKey: .binarize),
            klWarmupSteps: try c.decodeIfPresent(Int.self, forKey: .klWarmupSteps) ?? d.klWarmupSteps,
            lr: try c.decodeIfPresent(Float.self, forKey: .lr) ?? d.lr,
            beta1: try c.decodeIfPresent(Float.self, forKey: .beta1) ?? d.beta1,
            beta2: try c.decodeIfPresent(Float.self, forKey: .beta2) ?? d.beta2,
            eps: try c.decodeIfPresent(Float.self, forKey: .eps) ?? d.eps,
            batchSize: try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize,
            epochs: try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs,
            seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? d.seed)
        lrSchedule = try c.decodeIfPresent(LRSchedule.self, forKey: .lrSchedule) ?? .constant
        optimizer = try c.decodeIfPresent(OptimizerKind.self, forKey: .optimizer) ?? .adam
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? 0
        clipGradNorm = try c.decodeIfPresent(Float.self, forKey: .clipGradNorm)
        emaDecay = try c.decodeIfPresent(Float.self, forKey: .emaDecay)
    }

    /// The MLP VAE of Burda et al. 2016 (one stochastic layer) for MNIST: encoder 784 -> 200 ->
    /// 200 -> 2·50, decoder 50 -> 200 -> 200 -> 784 Bernoulli logits, dynamically binarised
    /// data, Adam(1e-3, 0.9, 0.999, 1e-8), batch 100. Hidden layers use ReLU, which fits
    /// several times faster than the paper's tanh at the same learning rate (set
    /// `activation = .tanh` for the paper's network; the paper also uses Adam ε = 1e-4 and a
    /// 3280-epoch learning-rate schedule).
    public static let mlpPreset = VAEConfig(
        preset: "vae", latentDim: 50, dataDim: 784, encoderHidden: [200, 200], decoderHidden: [200, 200],
        activation: .relu, architecture: .mlp, likelihood: .bernoulli, binarize: true,
        lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, batchSize: 100, epochs: 100, seed: 0)

    /// A convolutional VAE for 28x28 images: encoder Conv2d C->32 k4 s2 p1, ReLU, Conv2d
    /// 32->64 k4 s2 p1, ReLU, Flatten, Linear 3136 -> 2·50; decoder Linear 50 -> 3136, ReLU,
    /// [64, 7, 7], ConvTranspose2d 64->32 k4 s2 p1, ReLU, ConvTranspose2d 32->C k4 s2 p1
    /// (Bernoulli logits). 32x32 images use 8x8 in place of 7x7.
    public static let convPreset: VAEConfig = {
        var c = mlpPreset
        c.preset = "conv-vae"; c.architecture = .conv
        c.encoderHidden = []; c.decoderHidden = []; c.imageShape = [1, 28, 28]; c.epochs = 20
        return c
    }()

    /// Named presets.
    public static let presets: [String: VAEConfig] = ["vae": mlpPreset, "conv-vae": convPreset]

    /// The range of the model's samples (decoder means), which decides the data normalisation:
    /// `sigmoid` ([0, 1]) for the Bernoulli likelihood, `identity` for the Gaussian one.
    public var outputActivation: OutputActivation { likelihood == .bernoulli ? .sigmoid : .identity }

    /// Side of the encoder's last feature map for the convolutional architecture (7 or 8).
    var convSide: Int { (imageShape?[1] ?? 28) / 4 }

    /// Checks the options, naming the first bad one.
    ///
    /// - Throws: ``ConfigError`` naming the option and the problem.
    public func validate() throws {
        func bad(_ option: String, _ problem: String) -> ConfigError { ConfigError(option: option, problem: problem) }
        if latentDim <= 0 || latentDim > 1 << 16 { throw bad("--latent-dim", "must be between 1 and 65536, got \(latentDim)") }
        if dataDim <= 0 || dataDim > 1 << 26 { throw bad("data", "sample size must be between 1 and 2^26 values, got \(dataDim)") }
        if encoderHidden.contains(where: { $0 <= 0 }) { throw bad("--encoder-hidden", "widths must be positive, got \(encoderHidden)") }
        if decoderHidden.contains(where: { $0 <= 0 }) { throw bad("--decoder-hidden", "widths must be positive, got \(decoderHidden)") }
        if !(lr > 0 && lr.isFinite) { throw bad("--lr", "must be a positive number, got \(lr)") }
        if !(0..<1).contains(beta1) { throw bad("--beta1", "must be in [0, 1), got \(beta1)") }
        if !(0..<1).contains(beta2) { throw bad("--beta2", "must be in [0, 1), got \(beta2)") }
        if !(eps > 0 && eps.isFinite) { throw bad("--eps", "must be positive, got \(eps)") }
        if batchSize < 1 || batchSize > 1 << 20 { throw bad("--batch-size", "must be between 1 and 1048576, got \(batchSize)") }
        if epochs < 1 || epochs > 10_000_000 { throw bad("--epochs", "must be between 1 and 10000000, got \(epochs)") }
        if !(logvarClamp.lowerBound.isFinite && logvarClamp.upperBound.isFinite && logvarClamp.lowerBound < logvarClamp.upperBound
             && logvarClamp.lowerBound >= -80 && logvarClamp.upperBound <= 80) {
            throw bad("--logvar-clamp", "must be a finite range lo < hi within [-80, 80] (exp stays finite in Float32), got \(logvarClamp)")
        }
        if let s = gaussianSigma, !(s > 0 && s.isFinite) { throw bad("--sigma", "must be a positive number, got \(s)") }
        if !(weightDecay >= 0 && weightDecay < 1) { throw bad("--weight-decay", "must be in [0, 1), got \(weightDecay)") }
        if let m = clipGradNorm, !(m > 0 && m.isFinite) { throw bad("--clip-grad-norm", "must be a positive number, got \(m)") }
        if let d = emaDecay, !(d > 0 && d < 1) { throw bad("--ema", "the decay must be in (0, 1), e.g. 0.999, got \(d)") }
        if klWarmupSteps < 0 { throw bad("--kl-warmup", "must be 0 (off) or a positive number of steps, got \(klWarmupSteps)") }
        if let shape = imageShape, shape.count != 3 || shape.contains(where: { $0 <= 0 }) || shape.reduce(1, *) != dataDim {
            throw bad("imageShape", "must be [C, H, W] with C·H·W = \(dataDim), got \(shape)")
        }
        let count: Double
        switch architecture {
        case .mlp:
            let e = [dataDim] + encoderHidden + [2 * latentDim], d = [latentDim] + decoderHidden + [dataDim]
            // In Double: Int arithmetic on widths near Int.max would overflow.
            count = zip(e, e.dropFirst()).reduce(0.0) { $0 + (Double($1.0) + 1) * Double($1.1) }
                + zip(d, d.dropFirst()).reduce(0.0) { $0 + (Double($1.0) + 1) * Double($1.1) }
        case .conv:
            guard let shape = imageShape, shape.count == 3, (1...4).contains(shape[0]), shape[1] == shape[2],
                  shape[1] == 28 || shape[1] == 32, shape.reduce(1, *) == dataDim else {
                throw bad("--model conv-vae", "needs 28x28 or 32x32 images with 1-4 channels, got samples of shape \(imageShape.map { "\($0)" } ?? "[\(dataDim)]")")
            }
            if !encoderHidden.isEmpty { throw bad("--encoder-hidden", "is for the MLP architecture; the conv encoder has fixed layers") }
            if !decoderHidden.isEmpty { throw bad("--decoder-hidden", "is for the MLP architecture; the conv decoder has fixed layers") }
            let f = Double(64 * convSide * convSide)
            count = (f + 1) * Double(3 * latentDim) + f + Double(2 * (shape[0] * 32 * 16 + 32 * 64 * 16))
        }
        // Refuse models that cannot be allocated rather than crash (as GANConfig does).
        if count > Double(1 << 28) {
            throw bad("--encoder-hidden/--decoder-hidden/--latent-dim", String(format: "the model would have %.3g parameters (%.1f GiB with gradients and Adam state); the limit is 2^28", count, count * 16 / 1_073_741_824))
        }
    }
}

extension VAEConfig {
    /// `vae`.
    public static var family: String { "vae" }

    /// A VAE is never conditional: always 0; setting another value is a programming error.
    public var conditionalClasses: Int {
        get { 0 }
        set { precondition(newValue == 0, "VAEConfig: VAEs are not conditional") }
    }

    /// Whether the architecture needs images (the convolutional one).
    public var needsImageData: Bool { architecture == .conv }
}

extension ModelConfig {
    /// A VAE configuration wrapped for the registry.
    public static func vae(_ config: VAEConfig) -> ModelConfig { ModelConfig(config) }
    /// The VAE configuration held, nil for other families.
    public var vae: VAEConfig? { config as? VAEConfig }
}
