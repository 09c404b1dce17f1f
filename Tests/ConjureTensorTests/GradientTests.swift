import Foundation
import XCTest
import ConjureTensor
import ConjureTestSupport

/// Finite-difference checks of every differentiable primitive, and forward values.
final class GradientTests: XCTestCase {
    var rng = RandomGenerator(seed: 7)
    func randn(_ shape: [Int], scale: Float = 1) -> Tensor { Tensor.randomNormal(shape, std: scale, using: &rng) }
    func positive(_ shape: [Int]) -> Tensor { Tensor.randomUniform(shape, low: 0.5, high: 2, using: &rng) }

    /// Gradients reaching a tensor by several paths are summed (in place when unshared): the
    /// exact sums in path order, on one and on two threads, and no tensor the caller holds is
    /// changed.
    func testGradientsOfSeveralPathsAreSummed() {
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            defer { Parallel.setThreads(1) }
            let n = 70_001  // above the split of the in-place sum
            let x = randn([n]).requiringGrad(), seed = randn([n])
            let seedCopy = seed.scalars
            func mismatches(_ a: [Float], _ b: [Float]) -> Int { zip(a, b).filter { $0.bitPattern != $1.bitPattern }.count }
            // x + x: one rule hands the same gradient tensor to both inputs.
            let twice = Tensor.gradients(of: x + x, seed: seed, wrt: [x])[0].scalars
            XCTAssertEqual(mismatches(twice, seed.scalars.map { $0 + $0 }), 0)
            // x * x + x: three paths, summed in the order the backward pass reaches them (the
            // add's gradient first, then the product's two).
            let g = Tensor.gradients(of: x * x + x, seed: seed, wrt: [x])[0].scalars
            XCTAssertEqual(mismatches(g, zip(seed.scalars, x.scalars).map { s, v in (s + s * v) + s * v }), 0)
            XCTAssertEqual(seed.scalars, seedCopy, "the seed is not modified")
            // An empty tensor reached by two paths.
            let e = Tensor(shape: [0, 3], scalars: []).requiringGrad()
            XCTAssertEqual(Tensor.gradients(of: (e + e).sum(), wrt: [e])[0].shape, [0, 3])
        }
    }

    func testArithmeticWithBroadcasting() {
        for (sa, sb) in [([3, 4], [3, 4]), ([3, 4], [4]), ([3, 4], [1, 4]), ([2, 3, 4], [3, 1]), ([3, 1], [1, 4]), ([], [2, 3])] {
            checkGradients([randn(sa), randn(sb)]) { $0[0] + $0[1] }
            checkGradients([randn(sa), randn(sb)]) { $0[0] - $0[1] }
            checkGradients([randn(sa), randn(sb)]) { $0[0] * $0[1] }
            checkGradients([randn(sa), positive(sb)]) { $0[0] / $0[1] }
        }
        checkGradients([randn([5])]) { -$0[0] * 3 + 1.5 }
    }

    func testUnaryFunctions() {
        // Keep away from kinks (|x| >= 0.05) so the finite difference is valid.
        let x = randn([4, 5]).map { abs($0) < 0.05 ? 0.3 : $0 }
        checkGradients([x]) { $0[0].relu() }
        checkGradients([x]) { $0[0].leakyRelu(0.2) }
        checkGradients([x]) { $0[0].tanh() }
        checkGradients([x]) { $0[0].sigmoid() }
        checkGradients([x]) { $0[0].exp() }
        checkGradients([x]) { $0[0].softplus() }
        checkGradients([positive([4, 5])]) { $0[0].log() }
        checkGradients([positive([4, 5])]) { $0[0].sqrt() }
        checkGradients([x]) { $0[0].clamped(-0.5, 0.5) }
    }

    func testReductionsAndShapes() {
        checkGradients([randn([3, 4, 5])]) { $0[0].sum() }
        checkGradients([randn([3, 4, 5])]) { $0[0].mean() }
        for axes in [[0], [1], [2], [0, 1], [1, 2], [0, 2]] {
            checkGradients([randn([3, 4, 5])]) { $0[0].sum(axes: axes) }
            checkGradients([randn([3, 4, 5])]) { $0[0].mean(axes: axes, keepDims: true) }
        }
        checkGradients([randn([3, 4])]) { $0[0].reshaped([2, 6]) }
        checkGradients([randn([2, 3, 4])]) { $0[0].permuted([2, 0, 1]) }
        checkGradients([randn([3, 4])]) { $0[0].transposed() }
        checkGradients([randn([3, 4])]) { $0[0].slice(axis: 1, 1..<3) }
        checkGradients([randn([2, 3]), randn([2, 2])]) { Tensor.concat($0, axis: 1) }
        checkGradients([randn([4, 3])]) { $0[0].gathered(rows: [3, 0, 0, 2]) }
        checkGradients([randn([1, 3])]) { $0[0].expanded(to: [4, 3]) }
    }

    func testMatmulAllTransposes() {
        for ta in [false, true] {
            for tb in [false, true] {
                let a = randn(ta ? [4, 3] : [3, 4]), b = randn(tb ? [5, 4] : [4, 5])
                checkGradients([a, b]) { Tensor.matmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
            }
        }
        let a = Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let b = Tensor(shape: [3, 2], scalars: [7, 8, 9, 10, 11, 12])
        XCTAssertEqual(Tensor.matmul(a, b).scalars, [58, 64, 139, 154])
        XCTAssertEqual(Tensor.matmul(a, a, transposeB: true).scalars, [14, 32, 32, 77])
    }

    func testLinear() {
        checkGradients([randn([5, 4]), randn([3, 4]), randn([3])]) { Tensor.linear($0[0], weight: $0[1], bias: $0[2]) }
        checkGradients([randn([5, 4]), randn([3, 4])]) { Tensor.linear($0[0], weight: $0[1], bias: nil) }
        let y = Tensor.linear(Tensor(shape: [1, 2], scalars: [1, 2]), weight: Tensor(shape: [2, 2], scalars: [1, 0, 1, 1]),
                              bias: Tensor(shape: [2], scalars: [0.5, -1]))
        XCTAssertEqual(y.scalars, [1.5, 2])
    }

    func testBinaryCrossEntropyWithLogitsGradientAndSecondOrder() {
        let targets = Tensor.randomUniform([6], using: &rng)
        checkGradients([randn([6], scale: 3)]) { Tensor.binaryCrossEntropyWithLogits($0[0], targets: targets) }
        // d/dx of the gradient (sigmoid(x) - y)/N is sigmoid'(x)/N: check through createGraph.
        let x = randn([6]).requiringGrad()
        let loss = Tensor.binaryCrossEntropyWithLogits(x, targets: targets)
        let g = Tensor.gradients(of: loss, wrt: [x], createGraph: true)[0]
        let h = Tensor.gradients(of: g.sum(), wrt: [x])[0]
        let expected = x.scalars.map { v -> Float in let s = Tensor.stableSigmoid(v); return s * (1 - s) / 6 }
        assertClose(h.scalars, expected, rtol: 1e-4)
    }

    /// Second-order gradients: the gradient of a gradient norm (as in WGAN-GP) matches a
    /// finite difference of the first-order gradient computed by autodiff.
    func testGradientOfGradientNorm() {
        let w1 = randn([4, 3]), w2 = randn([1, 4]), x = randn([2, 3])
        func penalty(_ ws: [Tensor]) -> Tensor {
            let xi = x.requiringGrad()
            let out = Tensor.linear(Tensor.linear(xi, weight: ws[0], bias: nil).tanh(), weight: ws[1], bias: nil)
            let gx = Tensor.gradients(of: out.sum(), wrt: [xi], createGraph: true)[0]
            return ((gx * gx).sum(axes: [1]) + 1e-12).sqrt().sum()
        }
        checkGradients([w1, w2], h: 1e-2, rtol: 3e-2, atol: 3e-3) { penalty($0) }
    }

    func testForwardValuesOfFusedOps() {
        let x = Tensor(shape: [6], scalars: [100, -100, 0, 30, -100, 100])
        let y = Tensor(shape: [6], scalars: [1, 0, 1, 0, 1, 0])
        XCTAssertEqual(Double(Tensor.binaryCrossEntropyWithLogits(x, targets: y).item), 38.448857863426674, accuracy: 1e-5)
        let big = Tensor(shape: [2], scalars: [1e4, -1e4])
        XCTAssertEqual(Tensor.binaryCrossEntropyWithLogits(big, targets: Tensor(shape: [2], scalars: [0, 1])).item, 1e4, accuracy: 1e-1)
        XCTAssertEqual(Tensor(shape: [2], scalars: [-1e4, 1e4]).softplus().scalars, [0, 1e4])
        XCTAssertEqual(Tensor(shape: [2], scalars: [-1e4, 1e4]).sigmoid().scalars, [0, 1])
    }

    func testRandomGeneratorIsSeededAndNormal() {
        var a = RandomGenerator(seed: 42), b = RandomGenerator(seed: 42), c = RandomGenerator(seed: 42, stream: 1)
        XCTAssertEqual(a.next(), b.next())
        XCTAssertNotEqual(a.next(), c.next())
        let z = Tensor.randomNormal([100_000], using: &a)
        let mean = z.scalars.reduce(0, +) / 100_000
        let variance = z.scalars.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 100_000
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(variance, 1, accuracy: 0.02)
        var restored = RandomGenerator(state: a.stateWords)
        XCTAssertEqual(restored.next(), a.next())
        XCTAssertEqual(Set(a.permutation(10)), Set(0..<10))
    }
}

