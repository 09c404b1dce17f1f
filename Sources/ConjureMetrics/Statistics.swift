import CBLAS
import Foundation

/// Evaluation metrics for generative models: Fréchet distance (FID), kernel distance (KID),
/// improved precision/recall, density/coverage, the classifier (Inception) score and mode
/// coverage. Every function documents its formula, the shapes it takes and the paper it
/// follows; all arithmetic that decides a value is done in Double.
///
/// Inputs are user data (feature files, generated samples), so bad shapes, too few samples and
/// non-finite values throw ``MetricError`` rather than trap.
public enum Metrics {}

/// A metric could not be computed from its inputs: wrong shapes, too few samples, non-finite
/// values, or a failed linear-algebra routine.
///
/// The description names the metric and the problem, e.g.
/// `"FID: need at least 2 samples to estimate a covariance, got 1 (real features)"`.
public struct MetricError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// The metric, e.g. `"FID"`, `"KID"`, `"precision/recall"`.
    public var metric: String
    /// What is wrong with the input.
    public var problem: String
    /// How to fix it, when there is something to say.
    public var hint: String?

    /// An error for `metric` with `problem` and an optional `hint`.
    public init(metric: String, problem: String, hint: String? = nil) {
        self.metric = metric
        self.problem = problem
        self.hint = hint
    }

    /// `METRIC: PROBLEM; HINT`, the hint only when present.
    public var description: String { "\(metric): \(problem)" + (hint.map { "; \($0)" } ?? "") }
    /// The ``description`` (for `localizedDescription`).
    public var errorDescription: String? { description }
}

// MARK: - Gaussian statistics

/// The mean and covariance of a set of feature vectors: the sufficient statistics of the
/// Gaussian fitted for the Fréchet distance (``Metrics/frechetDistance(_:_:)``).
///
/// Statistics computed once for a reference set can be stored (`Codable`) and compared with
/// many sample sets, as pytorch-fid does with its `.npz` files.
public struct GaussianStats: Sendable, Codable, Equatable {
    /// The mean vector, length `D`.
    public var mean: [Double]
    /// The covariance matrix, `D * D` values in row-major order, normalised by `N - 1`.
    public var covariance: [Double]
    /// The number of samples `N` the statistics were estimated from.
    public var count: Int
    /// Caveats about the estimate (for example a singular covariance when `N < D`).
    public var warnings: [String]

    /// The feature dimension `D`.
    public var dimension: Int { mean.count }

    /// Statistics from known values (for example a reference set's stored statistics).
    ///
    /// A warning is added when `count < D` (the covariance is then singular).
    /// - Precondition: `covariance.count == mean.count * mean.count`.
    public init(mean: [Double], covariance: [Double], count: Int, warnings: [String] = []) {
        precondition(covariance.count == mean.count * mean.count,
                     "GaussianStats: covariance holds \(covariance.count) values, expected D * D = \(mean.count * mean.count) for D = \(mean.count)")
        self.mean = mean
        self.covariance = covariance
        self.count = count
        var w = warnings
        if let s = GaussianStats.singularWarning(count: count, dimension: mean.count), !w.contains(s) { w.append(s) }
        self.warnings = w
    }

