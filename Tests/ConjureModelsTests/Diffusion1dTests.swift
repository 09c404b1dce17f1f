import XCTest
import ConjureNN
import ConjureOptim
@testable import ConjureModels
@testable import ConjureTensor
import ConjureTestSupport

/// The 1-D U-Net of waveform diffusion (`ddpm-1d`): shapes and state-dict names (the 2-D
/// network's names with 1-D kernels), finite-difference gradients through Conv1d, the stride-4
/// downsampling and the nearest ×4 upsampling, training steps that lower the loss, conditional
/// sampling with guidance, and the preset's size and checks.
final class Diffusion1dTests: XCTestCase {
    /// A tiny 1-D U-Net for `[1, 256]` signals: widths 8 and 16, stride-4 downsampling
    /// (256 → 64), attention at the lowest level.
    func tiny(classes: Int = 0, prediction: DiffusionPrediction = .v) -> DiffusionConfig {
        DiffusionConfig(preset: "tiny-1d", imageShape: [1, 256], baseWidth: 8, channelMultipliers: [1, 2], downsampleStride: 4,
                        blocksPerLevel: 1, attentionLevels: [1], attentionHeads: 2, groups: 4, timesteps: 100, schedule: .cosine,
                        prediction: prediction, conditionalClasses: classes, lr: 2e-3, batchSize: 8, emaDecay: nil)
    }

    func model(_ c: DiffusionConfig, seed: UInt64 = 1) -> DiffusionModel {
        var rng = RandomGenerator(seed: seed)
        return DiffusionModel(config: c, rng: &rng)
    }

    /// Decaying tones in [-1, 1], a different pitch per sample: `[n, 256]`.
    func tones(_ n: Int) -> Tensor {
        var v = [Float](repeating: 0, count: n * 256)
        for i in 0..<n { for j in 0..<256 {
            v[i * 256 + j] = 0.8 * Float(exp(-Double(j) / 128) * sin(Double(j) * 0.05 * Double(i + 1)))
        } }
        return Tensor(shape: [n, 256], scalars: v)
    }

    func testOneDUNetKeepsTheShapeAndUsesTheImageNetworksNames() throws {
        let c = tiny(classes: 3)
        try c.validate()
        XCTAssertEqual(c.dataSpec, .sequence(channels: 1, length: 256))
        let m = model(c)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor.randomNormal([2, 1, 256], using: &rng)
        XCTAssertEqual(m.unet(x, t: [0, 99], labels: [1, 3]).shape, [2, 1, 256])
        // The same modules as the 2-D net of the same widths, in the same state_dict order.
        var image = c
        image.imageShape = [1, 8, 8]; image.downsampleStride = nil
        XCTAssertEqual(m.stateDict().map(\.0), model(image).stateDict().map(\.0))
        let shapes = Dictionary(uniqueKeysWithValues: m.stateDict().map { ($0.0, $0.1.shape) })
        XCTAssertEqual(shapes["unet.conv_in.weight"], [8, 1, 3])
        XCTAssertEqual(shapes["unet.down.0.downsample.conv.weight"], [8, 8, 7], "stride 4: kernel 2·4 - 1")
        XCTAssertEqual(shapes["unet.up.0.resnets.0.conv1.weight"], [16, 32, 3])
        XCTAssertEqual(shapes["unet.up.0.upsample.conv.weight"], [16, 16, 3])
        XCTAssertEqual(shapes["unet.down.1.attentions.0.attn.in_proj_weight"], [48, 16])
        XCTAssertEqual(shapes["unet.conv_out.weight"], [1, 8, 3])
        // A length that 4 does not divide is refused with the option named.
        var bad = c
        bad.imageShape = [1, 250]
        XCTAssertThrowsError(try bad.validate()) { XCTAssert("\($0)".contains("--channel-mult") && "\($0)".contains("divisible by 4"), "\($0)") }
        bad = c
        bad.downsampleStride = 3
        XCTAssertThrowsError(try bad.validate()) { XCTAssert("\($0)".contains("--downsample-stride"), "\($0)") }
    }

