import ConjureData
import ConjureNN
import ConjureOptim

/// What the denoiser predicts and the simple loss regresses on.
public enum DiffusionPrediction: String, Codable, Sendable, CaseIterable {
    /// The noise ε (Ho et al. 2020, the "simple" loss `‖ε - ε_θ(x_t, t)‖²`).
    case epsilon
    /// The velocity `v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x_0` (Salimans & Ho 2022).
    case v
}

/// The variance schedule of a diffusion run (see ``NoiseSchedule``).
public enum DiffusionScheduleKind: String, Codable, Sendable, CaseIterable {
    /// β from 1e-4 to 0.02 linearly (Ho et al. 2020).
    case linear
    /// The cosine schedule of Nichol & Dhariwal 2021.
    case cosine

    var kind: NoiseSchedule.Kind { self == .linear ? .linear : .cosine }
}

/// The reverse-process sampler.
public enum DiffusionSamplerKind: String, Codable, Sendable, CaseIterable {
    /// DDPM ancestral sampling over all T steps (Ho et al. 2020, algorithm 2, σ² = β̃).
    case ddpm
    /// DDIM (Song et al. 2021) over a subsequence of the steps, with noise scale `eta`.
    case ddim
}

/// How samples are drawn from a diffusion model: the sampler, its step count and noise, and
/// the classifier-free guidance weight. Saved in the configuration as the defaults of
/// `conjure sample` and `evaluate`; `conjure sample --sampler/--steps/--eta/--guidance` change
/// them for one command.
public struct DiffusionSamplerSettings: Codable, Sendable, Equatable {
    /// DDPM ancestral or DDIM.
    public var kind: DiffusionSamplerKind
    /// DDIM's number of denoising steps (1...T; ignored by DDPM, which takes all T).
    public var steps: Int
    /// DDIM's η: 0 deterministic, 1 the DDPM posterior variance.
    public var eta: Double
    /// Classifier-free guidance weight w (Ho & Salimans 2022):
    /// `ε̃ = (1 + w) ε(x, y) - w ε(x, ∅)`; 0 is the plain conditional prediction. Conditional
    /// models only.
    public var guidance: Double
    /// Clip the predicted `x̂_0` to [-1, 1] at every step (and recompute ε̂ from it), as Ho et
    /// al.'s code does; the data is normalised to [-1, 1].
    public var clipDenoised: Bool

    /// Settings with the given values.
    public init(kind: DiffusionSamplerKind = .ddim, steps: Int = 50, eta: Double = 0, guidance: Double = 0, clipDenoised: Bool = true) {
        self.kind = kind; self.steps = steps; self.eta = eta; self.guidance = guidance; self.clipDenoised = clipDenoised
    }

    /// `ddim 50 steps, eta 0` / `ddpm 1000 steps`, with the guidance for conditional models.
    public func description(timesteps: Int, conditional: Bool) -> String {
        (kind == .ddim ? "ddim \(steps) steps, eta \(eta)" : "ddpm \(timesteps) steps")
            + (conditional ? ", guidance \(guidance)" : "") + (clipDenoised ? ", x0 clipped" : "")
    }
}

