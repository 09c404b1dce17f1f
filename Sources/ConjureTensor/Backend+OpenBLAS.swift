import CBLAS

// MARK: - Debian's OpenBLAS (libopenblas-dev) behind the matrix-backend seam

extension MatrixBackend {
    /// Debian's OpenBLAS through `cblas_sgemm` (linked; one thread per call, Conjure's pool
    /// splits the work). Its kernel follows the CPU, or `OPENBLAS_CORETYPE` when set (the
    /// detail names it). On its SkylakeX-family kernels products are cut into small-matrix
    /// tiles (``OpenBLASKernels/smallMatrixTiles``).
    public static let openBLAS = MatrixBackend(
        name: "openblas",
        detail: "OpenBLAS \(openBLASVersion) (\(openBLASCore) kernel), cblas_sgemm",
        kernel: { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda), b, blasint(ldb),
                        beta, c, blasint(ldc))
        },
        tilesLikeOpenBLAS: true)

    /// The loaded OpenBLAS's core name (`openblas_get_corename`, e.g. `Haswell`).
    static var openBLASCore: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    /// The loaded OpenBLAS's version from `openblas_get_config` (`OpenBLAS 0.3.21 ...`), e.g. `0.3.21`.
    static var openBLASVersion: String {
        guard let c = openblas_get_config() else { return "?" }
        let words = String(cString: c).split(separator: " ")
        return words.count > 1 ? String(words[1]) : "?"
    }
}
