import CDNNL

// MARK: - oneDNN (Debian's libdnnl-dev) behind the matrix-backend seam

extension MatrixBackend {
    /// oneDNN's `dnnl_sgemm` (row-major, like `cblas_sgemm`), on one OpenMP thread per call:
    /// Debian builds oneDNN on OpenMP, whose thread count is per calling thread, so every call
    /// sets it to 1 first (Conjure's pool splits the work; two threading layers would
    /// oversubscribe the cores). Its kernels are JIT-compiled for the CPU's ISA on first use.
    public static let oneDNN = MatrixBackend(
        name: "onednn",
        detail: "oneDNN \(oneDNNVersion) (\(oneDNNISA)), dnnl_sgemm",
        kernel: { ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc in
            omp_set_num_threads(1)
            let status = dnnl_sgemm(ta ? 84 : 78, tb ? 84 : 78, dnnl_dim_t(m), dnnl_dim_t(n), dnnl_dim_t(k), alpha,
                                    a, dnnl_dim_t(lda), b, dnnl_dim_t(ldb), beta, c, dnnl_dim_t(ldc))
            precondition(status == dnnl_success, "dnnl_sgemm failed (status \(status.rawValue)) for \(m)x\(n)x\(k)")
        },
        tilesLikeOpenBLAS: false)

    /// `major.minor.patch` of the loaded oneDNN (`dnnl_version`).
    static var oneDNNVersion: String {
        guard let v = dnnl_version()?.pointee else { return "?" }
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    /// The instruction set oneDNN dispatches to here (`dnnl_get_effective_cpu_isa`), in words.
    static var oneDNNISA: String {
        switch dnnl_get_effective_cpu_isa() {
        case dnnl_cpu_isa_avx512_core_amx: return "AVX-512 + AMX"
        case dnnl_cpu_isa_avx512_core_bf16: return "AVX-512 BF16"
        case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512 VNNI"
        case dnnl_cpu_isa_avx512_core: return "AVX-512"
        case dnnl_cpu_isa_avx2_vnni: return "AVX2 VNNI"
        case dnnl_cpu_isa_avx2: return "AVX2"
        case let other: return "ISA 0x\(String(other.rawValue, radix: 16))"
        }
    }
}
