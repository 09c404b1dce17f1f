import XCTest
import ConjureNN
@testable import ConjureModels
@testable import ConjureTensor
import ConjureTestSupport

/// The `dcgan` networks at 28, 32 and 64 px and the class-conditional `cdcgan`: shapes,
/// parameter counts against the PyTorch modules' formulas, finite training steps, same-seed
/// determinism, label conditioning and the image-size check of `validate()`.
final class DCGANTests: XCTestCase {
    /// The `dcgan` preset (or `cdcgan` with `classes` > 0) for `[C, side, side]` images, as the
    /// trainer sets it from the data.
    func config(channels: Int = 1, side: Int, classes: Int = 0, batch: Int = 4) -> GANConfig {
        var c = classes > 0 ? GANConfig.cdcganPreset : GANConfig.dcganPreset
        c.imageShape = [channels, side, side]
        c.dataDim = channels * side * side
        c.conditionalClasses = classes
        c.batchSize = batch
        return c
    }

    func parameterCount(_ module: Sequential) -> Int { module.parameters.reduce(0) { $0 + $1.shape.reduce(1, *) } }

    // MARK: Parameter counts, by hand from the PyTorch modules

    /// ../shared/bench/bench_torch_dcgan.py (biases everywhere, BatchNorm1d after the Linear).
    func torchCount28(c: Int, nz: Int = 100, k: Int = 0) -> (g: Int, d: Int) {
        let g = (nz + k) * 6272 + 6272 + 2 * 6272      // Linear + BatchNorm1d
            + 128 * 64 * 16 + 64 + 2 * 64               // ConvTranspose2d 128->64 + BatchNorm2d
            + 64 * c * 16 + c                           // ConvTranspose2d 64->C
        let d = (c + k) * 64 * 16 + 64                  // Conv2d C->64
            + 64 * 128 * 16 + 128 + 2 * 128             // Conv2d 64->128 + BatchNorm2d
            + 6272 + 1                                  // Linear 6272->1
        return (g, d)
    }

    /// The PyTorch DCGAN example (examples/dcgan/main.py, bias=False): 64 px with 4 stages; 32 px
    /// with one stage fewer.
    func torchCountDCGAN(c: Int, side: Int, nz: Int = 100, k: Int = 0) -> (g: Int, d: Int) {
        let ngf = 64, ndf = 64
        if side == 64 {
            let g = (nz + k) * ngf * 8 * 16 + 2 * ngf * 8
                + ngf * 8 * ngf * 4 * 16 + 2 * ngf * 4
                + ngf * 4 * ngf * 2 * 16 + 2 * ngf * 2
                + ngf * 2 * ngf * 16 + 2 * ngf
                + ngf * c * 16
            let d = (c + k) * ndf * 16
                + ndf * ndf * 2 * 16 + 2 * ndf * 2
                + ndf * 2 * ndf * 4 * 16 + 2 * ndf * 4
                + ndf * 4 * ndf * 8 * 16 + 2 * ndf * 8
                + ndf * 8 * 16
            return (g, d)
        }
        let g = (nz + k) * ngf * 4 * 16 + 2 * ngf * 4
            + ngf * 4 * ngf * 2 * 16 + 2 * ngf * 2
            + ngf * 2 * ngf * 16 + 2 * ngf
            + ngf * c * 16
        let d = (c + k) * ndf * 16
            + ndf * ndf * 2 * 16 + 2 * ndf * 2
            + ndf * 2 * ndf * 4 * 16 + 2 * ndf * 4
            + ndf * 4 * 16
        return (g, d)
    }

