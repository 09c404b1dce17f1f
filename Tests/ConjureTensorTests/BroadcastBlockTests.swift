import Foundation
import XCTest
@testable import ConjureTensor

/// Binary ops where one operand is constant over trailing blocks of the other (`[N, C, H, W]`
/// with `[N, C, 1, 1]`, either side) take a block fast path: its values equal the definition
/// element by element, on one thread and split across the pool, and its gradients sum back.
final class BroadcastBlockTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    func testBlockBroadcastMatchesTheDefinition() {
        var rng = RandomGenerator(seed: 31)
        // (big, small, block): the small operand indexes the big one's leading axes.
        let cases: [([Int], [Int], Int)] = [([4, 8, 40, 50], [4, 8, 1, 1], 2000), ([3, 5, 7], [3, 1, 1], 35),
                                            ([6, 4], [6, 1], 4), ([2, 3, 4, 5], [3, 1, 1], 20)]
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            for (bigShape, smallShape, block) in cases {
                let big = Tensor.randomUniform(bigShape, low: -1, high: 1, using: &rng)
                let small = Tensor.randomUniform(smallShape, low: 0.5, high: 1.5, using: &rng)
                if smallShape.count == bigShape.count {
                    XCTAssertEqual(Tensor.constantBlock(of: smallShape, over: bigShape), block, "\(bigShape) \(smallShape)")
                }
                let b = big.scalars, s = small.scalars
                // [3, 1, 1] over [2, 3, 4, 5] repeats along the first axis: index modulo its count.
                func v(_ i: Int) -> Float { s[(i / block) % s.count] }
                XCTAssertEqual((big + small).scalars, b.indices.map { b[$0] + v($0) }, "add \(bigShape) \(smallShape)")
                XCTAssertEqual((small - big).scalars, b.indices.map { v($0) - b[$0] }, "subtract \(bigShape) \(smallShape)")
                XCTAssertEqual((big * small).scalars, b.indices.map { b[$0] * v($0) }, "multiply \(bigShape) \(smallShape)")
                XCTAssertEqual((small / big).scalars, b.indices.map { v($0) / b[$0] }, "divide \(bigShape) \(smallShape)")
                XCTAssertEqual((big + small).shape, bigShape)
            }
        }
        // Not a block layout: the general path.
        XCTAssertNil(Tensor.constantBlock(of: [1, 8, 1, 1], over: [4, 8, 5, 5]))
        XCTAssertNil(Tensor.constantBlock(of: [4, 1, 5, 5], over: [4, 8, 5, 5]))
        XCTAssertEqual(Tensor.constantBlock(of: [4, 8, 5, 1], over: [4, 8, 5, 5]), 5)
        let x = Tensor.randomUniform([3, 4, 5, 6], low: -1, high: 1, using: &rng).requiringGrad()
        let t = Tensor.randomUniform([3, 4, 1, 1], low: -1, high: 1, using: &rng).requiringGrad()
        let g = Tensor.gradients(of: ((x + t) * (x + t)).sum(), wrt: [x, t])
        let xs = x.scalars, ts = t.scalars
        let dx = xs.indices.map { 2 * (xs[$0] + ts[$0 / 30]) }
        for (a, e) in zip(g[0].scalars, dx) { XCTAssertEqual(a, e, accuracy: 1e-5) }
        for q in 0..<12 {
            let e = (0..<30).reduce(Float(0)) { $0 + dx[q * 30 + $1] }
            XCTAssertEqual(g[1].scalars[q], e, accuracy: 1e-4)
        }
    }
}
