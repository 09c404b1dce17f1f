import Foundation
import CConjureKernels

// MARK: - oneDNN's convolution primitives behind the convolution seam

/// How Conjure computes its convolutions (conv1d/conv2d and their transposes, forward and both
/// backward products).
public enum ConvolutionLibrary: String, CaseIterable, Sendable {
    /// oneDNN's convolution primitives (forward, backward data, backward weights), in the blocked
    /// layouts oneDNN picks for the CPU, with reorders from and to NCHW around each product.
    case onednn
    /// Conjure's im2col/col2im and one matrix product per chunk of images, on the current
    /// ``MatrixBackend``.
    case im2col

    /// The process-wide choice. Default: ``onednn`` when the matrix backend is oneDNN (measured
    /// faster on the ddpm, dcgan and wavegan steps; docs/backends.md), else ``im2col``;
    /// `CONJURE_CONVOLUTION=im2col|onednn` overrides it. Set it between steps, not while
    /// another thread computes.
    nonisolated(unsafe) public static var current: ConvolutionLibrary = fromEnvironment() ?? .automatic

    /// The library used when `CONJURE_CONVOLUTION` is unset: follows the matrix backend.
    static var automatic: ConvolutionLibrary { .onednn }

    /// `CONJURE_CONVOLUTION`'s choice, if set to a known name.
    static func fromEnvironment() -> ConvolutionLibrary? {
        guard let v = ProcessInfo.processInfo.environment["CONJURE_CONVOLUTION"], !v.isEmpty else { return nil }
        return ConvolutionLibrary(rawValue: v.lowercased())
    }

    /// Whether convolutions go to oneDNN's primitives now: ``current`` is ``onednn`` and the
    /// matrix backend is oneDNN too (with another backend, convolutions use that backend's GEMM,
    /// so `--backend openblas` keeps every product on OpenBLAS).
    static var usesOneDNN: Bool { current == .onednn && MatrixBackend.current.name == "onednn" }

    /// Runs `body` with ``current`` set to `library`, then restores it (tests, benchmarks).
    public static func with<R>(_ library: ConvolutionLibrary, _ body: () throws -> R) rethrows -> R {
        let saved = current
        current = library
        defer { current = saved }
        return try body()
    }

    /// In words, for `conjure bench` and run records: `onednn (oneDNN 2.6.3 primitives)` or
    /// `im2col + <backend> GEMM`.
    public static var summary: String {
        usesOneDNN ? "onednn primitives (blocked layouts, reorders around each product)"
                   : "im2col + \(MatrixBackend.current.name) GEMM"
    }
}

/// The three products of a convolution (`conjure_onednn_conv`'s kinds).
enum ConvProduct: Int32 {
    /// Image, weight (+ bias) → columns.
    case forward = 0
    /// Columns, weight → image (the transposed convolution).
    case backwardData = 1
    /// Image, columns → weight.
    case backwardWeights = 2
}

extension ConvKernels {
    /// Images per chunk of a oneDNN convolution: an eighth of the batch (so two to eight
    /// threads get whole chunks), at most what keeps one chunk's image and columns near 4 MiB.
    /// Depends on the geometry only, never on the thread count, so the bits do not either.
    static func oneDNNImagesPerChunk(_ g: ConvGeometry) -> Int {
        let perImage = max(1, g.c * g.h * g.w + g.f * g.l)
        return max(1, min((g.n + 7) / 8, (1 << 20) / perImage))
    }

    /// One oneDNN convolution product over the batch (`conjure_onednn_conv`), or nil when
    /// oneDNN is not in use or has no implementation for the shape (the caller then uses
    /// im2col + GEMM). `count` is the output's element count.
    static func oneDNN(_ kind: ConvProduct, _ g: ConvGeometry, image: Tensor? = nil, weight: Tensor? = nil,
                       columns: Tensor? = nil, bias: [Float]? = nil, count: Int) -> [Float]? {
        guard ConvolutionLibrary.usesOneDNN, g.n > 0, g.c > 0, g.f > 0, g.l > 0, g.h * g.w > 0, count > 0 else { return nil }
        var kg = g.kernelGeometry
        let per = oneDNNImagesPerChunk(g)
        // A refused shape (oneDNN offers only its GEMM-based convolution) costs a cache lookup,
        // not an output allocation.
        guard conjure_onednn_conv_supported(kind.rawValue, &kg, g.f, per, bias == nil ? 0 : 1) != 0 else { return nil }
        var status: Int32 = 1
        let out = StepTimer.timed(.products) { [Float](unsafeUninitializedCapacity: count) { buf, initialised in
            withScalars(image) { pi in
                withScalars(weight) { pw in
                    withScalars(columns) { pc in
                        if let bias {
                            bias.withUnsafeBufferPointer { pb in
                                status = conjure_onednn_conv(kind.rawValue, &kg, g.f, per, pi, pw, pc, pb.baseAddress, buf.baseAddress)
                            }
                        } else {
                            status = conjure_onednn_conv(kind.rawValue, &kg, g.f, per, pi, pw, pc, nil, buf.baseAddress)
                        }
                    }
                }
            }
            if status != 0 { buf.initialize(repeating: 0) }
            initialised = count
        } }
        if status == 0 { ProductRecorder.note(ConvolutionShape(kind, g)) }
        return status == 0 ? out : nil
    }