    func testParameterCountsMatchPyTorch() {
        // The example's well-known totals for 64 px RGB.
        XCTAssertEqual(torchCountDCGAN(c: 3, side: 64).g, 3_576_704)
        XCTAssertEqual(torchCountDCGAN(c: 3, side: 64).d, 2_765_568)
        for (c, side) in [(1, 28), (3, 28), (1, 32), (3, 32), (1, 64), (3, 64)] {
            var rng = RandomGenerator(seed: 1)
            let gan = GAN(config: config(channels: c, side: side), rng: &rng)
            let expected = side == 28 ? torchCount28(c: c) : torchCountDCGAN(c: c, side: side)
            XCTAssertEqual(parameterCount(gan.generator), expected.g, "G \(c)x\(side)x\(side)")
            XCTAssertEqual(parameterCount(gan.discriminator), expected.d, "D \(c)x\(side)x\(side)")
        }
        // Conditional: K more generator inputs and K more discriminator input channels.
        for side in [28, 32, 64] {
            var rng = RandomGenerator(seed: 1)
            let gan = GAN(config: config(side: side, classes: 10), rng: &rng)
            let expected = side == 28 ? torchCount28(c: 1, k: 10) : torchCountDCGAN(c: 1, side: side, k: 10)
            XCTAssertEqual(parameterCount(gan.generator), expected.g, "conditional G \(side)")
            XCTAssertEqual(parameterCount(gan.discriminator), expected.d, "conditional D \(side)")
        }
    }

    func testStateDictNamesFollowPyTorch() {
        var rng = RandomGenerator(seed: 0)
        let gan = GAN(config: config(channels: 3, side: 64), rng: &rng)
        let shapes = Dictionary(uniqueKeysWithValues: gan.stateDict().map { ($0.0, $0.1.shape) })
        // generator.0 is the Reshape to [nz, 1, 1] (PyTorch: nn.Unflatten(1, (nz, 1, 1))).
        XCTAssertEqual(shapes["generator.1.weight"], [100, 512, 4, 4])
        XCTAssertEqual(shapes["generator.2.running_var"], [512])
        XCTAssertEqual(shapes["generator.13.weight"], [64, 3, 4, 4])
        XCTAssertNil(shapes["generator.1.bias"])
        XCTAssertEqual(shapes["discriminator.0.weight"], [64, 3, 4, 4])
        XCTAssertEqual(shapes["discriminator.3.weight"], [128])  // BatchNorm2d
        XCTAssertEqual(shapes["discriminator.11.weight"], [1, 512, 4, 4])
        XCTAssertNil(shapes["discriminator.0.bias"])
        // DCGAN initialisation: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0.
        func stats(_ name: String) -> (mean: Float, std: Float) {
            let v = gan.stateDict().first { $0.0 == name }!.1.scalars
            let m = v.reduce(0, +) / Float(v.count)
            return (m, (v.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(v.count)).squareRoot())
        }
        XCTAssertEqual(stats("generator.1.weight").std, 0.02, accuracy: 0.001)
        XCTAssertEqual(stats("generator.1.weight").mean, 0, accuracy: 0.001)
        XCTAssertEqual(stats("generator.2.weight").mean, 1, accuracy: 0.01)
        XCTAssertGreaterThan(stats("generator.2.weight").std, 0.01)
        XCTAssertEqual(stats("generator.2.bias").std, 0)
        XCTAssertEqual(stats("discriminator.5.weight").std, 0.02, accuracy: 0.001)
    }

    // MARK: Shapes

    func checkShapes(channels c: Int, side: Int, batch n: Int) {
        var rng = RandomGenerator(seed: 2)
        let cfg = config(channels: c, side: side, batch: n)
        XCTAssertNoThrow(try cfg.validate())
        let gan = GAN(config: cfg, rng: &rng)
        let z = Tensor.randomNormal([n, cfg.noiseDim], using: &rng)
        let images = gan.generator(z)
        XCTAssertEqual(images.shape, [n, c, side, side], "G output \(c)x\(side)")
        XCTAssertTrue(images.scalars.allSatisfy { $0 >= -1 && $0 <= 1 }, "tanh output")
        XCTAssertEqual(gan.discriminator(images).shape, [n, 1], "D logits \(c)x\(side)")
        XCTAssertEqual(gan.sample(z: z).shape, [n, c * side * side], "flat samples")
        XCTAssertEqual(gan.discriminatorInput(gan.sample(z: z), nil).shape, [n, c, side, side])
    }

    func testShapes28() { checkShapes(channels: 1, side: 28, batch: 4) }
    func testShapes32() { checkShapes(channels: 1, side: 32, batch: 4) }
    func testShapes32RGB() { checkShapes(channels: 3, side: 32, batch: 4) }
    func testShapes64() { checkShapes(channels: 3, side: 64, batch: 2) }

