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
        var status: Int32 = 1
        let out = [Float](unsafeUninitializedCapacity: count) { buf, initialised in
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
        }
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
