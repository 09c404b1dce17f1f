import XCTest
import ConjureData
import ConjureNN
@testable import ConjureModels
import ConjureTestSupport

/// The `wavegan` preset (Donahue et al. 2019): network shapes at T = 1024 and 8192, parameter
/// counts against the PyTorch modules' formulas, state-dict names, the conditional inputs, the
/// length check, and finite, same-seed-deterministic steps with the gradient penalty through
/// phase shuffle.
final class WaveGANTests: XCTestCase {
    /// The preset for `[channels, length]` signals with model size `d`, as the trainer sets it.
    func config(length: Int, d: Int, channels: Int = 1, classes: Int = 0, batch: Int = 4) -> GANConfig {
        var c = GANConfig.waveganPreset
        c.signalShape = [channels, length]
        c.dataDim = channels * length
        c.modelSize = d
        c.conditionalClasses = classes
        c.batchSize = batch
        return c
    }

    func parameterCount(_ module: Sequential) -> Int { module.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) } }

    /// nn.Linear, 5 nn.ConvTranspose1d (G) / 5 nn.Conv1d + nn.Linear (D), all with biases.
    func torchCount(d: Int, length: Int, c: Int = 1, k: Int = 0, nz: Int = 100) -> (g: Int, d: Int) {
        let l0 = length / 1024
        let gw = [16 * d, 8 * d, 4 * d, 2 * d, d, c], dw = [c + k, d, 2 * d, 4 * d, 8 * d, 16 * d]
        var g = (nz + k) * 16 * d * l0 + 16 * d * l0, dc = 16 * d * l0 + 1
        for i in 0..<5 {
            g += gw[i] * gw[i + 1] * 25 + gw[i + 1]
            dc += dw[i] * dw[i + 1] * 25 + dw[i + 1]
        }
        return (g, dc)
    }

    func testShapesAndParameterCounts() throws {
        for (length, d) in [(1024, 2), (8192, 8)] {
            let cfg = config(length: length, d: d)
            try cfg.validate()
            XCTAssertEqual(cfg.dataSpec, .sequence(channels: 1, length: length))
            var rng = RandomGenerator(seed: 0)
            let gan = GAN(config: cfg, rng: &rng)
            let expected = torchCount(d: d, length: length)
            XCTAssertEqual(parameterCount(gan.generator), expected.g, "T \(length) d \(d)")
            XCTAssertEqual(parameterCount(gan.discriminator), expected.d, "T \(length) d \(d)")
            let z = Tensor.randomNormal([2, 100], using: &rng)
            let signals = gan.generator(z)
            XCTAssertEqual(signals.shape, [2, 1, length])
            XCTAssert(signals.scalars.allSatisfy { abs($0) <= 1 }, "tanh output")
            XCTAssertEqual(gan.generate(z, nil).shape, [2, length], "flat rows for the trainer")
            XCTAssertEqual(gan.discriminate(gan.generate(z, nil), nil).shape, [2, 1])
            XCTAssertEqual(gan.sample(z: z).shape, [2, length])
            let names = Dictionary(uniqueKeysWithValues: gan.stateDict().map { ($0.0, $0.1.shape) })
            XCTAssertEqual(names["generator.0.weight"], [16 * d * length / 1024, 100])
            XCTAssertEqual(names["generator.3.weight"], [16 * d, 8 * d, 25], "ConvTranspose1d weight [Cin, Cout, k]")
            XCTAssertEqual(names["generator.11.weight"], [d, 1, 25])
            XCTAssertEqual(names["discriminator.0.weight"], [d, 1, 25])
            XCTAssertEqual(names["discriminator.12.weight"], [16 * d, 8 * d, 25])
            XCTAssertEqual(names["discriminator.15.weight"], [1, 16 * d * length / 1024])
            XCTAssertEqual(gan.phaseShuffles.count, 4)
        }
        // The preset's own size: the counts its doc comment states.
        XCTAssertEqual(torchCount(d: 8, length: 8192).g, 375_745)
        XCTAssertEqual(torchCount(d: 8, length: 8192).d, 273_473)
    }

    func testConditionalShapes() throws {
        let cfg = config(length: 1024, d: 2, classes: 3)
        try cfg.validate()
        var rng = RandomGenerator(seed: 0)
        let gan = GAN(config: cfg, rng: &rng)
        let expected = torchCount(d: 2, length: 1024, k: 3)
        XCTAssertEqual(parameterCount(gan.generator), expected.g)
        XCTAssertEqual(parameterCount(gan.discriminator), expected.d)
        let names = Dictionary(uniqueKeysWithValues: gan.stateDict().map { ($0.0, $0.1.shape) })
        XCTAssertEqual(names["generator.0.weight"], [32, 103], "z ++ one-hot")
        XCTAssertEqual(names["discriminator.0.weight"], [2, 1 + 3, 25], "signal ++ 3 label channels")
        let x = Tensor.randomUniform([2, 1024], low: -1, high: 1, using: &rng)
        let input = gan.discriminatorInput(x, gan.oneHot([2, 0], count: 2))
        XCTAssertEqual(input.shape, [2, 4, 1024])
        let v = input.scalars
        XCTAssertEqual(Array(v[0..<1024]), Array(x.scalars[0..<1024]), "signal channel first")
        for (i, label) in [2, 0].enumerated() {
            for k in 0..<3 {
                let channel = v[((i * 4 + 1 + k) * 1024)..<((i * 4 + 2 + k) * 1024)]
                XCTAssert(channel.allSatisfy { $0 == (k == label ? 1 : 0) }, "sample \(i) label channel \(k)")
            }
        }
        let z = Tensor.randomNormal([2, 100], using: &rng)
        XCTAssertEqual(gan.sample(z: z, labels: [1, 2]).shape, [2, 1024])
        XCTAssertEqual(gan.discriminate(gan.generate(z, gan.oneHot([1, 2], count: 2)), gan.oneHot([1, 2], count: 2)).shape, [2, 1])
    }

    func testLengthAndDataKindAreChecked() {
        var bad = config(length: 1024, d: 2)
        bad.signalShape = [1, 1000]
        bad.dataDim = 1000
        XCTAssertThrowsError(try bad.validate()) { XCTAssert("\($0)".contains("--model wavegan") && "\($0)".contains("multiple of 1024"), "\($0)") }
        var c = GANConfig.waveganPreset
        XCTAssertThrowsError(try c.adapt(to: .image(channels: 1, height: 32, width: 32))) { XCTAssert("\($0)".contains("sequence(C, T)"), "\($0)") }
        XCTAssertThrowsError(try c.adapt(to: .vector(2048))) { XCTAssert("\($0)".contains("--model wavegan"), "\($0)") }
        XCTAssertNoThrow(try c.adapt(to: .sequence(channels: 1, length: 16384)))
        XCTAssertEqual(c.signalShape, [1, 16384])
        XCTAssertNoThrow(try c.validate())
        c.modelSize = 0
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("--model-size"), "\($0)") }
        c.modelSize = 2
        c.phaseShuffle = 64
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("--phase-shuffle"), "\($0)") }
    }

    /// Six steps (five critic updates, one generator update, one more critic update): finite
    /// losses, both networks changed, the same values for the same seed, and phase-shuffle shifts
    /// in [-2, 2] drawn anew each step.
    func testStepsAreFiniteAndDeterministic() {
        func run() -> (losses: [Float], state: [(String, Tensor)], shifts: [[Int]], initial: [(String, Tensor)]) {
            let cfg = config(length: 1024, d: 2)
            var rng = RandomGenerator(seed: 0)
            let gan = GAN(config: cfg, rng: &rng)
            // Copies: the optimiser updates the parameter buffers in place.
            let initial = gan.stateDict().map { ($0.0, Tensor(shape: $0.1.shape, scalars: $0.1.scalars.map { $0 })) }
            var data = RandomGenerator(seed: 1)
            var losses: [Float] = [], shifts: [[Int]] = []
            for _ in 0..<6 {
                let real = Tensor.randomUniform([4, 1024], low: -1, high: 1, using: &data)
                let s = gan.trainStep(real: real, z: Tensor.randomNormal([4, 100], using: &data))
                losses += [s.dLoss, s.gLoss]
                shifts.append(gan.phaseShuffles[0].lastShifts)
            }
            return (losses, gan.stateDict(), shifts, initial)
        }
        let a = run(), b = run()
        XCTAssert(a.losses.allSatisfy(\.isFinite), "\(a.losses)")
        XCTAssertEqual(a.losses, b.losses)
        XCTAssert(a.shifts.joined().allSatisfy { (-2...2).contains($0) })
        XCTAssertNotEqual(a.shifts[0], a.shifts[1], "new shifts each step")
        XCTAssertEqual(a.shifts, b.shifts)
        for ((name, x), (_, y)) in zip(a.state, b.state) { XCTAssertEqual(x.scalars, y.scalars, name) }
        for ((name, x), (_, y)) in zip(a.state, a.initial) where name.hasSuffix("weight") {
            XCTAssertNotEqual(x.scalars, y.scalars, "\(name) updated (the generator after the fifth critic step)")
        }
    }
}