    // MARK: Training steps

    /// `steps` training steps from seed 0 on uniform [-1, 1] data; the losses and final state.
    func train(_ cfg: GANConfig, steps: Int, labels: [Int]? = nil) -> (losses: [Float], state: [(String, Tensor)]) {
        var rng = RandomGenerator(seed: cfg.seed)
        let gan = GAN(config: cfg, rng: &rng)
        var data = RandomGenerator(seed: 99)
        var losses: [Float] = []
        var copies = 0
        for step in 0..<steps {
            if step == 1 { copies = TensorView.copiesForOtherHolders.current }
            let real = Tensor.randomUniform([cfg.batchSize, cfg.dataDim], low: -1, high: 1, using: &data)
            let z = Tensor.randomNormal([cfg.batchSize, cfg.noiseDim], using: &data)
            let s = gan.trainStep(real: real, z: z, labels: labels)
            losses += [s.dLoss, s.gLoss]
        }
        // No weight or gradient is held across an update, so the flat updates copy nothing.
        if steps > 1 { XCTAssertEqual(TensorView.copiesForOtherHolders.current, copies, "steps copied weights for other holders") }
        return (losses, gan.stateDict())
    }

    func checkTraining(_ cfg: GANConfig, steps: Int, labels: [Int]? = nil, _ what: String) {
        let a = train(cfg, steps: steps, labels: labels)
        XCTAssertEqual(a.losses.count, 2 * steps)
        XCTAssertTrue(a.losses.allSatisfy(\.isFinite), "\(what): losses \(a.losses)")
        XCTAssertTrue(a.state.allSatisfy { $0.1.scalars.allSatisfy(\.isFinite) }, "\(what): finite state")
        let b = train(cfg, steps: steps, labels: labels)
        XCTAssertEqual(a.losses, b.losses, "\(what): same seed, same losses")
        XCTAssertEqual(a.state.map(\.0), b.state.map(\.0))
        for ((name, x), (_, y)) in zip(a.state, b.state) { XCTAssertEqual(x.scalars, y.scalars, "\(what): \(name) after \(steps) steps") }
    }

    func testTrain28() { checkTraining(config(side: 28), steps: 2, "28x28") }
    func testTrain32() { checkTraining(config(side: 32), steps: 2, "32x32") }
    func testTrain32RGB() { checkTraining(config(channels: 3, side: 32), steps: 2, "3x32x32") }
    func testTrain64() { checkTraining(config(channels: 3, side: 64, batch: 2), steps: 1, "3x64x64") }

    /// A WGAN-GP critic and a spectrally normalised discriminator have no BatchNorm and keep
    /// their conv biases; the gradient penalty differentiates through the convolutions twice.
    func testCriticWithoutBatchNorm32() {
        for (loss, sn) in [(GANLoss.wgangp, false), (.hinge, true)] {
            var cfg = config(side: 32)
            cfg.loss = loss
            cfg.spectralNorm = sn
            var rng = RandomGenerator(seed: 0)
            let gan = GAN(config: cfg, rng: &rng)
            XCTAssertFalse(gan.discriminator.layers.contains { $0 is BatchNorm2d }, "\(loss)")
            let noBN = torchCountDCGAN(c: 1, side: 32).d - 2 * (128 + 256) + 64 + 128 + 256 + 1
            XCTAssertEqual(parameterCount(gan.discriminator), noBN, "\(loss): convs with biases, no BatchNorm")
            if sn { XCTAssertTrue(gan.stateDict().contains { $0.0 == "discriminator.0.weight_orig" }) }
            checkTraining(cfg, steps: 1, "32x32 \(loss)")
        }
    }

    // MARK: Conditional DCGAN