    /// Central differences of the simple loss against autodiff for parameters on both sides of
    /// the stride-4 downsampling and ×4 upsampling.
    func testLossGradientsMatchFiniteDifferences() {
        let m = model(tiny(classes: 3), seed: 3)
        var r = RandomGenerator(seed: 4)
        m.unet.convOut.weight.assign(.randomNormal(m.unet.convOut.weight.shape, std: 0.1, using: &r))
        let x = tones(2), noise = Tensor.randomNormal([2, 256], using: &r)
        let t = [7, 80], labels = [2, 3]
        func lossValue() -> Double { Double(withoutGrad { m.loss(x0: x, t: t, noise: noise, labels: labels) }.item) }
        let named = Dictionary(uniqueKeysWithValues: m.unet.allNamedParameters())
        let picked = ["conv_in.weight", "down.0.downsample.conv.weight", "down.1.attentions.0.attn.in_proj_weight",
                      "mid.resnet1.conv1.weight", "up.0.upsample.conv.weight", "up.1.resnets.0.conv_shortcut.weight", "label_embed.weight"]
        let params = picked.map { named[$0]! }
        let grads = Tensor.gradients(of: m.loss(x0: x, t: t, noise: noise, labels: labels), wrt: params.map(\.value))
        for (name, (p, g)) in zip(picked, zip(params, grads)) {
            for i in g.scalars.indices.sorted(by: { abs(g.scalars[$0]) > abs(g.scalars[$1]) }).prefix(2) {
                let h: Float = 1e-2, original = p.value.scalars[i]
                p.update { $0[i] = original + h }
                let plus = lossValue()
                p.update { $0[i] = original - h }
                let minus = lossValue()
                p.update { $0[i] = original }
                let numeric = (plus - minus) / (2 * Double(h))
                XCTAssertGreaterThan(abs(numeric), 1e-6, "\(name) carries gradient")
                XCTAssertEqual(Double(g.scalars[i]), numeric, accuracy: 2e-3 + 3e-2 * abs(numeric), "d loss / d \(name)[\(i)]")
            }
        }
    }

    /// Adam steps through the trainer's Optimization lower the loss at fixed steps and noise.
    func testTrainingStepsLowerTheLoss() {
        let c = tiny()
        let m = model(c)
        let o = Optimization(model: m, settings: c.optimization, seed: 5)
        let x = tones(8)
        var r = RandomGenerator(seed: 6)
        let noise = Tensor.randomNormal([8, 256], using: &r), t = (0..<8).map { 5 + 12 * $0 }
        func probe() -> Float { m.unet.setTraining(false); return withoutGrad { m.loss(x0: x, t: t, noise: noise, labels: nil) }.item }
        let before = probe()
        var losses: [Float] = []
        losses.append(o.step(TrainingBatch(x: x, z: Tensor.zeros([8, 256]), labels: nil))["loss"]!)
        let copies = TensorView.copiesForOtherHolders.current
        for _ in 0..<39 { losses.append(o.step(TrainingBatch(x: x, z: Tensor.zeros([8, 256]), labels: nil))["loss"]!) }
        XCTAssertEqual(TensorView.copiesForOtherHolders.current, copies, "the flat in-place updates copied weights for other holders")
        XCTAssert(losses.allSatisfy { $0.isFinite }, "\(losses)")
        let after = probe()
        XCTAssertLessThan(after, 0.7 * before, "loss at fixed t and noise: \(before) -> \(after)")
    }

    /// Conditional sampling with guidance: `[N, C·T]` rows in [-1, 1]; guidance 2 is
    /// `3 v(x, y) - 2 v(x, ∅)` converted to ε.
    func testConditionalSamplingWithGuidance() {
        let m = model(tiny(classes: 3))
        var r = RandomGenerator(seed: 8)
        m.unet.convOut.weight.assign(.randomNormal(m.unet.convOut.weight.shape, std: 0.1, using: &r))
        m.unet.setTraining(false)
        let x = Tensor.randomNormal([3, 1, 256], using: &r), labels = [0, 1, 2]
        let cond = withoutGrad { m.unet(x, t: [40, 40, 40], labels: labels) }
        let uncond = withoutGrad { m.unet(x, t: [40, 40, 40], labels: [3, 3, 3]) }
        let ab = Float(m.schedule.alphasCumprod[40])
        let w2 = withoutGrad { m.guidedNoise(m.unet, x: x, t: 40, labels: labels, guidance: 2) }
        assertClose(w2, (cond * 3 - uncond * 2) * ab.squareRoot() + x * (1 - ab).squareRoot(), rtol: 1e-4, atol: 1e-5)
        let z = Tensor.randomNormal([3, 256], using: &r)
        for kind in [DiffusionSamplerKind.ddim, .ddpm] {
            let s = m.sample(z: z, labels: labels, settings: DiffusionSamplerSettings(kind: kind, steps: 4, guidance: 2))
            XCTAssertEqual(s.shape, [3, 256])
            XCTAssert(s.scalars.allSatisfy { $0 >= -1 && $0 <= 1 }, "\(kind): clipped to [-1, 1]")
            XCTAssertGreaterThan(s.scalars.map(abs).max()!, 0.01, "\(kind): not all zero")
        }
    }

