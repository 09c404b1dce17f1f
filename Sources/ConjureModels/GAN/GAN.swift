import ConjureData
import ConjureNN
import ConjureOptim

/// The GAN family in the registry: MLP GANs, DCGAN and their conditional forms, with the BCE,
/// least-squares, hinge and Wasserstein-GP objectives.
public enum GANFamily: ModelFamily {
    /// `gan`.
    public static let name = "gan"
    /// `seed`, `gan`, `lsgan`, `wgan-gp`, `hinge-sn`, `dcgan`, `cgan`, `cdcgan`.
    public static var presets: [String: GANConfig] { GANConfig.presets }
    /// A GAN with PyTorch's default initialisation (generator first, then discriminator).
    public static func make(_ config: GANConfig, rng: inout RandomGenerator) -> any GenerativeModel { GAN(config: config, rng: &rng) }
}

/// A generative adversarial network (Goodfellow et al. 2014): an MLP or DCGAN generator and
/// discriminator, optionally class-conditional, with one of the objectives of ``GANLoss``.
///
/// Parameter groups: `generator` (learning rate ``GANConfig/generatorLR``, averaged by `--ema`)
/// and `discriminator`. A step is the plan: a discriminator stage, then a generator stage on
/// every `nCritic`-th discriminator update, in the order of ``GANConfig/update``.
///
/// State-dict names follow PyTorch: `generator.0.weight` `[128, 100]`, ...,
/// `discriminator.2.bias` `[1]`; averaged weights `generator_ema.*`.
public final class GAN: GenerativeModel {
    /// The configuration.
    public let config: GANConfig
    /// `z` (++ one-hot label) → samples: `[N, dataDim]` (MLP) or `[N, C, H, W]` (DCGAN).
    public let generator: Sequential
    /// Samples (++ label) → logits `[N, 1]`.
    public let discriminator: Sequential
    /// The adversarial objective.
    public let objective: any GANObjective
    /// The gradient penalty of WGAN-GP, nil for other objectives.
    public let penalty: GradientPenalty?
    /// The critic's phase-shuffle layers (WaveGAN), reseeded every training step.
    let phaseShuffles: [PhaseShuffle]
    /// The parameter groups: generator, then discriminator.
    public let parameterGroups: [ParameterGroup]
    /// When true, each step keeps `fake`, `real_logits` and `fake_logits` in ``lastStep``.
    public var recordsStepTensors = false
    /// The values kept by the last step when ``recordsStepTensors`` is on.
    public private(set) var lastStep: [String: Tensor] = [:]

    /// `gan`.
    public var family: String { GANFamily.name }
    /// ``GANConfig/noiseDim``.
    public var latentDim: Int { config.noiseDim }
    /// `d_loss`, `g_loss`, `d_real`, `d_fake`.
    public var stepStatisticNames: [String] { ["d_loss", "g_loss", "d_real", "d_fake"] }
    /// `d_loss` and `g_loss`.
    public var lossStatisticCount: Int { 2 }

    /// Builds the networks with PyTorch's default initialisation from `rng` (DCGAN's N(0, 0.02)
    /// for the 32 and 64 px DCGANs), generator first, then discriminator.
    public init(config: GANConfig, rng: inout RandomGenerator) {
        self.config = config
        (generator, discriminator) = GAN.makeNetworks(config, rng: &rng)
        objective = config.loss.objective
        phaseShuffles = discriminator.layers.compactMap { $0 as? PhaseShuffle }
        penalty = config.loss == .wgangp ? GradientPenalty(lambda: config.gpLambda) : nil
        parameterGroups = [
            ParameterGroup(name: "generator", prefix: "generator.", namedParameters: generator.allNamedParameters(),
                           learningRate: config.generatorLR, averaged: true),
            ParameterGroup(name: "discriminator", prefix: "discriminator.", namedParameters: discriminator.allNamedParameters(),
                           learningRate: config.discriminatorLR),
        ]
    }

    /// Labels `(i + offset) mod K` for `n` samples of a conditional GAN, nil otherwise.
    public func balancedLabels(_ n: Int, offset: Int = 0) -> [Int]? {
        config.conditionalClasses > 0 ? (0..<n).map { ($0 + offset) % config.conditionalClasses } : nil
    }

