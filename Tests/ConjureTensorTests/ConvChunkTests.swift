import XCTest
@testable import ConjureTensor
import ConjureTestSupport

/// Convolutions run over chunks of images (``ConvKernels/imagesPerChunk(_:)``). The default chunk
/// holds a whole test batch, so these tests lower the chunk size to put boundaries inside the
/// batch (chunks of 1, 2 and 3 images over 7), and check values, gradients and thread counts.
final class ConvChunkTests: XCTestCase {
    var rng = RandomGenerator(seed: 29)
    func randn(_ shape: [Int], scale: Float = 1) -> Tensor { Tensor.randomNormal(shape, std: scale, using: &rng) }

    /// Runs `body` with chunks of `images` images for a layer whose image unfolds to `perImage`
    /// elements (`k * l`).
    func withChunks<R>(images: Int, perImage: Int, _ body: () -> R) -> R {
        let saved = ConvKernels.chunkElements
        defer { ConvKernels.chunkElements = saved }
        ConvKernels.chunkElements = images * perImage
        return body()
    }

    /// conv2d k4 s2 p1 (3→5 channels, 9x8 → 4x4) and convTranspose2d k4 s2 p1 (3→2 channels,
    /// 4x3 → 8x6) on a batch of 7, forward and gradients of input, weight and bias.
    func convOutputs() -> [[Float]] {
        var rng = RandomGenerator(seed: 5)
        let x = Tensor.randomNormal([7, 3, 9, 8], using: &rng).requiringGrad()
        let w = Tensor.randomNormal([5, 3, 4, 4], std: 0.5, using: &rng).requiringGrad()
        let b = Tensor.randomNormal([5], using: &rng).requiringGrad()
        let y = Tensor.conv2d(x, weight: w, bias: b, stride: 2, padding: 1)
        let gy = Tensor.randomNormal(y.shape, using: &rng)
        let g = Tensor.gradients(of: y, seed: gy, wrt: [x, w, b])
        let u = Tensor.randomNormal([7, 3, 4, 3], using: &rng).requiringGrad()
        let v = Tensor.randomNormal([3, 2, 4, 4], std: 0.5, using: &rng).requiringGrad()
        let c = Tensor.randomNormal([2], using: &rng).requiringGrad()
        let z = Tensor.convTranspose2d(u, weight: v, bias: c, stride: 2, padding: 1)
        let gz = Tensor.randomNormal(z.shape, using: &rng)
        let h = Tensor.gradients(of: z, seed: gz, wrt: [u, v, c])
        return [y.scalars] + g.map(\.scalars) + [z.scalars] + h.map(\.scalars)
    }

    func testChunkSizeFollowsTheGeometryOnly() {
        let g = ConvGeometry(n: 64, c: 64, h: 14, w: 14, f: 128, ho: 7, wo: 7, kh: 4, kw: 4, sh: 2, sw: 2, ph: 1, pw: 1)
        XCTAssertEqual(ConvKernels.imagesPerChunk(g), 10)   // 2^19 / (1024 * 49)
        var one = g
        one.n = 3
        XCTAssertEqual(ConvKernels.imagesPerChunk(one), 3)
        var huge = g
        huge.c = 4096   // one image's columns exceed the target: one image per chunk
        XCTAssertEqual(ConvKernels.imagesPerChunk(huge), 1)
        var covered: [Int] = []
        withChunks(images: 3, perImage: g.k * g.l) {
            var seven = g
            seven.n = 7
            ConvKernels.forEachChunk(seven) { b0, gc in covered.append(contentsOf: b0..<(b0 + gc.n)) }
        }
        XCTAssertEqual(covered, Array(0..<7))
    }

