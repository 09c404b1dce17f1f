import ConjureMetrics
import Foundation
import XCTest

/// Gaussian features with a random linear mixing, shape [n, d].
func randomFeatures(_ n: Int, _ d: Int, seed: UInt64, shift: Float = 0) -> Tensor {
    var rng = RandomGenerator(seed: seed)
    let z = Tensor.randomNormal([n, d], using: &rng)
    let mix = Tensor.randomNormal([d, d], std: 1 / Float(d).squareRoot(), using: &rng)
    let x = Tensor.matmul(z, mix)
    return Tensor(shape: [n, d], scalars: x.scalars.map { $0 + shift })
}

func rows(_ x: Tensor, _ order: [Int]) -> Tensor {
    let d = x.shape[1]
    return Tensor(shape: [order.count, d], scalars: order.flatMap { x.scalars[($0 * d)..<($0 * d + d)] })
}

final class FrechetTests: XCTestCase {
    func testSelfDistanceIsExactlyZero() throws {
        for (n, d) in [(500, 16), (300, 64), (50, 64)] {
            let x = randomFeatures(n, d, seed: UInt64(n + d), shift: 3)
            let r = try Metrics.fid(real: x, fake: x)
            XCTAssertEqual(r.value, 0, "FID of [\(n), \(d)] features against themselves")
            // A reordered copy is the same set: still 0, never negative.
            var rng = RandomGenerator(seed: 5)
            let shuffled = rows(x, rng.permutation(n))
            let v = try Metrics.fid(real: x, fake: shuffled).value
            XCTAssertEqual(v, 0, "FID against a permuted copy, [\(n), \(d)]")
        }
    }

    func testPermutationInvariance() throws {
        let real = randomFeatures(400, 24, seed: 1)
        let fake = randomFeatures(300, 24, seed: 2, shift: 0.3)
        let base = try Metrics.fid(real: real, fake: fake).value
        XCTAssertGreaterThan(base, 0.5)
        var rng = RandomGenerator(seed: 9)
        let permuted = try Metrics.fid(real: rows(real, rng.permutation(400)), fake: rows(fake, rng.permutation(300))).value
        assertRelative(permuted, base, rtol: 1e-9, "FID after permuting both sets")
        // Symmetric.
        assertRelative(try Metrics.fid(real: fake, fake: real).value, base, rtol: 1e-9, "FID swapped")
    }

    func testMeanShiftOnly() throws {
        // Same covariance, means 2 apart along every axis: FID = |mu1 - mu2|^2 = 4 d.
        let d = 3
        let cov: [Double] = [2, 0.5, 0, 0.5, 1, 0.2, 0, 0.2, 3]
        let a = GaussianStats(mean: [0, 0, 0], covariance: cov, count: 100)
        let b = GaussianStats(mean: [2, 2, 2], covariance: cov, count: 100)
        assertRelative(try Metrics.frechetDistance(a, b), 4 * Double(d), rtol: 1e-10, "mean shift")
    }

    func testTooFewSamplesThrow() throws {
        let one = Tensor(shape: [1, 4], scalars: [1, 2, 3, 4])
        let ok = randomFeatures(10, 4, seed: 3)
        XCTAssertThrowsError(try GaussianStats(features: one)) { e in
            let m = (e as? MetricError)?.description ?? ""
            XCTAssert(m.contains("FID") && m.contains("at least 2"), m)
        }
        XCTAssertThrowsError(try Metrics.fid(real: ok, fake: one)) { e in
            XCTAssert((e as? MetricError)?.description.contains("fake") == true, "\(e)")
        }
        XCTAssertThrowsError(try Metrics.fid(real: Tensor(shape: [0, 4], scalars: []), fake: ok))
        XCTAssertThrowsError(try Metrics.fid(real: ok, fake: randomFeatures(10, 5, seed: 4))) { e in
            XCTAssert("\(e)".contains("dimension"), "\(e)")
        }
        var bad = ok.scalars
        bad[13] = .nan
        XCTAssertThrowsError(try Metrics.fid(real: Tensor(shape: [10, 4], scalars: bad), fake: ok)) { e in
            XCTAssert("\(e)".contains("row 3, column 1"), "\(e)")
        }
        XCTAssertThrowsError(try Metrics.fid(real: Tensor(shape: [10, 2, 2], scalars: ok.scalars), fake: ok))
    }

