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

    /// The median of an even number of timed runs is the mean of the middle two, not the upper one.
    func testMedianOfAnEvenNumberOfRuns() {
        let r = Benchmark.run(config: .gan(.seedPreset), batch: 4, threads: 1, warmup: 1, steps: 3, repeats: 2)
        XCTAssertEqual(r.stepsPerSecondMedian, (r.stepsPerSecondMin + r.stepsPerSecondMax) / 2, accuracy: 1e-9 * r.stepsPerSecondMax)
        XCTAssertLessThanOrEqual(r.stepsPerSecondMin, r.stepsPerSecondMax)
    }
}
