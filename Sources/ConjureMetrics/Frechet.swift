import CBLAS
import Foundation

/// The Fréchet distance between the Gaussians fitted to two feature sets, with its context.
public struct FrechetResult: Sendable, Codable, Equatable {
    /// The distance, in squared feature units; never negative.
    public var value: Double
    /// Number of real (reference) samples.
    public var realCount: Int
    /// Number of generated samples.
    public var fakeCount: Int
    /// Feature dimension `D`.
    public var dimension: Int
    /// Caveats, for example a singular covariance when `N < D`.
    public var warnings: [String]
}

extension Metrics {
    /// The Fréchet distance between two Gaussians `N(mu1, S1)` and `N(mu2, S2)` (the squared
    /// 2-Wasserstein distance; FID of Heusel et al. 2017, "GANs Trained by a Two Time-Scale
    /// Update Rule Converge to a Local Nash Equilibrium"):
    ///
    ///     d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1^{1/2} S2 S1^{1/2})^{1/2} )
    ///
    /// The trace term is computed without a general (complex) matrix square root:
    /// `S1^{1/2}` comes from a symmetric eigendecomposition of `S1` (LAPACK `dsyevd`, negative
    /// eigenvalues clipped to 0); the matrix `S1^{1/2} S2 S1^{1/2}` is symmetric positive
    /// semi-definite, so its eigenvalues (`dsyevd` again, clipped to >= 0) have real square
    /// roots whose sum is the trace. This equals `tr(sqrtm(S1 S2))` of pytorch-fid/scipy but
    /// stays real for singular or ill-conditioned covariances.
    ///
    /// The result is never negative: values below `max(1e-6, 1e-10 * (tr(S1) + tr(S2)))` in
    /// absolute value, and any negative rounding residue, are reported as exactly 0 (the
    /// relative part only matters for features with traces above 1e4).
    ///
    /// - Parameters: `a`, `b`: statistics of the same dimension `D`.
    /// - Returns: the distance, `>= 0`.
    /// - Throws: ``MetricError`` when the dimensions differ, `D == 0`, a value is not finite,
    ///   or LAPACK fails.
    public static func frechetDistance(_ a: GaussianStats, _ b: GaussianStats) throws -> Double {
        let metric = "FID"
        let d = a.dimension
        guard d > 0 else { throw MetricError(metric: metric, problem: "statistics have dimension 0") }
        guard b.dimension == d else {
            throw MetricError(metric: metric, problem: "statistics have different dimensions: D = \(d) and D = \(b.dimension)",
                              hint: "use the same feature extractor for both sets")
        }
        guard a.covariance.count == d * d, b.covariance.count == d * d else {
            throw MetricError(metric: metric, problem: "covariance sizes \(a.covariance.count) and \(b.covariance.count) do not match D * D = \(d * d)")
        }
        guard (a.mean + b.mean + a.covariance + b.covariance).allSatisfy({ $0.isFinite }) else {
            throw MetricError(metric: metric, problem: "statistics hold non-finite values")
        }

        var meanTerm = 0.0
        for j in 0..<d { let t = a.mean[j] - b.mean[j]; meanTerm += t * t }
        var trA = 0.0, trB = 0.0
        for j in 0..<d { trA += a.covariance[j * d + j]; trB += b.covariance[j * d + j] }

        // S1^{1/2} = V diag(sqrt(max(l, 0))) Vᵀ = Wᵀ W with W = diag(l^{1/4}) (rows = eigenvectors).
        var vectors = a.covariance
        symmetrize(&vectors, d)
        let lambda = try symmetricEigen(&vectors, n: d, vectors: true, metric: metric)
        for i in 0..<d {
            let s = max(lambda[i], 0).squareRoot().squareRoot()
            for j in 0..<d { vectors[i * d + j] *= s }
        }
        var root = [Double](repeating: 0, count: d * d)
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, blasint(d), blasint(d), blasint(d),
                    1.0, vectors, blasint(d), vectors, blasint(d), 0.0, &root, blasint(d))
        symmetrize(&root, d)

        // M = S1^{1/2} S2 S1^{1/2} (symmetric PSD).
        var s2 = b.covariance
        symmetrize(&s2, d)
        var t = [Double](repeating: 0, count: d * d)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(d), blasint(d), blasint(d),
                    1.0, root, blasint(d), s2, blasint(d), 0.0, &t, blasint(d))
        var m = [Double](repeating: 0, count: d * d)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, blasint(d), blasint(d), blasint(d),
                    1.0, t, blasint(d), root, blasint(d), 0.0, &m, blasint(d))
        symmetrize(&m, d)
        let mu = try symmetricEigen(&m, n: d, vectors: false, metric: metric)
        var traceRoot = 0.0
        for v in mu { traceRoot += max(v, 0).squareRoot() }

        let value = meanTerm + trA + trB - 2 * traceRoot
        let tolerance = max(1e-6, 1e-10 * (abs(trA) + abs(trB)))
        if value < tolerance { return 0 }  // |x| below tolerance, or a negative rounding residue
        return value
    }

    /// FID between two feature sets: the ``frechetDistance(_:_:)`` of the Gaussians fitted by
    /// ``GaussianStats/init(features:metric:name:)`` (means and `N - 1` covariances in Double).
    ///
    /// - Parameters:
    ///   - real: reference features, shape `[N, D]`.
    ///   - fake: generated-sample features, shape `[M, D]`.
    /// - Returns: the distance with both counts and any warnings (`N < D` or `M < D`).
    /// - Throws: ``MetricError`` for `N < 2` or `M < 2`, different `D`, a wrong rank, or
    ///   non-finite values.
    public static func fid(real: Tensor, fake: Tensor) throws -> FrechetResult {
        let sr = try GaussianStats(features: real, metric: "FID", name: "real features")
        let sf = try GaussianStats(features: fake, metric: "FID", name: "fake features")
        let value = try frechetDistance(sr, sf)
        let warnings = sr.warnings.map { "real: " + $0 } + sf.warnings.map { "fake: " + $0 }
        return FrechetResult(value: value, realCount: sr.count, fakeCount: sf.count, dimension: sr.dimension, warnings: warnings)
    }
}