final class FusedBatchNormTests: XCTestCase {
    func testBatchNormTrainingGradientsFirstAndSecondOrder() {
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randomNormal([6, 4], std: 2, using: &rng)
        let w = Tensor.randomNormal([4], using: &rng), b = Tensor.randomNormal([4], using: &rng)
        checkGradients([x, w, b]) { Tensor.batchNormTraining($0[0], weight: $0[1], bias: $0[2], eps: 1e-5).y }
        // Gradient of a gradient norm through batch norm (createGraph path).
        checkGradients([w], rtol: 3e-2, atol: 3e-3) { ws in
            let xi = x.requiringGrad()
            let y = Tensor.batchNormTraining(xi, weight: ws[0], bias: b, eps: 1e-5).y
            let gx = Tensor.gradients(of: (y * y * y).sum(), wrt: [xi], createGraph: true)[0]
            return (gx * gx).sum()
        }
        let (y, mean, variance) = Tensor.batchNormTraining(x, weight: .ones([4]), bias: .zeros([4]), eps: 0)
        for j in 0..<4 {
            let col = (0..<6).map { y.scalars[$0 * 4 + j] }
            XCTAssertEqual(col.reduce(0, +) / 6, 0, accuracy: 1e-6)
            XCTAssertEqual(col.map { $0 * $0 }.reduce(0, +) / 6, 1, accuracy: 1e-5)
            let xc = (0..<6).map { x.scalars[$0 * 4 + j] }
            XCTAssertEqual(mean[j], xc.reduce(0, +) / 6, accuracy: 1e-5)
            XCTAssertEqual(variance[j], xc.map { ($0 - mean[j]) * ($0 - mean[j]) }.reduce(0, +) / 6, accuracy: 1e-4)
        }
    }
}

