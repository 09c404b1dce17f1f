import CBLAS
import CConjureKernels

// MARK: - Matrix products through OpenBLAS

/// `C = alpha * op(A) * op(B) + beta * C` with row-major operands (`cblas_sgemm`).
///
/// Products of at least ``Parallel/gemmSplitFLOPs`` are split into row blocks of `C` (or column
/// blocks when `C` is wider than tall) computed concurrently by ``Parallel``'s threads; every
/// element's accumulation is unchanged by the split.
///
/// - Parameters: `m, n, k` are the extents of `op(A)` `[m, k]` and `op(B)` `[k, n]`.
@inline(__always)
public func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, b: UnsafePointer<Float>, beta: Float = 0, c: UnsafeMutablePointer<Float>) {
    sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
          a: a, lda: transposeA ? m : k, b: b, ldb: transposeB ? k : n, beta: beta, c: c, ldc: n)
}

/// ``sgemm(transposeA:transposeB:m:n:k:alpha:a:b:beta:c:)`` on sub-matrices: `lda`, `ldb`, `ldc`
/// are the row strides (in elements) of the stored `A`, `B` and `C`.
///
/// With `broadcasting row`, `C` (whatever it held) is first set to the `n` values of `row` in
/// every one of its `m` rows and then accumulated into (`beta` must be 1): a linear layer's bias
/// as the product's initial value. Each thread sets the block of `C` it computes, just before
/// computing it.
@inline(__always)
public func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                  broadcasting row: UnsafePointer<Float>? = nil) {
    precondition(row == nil || beta == 1, "sgemm: a broadcast row needs beta = 1")
    let ta = transposeA ? CblasTrans : CblasNoTrans, tb = transposeB ? CblasTrans : CblasNoTrans
    let threads = Parallel.threads
    /// Sets rows `rows` and columns `columns` of `C` to the broadcast row.
    @inline(__always) func initialise(_ rows: Range<Int>, _ columns: Range<Int>) {
        guard let row else { return }
        for i in rows { (c + i * ldc + columns.lowerBound).update(from: row + columns.lowerBound, count: columns.count) }
    }
    /// `body` over row ranges of `C`, split across the pool from 2 · 16K elements.
    @inline(__always) func forRowRanges(_ body: (Range<Int>) -> Void) {
        if Tensor.splitsAcrossPool(m * n) && m >= 2 {
            Parallel.forRanges(m, minimum: max(1, Tensor.mapSplitCount / max(1, n)), alignment: 1, body)
        } else if m > 0 {
            body(0..<m)
        }
    }
    if row != nil && (k == 0 || m == 0 || n == 0) {
        initialise(0..<m, 0..<n)
        return
    }
    /// Rows (or columns) `lo..<lo+len` of `C` as one OpenBLAS call.
    @inline(__always) func block(alongRows: Bool, _ lo: Int, _ len: Int) {
        if alongRows {
            cblas_sgemm(CblasRowMajor, ta, tb, blasint(len), blasint(n), blasint(k), alpha,
                        a + (transposeA ? lo : lo * lda), blasint(lda), b, blasint(ldb), beta, c + lo * ldc, blasint(ldc))
        } else {
            cblas_sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(len), blasint(k), alpha,
                        a, blasint(lda), b + (transposeB ? lo * ldb : lo), blasint(ldb), beta, c + lo, blasint(ldc))
        }
    }
    if k == 1 && !transposeB && alpha == 1 && beta == 0 {
        // An outer product (a linear layer with one output, backward): each element is one
        // rounded product, OpenBLAS's NN/TN value, without its call and packing; rows split
        // across the pool from 2 · 16K elements.
        let aStride = transposeA ? 1 : lda
        forRowRanges { r in conjure_outer_rows(a, aStride, b, c, ldc, n, r.lowerBound, r.upperBound) }
        return
    }
    if let tile = smallKernelBlocks(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k) {
        // Tiles of `tile.rows` x `tile.columns` of C, each a product OpenBLAS runs on its
        // small-matrix kernel (no packing); the tiles depend on the shape only, so any thread
        // count gives the same bits.
        let across = (n + tile.columns - 1) / tile.columns
        let count = (m + tile.rows - 1) / tile.rows * across
        @inline(__always) func run(_ i: Int) {
            let r0 = i / across * tile.rows, c0 = i % across * tile.columns
            let rows = min(m - r0, tile.rows), columns = min(n - c0, tile.columns)
            cblas_sgemm(CblasRowMajor, ta, tb, blasint(rows), blasint(columns), blasint(k), alpha,
                        a + (transposeA ? r0 : r0 * lda), blasint(lda), b + (transposeB ? c0 * ldb : c0), blasint(ldb),
                        beta, c + r0 * ldc + c0, blasint(ldc))
        }
        if threads > 1 && 2 * m * n * k >= Parallel.gemmSplitFLOPs {
            // The broadcast row in whole rows first (tiles this narrow fill slowly), then one
            // task per tile, taken by whichever thread is free.
            if row != nil { forRowRanges { r in initialise(r, 0..<n) } }
            Parallel.forEach(count) { i in run(i) }
        } else {
            initialise(0..<m, 0..<n)
            for i in 0..<count { run(i) }
        }
        return
    }
    if threads > 1 && 2 * m * n * k >= Parallel.gemmSplitFLOPs && max(m, n) >= 32 {
        let alongRows = m >= n
        let extent = alongRows ? m : n
        // Equal blocks in multiples of 8 rows/columns (784 columns: 392 + 392); every block must
        // stay above OpenBLAS's small-matrix limit (its SkylakeX-family kernels take products
        // of at most 1e6 multiply-adds by another path with another accumulation order), so a
        // split result equals the unsplit one.
        var parts = min(threads, extent / 16)
        var per = 0
        while parts > 1 {
            per = ((extent + parts - 1) / parts + 7) / 8 * 8
            let smallest = extent - (parts - 1) * per
            if smallest > 0 && Double(smallest) * Double(alongRows ? n : m) * Double(k) > 1e6 { break }
            parts -= 1
        }
        if parts > 1 {
            Parallel.forEach((extent + per - 1) / per) { i in
                let lo = i * per, len = min(extent, lo + per) - lo
                if alongRows { initialise(lo..<lo + len, 0..<n) } else { initialise(0..<m, lo..<lo + len) }
                block(alongRows: alongRows, lo, len)
            }
            return
        }
    }
    initialise(0..<m, 0..<n)
    cblas_sgemm(CblasRowMajor, ta, tb, blasint(m), blasint(n), blasint(k), alpha, a, blasint(lda),
                b, blasint(ldb), beta, c, blasint(ldc))
}