    /// Estimates the mean and the unbiased covariance of a set of feature vectors in Double:
    ///
    ///     mu = (1/N) sum_i x_i,   Sigma = (1/(N-1)) sum_i (x_i - mu)(x_i - mu)^T
    ///
    /// Two passes (mean, then centred cross-products with `cblas_dsyrk`), in row blocks so the
    /// Double copy never exceeds a few tens of MB.
    ///
    /// - Parameter features: shape `[N, D]`, finite values.
    /// - Throws: ``MetricError`` when the tensor is not 2-D, `D == 0`, `N < 2`, or a value is
    ///   not finite. `N < D` is allowed but adds a warning (the covariance is singular and FID
    ///   biased).
    public init(features: Tensor, metric: String = "FID", name: String = "features") throws {
        let (n, d) = try checkFeatures(features, metric: metric, name: name, minRows: 2, purpose: "to estimate a covariance")
        var mean = [Double](repeating: 0, count: d)
        features.withUnsafeScalars { x in
            for i in 0..<n {
                let row = i * d
                for j in 0..<d { mean[j] += Double(x[row + j]) }
            }
        }
        let invN = 1.0 / Double(n)
        for j in 0..<d { mean[j] *= invN }

        var cov = [Double](repeating: 0, count: d * d)
        let blockRows = max(1, min(n, (1 << 21) / d))
        var block = [Double](repeating: 0, count: blockRows * d)
        features.withUnsafeScalars { x in
            var r0 = 0
            while r0 < n {
                let rows = min(blockRows, n - r0)
                for i in 0..<rows {
                    let src = (r0 + i) * d, dst = i * d
                    for j in 0..<d { block[dst + j] = Double(x[src + j]) - mean[j] }
                }
                // cov (upper) += blockᵀ block / (N - 1)
                cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(d), blasint(rows),
                            1.0 / Double(n - 1), block, blasint(d), 1.0, &cov, blasint(d))
                r0 += rows
            }
        }
        mirrorUpper(&cov, d)
        self.init(mean: mean, covariance: cov, count: n)
    }

    static func singularWarning(count: Int, dimension: Int) -> String? {
        if count < dimension { return "covariance is singular: N = \(count) < D = \(dimension); FID is biased, use more samples" }
        if count == dimension { return "covariance is singular: N = D = \(count) (N - 1 < D); FID is biased, use more samples" }
        return nil
    }
}

/// Accumulates ``GaussianStats`` over batches (for example features of generated samples
/// produced a batch at a time), in Double.
///
/// Sums are taken about a shift (the first batch's mean), which keeps the one-pass formula
/// `Sigma = (S - N m m^T) / (N - 1)` accurate when the features have a large common offset.
public struct GaussianStatsAccumulator: Sendable {
    /// The feature dimension, fixed by the first batch.
    public private(set) var dimension: Int?
    /// The number of rows added so far.
    public private(set) var count = 0
    private var shift: [Double] = []
    private var sum: [Double] = []
    private var crossProducts: [Double] = []  // upper triangle valid
    private let metric: String

    /// An empty accumulator; `metric` names the metric in its errors (default `"FID"`).
    public init(metric: String = "FID") { self.metric = metric }

    /// Adds a batch of feature vectors.
    ///
    /// - Parameter batch: shape `[B, D]` with the same `D` for every batch; `B` may be 0.
    /// - Throws: ``MetricError`` for a wrong rank, a changed `D`, or non-finite values.
    public mutating func add(_ batch: Tensor) throws {
        guard batch.rank == 2 else {
            throw MetricError(metric: metric, problem: "expected a batch of features of shape [B, D], got \(batch.shape)")
        }
        let b = batch.shape[0], d = batch.shape[1]
        if let dim = dimension, dim != d {
            throw MetricError(metric: metric, problem: "batch has D = \(d) features, earlier batches had D = \(dim)")
        }
        if b == 0 { return }
        _ = try checkFeatures(batch, metric: metric, name: "batch", minRows: 1, purpose: "")
        if dimension == nil {
            dimension = d
            shift = [Double](repeating: 0, count: d)
            batch.withUnsafeScalars { x in
                for i in 0..<b { for j in 0..<d { shift[j] += Double(x[i * d + j]) } }
            }
            for j in 0..<d { shift[j] /= Double(b) }
            sum = [Double](repeating: 0, count: d)
            crossProducts = [Double](repeating: 0, count: d * d)
        }
        var block = [Double](repeating: 0, count: b * d)
        batch.withUnsafeScalars { x in
            for i in 0..<b {
                for j in 0..<d {
                    let v = Double(x[i * d + j]) - shift[j]
                    block[i * d + j] = v
                    sum[j] += v
                }
            }
        }
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, blasint(d), blasint(b),
                    1.0, block, blasint(d), 1.0, &crossProducts, blasint(d))
        count += b
    }

    /// The statistics of all rows added.
    ///
    /// - Throws: ``MetricError`` when fewer than 2 rows were added.
    public func finalize() throws -> GaussianStats {
        guard let d = dimension, count >= 2 else {
            throw MetricError(metric: metric, problem: "need at least 2 samples to estimate a covariance, got \(count)")
        }
        let n = Double(count)
        let m = sum.map { $0 / n }
        var cov = crossProducts
        for i in 0..<d {
            for j in i..<d { cov[i * d + j] = (cov[i * d + j] - n * m[i] * m[j]) / (n - 1) }
        }
        mirrorUpper(&cov, d)
        let mean = (0..<d).map { shift[$0] + m[$0] }
        return GaussianStats(mean: mean, covariance: cov, count: count)
    }
}

