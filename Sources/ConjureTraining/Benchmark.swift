import Foundation
import ConjureModels

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

    /// Runs `repeats` timed runs of `steps` steps after `warmup` steps.
    /// Any preset of any family: the model is built from seed 0, trained on a fixed batch of
    /// uniform values in [-1, 1] (in [0, 1] for a sigmoid output) with 8 latent batches in turn.
    public static func run(config: ModelConfig, batch: Int, threads: Int, warmup: Int = 50, steps: Int = 200,
                           repeats: Int = 7) -> Result {
        Parallel.setThreads(threads)
        Allocator.keepFreedBuffers()
        var rng = RandomGenerator(seed: 0)
        let model = config.makeModel(rng: &rng)
        let optimization = Optimization(model: model, settings: config.optimization, seed: 0)
        let low: Float = config.outputActivation == .tanh ? -1 : 0
        let real = Tensor.randomUniform([batch, config.dataDim], low: low, high: 1, using: &rng)
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
                      samplesPerSecond: median * Double(batch), mflopPerStep: (model as? StepCostModel)?.matrixFLOPsPerStep(batch: batch).map { $0 / 1e6 })
    }
}
