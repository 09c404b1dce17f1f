import Foundation
import XCTest
import ConjureTensor
import ConjureTestSupport

/// WaveGAN's phase shuffle as a tensor op: values against the reflection rule written out,
/// finite-difference gradients, the adjoint identity and second order (as the gradient penalty
/// uses it).
final class PhaseShuffleTests: XCTestCase {
    var rng = RandomGenerator(seed: 5)

    func testValuesFollowReflectionPadding() {
        // One example, one channel, L = 6: shift +2 reflects x1, x2 in front (TF's REFLECT);
        // shift -2 reflects x4, x3 at the end; 0 is the identity.
        let x = Tensor(shape: [3, 1, 6], scalars: (0..<18).map(Float.init))
        let y = x.phaseShuffled(shifts: [2, -2, 0])
        XCTAssertEqual(Array(y.scalars[0..<6]), [2, 1, 0, 1, 2, 3])
        XCTAssertEqual(Array(y.scalars[6..<12]), [8, 9, 10, 11, 10, 9])
        XCTAssertEqual(Array(y.scalars[12..<18]), [12, 13, 14, 15, 16, 17])
    }

    func testGradientsByFiniteDifferences() {
        let x = Tensor.randomNormal([3, 2, 7], using: &rng)
        checkGradients([x]) { $0[0].phaseShuffled(shifts: [2, -1, -2]) }
        checkGradients([x]) { $0[0].phaseShuffleAdjoint(shifts: [1, -2, 2]) }
    }

    func testAdjointIdentityAndSecondOrder() {
        // <S x, g> = <x, S* g> for every shift in -3...3.
        let shifts = [-3, -2, -1, 0, 1, 2, 3]
        let x = Tensor.randomNormal([7, 2, 9], using: &rng), g = Tensor.randomNormal([7, 2, 9], using: &rng)
        let lhs = (x.phaseShuffled(shifts: shifts) * g).sum().item
        let rhs = (x * g.phaseShuffleAdjoint(shifts: shifts)).sum().item
        XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(lhs)))
        // d/dw of ||∇ₓ sum(w · S(x)^3)||² through the graph-building backward, against
        // central differences in w (the shape of the WGAN-GP penalty).
        let w = Tensor.randomNormal([7, 2, 9], using: &rng)
        func penalty(_ w: Tensor) -> Tensor {
            let xi = x.detached().requiringGrad()
            let y = xi.phaseShuffled(shifts: shifts)
            let gx = Tensor.gradients(of: (w * y * y * y).sum(), wrt: [xi], createGraph: true)[0]
            return (gx * gx).sum()
        }
        let wi = w.requiringGrad()
        let analytic = Tensor.gradients(of: penalty(wi), wrt: [wi])[0]
        for i in [0, 5, 17, 40, 125] {
            var p = w, m = w
            p.withMutableScalars { $0[i] += 1e-2 }
            m.withMutableScalars { $0[i] -= 1e-2 }
            let numeric = (Double(penalty(p).item) - Double(penalty(m).item)) / 2e-2
            XCTAssertEqual(Double(analytic.scalars[i]), numeric, accuracy: 2e-2 * max(1, abs(numeric)), "element \(i)")
        }
    }
}
