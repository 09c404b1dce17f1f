import Foundation
import ConjureData
import ConjureNN
import ConjureOptim

/// The diffusion family in the registry: DDPM/DDIM with a U-Net denoiser on images (2-D) or
/// signals such as audio (1-D), optionally class-conditional with classifier-free guidance.
public enum DiffusionFamily: ModelFamily {
    /// `diffusion`.
    public static let name = "diffusion"
    /// `ddpm`, `ddpm-cond`, `ddpm-1d`, `ddpm-1d-cond`.
    public static var presets: [String: DiffusionConfig] { DiffusionConfig.presets }
    /// A model with PyTorch's default initialisation (``UNet`` order).
    public static func make(_ config: DiffusionConfig, rng: inout RandomGenerator) -> any GenerativeModel {
        DiffusionModel(config: config, rng: &rng)
    }

    /// The data must be normalised to [-1, 1] (the noise schedule assumes unit-scale data and
    /// sampling clips to that range).
    ///
    /// - Throws: ``ConfigError`` naming `--normalize`.
    public static func checkNormalization(_ kind: Normalization, config: DiffusionConfig) throws {
        guard kind == .symmetric else {
            throw ConfigError(option: "--normalize", problem: "\(kind.rawValue) data does not suit --model \(config.preset): diffusion models work on data scaled to [-1, 1]",
                              hint: "use --normalize symmetric (the default)")
        }
    }
}

/// A denoising diffusion model (Ho et al. 2020) with DDPM and DDIM samplers (Song et al. 2021)
/// and classifier-free guidance (Ho & Salimans 2022).
///
/// Samples are flat `[N, C·H·W]` (signals: `[N, C·T]`) in the trainer's interface; the U-Net
/// sees `[N, C, H, W]` (signals: `[N, C, T]`).
/// The latent of ``sample(z:labels:)`` is `x_T` itself. State-dict names: `unet.*` (see
/// ``UNet``).
public final class DiffusionModel: GenerativeModel {
    /// The configuration the network was built from.
    public let config: DiffusionConfig
    /// The denoiser.
    public let unet: UNet
    /// The variance schedule (T steps).
    public let schedule: NoiseSchedule
    /// One group, `model`, averaged with `--ema` (the sampler uses the average).
    public let parameterGroups: [ParameterGroup]
    /// The sampler used by ``sample(z:labels:)``; starts as ``DiffusionConfig/sampler``.
    public var samplerSettings: DiffusionSamplerSettings
    /// Called after each denoising step of a sampling call with (steps done, steps in all).
    public var samplingProgress: ((Int, Int) -> Void)?
    /// Seed of the noise that DDPM and DDIM with `eta > 0` add at each step (the
    /// ``RandomStream/diffusionSampling`` stream; counter: the sampling call's index).
    public var samplingNoiseSeed: UInt64 = 0
    private var samplingCalls: UInt64 = 0
    private var averagedCopy: UNet?

    /// `diffusion`.
    public var family: String { DiffusionFamily.name }
    /// `C·H·W`: `z` is `x_T`.
    public var latentDim: Int { config.latentDim }
    /// `loss`: the mean squared error of the prediction.
    public var stepStatisticNames: [String] { ["loss"] }
    /// One.
    public var lossStatisticCount: Int { 1 }

    /// Balanced labels `(i + offset) mod K` for a conditional model.
    public func balancedLabels(_ n: Int, offset: Int) -> [Int]? {
        config.conditionalClasses > 0 ? (0..<n).map { ($0 + offset) % config.conditionalClasses } : nil
    }

    /// Builds the U-Net from `rng`.
    ///
    /// - Precondition: `config` is valid.
    public init(config: DiffusionConfig, rng: inout RandomGenerator) {
        self.config = config
        unet = UNet(config: config, rng: &rng)
        schedule = config.noiseSchedule
        samplerSettings = config.sampler
        parameterGroups = [ParameterGroup(name: "model", prefix: "unet.", namedParameters: unet.allNamedParameters(),
                                          learningRate: config.lr, stateKeyPrefix: "optimizer.", averaged: true, averagePrefix: "ema.unet.")]
    }

    /// Images `[N, C, H, W]` (or signals `[N, C, T]`) from flat or already shaped batches.
    func images(_ x: Tensor, _ op: String) -> Tensor {
        let d = config.latentDim
        precondition(x.rank >= 2 && x.shape[0] > 0 && x.count == x.shape[0] * d, "\(op): batch \(x.shape), expected [N, \(d)]")
        return x.reshaped([x.shape[0]] + config.imageShape)
    }