/// Everything that defines a denoising diffusion model on images or signals (Ho et al. 2020)
/// and its optimisation. A preset is only a set of defaults.
///
/// The model learns ε_θ(x_t, t) (or v_θ) with the simple loss at uniform steps
/// `t ~ U{0..T-1}`, `x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε`; a conditional model adds a class
/// embedding to the time embedding and replaces the class by the null class with probability
/// ``labelDropout`` so that one network gives both predictions of classifier-free guidance.
public struct DiffusionConfig: FamilyConfig, OptimizationFields, Equatable {
    /// The preset this configuration started from (`ddpm`, `ddpm-cond`, `ddpm-1d`, `ddpm-1d-cond`).
    public var preset: String
    /// The shape of one sample, set from the data by ``adapt(to:)``: `[C, H, W]` for images (a
    /// 2-D U-Net) or `[C, T]` for signals such as audio (a 1-D U-Net). The name is kept for
    /// the saved configurations of image runs.
    public var imageShape: [Int]
    /// Channels of the first level (the U-Net's base width).
    public var baseWidth: Int
    /// Each level's width as a multiple of ``baseWidth``, full resolution first; the
    /// resolution is divided by ``downsampling`` between levels.
    public var channelMultipliers: [Int]
    /// Stride of the downsampling convolutions and factor of the nearest upsampling between
    /// levels (2 or 4); nil means 2 (and is what configurations saved before the option hold).
    public var downsampleStride: Int?
    /// Residual blocks per level on the down path (the up path has one more).
    public var blocksPerLevel: Int
    /// Levels (0: full resolution) with self-attention after each residual block; the middle
    /// always has one attention block.
    public var attentionLevels: [Int]
    /// Attention heads.
    public var attentionHeads: Int
    /// GroupNorm groups (must divide every width).
    public var groups: Int
    /// Dropout in every residual block (training only).
    public var dropout: Float
    /// Number of diffusion steps T.
    public var timesteps: Int
    /// The variance schedule.
    public var schedule: DiffusionScheduleKind
    /// What the network predicts.
    public var prediction: DiffusionPrediction
    /// Class count of a conditional model (0: unconditional; set from the data's labels).
    public var conditionalClasses: Int
    /// Probability of replacing a training label by the null class (classifier-free guidance).
    public var labelDropout: Float
    /// Sampling defaults.
    public var sampler: DiffusionSamplerSettings
    /// Base learning rate of the model's one parameter group.
    public var lr: Float
    /// Adam's β1.
    public var beta1: Float
    /// Adam's β2.
    public var beta2: Float
    /// The optimiser's ε.
    public var eps: Float
    /// Images per training step.
    public var batchSize: Int
    /// Passes over the training split.
    public var epochs: Int
    /// The run's seed (weights, batches, timesteps and noise).
    public var seed: UInt64
    /// The optimiser (Adam by default).
    public var optimizer: OptimizerKind
    /// Weight decay (decoupled for AdamW; an L2 term for Adam); 0: none.
    public var weightDecay: Float
    /// The learning-rate schedule over the run.
    public var lrSchedule: LRSchedule
    /// Gradient-norm clipping; nil: none.
    public var clipGradNorm: Float?
    /// Decay of the weight average that sampling uses (0.999 in the presets); nil: off.
    public var emaDecay: Float?
    /// Input scaling factor b of the data (Chen 2023, "On the importance of noise scheduling
    /// for diffusion models"): the process runs on `b x_0` for data `x_0` in [-1, 1], so
    /// `x_t = sqrt(ᾱ_t) b x_0 + sqrt(1 - ᾱ_t) ε`, x̂_0 is clipped to [-b, b] and samples are
    /// divided by b. It shifts every step's signal-to-noise ratio by b² without changing the
    /// schedule: data whose RMS is far below 1 (a padded spoken digit's is 0.04) is otherwise
    /// drowned within the first few percent of the steps. nil (configurations saved before
    /// the option) means 1.
    public var dataScale: Float?

    /// A configuration; the defaults are the `ddpm` preset's.
    public init(preset: String = "custom", imageShape: [Int] = [1, 28, 28], baseWidth: Int = 16, channelMultipliers: [Int] = [1, 2, 2],
                downsampleStride: Int? = nil, blocksPerLevel: Int = 1, attentionLevels: [Int] = [2], attentionHeads: Int = 1, groups: Int = 8, dropout: Float = 0,
                timesteps: Int = 1000, schedule: DiffusionScheduleKind = .linear, prediction: DiffusionPrediction = .epsilon,
                conditionalClasses: Int = 0, labelDropout: Float = 0.1, sampler: DiffusionSamplerSettings = .init(),
                lr: Float = 1e-3, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, batchSize: Int = 64, epochs: Int = 120,
                seed: UInt64 = 0, optimizer: OptimizerKind = .adam, weightDecay: Float = 0, lrSchedule: LRSchedule = .constant,
                clipGradNorm: Float? = 1, emaDecay: Float? = 0.999, dataScale: Float? = nil) {
        self.preset = preset; self.imageShape = imageShape; self.baseWidth = baseWidth; self.channelMultipliers = channelMultipliers
        self.downsampleStride = downsampleStride
        self.blocksPerLevel = blocksPerLevel; self.attentionLevels = attentionLevels; self.attentionHeads = attentionHeads
        self.groups = groups; self.dropout = dropout; self.timesteps = timesteps; self.schedule = schedule; self.prediction = prediction
        self.conditionalClasses = conditionalClasses; self.labelDropout = labelDropout; self.sampler = sampler
        self.lr = lr; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.batchSize = batchSize; self.epochs = epochs
        self.seed = seed; self.optimizer = optimizer; self.weightDecay = weightDecay; self.lrSchedule = lrSchedule
        self.clipGradNorm = clipGradNorm; self.emaDecay = emaDecay; self.dataScale = dataScale
    }

