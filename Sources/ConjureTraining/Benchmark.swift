import Foundation
import ConjureModels

/// Times GAN training steps on synthetic batches (no I/O), as the reference scripts in
/// ../shared/bench do: warm-up steps, then the median of repeated timed runs.
public enum Benchmark {
    public struct Result: Codable, Sendable {
        public var model: String
        /// The update order timed (`simultaneous`, `alternating`, `alternating-fresh`).
        public var update: String
        public var batch: Int
        public var threads: Int
        public var stepsPerSecondMedian: Double
        public var stepsPerSecondMin: Double
        public var stepsPerSecondMax: Double
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
    public static func run(config: GANConfig, batch: Int, threads: Int, warmup: Int = 50, steps: Int = 200,
                           repeats: Int = 7) -> Result {
        Parallel.setThreads(threads)
        Allocator.keepFreedBuffers()
        var rng = RandomGenerator(seed: 0)
        let gan = GAN(config: config, rng: &rng)
        let real = Tensor.randomUniform([batch, config.dataDim], low: -1, high: 1, using: &rng)
        let zs = (0..<8).map { _ in Tensor.randomNormal([batch, config.noiseDim], using: &rng) }
        for i in 0..<warmup { gan.trainStep(real: real, z: zs[i % zs.count], labels: gan.balancedLabels(batch)) }
        var rates: [Double] = []
        for _ in 0..<repeats {
            let t0 = DispatchTime.now().uptimeNanoseconds
            for i in 0..<steps { gan.trainStep(real: real, z: zs[i % zs.count], labels: gan.balancedLabels(batch)) }
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
            rates.append(Double(steps) / dt)
        }
        rates.sort()
        let median = rates.count % 2 == 1 ? rates[rates.count / 2] : (rates[rates.count / 2 - 1] + rates[rates.count / 2]) / 2
        return Result(model: config.preset, update: config.update.rawValue, batch: batch, threads: threads, stepsPerSecondMedian: median,
                      stepsPerSecondMin: rates.first!, stepsPerSecondMax: rates.last!,
                      samplesPerSecond: median * Double(batch), mflopPerStep: { let f = flopsPerStep(config, batch: batch); return f.isNaN ? nil : f / 1e6 }())
    }

    /// Matrix-product FLOPs of one step: every Linear's forward (2·N·in·out) and its backward
    /// (input and weight gradients where needed), for G once, D on real and fake, D again for G.
    public static func flopsPerStep(_ c: GANConfig, batch n: Int) -> Double {
        // Counted for the plain MLP step only: not for convolutions, labels, packing, several
        // critic steps per generator step or a gradient penalty's double backward.
        guard c.architecture == .mlp, c.conditionalClasses == 0, c.pack == 1, c.nCritic == 1, c.loss != .wgangp else { return .nan }
        func layers(_ sizes: [Int]) -> [(Int, Int)] { zip(sizes, sizes.dropFirst()).map { ($0, $1) } }
        let g = layers([c.noiseDim] + c.generatorHidden + [c.dataDim])
        let d = layers([c.dataDim] + c.discriminatorHidden + [1])
        let gf = g.reduce(0.0) { $0 + 2.0 * Double(n * $1.0 * $1.1) }
        let df = d.reduce(0.0) { $0 + 2.0 * Double(n * $1.0 * $1.1) }
        // G forward + G backward (weights + inputs, first layer has no input gradient).
        let gFirst = 2.0 * Double(n * g[0].0 * g[0].1)
        let gTotal = gf + 2 * gf - gFirst
        // D: forward real + fake, backward weights for both, inputs except the first layer.
        let dFirst = 2.0 * Double(n * d[0].0 * d[0].1)
        let dStep = 2 * df + 2 * (2 * df - dFirst)
        // G step: D backward to its input (no weight gradients), after a D forward on the
        // fakes unless the D step's forward serves (simultaneous), and after a second G forward
        // on a fresh z (alternating-fresh, the reference scripts' step).
        let dForG: Double
        switch c.update {
        case .simultaneous: dForG = df
        case .alternating: dForG = df + df
        case .alternatingFresh: dForG = df + df + gf
        }
        return gTotal + dStep + dForG
    }
}
