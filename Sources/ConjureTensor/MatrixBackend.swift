import Foundation

// MARK: - The matrix-product backend seam

/// The library that computes Conjure's single-precision matrix products: one `sgemm` call on one
/// thread (`C = alpha · op(A) · op(B) + beta · C`, row-major, BLAS's `lda/ldb/ldc`).
///
/// Conjure's own ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:broadcasting:)``
/// cuts every product into blocks fixed by the shape and hands each block to the current
/// backend on one pool thread, so every library sees the same single-threaded calls and the
/// bits depend on the shape and the backend, never on the thread count. A library is one file
/// behind this type (`Backend+OpenBLAS.swift`, `Backend+OneDNN.swift`,
/// `Backend+ScipyOpenBLAS.swift`).
///
/// Selection: ``select(_:option:)`` (`conjure train/bench --backend NAME`), else the environment
/// variable `CONJURE_BACKEND`, else ``defaultName`` (`onednn`, chosen by measurement). Backends differ in rounding only (the
/// order of each dot product's additions and where FMAs fall); see docs/backends.md.
public struct MatrixBackend: @unchecked Sendable, CustomStringConvertible {
    /// One row-major single-threaded product on raw pointers:
    /// `(transposeA, transposeB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)`.
    public typealias Kernel = (Bool, Bool, Int, Int, Int, Float, UnsafePointer<Float>, Int,
                               UnsafePointer<Float>, Int, Float, UnsafeMutablePointer<Float>, Int) -> Void

    /// The name `--backend` and `CONJURE_BACKEND` accept (`openblas`, `onednn`, `scipy-openblas`).
    public let name: String
    /// The library and version in words, e.g. `OpenBLAS 0.3.21 (Haswell kernel)`.
    public let detail: String
    /// The product of one block, on the calling thread.
    let kernel: Kernel
    /// Whether this is Debian's OpenBLAS, whose SkylakeX-family kernels get small-matrix tiles
    /// (see `smallKernelBlocks`).
    let tilesLikeOpenBLAS: Bool

    /// Whether products are cut into small-matrix tiles: for Debian's OpenBLAS when
    /// ``OpenBLASKernels/smallMatrixTiles`` says so (tests may set it), never for the others.
    var smallMatrixTiles: Bool { tilesLikeOpenBLAS && OpenBLASKernels.smallMatrixTiles }

    /// `name (detail)`.
    public var description: String { "\(name) (\(detail))" }

    /// Every backend name Conjure knows, available here or not, in preference order.
    public static let knownNames = ["openblas", "onednn", "scipy-openblas"]

    /// The backend used when neither `--backend` nor `CONJURE_BACKEND` names one: `onednn`.
    /// Measured with `conjure bench --gemm` on AMD EPYC Zen 4 (2 cores, OPENBLAS_CORETYPE=Haswell),
    /// oneDNN 2.6's `dnnl_sgemm` took 0.34-0.66 of OpenBLAS 0.3.21's time for the matrix work of
    /// the seed, gan and dcgan steps (docs/backends.md has the table); issue 16 reports the same
    /// order on Sapphire Rapids (81-97 against 58-76 GFLOP/s).
    public static let defaultName = "onednn"

    /// The backend named `name` if its library is present in this process (oneDNN is linked;
    /// `scipy-openblas` needs `CONJURE_SCIPY_OPENBLAS` to name its shared library), else nil.
    public static func loaded(_ name: String) -> MatrixBackend? {
        switch name {
        case "openblas": return .openBLAS
        case "onednn": return .oneDNN
        case "scipy-openblas": return ScipyOpenBLAS.backend
        default: return nil
        }
    }

    /// The names of the backends available in this process, in ``knownNames`` order.
    public static var availableNames: [String] { knownNames.filter { loaded($0) != nil } }

