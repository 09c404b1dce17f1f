import ConjureMetrics
import Foundation
import XCTest

/// Wall-clock timings of the metrics on 10 000 x 256 features. Speed is reported, not
/// asserted; set CONJURE_METRICS_TIMING=1 to run (a few seconds in release mode).
final class TimingTests: XCTestCase {
    func testTimingOn10000x256() throws {
        guard ProcessInfo.processInfo.environment["CONJURE_METRICS_TIMING"] == "1" else {
            throw XCTSkip("set CONJURE_METRICS_TIMING=1 to time the metrics on 10000 x 256 features")
        }
        // Two halves of one sample, the fake half shifted slightly (a realistic, overlapping pair).
        let all = randomFeatures(20_000, 256, seed: 1)
        let real = rows(all, Array(0..<10_000))
        let fake = Tensor(shape: [10_000, 256], scalars: rows(all, Array(10_000..<20_000)).scalars.map { $0 + 0.05 })
        func time<T>(_ label: String, _ f: () throws -> T) rethrows -> T {
            let t0 = Date()
            let r = try f()
            print(String(format: "timing %@: %.3f s", label, Date().timeIntervalSince(t0)), r)
            return r
        }
        _ = try time("FID 10000x256 vs 10000x256 (first call)") { try Metrics.fid(real: real, fake: fake).value }
        _ = try time("FID 10000x256 vs 10000x256") { try Metrics.fid(real: real, fake: fake).value }
        _ = try time("precision/recall k=3") { try Metrics.precisionRecall(real: real, fake: fake, k: 3) }
        _ = try time("density/coverage k=5") { try Metrics.densityCoverage(real: real, fake: fake, k: 5) }
        _ = try time("PR k=3 + DC k=5, one pass") { try Metrics.manifoldMetrics(real: real, fake: fake) }
        _ = try time("KID 100 subsets x 1000") { try Metrics.kid(real: real, fake: fake, subsets: 100, subsetSize: 1000, seed: 0).mean }
    }
}
