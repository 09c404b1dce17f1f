import Foundation
import XCTest
import ConjureTensor
import ConjureTestSupport

/// Finite-difference checks (Double sums of Float32 evaluations) of the primitives of diffusion,
/// sequence and audio models: SiLU, GELU, group norm, batched products, softmax, nearest
/// upsampling, 1-D convolutions; first order, second order through `createGraph`, and the
/// one-pass backward against the differentiable one.
final class BlocksGradientTests: XCTestCase {
    var rng = RandomGenerator(seed: 11)
    func randn(_ shape: [Int], scale: Float = 1) -> Tensor { Tensor.randomNormal(shape, std: scale, using: &rng) }

    /// The gradient of `sum(f(x) * seed)` with and without `createGraph` (the two backward paths).
    func assertBackwardPathsAgree(_ inputs: [Tensor], file: StaticString = #filePath, line: UInt = #line,
                                  _ f: ([Tensor]) -> Tensor) {
        let leaves = inputs.map { $0.requiringGrad() }
        let y = f(leaves)
        let seed = randn(y.shape)
        let fast = Tensor.gradients(of: y, seed: seed, wrt: leaves)
        let graph = Tensor.gradients(of: y, seed: seed, wrt: leaves, createGraph: true)
        for (a, b) in zip(fast, graph) { assertClose(a, b.detached(), rtol: 1e-4, atol: 1e-5, "fast vs createGraph backward", file: file, line: line) }
    }

