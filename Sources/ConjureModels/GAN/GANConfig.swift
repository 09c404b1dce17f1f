import ConjureData
import ConjureNN
import ConjureOptim

/// How the discriminator and generator updates of one training step are ordered.
public enum UpdateOrder: String, Codable, Sendable, CaseIterable {
    /// Both gradients from the same parameters, then both steps (the classic TensorFlow step).
    case simultaneous
    /// D step first; then the generator loss through the updated D on the same fakes.
    case alternating
    /// D step first (on fakes drawn without a graph); then the generator loss on a fresh latent
    /// batch through the updated D: one more generator forward pass per step. This is the step
    /// of the Keras GAN examples and of ../shared/bench's reference scripts. The fresh `z` is
    /// drawn from a generator seeded by (seed, generator step), so resumed runs are exact.
    case alternatingFresh = "alternating-fresh"
}

/// Output non-linearity of the generator, matched to the data normalisation.
public enum OutputActivation: String, Codable, Sendable {
    /// For data in [-1, 1] (`symmetric` normalisation).
    case tanh
    /// For data in [0, 1] (`unit` normalisation).
    case sigmoid
    /// No squashing (z-scored data).
    case identity
}

/// The adversarial objective.
public enum GANLoss: String, Codable, Sendable, CaseIterable {
    /// Binary cross-entropy on logits with the non-saturating generator loss (Goodfellow et al. 2014).
    case bce
    /// Least squares: D `½E[(D(x)-1)²] + ½E[D(G(z))²]`, G `½E[(D(G(z))-1)²]` (Mao et al. 2017).
    case lsgan
    /// Hinge: D `E[relu(1-D(x))] + E[relu(1+D(G(z)))]`, G `-E[D(G(z))]` (Lim & Ye 2017; Miyato et al. 2018).
    case hinge
    /// Wasserstein with gradient penalty: D `E[D(G(z))] - E[D(x)] + λ E[(‖∇D(x̂)‖-1)²]`,
    /// G `-E[D(G(z))]` (Gulrajani et al. 2017).
    case wgangp
}

/// Network family.
public enum GANArchitecture: String, Codable, Sendable {
    /// Fully connected networks on flat samples.
    case mlp
    /// Convolutional networks (Radford et al. 2016) on square 28, 32 or 64 px `[C, H, W]` images;
    /// at 28x28 the network of ../shared/bench/bench_torch_dcgan.py (see ``GANConfig/dcganPreset``).
    case dcgan
    /// WaveGAN (Donahue et al. 2019): 1-D transposed convolutions (kernel 25, stride 4) and a
    /// strided 1-D convolutional critic with phase shuffle, on `[C, T]` signals with T a multiple
    /// of 1024 (see ``GANConfig/waveganPreset``).
    case wavegan
}

/// Hidden-layer activation names.
public enum HiddenActivation: String, Codable, Sendable {
    /// `relu`: ReLU; `leakyrelu`: LeakyReLU with slope ``GANConfig/leakySlope``.
    case relu, leakyrelu
}