    /// `ddpm`: a small DDPM U-Net (280,177 parameters for one channel) for 28x28 and 32x32 images
    /// with 1-4 channels: base width 16,
    /// levels of 16/32/32 channels (28→14→7 or 32→16→8 pixels), one residual block per level
    /// (two on the way up), one-head self-attention at the lowest level and in the middle,
    /// no dropout (runs here are too short to overfit; `--dropout 0.1` is Ho et al.'s CIFAR
    /// setting), T = 1000 linear steps, ε-prediction; Adam(1e-3: Ho et al.'s 2e-4 learns too little in the few thousand steps a CPU run takes), batch 64, gradients clipped to
    /// norm 1 (Ho et al.'s setting), DDIM 50 steps for samples; 120 epochs (8400 steps on the
    /// 4500 training images of the MNIST subset: 22m54s on two cores, FID 24.8 and recall 0.91
    /// with the domain classifier, docs/diffusion.md). Base width 32 measured 3.5x slower per
    /// step (2 against 7 steps/s at batch 64 on two cores), too slow for a default run of at
    /// most 30 minutes.
    ///
    /// The weight average decays with 0.999 (warmed up as `min(0.999, (1+t)/(10+t))`), not Ho
    /// et al.'s 0.9999: a run here is a few thousand steps, and a 0.9999 average (a window of
    /// about 10000 updates) would still be dominated by the first, untrained weights at the end
    /// of such a run; 0.999 averages over about the last 1000 updates.
    public static let ddpmPreset = DiffusionConfig(preset: "ddpm")

    /// `ddpm-cond`: `ddpm` conditioned on the class (a learned embedding added to the time
    /// embedding, label dropout 0.1 for classifier-free guidance); samples use guidance w = 1.
    public static let conditionalPreset: DiffusionConfig = {
        var c = ddpmPreset
        c.preset = "ddpm-cond"; c.conditionalClasses = 10; c.sampler.guidance = 1
        return c
    }()

    /// `ddpm-1d`: waveform diffusion with a 1-D U-Net for clips of 8192 samples (about 1 s at
    /// 8 kHz, FSDD's rate), 1 channel: 1,376,497 parameters. Base width 16, levels of
    /// 16/32/64/64/128 channels at 8192/2048/512/128/32 samples (stride-4 downsampling,
    /// so the expensive full-rate level has the fewest channels and one residual block (two
    /// up)), four-head attention over the 32 time steps of the lowest level and in the middle
    /// only, no dropout; Conv1d kernel 3 in the blocks, kernel 7 stride 4 down, nearest ×4
    /// upsampling + Conv1d up. T = 1000 steps of the **cosine** schedule with **v-prediction**:
    /// the linear schedule destroys a waveform's fine, low-amplitude structure (most of a
    /// padded FSDD clip is near silence) within the first few hundred steps, so most training
    /// steps would be spent on near-pure noise; the cosine schedule keeps more of the signal
    /// through the middle steps (Nichol & Dhariwal 2021), and v-prediction keeps the target
    /// well scaled at both ends where ε-prediction's `x̂_0 = (x_t - sqrt(1-ᾱ) ε̂)/sqrt(ᾱ)` is
    /// unstable as ᾱ → 0 under the cosine schedule (Salimans & Ho 2022). **Data scale 12**
    /// (Chen 2023's input scaling): FSDD's clips padded to 8192 samples have an RMS of 0.040
    /// (speech of RMS 0.05-0.2 in the first half second, then exact silence), so at scale 1
    /// every step's signal-to-noise ratio is about 600 times an MNIST image's (RMS 0.96 in
    /// [-1, 1]) and the signal is gone within the first few percent of the steps; scaled by
    /// 12 (RMS 0.48) the whole schedule carries it. Measured on FSDD at two threads: 10 minutes
    /// at scale 12 gave a classifier score ratio of 0.34 against 0.17 after 30 minutes at
    /// scale 1, and removed the residual noise floor (RMS 0.007-0.012 → 0.001 in the silent
    /// half, docs/audio.md). Adam 1e-3, batch 16,
    /// gradient norm 1, EMA 0.999, DDIM 50 steps for samples; 10 epochs (1510 steps on FSDD's
    /// 2430 training clips after the held-out split): `conjure bench --model ddpm-1d` measured
    /// 0.9 steps/s at batch 16 with 1 thread on the shared two-core machine (0.5 with 2 threads
    /// under load), so a default run takes about 30 minutes (docs/diffusion.md).
    public static let waveformPreset = DiffusionConfig(preset: "ddpm-1d", imageShape: [1, 8192], baseWidth: 16, channelMultipliers: [1, 2, 4, 4, 8],
                                                       downsampleStride: 4, blocksPerLevel: 1, attentionLevels: [4], attentionHeads: 4, groups: 8,
                                                       schedule: .cosine, prediction: .v, batchSize: 16, epochs: 10, dataScale: 12)