final class SoftmaxTests: XCTestCase {
    func testLogSoftmaxAndCrossEntropy() {
        var rng = RandomGenerator(seed: 2)
        checkGradients([Tensor.randomNormal([3, 5], std: 3, using: &rng)]) { $0[0].logSoftmax() }
        checkGradients([Tensor.randomNormal([4, 3], using: &rng)]) { Tensor.softmaxCrossEntropy(logits: $0[0], labels: [0, 2, 1, 2]) }
        // Stable for huge logits; value against the closed form.
        let x = Tensor(shape: [2, 3], scalars: [1000, 0, -1000, 1, 2, 3])
        let ce = Tensor.softmaxCrossEntropy(logits: x, labels: [1, 2])
        let row2 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3
        XCTAssertEqual(Double(ce.item), (1000 + row2) / 2, accuracy: 1e-3)
    }
}

final class FastMathTests: XCTestCase {
    /// The vectorised tanh kernel agrees with libm across the range, including the tails, the
    /// switch point between its series and exp forms, signed zeros and a non-multiple-of-8 tail.
    func testTanhKernelMatchesLibm() {
        let xs = stride(from: Float(-20), through: 20, by: 0.000_731).map { $0 } + [0, -0.0, 1e-30, -1e-30, 0.625, -0.625, 100, -100, 1e4, -1e4]
        let ys = Tensor(shape: [xs.count], scalars: xs).tanh().scalars
        var worst: Double = 0
        for (x, y) in zip(xs, ys) {
            let r = Foundation.tanh(Double(x))
            worst = max(worst, abs(Double(y) - r) / max(abs(r), 1e-30))
        }
        XCTAssertLessThan(worst, 5e-7)
        XCTAssertEqual(ys[ys.count - 9].sign, .minus, "tanh(-0) keeps its sign")
    }
}
