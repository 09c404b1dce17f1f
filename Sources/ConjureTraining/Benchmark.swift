import Foundation
import ConjureModels
import ConjureData

/// Times GAN training steps on synthetic batches (no I/O), as the reference scripts in
/// ../shared/bench do: warm-up steps, then the median of repeated timed runs.
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
    /// (``syntheticRows(model:config:batch:rng:)``) with 8 latent batches in turn.
    public static func run(config: ModelConfig, batch: Int, threads: Int, warmup: Int = 50, steps: Int = 200,
                           repeats: Int = 7) -> Result {
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
        let median = rates.count % 2 == 1 ? rates[rates.count / 2] : (rates[rates.count / 2 - 1] + rates[rates.count / 2]) / 2
        let update = (config.config as? GANConfig)?.update.rawValue ?? "-"
        return Result(model: config.preset, update: update, batch: batch, threads: threads, stepsPerSecondMedian: median,
                      stepsPerSecondMin: rates.first!, stepsPerSecondMax: rates.last!,
                      samplesPerSecond: median * Double(batch), mflopPerStep: (model as? StepCostModel)?.matrixFLOPsPerStep(batch: batch).map { $0 / 1e6 },
                      tokensPerSecond: tokensPerStep(config: config, batch: batch).map { Double($0) * median })
    }
}