    /// `ddpm-1d-cond`: `ddpm-1d` conditioned on the class (the spoken digit) with label dropout
    /// 0.1 for classifier-free guidance; samples use guidance w = 1.
    public static let waveformConditionalPreset: DiffusionConfig = {
        var c = waveformPreset
        c.preset = "ddpm-1d-cond"; c.conditionalClasses = 10; c.sampler.guidance = 1
        return c
    }()

    /// Named presets.
    public static let presets: [String: DiffusionConfig] = ["ddpm": ddpmPreset, "ddpm-cond": conditionalPreset,
                                                            "ddpm-1d": waveformPreset, "ddpm-1d-cond": waveformConditionalPreset]

    /// Checks the options, naming the first bad one.
    ///
    /// - Throws: ``ConfigError`` naming the option and the problem.
    public func validate() throws {
        func bad(_ option: String, _ problem: String) -> ConfigError { ConfigError(option: option, problem: problem) }
        guard (2...3).contains(imageShape.count), (1...4).contains(imageShape[0]), imageShape.allSatisfy({ $0 > 0 }) else {
            throw bad("--model \(preset)", "needs images [C, H, W] or sequences [C, T] with 1-4 channels, got \(imageShape)")
        }
        if let s = downsampleStride, s != 2 && s != 4 { throw bad("--downsample-stride", "must be 2 or 4, got \(s)") }
        if !(1...1024).contains(baseWidth) { throw bad("--base-width", "must be between 1 and 1024, got \(baseWidth)") }
        if channelMultipliers.isEmpty || channelMultipliers.count > 6 || channelMultipliers.contains(where: { !(1...16).contains($0) }) {
            throw bad("--channel-mult", "must be 1 to 6 multipliers, each 1-16, got \(channelMultipliers)")
        }
        var factor = 1
        for _ in 1..<channelMultipliers.count { factor *= downsampling }
        if imageShape.dropFirst().contains(where: { $0 % factor != 0 }) {
            let what = spatialDims == 1 ? "the length is \(imageShape[1])" : "the images are \(imageShape[1])x\(imageShape[2])"
            throw bad("--channel-mult", "\(channelMultipliers.count) levels divide the resolution by \(downsampling) \(channelMultipliers.count - 1) times, so each side must be divisible by \(factor); \(what)")
        }
        if !(1...8).contains(blocksPerLevel) { throw bad("--blocks-per-level", "must be between 1 and 8, got \(blocksPerLevel)") }
        if let l = attentionLevels.first(where: { !(0..<channelMultipliers.count).contains($0) }) {
            throw bad("--attention-levels", "level \(l) does not exist; the levels are 0..<\(channelMultipliers.count)")
        }
        if groups < 1 { throw bad("groups", "must be positive, got \(groups)") }
        for w in [baseWidth] + channelMultipliers.map({ $0 * baseWidth }) where w % groups != 0 || w % attentionHeads != 0 {
            throw bad("--base-width", "every width (\(w) here) must be divisible by the \(groups) GroupNorm groups and the \(attentionHeads) attention heads")
        }
        if attentionHeads < 1 { throw bad("attentionHeads", "must be positive, got \(attentionHeads)") }
        if !(dropout >= 0 && dropout < 1) { throw bad("--dropout", "must be in [0, 1), got \(dropout)") }
        if !(2...100_000).contains(timesteps) { throw bad("--timesteps", "must be between 2 and 100000, got \(timesteps)") }
        if conditionalClasses < 0 || conditionalClasses == 1 || conditionalClasses > 10_000 {
            throw bad("--model \(preset)", "needs labels with 2 to 10000 classes, got \(conditionalClasses)")
        }
        if !(labelDropout >= 0 && labelDropout < 1) { throw bad("labelDropout", "must be in [0, 1), got \(labelDropout)") }
        try DiffusionConfig.check(sampler, timesteps: timesteps, conditional: conditionalClasses > 0)
        if !(lr > 0 && lr.isFinite) { throw bad("--lr", "must be a positive number, got \(lr)") }
        if !(0..<1).contains(beta1) { throw bad("--beta1", "must be in [0, 1), got \(beta1)") }
        if !(0..<1).contains(beta2) { throw bad("--beta2", "must be in [0, 1), got \(beta2)") }
        if !(eps > 0 && eps.isFinite) { throw bad("--eps", "must be positive, got \(eps)") }
        if batchSize < 1 || batchSize > 1 << 20 { throw bad("--batch-size", "must be between 1 and 1048576, got \(batchSize)") }
        if epochs < 1 { throw bad("--epochs", "must be at least 1, got \(epochs)") }
        if !(weightDecay >= 0 && weightDecay < 1) { throw bad("--weight-decay", "must be in [0, 1), got \(weightDecay)") }
        if let m = clipGradNorm, !(m > 0 && m.isFinite) { throw bad("--clip-grad-norm", "must be a positive number, got \(m)") }
        if let d = emaDecay, !(d > 0 && d < 1) { throw bad("--ema", "the decay must be in (0, 1), e.g. 0.999, got \(d)") }
        if let b = dataScale, !(b >= 0.001 && b <= 1000) { throw bad("--data-scale", "must be a number in [0.001, 1000], got \(b)") }
    }