    /// One-hot `[N, K]` labels for a conditional GAN, nil for an unconditional one.
    ///
    /// - Precondition: labels are given exactly when the GAN is conditional, in `0..<K`.
    func oneHot(_ labels: [Int]?, count n: Int) -> Tensor? {
        let k = config.conditionalClasses
        guard k > 0 else {
            precondition(labels == nil, "GAN: labels given to an unconditional GAN")
            return nil
        }
        guard let labels else { preconditionFailure("GAN: a conditional GAN needs labels") }
        precondition(labels.count == n && labels.allSatisfy { $0 >= 0 && $0 < k }, "GAN: \(labels.count) labels for \(n) samples, each in 0..<\(k)")
        var v = [Float](repeating: 0, count: n * k)
        for (i, l) in labels.enumerated() { v[i * k + l] = 1 }
        return Tensor(shape: [n, k], scalars: v)
    }

    /// The discriminator's input for flat samples `[N, dataDim]` and one-hot labels `y`:
    /// `[N, dataDim + K]` (conditional MLP), packed `[N/m, m·dataDim]` (PacGAN), images
    /// `[N, C, H, W]` with K constant label maps after the channels (conditional DCGAN), or
    /// signals `[N, C, T]` with K constant label channels after them (conditional WaveGAN).
    func discriminatorInput(_ x: Tensor, _ y: Tensor?) -> Tensor {
        switch config.architecture {
        case .mlp:
            if let y { return Tensor.concat([x, y], axis: 1) }
            return config.pack == 1 ? x : x.reshaped([x.shape[0] / config.pack, config.pack * config.dataDim])
        case .dcgan:
            let shape = config.imageShape ?? [1, 28, 28]
            let images = x.reshaped([x.shape[0]] + shape)
            guard let y else { return images }
            let (n, k) = (y.shape[0], y.shape[1])
            return Tensor.concat([images, y.reshaped([n, k, 1, 1]).expanded(to: [n, k, shape[1], shape[2]])], axis: 1)
        case .wavegan:
            let shape = config.signalShape ?? [1, 8192]
            let signals = x.reshaped([x.shape[0]] + shape)
            guard let y else { return signals }
            let (n, k) = (y.shape[0], y.shape[1])
            return Tensor.concat([signals, y.reshaped([n, k, 1]).expanded(to: [n, k, shape[1]])], axis: 1)
        }
    }

    /// `D(x | y)`: logits `[N, 1]` (`[N/m, 1]` packed).
    func discriminate(_ x: Tensor, _ y: Tensor?) -> Tensor { discriminator(discriminatorInput(x, y)) }

    /// `G(z | y)` with `network` (the live generator or the averaged copy): flat samples
    /// `[N, dataDim]`.
    func generate(_ z: Tensor, _ y: Tensor?, with network: Sequential? = nil) -> Tensor {
        let g = network ?? generator
        let out = g(y.map { Tensor.concat([z, $0], axis: 1) } ?? z)
        return out.rank == 2 ? out : out.reshaped([out.shape[0], config.dataDim])
    }

