import ConjureData
import ConjureMetrics
import Foundation
import XCTest

/// A fixture the test needs is missing: a failure, never a skip.
struct MissingFixture: Error, CustomStringConvertible {
    var path: String
    var description: String { "\(path) is missing: the metric fixture tests need ../shared beside the package root" }
}

/// The shared folder: `../shared` beside the package root (3 levels up from this file).
///
/// - Throws: ``MissingFixture`` when it is absent.
func sharedFolder() throws -> URL {
    var root = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { root.deleteLastPathComponent() }  // Tests/ConjureMetricsTests/Fixtures.swift -> root
    let candidate = root.deletingLastPathComponent().appendingPathComponent("shared")
    guard FileManager.default.fileExists(atPath: candidate.path) else { throw MissingFixture(path: candidate.path) }
    return candidate
}

func sharedFile(_ relative: String) throws -> URL {
    let url = try sharedFolder().appendingPathComponent(relative)
    guard FileManager.default.fileExists(atPath: url.path) else { throw MissingFixture(path: url.path) }
    return url
}

/// |actual - expected| <= rtol * |expected| + atol.
func assertRelative(_ actual: Double, _ expected: Double, rtol: Double = 1e-4, atol: Double = 1e-12, _ message: String = "",
                    file: StaticString = #filePath, line: UInt = #line) {
    XCTAssert(abs(actual - expected) <= rtol * abs(expected) + atol,
              "\(message): got \(actual), expected \(expected) (rtol \(rtol))", file: file, line: line)
}

final class FixtureTests: XCTestCase {
    struct FrechetCase: Decodable {
        var name: String
        var mu1: [Double]
        var mu2: [Double]
        var sigma1: [[Double]]
        var sigma2: [[Double]]
        var expected_fid: Double
    }

    /// Every entry of cases/F26_frechet_cases.json.
    func testF26FrechetCases() throws {
        let data = try Data(contentsOf: sharedFile("cases/F26_frechet_cases.json"))
        let cases = try JSONDecoder().decode([FrechetCase].self, from: data)
        XCTAssertFalse(cases.isEmpty)
        for c in cases {
            let a = GaussianStats(mean: c.mu1, covariance: c.sigma1.flatMap { $0 }, count: 1000)
            let b = GaussianStats(mean: c.mu2, covariance: c.sigma2.flatMap { $0 }, count: 1000)
            let v = try Metrics.frechetDistance(a, b)
            XCTAssertGreaterThanOrEqual(v, 0, c.name)
            if c.expected_fid == 0 {
                XCTAssertEqual(v, 0, "\(c.name): must be reported as exactly 0")
            } else {
                assertRelative(v, c.expected_fid, rtol: 1e-9, c.name)
            }
            // Symmetric in its arguments.
            assertRelative(try Metrics.frechetDistance(b, a), c.expected_fid, rtol: 1e-9, atol: 1e-12, "\(c.name) swapped")
        }
    }

    /// Every key of fixtures/metrics/values.json, within 1e-4 relative.
    func testMetricsFixtureValues() throws {
        let dir = try sharedFile("fixtures/metrics")
        let real = try NPYReader.load(path: dir.appendingPathComponent("real.npy").path)
        let fake = try NPYReader.load(path: dir.appendingPathComponent("fake.npy").path)
        let probs = try NPYReader.load(path: dir.appendingPathComponent("probs.npy").path)
        let values = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("values.json"))) as! [String: Any]
        XCTAssertFalse(values.isEmpty)

        let manifold = try Metrics.manifoldMetrics(real: real, fake: fake, precisionRecallK: 3, densityCoverageK: 5)
        let computed: [String: () throws -> Double] = [
            "fid": { try Metrics.fid(real: real, fake: fake).value },
            "fid_self": { try Metrics.fid(real: real, fake: real).value },
            "kid_mmd2_unbiased_all": { try Metrics.mmd2Unbiased(x: real, y: fake) },
            "precision_k3": { try Metrics.precisionRecall(real: real, fake: fake, k: 3).precision },
            "recall_k3": { try Metrics.precisionRecall(real: real, fake: fake, k: 3).recall },
            "density_k5": { try Metrics.densityCoverage(real: real, fake: fake, k: 5).density },
            "coverage_k5": { try Metrics.densityCoverage(real: real, fake: fake, k: 5).coverage },
            "inception_score_1split": { try Metrics.classifierScore(probabilities: probs, splits: 1).mean },
        ]
        for (key, any) in values.sorted(by: { $0.key < $1.key }) {
            guard let expected = (any as? NSNumber)?.doubleValue else { XCTFail("\(key): not a number"); continue }
            guard let f = computed[key] else { XCTFail("values.json key \(key) has no metric mapped in this test"); continue }
            let got = try f()
            print("metrics fixture \(key): computed \(got), reference \(expected)")
            if key == "fid_self" {
                XCTAssertEqual(got, 0, "fid_self (reference \(expected)) must be reported as 0")
                XCTAssertLessThan(abs(expected), 1e-6)
            } else {
                assertRelative(got, expected, key)
            }
        }
        // The combined pass agrees with the separate functions.
        if let p = values["precision_k3"] as? NSNumber { assertRelative(manifold.precisionRecall!.precision, p.doubleValue, "combined precision") }
        if let r = values["recall_k3"] as? NSNumber { assertRelative(manifold.precisionRecall!.recall, r.doubleValue, "combined recall") }
        if let d = values["density_k5"] as? NSNumber { assertRelative(manifold.densityCoverage!.density, d.doubleValue, "combined density") }
        if let c = values["coverage_k5"] as? NSNumber { assertRelative(manifold.densityCoverage!.coverage, c.doubleValue, "combined coverage") }
        // KID with one subset of all samples is the unbiased MMD² of the fixture.
        if let k = values["kid_mmd2_unbiased_all"] as? NSNumber {
            let kid = try Metrics.kid(real: real, fake: fake, subsets: 1, subsetSize: 100_000, seed: 7)
            assertRelative(kid.mean, k.doubleValue, "KID, one subset of all samples")
            XCTAssertEqual(kid.std, 0)
            XCTAssertEqual(kid.realSubsetSize, real.shape[0])
            XCTAssertEqual(kid.fakeSubsetSize, fake.shape[0])
        }
    }
}
