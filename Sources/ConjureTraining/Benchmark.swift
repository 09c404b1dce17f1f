import Foundation
import ConjureModels
import ConjureData

/// Times training steps of any family on synthetic batches (no I/O), as the reference scripts in
/// ../shared/bench do: warm-up steps, then the median of repeated timed runs; and, for models
/// that sample by a reverse diffusion process, the sampler's images per second.
public enum Benchmark {
    /// One benchmark measurement, printed by `conjure bench` (and as JSON).
    public struct Result: Codable, Sendable {
        /// The preset timed (`seed`, `gan`, `dcgan`, ...).
        public var model: String
        /// The update order timed (`simultaneous`, `alternating`, `alternating-fresh`).
        public var update: String
        /// Samples per batch.
        public var batch: Int
        /// Worker threads of the pool during the timing.
        public var threads: Int
        /// Median over the timed runs of training steps per second.
        public var stepsPerSecondMedian: Double
        /// Slowest timed run, in steps per second.
        public var stepsPerSecondMin: Double
        /// Fastest timed run, in steps per second.
        public var stepsPerSecondMax: Double
        /// Median steps per second times the batch size: samples per second.
        public var samplesPerSecond: Double
        /// MFLOP of matrix products per step (forward and backward); nil where not counted
        /// (convolutional networks).
        public var mflopPerStep: Double?
        /// Token models: predicted tokens per second (median steps/s x batch x context); nil otherwise.
        public var tokensPerSecond: Double?
        /// Models with the ``DiffusionSampling`` capability, when sampling was timed: the sampler
        /// the images per second are stated for (the preset's, e.g. `ddim 50 steps, eta 0.0, x0
        /// clipped`); nil otherwise.
        public var sampler: String?
        /// Reverse-process steps of each timed sampling run (see ``SamplingTiming``).
        public var sampleStepsTimed: Int?
        /// Median over the timed sampling runs of images (samples) per second with ``sampler``,
        /// at this result's batch and threads.
        public var imagesPerSecondMedian: Double?
        /// Slowest timed sampling run, in images per second.
        public var imagesPerSecondMin: Double?
        /// Fastest timed sampling run, in images per second.
        public var imagesPerSecondMax: Double?
    }

    /// The sampling speed of a diffusion model: images per second with its own sampler.
    public struct SamplingTiming: Sendable, Equatable {
        /// The sampler the rates are stated for, in words (``DiffusionSampling/samplerDescription``).
        public var sampler: String
        /// Denoiser passes of one sampling call with that sampler (50 for DDIM 50).
        public var stepsStated: Int
        /// Steps of each timed run.
        public var stepsTimed: Int
        /// Images per second, median of the timed runs.
        public var median: Double
        /// Images per second of the slowest timed run.
        public var min: Double
        /// Images per second of the fastest timed run.
        public var max: Double
    }

    /// Images per second of a sampler of `stepsStated` steps from a run of `stepsTimed` steps
    /// on `batch` images that took `seconds`: `batch / (seconds / stepsTimed x stepsStated)`.
    /// Each reverse step costs one denoiser pass whatever its t, so the per-step time of a short
    /// run gives the rate of the full sampler (the per-call overhead, copying the averaged weights
    /// into the sampling network, is charged to fewer steps: a slight underestimate).
    ///
    /// - Precondition: all positive.
    public static func imagesPerSecond(batch: Int, seconds: Double, stepsTimed: Int, stepsStated: Int) -> Double {
        precondition(batch > 0 && seconds > 0 && stepsTimed > 0 && stepsStated > 0,
                     "Benchmark.imagesPerSecond: batch \(batch), \(seconds) s, \(stepsTimed) of \(stepsStated) steps")
        return Double(batch) / (seconds / Double(stepsTimed) * Double(stepsStated))
    }