/// Everything that defines an MLP GAN and its optimisation. A preset is only a set of defaults.
public struct GANConfig: FamilyConfig, OptimizationFields, VectorOrImageConfig, Equatable {
    /// The preset this configuration started from (`seed`, `gan`, `lsgan`, `wgan-gp`, ...).
    public var preset: String
    /// Size of the latent `z ~ N(0, I)` fed to the generator.
    public var noiseDim: Int
    /// Flattened size of one data sample (784 for 28x28 MNIST).
    public var dataDim: Int
    /// Hidden widths of the generator, input side first.
    public var generatorHidden: [Int]
    /// Non-linearity after each generator hidden layer (after its BatchNorm1d, if any).
    public var generatorActivation: HiddenActivation
    /// BatchNorm1d after the Linear of each generator hidden layer (same length as
    /// `generatorHidden`).
    public var generatorBatchNorm: [Bool]
    /// The generator's last non-linearity; it must match the data normalisation's range.
    public var outputActivation: OutputActivation
    /// Hidden widths of the discriminator, input side first (LeakyReLU after each).
    public var discriminatorHidden: [Int]
    /// Negative slope of LeakyReLU.
    public var leakySlope: Float
    /// The generator's base learning rate (2e-4 in the `gan` preset), scaled by ``lrSchedule``.
    public var generatorLR: Float
    /// The discriminator's base learning rate (2e-4 in the `gan` preset), scaled by ``lrSchedule``.
    public var discriminatorLR: Float
    /// Adam's β1 for both networks (0.5 in the GAN presets, after Radford et al. 2016).
    public var beta1: Float
    /// Adam's β2 for both networks (0.999; 0.9 for `wgan-gp`).
    public var beta2: Float
    /// The optimiser's ε in the denominator (1e-8).
    public var eps: Float
    /// How the discriminator and generator updates of a step are ordered.
    public var update: UpdateOrder
    /// Real samples per discriminator step (and fakes per step), 64 in the presets.
    public var batchSize: Int
    /// Passes over the training split; the run's total steps are `epochs × steps per epoch`.
    public var epochs: Int
    /// The run's seed: every random stream (initialisation, latents, batches) derives from it.
    public var seed: UInt64
    /// PacGAN packing (Lin et al. 2018): the discriminator judges `pack` samples at once,
    /// concatenated into one input of `pack * dataDim`; 1 is the ordinary GAN.
    public var pack: Int = 1
    /// The adversarial objective.
    public var loss: GANLoss = .bce
    /// Discriminator (critic) updates per generator update; each uses its own batch.
    public var nCritic: Int = 1
    /// Gradient-penalty weight λ for `wgangp`.
    public var gpLambda: Float = 10
    /// Spectral normalisation of every discriminator weight (Miyato et al. 2018).
    public var spectralNorm: Bool = false
    /// Fully connected (`mlp`, default) or convolutional (`dcgan`, needs ``imageShape``) networks.
    public var architecture: GANArchitecture = .mlp
    /// `[C, H, W]` of samples for the convolutional architecture.
    public var imageShape: [Int]? = nil
    /// `[C, T]` of samples for the `wavegan` architecture (channels, length in samples), set
    /// from the data by the trainer; nil for the other architectures.
    public var signalShape: [Int]? = nil
    /// WaveGAN's model size `d` (the paper's 64): the generator's channels are `16d, 8d, 4d, 2d,
    /// d`, the critic's `d, 2d, 4d, 8d, 16d`. Used by the `wavegan` architecture only.
    public var modelSize: Int = 64
    /// WaveGAN's phase-shuffle width `n`: critic feature maps are shifted by up to `n` samples
    /// (the paper's 2; 0 turns it off). Used by the `wavegan` architecture only.
    public var phaseShuffle: Int = 2
    /// Class count of a conditional GAN (Mirza & Osindero 2014): the one-hot label is
    /// concatenated to `z` and to the discriminator's input. 0: unconditional.
    public var conditionalClasses: Int = 0
    /// The optimiser of both networks (Adam by default; `beta1`/`beta2` are Adam's betas).
    public var optimizer: OptimizerKind = .adam
    /// Weight decay: decoupled for AdamW (PyTorch's default 0.01 is not applied here: 0 means
    /// none), an L2 term added to the gradient for Adam and RMSprop.
    public var weightDecay: Float = 0
    /// Learning-rate schedule over the run's total steps, applied to both networks.
    public var lrSchedule: LRSchedule = .constant
    /// Clips the total L2 norm of each network's gradients to this value before each update
    /// (`torch.nn.utils.clip_grad_norm_`); nil: no clipping.
    public var clipGradNorm: Float? = nil
    /// Exponential moving average of the generator's weights with this decay (warmed up as
    /// `min(decay, (1+t)/(10+t))` at generator step t, TensorFlow's rule), updated after
    /// every generator step; when set, ``GAN/sample(z:labels:)`` (and so `sample`, `evaluate`
    /// and the grids) uses the averaged weights (Yazıcı et al. 2019). nil: off.
    public var emaDecay: Float? = nil