    func testConditionalDiscriminatorInputHasLabelMaps() {
        var rng = RandomGenerator(seed: 0)
        let gan = GAN(config: config(channels: 3, side: 32, classes: 4), rng: &rng)
        XCTAssertEqual(gan.discriminator.stateDict().first { $0.0 == "0.weight" }?.1.shape, [64, 3 + 4, 4, 4])
        XCTAssertEqual(gan.generator.stateDict().first { $0.0 == "1.weight" }?.1.shape, [100 + 4, 256, 4, 4])
        let x = Tensor.randomUniform([2, 3 * 32 * 32], low: -1, high: 1, using: &rng)
        let input = gan.discriminatorInput(x, gan.oneHot([2, 0], count: 2))
        XCTAssertEqual(input.shape, [2, 7, 32, 32])
        let v = input.scalars, hw = 32 * 32
        XCTAssertEqual(Array(v[0..<(3 * hw)]), Array(x.scalars[0..<(3 * hw)]), "image channels first")
        for (i, label) in [2, 0].enumerated() {
            for k in 0..<4 {
                let map = v[((i * 7 + 3 + k) * hw)..<((i * 7 + 4 + k) * hw)]
                XCTAssertTrue(map.allSatisfy { $0 == (k == label ? 1 : 0) }, "sample \(i) label map \(k)")
            }
        }
    }

    func checkConditional(channels c: Int, side: Int, batch n: Int, steps: Int) {
        let cfg = config(channels: c, side: side, classes: 10, batch: n)
        XCTAssertNoThrow(try cfg.validate())
        let labels = (0..<n).map { ($0 * 3) % 10 }
        checkTraining(cfg, steps: steps, labels: labels, "conditional \(c)x\(side)")

        var rng = RandomGenerator(seed: 3)
        let gan = GAN(config: cfg, rng: &rng)
        let z = Tensor.randomNormal([n, cfg.noiseDim], using: &rng)
        let seven = gan.sample(z: z, labels: [Int](repeating: 7, count: n))
        XCTAssertEqual(seven.shape, [n, c * side * side])
        XCTAssertEqual(gan.sample(z: z, labels: gan.balancedLabels(n)).shape, [n, c * side * side])
        let two = gan.sample(z: z, labels: [Int](repeating: 2, count: n))
        let diff = zip(seven.scalars, two.scalars).map { abs($0 - $1) }.max() ?? 0
        XCTAssertGreaterThan(diff, 1e-4, "the generator's output depends on the label")
        XCTAssertEqual(gan.sample(z: z, labels: [Int](repeating: 7, count: n)).scalars, seven.scalars, "sampling is deterministic")
    }

    func testConditional28() { checkConditional(channels: 1, side: 28, batch: 4, steps: 1) }
    func testConditional32() { checkConditional(channels: 3, side: 32, batch: 4, steps: 1) }

    // MARK: Presets and validation

    func testPresets() throws {
        let p = try XCTUnwrap(GANConfig.presets["cdcgan"])
        XCTAssertEqual(p, GANConfig.cdcganPreset)
        XCTAssertEqual(p.architecture, .dcgan)
        XCTAssertEqual(p.conditionalClasses, 10)
        XCTAssertEqual(p.imageShape, [1, 28, 28])
        XCTAssertNoThrow(try p.validate())
        let d = try XCTUnwrap(GANConfig.presets["dcgan"])
        XCTAssertEqual(d.imageShape, [1, 28, 28])
        XCTAssertEqual(d.dataDim, 784)
        XCTAssertNoThrow(try d.validate())
    }

    func testValidateRejectsOtherImageSizes() {
        for shape in [[1, 30, 30], [3, 32, 28], [5, 32, 32], [1, 16, 16], [1, 128, 128]] {
            var cfg = GANConfig.dcganPreset
            cfg.imageShape = shape
            cfg.dataDim = shape.reduce(1, *)
            XCTAssertThrowsError(try cfg.validate(), "\(shape)") { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains("--model dcgan") && text.contains("28x28, 32x32 or 64x64") && text.contains("\(shape)"), text)
            }
        }
        // Flat samples with no image shape.
        var flat = GANConfig.dcganPreset
        flat.imageShape = nil
        flat.dataDim = 900
        XCTAssertThrowsError(try flat.validate()) { XCTAssertTrue("\($0)".contains("[900]"), "\($0)") }
        // Conditioning works with dcgan, packing still does not.
        var packed = config(side: 32, classes: 10)
        XCTAssertNoThrow(try packed.validate())
        packed.pack = 2
        XCTAssertThrowsError(try packed.validate()) { XCTAssertTrue("\($0)".contains("pack"), "\($0)") }
    }
}
