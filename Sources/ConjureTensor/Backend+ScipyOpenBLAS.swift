import Foundation

// MARK: - The newest OpenBLAS (PyPI's scipy-openblas32) behind the matrix-backend seam

/// PyPI's `scipy-openblas32` wheel ships a current OpenBLAS (DYNAMIC_ARCH, with Zen 4 and
/// Sapphire Rapids kernels) as `libscipy_openblas.so`, every symbol prefixed `scipy_`. Conjure
/// does not link it: it is opened with `dlopen` from the path in the environment variable
/// `CONJURE_SCIPY_OPENBLAS` (e.g. `.build/scipy-openblas/scipy_openblas32/lib/libscipy_openblas.so`,
/// fetched by `scripts/fetch-scipy-openblas.sh`), so neither the build nor the tests need it.
enum ScipyOpenBLAS {
    /// `cblas_sgemm`'s C signature with CBLAS's enums as `Int32` (row-major 101, no-trans 111, trans 112).
    typealias SGEMM = @convention(c) (Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
                                      UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32) -> Void
    /// `openblas_set_num_threads`.
    typealias SetThreads = @convention(c) (Int32) -> Void
    /// `openblas_get_corename` / `openblas_get_config`.
    typealias Text = @convention(c) () -> UnsafePointer<CChar>?

    /// Why the library could not be loaded (no `CONJURE_SCIPY_OPENBLAS`, dlopen's message, a
    /// missing symbol), nil once loaded.
    nonisolated(unsafe) static var loadError: String?

    /// The backend when `CONJURE_SCIPY_OPENBLAS` names a loadable library, else nil (the reason in ``loadError``).
    nonisolated(unsafe) static let backend: MatrixBackend? = {
        guard let path = ProcessInfo.processInfo.environment["CONJURE_SCIPY_OPENBLAS"], !path.isEmpty else {
            loadError = "set CONJURE_SCIPY_OPENBLAS to the path of libscipy_openblas.so (scripts/fetch-scipy-openblas.sh)"
            return nil
        }
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            loadError = "dlopen(\(path)): " + (dlerror().map { String(cString: $0) } ?? "failed")
            return nil
        }
        func symbol<T>(_ name: String, _ type: T.Type) -> T? {
            dlsym(handle, name).map { unsafeBitCast($0, to: type) }
        }
        guard let gemm = symbol("scipy_cblas_sgemm", SGEMM.self),
              let setThreads = symbol("scipy_openblas_set_num_threads", SetThreads.self) else {
            loadError = "\(path) lacks scipy_cblas_sgemm or scipy_openblas_set_num_threads"
            return nil
        }
        setThreads(1)  // one thread per call: Conjure's pool splits the work
        let text = { (name: String) -> String in
            symbol(name, Text.self).flatMap { $0() }.map { String(cString: $0) } ?? "?"
        }
        let config = text("scipy_openblas_get_config").split(separator: " ")
        let version = config.count > 1 ? String(config[1]) : "?"
        return MatrixBackend(
            name: "scipy-openblas",
            detail: "OpenBLAS \(version) from scipy-openblas32 (\(text("scipy_openblas_get_corename")) kernel), scipy_cblas_sgemm",
            kernel: { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
                gemm(101, ta ? 112 : 111, tb ? 112 : 111, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda),
                     b, Int32(ldb), beta, c, Int32(ldc))
            },
            tilesLikeOpenBLAS: false)
    }()
}