    /// Checks sampler settings against the model.
    ///
    /// - Throws: ``ConfigError`` naming `--steps`, `--eta` or `--guidance`.
    public static func check(_ s: DiffusionSamplerSettings, timesteps: Int, conditional: Bool) throws {
        if !(1...timesteps).contains(s.steps) { throw ConfigError(option: "--steps", problem: "must be between 1 and T = \(timesteps), got \(s.steps)") }
        if !(s.eta >= 0 && s.eta <= 10) { throw ConfigError(option: "--eta", problem: "must be between 0 and 10, got \(s.eta)") }
        if !(s.guidance >= 0 && s.guidance <= 100) { throw ConfigError(option: "--guidance", problem: "must be between 0 and 100, got \(s.guidance)") }
        if s.guidance != 0 && !conditional {
            throw ConfigError(option: "--guidance", problem: "classifier-free guidance needs a conditional model (e.g. --model ddpm-cond)")
        }
    }
}

extension DiffusionConfig {
    /// `diffusion`.
    public static var family: String { "diffusion" }

    /// The sampler starts from `x_T`, one value per pixel or sample: `C·H·W` or `C·T`.
    public var latentDim: Int { imageShape.reduce(1, *) }

    /// `image(C, H, W)`, or `sequence(C, T)` for a 1-D configuration.
    public var dataSpec: DataSpec {
        imageShape.count == 2 ? .sequence(channels: imageShape[0], length: imageShape[1])
            : .image(channels: imageShape[0], height: imageShape[1], width: imageShape[2])
    }

    /// Spatial axes of the U-Net: 2 for images `[C, H, W]`, 1 for signals `[C, T]`.
    public var spatialDims: Int { imageShape.count - 1 }

    /// The downsampling stride between levels: ``downsampleStride``, 2 when unset.
    public var downsampling: Int { downsampleStride ?? 2 }

    /// `tanh`: data normalised to [-1, 1] (samples are clipped to that range).
    public var outputActivation: OutputActivation { .tanh }


    /// Sets ``imageShape`` from the data: `[C, H, W]` for images, `[C, T]` for sequences.
    ///
    /// - Throws: ``ConfigError`` when the data is neither an image nor a sequence.
    public mutating func adapt(to data: DataSpec) throws {
        switch data {
        case .image(let c, let h, let w): imageShape = [c, h, w]
        case .sequence(let c, let t): imageShape = [c, t]
        default:
            throw ConfigError(option: "--model \(preset)", problem: "a diffusion model needs images or sequences, but the data is \(data)",
                              hint: "pass --shape C,H,W when each row holds an image (e.g. --shape 1,28,28), or --shape C,T for a signal")
        }
    }

    /// The input scaling factor b: ``dataScale``, 1 when unset.
    public var inputScale: Float { dataScale ?? 1 }

    /// The noise schedule of this configuration.
    public var noiseSchedule: NoiseSchedule { NoiseSchedule(schedule.kind, steps: timesteps) }

    /// Trainable parameters of the U-Net (for reports).
    public var parameterCount: Int {
        var rng = RandomGenerator(seed: 0)
        return UNet(config: self, rng: &rng).parameters.reduce(0) { $0 + $1.value.count }
    }
}

extension ModelConfig {
    /// A diffusion configuration wrapped for the registry.
    public static func diffusion(_ config: DiffusionConfig) -> ModelConfig { ModelConfig(config) }
    /// The diffusion configuration held, nil for other families.
    public var diffusion: DiffusionConfig? { config as? DiffusionConfig }
}
