import XCTest
import ConjureNN
import ConjureOptim
import ConjureTestSupport

final class LayerTests: XCTestCase {
    var rng = RandomGenerator(seed: 11)

    func testBatchNorm1dGradientsInTrainingMode() {
        let bn = BatchNorm1d(3)
        let x = Tensor.randomNormal([5, 3], std: 2, using: &rng)
        checkGradients([x, Tensor.randomNormal([3], using: &rng), Tensor.randomNormal([3], using: &rng)], h: 1e-2) { xs in
            let mean = xs[0].mean(axes: [0])
            let c = xs[0] - mean
            let v = (c * c).mean(axes: [0])
            return c / (v + bn.eps).sqrt() * xs[1] + xs[2]
        }
        checkGradients([x]) { bn($0[0]) }
    }
}