    enum CodingKeys: String, CodingKey {
        case preset, noiseDim, dataDim, generatorHidden, generatorActivation, generatorBatchNorm, outputActivation,
             discriminatorHidden, leakySlope, generatorLR, discriminatorLR, beta1, beta2, eps, update, batchSize, epochs, seed, pack,
             loss, nCritic, gpLambda, spectralNorm, architecture, imageShape, signalShape, modelSize, phaseShuffle, conditionalClasses,
             optimizer, weightDecay, lrSchedule, clipGradNorm, emaDecay
    }

    /// A configuration from the fields that have no default; the others take their declared
    /// defaults (BCE loss, one critic step, no spectral norm, MLP, unconditional, Adam, constant
    /// learning rate, no clipping, no EMA).
    public init(preset: String, noiseDim: Int, dataDim: Int, generatorHidden: [Int], generatorActivation: HiddenActivation,
                generatorBatchNorm: [Bool], outputActivation: OutputActivation, discriminatorHidden: [Int], leakySlope: Float,
                generatorLR: Float, discriminatorLR: Float, beta1: Float, beta2: Float, eps: Float, update: UpdateOrder,
                batchSize: Int, epochs: Int, seed: UInt64, pack: Int = 1) {
        self.preset = preset; self.noiseDim = noiseDim; self.dataDim = dataDim; self.generatorHidden = generatorHidden
        self.generatorActivation = generatorActivation; self.generatorBatchNorm = generatorBatchNorm
        self.outputActivation = outputActivation; self.discriminatorHidden = discriminatorHidden; self.leakySlope = leakySlope
        self.generatorLR = generatorLR; self.discriminatorLR = discriminatorLR; self.beta1 = beta1; self.beta2 = beta2
        self.eps = eps; self.update = update; self.batchSize = batchSize; self.epochs = epochs; self.seed = seed; self.pack = pack
    }