    // MARK: - Training

    /// The simple loss on given steps, noise and labels: `mean((f_θ(x_t, t, y) - target)²)`
    /// with `x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε` and the target ε or
    /// `v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x_0` (Ho et al. 2020 eq. 14; Salimans & Ho 2022).
    /// The network runs in its current mode.
    ///
    /// - Shapes: `x0`, `noise` `[N, C·H·W]` or `[N, C, H, W]`, `t` N steps, `labels` N classes
    ///   (the null class allowed) or nil → a scalar.
    public func loss(x0: Tensor, t: [Int], noise: Tensor, labels: [Int]?) -> Tensor {
        var x = images(x0, "DiffusionModel.loss")
        let e = images(noise, "DiffusionModel.loss")
        if config.inputScale != 1 { x = x * config.inputScale }
        let xt = schedule.noised(x, t: t, noise: e)
        let target = config.prediction == .epsilon ? e : schedule.vTarget(x0: x, t: t, noise: e)
        return (unet(xt, t: t, labels: labels) - target).squared().mean()
    }

    /// The plan of one step: a single stage on the simple loss (Ho et al. 2020, algorithm 1).
    ///
    /// Steps `t ~ U{0..T-1}`, the noise ε ~ N(0, I) and the label dropout come from the
    /// ``RandomStream/diffusion`` stream at the group's update count, the dropout masks from
    /// ``RandomStream/forwardNoise``, so a resumed run repeats the same draws. The trainer's
    /// `batch.z` is not used.
    ///
    /// - Shapes: `batch.x` `[N, C·H·W]` in [-1, 1].
    public func trainingStep(_ batch: TrainingBatch, context: StepContext) -> TrainingStep {
        let x = images(batch.x, "DiffusionModel.trainingStep")
        let n = x.shape[0], k = config.conditionalClasses
        let u = context.updates(of: "model")
        var r = context.random(.diffusion, counter: u)
        let t = (0..<n).map { _ in Int(r.next() % UInt64(config.timesteps)) }
        let noise = Tensor.randomNormal(x.shape, using: &r)
        var labels: [Int]? = nil
        if k > 0 {
            guard let given = batch.labels else { preconditionFailure("DiffusionModel: a conditional model needs labels") }
            precondition(given.count == n && given.allSatisfy { $0 >= 0 && $0 < k }, "DiffusionModel: \(given.count) labels for \(n) samples, each in 0..<\(k)")
            labels = given.map { r.nextUniform() < config.labelDropout ? k : $0 }
        } else {
            precondition(batch.labels == nil, "DiffusionModel: labels given to an unconditional model")
        }
        var masks = context.random(.forwardNoise, counter: u)
        for d in unet.dropouts { d.rng = RandomGenerator(seed: masks.next()) }
        unet.setTraining(true)
        var value = Float.nan
        let stage = StepStage(group: "model") { [self] in
            let l = loss(x0: x, t: t, noise: noise, labels: labels)
            value = l.item
            return l
        }
        return TrainingStep(stages: [stage]) { StepMetrics([("loss", value)]) }
    }

    // MARK: - Sampling

    /// The network holding the averaged weights when the run averages them, else the live one.
    func samplingNetwork() -> UNet {
        parameterGroups[0].averagedCopy(&averagedCopy, make: { [config] in
            var scratch = RandomStream.initialization.generator(seed: config.seed)
            return UNet(config: config, rng: &scratch)
        }, parameters: { $0.parameters }) ?? unet
    }

    /// The guided noise prediction ε̃ at step `t` (the same for every sample), in evaluation
    /// mode: `(1 + w) ε(x, y) - w ε(x, ∅)` for a conditional model with guidance `w > 0` (both
    /// predictions from one batch of 2N), `ε(x, y)` otherwise; v-predictions are converted with
    /// `ε = sqrt(ᾱ_t) v + sqrt(1 - ᾱ_t) x_t`.
    ///
    /// - Shapes: `x` `[N, C, H, W]` → `[N, C, H, W]`.
    public func guidedNoise(_ net: UNet, x: Tensor, t: Int, labels: [Int]?, guidance w: Double) -> Tensor {
        let n = x.shape[0]
        let steps = [Int](repeating: t, count: n)
        var out: Tensor
        if let labels, w != 0 {
            let both = net(Tensor.concat([x, x], axis: 0), t: steps + steps,
                           labels: labels + [Int](repeating: config.conditionalClasses, count: n))
            let cond = both.slice(axis: 0, 0..<n), uncond = both.slice(axis: 0, n..<(2 * n))
            out = cond * Float(1 + w) - uncond * Float(w)
        } else {
            out = net(x, t: steps, labels: labels)
        }
        if config.prediction == .v {
            let ab = schedule.alphasCumprod[t]
            out = out * Float(ab.squareRoot()) + x * Float((1 - ab).squareRoot())
        }
        return out
    }