    /// Times the sampler of a diffusion model (any model with the ``DiffusionSampling``
    /// capability): one untimed call of one step, then `repeats` calls on `batch` images of
    /// `steps` reverse steps each, from the averaged weights as `conjure sample` does (with the
    /// model's labels and guidance: a guided conditional model evaluates 2 x `batch`). The
    /// sampler timed is the model's own with its step count set to `steps` (DDPM ancestral
    /// sampling, whose every call runs all T steps, is timed as DDIM with eta 1: the same work
    /// per step, one network pass and one Gaussian draw); the rates are stated for the model's
    /// own sampler by ``imagesPerSecond(batch:seconds:stepsTimed:stepsStated:)``. The model's
    /// sampler settings are restored afterwards.
    ///
    /// - Returns: nil for a model without the capability.
    /// - Precondition: `batch`, `repeats` ≥ 1; `steps` in `1...` the sampler's step count.
    public static func timeSampling(model: any GenerativeModel, batch: Int, steps: Int, repeats: Int) -> SamplingTiming? {
        guard let diffusion = model as? any DiffusionSampling else { return nil }
        let own = diffusion.samplerSettings, stated = diffusion.samplerStepCount
        precondition(batch >= 1 && repeats >= 1 && steps >= 1 && steps <= stated,
                     "Benchmark.timeSampling: batch \(batch), \(repeats) repeats, \(steps) of \(stated) steps")
        let description = diffusion.samplerDescription
        var timed = own
        if timed.kind == .ddpm { timed.kind = .ddim; timed.eta = 1 }
        defer { try! diffusion.setSampler(own) }
        var rng = RandomGenerator(seed: 1)
        let labels = model.balancedLabels(batch, offset: 0)
        func run(_ n: Int) -> Double {
            timed.steps = n
            try! diffusion.setSampler(timed)  // n is within 1...T
            let z = Tensor.randomNormal([batch, model.latentDim], using: &rng)
            let t0 = DispatchTime.now().uptimeNanoseconds
            _ = model.sample(z: z, labels: labels)
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        _ = run(1)
        let rates = (0..<repeats).map { _ in
            imagesPerSecond(batch: batch, seconds: Swift.max(run(steps), 1e-9), stepsTimed: steps, stepsStated: stated)
        }.sorted()
        return SamplingTiming(sampler: description, stepsStated: stated, stepsTimed: steps, median: medianOfSorted(rates),
                              min: rates.first!, max: rates.last!)
    }

    /// The median of sorted values (the mean of the middle two for an even count).
    static func medianOfSorted(_ sorted: [Double]) -> Double {
        sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }

    /// Reference steps/s of the seed-sized step on this machine kind (../shared/bench/REFERENCE.md):
    /// `[batch: [threads: (PyTorch 2.15 eager CPU wheel, JAX 0.10 lax.scan)]]`. The reference
    /// step is the `alternating-fresh` update on the seed networks.
    public static let referenceSeed: [Int: [Int: (torch: Double, jaxScan: Double)]] = [
        64: [1: (240, 400), 2: (332, 569)],
        256: [1: (88, 113), 2: (142, 193)],
    ]

    /// Reference steps/s of the `gan` preset's step (alternating, EMA 0.999) with PyTorch 2.13
    /// eager (CPU wheel) on this machine kind, from scripts/bench_torch_gan.py (median of 7 × 200
    /// steps): `[batch: [threads: steps/s]]`.
    public static let referenceGANTorch: [Int: [Int: Double]] = [64: [1: 48.3, 2: 74.4]]

    /// Reference steps/s of the `dcgan` preset's 28x28 step (alternating) with PyTorch 2.15 eager
    /// (CPU wheel, oneDNN) on this machine kind, from ../shared/bench/bench_torch_dcgan.py
    /// (REFERENCE.md): `[batch: [threads: steps/s]]`.
    public static let referenceDCGANTorch: [Int: [Int: Double]] = [64: [1: 8.3, 2: 12.8]]

    /// The fixed training batch of a benchmark: the model's own synthetic rows
    /// (``SyntheticRowsModel``, token indices for text), else uniform values in [-1, 1] ([0, 1]
    /// for a sigmoid output).
    public static func syntheticRows(model: any GenerativeModel, config: ModelConfig, batch: Int, rng: inout RandomGenerator) -> Tensor {
        if let m = model as? any SyntheticRowsModel { return m.syntheticRows(batch: batch, rng: &rng) }
        let low: Float = config.outputActivation == .tanh ? -1 : 0
        return Tensor.randomUniform([batch, config.dataDim], low: low, high: 1, using: &rng)
    }

    /// The configuration `bench` times for a preset: the preset itself, except that a text
    /// model is set up as for a character corpus (stream mode, a 65-character vocabulary as
    /// tinyshakespeare's, rows of `context + 1` tokens), so that tokens per step are
    /// `batch x context` as in nanoGPT's and the PyTorch scripts' step.
    public static func benchConfiguration(_ preset: ModelConfig) throws -> ModelConfig {
        var config = preset
        guard let t = config.tokenData else { return config }
        let characters = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".unicodeScalars
        config.adopt(vocabulary: Vocabulary(characters: characters, endOfSample: false), mode: .stream)
        try config.adapt(to: .tokens(vocabulary: characters.count, length: t.context + 1))
        return config
    }

    /// Tokens predicted per training step for a token model (`batch x (rowLength - 1)` in stream
    /// mode), nil for other families.
    public static func tokensPerStep(config: ModelConfig, batch: Int) -> Int? {
        guard config.tokenData != nil, case .tokens(_, let length) = config.dataSpec else { return nil }
        return batch * (length - 1)
    }

    /// Runs `repeats` timed runs of `steps` steps after `warmup` steps.
    /// Any preset of any family: the model is built from seed 0, trained on one fixed batch
    /// (``syntheticRows(model:config:batch:rng:)``) with 8 latent batches in turn. With
    /// `sampleSteps`, a model with the ``DiffusionSampling`` capability then has its sampler
    /// timed too (``timeSampling(model:batch:steps:repeats:)``, `repeats` runs of `sampleSteps`
    /// steps at the same batch and threads, from the weights the timed steps left).
    ///
    /// - Precondition: `sampleSteps`, when given, is in `1...` the model's sampler step count.
    public static func run(config: ModelConfig, batch: Int, threads: Int, warmup: Int = 50, steps: Int = 200,
                           repeats: Int = 7, sampleSteps: Int? = nil) -> Result {
        Parallel.setThreads(threads)
        Allocator.keepFreedBuffers()
        var rng = RandomGenerator(seed: 0)
        let model = config.makeModel(rng: &rng)
        let optimization = Optimization(model: model, settings: config.optimization, seed: 0)
        let real = syntheticRows(model: model, config: config, batch: batch, rng: &rng)
        let zs = (0..<8).map { _ in Tensor.randomNormal([batch, config.latentDim], using: &rng) }
        let labels = model.balancedLabels(batch, offset: 0)
        for i in 0..<warmup { optimization.step(TrainingBatch(x: real, z: zs[i % zs.count], labels: labels)) }
        var rates: [Double] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for i in 0..<steps { optimization.step(TrainingBatch(x: real, z: zs[i % zs.count], labels: labels)) }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            rates.append(Double(steps) / dt)
        }
        rates.sort()
        let median = medianOfSorted(rates)
        let update = (config.config as? GANConfig)?.update.rawValue ?? "-"
        let sampling = sampleSteps.flatMap { timeSampling(model: model, batch: batch, steps: $0, repeats: repeats) }
        return Result(model: config.preset, update: update, batch: batch, threads: threads, stepsPerSecondMedian: median,
                      stepsPerSecondMin: rates.first!, stepsPerSecondMax: rates.last!,
                      samplesPerSecond: median * Double(batch), mflopPerStep: (model as? StepCostModel)?.matrixFLOPsPerStep(batch: batch).map { $0 / 1e6 },
                      tokensPerSecond: tokensPerStep(config: config, batch: batch).map { Double($0) * median },
                      sampler: sampling?.sampler, sampleStepsTimed: sampling?.stepsTimed, imagesPerSecondMedian: sampling?.median,
                      imagesPerSecondMin: sampling?.min, imagesPerSecondMax: sampling?.max)
    }
}