    /// The backend named `name`, or one ``ConfigError`` naming `option` and the available ones.
    ///
    /// - Throws: `ConfigError(option:)` for an unknown name or one whose library is missing.
    public static func named(_ name: String, option: String) throws -> MatrixBackend {
        let key = name.lowercased()
        if let b = loaded(key) { return b }
        let available = "available: \(availableNames.joined(separator: ", "))"
        if knownNames.contains(key) {
            let why = key == "scipy-openblas"
                ? (ScipyOpenBLAS.loadError ?? "not loaded") : "its library is not loaded"
            throw ConfigError(option: option, problem: "backend '\(name)' is not available here: \(why)", hint: available)
        }
        throw ConfigError(option: option, problem: "unknown backend '\(name)'", hint: available)
    }

    /// The process-wide backend every product uses. Read once per product; set it between
    /// steps, not while another thread computes.
    nonisolated(unsafe) public static var current: MatrixBackend = fromEnvironment() ?? loaded(defaultName)!

    /// The backend `CONJURE_BACKEND` names, if set and available (else nil).
    static func fromEnvironment() -> MatrixBackend? {
        guard let v = ProcessInfo.processInfo.environment["CONJURE_BACKEND"], !v.isEmpty else { return nil }
        return loaded(v.lowercased())
    }

    /// Sets ``current``: to the backend `name` when given (from `option`), else to the one
    /// `CONJURE_BACKEND` names, else leaves it.
    ///
    /// - Throws: `ConfigError` naming `option` (or `CONJURE_BACKEND`) for an unknown or
    ///   unavailable backend, with the available ones.
    public static func select(_ name: String?, option: String = "--backend") throws {
        if let name {
            current = try named(name, option: option)
        } else if let v = ProcessInfo.processInfo.environment["CONJURE_BACKEND"], !v.isEmpty {
            current = try named(v, option: "CONJURE_BACKEND")
        }
    }

    /// Runs `body` with ``current`` set to `backend`, then restores the previous one (tests,
    /// benchmarks).
    public static func with<R>(_ backend: MatrixBackend, _ body: () throws -> R) rethrows -> R {
        let saved = current
        current = backend
        defer { current = saved }
        return try body()
    }

    /// Starts a thread that runs one small product of each transpose combination on this
    /// backend and exits: oneDNN JIT-compiles its kernels on first use (measured: the first
    /// step of the gan preset took 0.15 s longer without this), so a command calls this before
    /// loading its data and the compilation overlaps the loading. Results do not depend on it.
    public func warmUpInBackground() {
        let kernel = self.kernel
        let thread = Thread {
            let (m, n, k) = (64, 128, 128)
            let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: k * n)
            var c = [Float](repeating: 0, count: m * n)
            for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
                kernel(ta, tb, m, n, k, 1, a, ta ? m : k, b, tb ? k : n, 0, &c, n)
            }
        }
        thread.start()
    }

    /// One product on the calling thread, no blocking: `C = alpha · op(A) · op(B) + beta · C`
    /// with `op(A)` `[m, k]`, `op(B)` `[k, n]`, `C` `[m, n]`, row strides `lda`, `ldb`, `ldc` in
    /// elements (BLAS's row-major `sgemm`).
    ///
    /// - Precondition: `m, n, k ≥ 1` and each leading dimension at least its stored row length.
    @inline(__always)
    public func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        kernel(transposeA, transposeB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
}

/// Strided batched product: `C[i] = alpha · op(A[i]) · op(B[i]) + beta · C[i]` for `i` in
/// `0..<batch`, slice `i` of each operand starting `i · stride` elements after the first, with
/// the shapes and leading dimensions of
/// ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:broadcasting:)``
/// (`cblas_sgemm_batch_strided`'s contract). Small slices (attention heads) run one slice per
/// pool task; a large one is split into blocks inside `sgemm`. Each slice's bits depend on its
/// shape and the backend only.
///
/// - Precondition: `batch ≥ 0`; `m, n, k ≥ 1` when `batch > 0`.
public func sgemmStridedBatched(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                a: UnsafePointer<Float>, lda: Int, strideA: Int,
                                b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                                beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int, batch: Int) {
    precondition(batch >= 0, "sgemmStridedBatched: batch \(batch)")
    ProductRecorder.note(transposeA, transposeB, m, n, k, count: batch)
    StepTimer.timed(.products) { stridedBatch(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                                         a: a, lda: lda, strideA: strideA, b: b, ldb: ldb, strideB: strideB,
                                         beta: beta, c: c, ldc: ldc, strideC: strideC, batch: batch) }
}