    /// Decodes `config.json`; keys added after the first release (`pack`, `loss`, ..., `emaDecay`)
    /// may be missing and take their defaults, so older run directories still load.
    /// - Throws: `DecodingError` when a required key is missing or of the wrong type.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(preset: try c.decode(String.self, forKey: .preset), noiseDim: try c.decode(Int.self, forKey: .noiseDim),
                  dataDim: try c.decode(Int.self, forKey: .dataDim), generatorHidden: try c.decode([Int].self, forKey: .generatorHidden),
                  generatorActivation: try c.decode(HiddenActivation.self, forKey: .generatorActivation),
                  generatorBatchNorm: try c.decode([Bool].self, forKey: .generatorBatchNorm),
                  outputActivation: try c.decode(OutputActivation.self, forKey: .outputActivation),
                  discriminatorHidden: try c.decode([Int].self, forKey: .discriminatorHidden),
                  leakySlope: try c.decode(Float.self, forKey: .leakySlope), generatorLR: try c.decode(Float.self, forKey: .generatorLR),
                  discriminatorLR: try c.decode(Float.self, forKey: .discriminatorLR), beta1: try c.decode(Float.self, forKey: .beta1),
                  beta2: try c.decode(Float.self, forKey: .beta2), eps: try c.decode(Float.self, forKey: .eps),
                  update: try c.decode(UpdateOrder.self, forKey: .update), batchSize: try c.decode(Int.self, forKey: .batchSize),
                  epochs: try c.decode(Int.self, forKey: .epochs), seed: try c.decode(UInt64.self, forKey: .seed),
                  pack: try c.decodeIfPresent(Int.self, forKey: .pack) ?? 1)
        loss = try c.decodeIfPresent(GANLoss.self, forKey: .loss) ?? .bce
        nCritic = try c.decodeIfPresent(Int.self, forKey: .nCritic) ?? 1
        gpLambda = try c.decodeIfPresent(Float.self, forKey: .gpLambda) ?? 10
        spectralNorm = try c.decodeIfPresent(Bool.self, forKey: .spectralNorm) ?? false
        architecture = try c.decodeIfPresent(GANArchitecture.self, forKey: .architecture) ?? .mlp
        imageShape = try c.decodeIfPresent([Int].self, forKey: .imageShape)
        signalShape = try c.decodeIfPresent([Int].self, forKey: .signalShape)
        modelSize = try c.decodeIfPresent(Int.self, forKey: .modelSize) ?? 64
        phaseShuffle = try c.decodeIfPresent(Int.self, forKey: .phaseShuffle) ?? 2
        conditionalClasses = try c.decodeIfPresent(Int.self, forKey: .conditionalClasses) ?? 0
        optimizer = try c.decodeIfPresent(OptimizerKind.self, forKey: .optimizer) ?? .adam
        weightDecay = try c.decodeIfPresent(Float.self, forKey: .weightDecay) ?? 0
        lrSchedule = try c.decodeIfPresent(LRSchedule.self, forKey: .lrSchedule) ?? .constant
        clipGradNorm = try c.decodeIfPresent(Float.self, forKey: .clipGradNorm)
        emaDecay = try c.decodeIfPresent(Float.self, forKey: .emaDecay)
    }

    /// The seed's network: G 100 -> 128 ReLU -> 256 ReLU -> 784 tanh; D 784 -> 128 LeakyReLU(0.2)
    /// -> 1; Adam(2e-4, 0.5, 0.999); simultaneous update. On the 5000-image MNIST subset this
    /// small discriminator lets the generator collapse to a few digits.
    public static let seedPreset = GANConfig(
        preset: "seed", noiseDim: 100, dataDim: 784, generatorHidden: [128, 256], generatorActivation: .relu,
        generatorBatchNorm: [false, false], outputActivation: .tanh, discriminatorHidden: [128], leakySlope: 0.2,
        generatorLR: 2e-4, discriminatorLR: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, update: .simultaneous,
        batchSize: 64, epochs: 100, seed: 0)

    /// The classic MLP GAN: G 100 -> 128 LeakyReLU -> 256 -> 512 -> 1024 (Linear, BatchNorm1d,
    /// LeakyReLU(0.2)) -> 784 tanh; D 784 -> 512 -> 256 (LeakyReLU 0.2) -> 1; Adam(2e-4, 0.5,
    /// 0.999); alternating update.
    ///
    /// Samples (grids, `sample`, `evaluate`) come from an exponential moving average of the
    /// generator's weights, decay 0.999 with warm-up (Yazıcı et al. 2019); training is
    /// unchanged. On the MNIST subset this lowers and steadies the FID (in-training mean 51
    /// against 57 over steps 6000-22000). `--ema 0` samples from the trained weights instead. Every preset built from
    /// this one (all but `seed`) inherits it.
    public static let ganPreset: GANConfig = {
        var c = GANConfig(
            preset: "gan", noiseDim: 100, dataDim: 784, generatorHidden: [128, 256, 512, 1024], generatorActivation: .leakyrelu,
            generatorBatchNorm: [false, true, true, true], outputActivation: .tanh, discriminatorHidden: [512, 256], leakySlope: 0.2,
            generatorLR: 2e-4, discriminatorLR: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, update: .alternating,
            batchSize: 64, epochs: 100, seed: 0)
        c.emaDecay = 0.999
        return c
    }()

    /// `gan` with least-squares losses (Mao et al. 2017).
    public static let lsganPreset: GANConfig = { var c = ganPreset; c.preset = "lsgan"; c.loss = .lsgan; return c }()

    /// WGAN-GP (Gulrajani et al. 2017): the `gan` networks (the critic has no BatchNorm), λ = 10,
    /// 5 critic steps per generator step, Adam(1e-4, 0.5, 0.9).
    public static let wganGPPreset: GANConfig = {
        var c = ganPreset
        c.preset = "wgan-gp"; c.loss = .wgangp; c.nCritic = 5; c.gpLambda = 10
        c.generatorLR = 1e-4; c.discriminatorLR = 1e-4; c.beta1 = 0.5; c.beta2 = 0.9
        return c
    }()

    /// Hinge loss with a spectrally normalised discriminator (Miyato et al. 2018), Adam(2e-4, 0.5, 0.999).
    public static let hingeSNPreset: GANConfig = { var c = ganPreset; c.preset = "hinge-sn"; c.loss = .hinge; c.spectralNorm = true; return c }()

    /// DCGAN (Radford et al. 2016) on `[C, H, W]` images, C in 1...4; the network is chosen by the
    /// image size (``imageShape``, set from the data by the trainer; the preset's default is
    /// `[1, 28, 28]`). Adam(2e-4, 0.5, 0.999), BCE, alternating update.
    ///
    /// - 28x28: exactly the network of ../shared/bench/bench_torch_dcgan.py, PyTorch's default
    ///   initialisation: G Linear 100->6272, BatchNorm1d, ReLU, [128,7,7], ConvTranspose2d 128->64
    ///   k4 s2 p1, BatchNorm2d, ReLU, ConvTranspose2d 64->C k4 s2 p1, tanh; D Conv2d C->64 k4 s2 p1,
    ///   LeakyReLU 0.2, Conv2d 64->128 k4 s2 p1, BatchNorm2d, LeakyReLU 0.2, Flatten, Linear 6272->1.
    /// - 64x64: the PyTorch DCGAN example (ngf = ndf = 64, no conv biases): G [100,1,1],
    ///   ConvTranspose2d 100->512 k4 s1 p0 (4x4), then 512->256->128->64 k4 s2 p1 (8, 16, 32), each
    ///   BatchNorm2d + ReLU, ConvTranspose2d 64->C k4 s2 p1 (64x64), tanh; D Conv2d C->64 k4 s2 p1,
    ///   LeakyReLU 0.2 (no BatchNorm), 64->128->256->512 k4 s2 p1 each BatchNorm2d + LeakyReLU 0.2
    ///   (down to 4x4), Conv2d 512->1 k4 s1 p0, logits `[N, 1]`. Conv weights N(0, 0.02),
    ///   BatchNorm weights N(1, 0.02), biases 0.
    /// - 32x32: the same with one stage fewer (G 100->256 at 4x4, 128, 64, C; D C->64->128->256, 256->1).
    ///
    /// With `loss` `wgangp` or `spectralNorm` the discriminator has no BatchNorm (and, at 32/64 px,
    /// keeps its conv biases). State-dict names: `generator.0` is the `Reshape` (no parameters) at
    /// 32/64 px, so `generator.1.weight` is the first ConvTranspose2d.
    public static let dcganPreset: GANConfig = {
        var c = ganPreset
        c.preset = "dcgan"; c.architecture = .dcgan; c.imageShape = [1, 28, 28]
        c.generatorHidden = []; c.generatorBatchNorm = []; c.discriminatorHidden = []; c.epochs = 20
        return c
    }()

    /// Class-conditional MLP GAN (Mirza & Osindero 2014): the `gan` networks with one-hot labels
    /// concatenated to `z` and to the discriminator input; the class count comes from the data.
    /// Samples come from an EMA of the generator's weights (decay 0.999): on the MNIST subset
    /// it lifts the classifier's agreement with `--label` from 47-85% to about 99%.
    public static let cganPreset: GANConfig = { var c = ganPreset; c.preset = "cgan"; c.conditionalClasses = 10; c.emaDecay = 0.999; return c }()

    /// Class-conditional DCGAN (Mirza & Osindero 2014 on Radford et al. 2016): the `dcgan`
    /// networks with the one-hot label concatenated to `z` (first layer input `noiseDim + K`) and
    /// given to the discriminator as K constant `H x W` maps after the image channels (first
    /// conv input `C + K`); the class count comes from the data. `conjure sample --label 7`.
    /// Samples come from an EMA of the generator's weights (decay 0.999), as for `cgan`.
    public static let cdcganPreset: GANConfig = { var c = dcganPreset; c.preset = "cdcgan"; c.conditionalClasses = 10; c.emaDecay = 0.999; return c }()

    /// WaveGAN (Donahue et al. 2019, "Adversarial Audio Synthesis", appendix table) on `[C, T]`
    /// signals in [-1, 1], T = 1024 · L0 (8192 by default, L0 = 8; the paper's 16384 gives L0 = 16):
    ///
    /// - G: Linear(100 [+ K], 16d·L0), reshape `[16d, L0]`, ReLU, then five ConvTranspose1d
    ///   (kernel 25, stride 4, padding 11, output padding 1) 16d → 8d → 4d → 2d → d → C with ReLU
    ///   between them and tanh at the end; no BatchNorm.
    /// - D (critic): five Conv1d (kernel 25, stride 4, padding 11) C [+ K] → d → 2d → 4d → 8d →
    ///   16d, each followed by LeakyReLU(0.2), and phase shuffle (n = 2) after the first four;
    ///   flatten, Linear(16d·L0, 1).
    /// - WGAN-GP (λ 10), 5 critic steps per generator step (alternating), Adam(1e-4, 0.5, 0.9),
    ///   batch 64, Glorot-uniform weights and zero biases (the authors' TensorFlow defaults), no
    ///   weight averaging.
    ///
    /// The model size defaults to d = 8 (`--model-size`; the paper's 64 has 64 times the
    /// convolution work): at T = 8192 that is 375,745 generator and 273,473 critic parameters
    /// (649,218 in all; d = 64: 18.2 M and 17.4 M). `conjure bench --model wavegan` times its
    /// step (about 3 critic steps/s on this 2-core machine, so 30 minutes give about 5000
    /// critic and 1000 generator steps). `--conditional` adds the one-hot label to `z` and K
    /// constant label channels to the critic's input, as `cgan`.
    public static let waveganPreset: GANConfig = {
        var c = wganGPPreset
        c.preset = "wavegan"; c.architecture = .wavegan; c.signalShape = [1, 8192]; c.dataDim = 8192
        c.generatorHidden = []; c.generatorBatchNorm = []; c.discriminatorHidden = []
        c.modelSize = 8; c.phaseShuffle = 2; c.emaDecay = nil; c.epochs = 1000
        return c
    }()

    /// Named presets.
    public static let presets: [String: GANConfig] = [
        "seed": seedPreset, "gan": ganPreset, "lsgan": lsganPreset, "wgan-gp": wganGPPreset, "hinge-sn": hingeSNPreset, "dcgan": dcganPreset, "cgan": cganPreset,
        "cdcgan": cdcganPreset, "wavegan": waveganPreset,
    ]

    /// Checks the options, naming the first bad one.
    public func validate() throws {
        func bad(_ option: String, _ problem: String) -> ConfigError { ConfigError(option: option, problem: problem) }
        if noiseDim <= 0 { throw bad("--noise-dim", "must be positive, got \(noiseDim)") }
        if dataDim <= 0 { throw bad("data", "sample size must be positive, got \(dataDim)") }
        if generatorHidden.contains(where: { $0 <= 0 }) { throw bad("--g-hidden", "widths must be positive, got \(generatorHidden)") }
        if discriminatorHidden.contains(where: { $0 <= 0 }) { throw bad("--d-hidden", "widths must be positive, got \(discriminatorHidden)") }
        if dataDim > 1 << 26 { throw bad("data", "sample size must be at most 2^26 values, got \(dataDim)") }
        if pack > 1 << 10 { throw bad("--pack", "must be at most 1024, got \(pack)") }
        if generatorBatchNorm.count != generatorHidden.count {
            throw bad("--g-batchnorm", "needs one flag per generator hidden layer (\(generatorHidden.count)), got \(generatorBatchNorm.count)")
        }
        for (name, v) in [("--lr-g", generatorLR), ("--lr-d", discriminatorLR)] where !(v > 0 && v.isFinite) {
            throw bad(name, "must be a positive number, got \(v)")
        }
        if !(0..<1).contains(beta1) { throw bad("--beta1", "must be in [0, 1), got \(beta1)") }
        if !(0..<1).contains(beta2) { throw bad("--beta2", "must be in [0, 1), got \(beta2)") }
        if !(eps > 0) { throw bad("--eps", "must be positive, got \(eps)") }
        if batchSize < 2 { throw bad("--batch-size", "must be at least 2, got \(batchSize)") }
        if epochs < 1 || epochs > 10_000_000 { throw bad("--epochs", "must be between 1 and 10000000, got \(epochs)") }
        // Refuse models that cannot be allocated rather than crash: 2^28 parameters (1 GiB of
        // Float32 per copy; weights, gradients and two Adam moments make four).
        let widths = [noiseDim] + generatorHidden + [dataDim]
        let dWidths = [dataDim * max(pack, 1)] + discriminatorHidden + [1]
        // In Double: Int arithmetic on widths near Int.max would overflow (a crash, not an error).
        let count = zip(widths, widths.dropFirst()).reduce(0.0) { $0 + (Double($1.0) + 1) * Double($1.1) }
            + zip(dWidths, dWidths.dropFirst()).reduce(0.0) { $0 + (Double($1.0) + 1) * Double($1.1) }
        if count > Double(1 << 28) {
            throw bad("--g-hidden/--d-hidden/--noise-dim", String(format: "the model would have %.3g parameters (%.1f GiB with gradients and Adam state); the limit is 2^28", count, count * 16 / 1_073_741_824))
        }
        if batchSize > 1 << 20 { throw bad("--batch-size", "must be at most 1048576, got \(batchSize)") }
        if !(leakySlope >= 0 && leakySlope < 1) { throw bad("--leaky-slope", "must be in [0, 1), got \(leakySlope)") }
        if nCritic < 1 || nCritic > 100 { throw bad("--n-critic", "must be between 1 and 100, got \(nCritic)") }
        if conditionalClasses < 0 || conditionalClasses == 1 || conditionalClasses > 10_000 {
            throw bad("--model \(preset)", "needs labels with 2 to 10000 classes, got \(conditionalClasses)")
        }
        if conditionalClasses > 0 && pack != 1 {
            throw bad("--model \(preset)", "conditioning is not available with packing (--pack \(pack))")
        }
        if nCritic > 1 && update == .simultaneous {
            throw bad("--update", "simultaneous cannot take \(nCritic) discriminator steps per generator step (n_critic \(nCritic)); use --update alternating or alternating-fresh, or --n-critic 1")
        }
        if !(weightDecay >= 0 && weightDecay < 1) { throw bad("--weight-decay", "must be in [0, 1), got \(weightDecay)") }
        if let m = clipGradNorm, !(m > 0 && m.isFinite) { throw bad("--clip-grad-norm", "must be a positive number, got \(m)") }
        if let d = emaDecay, !(d > 0 && d < 1) { throw bad("--ema", "the decay must be in (0, 1), e.g. 0.999, got \(d)") }
        if !(gpLambda >= 0 && gpLambda.isFinite) { throw bad("--gp-lambda", "must be a non-negative number, got \(gpLambda)") }
        if architecture == .wavegan {
            guard let shape = signalShape, shape.count == 2, shape[0] >= 1, shape[0] <= 16, shape[1] >= 1024, shape[1] % 1024 == 0,
                  shape[0] * shape[1] == dataDim else {
                throw ConfigError(option: "--model \(preset)", problem: "needs signals [C, T] with 1-16 channels and a length T that is a multiple of 1024 (T = 1024·L0 after five stride-4 layers), got samples of shape \(signalShape.map { "\($0)" } ?? "[\(dataDim)]")",
                                  hint: "crop or pad the clips to 8192 or 16384 samples (--length), or pass --shape 1,T for an .npy of clips")
            }
            if modelSize < 1 || modelSize > 256 { throw bad("--model-size", "must be between 1 and 256, got \(modelSize)") }
            if phaseShuffle < 0 || phaseShuffle >= shape[1] / 256 { throw bad("--phase-shuffle", "must be between 0 and \(shape[1] / 256 - 1) for length \(shape[1]), got \(phaseShuffle)") }
            if pack != 1 { throw bad("--pack", "packing is available for the MLP architecture only") }
            if spectralNorm { throw bad("--spectral-norm", "is not available for --model \(preset)") }
        }
        if architecture == .dcgan {
            guard let shape = imageShape, shape.count == 3, shape[1] == shape[2], [28, 32, 64].contains(shape[1]), shape[0] >= 1, shape[0] <= 4,
                  shape.reduce(1, *) == dataDim else {
                throw ConfigError(option: "--model \(preset)", problem: "needs square 28x28, 32x32 or 64x64 images with 1-4 channels, got samples of shape \(imageShape.map { "\($0)" } ?? "[\(dataDim)]")",
                                  hint: "resize or pad the images to one of those sizes, or use an MLP preset such as gan")
            }
            if pack != 1 { throw bad("--pack", "packing is available for the MLP architecture only") }
        }
        if pack < 1 || batchSize % pack != 0 || batchSize / pack < 2 {
            throw bad("--pack", "must be at least 1 and divide the batch size \(batchSize) into groups of at least 2, got \(pack)")
        }
    }
}