// MARK: - Shared helpers

/// Checks a feature tensor `[N, D]`: rank 2, `D > 0`, `N >= minRows`, all values finite.
/// Returns `(N, D)`.
func checkFeatures(_ x: Tensor, metric: String, name: String, minRows: Int, purpose: String) throws -> (Int, Int) {
    guard x.rank == 2 else {
        throw MetricError(metric: metric, problem: "expected \(name) of shape [N, D], got \(x.shape)",
                          hint: x.rank > 2 ? "flatten images to [N, C*H*W] or extract classifier features first" : nil)
    }
    let n = x.shape[0], d = x.shape[1]
    guard d > 0 else { throw MetricError(metric: metric, problem: "\(name) have D = 0 features (shape \(x.shape))") }
    guard n >= minRows else {
        throw MetricError(metric: metric, problem: "need at least \(minRows) samples\(purpose.isEmpty ? "" : " " + purpose), got \(n) (\(name))")
    }
    let bad: Int? = x.withUnsafeScalars { p in
        for i in 0..<p.count where !p[i].isFinite { return i }
        return nil
    }
    if let i = bad {
        throw MetricError(metric: metric, problem: "\(name) hold a non-finite value (\(x.scalars[i])) at row \(i / d), column \(i % d)",
                          hint: "drop diverged samples or check the feature extractor")
    }
    return (n, d)
}

/// Copies the upper triangle of a row-major `d x d` matrix into the lower one.
func mirrorUpper(_ a: inout [Double], _ d: Int) {
    for i in 0..<d { for j in 0..<i { a[i * d + j] = a[j * d + i] } }
}

/// Replaces a row-major `d x d` matrix by its symmetric part `(A + Aᵀ) / 2`.
func symmetrize(_ a: inout [Double], _ d: Int) {
    for i in 0..<d {
        for j in (i + 1)..<d {
            let v = 0.5 * (a[i * d + j] + a[j * d + i])
            a[i * d + j] = v
            a[j * d + i] = v
        }
    }
}

