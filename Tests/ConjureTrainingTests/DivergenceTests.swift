import Foundation
import XCTest
import ConjureData
import ConjureModels
import ConjureMetrics
import ConjureOptim
import ConjureTestSupport
@testable import ConjureTraining

/// Numbers that go bad (issue 15, items 8-9): diverging runs stop with the step and the tensor
/// and keep a checkpoint `sample` accepts; a winning discriminator is warned about once;
/// `evaluate` flags collapse.
final class DivergenceTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("diverge")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func options(_ name: String, loss: GANLoss, warmup: Int = 0) throws -> TrainOptions {
        var config = GANConfig.ganPreset
        config.batchSize = 32
        config.epochs = 5
        config.loss = loss
        config.generatorLR = 1e6
        config.discriminatorLR = 1e6
        if warmup > 0 { config.optimization.lrSchedule = try LRSchedule.parse("constant", warmupSteps: warmup, finalFactor: 0) }
        var o = TrainOptions(runDirectory: tmp.appendingPathComponent(name).path, model: config)
        o.data = try sharedPath("data/digits_8x8.csv.gz").path
        o.logEvery = 1
        o.checkpointEvery = 1
        o.sampleEvery = 0
        o.maxSteps = 40
        o.progress = .quiet
        return o
    }

    /// Without a warm-up, `--lr-d 1e6 --lr-g 1e6` overflows Adam's exp_avg_sq at the first step:
    /// stopped there, naming the tensor, and no run is left (there is no checkpoint to keep).
    func testAFirstStepThatOverflowsTheOptimiserStateLeavesNoRun() throws {
        let o = try options("first", loss: .bce)
        XCTAssertThrowsError(try Trainer(options: o, log: { _ in }).run()) { error in
            guard let e = error as? TrainingError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.step, 1)
            XCTAssert(e.problem.hasPrefix("tensor 'optimizer.") && e.problem.contains("exp_avg_sq' became non-finite"), e.description)
            XCTAssert(e.description.contains("no checkpoint was written"), e.description)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: o.runDirectory))
    }

    /// `--lr-d 1e6 --lr-g 1e6` with WGAN-GP and a warm-up (which kept an `inf` checkpoint before): training stops with the step in
    /// metrics.jsonl numbering and the first bad tensor, and the checkpoint left loads and samples.
    func testADivergingRunStopsAndKeepsACheckpointThatLoads() throws {
        for (name, loss, warmup) in [("wgan", GANLoss.wgangp, 5)] {
            let o = try options(name, loss: loss, warmup: warmup)
            var failure: TrainingError?
            XCTAssertThrowsError(try Trainer(options: o, log: { _ in }).run(), name) { failure = $0 as? TrainingError }
            let e = try XCTUnwrap(failure, name)
            XCTAssert(e.problem.contains("non-finite"), e.description)
            XCTAssertGreaterThan(e.step, 1, e.description)
            let ckpt = o.runDirectory + "/checkpoints/latest.safetensors"
            let loaded = try Checkpoint.read(path: ckpt)  // what sample and --resume do
            XCTAssertEqual(loaded.progress.step, e.step - 1, "\(name): the checkpoint of the step before")
            XCTAssert(e.description.contains("the last checkpoint (step \(e.step - 1)) is kept"), e.description)
            var rng = RandomGenerator(seed: 1)
            let z = Tensor.randomNormal([4, loaded.model.latentDim], using: &rng)
            XCTAssertEqual(loaded.model.sample(z: z, labels: nil).shape[0], 4, name)
            // metrics.jsonl numbers steps the same way: its last line is the step before.
            let lines = try String(contentsOfFile: o.runDirectory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            let last = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as? [String: Any])
            XCTAssertEqual(last["step"] as? Int, e.step - 1)
        }
    }

    func testTheGANWarnsWhenItsDiscriminatorWinsCompletely() throws {
        var rng = RandomGenerator(seed: 1)
        var config = GANConfig.ganPreset
        config.dataDim = 4
        let gan = GAN(config: config, rng: &rng)
        func window(_ d: Double, _ fake: Double) -> [(name: String, value: Double)] {
            [("d_loss", d), ("g_loss", 5), ("d_real", 0.99), ("d_fake", fake)]
        }
        XCTAssertNil(gan.diagnose(windows: [window(0.5, 0.4), window(0.005, 0.3)]), "one window is not yet a win")
        let won = try XCTUnwrap(gan.diagnose(windows: [window(0.008, 0.3), window(0.005, 0.3)]))
        XCTAssert(won.hasPrefix("warning: the discriminator wins completely (d_loss 0.005 under 0.01 for 2 logging windows in a row)"), won)
        XCTAssert(won.contains("--lr-d") && won.contains("--spectral-norm"), won)
        let fooled = try XCTUnwrap(gan.diagnose(windows: [window(0.5, 0.004)]))
        XCTAssert(fooled.contains("mean D(G(z)) 0.004 under 0.01"), fooled)
        config.loss = .wgangp
        XCTAssertNil(GAN(config: config, rng: &rng).diagnose(windows: [window(-3, -2), window(-4, -2)]), "critics are not judged by these thresholds")
    }

    /// The trainer asks the family and prints its warning once: a discriminator that learns
    /// 1000 times faster than a generator wins on the 8x8 digits.
    func testTheTrainerPrintsTheFamilysWarningOnce() throws {
        var o = try options("wins", loss: .bce)
        o.model.config = {
            var c = o.model.config as! GANConfig
            c.generatorLR = 1e-7
            c.discriminatorLR = 1e-2
            return c
        }()
        o.model.epochs = 10
        o.maxSteps = 400
        o.logEvery = 20
        o.checkpointEvery = 0
        var lines: [String] = []
        _ = try Trainer(options: o, log: { lines.append($0) }).run()
        XCTAssertEqual(lines.filter { $0.hasPrefix("warning: the discriminator wins completely") }.count, 1, "\(lines)")
    }

    func testDiversityFlagsIdenticalAndFewKindSamples() throws {
        var rng = RandomGenerator(seed: 4)
        let real = Tensor.randomNormal([300, 6], using: &rng)
        let same = try Metrics.diversity(real: real, fake: Tensor.randomNormal([300, 6], using: &rng))
        XCTAssertEqual(same.ratio, 1, accuracy: 0.05)
        XCTAssertFalse(same.collapsed)
        let one = Tensor(shape: [300, 6], scalars: (0..<1800).map { Float($0 % 6) })
        let collapsed = try Metrics.diversity(real: real, fake: one)
        XCTAssertEqual(collapsed.samples, 0)
        XCTAssert(collapsed.collapsed)
        // Exact value on a tiny case: 3 points on a line at 0, 1, 3 → mean distance 2.
        let line = Tensor(shape: [3, 1], scalars: [0, 1, 3])
        XCTAssertEqual(try Metrics.diversity(real: line, fake: line).samples, 2, accuracy: 1e-12)
    }
}
