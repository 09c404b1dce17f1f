import Foundation
import XCTest
@testable import ConjureTensor

/// oneDNN's convolution primitives and Conjure's im2col + GEMM compute the same six products
/// (forward with bias, transposed forward, and both gradients of each) within Float32 rounding
/// of a Double reference, on the shapes Conjure's presets use and on awkward ones (a batch that
/// leaves a short last chunk, one input channel, odd channel counts, WaveGAN's 1-D k25 s4),
/// and oneDNN gives the same bits on 1, 2 and 3 threads.
final class ConvolutionLibraryTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    /// `(n, c, h, w, f, kh, kw, stride, padding)`; 1-D geometries have `h = kh = 1`, no
    /// padding along h.
    let shapes: [(Int, Int, Int, Int, Int, Int, Int, Int, Int)] = [
        (13, 3, 9, 9, 20, 3, 3, 1, 1),      // ddpm-style 3x3, 7 chunks of 2 and a last of 1
        (5, 16, 8, 8, 32, 4, 4, 2, 1),      // dcgan's k4 s2
        (3, 1, 28, 28, 8, 3, 3, 1, 1),      // one input channel (a first layer)
        (2, 17, 6, 7, 5, 1, 1, 1, 0),       // 1x1, odd channel counts
        (9, 8, 1, 64, 16, 1, 25, 4, 11),    // WaveGAN's 1-D kernel 25, stride 4, padding 11
        (16, 32, 7, 7, 64, 3, 3, 2, 1),     // strided 3x3 down-sampling
    ]

    func geometry(_ s: (Int, Int, Int, Int, Int, Int, Int, Int, Int)) -> ConvGeometry {
        let (n, c, h, w, f, kh, kw, st, p) = s
        let oneD = h == 1 && kh == 1
        let sh = oneD ? 1 : st, ph = oneD ? 0 : p
        return ConvGeometry(n: n, c: c, h: h, w: w, f: f, ho: (h + 2 * ph - kh) / sh + 1, wo: (w + 2 * p - kw) / st + 1,
                            kh: kh, kw: kw, sh: sh, sw: st, ph: ph, pw: p)
    }

    /// The three products in Double from the definition (one loop over every tap), with the
    /// sums of |terms| as the rounding scale of each output element.
    func reference(_ g: ConvGeometry, image x: [Float], weight wt: [Float], columns y: [Float])
        -> (forward: [Double], data: [Double], weight: [Double], fs: [Double], ds: [Double], ws: [Double]) {
        var fwd = [Double](repeating: 0, count: g.n * g.f * g.l), fs = fwd
        var dat = [Double](repeating: 0, count: g.n * g.c * g.h * g.w), ds = dat
        var wgt = [Double](repeating: 0, count: g.f * g.k), ws = wgt
        for b in 0..<g.n { for f in 0..<g.f { for oh in 0..<g.ho { for ow in 0..<g.wo {
            let yi = ((b * g.f + f) * g.ho + oh) * g.wo + ow
            for c in 0..<g.c { for i in 0..<g.kh { for j in 0..<g.kw {
                let ih = oh * g.sh - g.ph + i, iw = ow * g.sw - g.pw + j
                guard ih >= 0, ih < g.h, iw >= 0, iw < g.w else { continue }
                let xi = ((b * g.c + c) * g.h + ih) * g.w + iw, wi = ((f * g.c + c) * g.kh + i) * g.kw + j
                let xv = Double(x[xi]), wv = Double(wt[wi]), yv = Double(y[yi])
                fwd[yi] += xv * wv; fs[yi] += abs(xv * wv)
                dat[xi] += yv * wv; ds[xi] += abs(yv * wv)
                wgt[wi] += xv * yv; ws[wi] += abs(xv * yv)
            } } }
        } } } }
        return (fwd, dat, wgt, fs, ds, ws)
    }

    func assertClose(_ got: [Float]?, _ want: [Double], _ scale: [Double], _ label: String,
                     plus add: (Int) -> Double = { _ in 0 }, file: StaticString = #filePath, line: UInt = #line) {
        guard let got else { return XCTFail("\(label): no result", file: file, line: line) }
        XCTAssertEqual(got.count, want.count, label, file: file, line: line)
        var worst = 0.0
        for i in 0..<min(got.count, want.count) {
            let a = add(i)
            worst = max(worst, abs(Double(got[i]) - want[i] - a) / max(scale[i] + abs(a), 1e-20))
        }
        XCTAssertLessThan(worst, 1e-5, label, file: file, line: line)
    }

    func testBothLibrariesMatchADoubleReferenceOnEveryProduct() {
        var rng = RandomGenerator(seed: 21)
        var directShapes = 0
        for s in shapes {
            let g = geometry(s)
            let x = Tensor.randomUniform(g.imageShape, low: -1, high: 1, using: &rng)
            let w = Tensor.randomUniform(g.weightShape, low: -1, high: 1, using: &rng)
            let y = Tensor.randomUniform(g.columnShape, low: -1, high: 1, using: &rng)
            let bias = Tensor.randomUniform([g.f], low: -1, high: 1, using: &rng).scalars
            let imageBias = Tensor.randomUniform([g.c], low: -1, high: 1, using: &rng).scalars
            let ref = reference(g, image: x.scalars, weight: w.scalars, columns: y.scalars)
            if ConvolutionLibrary.with(.onednn, { ConvKernels.oneDNNImplementation(.forward, g) }) != nil {
                directShapes += 1
            }
            for library in ConvolutionLibrary.allCases {
                ConvolutionLibrary.with(library) {
                    let label = "\(library) \(s)"
                    let l = g.l, hw = g.h * g.w
                    assertClose(ConvKernels.forward(image: x, weight: w, bias: bias, g), ref.forward, ref.fs,
                                "\(label) forward", plus: { Double(bias[($0 / l) % g.f]) })
                    assertClose(ConvKernels.adjoint(columns: y, weight: w, bias: imageBias, g), ref.data, ref.ds,
                                "\(label) transposed forward", plus: { Double(imageBias[($0 / hw) % g.c]) })
                    let (dx, dw) = ConvKernels.backward(image: x, weight: w, grad: y, g)
                    assertClose(dx, ref.data, ref.ds, "\(label) backward data")
                    assertClose(dw, ref.weight, ref.ws, "\(label) backward weights")
                    let (dc, dw2) = ConvKernels.adjointBackward(columns: y, weight: w, grad: x, g)
                    assertClose(dc, ref.forward, ref.fs, "\(label) transposed backward data")
                    assertClose(dw2, ref.weight, ref.ws, "\(label) transposed backward weights")
                    let (onlyX, noW) = ConvKernels.backward(image: nil, weight: w, grad: y, g)
                    XCTAssertNil(noW, label)
                    assertClose(onlyX, ref.data, ref.ds, "\(label) backward data alone")
                }
            }
        }
        // The shapes above that oneDNN runs as direct convolutions: every 2-D one here (the 1-D
        // k25 s4 forward may fall back to im2col where oneDNN offers only its gemm-based kind).
        XCTAssertGreaterThanOrEqual(directShapes, 5, "oneDNN ran too few of the shapes itself; the test compared im2col with itself")
    }

    /// The oneDNN products' bits do not depend on the thread count: chunks are fixed by the
    /// shape and the weight gradients summed in chunk order.
    func testOneDNNSameBitsOnOneTwoAndThreeThreads() {
        var rng = RandomGenerator(seed: 22)
        for s in [shapes[0], shapes[1], shapes[5]] {
            let g = geometry(s)
            XCTAssertNotNil(ConvolutionLibrary.with(.onednn) { ConvKernels.oneDNNImplementation(.backwardWeights, g) }, "\(s)")
            let x = Tensor.randomUniform(g.imageShape, low: -1, high: 1, using: &rng)
            let w = Tensor.randomUniform(g.weightShape, low: -1, high: 1, using: &rng)
            let y = Tensor.randomUniform(g.columnShape, low: -1, high: 1, using: &rng)
            var runs: [[[Float]]] = []
            for threads in [1, 2, 3] {
                Parallel.setThreads(threads)
                runs.append(ConvolutionLibrary.with(.onednn) {
                    let (dx, dw) = ConvKernels.backward(image: x, weight: w, grad: y, g)
                    return [ConvKernels.forward(image: x, weight: w, bias: nil, g), dx ?? [], dw ?? []]
                })
            }
            XCTAssertEqual(runs[0], runs[1], "\(s): 1 vs 2 threads")
            XCTAssertEqual(runs[0], runs[2], "\(s): 1 vs 3 threads")
        }
    }

    /// `CONJURE_CONVOLUTION` picks the library, and a backend other than oneDNN keeps every
    /// convolution on im2col + its own GEMM.
    func testLibraryFollowsTheBackend() {
        ConvolutionLibrary.with(.onednn) {
            MatrixBackend.with(.openBLAS) { XCTAssertFalse(ConvolutionLibrary.usesOneDNN) }
            MatrixBackend.with(.oneDNN) { XCTAssertTrue(ConvolutionLibrary.usesOneDNN) }
        }
        ConvolutionLibrary.with(.im2col) { MatrixBackend.with(.oneDNN) { XCTAssertFalse(ConvolutionLibrary.usesOneDNN) } }
    }

    /// A conv2d's forward and backward on oneDNN are recorded as three convolution products
    /// (forward, backward data, backward weights) with the im2col GEMM's FLOPs, and each can be
    /// timed alone; on im2col the same step records matrix products and no convolutions.
    func testRecorderSeesTheThreeProductsOfAConvolution() {
        var rng = RandomGenerator(seed: 23)
        let x = Tensor.randomUniform([8, 16, 10, 10], low: -1, high: 1, using: &rng).requiringGrad()
        let w = Tensor.randomUniform([32, 16, 3, 3], low: -1, high: 1, using: &rng).requiringGrad()
        func step() { _ = Tensor.gradients(of: Tensor.conv2d(x, weight: w, padding: 1).sum(), wrt: [x, w]) }
        let onednn = ConvolutionLibrary.with(.onednn) { MatrixBackend.with(.oneDNN) { ProductRecorder.recordWork(step) } }
        XCTAssertEqual(onednn.convolutions.map(\.kind).sorted(), ["backward-data", "backward-weights", "forward"])
        XCTAssertTrue(onednn.products.isEmpty, "\(onednn.products)")
        for c in onednn.convolutions {
            XCTAssertEqual(c.flops, 2 * 8 * 32 * 10 * 10 * 16 * 9, c.description)
            let rate = MatrixBackend.with(.oneDNN) { c.rate(seconds: 0.01, samples: 1) }
            XCTAssertGreaterThan(rate ?? 0, 0.1, c.description)
        }
        let im2col = ConvolutionLibrary.with(.im2col) { ProductRecorder.recordWork(step) }
        XCTAssertTrue(im2col.convolutions.isEmpty)
        XCTAssertEqual(im2col.products.reduce(0) { $0 + $1.flops }, 3 * 2 * 8 * 32 * 10 * 10 * 16 * 9)
    }
}
