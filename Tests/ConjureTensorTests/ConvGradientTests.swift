import Foundation
import XCTest
import ConjureTensor
import ConjureTestSupport

/// Convolution, transposed convolution and per-channel batch norm: forward values against
/// direct loops, finite-difference gradients, second order, and a speed print-out.
final class ConvGradientTests: XCTestCase {
    var rng = RandomGenerator(seed: 17)
    func randn(_ shape: [Int], scale: Float = 1) -> Tensor { Tensor.randomNormal(shape, std: scale, using: &rng) }

    /// (N, Cin, H, W, Cout, kH, kW, stride, padding, bias)
    typealias Config = (n: Int, cin: Int, h: Int, w: Int, cout: Int, kh: Int, kw: Int, s: Int, p: Int, bias: Bool)
    let convConfigs: [Config] = [
        (2, 3, 5, 5, 4, 3, 3, 1, 1, true),
        (1, 2, 6, 5, 3, 3, 3, 2, 0, false),   // rectangular input, no bias
        (2, 2, 8, 8, 3, 4, 4, 2, 1, true),    // DCGAN-style k4 s2 p1
        (1, 1, 7, 6, 2, 5, 5, 1, 2, true),
        (2, 2, 7, 9, 2, 2, 3, 3, 1, true),    // rectangular kernel, stride 3
        (1, 3, 4, 4, 2, 1, 1, 1, 0, false),   // 1x1
        (1, 2, 6, 28, 3, 4, 4, 2, 1, true),   // DCGAN's 28-wide rows: two 16-lane registers
        (2, 2, 5, 37, 3, 4, 4, 2, 1, true),   // rows wider than 32 lanes: the table kernels
        (1, 2, 4, 40, 2, 3, 3, 1, 1, false),  // stride 1, 40 output columns
    ]