/// Products that OpenBLAS 0.3.21 computes faster as tiles small enough for its SkylakeX-family
/// small-matrix kernels (at most 1e6 multiply-adds, no packing of either operand) than as one
/// call, measured on Zen 4 for the MLP shapes at batch 64-256: the tile's `(rows, columns)` of
/// `C`, or nil for one call. Where the gain held for every measured shape only:
/// - `x · Wᵀ` (NT) with `k >= 256`: 16 columns of all rows for `m <= 64`, 8 for `m <= 128`,
///   4-33% faster; above 128 rows with `k >= 512`, 64 x 16 tiles, 5-10%.
/// - `g · W` (NN) with `k >= 128` and `n` a multiple of 16: 4 rows, 6-20%.
/// - `gᵀ · x` (TN) with `n >= 48`: 16 columns of all rows (the last one narrower), 5-20%.
/// Elsewhere the small kernel was slower. Against one call the bits were the same in every
/// shape compared with `k <= 320`; from `k = 384` (OpenBLAS splits `k` there) the tiles sum in
/// another order, a rounding-level difference.
@inline(__always)
func smallKernelBlocks(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int) -> (rows: Int, columns: Int)? {
    let (dm, dn, dk) = (Double(m), Double(n), Double(k))
    if dm * dn * dk <= 1e6 { return nil }  // one call takes the small-matrix kernel already
    switch (transposeA, transposeB) {
    case (false, true) where k >= 256:
        if m <= 64 && dm * 16 * dk <= 1e6 && n > 16 { return (m, 16) }
        if m <= 128 && dm * 8 * dk <= 1e6 && n > 8 { return (m, 8) }
        if m > 128 && k >= 512 && 64 * 16 * dk <= 1e6 && n > 16 { return (64, 16) }
    case (false, false) where k >= 128 && n % 16 == 0 && 4 * dn * dk <= 1e6 && m > 4:
        return (4, n)
    case (true, false) where n >= 48 && dm * 16 * dk <= 1e6:
        return (m, 16)
    default:
        break
    }
    return nil
}

