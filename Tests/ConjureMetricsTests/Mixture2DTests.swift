import ConjureMetrics
import XCTest

final class Mixture2DTests: XCTestCase {
    func distinctCount(_ modes: [SIMD2<Double>]) -> Int {
        var distinct: [SIMD2<Double>] = []
        for m in modes where !distinct.contains(where: { (($0 - m) * ($0 - m)).sum() < 1e-12 }) { distinct.append(m) }
        return distinct.count
    }

    func testRing8HasEightDistinctModesOnTheUnitCircle() {
        let modes = Mixture2D.ring8.modes
        XCTAssertEqual(modes.count, 8)
        XCTAssertEqual(distinctCount(modes), 8)
        for m in modes { XCTAssertEqual((m * m).sum().squareRoot(), 1, accuracy: 1e-12) }
        XCTAssertEqual(modes[0].x, 1, accuracy: 1e-12)
        XCTAssertEqual(modes[2].y, 1, accuracy: 1e-12)
        XCTAssertEqual(Mixture2D.ring8.sigma, 0.01)
    }

    func testGrid25() {
        let modes = Mixture2D.grid25.modes
        XCTAssertEqual(modes.count, 25)
        XCTAssertEqual(distinctCount(modes), 25)
        XCTAssertEqual(Set(modes.map { $0.x }), [-4, -2, 0, 2, 4])
        XCTAssertEqual(Mixture2D.grid25.sigma, 0.05)
    }

    func testPerfectSamplerCapturesAllModes() throws {
        for mixture in [Mixture2D.ring8, .grid25] {
            var rng = RandomGenerator(seed: 3)
            let x = mixture.sample(n: 2500, rng: &rng)
            XCTAssertEqual(x.shape, [2500, 2])
            let e = try mixture.evaluate(samples: x)
            XCTAssertEqual(e.modesCaptured, mixture.modes.count, "\(mixture)")
            XCTAssertEqual(e.modeCount, mixture.modes.count)
            XCTAssertGreaterThan(e.highQualityFraction, 0.985, "\(mixture): within 3 sigma in 2-D holds ~98.9%")
            XCTAssertEqual(e.histogram.reduce(0, +), Int((e.highQualityFraction * 2500).rounded()))
            XCTAssertLessThan(e.klToUniform!, 0.02)
            XCTAssertLessThan(e.jsdToUniform!, 0.005)
        }
    }

    func testCollapsedSamplerCapturesOneMode() throws {
        var rng = RandomGenerator(seed: 4)
        let n = 500
        var s = [Float]()
        for _ in 0..<n {
            let (a, b) = rng.nextNormalPair()
            s += [1 + 0.01 * a, 0.01 * b]  // only mode 0 = (1, 0)
        }
        let e = try Mixture2D.ring8.evaluate(samples: Tensor(shape: [n, 2], scalars: s))
        XCTAssertEqual(e.modesCaptured, 1)
        XCTAssertGreaterThan(e.histogram[0], 480)
        XCTAssertEqual(e.klToUniform!, log(8), accuracy: 1e-12)
        XCTAssertLessThanOrEqual(e.jsdToUniform!, log(2))

        // Far-off and non-finite samples are low quality, not errors.
        let junk = try Mixture2D.ring8.evaluate(samples: Tensor(shape: [2, 2], scalars: [5, 5, .nan, 0]))
        XCTAssertEqual(junk.modesCaptured, 0)
        XCTAssertEqual(junk.highQualityFraction, 0)
        XCTAssertNil(junk.klToUniform)
    }

    func testMoonsSamplesButHasNoModes() {
        var rng = RandomGenerator(seed: 5)
        let x = Mixture2D.moons.sample(n: 1000, rng: &rng)
        XCTAssertEqual(x.shape, [1000, 2])
        let xs = stride(from: 0, to: 2000, by: 2).map { x.scalars[$0] }
        XCTAssertGreaterThan(xs.max()!, 1.8)
        XCTAssertLessThan(xs.min()!, -0.8)
        XCTAssertThrowsError(try Mixture2D.moons.evaluate(samples: x))
        XCTAssertThrowsError(try Mixture2D.ring8.evaluate(samples: Tensor(shape: [2, 3], scalars: Array(repeating: 0, count: 6))))
    }

    func testSamplingIsDeterministic() {
        var a = RandomGenerator(seed: 9), b = RandomGenerator(seed: 9)
        XCTAssertEqual(Mixture2D.grid25.sample(n: 10, rng: &a).scalars, Mixture2D.grid25.sample(n: 10, rng: &b).scalars)
    }
}