/// Eigenvalues (ascending) of a symmetric `n x n` matrix with LAPACK `dsyevd`. With
/// `vectors`, `a` is overwritten by the eigenvectors: in row-major memory, row `i` is the unit
/// eigenvector of eigenvalue `i` (LAPACK returns them as columns of a column-major matrix).
func symmetricEigen(_ a: inout [Double], n: Int, vectors: Bool, metric: String) throws -> [Double] {
    precondition(a.count == n * n, "symmetricEigen: \(a.count) values for n = \(n)")
    if n == 0 { return [] }
    var jobz: CChar = vectors ? 86 : 78  // 'V' : 'N'
    var uplo: CChar = 85                 // 'U' (row-major lower = column-major upper; symmetric anyway)
    var n32 = Int32(n), lda = Int32(n), info: Int32 = 0
    var w = [Double](repeating: 0, count: n)
    var workQuery = 0.0
    var iworkQuery: Int32 = 0
    var lwork: Int32 = -1, liwork: Int32 = -1
    dsyevd_(&jobz, &uplo, &n32, &a, &lda, &w, &workQuery, &lwork, &iworkQuery, &liwork, &info)
    guard info == 0 else {
        throw MetricError(metric: metric, problem: "LAPACK dsyevd workspace query failed (info = \(info))")
    }
    lwork = Int32(max(1, Int(workQuery.rounded(.up))))
    liwork = max(1, iworkQuery)
    var work = [Double](repeating: 0, count: Int(lwork))
    var iwork = [Int32](repeating: 0, count: Int(liwork))
    dsyevd_(&jobz, &uplo, &n32, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
    guard info == 0 else {
        throw MetricError(metric: metric, problem: "LAPACK dsyevd did not converge for a \(n) x \(n) covariance (info = \(info))",
                          hint: "check the features for huge or degenerate values")
    }
    return w
}

/// The rows of a Float32 `[N, D]` buffer, selected by `rows` (all when nil), as Double.
func doubleRows(_ x: Tensor, rows: [Int]? = nil) -> [Double] {
    let d = x.shape[1]
    let idx = rows ?? Array(0..<x.shape[0])
    var out = [Double](repeating: 0, count: idx.count * d)
    x.withUnsafeScalars { p in
        for (r, i) in idx.enumerated() {
            let src = i * d, dst = r * d
            for j in 0..<d { out[dst + j] = Double(p[src + j]) }
        }
    }
    return out
}

/// Calls `body(rowStart, rowCount, colStart, colCount, gram)` for consecutive row blocks of the
/// Gram matrix `X Yᵀ` computed with `cblas_dgemm`, where `X` is `[n, d]` and `Y` is `[m, d]`
/// (row-major Double). `gram` is `rowCount x colCount`, row-major.
///
/// With `upperFrom == true` (X and Y the same set), block `[r0, r1)` only covers columns
/// `[r0, m)`, i.e. the upper trapezoid, which roughly halves the work for symmetric sums.
/// Blocks hold at most about 4M Doubles (32 MB).
func forEachGramBlock(x: [Double], n: Int, y: [Double], m: Int, d: Int, upperOnly: Bool,
                      _ body: (_ r0: Int, _ rows: Int, _ c0: Int, _ cols: Int, _ gram: UnsafeBufferPointer<Double>) -> Void) {
    if n == 0 || m == 0 { return }
    let budget = 1 << 22
    // For the upper trapezoid, use at least ~8 blocks so that skipping the lower part pays off.
    let blockRows = max(1, min(n, budget / m, upperOnly ? max(64, (n + 7) / 8) : n))
    var buffer = [Double](repeating: 0, count: blockRows * m)
    x.withUnsafeBufferPointer { px in
        y.withUnsafeBufferPointer { py in
            buffer.withUnsafeMutableBufferPointer { pc in
                var r0 = 0
                while r0 < n {
                    let rows = min(blockRows, n - r0)
                    let c0 = upperOnly ? r0 : 0
                    let cols = m - c0
                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blasint(rows), blasint(cols), blasint(d),
                                1.0, px.baseAddress! + r0 * d, blasint(d), py.baseAddress! + c0 * d, blasint(d),
                                0.0, pc.baseAddress!, blasint(cols))
                    body(r0, rows, c0, cols, UnsafeBufferPointer(start: pc.baseAddress!, count: rows * cols))
                    r0 += rows
                }
            }
        }
    }
}

/// Squared Euclidean norms of the rows of a row-major `[n, d]` Double matrix.
func rowSquaredNorms(_ x: [Double], n: Int, d: Int) -> [Double] {
    var out = [Double](repeating: 0, count: n)
    x.withUnsafeBufferPointer { p in
        for i in 0..<n {
            var s = 0.0
            let base = i * d
            for j in 0..<d { s += p[base + j] * p[base + j] }
            out[i] = s
        }
    }
    return out
}

/// Mean and population standard deviation (ddof = 0, as numpy's `np.std`).
func meanAndStd(_ v: [Double]) -> (Double, Double) {
    guard !v.isEmpty else { return (.nan, .nan) }
    let mean = v.reduce(0, +) / Double(v.count)
    let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)
    return (mean, variance.squareRoot())
}
