import Foundation
import XCTest
@testable import ConjureTensor

/// The fast paths the diffusion sampler leans on give the values of their definitions: the
/// last-two-axes transpose (tiled, split across the pool), same-shape binary ops (specialised
/// loops), and GroupNorm fused with SiLU (one pass when nothing is recorded).
final class SamplingFastPathTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    /// `permuted` swapping the last two axes equals the index definition for sizes that are and
    /// are not multiples of the 16x16 tile, on one thread and on two, and its gradient is the
    /// inverse permutation.
    func testLastTwoAxesTransposeMatchesTheDefinition() {
        var rng = RandomGenerator(seed: 5)
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            for shape in [[64, 32, 49], [3, 17, 33], [2, 3, 40, 50], [1, 1], [5, 1, 7], [7, 300]] {
                let x = Tensor.randomUniform(shape, low: -1, high: 1, using: &rng)
                let r = shape.count
                let axes = Array(0..<(r - 2)) + [r - 1, r - 2]
                let y = x.permuted(axes)
                let rows = shape[r - 2], cols = shape[r - 1], batch = x.count / (rows * cols)
                XCTAssertEqual(y.shape, axes.map { shape[$0] })
                var expected = [Float](repeating: .nan, count: x.count)
                let xs = x.scalars
                for b in 0..<batch {
                    for i in 0..<rows { for j in 0..<cols { expected[b * rows * cols + j * rows + i] = xs[b * rows * cols + i * cols + j] } }
                }
                XCTAssertEqual(y.scalars, expected, "\(shape) on \(threads) threads")
                XCTAssertEqual(y.permuted(axes).scalars, xs, "\(shape): twice is the identity")
            }
        }
        let x = Tensor.randomUniform([2, 5, 3], low: -1, high: 1, using: &rng).requiringGrad()
        let w = Tensor.randomUniform([2, 3, 5], low: -1, high: 1, using: &rng)
        let g = Tensor.gradients(of: (x.permuted([0, 2, 1]) * w).sum(), wrt: [x])[0]
        XCTAssertEqual(g.scalars, w.permuted([0, 2, 1]).scalars)
    }

    /// Same-shape add, subtract, multiply and divide equal the scalar operations element by
    /// element, below and above the size from which they split across the pool.
    func testSameShapeBinaryOpsMatchTheDefinition() {
        var rng = RandomGenerator(seed: 9)
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            for n in [1, 37, 3 * Parallel.elementwiseSplitCount + 5] {
                let a = Tensor.randomUniform([n], low: -2, high: 2, using: &rng)
                let b = Tensor.randomUniform([n], low: 0.5, high: 2, using: &rng)
                let (x, y) = (a.scalars, b.scalars)
                XCTAssertEqual((a + b).scalars, zip(x, y).map { $0 + $1 })
                XCTAssertEqual((a - b).scalars, zip(x, y).map { $0 - $1 })
                XCTAssertEqual((a * b).scalars, zip(x, y).map { $0 * $1 })
                XCTAssertEqual((a / b).scalars, zip(x, y).map { $0 / $1 })
            }
        }
    }

    /// `groupNorm(..., silu: true)` gives the bits of `groupNorm(...).silu()` without a
    /// recorded graph (the fused pass) and with one (the two ops), and its gradient is theirs.
    func testGroupNormSiLUFusionEqualsTheTwoOps() {
        var rng = RandomGenerator(seed: 13)
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            for (shape, groups) in [([64, 16, 28, 28], 8), ([3, 6, 5, 7], 3), ([2, 8, 33], 4), ([4, 4], 2)] {
                let c = shape[1]
                let x = Tensor.randomUniform(shape, low: -3, high: 5, using: &rng)
                let w = Tensor.randomUniform([c], low: 0.5, high: 1.5, using: &rng)
                let b = Tensor.randomUniform([c], low: -0.5, high: 0.5, using: &rng)
                let twoOps = Tensor.groupNorm(x, groups: groups, weight: w, bias: b).silu()
                let fused = Tensor.groupNorm(x, groups: groups, weight: w, bias: b, silu: true)
                XCTAssertEqual(fused.scalars, twoOps.scalars, "\(shape), \(groups) groups, \(threads) threads")
                let noAffine = Tensor.groupNorm(x, groups: groups, weight: nil, bias: nil, silu: true)
                XCTAssertEqual(noAffine.scalars, Tensor.groupNorm(x, groups: groups, weight: nil, bias: nil).silu().scalars)
                // Recorded: the same values, and the gradient of the two ops.
                let xr = x.requiringGrad(), wr = w.requiringGrad()
                let recorded = Tensor.groupNorm(xr, groups: groups, weight: wr, bias: b, silu: true)
                XCTAssertEqual(recorded.scalars, twoOps.scalars)
                let g1 = Tensor.gradients(of: (recorded * recorded).sum(), wrt: [xr, wr])
                let plain = Tensor.groupNorm(xr, groups: groups, weight: wr, bias: b).silu()
                let g2 = Tensor.gradients(of: (plain * plain).sum(), wrt: [xr, wr])
                XCTAssertEqual(g1[0].scalars, g2[0].scalars)
                XCTAssertEqual(g1[1].scalars, g2[1].scalars)
            }
        }
    }

    /// The one-pass variance (E[x²] − mean², in Double) and the per-channel `x · a + c` stay as
    /// accurate as the float input on data with a large offset: normalised values have mean 0
    /// and variance 1 within a few of the input's own roundings (ulp(offset) / std).
    func testGroupNormStatisticsOnOffsetData() {
        var rng = RandomGenerator(seed: 17)
        let base = Tensor.randomUniform([2, 4, 16, 16], low: -1, high: 1, using: &rng)
        for offset: Float in [0, 100, 1e4] {
            let y = Tensor.groupNorm(base + offset, groups: 2, weight: nil, bias: nil, eps: 0)
            let ys = y.scalars, per = 2 * 256
            // The input's rounding at the offset, in units of the data's std (1/sqrt(3)).
            let tolerance = 1e-6 + 8 * Double(offset.ulp) * 3.0.squareRoot()
            for q in 0..<4 {
                let slice = ys[(q * per)..<((q + 1) * per)].map(Double.init)
                let mean = slice.reduce(0, +) / Double(per)
                let variance = slice.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(per)
                XCTAssertEqual(mean, 0, accuracy: tolerance, "offset \(offset) group \(q)")
                XCTAssertEqual(variance, 1, accuracy: 4 * tolerance, "offset \(offset) group \(q)")
            }
        }
    }
}
