import Foundation
import XCTest
import ConjureData
import ConjureModels
import ConjureTestSupport
@testable import ConjureTraining

/// Every preset of every family: a few steps are finite and reproducible, and the model
/// over-fits a tiny data set (8 MNIST digits).
final class PresetOverfitTests: XCTestCase {
    /// The first `n` images of the MNIST subset (28x28) or of the 8x8 digits, in [-1, 1] (or
    /// [0, 1] when `unit`), flattened, with their labels.
    static func tinyImages(_ n: Int, mnist: Bool, unit: Bool) throws -> (x: Tensor, labels: [Int]) {
        let file = mnist ? "data/mnist_5k.csv.gz" : "data/digits_8x8.csv.gz"
        let high: Float = mnist ? 255 : 16
        let ds = try Dataset.load(path: try sharedPath(file).path, options: DatasetOptions(labelColumn: .last))
        let sub = ds.subset(Array(0..<n)).flattened()
        let x = sub.samples.scalars.map { unit ? $0 / high : 2 * $0 / high - 1 }
        return (Tensor(shape: [n, sub.samples.shape[1]], scalars: x), sub.labels!)
    }

    /// The presets that model images or vectors (the text presets have their own tests:
    /// Tests/ConjureModelsTests/TextModelTests.swift).
    static var imagePresets: [String] {
        ModelConfig.presetNames.filter { name in
            var c = ModelConfig.presets[name]!
            return (try? c.adapt(to: c.needsImages ? .image(channels: 1, height: 28, width: 28) : .vector(64))) != nil
        }
    }

    /// The model of `preset` for `side`x`side` one-channel images, learning rates scaled.
    static func config(_ preset: String, side: Int, seed: UInt64, batch: Int, lrScale: Float = 1) -> ModelConfig {
        var c = ModelConfig.presets[preset]!
        try! c.adapt(to: c.needsImages ? .image(channels: 1, height: side, width: side) : .vector(side * side))
        if c.conditionalClasses > 0 { c.conditionalClasses = 10 }
        c.seed = seed
        c.batchSize = batch
        if var g = c.gan {
            g.generatorLR *= lrScale
            g.discriminatorLR *= lrScale
            g.emaDecay = nil  // a 1000-step average lags a few hundred steps of training
            c.config = g
        }
        return c
    }

    /// Mean over `samples` of the distance to the nearest of `train`, in units of the mean
    /// nearest-neighbour distance among the training images.
    static func nearestRatio(samples: Tensor, train: Tensor) -> Double {
        let d = train.shape[1]
        func dist(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
            var s = 0.0
            for (x, y) in zip(a, b) { s += Double(x - y) * Double(x - y) }
            return s.squareRoot()
        }
        let t = train.scalars, s = samples.scalars
        let n = train.shape[0], m = samples.shape[0]
        func row(_ v: [Float], _ i: Int) -> ArraySlice<Float> { v[(i * d)..<((i + 1) * d)] }
        let inter = (0..<n).map { i in (0..<n).filter { $0 != i }.map { dist(row(t, i), row(t, $0)) }.min()! }.reduce(0, +) / Double(n)
        let near = (0..<m).map { i in (0..<n).map { dist(row(s, i), row(t, $0)) }.min()! }.reduce(0, +) / Double(m)
        return near / inter
    }