extension GANConfig {
    /// `gan`.
    public static var family: String { "gan" }

    /// ``noiseDim``.
    public var latentDim: Int { noiseDim }

    /// Whether the architecture needs images (the convolutional one).
    public var needsImageData: Bool { architecture == .dcgan }

    /// `sequence(C, T)` for WaveGAN, `image(C, H, W)` when ``imageShape`` is set, else
    /// `vector(dataDim)`.
    public var dataSpec: DataSpec {
        if architecture == .wavegan, let s = signalShape, s.count == 2 { return .sequence(channels: s[0], length: s[1]) }
        if let s = imageShape, s.count == 3 { return .image(channels: s[0], height: s[1], width: s[2]) }
        return .vector(dataDim)
    }

    /// Sets ``dataDim`` from the data, and ``imageShape`` (DCGAN) or ``signalShape`` (WaveGAN).
    ///
    /// - Throws: ``ConfigError`` naming `--model` when DCGAN is given data that is not an image
    ///   or WaveGAN data that is not a signal `sequence(C, T)`.
    public mutating func adapt(to data: DataSpec) throws {
        dataDim = data.flatCount
        switch architecture {
        case .mlp: return
        case .dcgan:
            guard let shape = data.imageShape else {
                throw ConfigError(option: "--model \(preset)", problem: "needs images, but the data is \(data)",
                                  hint: "pass --shape C,H,W when each row holds an image (e.g. --shape 1,28,28)")
            }
            imageShape = shape
        case .wavegan:
            guard case .sequence(let c, let t) = data else {
                throw ConfigError(option: "--model \(preset)", problem: "needs signals sequence(C, T), but the data is \(data)",
                                  hint: "train on a folder of audio files, or pass --shape 1,T for an .npy of [N, T] clips")
            }
            signalShape = [c, t]
        }
    }
}

extension ModelConfig {
    /// A GAN configuration wrapped for the registry.
    public static func gan(_ config: GANConfig) -> ModelConfig { ModelConfig(config) }
    /// The GAN configuration held, nil for other families.
    public var gan: GANConfig? { config as? GANConfig }
}
