import XCTest
import ConjureNN
import ConjureOptim
@testable import ConjureModels
import ConjureTestSupport

/// The diffusion family: the U-Net's shapes and state-dict names, finite-difference gradients of
/// the simple loss, a training step that fits a tiny batch, DDIM determinism and its agreement
/// with ``NoiseSchedule/ddimStep``, and classifier-free guidance.
final class DiffusionTests: XCTestCase {
    /// A tiny U-Net for `[1, 8, 8]` images: widths 8 and 16, attention at the lowest level.
    func tiny(classes: Int = 0, dropout: Float = 0, prediction: DiffusionPrediction = .epsilon) -> DiffusionConfig {
        DiffusionConfig(preset: "tiny", imageShape: [1, 8, 8], baseWidth: 8, channelMultipliers: [1, 2], blocksPerLevel: 1,
                        attentionLevels: [1], attentionHeads: 2, groups: 4, dropout: dropout, timesteps: 100, prediction: prediction,
                        conditionalClasses: classes, lr: 2e-3, batchSize: 8, emaDecay: nil)
    }

    func model(_ c: DiffusionConfig, seed: UInt64 = 1) -> DiffusionModel {
        var rng = RandomGenerator(seed: seed)
        return DiffusionModel(config: c, rng: &rng)
    }

    /// Images in [-1, 1]: a bright square on a dark background, shifted per sample.
    func batch(_ n: Int) -> Tensor {
        var v = [Float](repeating: -1, count: n * 64)
        for i in 0..<n { for y in 2..<6 { for x in 2..<6 { v[i * 64 + y * 8 + (x + i) % 8] = 1 } } }
        return Tensor(shape: [n, 64], scalars: v)
    }

    func resnetNames(_ p: String, shortcut: Bool) -> [String] {
        ["norm1.weight", "norm1.bias", "conv1.weight", "conv1.bias", "time_emb_proj.weight", "time_emb_proj.bias",
         "norm2.weight", "norm2.bias", "conv2.weight", "conv2.bias"].map { p + $0 } + (shortcut ? [p + "conv_shortcut.weight", p + "conv_shortcut.bias"] : [])
    }