/// ``sgemmStridedBatched(transposeA:transposeB:m:n:k:alpha:a:lda:strideA:b:ldb:strideB:beta:c:ldc:strideC:batch:)``
/// without recording or timing.
private func stridedBatch(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                          a: UnsafePointer<Float>, lda: Int, strideA: Int,
                          b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                          beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int, batch: Int) {
    let body: (Int) -> Void = { i in
        blockedProduct(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
              a: a + i * strideA, lda: lda, b: b + i * strideB, ldb: ldb, beta: beta, c: c + i * strideC, ldc: ldc,
                       broadcasting: nil)
    }
    let flops = 2 * m * n * k
    if batch > 1 && Parallel.threads > 1 && flops < Parallel.gemmSplitFLOPs && batch * flops >= Parallel.gemmSplitFLOPs {
        Parallel.forEach(batch, body)
    } else {
        for i in 0..<batch { body(i) }
    }
}

// MARK: - Recording a step's products (for `conjure bench`)

/// One matrix product as Conjure's `sgemm` received it: `op(A)` `[m, k]` times `op(B)` `[k, n]`.
public struct ProductShape: Hashable, Sendable, Codable, CustomStringConvertible {
    /// Whether `A` is stored transposed (`[k, m]`).
    public var transposeA: Bool
    /// Whether `B` is stored transposed (`[n, k]`).
    public var transposeB: Bool
    /// Rows of `op(A)` and `C`.
    public var m: Int
    /// Columns of `op(B)` and `C`.
    public var n: Int
    /// The inner extent.
    public var k: Int

    /// Creates the shape `op(A)` `[m, k]` · `op(B)` `[k, n]`.
    public init(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int) {
        (self.transposeA, self.transposeB, self.m, self.n, self.k) = (transposeA, transposeB, m, n, k)
    }

    /// Floating-point operations of the product, `2 · m · n · k`.
    public var flops: Double { 2 * Double(m) * Double(n) * Double(k) }

    /// `MxNxK` with the BLAS transpose letters, e.g. `64x1024x784 NT`.
    public var description: String { "\(m)x\(n)x\(k) \(transposeA ? "T" : "N")\(transposeB ? "T" : "N")" }
}

/// Records the products Conjure's `sgemm` computes while enabled (one entry per call of
/// ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:broadcasting:)``, a
/// strided batch as `batch` entries), so that `conjure bench` can state a step's matrix work.
/// Off by default: then it costs one Boolean test per product.
public enum ProductRecorder {
    nonisolated(unsafe) static var enabled = false
    nonisolated(unsafe) static var shapes: [ProductShape] = []
    static let lock = NSLock()

    /// Runs `body` and returns the products it computed, in order (concurrent products in the
    /// order they reached the recorder).
    public static func record(_ body: () throws -> Void) rethrows -> [ProductShape] {
        try recordWork(body).products
    }

    /// Runs `body` and returns the matrix products and the convolution products (those oneDNN's
    /// primitives computed; an im2col convolution shows as its matrix products) it ran, in order.
    public static func recordWork(_ body: () throws -> Void) rethrows -> (products: [ProductShape], convolutions: [ConvolutionShape]) {
        lock.lock(); shapes = []; convolutions = []; enabled = true; lock.unlock()
        defer { lock.lock(); enabled = false; lock.unlock() }
        try body()
        lock.lock(); defer { lock.unlock() }
        return (shapes, convolutions)
    }

    nonisolated(unsafe) static var convolutions: [ConvolutionShape] = []

    /// Notes one convolution product when recording.
    static func note(_ convolution: ConvolutionShape) {
        guard enabled else { return }
        lock.lock()
        if enabled { convolutions.append(convolution) }
        lock.unlock()
    }

    /// Notes one product (`count` times) when recording.
    @inline(__always)
    static func note(_ transposeA: Bool, _ transposeB: Bool, _ m: Int, _ n: Int, _ k: Int, count: Int = 1) {
        guard enabled else { return }
        lock.lock()
        if enabled {
            for _ in 0..<count { shapes.append(ProductShape(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k)) }
        }
        lock.unlock()
    }
}