    /// Values and gradients agree with one whole-batch chunk to rounding (each chunk is its own
    /// GEMM, and OpenBLAS's small-matrix kernels may sum in another order for another width;
    /// weight gradients add the chunks' products in order).
    func testChunkedConvolutionsMatchOneChunk() {
        let whole = convOutputs()
        let names = ["conv y", "conv dx", "conv dw", "conv db", "convT z", "convT du", "convT dv", "convT dc"]
        // The conv layer unfolds 48 * 16 elements per image, the transposed one 32 * 12.
        for images in [1, 2, 3] {
            let a = withChunks(images: images, perImage: 48 * 16) { convOutputs() }
            let b = withChunks(images: images, perImage: 32 * 12) { convOutputs() }
            for (i, name) in names.enumerated() {
                assertClose(a[i], whole[i], rtol: 1e-5, atol: 1e-5, "\(name), \(images) images per conv chunk")
                assertClose(b[i], whole[i], rtol: 1e-5, atol: 1e-5, "\(name), \(images) images per convT chunk")
            }
        }
    }

    /// Finite differences through chunk boundaries, first and second order (WGAN-GP's path).
    func testGradientsAcrossChunkBoundaries() {
        withChunks(images: 2, perImage: 2 * 16 * 9) {
            let inputs = [randn([5, 2, 6, 6]), randn([3, 2, 4, 4], scale: 0.5), randn([3])]
            checkGradients(inputs) { t in Tensor.conv2d(t[0], weight: t[1], bias: t[2], stride: 2, padding: 1) }
            checkGradients([randn([5, 3, 3, 3]), randn([3, 2, 4, 4], scale: 0.5)]) { t in
                Tensor.convTranspose2d(t[0], weight: t[1], stride: 2, padding: 1)
            }
            // d/dw of |d tanh(conv(x, w))^2 / dx|^2 through the graph-building backward.
            let x = randn([5, 2, 6, 6])
            checkGradients([randn([3, 2, 4, 4], scale: 0.5)], rtol: 3e-2, atol: 3e-3) { ws in
                let xi = x.requiringGrad()
                let y = Tensor.conv2d(xi, weight: ws[0], stride: 2, padding: 1).tanh()
                let gx = Tensor.gradients(of: (y * y).sum(), wrt: [xi], createGraph: true)[0]
                return (gx * gx).sum()
            }
        }
    }

    /// Chunked convolutions give the same bits on 1 and 2 threads, with every im2col/col2im
    /// pass split (products this small stay whole; ParallelTests covers split products).
    func testChunkedConvolutionsAreTheSameOnTwoThreads() {
        let saved = (Parallel.gemmSplitFLOPs, Parallel.elementwiseSplitCount)
        defer { (Parallel.gemmSplitFLOPs, Parallel.elementwiseSplitCount) = saved; Parallel.setThreads(1) }
        Parallel.gemmSplitFLOPs = 1
        Parallel.elementwiseSplitCount = 16
        let one = withChunks(images: 3, perImage: 48 * 16) { convOutputs() }
        Parallel.setThreads(2)
        let two = withChunks(images: 3, perImage: 48 * 16) { convOutputs() }
        XCTAssertEqual(one, two)
    }