    func testSingularCovarianceWarning() throws {
        let x = randomFeatures(50, 256, seed: 11)
        let s = try GaussianStats(features: x)
        XCTAssertEqual(s.warnings, ["covariance is singular: N = 50 < D = 256; FID is biased, use more samples"])
        let r = try Metrics.fid(real: x, fake: randomFeatures(60, 256, seed: 12))
        XCTAssertEqual(r.warnings.count, 2)
        XCTAssertGreaterThan(r.value, 0)
        XCTAssertTrue(try GaussianStats(features: randomFeatures(300, 16, seed: 1)).warnings.isEmpty)
    }

    func testStatisticsMatchDirectFormulaAndAccumulator() throws {
        let x = randomFeatures(257, 7, seed: 21, shift: 100)
        let s = try GaussianStats(features: x)
        let n = 257, d = 7
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(x.scalars[i * d + j]) / Double(n) } }
        for a in 0..<d {
            assertRelative(s.mean[a], mean[a], rtol: 1e-12, "mean \(a)")
            for b in 0..<d {
                var c = 0.0
                for i in 0..<n { c += (Double(x.scalars[i * d + a]) - mean[a]) * (Double(x.scalars[i * d + b]) - mean[b]) }
                assertRelative(s.covariance[a * d + b], c / Double(n - 1), rtol: 1e-9, atol: 1e-12, "cov \(a),\(b)")
            }
        }
        var acc = GaussianStatsAccumulator()
        for start in stride(from: 0, to: n, by: 100) {
            try acc.add(rows(x, Array(start..<min(n, start + 100))))
        }
        let t = try acc.finalize()
        XCTAssertEqual(t.count, n)
        for i in 0..<d { assertRelative(t.mean[i], s.mean[i], rtol: 1e-12, "accumulated mean") }
        for i in 0..<(d * d) { assertRelative(t.covariance[i], s.covariance[i], rtol: 1e-8, atol: 1e-10, "accumulated covariance") }
        XCTAssertThrowsError(try GaussianStatsAccumulator().finalize())
    }
}

final class KIDTests: XCTestCase {
    /// Brute-force unbiased MMD² in Double.
    func bruteMMD(_ x: Tensor, _ y: Tensor) -> Double {
        let d = x.shape[1]
        func k(_ a: Tensor, _ i: Int, _ b: Tensor, _ j: Int) -> Double {
            var s = 0.0
            for c in 0..<d { s += Double(a.scalars[i * d + c]) * Double(b.scalars[j * d + c]) }
            return pow(s / Double(d) + 1, 3)
        }
        let n = x.shape[0], m = y.shape[0]
        var sxx = 0.0, syy = 0.0, sxy = 0.0
        for i in 0..<n { for j in 0..<n where i != j { sxx += k(x, i, x, j) } }
        for i in 0..<m { for j in 0..<m where i != j { syy += k(y, i, y, j) } }
        for i in 0..<n { for j in 0..<m { sxy += k(x, i, y, j) } }
        return sxx / Double(n * (n - 1)) + syy / Double(m * (m - 1)) - 2 * sxy / Double(n * m)
    }

    func testMMDMatchesBruteForce() throws {
        let x = randomFeatures(37, 5, seed: 1), y = randomFeatures(23, 5, seed: 2, shift: 0.5)
        assertRelative(try Metrics.mmd2Unbiased(x: x, y: y), bruteMMD(x, y), rtol: 1e-10, "MMD²")
    }

