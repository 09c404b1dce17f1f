import Foundation
import XCTest
@testable import ConjureTensor
import CConjureKernels
import CBLAS

/// The fork-join pool and the products split across it: every iteration runs exactly once, and
/// a product (cut into blocks by its shape) is bit-identical on any thread count.
final class ParallelTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    func testForEachRunsEveryIterationOnceAndNestedLoopsRunSerially() {
        for threads in [1, 2, 3] {
            Parallel.setThreads(threads)
            for count in [0, 1, 2, 7, 1000] {
                var hits = [Int](repeating: 0, count: count * 5)
                hits.withUnsafeMutableBufferPointer { h in
                    Parallel.forEach(count) { i in
                        h[i * 5] += 1
                        // A nested loop must not deadlock or lose iterations.
                        Parallel.forEach(4) { j in h[i * 5 + 1 + j] += 1 }
                    }
                }
                XCTAssertEqual(hits, [Int](repeating: 1, count: count * 5), "threads \(threads), count \(count)")
            }
        }
    }

    func testForRangesCoversTheRangeWithoutOverlap() {
        Parallel.setThreads(2)
        for n in [0, 5, 65_536, 200_003] {
            var seen = [UInt8](repeating: 0, count: n)
            seen.withUnsafeMutableBufferPointer { s in
                Parallel.forRanges(n, minimum: 1000) { r in for i in r { s[i] += 1 } }
            }
            XCTAssertTrue(seen.allSatisfy { $0 == 1 }, "n \(n)")
        }
    }

    /// Ranges of the concatenated segments: every element once, in local coordinates of the
    /// right segment, never an empty range, and a segment cut where the pool's ranges meet.
    func testForSegmentsVisitsEveryElementOnce() {
        let counts = [0, 5, 0, 70_000, 3, 40_001, 0, 1]
        for threads in [1, 2, 3] {
            Parallel.setThreads(threads)
            var seen = counts.map { [UInt8](repeating: 0, count: $0) }
            var calls = [Int](repeating: 0, count: counts.count)
            let lock = NSLock()
            seen.withUnsafeMutableBufferPointer { s in
                Parallel.forSegments(counts, minimum: 1000) { segment, r in
                    XCTAssertFalse(r.isEmpty)
                    XCTAssertLessThanOrEqual(r.upperBound, counts[segment])
                    for i in r { s[segment][i] += 1 }
                    lock.lock(); calls[segment] += 1; lock.unlock()
                }
            }
            XCTAssertEqual(seen, counts.map { [UInt8](repeating: 1, count: $0) }, "threads \(threads)")
            XCTAssertEqual(calls[0], 0)
            XCTAssertEqual(calls[2], 0)
            // The 110,010 elements split at 55,008 (two threads: inside segment 3, which spans
            // 5..<70,005), or at 36,672 and 73,344 (three: one cut in segment 3, one in segment 5).
            let expected = [1: (1, 1), 2: (2, 1), 3: (2, 2)][threads]!
            XCTAssertEqual(calls[3], expected.0, "threads \(threads)")
            XCTAssertEqual(calls[5], expected.1, "threads \(threads)")
        }
    }

    /// Large normal draws transform their raw draws across threads: same values and the same
    /// generator state afterwards as one thread, for even and odd counts.
    func testNormalDrawsAreTheSameOnAnyThreadCount() {
        for n in [4096, 6400, 8192, 20_001] {   // 6400: a batch-64 z of 100
            var r1 = RandomGenerator(seed: 11, stream: 2), r2 = r1
            Parallel.setThreads(1)
            let one = Tensor.randomNormal([n], mean: 0.5, std: 2, using: &r1)
            Parallel.setThreads(2)
            let two = Tensor.randomNormal([n], mean: 0.5, std: 2, using: &r2)
            XCTAssertEqual(one.scalars, two.scalars, "n \(n)")
            XCTAssertEqual(r1.next(), r2.next(), "generator state after \(n) draws")
            // And they are normal: mean 0.5, std 2 within sampling error.
            let mean = two.scalars.reduce(0, +) / Float(n)
            let sd = (two.scalars.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(n)).squareRoot()
            XCTAssertEqual(mean, 0.5, accuracy: 0.1)
            XCTAssertEqual(sd, 2, accuracy: 0.1)
        }
    }

    /// The vectorised Box–Muller kernel against the same transform through Foundation's Double
    /// log/sin/cos: equal floats but for the rare pair whose angle lies next to a quarter turn
    /// (where a libm call sees 2πu rounded first), and then within 2 ulp; exact at the ends of
    /// the draws' range and at quarter turns.
    func testBoxMullerMatchesLibmTransform() {
        func reference(_ a: UInt64, _ b: UInt64) -> (Float, Float) {
            let u1 = 1.0 - Double(a >> 11) * (1.0 / 9_007_199_254_740_992.0)
            let u2 = Double(b >> 11) * (1.0 / 9_007_199_254_740_992.0)
            let r = (-2.0 * Foundation.log(u1)).squareRoot(), t = 2.0 * Double.pi * u2
            return (Float(r * Foundation.cos(t)), Float(r * Foundation.sin(t)))
        }
        var rng = RandomGenerator(seed: 3)
        let n = 400_001
        var raw = (0..<(n + 1)).map { _ in rng.next() }
        // u1 = 1 (radius 0), u1 = 2^-53 (the largest radius, 8.5717), u1 just below 1/2 and 1.
        raw[0] = 0; raw[2] = .max; raw[4] = (1 << 63) - 1; raw[6] = 1 << 11
        var out = [Float](repeating: .nan, count: n)
        conjure_box_muller(raw, n, 0, 1, &out)
        var differing = 0, worst: Float = 0  // in ulps of the reference
        for j in 0..<(n + 1) / 2 {
            let (c, s) = reference(raw[2 * j], raw[2 * j + 1])
            for (got, want) in [(out[2 * j], c), (2 * j + 1 < n ? out[2 * j + 1] : s, s)] where got != want {
                differing += 1
                worst = max(worst, abs(got - want) / want.ulp)
            }
        }
        XCTAssertLessThanOrEqual(differing, 3, "of \(n) values")
        XCTAssertLessThanOrEqual(worst, 2)
        XCTAssertEqual(out[1], 0)              // radius 0
        XCTAssertEqual(out[2] * out[2] + out[3] * out[3], 73.4736, accuracy: 1e-3)  // radius² = 106 ln 2
        // Quarter turns: u2 = 0, 1/4, 1/2, 3/4 give exactly (r, 0), (0, r), (-r, 0), (0, -r).
        let r = Float((-2.0 * Foundation.log(0.5)).squareRoot())
        for (k, want) in [(0, (r, Float(0))), (1, (0, r)), (2, (-r, 0)), (3, (0, -r))] {
            var pair = [Float](repeating: 0, count: 2)
            conjure_normal_pair(1 << 63, UInt64(k) << 62, &pair)
            XCTAssertEqual(pair[0], want.0, "quarter \(k)")
            XCTAssertEqual(pair[1], want.1, "quarter \(k)")
        }
        // Scaled draws: mean + std * value, odd counts fill the last value only.
        var scaled = [Float](repeating: .nan, count: 3)
        conjure_box_muller(raw, 3, 0.5, 2, &scaled)
        XCTAssertEqual(scaled, out.prefix(3).map { 0.5 + 2 * $0 })
    }

    /// Random operands of `op(a) [m, k] · op(b) [k, n]` and their product on 1, 2 and 3 threads.
    func productOnThreads(_ m: Int, _ n: Int, _ k: Int, _ ta: Bool, _ tb: Bool, _ rng: inout RandomGenerator)
        -> (a: Tensor, b: Tensor, products: [Tensor]) {
        let a = Tensor.randomNormal(ta ? [k, m] : [m, k], using: &rng)
        let b = Tensor.randomNormal(tb ? [n, k] : [k, n], using: &rng)
        var products: [Tensor] = []
        for threads in [1, 2, 3] {
            Parallel.setThreads(threads)
            products.append(Tensor.matmul(a, b, transposeA: ta, transposeB: tb))
        }
        return (a, b, products)
    }

    /// The largest error of `c` against the Double product of `a` and `b`, relative to the sum
    /// of the terms' magnitudes. Float32 sums err by at most about `k · 6e-8` of it (here below
    /// 6e-5); a missing, doubled or misplaced block errs by the magnitude itself.
    func worstRelativeError(_ c: Tensor, _ a: Tensor, _ b: Tensor, _ m: Int, _ n: Int, _ k: Int, _ ta: Bool, _ tb: Bool) -> Double {
        var worst = 0.0
        for i in 0..<m { for j in 0..<n {
            var acc = 0.0, magnitude = 0.0
            for p in 0..<k {
                let t = Double(ta ? a.scalars[p * m + i] : a.scalars[i * k + p]) * Double(tb ? b.scalars[j * k + p] : b.scalars[p * n + j])
                acc += t
                magnitude += abs(t)
            }
            worst = max(worst, abs(Double(c.scalars[i * n + j]) - acc) / max(magnitude, .leastNormalMagnitude))
        } }
        return worst
    }

    /// A product is cut into the same blocks whatever the thread count, so 1, 2 and 3 threads
    /// (3 does not divide the block count) give the same bits, for every transpose combination,
    /// row and column blocks and shapes that do not divide evenly; every element is within
    /// Float32 rounding of the Double product. (Whether the blocks' bits equal one OpenBLAS call's
    /// depends on the OpenBLAS kernel: Cooperlake's agree for these shapes, Haswell's edge
    /// kernels do not, so no assertion compares against one call.)
    func testSplitProductsAreBitIdenticalOnAnyThreadCount() {
        var rng = RandomGenerator(seed: 5)
        let shapes = [(256, 128, 784), (64, 784, 256), (100, 33, 517), (37, 300, 64), (512, 1, 128)]
        for (m, n, k) in shapes {
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                let (a, b, products) = productOnThreads(m, n, k, ta, tb, &rng)
                XCTAssertEqual(products[0].scalars, products[1].scalars, "\(m)x\(n)x\(k) ta \(ta) tb \(tb): 1 vs 2 threads")
                XCTAssertEqual(products[0].scalars, products[2].scalars, "\(m)x\(n)x\(k) ta \(ta) tb \(tb): 1 vs 3 threads")
                XCTAssertLessThan(worstRelativeError(products[1], a, b, m, n, k, ta, tb), 1e-4, "\(m)x\(n)x\(k) ta \(ta) tb \(tb)")
            }
        }
    }

    /// The blocks depend on the shape only: consecutive, non-empty, covering the longer extent
    /// of `C`, interior bounds on multiples of 8, a power-of-two count up to 8 chosen from the
    /// extent (blocks of at least 128 rows or columns) and the FLOPs.
    func testProductBlocksAreFixedByTheShape() {
        let cases: [(Int, Int, Int, Bool, Int)] = [  // (m, n, k, along rows, blocks)
            (64, 1024, 512, false, 8),   // the gan generator's widest layer at batch 64
            (256, 128, 784, true, 2),    // 256 rows: 2 blocks of 128
            (1024, 1024, 64, true, 8),   // 8 blocks of 128
            (400, 33, 517, true, 2),     // 400 rows: at most 3 blocks of 128, so 2
            (64, 784, 256, false, 4),    // 784 columns: at most 6 blocks of 128, so 4
            (64, 128, 784, false, 1),    // 128 columns: one block
            (255, 100, 4096, true, 1),   // fewer than 256 rows and columns
            (64, 100, 64, false, 1),     // 0.8 MFLOP: below gemmSplitFLOPs
            (64, 1024, 16, false, 4),    // 2.1 MFLOP: 4 blocks of at least half of 1 MFLOP
        ]
        for (m, n, k, rows, count) in cases {
            let blocks = productBlocks(m: m, n: n, k: k)
            XCTAssertEqual(blocks.alongRows, rows, "\(m)x\(n)x\(k)")
            XCTAssertEqual(blocks.count, count, "\(m)x\(n)x\(k)")
            var next = 0
            for i in 0..<blocks.count {
                let r = blocks.bounds(i)
                XCTAssertEqual(r.lowerBound, next, "\(m)x\(n)x\(k) block \(i)")
                XCTAssertFalse(r.isEmpty, "\(m)x\(n)x\(k) block \(i)")
                if i > 0 { XCTAssertEqual(r.lowerBound % 8, 0) }
                if blocks.count > 1 { XCTAssertGreaterThanOrEqual(r.count, 120, "\(m)x\(n)x\(k) block \(i)") }  // 128 less rounding
                next = r.upperBound
            }
            XCTAssertEqual(next, rows ? m : n, "\(m)x\(n)x\(k)")
        }
    }

    /// `linear` sets its bias block by block inside the product: the same bits as the bias
    /// broadcast first and the product then accumulated into it (`beta = 1`, the same blocks on
    /// one thread), on 1, 2 and 3 threads, for row blocks (256 x 128), column blocks (784
    /// outputs), batch 64 and one call; within Float32 rounding of the Double affine map.
    func testLinearBiasInsideBlocksIsTheBroadcastThenTheProduct() {
        var rng = RandomGenerator(seed: 13)
        for (batch, inF, outF) in [(256, 784, 128), (256, 256, 784), (64, 784, 130), (5, 7, 3), (3, 0, 4), (0, 4, 2)] {
            let x = Tensor.randomNormal([batch, inF], using: &rng)
            let w = Tensor.randomNormal([outF, inF], using: &rng)
            let bias = Tensor.randomNormal([outF], using: &rng)
            var expected = [Float](repeating: 0, count: batch * outF)
            for i in 0..<batch { for j in 0..<outF { expected[i * outF + j] = bias.scalars[j] } }
            if batch * outF > 0 && inF > 0 {
                Parallel.setThreads(1)
                x.withUnsafeScalars { px in
                    w.withUnsafeScalars { pw in
                        sgemm(transposeA: false, transposeB: true, m: batch, n: outF, k: inF,
                              a: px.baseAddress!, b: pw.baseAddress!, beta: 1, c: &expected)
                    }
                }
            }
            for threads in [1, 2, 3] {
                Parallel.setThreads(threads)
                let y = Tensor.linear(x, weight: w, bias: bias)
                XCTAssertEqual(y.shape, [batch, outF])
                let differ = zip(y.scalars, expected).filter { $0.bitPattern != $1.bitPattern }.count
                XCTAssertEqual(differ, 0, "\(batch)x\(inF)->\(outF) threads \(threads)")
            }
            var worst = 0.0
            for i in 0..<batch { for j in 0..<outF {
                var acc = Double(bias.scalars[j]), magnitude = abs(acc)
                for p in 0..<inF { let t = Double(x.scalars[i * inF + p]) * Double(w.scalars[j * inF + p]); acc += t; magnitude += abs(t) }
                worst = max(worst, abs(Double(expected[i * outF + j]) - acc) / magnitude)
            } }
            XCTAssertLessThan(worst, 1e-4, "\(batch)x\(inF)->\(outF)")
        }
    }

    /// Products with `k = 1` (a one-output linear layer's backward) are Conjure's kernel: every
    /// element is the product rounded once (the exact Double product rounded to Float; an exact
    /// zero product is +0, one that underflows keeps its sign, 0 · inf is NaN), for `g · W` (NN)
    /// and `gᵀ · x` (TN), on 1, 2 and 3 threads (300 x 250 splits by rows). Not compared with
    /// `cblas_sgemm`: OpenBLAS 0.3.21's Haswell kernel gives +0 for a negative product that
    /// underflows where its Cooperlake kernel gives -0.
    func testOuterProductsAreOneRoundedProductPerElement() {
        var rng = RandomGenerator(seed: 12)
        let specials: [Float] = [0, -0.0, 1e-30, -1e-30, .infinity, -.infinity, .nan, 3, -2.5]
        for (m, n) in [(300, 250), (256, 128), (3, 5), (1, 7), (7, 1)] {
            var av = Tensor.randomNormal([m], using: &rng).scalars
            var bv = Tensor.randomNormal([n], using: &rng).scalars
            for (i, v) in specials.enumerated() where i < m { av[i] = v }
            for (j, v) in specials.reversed().enumerated() where j < n { bv[j] = v * 1e-20 }
            if n > 9 { bv[9] = .nan; bv[n - 1] = -0.0 }
            var expected = [Float](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n {
                let p = Double(av[i]) * Double(bv[j])  // exact: 24-bit significands, Double's range
                expected[i * n + j] = p == 0 ? 0 : Float(p)
            } }
            for ta in [false, true] {
                let a = Tensor(shape: ta ? [1, m] : [m, 1], scalars: av), b = Tensor(shape: [1, n], scalars: bv)
                for threads in [1, 2, 3] {
                    Parallel.setThreads(threads)
                    let c = Tensor.matmul(a, b, transposeA: ta)
                    XCTAssertEqual(c.shape, [m, n])
                    let differ = zip(c.scalars, expected).filter { $0.bitPattern != $1.bitPattern && !($0.isNaN && $1.isNaN) }.count
                    XCTAssertEqual(differ, 0, "\(m)x\(n) ta \(ta) threads \(threads)")
                    if m >= 9 && n >= 9 {
                        // a = specials[i], b = specials[8 - j] * 1e-20
                        XCTAssertEqual(c.scalars[0 * n + 0].bitPattern, Float(0).bitPattern)        // 0 · -2.5e-20: +0
                        XCTAssertEqual(c.scalars[1 * n + 1].bitPattern, Float(0).bitPattern)        // -0 · 3e-20: +0
                        XCTAssertEqual(c.scalars[3 * n + 1].bitPattern, (-Float(0)).bitPattern)     // -1e-30 · 3e-20 underflows: -0
                        XCTAssertEqual(c.scalars[2 * n + 0].bitPattern, (-Float(0)).bitPattern)     // 1e-30 · -2.5e-20: -0
                        XCTAssertTrue(c.scalars[4 * n + 8].isNaN)                                   // inf · 0: NaN
                        XCTAssertEqual(c.scalars[5 * n + 1], -.infinity)                            // -inf · 3e-20: -inf
                    }
                }
            }
        }
    }

    /// Products run as small-matrix-kernel tiles (the MLP's shapes at batch 64-256, every edge
    /// tile narrower or shorter), which only OpenBLAS's SkylakeX-family cores get (none on
    /// others); with the tiles forced on, so the tiled path runs on any core: the same bits on
    /// 1, 2 and 3 threads, every element within Float32 rounding of the Double product.
    func testSmallKernelBlocksComputeTheWholeProduct() {
        let saved = OpenBLASKernels.smallMatrixTiles
        defer { OpenBLASKernels.smallMatrixTiles = saved }
        var rng = RandomGenerator(seed: 8)
        // (m, n, k, transposeA, transposeB, expected tile (rows, columns))
        let cases: [(Int, Int, Int, Bool, Bool, (Int, Int)?)] = [
            (64, 130, 784, false, true, (64, 16)),       // x · Wᵀ, D's first layer, 130 = 8·16 + 2
            (64, 100, 1024, false, true, (64, 8)),       // 16 columns would exceed 1e6
            (96, 784, 512, false, true, (96, 8)),        // more than 64 rows: 8 columns
            (200, 130, 784, false, true, (64, 16)),      // above 128 rows: 64 x 16 tiles, 200 = 3·64 + 8
            (66, 256, 784, false, false, (4, 256)),      // g · W, 66 rows = 16·4 + 2
            (784, 256, 64, true, false, (784, 16)),      // gᵀ · x
            (256, 784, 256, false, true, nil),           // batch 256, k = 256: blocks (tiles were slower)
            (256, 256, 1024, false, true, nil),          // 64 x 16 x 1024 exceeds 1e6
            (256, 784, 128, false, false, (4, 784)),     // g · W with k = 128 (D's first layer at batch 256)
            (64, 784, 100, false, false, nil),           // k below 128
            (64, 100, 256, false, false, nil),           // n not a multiple of 16
            (128, 100, 256, true, false, (128, 16)),     // gᵀ · x, G's first layer: 100 = 6·16 + 4
            (128, 40, 256, true, false, nil),            // gᵀ · x with n below 48
            (64, 128, 100, false, true, nil),            // at most 1e6: already the small kernel
        ]
        for (m, n, k, ta, tb, expected) in cases {
            let tile = smallKernelBlocks(transposeA: ta, transposeB: tb, m: m, n: n, k: k, smallMatrixKernels: true)
            XCTAssertEqual(tile?.rows, expected?.0, "\(m)x\(n)x\(k)")
            XCTAssertEqual(tile?.columns, expected?.1, "\(m)x\(n)x\(k)")
            XCTAssertNil(smallKernelBlocks(transposeA: ta, transposeB: tb, m: m, n: n, k: k, smallMatrixKernels: false))
            for tiles in [true, false] {
                OpenBLASKernels.smallMatrixTiles = tiles
                let (a, b, products) = productOnThreads(m, n, k, ta, tb, &rng)
                XCTAssertEqual(products[0].scalars, products[1].scalars, "\(m)x\(n)x\(k) tiles \(tiles): 1 vs 2 threads")
                XCTAssertEqual(products[0].scalars, products[2].scalars, "\(m)x\(n)x\(k) tiles \(tiles): 1 vs 3 threads")
                XCTAssertLessThan(worstRelativeError(products[0], a, b, m, n, k, ta, tb), 1e-4, "\(m)x\(n)x\(k) ta \(ta) tb \(tb) tiles \(tiles)")
            }
        }
    }

    /// tanh and its gradient split large inputs across the pool: the same values on one and two
    /// threads, within 5e-7 (relative) of Foundation's tanh, and exactly g * (1 - y^2).
    /// ReLU and LeakyReLU (C kernels split across the pool from 32K elements) and their
    /// gradients: the values of the written rules on one and on two threads, for signed zeros,
    /// infinities and NaN too (`g * 0` keeps the sign of zero, as `g * mask`).
    func testReluKernelsAreTheRulesOnAnyThreadCount() {
        var rng = RandomGenerator(seed: 9)
        var xs = Tensor.randomNormal([70_001], using: &rng).scalars
        var gs = Tensor.randomNormal([70_001], using: &rng).scalars
        let specials: [Float] = [0, -0.0, .infinity, -.infinity, .nan, .leastNonzeroMagnitude, -.leastNonzeroMagnitude]
        for (i, v) in specials.enumerated() { xs[i] = v; xs[40_000 + i] = v; gs[i + 7] = v; gs[i] = -1 }
        let x = Tensor(shape: [70_001], scalars: xs).requiringGrad(), g = Tensor(shape: [70_001], scalars: gs)
        func same(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern } }
        for slope: Float? in [nil, 0.2] {
            let forward: (Float) -> Float = { v in slope.map { v > 0 ? v : v * $0 } ?? (v > 0 ? v : 0) }
            let backward: (Float, Float) -> Float = { gv, v in v > 0 ? gv : gv * (slope ?? 0) }
            var outputs: [[Float]] = [], grads: [[Float]] = []
            for threads in [1, 2] {
                Parallel.setThreads(threads)
                let y = slope.map { x.leakyRelu($0) } ?? x.relu()
                outputs.append(y.scalars)
                grads.append(Tensor.gradients(of: y, seed: g, wrt: [x])[0].scalars)
            }
            let name = slope == nil ? "relu" : "leakyRelu"
            XCTAssertTrue(same(outputs[0], outputs[1]) && same(grads[0], grads[1]), name)
            XCTAssertTrue(same(outputs[1], xs.map(forward)), name)
            XCTAssertTrue(same(grads[1], zip(gs, xs).map(backward)), name)
        }
        XCTAssertEqual((Tensor(shape: [2], scalars: [-0.0, -2]).requiringGrad().relu().scalars).map(\.sign), [.plus, .plus])
    }

    /// Sums over leading axes (a bias gradient) split by columns across the pool: the one-thread
    /// bits, each column summed in row order in Double.
    func testColumnSumsAreTheSameOnAnyThreadCount() {
        var rng = RandomGenerator(seed: 4)
        for shape in [[300, 333], [256, 784], [4, 75, 130], [40_000, 1]] {
            let x = Tensor.randomNormal(shape, using: &rng)
            let inner = shape.last!, outer = x.count / inner
            let axes = Array(0..<(shape.count - 1))
            Parallel.setThreads(1)
            let one = x.sum(axes: axes)
            Parallel.setThreads(2)
            let two = x.sum(axes: axes)
            XCTAssertEqual(one.shape, [inner])
            XCTAssertTrue(zip(one.scalars, two.scalars).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(shape)")
            var expected = [Double](repeating: 0, count: inner)
            for i in 0..<outer { for j in 0..<inner { expected[j] += Double(x.scalars[i * inner + j]) } }
            XCTAssertTrue(zip(two.scalars, expected).allSatisfy { $0 == Float($1) }, "\(shape)")
        }
    }

    /// Batch normalisation in training mode split by feature columns across the pool: the
    /// one-thread bits for the output, the batch statistics and all three gradients, and the
    /// output is the per-column formula in Double (mean, biased variance, eps inside the root).
    func testBatchNormTrainingIsTheSameOnAnyThreadCount() {
        var rng = RandomGenerator(seed: 5)
        for (n, f) in [(64, 1024), (64, 6272), (300, 133), (8, 40)] {
            let x = Tensor.randomNormal([n, f], std: 3, using: &rng)
            let w = Tensor.randomUniform([f], low: 0.5, high: 1.5, using: &rng)
            let b = Tensor.randomUniform([f], low: -1, high: 1, using: &rng)
            let up = Tensor.randomNormal([n, f], using: &rng)
            func run(_ threads: Int) -> [[Float]] {
                Parallel.setThreads(threads)
                let (xv, wv, bv) = (x.requiringGrad(), w.requiringGrad(), b.requiringGrad())
                let r = Tensor.batchNormTraining(xv, weight: wv, bias: bv, eps: 1e-5)
                let g = Tensor.gradients(of: (r.y * up).sum(), wrt: [xv, wv, bv])
                return [r.y.scalars, r.mean, r.variance] + g.map(\.scalars)
            }
            let one = run(1)
            for threads in [2, 4] {
                for (a, c) in zip(one, run(threads)) {
                    XCTAssertTrue(a.count == c.count && zip(a, c).allSatisfy { $0.bitPattern == $1.bitPattern }, "[\(n), \(f)] on \(threads) threads")
                }
            }
            for j in [0, f / 2, f - 1] {
                var mean = 0.0, variance = 0.0
                for i in 0..<n { mean += Double(x.scalars[i * f + j]) }
                mean /= Double(n)
                for i in 0..<n { let d = Double(x.scalars[i * f + j]) - mean; variance += d * d }
                variance /= Double(n)
                XCTAssertEqual(one[1][j], Float(mean))
                XCTAssertEqual(one[2][j], Float(variance))
                for i in [0, n - 1] {
                    let h = (Double(x.scalars[i * f + j]) - mean) / (variance + 1e-5).squareRoot()
                    XCTAssertEqual(Double(one[0][i * f + j]), h * Double(w.scalars[j]) + Double(b.scalars[j]), accuracy: 1e-5)
                }
            }
        }
    }

    /// Whole-tensor sums (spectral norm's σ and its gradient, 400K elements per layer): below
    /// 32K elements one chain in order; from 32K the 8-lane Double sum, its exact formula, on
    /// any thread count, for `sum()` and for `sum(axes:)` down to one value.
    func testLargeWholeSumsUseTheEightLaneDoubleSum() {
        var rng = RandomGenerator(seed: 14)
        for n in [32_767, 32_768, 100_003, 400_001] {
            // Magnitudes from 2^-40 to 2^20, so the Double additions round.
            let draws = Tensor.randomNormal([n], mean: 0.3, using: &rng).scalars
            let x = Tensor(shape: [n], scalars: draws.enumerated().map { i, v in v * Float(sign: .plus, exponent: i * 7 % 61 - 40, significand: 1) })
            var chain = 0.0
            for v in x.scalars { chain += Double(v) }
            var lanes = [Double](repeating: 0, count: 8)
            for (i, v) in x.scalars.enumerated() { lanes[i % 8] += Double(v) }
            let laned = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
            let expected = n >= Tensor.laneSumCount ? laned : chain
            if n >= Tensor.laneSumCount {
                XCTAssertEqual(x.withUnsafeScalars { Tensor.laneSum($0) }.bitPattern, laned.bitPattern, "\(n)")
                XCTAssertNotEqual(laned.bitPattern, chain.bitPattern, "\(n): the test data tells the two orders apart")
            }
            for threads in [1, 2] {
                Parallel.setThreads(threads)
                XCTAssertEqual(x.sum().item.bitPattern, Float(expected).bitPattern, "\(n) sum() threads \(threads)")
                let m = x.reshaped([n, 1]).sum(axes: [0, 1])
                XCTAssertEqual(m.item.bitPattern, Float(expected).bitPattern, "\(n) sum(axes:) threads \(threads)")
            }
        }
    }

    func testTanhIsTheSameOnAnyThreadCount() {
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randomNormal([50_001], std: 3, using: &rng).requiringGrad()
        let seed = Tensor.randomNormal([50_001], using: &rng)
        Parallel.setThreads(1)
        let one = x.tanh(), gOne = Tensor.gradients(of: one, seed: seed, wrt: [x])[0]
        Parallel.setThreads(2)
        let two = x.tanh(), gTwo = Tensor.gradients(of: two, seed: seed, wrt: [x])[0]
        XCTAssertEqual(one.scalars, two.scalars)
        XCTAssertEqual(gOne.scalars, gTwo.scalars)
        // The gradient is exactly g * (1 - y * y) in Float.
        XCTAssertEqual(gTwo.scalars, zip(seed.scalars, two.scalars).map { g, y in g * (1 - y * y) })
        for (v, y) in zip(x.scalars, two.scalars) {
            XCTAssertEqual(Double(y), Foundation.tanh(Double(v)), accuracy: 5e-7 * max(1e-30, abs(Foundation.tanh(Double(v)))) + 1e-12)
        }
    }
}