    /// The DDIM step subsequence for `count` steps: `τ_i = round((i + 1) T / count) - 1`,
    /// i = 0..<count (always ending at T-1; all steps when `count = T`), in increasing order.
    public func ddimTimesteps(_ count: Int) -> [Int] {
        precondition(count >= 1 && count <= config.timesteps, "DiffusionModel.ddimTimesteps: \(count) outside 1...\(config.timesteps)")
        let tt = config.timesteps
        return (0..<count).map { i in Int((Double((i + 1) * tt) / Double(count)).rounded()) - 1 }
    }

    /// One generalised DDIM update (Song et al. 2021, eq. 12) from step `t` to the earlier
    /// step `prev` (`-1`: the data): `x_prev = sqrt(ᾱ_prev) x̂_0 + sqrt(1 - ᾱ_prev - σ²) ε̂ + σ z`
    /// with `σ = eta sqrt((1 - ᾱ_prev)/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_prev)`. For `prev = t - 1` this
    /// is ``NoiseSchedule/ddimStep(xt:t:epsPrediction:eta:noise:)``.
    ///
    /// - Shapes: `xt`, `eps`, `noise` (needed when `eta > 0`) `[N, ...]` → `[N, ...]`.
    public func ddimUpdate(xt: Tensor, t: Int, prev: Int, eps: Tensor, eta: Double, noise: Tensor?) -> Tensor {
        precondition(prev >= -1 && prev < t, "DiffusionModel.ddimUpdate: step \(t) to \(prev)")
        let ab = schedule.alphasCumprod[t], abPrev = schedule.alphaBar(prev)
        let x0 = (xt - eps * Float((1 - ab).squareRoot())) * Float(1 / ab.squareRoot())
        let sigma = eta * ((1 - abPrev) / (1 - ab)).squareRoot() * (1 - ab / abPrev).squareRoot()
        var out = x0 * Float(abPrev.squareRoot()) + eps * Float(Swift.max(1 - abPrev - sigma * sigma, 0).squareRoot())
        if eta > 0 {
            guard let noise else { preconditionFailure("DiffusionModel.ddimUpdate: eta \(eta) needs noise") }
            out = out + noise * Float(sigma)
        }
        return out
    }

    /// ε̂ after clipping `x̂_0 = (x_t - sqrt(1-ᾱ_t) ε̂) / sqrt(ᾱ_t)` to [-b, b] (b the input
    /// scale, ``DiffusionConfig/inputScale``):
    /// `(x_t - sqrt(ᾱ_t) clip(x̂_0)) / sqrt(1 - ᾱ_t)`.
    func clippedNoise(xt: Tensor, t: Int, eps: Tensor) -> Tensor {
        let ab = schedule.alphasCumprod[t]
        let b = config.inputScale
        let x0 = ((xt - eps * Float((1 - ab).squareRoot())) * Float(1 / ab.squareRoot())).clamped(-b, b)
        return (xt - x0 * Float(ab.squareRoot())) * Float(1 / (1 - ab).squareRoot())
    }