    @inline(__always)
    static func withScalars<R>(_ t: Tensor?, _ body: (UnsafePointer<Float>?) -> R) -> R {
        guard let t else { return body(nil) }
        return t.withUnsafeScalars { body($0.baseAddress) }
    }

    /// The oneDNN implementation for `kind` on `g` in words (e.g. `jit:avx512_core`), or nil.
    static func oneDNNImplementation(_ kind: ConvProduct, _ g: ConvGeometry) -> String? {
        var kg = g.kernelGeometry
        var name = [CChar](repeating: 0, count: 64)
        let per = oneDNNImagesPerChunk(g)
        guard conjure_onednn_conv_impl(kind.rawValue, &kg, g.f, per, &name, 64) == 0 else { return nil }
        return String(cString: name)
    }
}

/// One convolution product as oneDNN's primitives received it, for `conjure bench`'s statement
/// of a step's work: the product kind and Conjure's geometry (image `[n, c, h, w]`, columns
/// `[n, f, ho, wo]`, kernel `kh x kw`, strides, paddings).
public struct ConvolutionShape: Hashable, Sendable, Codable, CustomStringConvertible {
    /// `forward`, `backward-data` or `backward-weights`.
    public var kind: String
    /// Image `[n, c, h, w]`, columns `[n, f, ho, wo]`.
    public var n: Int, c: Int, h: Int, w: Int, f: Int, ho: Int, wo: Int
    /// Kernel extent, strides and paddings along height and width.
    public var kh: Int, kw: Int, sh: Int, sw: Int, ph: Int, pw: Int

    init(_ product: ConvProduct, _ g: ConvGeometry) {
        kind = ["forward", "backward-data", "backward-weights"][Int(product.rawValue)]
        (n, c, h, w, f, ho, wo) = (g.n, g.c, g.h, g.w, g.f, g.ho, g.wo)
        (kh, kw, sh, sw, ph, pw) = (g.kh, g.kw, g.sh, g.sw, g.ph, g.pw)
    }

    var product: ConvProduct { ConvProduct(rawValue: Int32(["forward", "backward-data", "backward-weights"].firstIndex(of: kind) ?? 0))! }
    var geometry: ConvGeometry {
        ConvGeometry(n: n, c: c, h: h, w: w, f: f, ho: ho, wo: wo, kh: kh, kw: kw, sh: sh, sw: sw, ph: ph, pw: pw)
    }

    /// Multiply-adds of the product counted as 2 FLOPs each, padding taps included:
    /// `2 · n · f · ho · wo · c · kh · kw` (what the im2col GEMM would compute).
    public var flops: Double { 2 * Double(n * f * ho * wo) * Double(c * kh * kw) }

    /// E.g. `conv forward 64x32x28x28 -> 64 k3x3 s1`.
    public var description: String {
        "conv \(kind) \(n)x\(c)x\(h)x\(w) -> \(f) k\(kh)x\(kw) s\(sw)"
    }

    /// GFLOP/s of this product alone on oneDNN's primitives (the pool at the current thread
    /// count), on operands of uniform values in [-1, 1]: two untimed calls, then the median of
    /// `samples` timings of enough calls to last `seconds / samples` each; nil when oneDNN has no
    /// direct implementation for it.
    public func rate(seconds: Double = 0.05, samples: Int = 3) -> Double? {
        let g = geometry
        var rng = RandomGenerator(seed: 1)
        let image = Tensor.randomUniform(g.imageShape, low: -1, high: 1, using: &rng)
        let weight = Tensor.randomUniform(g.weightShape, low: -1, high: 1, using: &rng)
        let columns = Tensor.randomUniform(g.columnShape, low: -1, high: 1, using: &rng)
        let count = product == .forward ? n * f * ho * wo : product == .backwardData ? n * c * h * w : f * c * kh * kw
        func call() -> Bool {
            ConvolutionLibrary.with(.onednn) {
                ConvKernels.oneDNN(product, g, image: product == .backwardData ? nil : image,
                                   weight: product == .backwardWeights ? nil : weight,
                                   columns: product == .forward ? nil : columns, count: count) != nil
            }
        }
        guard call(), call() else { return nil }
        let t0 = DispatchTime.now().uptimeNanoseconds
        _ = call()
        let once = max(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, 1e-7)
        let calls = max(1, Int(seconds / Double(max(1, samples)) / once))
        var rates: [Double] = []
        for _ in 0..<max(1, samples) {
            let s0 = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<calls { _ = call() }
            let dt = max(Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e9, 1e-9)
            rates.append(flops * Double(calls) / dt / 1e9)
        }
        return rates.sorted()[rates.count / 2]
    }
}
