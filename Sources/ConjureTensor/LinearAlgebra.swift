import CBLAS
import CConjureKernels

// MARK: - Matrix products through the current matrix backend

/// `C = alpha * op(A) * op(B) + beta * C` with row-major operands (BLAS's `sgemm`, computed by
/// ``MatrixBackend/current``).
///
/// Products of at least ``Parallel/gemmSplitFLOPs`` are computed as blocks of `C` whose
/// boundaries depend on the shape only (``productBlocks(m:n:k:)``, ``smallKernelBlocks(transposeA:transposeB:m:n:k:)``),
/// each one single-threaded call of the current ``MatrixBackend``; the pool's threads only
/// decide who computes which block, so the result is bit-identical for any thread count (and
/// differs between backends by rounding only).
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
///
/// The same shape always gives the same blocks and the same backend calls, whatever
/// ``Parallel/threads`` is: a library's value for an element depends on where the element sits
/// in its call (its edge micro-kernels and k-blocking accumulate in other orders; measured on
/// the Haswell and Cooperlake kernels of OpenBLAS 0.3.21; oneDNN's `dnnl_sgemm` on one thread
/// passes the same tests), not on the operands' addresses, so fixing the calls by shape fixes
/// the bits.
@inline(__always)
public func sgemm(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                  a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                  beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                  broadcasting row: UnsafePointer<Float>? = nil) {
    ProductRecorder.note(transposeA, transposeB, m, n, k)
    StepTimer.timed(.products) {
        blockedProduct(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, broadcasting: row)
    }
}

/// ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:broadcasting:)`` without
/// recording (a strided batch records itself once).
@inline(__always)
func blockedProduct(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                    broadcasting row: UnsafePointer<Float>?) {
    precondition(row == nil || beta == 1, "sgemm: a broadcast row needs beta = 1")
    let backend = MatrixBackend.current
    /// Sets rows `rows` and columns `columns` of `C` to the broadcast row.
    @inline(__always) func initialise(_ rows: Range<Int>, _ columns: Range<Int>) {
        guard let row else { return }
        for i in rows { (c + i * ldc + columns.lowerBound).update(from: row + columns.lowerBound, count: columns.count) }
    }
    /// `body` over row ranges of `C`, split across the pool from 2 · 16K elements (element-wise
    /// work: any split gives the same values).
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
    if k == 1 && !transposeB && alpha == 1 && beta == 0 {
        // An outer product (a linear layer with one output, backward): each element is one
        // product rounded once (`fmaf(a, b, 0)`), Conjure's kernel instead of an OpenBLAS call and
        // its packing; rows split across the pool from 2 · 16K elements.
        let aStride = transposeA ? 1 : lda
        forRowRanges { r in conjure_outer_rows(a, aStride, b, c, ldc, n, r.lowerBound, r.upperBound) }
        return
    }
    if let tile = smallKernelBlocks(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                                    smallMatrixKernels: backend.smallMatrixTiles) {
        // Tiles of `tile.rows` x `tile.columns` of C, each a product OpenBLAS runs on its
        // small-matrix kernel (no packing).
        let across = (n + tile.columns - 1) / tile.columns
        let count = (m + tile.rows - 1) / tile.rows * across
        @inline(__always) func run(_ i: Int) {
            let r0 = i / across * tile.rows, c0 = i % across * tile.columns
            let rows = min(m - r0, tile.rows), columns = min(n - c0, tile.columns)
            backend.sgemm(transposeA: transposeA, transposeB: transposeB, m: rows, n: columns, k: k, alpha: alpha,
                          a: a + (transposeA ? r0 : r0 * lda), lda: lda, b: b + (transposeB ? c0 * ldb : c0), ldb: ldb,
                          beta: beta, c: c + r0 * ldc + c0, ldc: ldc)
        }
        if Parallel.threads > 1 && 2 * m * n * k >= Parallel.gemmSplitFLOPs {
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
    let blocks = productBlocks(m: m, n: n, k: k)
    // Block `i` of C: rows (or columns) `blocks.bounds(i)`, one backend call; one thread runs
    // them in order, more threads take them as they come free.
    Parallel.forEach(blocks.count) { i in
        let r = blocks.bounds(i)
        if blocks.alongRows {
            initialise(r, 0..<n)
            backend.sgemm(transposeA: transposeA, transposeB: transposeB, m: r.count, n: n, k: k, alpha: alpha,
                          a: a + (transposeA ? r.lowerBound : r.lowerBound * lda), lda: lda, b: b, ldb: ldb,
                          beta: beta, c: c + r.lowerBound * ldc, ldc: ldc)
        } else {
            initialise(0..<m, r)
            backend.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: r.count, k: k, alpha: alpha,
                          a: a, lda: lda, b: b + (transposeB ? r.lowerBound * ldb : r.lowerBound), ldb: ldb,
                          beta: beta, c: c + r.lowerBound, ldc: ldc)
        }
    }
}

/// The blocks ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:broadcasting:)``
/// cuts `C` `[m, n]` into when no small-matrix tiling applies: consecutive row blocks (column
/// blocks when `C` is wider than tall), each one OpenBLAS call.
///
/// A function of the shape and ``Parallel/gemmSplitFLOPs`` only, never of the thread count:
/// products below `gemmSplitFLOPs` (2·m·n·k) or with fewer than 256 rows and columns are one
/// block; larger ones `P` blocks, the largest power of two at most 8 (the pool's default
/// maximum thread count), `extent / minimumBlockExtent` and `2 · FLOPs / gemmSplitFLOPs`, so
/// every block keeps about 128 rows or columns (at least 120) and half of `gemmSplitFLOPs`.
/// Boundaries are `i · extent / P` rounded to a multiple of 8, so any thread count dividing `P`
/// gets nearly equal shares.
///
/// Why 128: every block is its own library call, which packs the operand the blocks share
/// (`op(B)` for row blocks, `op(A)` for column blocks) again and pays the call's fixed cost.
/// With blocks of 32 (this function until 2026-12-04) that cost 7-17% of the `seed` and `gan`
/// steps at one thread on oneDNN (Zen 5, `conjure bench`: seed 64x1 about 800 -> 880-940
/// steps/s, 256x1 about 238 -> 256-262, gan 64x1 about 119 -> 139); two threads were unchanged
/// or faster, the convolution models unchanged.
@inline(__always)
func productBlocks(m: Int, n: Int, k: Int) -> ProductBlocks {
    let alongRows = m >= n
    let extent = alongRows ? m : n
    let flops = 2 * m * n * k
    var parts = 1
    if flops >= Parallel.gemmSplitFLOPs && extent >= 2 * minimumBlockExtent {
        let limit = min(8, extent / minimumBlockExtent, 2 * flops / max(1, Parallel.gemmSplitFLOPs))
        while parts * 2 <= limit { parts *= 2 }
    }
    return ProductBlocks(alongRows: alongRows, extent: extent, count: parts)
}

/// The rows (or columns) a block of ``productBlocks(m:n:k:)`` keeps at least, before rounding
/// its bounds to multiples of 8.
let minimumBlockExtent = 128

/// Consecutive blocks of one extent of `C` (see ``productBlocks(m:n:k:)``).
struct ProductBlocks {
    /// Whether the blocks are row blocks (else column blocks).
    let alongRows: Bool
    /// The rows (or columns) of `C` that the blocks cover.
    let extent: Int
    /// How many blocks.
    let count: Int

    /// Block `i`'s rows (or columns): from `i · extent / count` rounded to a multiple of 8 to
    /// the next block's start (the last ends at `extent`).
    @inline(__always)
    func bounds(_ i: Int) -> Range<Int> {
        @inline(__always) func start(_ j: Int) -> Int { j == count ? extent : (j * extent / count + 4) / 8 * 8 }
        return start(i)..<start(i + 1)
    }
}

/// What Conjure knows of the loaded OpenBLAS's kernels.
enum OpenBLASKernels {
    /// Whether products are cut into small-matrix tiles (``smallKernelBlocks(transposeA:transposeB:m:n:k:smallMatrixKernels:)``):
    /// true when the loaded OpenBLAS runs products of at most 1e6 multiply-adds on its
    /// small-matrix kernels (no packing), as its SkylakeX-family cores (SkylakeX, Cooperlake,
    /// SapphireRapids) do in 0.3.21. Other cores (Haswell, Zen, ...) pack every call, so small
    /// tiles only cost there. Read once from `openblas_get_corename()`, which follows
    /// `OPENBLAS_CORETYPE`; tests set it to run the tiles on any core.
    nonisolated(unsafe) static var smallMatrixTiles: Bool = {
        guard let name = openblas_get_corename() else { return false }
        return ["skylakex", "cooperlake", "sapphirerapids"].contains(String(cString: name).lowercased())
    }()
}

/// Products that OpenBLAS 0.3.21 computes faster as tiles small enough for its SkylakeX-family
/// small-matrix kernels (at most 1e6 multiply-adds, no packing of either operand) than as one
/// call, measured on Zen 4 for the MLP shapes at batch 64-256: the tile's `(rows, columns)` of
/// `C`, or nil for ``productBlocks(m:n:k:)``. Always nil when `smallMatrixKernels` is false
/// (``OpenBLASKernels/smallMatrixTiles``; on the Haswell kernel, which packs every call, the
/// same tiles were 1.3-2.5x slower than one call). Where the
/// gain held for every measured shape only:
/// - `x · Wᵀ` (NT) with `k >= 256`: 16 columns of all rows for `m <= 64`, 8 for `m <= 128`,
///   4-33% faster; above 128 rows with `k >= 512`, 64 x 16 tiles, 5-10%.
/// - `g · W` (NN) with `k >= 128` and `n` a multiple of 16: 4 rows, 6-20%.
/// - `gᵀ · x` (TN) with `n >= 48`: 16 columns of all rows (the last one narrower), 5-20%.
/// Elsewhere the small kernel was slower. The tiles depend on the shape (and the OpenBLAS core)
/// only, so any thread count computes the same tiles with the same calls.
@inline(__always)
func smallKernelBlocks(transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int,
                       smallMatrixKernels: Bool = OpenBLASKernels.smallMatrixTiles) -> (rows: Int, columns: Int)? {
    if !smallMatrixKernels { return nil }
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
    /// (handed to the matrix backend's `sgemm` as a flag, no copy).
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
                a.withUnsafeScalars { pa in
                    b.withUnsafeScalars { pb in
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
                    bias.withUnsafeScalars { pb in
                        for i in 0..<n { (buf.baseAddress! + i * outF).update(from: pb.baseAddress!, count: outF) }
                    }
                } else {
                    buf.initialize(repeating: 0)
                }
                if n * outF > 0 && inF > 0 {
                    x.withUnsafeScalars { px in
                        weight.withUnsafeScalars { pw in
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
            x.withUnsafeScalars { px in
                weight.withUnsafeScalars { pw in
                    bias.withUnsafeScalars { pb in
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