extension Tensor {
    /// Matrix product `op(a) @ op(b)` of 2-D tensors, where `op` optionally transposes
    /// (handed to `cblas_sgemm` as a flag, no copy).
    ///
    /// - Shapes: `op(a)` `[M, K]`, `op(b)` `[K, N]` → `[M, N]`.
    public static func matmul(_ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul: expected 2-D operands, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(k == kb, "matmul: inner extents differ: \(a.shape)\(transposeA ? "ᵀ" : "") @ \(b.shape)\(transposeB ? "ᵀ" : "")")
        let out = [Float](unsafeUninitializedCapacity: m * n) { buf, initialised in
            if k == 0 { buf.initialize(repeating: 0) } else if m * n > 0 {
                a.scalars.withUnsafeBufferPointer { pa in
                    b.scalars.withUnsafeBufferPointer { pb in
                        sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                              a: pa.baseAddress!, b: pb.baseAddress!, c: buf.baseAddress!)
                    }
                }
            }
            initialised = m * n
        }
        return record(shape: [m, n], scalars: out, inputs: [a, b]) { g, x in
            let ga: Tensor? = x[0].node == nil ? nil
                : (transposeA ? matmul(x[1], g, transposeA: transposeB, transposeB: true)
                              : matmul(g, x[1], transposeB: !transposeB))
            let gb: Tensor? = x[1].node == nil ? nil
                : (transposeB ? matmul(g, x[0], transposeA: true, transposeB: transposeA)
                              : matmul(x[0], g, transposeA: !transposeA))
            return [ga, gb]
        }
    }

    /// Affine map `x @ weightᵀ + bias` (PyTorch's `F.linear`), one GEMM with the bias as its
    /// initial accumulator.
    ///
    /// - Shapes: `x` `[N, in]`, `weight` `[out, in]`, `bias` `[out]` → `[N, out]`.
    public static func linear(_ x: Tensor, weight: Tensor, bias: Tensor?) -> Tensor {
        precondition(x.rank == 2 && weight.rank == 2 && x.shape[1] == weight.shape[1],
                     "linear: input \(x.shape) does not match weight \(weight.shape) ([out, in])")
        let n = x.shape[0], inF = x.shape[1], outF = weight.shape[0]
        if let bias { precondition(bias.shape == [outF], "linear: bias \(bias.shape) for weight \(weight.shape)") }
        let out = [Float](unsafeUninitializedCapacity: n * outF) { buf, initialised in
            guard let bias, n * outF > 0, inF > 0 else {
                // Without a bias the product accumulates into zeros (so an exact zero is +0).
                if let bias {
                    bias.scalars.withUnsafeBufferPointer { pb in
                        for i in 0..<n { (buf.baseAddress! + i * outF).update(from: pb.baseAddress!, count: outF) }
                    }
                } else {
                    buf.initialize(repeating: 0)
                }
                if n * outF > 0 && inF > 0 {
                    x.scalars.withUnsafeBufferPointer { px in
                        weight.scalars.withUnsafeBufferPointer { pw in
                            sgemm(transposeA: false, transposeB: true, m: n, n: outF, k: inF,
                                  a: px.baseAddress!, b: pw.baseAddress!, beta: 1, c: buf.baseAddress!)
                        }
                    }
                }
                initialised = n * outF
                return
            }
            // The bias as the product's initial value, set block by block by the thread that
            // computes the block.
            x.scalars.withUnsafeBufferPointer { px in
                weight.scalars.withUnsafeBufferPointer { pw in
                    bias.scalars.withUnsafeBufferPointer { pb in
                        sgemm(transposeA: false, transposeB: true, m: n, n: outF, k: inF, a: px.baseAddress!, lda: inF,
                              b: pw.baseAddress!, ldb: inF, beta: 1, c: buf.baseAddress!, ldc: outF, broadcasting: pb.baseAddress!)
                    }
                }
            }
            initialised = n * outF
        }
        let inputs = bias.map { [x, weight, $0] } ?? [x, weight]
        return record(shape: [n, outF], scalars: out, inputs: inputs) { g, t in
            var grads: [Tensor?] = [
                t[0].node == nil ? nil : matmul(g, t[1]),
                t[1].node == nil ? nil : matmul(g, t[0], transposeA: true),
            ]
            if t.count == 3 { grads.append(t[2].node == nil ? nil : g.sum(axes: [0])) }
            return grads
        }
    }
}
