import XCTest
import ConjureTraining
import ConjureModels

final class BenchmarkTests: XCTestCase {
    /// The FLOP count of the seed step at batch 64 matches the reference scripts' accounting
    /// to within what they include (D's first-layer input gradient is not needed).
    func testSeedStepFlops() {
        let mflop = Benchmark.flopsPerStep(.seedPreset, batch: 64) / 1e6
        XCTAssertGreaterThan(mflop, 150)
        XCTAssertLessThan(mflop, 201.7)
    }
}