    func testSubsetClampWarningAndAllSamples() throws {
        let real = randomFeatures(400, 8, seed: 3), fake = randomFeatures(300, 8, seed: 4, shift: 0.2)
        let all = try Metrics.kid(real: real, fake: fake, subsets: 1, subsetSize: 1000, seed: 1)
        XCTAssertEqual(all.realSubsetSize, 400)
        XCTAssertEqual(all.fakeSubsetSize, 300)
        XCTAssertTrue(all.warnings.contains { $0.contains("clamped") }, "\(all.warnings)")
        assertRelative(all.mean, try Metrics.mmd2Unbiased(x: real, y: fake), rtol: 1e-12, "KID of all samples")

        let partial = try Metrics.kid(real: real, fake: fake, subsets: 10, subsetSize: 350, seed: 1)
        XCTAssertEqual(partial.realSubsetSize, 350)
        XCTAssertEqual(partial.fakeSubsetSize, 300)
        XCTAssertFalse(partial.warnings.isEmpty)
        XCTAssertGreaterThan(partial.std, 0)

        let sub = try Metrics.kid(real: real, fake: fake, subsets: 20, subsetSize: 100, seed: 42)
        XCTAssertTrue(sub.warnings.isEmpty, "\(sub.warnings)")
        XCTAssertEqual(sub, try Metrics.kid(real: real, fake: fake, subsets: 20, subsetSize: 100, seed: 42), "same seed, same result")
        XCTAssertGreaterThan(sub.mean, 0)

        XCTAssertThrowsError(try Metrics.kid(real: real, fake: fake, subsets: 0))
        XCTAssertThrowsError(try Metrics.kid(real: real, fake: fake, subsetSize: 1))
        XCTAssertThrowsError(try Metrics.kid(real: real, fake: Tensor(shape: [1, 8], scalars: Array(repeating: 0, count: 8))))
    }

    func testSameDistributionIsNearZero() throws {
        // Two halves of one sample: the unbiased estimate is near 0 (and may be negative).
        let all = randomFeatures(1000, 8, seed: 5)
        let a = rows(all, Array(0..<500)), b = rows(all, Array(500..<1000))
        let same = try Metrics.mmd2Unbiased(x: a, y: b)
        XCTAssertLessThan(abs(same), 0.01)
        let shifted = try Metrics.mmd2Unbiased(x: a, y: Tensor(shape: [500, 8], scalars: b.scalars.map { $0 + 1 }))
        XCTAssertGreaterThan(shifted, 20 * abs(same))
    }
}

final class ManifoldTests: XCTestCase {
    func testRadiiMatchBruteForce() throws {
        let x = randomFeatures(60, 6, seed: 7)
        let n = 60, d = 6
        for k in [1, 3, 5] {
            let radii = try Metrics.nearestNeighbourRadii(x, k: k)
            for i in 0..<n {
                var ds: [Double] = []
                for j in 0..<n where j != i {
                    var s = 0.0
                    for c in 0..<d { let t = Double(x.scalars[i * d + c]) - Double(x.scalars[j * d + c]); s += t * t }
                    ds.append(s.squareRoot())
                }
                ds.sort()
                assertRelative(radii[i], ds[k - 1], rtol: 1e-9, "radius k=\(k) i=\(i)")
            }
        }
        XCTAssertThrowsError(try Metrics.nearestNeighbourRadii(x, k: 60))
        XCTAssertThrowsError(try Metrics.nearestNeighbourRadii(x, k: 0))
    }

    func testIdenticalAndDisjointSets() throws {
        let x = randomFeatures(200, 8, seed: 8)
        let pr = try Metrics.precisionRecall(real: x, fake: x)
        XCTAssertEqual(pr.precision, 1)
        XCTAssertEqual(pr.recall, 1)
        let dc = try Metrics.densityCoverage(real: x, fake: x)
        XCTAssertEqual(dc.coverage, 1)
        XCTAssertGreaterThan(dc.density, 0.5)

        let far = randomFeatures(150, 8, seed: 9, shift: 100)
        let pr2 = try Metrics.precisionRecall(real: x, fake: far)
        XCTAssertEqual(pr2.precision, 0)
        XCTAssertEqual(pr2.recall, 0)
        let dc2 = try Metrics.densityCoverage(real: x, fake: far)
        XCTAssertEqual(dc2.density, 0)
        XCTAssertEqual(dc2.coverage, 0)
        XCTAssertEqual(pr2.fakeCount, 150)

        XCTAssertThrowsError(try Metrics.precisionRecall(real: x, fake: rows(x, [0, 1, 2]), k: 3)) { e in
            XCTAssert("\(e)".contains("fake"), "\(e)")
        }
        XCTAssertThrowsError(try Metrics.precisionRecall(real: x, fake: randomFeatures(10, 9, seed: 1)))
    }
}

