import XCTest
import ConjureTraining
import ConjureModels

final class BenchmarkTests: XCTestCase {
    /// FLOP counts of the seed networks' step at batch 64 for each update order.
    /// `alternating-fresh` is the reference scripts' step: ../shared/bench/common.py counts
    /// 201,621,504; Conjure also counts the D step's 128->1 input gradient (needed for the first
    /// layer's weight gradient, 2 x 2·64·128 FLOPs), which the reference leaves out.
    func flops(_ c: GANConfig) -> Double? {
        var rng = RandomGenerator(seed: 0)
        return GAN(config: c, rng: &rng).matrixFLOPsPerStep(batch: 64)
    }

    func testStepFlopsPerUpdateOrder() {
        var c = GANConfig.seedPreset
        let gMACs: Int = 100 * 128 + 128 * 256 + 256 * 784, dMACs: Int = 784 * 128 + 128
        let gFwd = Double(2 * 64 * gMACs), dFwd = Double(2 * 64 * dMACs)
        let reference: Double = 201_621_504 + 2 * 2 * 64 * 128
        c.update = .alternatingFresh
        XCTAssertEqual(flops(c), reference)
        c.update = .alternating  // the G step reuses the D step's fakes: one G forward fewer
        XCTAssertEqual(flops(c), reference - gFwd)
        c.update = .simultaneous  // and D's forward on the fakes serves both losses
        XCTAssertEqual(flops(c), reference - gFwd - dFwd)
        // The gan preset (scripts/bench_torch_gan.py counts 1,018,560,512).
        XCTAssertEqual(flops(.ganPreset)!, 1_018_560_512, accuracy: 1e5)
    }

    /// The sampling rate is stated for the sampler's own step count from the per-step time of a
    /// shorter run: 64 images, 10 steps in 1 s -> 0.1 s per step, 5 s for DDIM 50 -> 12.8 images/s.
    func testImagesPerSecondScalesTheTimedStepsToTheSamplersSteps() {
        XCTAssertEqual(Benchmark.imagesPerSecond(batch: 64, seconds: 1, stepsTimed: 10, stepsStated: 50), 12.8, accuracy: 1e-12)
        XCTAssertEqual(Benchmark.imagesPerSecond(batch: 64, seconds: 2.5, stepsTimed: 50, stepsStated: 50), 25.6, accuracy: 1e-12)
    }

    /// A tiny diffusion model (8x8, widths 8/16, T = 100, conditional with guidance 2) has its
    /// DDIM sampler timed through the capability: the rates are stated for its own 20 steps, its
    /// settings are restored afterwards, and a model without the capability gets no sampling rate.
    func testDiffusionSamplingIsTimedThroughTheCapability() throws {
        var c = DiffusionConfig(preset: "tiny", imageShape: [1, 8, 8], baseWidth: 8, channelMultipliers: [1, 2], attentionLevels: [1],
                                groups: 4, timesteps: 100, conditionalClasses: 3, batchSize: 4)
        c.sampler.steps = 20
        c.sampler.guidance = 2
        var rng = RandomGenerator(seed: 0)
        let model = try XCTUnwrap(ModelConfig.diffusion(c).makeModel(rng: &rng) as? DiffusionModel)
        let timing = try XCTUnwrap(Benchmark.timeSampling(model: model, batch: 3, steps: 2, repeats: 3))
        XCTAssertEqual(timing.sampler, "ddim 20 steps, eta 0.0, guidance 2.0, x0 clipped")
        XCTAssertEqual(timing.stepsStated, 20)
        XCTAssertEqual(timing.stepsTimed, 2)
        XCTAssert(timing.min > 0 && timing.min <= timing.median && timing.median <= timing.max && timing.max.isFinite, "\(timing)")
        XCTAssertEqual(model.samplerSettings, c.sampler, "settings restored")
        // DDPM ancestral sampling is stated for all T steps.
        var ddpm = c.sampler
        ddpm.kind = .ddpm
        try model.setSampler(ddpm)
        XCTAssertEqual(Benchmark.timeSampling(model: model, batch: 2, steps: 1, repeats: 1)?.stepsStated, 100)
        XCTAssertEqual(model.samplerSettings, ddpm)

        let r = Benchmark.run(config: .diffusion(c), batch: 2, threads: 1, warmup: 0, steps: 1, repeats: 1, sampleSteps: 3)
        XCTAssertEqual(r.sampler, "ddim 20 steps, eta 0.0, guidance 2.0, x0 clipped")
        XCTAssertEqual(r.sampleStepsTimed, 3)
        XCTAssertGreaterThan(try XCTUnwrap(r.imagesPerSecondMedian), 0)
        XCTAssertNil(Benchmark.run(config: .diffusion(c), batch: 2, threads: 1, warmup: 0, steps: 1, repeats: 1).imagesPerSecondMedian)
        let gan = Benchmark.run(config: .gan(.seedPreset), batch: 2, threads: 1, warmup: 0, steps: 1, repeats: 1, sampleSteps: 3)
        XCTAssertNil(gan.imagesPerSecondMedian)
        XCTAssertNil(gan.sampler)
    }

    /// The median of an even number of timed runs is the mean of the middle two, not the upper one.
    func testMedianOfAnEvenNumberOfRuns() {
        let r = Benchmark.run(config: .gan(.seedPreset), batch: 4, threads: 1, warmup: 1, steps: 3, repeats: 2)
        XCTAssertEqual(r.stepsPerSecondMedian, (r.stepsPerSecondMin + r.stepsPerSecondMax) / 2, accuracy: 1e-9 * r.stepsPerSecondMax)
        XCTAssertLessThanOrEqual(r.stepsPerSecondMin, r.stepsPerSecondMax)
    }
}