    /// 200 random geometries, half at the 32-lane limit of the AVX-512 row kernels (widths 1-40,
    /// kernels 1-5, strides 1-3, paddings 0-2), in small chunks: forward, input gradient and
    /// weight gradient of conv2d, and convTranspose2d's forward, against direct loops in Double.
    func testRandomGeometriesMatchDirectLoops() {
        var r = RandomGenerator(seed: 2026)
        func pick(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(r.next() % UInt64(range.count)) }
        var checked = 0
        while checked < 200 {
            let (n, c, f) = (pick(1...4), pick(1...3), pick(1...3))
            let (k, s, p) = (pick(1...5), pick(1...3), pick(0...2))
            // Half the widths at the 32-lane edge (padded rows of 30 to 36 lanes).
            let w = checked % 2 == 0 ? pick(1...40) : pick(28...34)
            let h = checked % 4 == 1 ? w : pick(1...9)   // square: convTranspose2d maps back
            let ho = (h + 2 * p - k) / s + 1, wo = (w + 2 * p - k) / s + 1
            guard h + 2 * p >= k, w + 2 * p >= k, ho >= 1, wo >= 1 else { continue }
            checked += 1
            let x = Tensor.randomNormal([n, c, h, w], using: &r), wt = Tensor.randomNormal([f, c, k, k], using: &r)
            let gy = Tensor.randomNormal([n, f, ho, wo], using: &r)
            // Direct loops: y = conv(x, w); dx = convᵀ(gy, w); dw = corr(x, gy).
            var y = [Double](repeating: 0, count: n * f * ho * wo)
            var dx = [Double](repeating: 0, count: x.count), dw = [Double](repeating: 0, count: wt.count)
            for b in 0..<n { for o in 0..<f { for i in 0..<ho { for j in 0..<wo {
                let yi = ((b * f + o) * ho + i) * wo + j
                for ci in 0..<c { for a in 0..<k { for bb in 0..<k {
                    let ih = i * s - p + a, iw = j * s - p + bb
                    if ih < 0 || ih >= h || iw < 0 || iw >= w { continue }
                    let xi = ((b * c + ci) * h + ih) * w + iw, wi = ((o * c + ci) * k + a) * k + bb
                    y[yi] += Double(x.scalars[xi]) * Double(wt.scalars[wi])
                    dx[xi] += Double(gy.scalars[yi]) * Double(wt.scalars[wi])
                    dw[wi] += Double(gy.scalars[yi]) * Double(x.scalars[xi])
                } } }
            } } } }
            let label = "n \(n) c \(c) f \(f) \(h)x\(w) k \(k) s \(s) p \(p)"
            withChunks(images: pick(1...3), perImage: c * k * k * ho * wo) {
                let xl = x.requiringGrad(), wl = wt.requiringGrad()
                let out = Tensor.conv2d(xl, weight: wl, stride: s, padding: p)
                let g = Tensor.gradients(of: out, seed: gy, wrt: [xl, wl])
                assertClose(out.scalars, y.map { Float($0) }, rtol: 1e-4, atol: 1e-4, "conv2d \(label)")
                assertClose(g[0].scalars, dx.map { Float($0) }, rtol: 1e-4, atol: 1e-4, "conv2d dx \(label)")
                assertClose(g[1].scalars, dw.map { Float($0) }, rtol: 1e-4, atol: 1e-4, "conv2d dw \(label)")
                // convTranspose2d(gy, w) is dx whenever the geometry maps back onto x exactly.
                let op = h - ((ho - 1) * s - 2 * p + k)
                if op >= 0 && op < s && (w - ((wo - 1) * s - 2 * p + k)) == op {
                    let t = Tensor.convTranspose2d(gy, weight: wt, stride: s, padding: p, outputPadding: op)
                    assertClose(t.scalars, dx.map { Float($0) }, rtol: 1e-4, atol: 1e-4, "convTranspose2d \(label)")
                }
            }
        }
    }

    /// Kernels taller than 32 rows go to the table kernels (the row kernels keep at most 32
    /// (kernel row, output row) pairs per source row), and the result is right.
    func testTallKernelsLeaveTheRowKernels() {
        func geometry(kh: Int) -> ConvGeometry {
            ConvGeometry(n: 1, c: 1, h: 40, w: 5, f: 1, ho: 40 - kh + 1, wo: 3, kh: kh, kw: 3, sh: 1, sw: 1, ph: 0, pw: 0)
        }
        XCTAssertFalse(ConvKernels.rowKernelsApply(geometry(kh: 34)))
        XCTAssertFalse(ConvKernels.rowKernelsApply(geometry(kh: 40)))
        var r = RandomGenerator(seed: 40)
        let x = Tensor.randomNormal([1, 1, 40, 5], using: &r), w = Tensor.randomNormal([1, 1, 34, 3], using: &r)
        let y = Tensor.conv2d(x, weight: w)
        XCTAssertEqual(y.shape, [1, 1, 7, 3])
        for i in 0..<7 { for j in 0..<3 {
            var acc = 0.0
            for a in 0..<34 { for b in 0..<3 { acc += Double(x.scalars[(i + a) * 5 + j + b]) * Double(w.scalars[a * 3 + b]) } }
            XCTAssertEqual(Double(y.scalars[i * 3 + j]), acc, accuracy: 1e-4 * max(1, abs(acc)))
        } }
    }
}