    /// Runs the reverse process from `x_T = z` with `settings`, in evaluation mode without
    /// autodiff history, from the averaged weights when the run averages them. `trajectory`, when
    /// given, receives `x_t` before every step and the result, in the data's units (divided by
    /// the input scale b, ``DiffusionConfig/inputScale``).
    ///
    /// - Shapes: `z` `[N, C·H·W]` standard normal → `[N, C·H·W]` in [-1, 1].
    /// - Precondition: `labels` (N classes in `0..<K`) exactly for a conditional model.
    public func sample(z: Tensor, labels: [Int]?, settings: DiffusionSamplerSettings, trajectory: ((Int, Tensor) -> Void)? = nil) -> Tensor {
        precondition(z.rank == 2 && z.shape[1] == latentDim, "DiffusionModel.sample: z \(z.shape), expected [N, \(latentDim)]")
        let k = config.conditionalClasses, n = z.shape[0]
        if k > 0 {
            guard let labels else { preconditionFailure("DiffusionModel.sample: a conditional model needs labels") }
            precondition(labels.count == n && labels.allSatisfy { $0 >= 0 && $0 < k }, "DiffusionModel.sample: \(labels.count) labels for \(n) samples, each in 0..<\(k)")
        } else {
            precondition(labels == nil, "DiffusionModel: labels given to an unconditional model")
        }
        let net = samplingNetwork()
        let wasTraining = net.isTraining
        net.setTraining(false)
        defer { net.setTraining(wasTraining) }
        var rng = RandomStream.diffusionSampling.generator(seed: samplingNoiseSeed, counter: samplingCalls)
        samplingCalls &+= 1
        let w = k > 0 ? settings.guidance : 0
        let b = config.inputScale
        let visit: ((Int, Tensor) -> Void)? = trajectory.map { f in { t, x in f(t, b == 1 ? x : x * (1 / b)) } }
        return withoutGrad {
            var x = images(z, "DiffusionModel.sample")
            switch settings.kind {
            case .ddpm:
                let total = config.timesteps
                for (done, t) in (0..<total).reversed().enumerated() {
                    visit?(t, x)
                    var eps = guidedNoise(net, x: x, t: t, labels: labels, guidance: w)
                    if settings.clipDenoised { eps = clippedNoise(xt: x, t: t, eps: eps) }
                    let noise = t > 0 ? Tensor.randomNormal(x.shape, using: &rng) : Tensor.zeros(x.shape)
                    x = schedule.ddpmStep(xt: x, t: [Int](repeating: t, count: n), epsPrediction: eps, noise: noise)
                    samplingProgress?(done + 1, total)
                }
            case .ddim:
                let seq = ddimTimesteps(settings.steps)
                for i in stride(from: seq.count - 1, through: 0, by: -1) {
                    let t = seq[i], prev = i > 0 ? seq[i - 1] : -1
                    visit?(t, x)
                    var eps = guidedNoise(net, x: x, t: t, labels: labels, guidance: w)
                    if settings.clipDenoised { eps = clippedNoise(xt: x, t: t, eps: eps) }
                    let noise = settings.eta > 0 ? Tensor.randomNormal(x.shape, using: &rng) : nil
                    x = ddimUpdate(xt: x, t: t, prev: prev, eps: eps, eta: settings.eta, noise: noise)
                    samplingProgress?(seq.count - i, seq.count)
                }
            }
            visit?(-1, x)
            if b != 1 { x = x * (1 / b) }
            return x.clamped(-1, 1).reshaped([n, latentDim])
        }
    }

    /// Samples with ``samplerSettings`` (DDIM 50 steps by default) from `x_T = z`.
    ///
    /// - Shapes: `z` `[N, C·H·W]` → `[N, C·H·W]` in [-1, 1].
    public func sample(z: Tensor, labels: [Int]?) -> Tensor {
        sample(z: z, labels: labels, settings: samplerSettings)
    }

    // MARK: - State

    /// The U-Net's parameters under `unet.`.
    public func stateDict() -> [(String, Tensor)] { unet.stateDict(prefix: "unet.") }

    /// Loads the U-Net's parameters from `unet.*` names.
    ///
    /// - Throws: ``StateDictError`` naming a missing key or a shape mismatch.
    public func loadStateDict(_ values: [String: Tensor]) throws { try unet.loadStateDict(values, prefix: "unet.") }
}

extension DiffusionModel: DiffusionSampling {
    /// ``samplerSettings`` described, e.g. `ddim 50 steps, eta 0.0, x0 clipped`.
    public var samplerDescription: String {
        samplerSettings.description(timesteps: config.timesteps, conditional: config.conditionalClasses > 0)
    }

    /// DDIM's ``DiffusionSamplerSettings/steps``, or T for DDPM.
    public var samplerStepCount: Int { samplerSettings.kind == .ddim ? samplerSettings.steps : config.timesteps }

    /// Checks and sets the sampler.
    ///
    /// - Throws: ``ConfigError`` naming `--steps`, `--eta` or `--guidance`.
    public func setSampler(_ settings: DiffusionSamplerSettings) throws {
        try DiffusionConfig.check(settings, timesteps: config.timesteps, conditional: config.conditionalClasses > 0)
        samplerSettings = settings
    }

    /// Samples with ``samplerSettings`` and hands every reverse-process state `(t, x_t)` (then
    /// `(-1, x_0)`) to `trajectory`, each shaped `[N, C·H·W]`.
    public func sample(z: Tensor, labels: [Int]?, trajectory: (Int, Tensor) -> Void) -> Tensor {
        let n = z.shape[0]
        return withoutActuallyEscaping(trajectory) { record in
            sample(z: z, labels: labels, settings: samplerSettings) { t, x in record(t, x.reshaped([n, self.latentDim])) }
        }
    }
}