final class ClassifierScoreTests: XCTestCase {
    func oneHot(_ labels: [Int], _ k: Int) -> Tensor {
        var s = [Float](repeating: 0, count: labels.count * k)
        for (i, l) in labels.enumerated() { s[i * k + l] = 1 }
        return Tensor(shape: [labels.count, k], scalars: s)
    }

    func testScoreBounds() throws {
        let balanced = oneHot((0..<100).map { $0 % 10 }, 10)
        assertRelative(try Metrics.classifierScore(probabilities: balanced).mean, 10, rtol: 1e-12, "balanced confident")
        let collapsed = oneHot([Int](repeating: 3, count: 50), 10)
        assertRelative(try Metrics.classifierScore(probabilities: collapsed).mean, 1, rtol: 1e-12, "collapsed")
        let uniform = Tensor(repeating: 0.25, shape: [20, 4])
        assertRelative(try Metrics.classifierScore(probabilities: uniform).mean, 1, rtol: 1e-12, "uncertain")
        let split = try Metrics.classifierScore(probabilities: balanced, splits: 5)
        XCTAssertEqual(split.splitScores.count, 5)
        assertRelative(split.mean, 10, rtol: 1e-12, "5 splits")
        XCTAssertEqual(split.std, 0, accuracy: 1e-12)
        XCTAssertThrowsError(try Metrics.classifierScore(probabilities: Tensor(repeating: 1, shape: [3, 4]))) { e in
            XCTAssert("\(e)".contains("logits"), "\(e)")
        }
        XCTAssertThrowsError(try Metrics.classifierScore(probabilities: balanced, splits: 101))
    }

    func testModeCoverage() throws {
        // 10 classes: class 9 never produced, class 8 only once in 100 (< 2%).
        var labels = (0..<99).map { $0 % 8 }
        labels.append(8)
        let r = try Metrics.modeCoverage(probabilities: oneHot(labels, 10))
        XCTAssertEqual(r.histogram.reduce(0, +), 100)
        XCTAssertEqual(r.histogram[9], 0)
        XCTAssertEqual(r.histogram[8], 1)
        XCTAssertEqual(r.classesCovered, 8)
        XCTAssertEqual(r.confidentFraction, 1)
        XCTAssertGreaterThan(r.klToReference, 0)

        let uniform = try Metrics.modeCoverage(labels: (0..<100).map { $0 % 10 }, classCount: 10)
        XCTAssertEqual(uniform.klToReference, 0, accuracy: 1e-9)
        XCTAssertEqual(uniform.classesCovered, 10)
        XCTAssertNil(uniform.confidentFraction)
        let collapsed = try Metrics.modeCoverage(labels: [Int](repeating: 2, count: 40), classCount: 10)
        XCTAssertEqual(collapsed.klToReference, log(10), accuracy: 1e-8)
        let reference = Metrics.labelDistribution(labels: [0, 0, 1, 1], classCount: 3)
        XCTAssertEqual(reference, [0.5, 0.5, 0])
        let missing = try Metrics.modeCoverage(labels: [2, 2], classCount: 3, reference: reference)
        XCTAssert(missing.klToReference.isFinite && missing.klToReference > 20, "\(missing.klToReference)")
        XCTAssertThrowsError(try Metrics.modeCoverage(labels: [3], classCount: 3))
        XCTAssertThrowsError(try Metrics.modeCoverage(labels: [1], classCount: 3, reference: [1, 1]))

        var soft = [Float](repeating: 0.05, count: 3 * 4)
        soft[0] = 0.85; soft[5] = 0.85; soft[10] = 0.85  // rows 0..2 confident, row 3 uniform
        for c in 0..<4 { soft[12 - 4 + c] = 0.25 }
        let conf = try Metrics.modeCoverage(probabilities: Tensor(shape: [3, 4], scalars: soft), confidenceThreshold: 0.8)
        XCTAssertEqual(conf.confidentFraction!, 2.0 / 3.0, accuracy: 1e-12)
    }
}