    func testSiLUAndGELU() {
        let x = randn([3, 7], scale: 2)
        checkGradients([x]) { $0[0].silu() }
        checkGradients([x]) { $0[0].gelu(approximation: .none) }
        checkGradients([x]) { $0[0].gelu(approximation: .tanh) }
        // Forward values of the definitions (in Double).
        let xs = x.scalars.map(Double.init)
        assertClose(x.silu().scalars, xs.map { Float($0 / (1 + Foundation.exp(-$0))) })
        assertClose(x.gelu().scalars, xs.map { Float(0.5 * $0 * (1 + Foundation.erf($0 / 2.0.squareRoot()))) })
        assertClose(x.gelu(approximation: .tanh).scalars,
                    xs.map { Float(0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0)))) })
        // Second order: d/dx of the weight gradient x · f'(x w) needs f''.
        let w = randn([3, 7])
        for f in [{ (t: Tensor) in t.silu() }, { $0.gelu() }, { $0.gelu(approximation: .tanh) }] {
            checkGradients([x]) { xs in
                let wi = w.requiringGrad()
                return Tensor.gradients(of: f(xs[0] * wi).sum(), wrt: [wi], createGraph: true)[0]
            }
            assertBackwardPathsAgree([x]) { f($0[0]) }
        }
    }

    func testGroupNorm() {
        let x = randn([2, 6, 3, 2]), w = randn([6]), b = randn([6])
        for groups in [1, 2, 3, 6] {
            checkGradients([x, w, b]) { Tensor.groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2]) }
            assertBackwardPathsAgree([x, w, b]) { Tensor.groupNorm($0[0], groups: groups, weight: $0[1], bias: $0[2]) }
        }
        checkGradients([randn([3, 4, 5])]) { Tensor.groupNorm($0[0], groups: 2, weight: nil, bias: nil) }
        // Forward: each (sample, group) has mean 0 and biased variance 1 / (1 + eps/var) without affine.
        let y = Tensor.groupNorm(x, groups: 3, weight: nil, bias: nil, eps: 0)
        for q in 0..<6 {
            let block = y.scalars[(q * 12)..<((q + 1) * 12)].map(Double.init)
            let mean = block.reduce(0, +) / 12
            XCTAssertEqual(mean, 0, accuracy: 1e-6)
            XCTAssertEqual(block.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 12, 1, accuracy: 1e-5)
        }
        // Second order through the differentiable backward.
        checkGradients([w], rtol: 3e-2, atol: 3e-3) { ws in
            let xi = x.requiringGrad()
            let yy = Tensor.groupNorm(xi, groups: 2, weight: ws[0], bias: b)
            let gx = Tensor.gradients(of: (yy * yy * yy).sum(), wrt: [xi], createGraph: true)[0]
            return (gx * gx).sum()
        }
    }

    func testBatchedMatmulAllTransposes() {
        for ta in [false, true] { for tb in [false, true] {
            let a = randn(ta ? [3, 4, 2] : [3, 2, 4]), b = randn(tb ? [3, 5, 4] : [3, 4, 5])
            checkGradients([a, b]) { Tensor.batchedMatmul($0[0], $0[1], transposeA: ta, transposeB: tb) }
            // Each slice equals the 2-D product.
            let y = Tensor.batchedMatmul(a, b, transposeA: ta, transposeB: tb)
            for i in 0..<3 {
                let ai = a.slice(axis: 0, i..<(i + 1)).reshaped(Array(a.shape.dropFirst()))
                let bi = b.slice(axis: 0, i..<(i + 1)).reshaped(Array(b.shape.dropFirst()))
                assertClose(y.slice(axis: 0, i..<(i + 1)).reshaped([2, 5]), Tensor.matmul(ai, bi, transposeA: ta, transposeB: tb))
            }
        } }
    }

    func testSoftmaxOverEachAxis() {
        let x = randn([2, 3, 4], scale: 2)
        for axis in [0, 1, 2, -1] {
            checkGradients([x]) { $0[0].softmax(axis: axis) }
            assertBackwardPathsAgree([x]) { $0[0].softmax(axis: axis) }
            // Rows sum to one.
            let ax = axis < 0 ? axis + 3 : axis
            for v in x.softmax(axis: axis).sum(axes: [ax]).scalars { XCTAssertEqual(v, 1, accuracy: 1e-6) }
        }
        // Stable for huge logits; -inf gets probability 0.
        let big = Tensor(shape: [1, 3], scalars: [1000, 999, -.infinity]).softmax()
        let e = 1 / (1 + Foundation.exp(-1.0))
        assertClose(big.scalars, [Float(e), Float(1 - e), 0])
        let w0 = randn([2, 3, 4])
        checkGradients([x], rtol: 3e-2, atol: 3e-3) { xs in
            let w = w0.requiringGrad()
            let g = Tensor.gradients(of: ((xs[0] * w).softmax(axis: 1) * x).sum(), wrt: [w], createGraph: true)[0]
            return g
        }
    }

    /// The causal softmax equals the softmax of the scores plus PyTorch's additive `-inf`
    /// upper-triangular mask, with finite-difference and second-order gradients; rows larger
    /// than a pool split (many [T, T] matrices) give the same values on one and two threads.
    func testCausalSoftmaxMatchesTheAdditiveMask() {
        let x = randn([3, 5, 5], scale: 2)
        var mask = [Float](repeating: 0, count: 25)
        for i in 0..<5 { for j in (i + 1)..<5 { mask[i * 5 + j] = -.infinity } }
        assertClose(x.causalSoftmax(), (x + Tensor(shape: [5, 5], scalars: mask)).softmax(axis: -1), rtol: 1e-6, atol: 1e-7)
        checkGradients([x]) { $0[0].causalSoftmax() }
        assertBackwardPathsAgree([x]) { $0[0].causalSoftmax() }
        let big = randn([96, 32, 32], scale: 3)
        let saved = Parallel.threads
        defer { Parallel.setThreads(saved) }
        Parallel.setThreads(2)
        let two = big.causalSoftmax()
        Parallel.setThreads(1)
        XCTAssertEqual(big.causalSoftmax().scalars, two.scalars, "same bits on one and on several threads")
        for r in 0..<32 { XCTAssertEqual(two.scalars[5 * 1024 + r * 32 ..< 5 * 1024 + r * 32 + 32].reduce(0, +), 1, accuracy: 1e-5) }
    }

    /// The fused multi-head attention equals the unfused ops head by head (batched products and
    /// the causal or plain softmax), has finite-difference gradients, agreeing first- and
    /// second-order backward paths, ignores later positions when causal, and gives the same bits
    /// on one and two threads.
    func testFusedMultiheadSelfAttention() {
        for causal in [false, true] {
            let qkv = randn([2 * 5, 3 * 6], scale: 1.5)  // B 2, T 5, E 6 in 2 heads of 3
            let fused = Tensor.multiheadSelfAttention(qkv: qkv, batch: 2, heads: 2, causal: causal)
            XCTAssertEqual(fused.shape, [10, 6])
            // Head by head with 2-D products and the additive mask.
            var expected = [Float](repeating: 0, count: 60)
            for b in 0..<2 { for h in 0..<2 {
                let rows = qkv.slice(axis: 0, (b * 5)..<(b * 5 + 5))
                let q = rows.slice(axis: 1, (h * 3)..<(h * 3 + 3)), k = rows.slice(axis: 1, (6 + h * 3)..<(6 + h * 3 + 3))
                let v = rows.slice(axis: 1, (12 + h * 3)..<(12 + h * 3 + 3))
                var scores = Tensor.matmul(q, k, transposeB: true) * (1 / Float(3).squareRoot())
                if causal {
                    var m = [Float](repeating: 0, count: 25)
                    for i in 0..<5 { for j in (i + 1)..<5 { m[i * 5 + j] = -.infinity } }
                    scores = scores + Tensor(shape: [5, 5], scalars: m)
                }
                let ctx = Tensor.matmul(scores.softmax(axis: 1), v).scalars
                for i in 0..<5 { for c in 0..<3 { expected[(b * 5 + i) * 6 + h * 3 + c] = ctx[i * 3 + c] } }
            } }
            assertClose(fused.scalars, expected, rtol: 1e-5, atol: 1e-6)
            checkGradients([qkv]) { Tensor.multiheadSelfAttention(qkv: $0[0], batch: 2, heads: 2, causal: causal) }
            assertBackwardPathsAgree([qkv]) { Tensor.multiheadSelfAttention(qkv: $0[0], batch: 2, heads: 2, causal: causal) }
            // Second order: d/dx of the weight gradient of sum(attention(x w) * seed).
            let w = randn([18, 18], scale: 0.4), seed = randn([10, 6])
            checkGradients([qkv]) { xs in
                let wi = w.requiringGrad()
                let y = Tensor.multiheadSelfAttention(qkv: Tensor.matmul(xs[0], wi), batch: 2, heads: 2, causal: causal)
                return Tensor.gradients(of: (y * seed).sum(), wrt: [wi], createGraph: true)[0]
            }
        }
        // Causal: the context at position 2 of sample 0 ignores positions 3 and 4.
        let qkv = randn([10, 18])
        var later = qkv
        later.withMutableScalars { s in for i in (3 * 18)..<(5 * 18) { s[i] += 1 } }
        let a = Tensor.multiheadSelfAttention(qkv: qkv, batch: 2, heads: 2, causal: true).scalars
        let b = Tensor.multiheadSelfAttention(qkv: later, batch: 2, heads: 2, causal: true).scalars
        XCTAssertEqual(Array(a[0..<18]), Array(b[0..<18]))
        XCTAssertNotEqual(Array(a[18..<30]), Array(b[18..<30]))
        // A pool split of the (batch, head) slices gives the same bits as one thread.
        let big = randn([8 * 40, 3 * 32]).requiringGrad(), g = randn([8 * 40, 32])
        let saved = Parallel.threads
        defer { Parallel.setThreads(saved) }
        func run() -> [Float] {
            let y = Tensor.multiheadSelfAttention(qkv: big, batch: 8, heads: 4, causal: true)
            return y.scalars + Tensor.gradients(of: y, seed: g, wrt: [big])[0].scalars
        }
        Parallel.setThreads(2)
        let two = run()
        Parallel.setThreads(1)
        XCTAssertEqual(run(), two, "same bits on one and on several threads")
    }

    /// Layer normalisation against its definition (Double reference), finite differences for
    /// x, weight and bias, the first- and second-order backward paths, and no affine part.
    func testLayerNorm() {
        let x = randn([4, 3, 6], scale: 3), w = randn([6]), b = randn([6])
        let y = Tensor.layerNorm(x, featureCount: 6, weight: w, bias: b)
        var expected = [Float]()
        for r in 0..<12 {
            let row = (0..<6).map { Double(x.scalars[r * 6 + $0]) }
            let mean = row.reduce(0, +) / 6, v = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 6
            for j in 0..<6 { expected.append(Float((row[j] - mean) / (v + 1e-5).squareRoot() * Double(w.scalars[j]) + Double(b.scalars[j]))) }
        }
        assertClose(y.scalars, expected, rtol: 1e-5, atol: 1e-5)
        checkGradients([x, w, b]) { Tensor.layerNorm($0[0], featureCount: 6, weight: $0[1], bias: $0[2]) }
        assertBackwardPathsAgree([x, w, b]) { Tensor.layerNorm($0[0], featureCount: 6, weight: $0[1], bias: $0[2]) }
        checkGradients([x]) { Tensor.layerNorm($0[0], featureCount: 18, weight: nil, bias: nil) }
    }

    /// The fused GRU cell equals its definition in separate ops (PyTorch's gate order r, z, n),
    /// with finite-difference gradients for gi, gh and h and agreeing backward paths.
    func testGRUCellMatchesItsDefinition() {
        let hs = 5
        let gi = randn([3, 3 * hs], scale: 2), gh = randn([3, 3 * hs], scale: 2), h = randn([3, hs])
        let r = (gi.slice(axis: 1, 0..<hs) + gh.slice(axis: 1, 0..<hs)).sigmoid()
        let z = (gi.slice(axis: 1, hs..<(2 * hs)) + gh.slice(axis: 1, hs..<(2 * hs))).sigmoid()
        let n = (gi.slice(axis: 1, (2 * hs)..<(3 * hs)) + r * gh.slice(axis: 1, (2 * hs)..<(3 * hs))).tanh()
        assertClose(Tensor.gruCell(gi: gi, gh: gh, h: h), (1 - z) * n + z * h, rtol: 1e-5, atol: 1e-6)
        checkGradients([gi, gh, h]) { Tensor.gruCell(gi: $0[0], gh: $0[1], h: $0[2]) }
        assertBackwardPathsAgree([gi, gh, h]) { Tensor.gruCell(gi: $0[0], gh: $0[1], h: $0[2]) }
    }

    /// The fused recurrence equals the step-by-step cells, with finite-difference gradients for
    /// the projections, both weights and the initial state, and agreeing backward paths.
    func testGRUSequenceMatchesTheUnrolledCells() {
        let hs = 3, b = 2, steps = 4
        let gi = randn([steps, b, 3 * hs]), w = randn([3 * hs, hs]), bias = randn([3 * hs]), h0 = randn([b, hs])
        var h = h0, expected: [Tensor] = []
        for s in 0..<steps {
            h = Tensor.gruCell(gi: gi.slice(axis: 0, s..<(s + 1)).reshaped([b, 3 * hs]), gh: Tensor.linear(h, weight: w, bias: bias), h: h)
            expected.append(h.reshaped([1, b, hs]))
        }
        assertClose(Tensor.gruSequence(gi, weightHH: w, biasHH: bias, initial: h0), Tensor.concat(expected, axis: 0), rtol: 1e-5, atol: 1e-6)
        checkGradients([gi, w, bias, h0]) { Tensor.gruSequence($0[0], weightHH: $0[1], biasHH: $0[2], initial: $0[3]) }
        assertBackwardPathsAgree([gi, w, bias, h0]) { Tensor.gruSequence($0[0], weightHH: $0[1], biasHH: $0[2], initial: $0[3]) }
    }

    func testUpsampleNearestAndBlockSum() {
        let x = randn([2, 3, 2, 3])
        checkGradients([x]) { $0[0].upsampleNearest2d(scale: 2) }
        checkGradients([x]) { $0[0].upsampleNearest2d(scale: 3) }
        checkGradients([randn([1, 2, 4, 6])]) { $0[0].blockSum2d(2) }
        let y = x.upsampleNearest2d(scale: 2)
        XCTAssertEqual(y.shape, [2, 3, 4, 6])
        for q in 0..<6 { for i in 0..<4 { for j in 0..<6 {
            XCTAssertEqual(y.scalars[(q * 4 + i) * 6 + j], x.scalars[(q * 2 + i / 2) * 3 + j / 2])
        } } }
    }

    func testUpsampleNearest1dAndBlockSum() {
        let x = randn([2, 3, 5])
        checkGradients([x]) { $0[0].upsampleNearest1d(scale: 2) }
        checkGradients([x]) { $0[0].upsampleNearest1d(scale: 4) }
        checkGradients([randn([2, 2, 12])]) { $0[0].blockSum1d(3) }
        assertBackwardPathsAgree([x]) { $0[0].upsampleNearest1d(scale: 4) }
        let y = x.upsampleNearest1d(scale: 4)
        XCTAssertEqual(y.shape, [2, 3, 20])
        for q in 0..<6 { for i in 0..<20 { XCTAssertEqual(y.scalars[q * 20 + i], x.scalars[q * 5 + i / 4]) } }
        // The adjoint: <up(x), g> = <x, blockSum(g)>.
        let g = randn([2, 3, 20]), bs = g.blockSum1d(4)
        XCTAssertEqual(bs.shape, [2, 3, 5])
        let lhs = zip(y.scalars, g.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(x.scalars, bs.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-4)
    }

    func testConv1dAndTranspose() {
        for (k, s, p, biased) in [(3, 1, 1, true), (5, 2, 0, false), (4, 3, 2, true)] {
            let x = randn([2, 3, 11]), w = randn([4, 3, k], scale: 0.5), b = randn([4])
            checkGradients(biased ? [x, w, b] : [x, w]) {
                Tensor.conv1d($0[0], weight: $0[1], bias: biased ? $0[2] : nil, stride: s, padding: p)
            }
            // Equals the direct sum y[n, o, l] = b[o] + Σ_c Σ_j w[o, c, j] x[n, c, l s - p + j].
            let y = Tensor.conv1d(x, weight: w, bias: biased ? b : nil, stride: s, padding: p)
            let lo = (11 + 2 * p - k) / s + 1
            XCTAssertEqual(y.shape, [2, 4, lo])
            var direct = [Float](repeating: 0, count: 2 * 4 * lo)
            for n in 0..<2 { for o in 0..<4 { for l in 0..<lo {
                var acc = biased ? Double(b.scalars[o]) : 0
                for c in 0..<3 { for j in 0..<k {
                    let i = l * s - p + j
                    if i >= 0 && i < 11 { acc += Double(w.scalars[(o * 3 + c) * k + j]) * Double(x.scalars[(n * 3 + c) * 11 + i]) }
                } }
                direct[(n * 4 + o) * lo + l] = Float(acc)
            } } }
            assertClose(y.scalars, direct, rtol: 1e-5, atol: 1e-5)
            // The transposed convolution is the adjoint: <conv(x), g> = <x, convT(g)>.
            let wt = randn([4, 3, k], scale: 0.5), g = randn([2, 4, lo])
            let op = 11 - ((lo - 1) * s - 2 * p + k)
            XCTAssert(op >= 0 && op < s, "output padding \(op)")
            let xt = Tensor.convTranspose1d(g, weight: wt, stride: s, padding: p, outputPadding: op)
            let lhs = (Tensor.conv1d(x, weight: wt, stride: s, padding: p) * g).sum().item
            let rhs = (x * xt).sum().item
            XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(lhs)))
            checkGradients([g, wt, randn([3])]) {
                Tensor.convTranspose1d($0[0], weight: $0[1], bias: $0[2], stride: s, padding: p, outputPadding: op)
            }
        }
        // WaveGAN's upsampling layer: kernel 25, stride 4, padding 11, output padding 1 (length × 4).
        let z = randn([1, 2, 5]), wz = randn([2, 1, 25], scale: 0.3)
        XCTAssertEqual(Tensor.convTranspose1d(z, weight: wz, stride: 4, padding: 11, outputPadding: 1).shape, [1, 1, 20])
        checkGradients([z, wz]) { Tensor.convTranspose1d($0[0], weight: $0[1], stride: 4, padding: 11, outputPadding: 1) }
        // Second order (a gradient penalty on a 1-D critic).
        let xc = randn([1, 2, 9])
        checkGradients([randn([3, 2, 3], scale: 0.5)], rtol: 3e-2, atol: 3e-3) { ws in
            let xi = xc.requiringGrad()
            let y = Tensor.conv1d(xi, weight: ws[0], stride: 2, padding: 1).tanh()
            let gx = Tensor.gradients(of: (y * y).sum(), wrt: [xi], createGraph: true)[0]
            return (gx * gx).sum()
        }
    }
}