    /// Direct six-loop cross-correlation in Double.
    func naiveConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, s: Int, p: Int) -> [Float] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (f, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let ho = (h + 2 * p - kh) / s + 1, wo = (wd + 2 * p - kw) / s + 1
        var out = [Float](repeating: 0, count: n * f * ho * wo)
        for b0 in 0..<n { for o in 0..<f { for i in 0..<ho { for j in 0..<wo {
            var acc = Double(b?.scalars[o] ?? 0)
            for ci in 0..<c { for a in 0..<kh { for bb in 0..<kw {
                let ih = i * s - p + a, iw = j * s - p + bb
                if ih < 0 || ih >= h || iw < 0 || iw >= wd { continue }
                acc += Double(x.scalars[((b0 * c + ci) * h + ih) * wd + iw]) * Double(w.scalars[((o * c + ci) * kh + a) * kw + bb])
            } } }
            out[((b0 * f + o) * ho + i) * wo + j] = Float(acc)
        } } } }
        return out
    }

    /// Direct scatter form of the transposed convolution in Double.
    func naiveConvTranspose(_ x: Tensor, _ w: Tensor, _ b: Tensor?, s: Int, p: Int, op: Int) -> [Float] {
        let (n, cin, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (cout, kh, kw) = (w.shape[1], w.shape[2], w.shape[3])
        let ho = (h - 1) * s - 2 * p + kh + op, wo = (wd - 1) * s - 2 * p + kw + op
        var out = [Double](repeating: 0, count: n * cout * ho * wo)
        for b0 in 0..<n { for o in 0..<cout { for i in 0..<ho { for j in 0..<wo { out[((b0 * cout + o) * ho + i) * wo + j] = Double(b?.scalars[o] ?? 0) } } } }
        for b0 in 0..<n { for ci in 0..<cin { for i in 0..<h { for j in 0..<wd {
            let v = Double(x.scalars[((b0 * cin + ci) * h + i) * wd + j])
            for o in 0..<cout { for a in 0..<kh { for bb in 0..<kw {
                let oh = i * s - p + a, ow = j * s - p + bb
                if oh < 0 || oh >= ho || ow < 0 || ow >= wo { continue }
                out[((b0 * cout + o) * ho + oh) * wo + ow] += v * Double(w.scalars[((ci * cout + o) * kh + a) * kw + bb])
            } } }
        } } } }
        return out.map { Float($0) }
    }

    func testConv2dForwardMatchesDirectLoops() {
        for c in convConfigs {
            let x = randn([c.n, c.cin, c.h, c.w]), w = randn([c.cout, c.cin, c.kh, c.kw]), b = c.bias ? randn([c.cout]) : nil
            let y = Tensor.conv2d(x, weight: w, bias: b, stride: c.s, padding: c.p)
            XCTAssertEqual(y.shape, [c.n, c.cout, (c.h + 2 * c.p - c.kh) / c.s + 1, (c.w + 2 * c.p - c.kw) / c.s + 1])
            assertClose(y.scalars, naiveConv(x, w, b, s: c.s, p: c.p), rtol: 1e-4, atol: 1e-5, "conv2d \(c)")
        }
    }

    func testConvTranspose2dForwardMatchesDirectLoops() {
        for c in convTConfigs {
            let x = randn([c.n, c.cin, c.h, c.w]), w = randn([c.cin, c.cout, c.k, c.k]), b = c.bias ? randn([c.cout]) : nil
            let y = Tensor.convTranspose2d(x, weight: w, bias: b, stride: c.s, padding: c.p, outputPadding: c.op)
            XCTAssertEqual(y.shape, [c.n, c.cout, (c.h - 1) * c.s - 2 * c.p + c.k + c.op, (c.w - 1) * c.s - 2 * c.p + c.k + c.op])
            assertClose(y.scalars, naiveConvTranspose(x, w, b, s: c.s, p: c.p, op: c.op), rtol: 1e-4, atol: 1e-5, "convTranspose2d \(c)")
        }
    }

    /// <conv2d(x, w), g> = <x, convTranspose2d(g, w)>: the two ops are adjoint (output padding
    /// 1 restores the even input extents that stride 2 maps down).
    func testConvTransposeIsTheAdjointOfConv() {
        let x = randn([2, 3, 10, 8]), w = randn([4, 3, 3, 3])
        let y = Tensor.conv2d(x, weight: w, stride: 2, padding: 1)
        XCTAssertEqual(y.shape, [2, 4, 5, 4])
        let g = randn(y.shape)
        let back = Tensor.convTranspose2d(g, weight: w, stride: 2, padding: 1, outputPadding: 1)
        XCTAssertEqual(back.shape, x.shape)
        let lhs = zip(y.scalars, g.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let rhs = zip(x.scalars, back.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        XCTAssertEqual(lhs, rhs, accuracy: 1e-4 * max(1, abs(lhs)))
    }

    func testConv2dGradients() {
        for c in convConfigs {
            var inputs = [randn([c.n, c.cin, c.h, c.w]), randn([c.cout, c.cin, c.kh, c.kw], scale: 0.5)]
            if c.bias { inputs.append(randn([c.cout])) }
            checkGradients(inputs) { t in
                Tensor.conv2d(t[0], weight: t[1], bias: t.count > 2 ? t[2] : nil, stride: c.s, padding: c.p)
            }
        }
    }

    typealias TConfig = (n: Int, cin: Int, h: Int, w: Int, cout: Int, k: Int, s: Int, p: Int, op: Int, bias: Bool)
    let convTConfigs: [TConfig] = [
        (2, 3, 4, 4, 2, 4, 2, 1, 0, true),    // DCGAN-style k4 s2 p1
        (1, 2, 3, 5, 3, 3, 1, 0, 0, true),    // rectangular input
        (2, 2, 3, 3, 2, 3, 2, 1, 1, false),   // output padding, no bias
        (1, 1, 3, 2, 2, 2, 3, 0, 2, true),    // stride 3, output padding 2
        (1, 2, 4, 4, 3, 5, 1, 2, 0, true),
        (1, 2, 3, 14, 2, 4, 2, 1, 0, true),   // 28-wide output rows: two 16-lane registers
        (2, 2, 3, 18, 2, 4, 2, 1, 0, true),   // 36-wide output rows: the table kernels
    ]

    func testConvTranspose2dGradients() {
        for c in convTConfigs {
            var inputs = [randn([c.n, c.cin, c.h, c.w]), randn([c.cin, c.cout, c.k, c.k], scale: 0.5)]
            if c.bias { inputs.append(randn([c.cout])) }
            checkGradients(inputs) { t in
                Tensor.convTranspose2d(t[0], weight: t[1], bias: t.count > 2 ? t[2] : nil, stride: c.s, padding: c.p,
                                       outputPadding: c.op)
            }
        }
    }

    func testChannelHelpers() {
        checkGradients([randn([2, 3, 2, 2])]) { $0[0].channelSums() }
        checkGradients([randn([3])]) { $0[0].broadcastChannels(to: [2, 3, 2, 2]) }
        checkGradients([randn([2, 3, 2, 2]), randn([3]), randn([3])]) { Tensor.channelAffine($0[0], scale: $0[1], shift: $0[2]) }
        checkGradients([randn([2, 3, 4]), randn([3])]) { Tensor.channelAffine($0[0], scale: nil, shift: $0[1]) }
    }

    func testBatchNorm2dTrainingGradientsAndStatistics() {
        let x = randn([3, 2, 3, 4], scale: 2) + 1
        let w = randn([2]), b = randn([2])
        checkGradients([x, w, b]) { Tensor.batchNorm2dTraining($0[0], weight: $0[1], bias: $0[2], eps: 1e-5).y }
        let (y, mean, variance) = Tensor.batchNorm2dTraining(x, weight: .ones([2]), bias: .zeros([2]), eps: 0)
        for c in 0..<2 {
            var xs: [Float] = [], ys: [Float] = []
            for n in 0..<3 { for i in 0..<12 { xs.append(x.scalars[(n * 2 + c) * 12 + i]); ys.append(y.scalars[(n * 2 + c) * 12 + i]) } }
            let m = xs.reduce(0, +) / 36
            XCTAssertEqual(mean[c], m, accuracy: 1e-5)
            XCTAssertEqual(variance[c], xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / 36, accuracy: 1e-4)
            XCTAssertEqual(ys.reduce(0, +) / 36, 0, accuracy: 1e-5)
            XCTAssertEqual(ys.map { $0 * $0 }.reduce(0, +) / 36, 1, accuracy: 1e-4)
        }
        // Second order through the differentiable backward (createGraph).
        checkGradients([w], rtol: 3e-2, atol: 3e-3) { ws in
            let xi = x.requiringGrad()
            let y = Tensor.batchNorm2dTraining(xi, weight: ws[0], bias: b, eps: 1e-5).y
            let gx = Tensor.gradients(of: (y * y * y).sum(), wrt: [xi], createGraph: true)[0]
            return (gx * gx).sum()
        }
    }

    /// The gradient of an input-gradient norm (the WGAN-GP shape) through two convolutions,
    /// differentiated with respect to both weights, against finite differences.
    func testSecondOrderThroughConv2d() {
        let x = randn([2, 2, 6, 6]), w1 = randn([3, 2, 3, 3], scale: 0.4), w2 = randn([1, 3, 4, 4], scale: 0.4)
        checkGradients([w1, w2], rtol: 3e-2, atol: 3e-3) { ws in
            let xi = x.requiringGrad()
            let h = Tensor.conv2d(xi, weight: ws[0], stride: 1, padding: 1).tanh()
            let out = Tensor.conv2d(h, weight: ws[1], stride: 2, padding: 1)
            let gx = Tensor.gradients(of: out.sum(), wrt: [xi], createGraph: true)[0]
            return ((gx * gx).sum() + 1e-12).sqrt()
        }
    }

    /// Second order through a transposed convolution and through the weight-gradient op's
    /// own derivative (gradient of a weight-gradient norm with respect to the input).
    func testSecondOrderThroughConvTransposeAndWeightGradient() {
        let z = randn([2, 3, 3, 3]), w = randn([3, 2, 4, 4], scale: 0.4)
        checkGradients([w], rtol: 3e-2, atol: 3e-3) { ws in
            let zi = z.requiringGrad()
            let y = Tensor.convTranspose2d(zi, weight: ws[0], stride: 2, padding: 1).tanh()
            let gz = Tensor.gradients(of: (y * y).sum(), wrt: [zi], createGraph: true)[0]
            return (gz * gz).sum()
        }
        let wc = randn([2, 2, 3, 3], scale: 0.5)
        checkGradients([randn([1, 2, 5, 5])], rtol: 3e-2, atol: 3e-3) { xs in
            let wi = wc.requiringGrad()
            let y = Tensor.conv2d(xs[0], weight: wi, stride: 2, padding: 1).tanh()
            let gw = Tensor.gradients(of: y.sum(), wrt: [wi], createGraph: true)[0]
            return (gw * gw).sum()
        }
    }

    /// Speed print-out (not an assertion): the DCGAN discriminator's two convolutions on an
    /// MNIST-sized batch, forward + backward to both weights and biases.
    func testDCGANDiscriminatorConvTiming() {
        let x = Tensor.randomUniform([64, 1, 28, 28], low: -1, high: 1, using: &rng)
        let w1 = randn([64, 1, 4, 4], scale: 0.02).requiringGrad(), b1 = Tensor.zeros([64]).requiringGrad()
        let w2 = randn([128, 64, 4, 4], scale: 0.02).requiringGrad(), b2 = Tensor.zeros([128]).requiringGrad()
        func step() -> (Double, Double) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let h = Tensor.conv2d(x, weight: w1, bias: b1, stride: 2, padding: 1).leakyRelu(0.2)
            let y = Tensor.conv2d(h, weight: w2, bias: b2, stride: 2, padding: 1)
            let t1 = DispatchTime.now().uptimeNanoseconds
            let g = Tensor.gradients(of: y.sum(), wrt: [w1, b1, w2, b2])
            let t2 = DispatchTime.now().uptimeNanoseconds
            XCTAssertEqual(g[2].shape, [128, 64, 4, 4])
            return (Double(t1 - t0) / 1e6, Double(t2 - t1) / 1e6)
        }
        _ = step()
        var times: [(Double, Double)] = []
        for _ in 0..<10 { times.append(step()) }
        let fwd = times.map(\.0).sorted(), bwd = times.map(\.1).sorted(), tot = times.map { $0.0 + $0.1 }.sorted()
        print(String(format: "DCGAN D convs (64x1x28x28 -> 64 k4s2p1 -> 128 k4s2p1), BLAS threads %d: forward %.2f ms, backward %.2f ms, total %.2f ms (median of 10; min total %.2f ms)",
                     BLAS.threads, fwd[5], bwd[5], tot[5], tot[0]))
    }
}