    /// Input scaling (Chen 2023): a model with data scale b trains on b·x0 (its loss is the
    /// unscaled model's loss on b·x0) and its sampler runs in those units, clipping x̂0 to
    /// [-b, b] and dividing the result by b. b = 2 so that the scaling itself is exact.
    func testDataScaleRunsTheProcessOnScaledData() throws {
        var scaled = tiny()
        scaled.dataScale = 2
        try scaled.validate()
        let plain = model(tiny()), twice = model(scaled)
        XCTAssertEqual(twice.unet.parameters.map(\.value.scalars), plain.unet.parameters.map(\.value.scalars), "same initial weights")
        var r = RandomGenerator(seed: 9)
        for p in [plain, twice] {  // a non-trivial output layer (it starts at zero), the same in both
            var q = RandomGenerator(seed: 10)
            p.unet.convOut.weight.assign(.randomNormal(p.unet.convOut.weight.shape, std: 0.1, using: &q))
            p.unet.setTraining(false)
        }
        let x = tones(4), noise = Tensor.randomNormal([4, 256], using: &r), t = [3, 30, 60, 99]
        let lossScaled = withoutGrad { twice.loss(x0: x, t: t, noise: noise, labels: nil) }.item
        XCTAssertEqual(lossScaled, withoutGrad { plain.loss(x0: x * 2, t: t, noise: noise, labels: nil) }.item)
        XCTAssertNotEqual(lossScaled, withoutGrad { plain.loss(x0: x, t: t, noise: noise, labels: nil) }.item, "the scale changes the loss")

        // Without clipping, the scaled model's reverse process is the plain one's, reported /b.
        let z = Tensor.randomNormal([4, 256], using: &r)
        let settings = DiffusionSamplerSettings(kind: .ddim, steps: 5, clipDenoised: false)
        var plainStates: [Tensor] = [], scaledStates: [Tensor] = []
        _ = plain.sample(z: z, labels: nil, settings: settings) { _, x in plainStates.append(x) }
        let out = twice.sample(z: z, labels: nil, settings: settings) { _, x in scaledStates.append(x) }
        XCTAssertEqual(scaledStates.count, 6)
        for (a, b) in zip(plainStates, scaledStates) { XCTAssertEqual(b.scalars, (a * 0.5).scalars) }
        XCTAssertEqual(out.scalars, scaledStates.last!.clamped(-1, 1).scalars)
        // With clipping, x̂0 is clipped to [-b, b]: the output stays in [-1, 1].
        let clipped = twice.sample(z: z, labels: nil, settings: DiffusionSamplerSettings(kind: .ddim, steps: 5))
        XCTAssert(clipped.scalars.allSatisfy { $0 >= -1 && $0 <= 1 })

        var bad = tiny()
        for b: Float in [0, -1, .nan, .infinity, 1e-40, 0.0009, 1001] {
            bad.dataScale = b
            XCTAssertThrowsError(try bad.validate()) { XCTAssert("\($0)".contains("--data-scale"), "\($0)") }
        }
    }

    /// The presets: sequences of 8192 samples, 1-D, stride 4 down to 32 steps.
    func testWaveformPresets() throws {
        let p = DiffusionConfig.waveformPreset
        try p.validate()
        XCTAssertEqual(p.dataSpec, .sequence(channels: 1, length: 8192))
        XCTAssertEqual(p.spatialDims, 1)
        XCTAssertEqual(p.parameterCount, 1_376_497, "the count stated in the doc comment and docs/diffusion.md")
        XCTAssertEqual(DiffusionConfig.presets["ddpm-1d-cond"]?.conditionalClasses, 10)
        var c = p
        XCTAssertThrowsError(try c.adapt(to: .vector(100))) { XCTAssert("\($0)".contains("needs images or sequences"), "\($0)") }
        try c.adapt(to: .sequence(channels: 1, length: 4096))
        XCTAssertEqual(c.imageShape, [1, 4096])
        XCTAssertNoThrow(try c.validate())
    }
}