    /// A GAN over-fits four images: its samples end up nearer to a training image than the
    /// training images are to each other (ratio < 0.85, from 1.1 to 2.2 at initialisation). MLP
    /// presets learn the 8x8 digits, convolutional ones four MNIST digits; learning rates x5 so
    /// that a few hundred steps suffice.
    func testPresetsOverfitTinyDataset() throws {
        // The diffusion presets learn in their own tests (Tests/ConjureModelsTests/DiffusionTests.swift):
        // 500 U-Net steps per preset would dominate the suite's time.
        for name in Self.imagePresets where ModelConfig.presets[name]!.family != "diffusion" {
            let image = ModelConfig.presets[name]!.needsImages
            let config = Self.config(name, side: image ? 28 : 8, seed: 5, batch: 4, lrScale: 5)
            let (x, labels) = try Self.tinyImages(4, mnist: image, unit: config.outputActivation == .sigmoid)
            var rng = RandomGenerator(seed: 5)
            let model = config.makeModel(rng: &rng)
            let optimization = Optimization(model: model, settings: config.optimization, seed: config.seed)
            let cond = config.conditionalClasses > 0
            var zRNG = RandomGenerator(seed: 5, stream: 1)
            let probeZ = Tensor.randomNormal([32, config.latentDim], using: &zRNG)
            let probeLabels = cond ? (0..<32).map { labels[$0 % 4] } : nil
            let before = Self.nearestRatio(samples: model.sample(z: probeZ, labels: probeLabels), train: x)
            let steps = image ? 500 : 600
            var first: StepMetrics?, last: StepMetrics?
            for step in 1...steps {
                let m = optimization.step(TrainingBatch(x: x, z: Tensor.randomNormal([4, config.latentDim], using: &zRNG), labels: cond ? labels : nil))
                XCTAssertNil(m.firstNonFinite, "\(name): step \(step) \(m.values)")
                if step == 1 { first = m }
                last = m
            }
            if let vae = model as? VAE {
                // A VAE over-fits by reconstructing its training images; its prior samples need not.
                let loss0 = first!["loss"]!, loss1 = last!["loss"]!
                let recon = Self.nearestRatio(samples: vae.reconstruct(x: x), train: x)
                print("\(name): negative ELBO \(loss0) -> \(loss1) nats; reconstruction ratio \(recon)")
                XCTAssertLessThan(loss1, 0.5 * loss0, "\(name): the negative ELBO should fall on 4 images")
                XCTAssertLessThan(recon, 0.5, "\(name): reconstructions should be near their training images")
                continue
            }
            let after = Self.nearestRatio(samples: model.sample(z: probeZ, labels: probeLabels), train: x)
            print("\(name): nearest-training-image ratio \(before) -> \(after); first \(first!.values) last \(last!.values)")
            XCTAssertGreaterThan(before, 1.0, "\(name): untrained samples are far from the data")
            XCTAssertLessThan(after, 0.85, "\(name): samples should reproduce the training images after \(steps) steps")
            XCTAssertLessThan(after / before, 0.72, "\(name): samples should move towards the training images")
        }
    }

    /// Every preset: three steps on a tiny batch give finite statistics, the same seed gives
    /// the same numbers and weights, another seed other numbers.
    func testPresetsFiniteAndDeterministic() throws {
        for name in Self.imagePresets {
            let image = ModelConfig.presets[name]!.needsImages
            func run(seed: UInt64) throws -> ([[Float]], [(String, Tensor)]) {
                let config = Self.config(name, side: image ? 28 : 8, seed: seed, batch: 4)
                let (x, labels) = try Self.tinyImages(4, mnist: image, unit: config.outputActivation == .sigmoid)
                var rng = RandomGenerator(seed: seed)
                let model = config.makeModel(rng: &rng)
                let optimization = Optimization(model: model, settings: config.optimization, seed: config.seed)
                var zRNG = RandomGenerator(seed: seed, stream: 1)
                var stats: [[Float]] = []
                for _ in 0..<3 {
                    let m = optimization.step(TrainingBatch(x: x, z: Tensor.randomNormal([4, config.latentDim], using: &zRNG),
                                                         labels: config.conditionalClasses > 0 ? labels : nil))
                    XCTAssertNil(m.firstNonFinite, "\(name): \(m.values)")
                    stats.append(m.values.map(\.value))
                }
                return (stats, model.stateDict())
            }
            let (a, wa) = try run(seed: 7), (b, wb) = try run(seed: 7), (c, _) = try run(seed: 8)
            XCTAssertEqual(a, b, "\(name): same seed, same statistics")
            XCTAssertEqual(wa.map(\.1.scalars), wb.map(\.1.scalars), "\(name): same seed, same weights")
            XCTAssertNotEqual(a, c, "\(name): another seed, other statistics")
        }
    }
}
