import Foundation
import XCTest
import CConjureKernels
@testable import ConjureTensor

/// Every matrix backend available here computes the products of Conjure's steps within Float32
/// rounding of a Double reference (transposes, alpha/beta, leading dimensions, strided batches),
/// gives the same bits on every run and thread count, and an unknown name is one ConfigError.
final class MatrixBackendTests: XCTestCase {
    override func tearDown() { Parallel.setThreads(1) }

    /// The backends this process can load (openblas and onednn always; scipy-openblas when
    /// CONJURE_SCIPY_OPENBLAS names its library).
    var backends: [MatrixBackend] { MatrixBackend.availableNames.compactMap { MatrixBackend.loaded($0) } }

    /// `C = alpha · op(A) · op(B) + beta · C0` in Double for row-major operands with leading
    /// dimensions `lda, ldb, ldc`; returns the `m x n` result in C's layout.
    func reference(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float, _ a: [Float], _ lda: Int,
                   _ b: [Float], _ ldb: Int, _ beta: Float, _ c0: [Float], _ ldc: Int) -> (value: [Double], scale: [Double]) {
        var out = [Double](repeating: 0, count: m * n), scale = out
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0, t = 0.0
                for p in 0..<k {
                    let x = Double(ta ? a[p * lda + i] : a[i * lda + p]), y = Double(tb ? b[j * ldb + p] : b[p * ldb + j])
                    s += x * y; t += abs(x * y)
                }
                out[i * n + j] = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
                scale[i * n + j] = abs(Double(alpha)) * t + abs(Double(beta) * Double(c0[i * ldc + j]))
            }
        }
        return (out, scale)
    }

    /// The step shapes (gan's 64x1024x784 forward, its backward forms, a char-transformer's
    /// 64x256x... and odd edges) on every backend, on 1 and 2 threads: within 1e-5 of the
    /// Double product relative to Σ|a·b|, and 1 and 2 threads bit-identical.
    func testStepShapesMatchADoubleReferenceOnEveryBackend() {
        XCTAssert(backends.map(\.name).contains("openblas") && backends.map(\.name).contains("onednn"), "\(MatrixBackend.availableNames)")
        var rng = RandomGenerator(seed: 11)
        let shapes: [(Bool, Bool, Int, Int, Int)] = [
            (false, true, 64, 1024, 784), (false, false, 64, 784, 1024), (true, false, 784, 1024, 64),
            (false, true, 64, 256, 512), (false, false, 64, 65, 256), (true, true, 37, 100, 53),
        ]
        for (ta, tb, m, n, k) in shapes {
            let a = Tensor.randomUniform([m * k], low: -1, high: 1, using: &rng).scalars
            let b = Tensor.randomUniform([k * n], low: -1, high: 1, using: &rng).scalars
            let ref = reference(ta, tb, m, n, k, 1, a, ta ? m : k, b, tb ? k : n, 0, [Float](repeating: 0, count: m * n), n)
            for backend in backends {
                var results: [[Float]] = []
                for threads in [1, 2] {
                    Parallel.setThreads(threads)
                    var c = [Float](repeating: .nan, count: m * n)
                    MatrixBackend.with(backend) {
                        sgemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, a: a, b: b, c: &c)
                    }
                    results.append(c)
                }
                let label = "\(backend.name) \(m)x\(n)x\(k) \(ta ? "T" : "N")\(tb ? "T" : "N")"
                XCTAssertEqual(results[0], results[1], "\(label): 1 vs 2 threads")
                var worst = 0.0
                for i in 0..<(m * n) { worst = max(worst, abs(Double(results[0][i]) - ref.value[i]) / max(ref.scale[i], 1e-30)) }
                XCTAssertLessThan(worst, 1e-5, label)
                XCTAssertGreaterThan(ref.scale.reduce(0, +), 0, label)
            }
        }
    }

    /// Sub-matrices with alpha, beta and leading dimensions larger than the rows: only the
    /// `m x n` window of C changes, to `alpha · op(A) · op(B) + beta · C`, on every backend.
    func testAlphaBetaAndLeadingDimensionsOnEveryBackend() {
        var rng = RandomGenerator(seed: 12)
        let (m, n, k, lda, ldb, ldc) = (70, 90, 130, 150, 140, 97)
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
            let a = Tensor.randomUniform([(ta ? k : m) * lda], low: -1, high: 1, using: &rng).scalars
            let b = Tensor.randomUniform([(tb ? n : k) * ldb], low: -1, high: 1, using: &rng).scalars
            let c0 = Tensor.randomUniform([m * ldc], low: -1, high: 1, using: &rng).scalars
            let ref = reference(ta, tb, m, n, k, 0.5, a, lda, b, ldb, -2, c0, ldc)
            for backend in backends {
                var c = c0
                backend.sgemm(transposeA: ta, transposeB: tb, m: m, n: n, k: k, alpha: 0.5, a: a, lda: lda, b: b, ldb: ldb,
                              beta: -2, c: &c, ldc: ldc)
                for i in 0..<m {
                    for j in 0..<ldc {
                        if j < n {
                            let e = abs(Double(c[i * ldc + j]) - ref.value[i * n + j]) / ref.scale[i * n + j]
                            XCTAssertLessThan(e, 1e-5, "\(backend.name) ta \(ta) tb \(tb) at \(i),\(j)")
                        } else {
                            XCTAssertEqual(c[i * ldc + j], c0[i * ldc + j], "\(backend.name): padding column \(j) of row \(i) changed")
                        }
                    }
                }
            }
        }
    }

    /// Attention's strided batch (8 heads of 64x64x16, scores and values) on every backend:
    /// each slice equals the single product of that slice bit for bit, and the whole batch is
    /// the same on 1 and 2 threads; the recorder counts one product per slice.
    func testStridedBatchEqualsItsSlicesOnEveryBackend() {
        var rng = RandomGenerator(seed: 13)
        let (batch, m, n, k) = (8, 64, 64, 16)
        let a = Tensor.randomUniform([batch * m * k], low: -1, high: 1, using: &rng).scalars
        let b = Tensor.randomUniform([batch * n * k], low: -1, high: 1, using: &rng).scalars
        for backend in backends {
            MatrixBackend.with(backend) {
                var outs: [[Float]] = []
                for threads in [1, 2] {
                    Parallel.setThreads(threads)
                    var c = [Float](repeating: 0, count: batch * m * n)
                    let recorded = ProductRecorder.record {
                        sgemmStridedBatched(transposeA: false, transposeB: true, m: m, n: n, k: k, a: a, lda: k, strideA: m * k,
                                            b: b, ldb: k, strideB: n * k, c: &c, ldc: n, strideC: m * n, batch: batch)
                    }
                    XCTAssertEqual(recorded, [ProductShape](repeating: ProductShape(transposeA: false, transposeB: true, m: m, n: n, k: k), count: batch))
                    outs.append(c)
                }
                XCTAssertEqual(outs[0], outs[1], "\(backend.name): 1 vs 2 threads")
                for i in [0, 5] {
                    var one = [Float](repeating: 0, count: m * n)
                    Array(a[(i * m * k)...]).withUnsafeBufferPointer { pa in
                        Array(b[(i * n * k)...]).withUnsafeBufferPointer { pb in
                            sgemm(transposeA: false, transposeB: true, m: m, n: n, k: k, a: pa.baseAddress!, b: pb.baseAddress!, c: &one)
                        }
                    }
                    XCTAssertEqual(Array(outs[0][(i * m * n)..<((i + 1) * m * n)]), one, "\(backend.name) slice \(i)")
                }
            }
        }
    }

    /// The same product on the same backend twice gives the same bits (fresh buffers, so other
    /// addresses); a training-sized linear layer's forward records one NT product.
    func testSameBackendSameBitsAndTheRecorderSeesLinearLayers() {
        var rng = RandomGenerator(seed: 14)
        let x = Tensor.randomUniform([64, 784], low: -1, high: 1, using: &rng)
        let w = Tensor.randomUniform([1024, 784], low: -1, high: 1, using: &rng)
        let bias = Tensor.randomUniform([1024], low: -1, high: 1, using: &rng)
        for backend in backends {
            MatrixBackend.with(backend) {
                var first: Tensor?
                let shapes = ProductRecorder.record { first = Tensor.linear(x, weight: w, bias: bias) }
                XCTAssertEqual(shapes, [ProductShape(transposeA: false, transposeB: true, m: 64, n: 1024, k: 784)])
                let again = Tensor.linear(Tensor(shape: x.shape, scalars: x.scalars), weight: Tensor(shape: w.shape, scalars: w.scalars), bias: bias)
                XCTAssertEqual(first!.scalars, again.scalars, backend.name)
            }
        }
        XCTAssertEqual(ProductShape(transposeA: true, transposeB: false, m: 2, n: 3, k: 4).description, "2x3x4 TN")
        XCTAssertEqual(ProductShape(transposeA: true, transposeB: false, m: 2, n: 3, k: 4).flops, 48)
    }

    /// `StepTimer` counts the wall time during which a product ran: nothing for a body
    /// without products, a product's time but not the sleep after it, and products running on
    /// two threads at once once (their union, never more than the wall time).
    func testTimeProductsCountsTheWallTimeOfProductsOnly() {
        var rng = RandomGenerator(seed: 15)
        let x = Tensor.randomUniform([256, 784], low: -1, high: 1, using: &rng)
        let w = Tensor.randomUniform([1024, 784], low: -1, high: 1, using: &rng)
        let sleep: UInt32 = 30_000  // microseconds
        let idle = StepTimer.measure { usleep(sleep) }
        XCTAssertEqual(idle.phases[.products], 0)
        XCTAssertGreaterThanOrEqual(idle.wall, UInt64(sleep) * 1000)
        for backend in backends {
            MatrixBackend.with(backend) {
                let t = StepTimer.measure {
                    for _ in 0..<3 { _ = Tensor.matmul(x, w, transposeB: true) }
                    usleep(sleep)
                }
                let products = t.phases[.products] ?? 0
                XCTAssertGreaterThan(products, 0, backend.name)
                XCTAssertLessThanOrEqual(products + UInt64(sleep) * 1000, t.wall, backend.name)
                XCTAssertEqual(t.phases[.parameterUpdate], 0, backend.name)
                // Two threads' products overlap: the union stays within the wall time, where the
                // sum of both threads' product times would not.
                let both = StepTimer.measure {
                    DispatchQueue.concurrentPerform(iterations: 2) { _ in
                        for _ in 0..<4 { _ = Tensor.matmul(x, w, transposeB: true) }
                    }
                }
                XCTAssertGreaterThan(both.phases[.products] ?? 0, 0, backend.name)
                XCTAssertLessThanOrEqual(both.phases[.products] ?? .max, both.wall, backend.name)
            }
        }
        XCTAssertFalse(StepTimer.measuring, "measuring ends with the body")
    }

    /// The FMA probe computes what it claims (every chain's value, summed in order), and the
    /// peak it gives is a ceiling: a large product on each backend stays below it (with room
    /// for timing noise; a probe on narrower vectors than the CPU's, or one optimised away,
    /// would be 4-16x off).
    func testFMAPeakProbeComputesItsChainsAndBoundsTheProducts() {
        let rounds = 20_000
        func chains(fused: Bool) -> Float {
            var s: Float = 0
            for i in 0..<12 {
                for j in 0..<16 {
                    var a = Float(i + j)
                    for _ in 0..<rounds { a = fused ? Float(1).addingProduct(a, 0.999) : a * 0.999 + 1 }
                    s += a
                }
            }
            return s
        }
        let probed = conjure_fma_probe(rounds)
        XCTAssert(probed == chains(fused: true) || probed == chains(fused: false), "\(probed) vs \(chains(fused: true))")
        // Each chain near c / (1 - b) = 1000: within 0.1 (its rounding stalls it up to ulp / (1 - b) away).
        XCTAssertEqual(probed, 12 * 16 * 1000, accuracy: 12 * 16 * 0.1)
        var rng = RandomGenerator(seed: 16)
        let a = Tensor.randomUniform([512, 512], low: -1, high: 1, using: &rng)
        func rate() -> Double {  // GFLOP/s of 512x512x512 products, the best of 3 timings of 4
            _ = Tensor.matmul(a, a)
            return (0..<3).map { _ in
                let t0 = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<4 { _ = Tensor.matmul(a, a) }
                return 4 * 2 * 512 * 512 * 512 / Double(DispatchTime.now().uptimeNanoseconds - t0)
            }.max()!
        }
        // One thread, the peak probed before and after the products (other processes may take
        // the core for part of a run; the larger probe is the quieter one).
        Parallel.setThreads(1)
        for backend in backends {
            MatrixBackend.with(backend) {
                let before = Parallel.fmaPeak()
                let r = rate()
                let peak = max(before, Parallel.fmaPeak())
                XCTAssert(peak.isFinite && peak > 0, "\(peak)")
                XCTAssertLessThan(r, 1.5 * peak, "\(backend.name): \(r) GFLOP/s against a peak of \(peak)")
            }
        }
    }

    /// An unknown backend is one ConfigError naming the option and the available backends; a
    /// known one whose library is absent says why.
    func testUnknownOrUnavailableBackendIsOneConfigError() {
        XCTAssertThrowsError(try MatrixBackend.named("mkl", option: "--backend")) { error in
            let e = error as? ConfigError
            XCTAssertEqual(e?.option, "--backend")
            XCTAssertEqual(e?.problem, "unknown backend 'mkl'")
            XCTAssertEqual(e?.hint, "available: " + MatrixBackend.availableNames.joined(separator: ", "))
            XCTAssert(e?.hint?.contains("openblas, onednn") == true, "\(String(describing: e))")
        }
        XCTAssertEqual(try MatrixBackend.named("OneDNN", option: "--backend").name, "onednn")
        if ProcessInfo.processInfo.environment["CONJURE_SCIPY_OPENBLAS"] == nil {
            XCTAssertThrowsError(try MatrixBackend.named("scipy-openblas", option: "--backend")) { error in
                XCTAssert((error as? ConfigError)?.problem.contains("CONJURE_SCIPY_OPENBLAS") == true, "\(error)")
            }
        }
    }
}