    func attentionNames(_ p: String) -> [String] {
        ["norm.weight", "norm.bias", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj.weight", "attn.out_proj.bias"].map { p + $0 }
    }

    func testUNetOutputShapeAndStateDictNames() throws {
        let c = tiny(classes: 3)
        let m = model(c)
        var rng = RandomGenerator(seed: 2)
        let x = Tensor.randomNormal([2, 1, 8, 8], using: &rng)
        XCTAssertEqual(m.unet(x, t: [0, 99], labels: [1, 3]).shape, [2, 1, 8, 8])
        // Skips: conv_in 8, down.0 resnet 8, downsample 8, down.1 resnet 16; the up path takes them back in reverse.
        var expected = ["time_embed.0.weight", "time_embed.0.bias", "time_embed.2.weight", "time_embed.2.bias", "label_embed.weight",
                        "conv_in.weight", "conv_in.bias"]
        expected += resnetNames("down.0.resnets.0.", shortcut: false) + ["down.0.downsample.conv.weight", "down.0.downsample.conv.bias"]
        expected += resnetNames("down.1.resnets.0.", shortcut: true) + attentionNames("down.1.attentions.0.")
        expected += resnetNames("mid.resnet1.", shortcut: false) + attentionNames("mid.attention.") + resnetNames("mid.resnet2.", shortcut: false)
        expected += resnetNames("up.0.resnets.0.", shortcut: true) + resnetNames("up.0.resnets.1.", shortcut: true)
            + attentionNames("up.0.attentions.0.") + attentionNames("up.0.attentions.1.") + ["up.0.upsample.conv.weight", "up.0.upsample.conv.bias"]
        expected += resnetNames("up.1.resnets.0.", shortcut: true) + resnetNames("up.1.resnets.1.", shortcut: true)
        expected += ["norm_out.weight", "norm_out.bias", "conv_out.weight", "conv_out.bias"]
        let names = m.stateDict().map(\.0)
        XCTAssertEqual(names, expected.map { "unet." + $0 })
        let shapes = Dictionary(uniqueKeysWithValues: m.stateDict().map { ($0.0, $0.1.shape) })
        XCTAssertEqual(shapes["unet.label_embed.weight"], [4, 32], "3 classes + the null class, 4·base wide")
        XCTAssertEqual(shapes["unet.up.0.resnets.0.conv1.weight"], [16, 32, 3, 3], "16 channels + a 16-channel skip")
        XCTAssertEqual(shapes["unet.up.0.resnets.1.conv1.weight"], [16, 24, 3, 3], "16 channels + the 8-channel downsample skip")
        XCTAssertEqual(shapes["unet.down.1.attentions.0.attn.in_proj_weight"], [48, 16])
        XCTAssertEqual(m.parameterGroups[0].fullNames, names)
        // Loading the state dict into a differently initialised model reproduces the output.
        let other = model(c, seed: 9)
        try other.loadStateDict(Dictionary(uniqueKeysWithValues: m.stateDict()))
        XCTAssertEqual(other.unet(x, t: [5, 6], labels: [0, 2]).scalars, m.unet(x, t: [5, 6], labels: [0, 2]).scalars)
        // The preset: state its size.
        XCTAssertEqual(DiffusionConfig.ddpmPreset.latentDim, 784)
        XCTAssertGreaterThan(DiffusionConfig.ddpmPreset.parameterCount, 100_000)
    }

    /// Central differences of the simple loss (evaluated in Float32, differenced in Double) against
    /// autodiff, for the largest-gradient elements of several parameters across the network, with
    /// ε- and v-prediction and a conditional net.
    func testLossGradientsMatchFiniteDifferences() {
        for (classes, prediction) in [(0, DiffusionPrediction.epsilon), (3, .v)] {
            let m = model(tiny(classes: classes, prediction: prediction), seed: 3)
            // Start from non-zero output weights so every path carries gradient.
            var r = RandomGenerator(seed: 4)
            m.unet.convOut.weight.assign(.randomNormal(m.unet.convOut.weight.shape, std: 0.1, using: &r))
            let x = batch(2)
            let noise = Tensor.randomNormal([2, 64], using: &r)
            let t = [7, 80], labels: [Int]? = classes > 0 ? [2, 3] : nil
            func lossValue() -> Double { Double(withoutGrad { m.loss(x0: x, t: t, noise: noise, labels: labels) }.item) }
            let named = Dictionary(uniqueKeysWithValues: m.unet.allNamedParameters())
            let picked = ["conv_in.weight", "time_embed.0.weight", "down.0.resnets.0.time_emb_proj.weight", "down.1.attentions.0.attn.in_proj_weight",
                          "mid.resnet1.norm1.weight", "up.0.resnets.1.conv_shortcut.weight", "up.1.resnets.0.conv2.bias", "conv_out.weight"]
                + (classes > 0 ? ["label_embed.weight"] : [])
            let params = picked.map { named[$0]! }
            let loss = m.loss(x0: x, t: t, noise: noise, labels: labels)
            let grads = Tensor.gradients(of: loss, wrt: params.map(\.value))
            for (name, (p, g)) in zip(picked, zip(params, grads)) {
                // The three largest-gradient elements of this parameter.
                let order = g.scalars.indices.sorted { abs(g.scalars[$0]) > abs(g.scalars[$1]) }.prefix(3)
                for i in order {
                    let h: Float = 1e-2
                    let original = p.value.scalars[i]
                    p.update { $0[i] = original + h }
                    let plus = lossValue()
                    p.update { $0[i] = original - h }
                    let minus = lossValue()
                    p.update { $0[i] = original }
                    let numeric = (plus - minus) / (2 * Double(h)), analytic = Double(g.scalars[i])
                    XCTAssertEqual(analytic, numeric, accuracy: 2e-3 + 3e-2 * abs(numeric), "\(prediction) classes \(classes): d loss / d \(name)[\(i)]")
                }
            }
        }
    }

    /// Adam steps through the trainer's Optimization on one batch lower the loss at fixed steps
    /// and noise; same seed, same loss sequence.
    func testTrainingStepsLowerTheLossOnATinyBatch() {
        func run() -> (before: Float, after: Float, losses: [Float]) {
            let c = tiny(classes: 2, dropout: 0.1)
            let m = model(c)
            let o = Optimization(model: m, settings: c.optimization, seed: 5)
            let x = batch(8)
            var r = RandomGenerator(seed: 6)
            let noise = Tensor.randomNormal([8, 64], using: &r)
            let t = (0..<8).map { 10 + 10 * $0 }, labels = (0..<8).map { $0 % 2 }
            func probe() -> Float {
                m.unet.setTraining(false)
                return withoutGrad { m.loss(x0: x, t: t, noise: noise, labels: labels) }.item
            }
            let before = probe()
            var losses: [Float] = []
            for _ in 0..<60 { losses.append(o.step(TrainingBatch(x: x, z: Tensor.zeros([8, 64]), labels: labels))["loss"]!) }
            return (before, probe(), losses)
        }
        let a = run(), b = run()
        XCTAssert(a.losses.allSatisfy { $0.isFinite })
        XCTAssertLessThan(a.after, 0.6 * a.before, "loss at fixed t and noise: \(a.before) -> \(a.after)")
        XCTAssertEqual(a.losses, b.losses, "same seed, same steps")
    }

    /// DDIM with eta 0 adds no noise: the same z gives the same samples whatever the noise seed,
    /// and over all T steps each update equals NoiseSchedule.ddimStep (the fixture-checked step).
    func testDDIMWithEtaZeroIsDeterministicAndMatchesTheScheduleStep() throws {
        let c = tiny()
        let m = model(c)
        var r = RandomGenerator(seed: 7)
        m.unet.convOut.weight.assign(.randomNormal(m.unet.convOut.weight.shape, std: 0.1, using: &r))
        let z = Tensor.randomNormal([3, 64], using: &r)
        let settings = DiffusionSamplerSettings(kind: .ddim, steps: 10, eta: 0, guidance: 0, clipDenoised: false)
        m.samplingNoiseSeed = 1
        let a = m.sample(z: z, labels: nil, settings: settings)
        m.samplingNoiseSeed = 2
        let b = m.sample(z: z, labels: nil, settings: settings)
        XCTAssertEqual(a.scalars, b.scalars)
        let twin = model(c)
        twin.unet.convOut.weight.assign(m.unet.convOut.weight.value)
        XCTAssertEqual(twin.sample(z: z, labels: nil, settings: settings).scalars, a.scalars, "same weights, same samples")
        // With eta > 0 the noise seed matters.
        var noisy = settings; noisy.eta = 1
        m.samplingNoiseSeed = 1
        let n1 = m.sample(z: z, labels: nil, settings: noisy)
        m.samplingNoiseSeed = 2
        XCTAssertNotEqual(m.sample(z: z, labels: nil, settings: noisy).scalars, n1.scalars)

        XCTAssertEqual(m.ddimTimesteps(10), [9, 19, 29, 39, 49, 59, 69, 79, 89, 99])
        XCTAssertEqual(m.ddimTimesteps(100), Array(0..<100))
        let x = Tensor.randomNormal([3, 1, 8, 8], using: &r), eps = Tensor.randomNormal([3, 1, 8, 8], using: &r), zn = Tensor.randomNormal([3, 1, 8, 8], using: &r)
        for t in [0, 1, 50, 99] {
            for eta in [0.0, 0.5] {
                let mine = m.ddimUpdate(xt: x, t: t, prev: t - 1, eps: eps, eta: eta, noise: zn)
                let library = m.schedule.ddimStep(xt: x, t: [t, t, t], epsPrediction: eps, eta: eta, noise: zn)
                assertClose(mine, library, rtol: 1e-5, atol: 1e-6, "t \(t) eta \(eta)")
            }
        }
    }

    /// Guidance w = 0 is the conditional prediction; w = 2 is 3 ε(x, y) - 2 ε(x, ∅).
    func testGuidanceZeroEqualsTheConditionalPrediction() {
        let m = model(tiny(classes: 3))
        var r = RandomGenerator(seed: 8)
        m.unet.convOut.weight.assign(.randomNormal(m.unet.convOut.weight.shape, std: 0.1, using: &r))
        m.unet.setTraining(false)
        let x = Tensor.randomNormal([4, 1, 8, 8], using: &r)
        let labels = [0, 1, 2, 1]
        let cond = withoutGrad { m.unet(x, t: [40, 40, 40, 40], labels: labels) }
        let uncond = withoutGrad { m.unet(x, t: [40, 40, 40, 40], labels: [3, 3, 3, 3]) }
        let w0 = withoutGrad { m.guidedNoise(m.unet, x: x, t: 40, labels: labels, guidance: 0) }
        XCTAssertEqual(w0.scalars, cond.scalars)
        let w2 = withoutGrad { m.guidedNoise(m.unet, x: x, t: 40, labels: labels, guidance: 2) }
        assertClose(w2, cond * 3 - uncond * 2, rtol: 1e-4, atol: 1e-5)
        XCTAssertGreaterThan(zip(cond.scalars, uncond.scalars).map { abs($0 - $1) }.max()!, 1e-4, "the label changes the prediction")
        // Through the sampler: guidance 0 samples equal a model that never sees the null class.
        let z = Tensor.randomNormal([4, 64], using: &r)
        let s0 = DiffusionSamplerSettings(kind: .ddim, steps: 5, eta: 0, guidance: 0)
        XCTAssertEqual(m.sample(z: z, labels: labels, settings: s0).shape, [4, 64])
        XCTAssertThrowsError(try model(tiny()).setSampler(DiffusionSamplerSettings(guidance: 1))) { e in
            XCTAssert("\(e)".contains("--guidance"), "\(e)")
        }
    }

    /// Evaluation mode reaches the residual blocks' dropout: with `--dropout 0.5` two evaluations
    /// of the sampling network agree exactly, and training mode still draws masks. (The blocks
    /// did not pass the mode to their dropout, so sampling dropped half the activations.)
    func testEvaluationModeTurnsDropoutOff() {
        let m = model(tiny(dropout: 0.5))
        var rng = RandomGenerator(seed: 3)
        for p in m.unet.parameters { p.assign(p.value + Tensor.randomNormal(p.shape, std: 0.1, using: &rng)) }
        let x = Tensor.randomNormal([2, 1, 8, 8], using: &rng)
        let a = m.denoiserOutput(x: x, t: [3, 50], labels: nil), b = m.denoiserOutput(x: x, t: [3, 50], labels: nil)
        XCTAssertEqual(a.scalars, b.scalars)
        m.unet.setTraining(true)
        XCTAssert(m.unet.dropouts.allSatisfy(\.isTraining))
        let c = withoutGrad { m.unet(x, t: [3, 50], labels: nil) }
        XCTAssertGreaterThan(zip(a.scalars, c.scalars).map { abs($0 - $1) }.max()!, 1e-3, "training mode applies dropout")
        m.unet.setTraining(false)
        XCTAssert(m.unet.dropouts.allSatisfy { !$0.isTraining })
    }

    func testAdaptRefusesNonImages() {
        var c = DiffusionConfig.ddpmPreset
        XCTAssertThrowsError(try c.adapt(to: .vector(784))) { XCTAssert("\($0)".contains("needs images"), "\($0)") }
        XCTAssertNoThrow(try c.adapt(to: .image(channels: 3, height: 32, width: 32)))
        XCTAssertNoThrow(try c.validate())
        c.imageShape = [1, 30, 30]
        XCTAssertThrowsError(try c.validate()) { XCTAssert("\($0)".contains("divisible by 4"), "\($0)") }
    }
}
