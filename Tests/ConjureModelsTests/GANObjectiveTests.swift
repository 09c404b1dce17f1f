import XCTest
import Foundation
import ConjureModels
import ConjureNN

/// The adversarial objectives as values, each against its formula evaluated in Double.
final class GANObjectiveTests: XCTestCase {
    let r = Tensor(shape: [3, 1], scalars: [2, -1, 0.5]), f = Tensor(shape: [2, 1], scalars: [-0.5, 1.5])

    func softplus(_ x: Double) -> Double { max(x, 0) + Foundation.log1p(Foundation.exp(-abs(x))) }
    func mean(_ v: [Double]) -> Double { v.reduce(0, +) / Double(v.count) }
    var rd: [Double] { r.scalars.map(Double.init) }
    var fd: [Double] { f.scalars.map(Double.init) }

    func testBCE() {
        let o = GANLoss.bce.objective
        // BCE(l, 1) = softplus(-l), BCE(l, 0) = softplus(l).
        XCTAssertEqual(Double(o.discriminatorLoss(realLogits: r, fakeLogits: f).item), mean(rd.map { softplus(-$0) }) + mean(fd.map(softplus)), accuracy: 1e-6)
        XCTAssertEqual(Double(o.generatorLoss(fakeLogits: f).item), mean(fd.map { softplus(-$0) }), accuracy: 1e-6)
        XCTAssertEqual(Double(o.meanOutput(r)), mean(rd.map { 1 / (1 + Foundation.exp(-$0)) }), accuracy: 1e-6)
    }

    func testLeastSquares() {
        let o = GANLoss.lsgan.objective
        XCTAssertEqual(Double(o.discriminatorLoss(realLogits: r, fakeLogits: f).item), 0.5 * mean(rd.map { ($0 - 1) * ($0 - 1) }) + 0.5 * mean(fd.map { $0 * $0 }), accuracy: 1e-6)
        XCTAssertEqual(Double(o.generatorLoss(fakeLogits: f).item), 0.5 * mean(fd.map { ($0 - 1) * ($0 - 1) }), accuracy: 1e-6)
        XCTAssertEqual(Double(o.meanOutput(r)), mean(rd), accuracy: 1e-6)
    }

    func testHinge() {
        let o = GANLoss.hinge.objective
        XCTAssertEqual(Double(o.discriminatorLoss(realLogits: r, fakeLogits: f).item), mean(rd.map { max(0, 1 - $0) }) + mean(fd.map { max(0, 1 + $0) }), accuracy: 1e-6)
        XCTAssertEqual(Double(o.generatorLoss(fakeLogits: f).item), -mean(fd), accuracy: 1e-6)
    }

    func testWasserstein() {
        let o = GANLoss.wgangp.objective
        XCTAssertEqual(Double(o.discriminatorLoss(realLogits: r, fakeLogits: f).item), mean(fd) - mean(rd), accuracy: 1e-6)
        XCTAssertEqual(Double(o.generatorLoss(fakeLogits: f).item), -mean(fd), accuracy: 1e-6)
    }

    /// The gradient penalty of a linear critic `D(x) = w·x` is `λ (‖w‖ - 1)²` at any interpolate.
    func testGradientPenaltyOfALinearCritic() {
        let w = Tensor(shape: [3, 1], scalars: [0.6, -1.2, 2.0])
        var rng = RandomGenerator(seed: 3)
        let real = Tensor.randomNormal([4, 3], using: &rng), fake = Tensor.randomNormal([4, 3], using: &rng)
        let p = GradientPenalty(lambda: 10)(critic: { Tensor.matmul($0, w) }, real: real, fake: fake, rng: &rng)
        let norm = (0.36 + 1.44 + 4.0).squareRoot()
        XCTAssertEqual(Double(p.item), 10 * (norm - 1) * (norm - 1), accuracy: 1e-4)
    }
}