    /// The plan of one step on a real batch `x` `[N, dataDim]` and latent batch `z`
    /// `[M, noiseDim]`: the discriminator stage `L_D(D(x), D(G(z)))` (plus the gradient
    /// penalty), then the generator stage `L_G(D(G(z)))` through the updated discriminator on
    /// every `nCritic`-th discriminator update, on the same fakes (`alternating`) or on a fresh
    /// `z` (`alternating-fresh`); or both gradients at the same parameters (`simultaneous`).
    /// Conditional GANs generate and judge with the batch's labels.
    public func trainingStep(_ batch: TrainingBatch, context: StepContext) -> TrainingStep {
        let real = batch.x, z = batch.z
        precondition(real.rank == 2 && real.shape[1] == config.dataDim, "GAN.trainingStep: real batch \(real.shape), expected [N, \(config.dataDim)]")
        precondition(z.rank == 2 && z.shape[1] == config.noiseDim, "GAN.trainingStep: z \(z.shape), expected [M, \(config.noiseDim)]")
        precondition(real.shape[0] % config.pack == 0 && z.shape[0] % config.pack == 0,
                     "GAN.trainingStep: batch sizes \(real.shape[0]), \(z.shape[0]) not divisible by pack \(config.pack)")
        let y = oneHot(batch.labels, count: real.shape[0])
        // Phase-shuffle shifts from the forward-noise stream at the critic's update count, so
        // a resumed run draws the same shifts (each layer gets its own generator).
        if !phaseShuffles.isEmpty {
            var noise = context.random(.forwardNoise, counter: context.updates(of: "discriminator"))
            for p in phaseShuffles { p.rng = RandomGenerator(seed: noise.next()) }
        }
        generator.isTraining = true
        discriminator.isTraining = true
        if recordsStepTensors { lastStep = [:] }
        let stats = Stats()
        let simultaneous = config.update == .simultaneous
        let fresh = config.update == .alternatingFresh
        // The fakes: attached to G's graph unless the generator stage draws its own.
        let fake = fresh ? withoutGrad { generate(z, y) } : generate(z, y)
        record("fake", fake)

        let discriminatorStage = StepStage(group: "discriminator") { [self] in
            // Simultaneous: the fakes stay attached so that the generator stage reuses this
            // forward pass (the loss's gradients are taken for D's parameters only).
            let realLogits = discriminate(real, y)
            let fakeLogits = discriminate(simultaneous ? fake : fake.detached(), y)
            var loss = objective.discriminatorLoss(realLogits: realLogits, fakeLogits: fakeLogits)
            if let penalty {
                var rng = context.random(.gradientPenalty, counter: context.updates(of: "discriminator"))
                loss = loss + penalty(critic: { self.discriminate($0, y) }, real: real, fake: fake.detached(), rng: &rng)
            }
            record("real_logits", realLogits)
            record("fake_logits", fakeLogits)
            stats.dLoss = loss.item
            stats.dReal = objective.meanOutput(realLogits)
            stats.dFake = objective.meanOutput(fakeLogits)
            if simultaneous {
                stats.sharedFakeLogits = fakeLogits
            } else {
                // Reported when the generator stage does not run this step (n_critic > 1).
                stats.gLoss = objective.generatorLoss(fakeLogits: fakeLogits.detached()).item
            }
            return loss
        }
        let generatorStage = StepStage(group: "generator", every: config.nCritic) { [self] in
            let fakeLogits: Tensor
            if let shared = stats.sharedFakeLogits {
                fakeLogits = shared
                stats.sharedFakeLogits = nil
            } else if fresh {
                var rng = context.random(.freshLatent, counter: context.updates(of: "generator"))
                fakeLogits = discriminate(generate(Tensor.randomNormal(z.shape, using: &rng), y), y)
            } else {
                fakeLogits = discriminate(fake, y)
            }
            let loss = objective.generatorLoss(fakeLogits: fakeLogits)
            stats.gLoss = loss.item
            return loss
        }
        return TrainingStep(stages: [discriminatorStage, generatorStage], order: simultaneous ? .simultaneous : .sequential) {
            StepMetrics([("d_loss", stats.dLoss), ("g_loss", stats.gLoss), ("d_real", stats.dReal), ("d_fake", stats.dFake)])
        }
    }

    /// Statistics filled in by a step's stages.
    private final class Stats {
        var dLoss: Float = .nan, gLoss: Float = .nan, dReal: Float = .nan, dFake: Float = .nan
        var sharedFakeLogits: Tensor?
    }

    private func record(_ name: String, _ t: Tensor) { if recordsStepTensors { lastStep[name] = t.detached() } }

    /// `generator.`: sampling needs the generator only.
    public var samplingStatePrefixes: [String] { ["generator."] }

    /// Generator samples in evaluation mode (BatchNorm uses running statistics), no history,
    /// from a copy holding the averaged weights when the generator group has averages.
    ///
    /// - Shapes: `z` `[N, noiseDim]` → `[N, dataDim]` in the normalised range.
    public func sample(z: Tensor, labels: [Int]? = nil) -> Tensor {
        let y = oneHot(labels, count: z.shape[0])
        let network = samplingGenerator()
        let was = network.isTraining
        network.isTraining = false
        defer { network.isTraining = was }
        return withoutGrad { generate(z, y, with: network) }
    }

    /// The generator ``sample(z:labels:)`` evaluates: a copy holding the averaged weights (and
    /// the live BatchNorm statistics) when the generator group has averages, else the live one.
    func samplingGenerator() -> Sequential {
        guard let ema = parameterGroups[0].averages else { return generator }
        // Built for each call and dropped after it: kept between calls, the copy held a
        // generator's worth of memory for the rest of a training run (6 MB for `gan`, made by the
        // first sample grid or report), which the next step's transients then had to find in
        // new pages (peak RSS 94 -> 100-103 MB).
        var scratch = RandomStream.initialization.generator(seed: config.seed)
        let copy = GAN.makeGenerator(config, rng: &scratch)
        loadAveragedCopy(copy, from: generator, averages: ema)
        return copy
    }

    /// Parameters and buffers of both networks, `generator.*` then `discriminator.*`.
    public func stateDict() -> [(String, Tensor)] {
        generator.stateDict(prefix: "generator.") + discriminator.stateDict(prefix: "discriminator.")
    }

    /// Loads both networks from `state_dict` names.
    ///
    /// - Throws: ``StateDictError`` naming a missing key or a shape mismatch.
    public func loadStateDict(_ values: [String: Tensor]) throws {
        try generator.loadStateDict(values, prefix: "generator.")
        try discriminator.loadStateDict(values, prefix: "discriminator.")
    }
}
