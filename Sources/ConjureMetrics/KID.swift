import Foundation

/// Kernel Inception Distance over random subsets.
public struct KIDResult: Sendable, Codable, Equatable {
    /// Mean of the per-subset unbiased MMD² estimates.
    public var mean: Double
    /// Population standard deviation (ddof = 0, as torch-fidelity and clean-fid) of the
    /// per-subset estimates; 0 for one subset.
    public var std: Double
    /// Number of subsets drawn.
    public var subsets: Int
    /// Real samples per subset (the requested size clamped to the real count).
    public var realSubsetSize: Int
    /// Generated samples per subset (the requested size clamped to the generated count).
    public var fakeSubsetSize: Int
    /// Number of real / generated samples available.
    public var realCount: Int
    /// Number of generated samples available.
    public var fakeCount: Int
    /// The seed of the subset draws.
    public var seed: UInt64
    /// Caveats, for example a clamped subset size.
    public var warnings: [String]
}

extension Metrics {
    /// The polynomial kernel of KID: `k(a, b) = (a·b / D + 1)^3`.
    @inline(__always)
    static func kidKernel(_ dot: Double, _ invD: Double) -> Double {
        let t = dot * invD + 1
        return t * t * t
    }

    /// The unbiased estimate of the squared maximum mean discrepancy with the cubic polynomial
    /// kernel `k(a, b) = (a·b / D + 1)^3` (Bińkowski et al. 2018, "Demystifying MMD GANs";
    /// the KID kernel):
    ///
    ///     MMD²_u = 1/(N(N-1)) sum_{i != j} k(x_i, x_j) + 1/(M(M-1)) sum_{i != j} k(y_i, y_j)
    ///              - 2/(N M) sum_{i, j} k(x_i, y_j)
    ///
    /// Gram matrices come from `cblas_dgemm` in row blocks (Double, the within-set ones only
    /// over the upper triangle), so memory stays bounded for large `N`, `M`. The estimate can
    /// be slightly negative when the two distributions are close.
    ///
    /// - Parameters:
    ///   - x: shape `[N, D]`, `N >= 2`.
    ///   - y: shape `[M, D]`, `M >= 2`, same `D`.
    /// - Throws: ``MetricError`` for a wrong rank, fewer than 2 rows, different `D`, or
    ///   non-finite values.
    public static func mmd2Unbiased(x: Tensor, y: Tensor) throws -> Double {
        let (n, d) = try checkFeatures(x, metric: "KID", name: "x features", minRows: 2, purpose: "for the unbiased MMD²")
        let (m, dy) = try checkFeatures(y, metric: "KID", name: "y features", minRows: 2, purpose: "for the unbiased MMD²")
        guard d == dy else {
            throw MetricError(metric: "KID", problem: "feature dimensions differ: D = \(d) and D = \(dy)")
        }
        return mmd2Unbiased(doubleRows(x), n: n, doubleRows(y), m: m, d: d)
    }

    /// MMD²_u of row-major Double matrices `[n, d]` and `[m, d]` (n, m >= 2).
    static func mmd2Unbiased(_ x: [Double], n: Int, _ y: [Double], m: Int, d: Int) -> Double {
        let invD = 1.0 / Double(d)
        func offDiagonalSum(_ a: [Double], _ count: Int) -> Double {
            var total = 0.0
            forEachGramBlock(x: a, n: count, y: a, m: count, d: d, upperOnly: true) { r0, rows, c0, cols, g in
                for r in 0..<rows {
                    let i = r0 + r
                    var s = 0.0
                    let base = r * cols
                    for c in (i + 1 - c0)..<cols { s += kidKernel(g[base + c], invD) }
                    total += s
                }
            }
            return 2 * total  // i < j counted once; the sum over i != j is twice that
        }
        let sxx = offDiagonalSum(x, n)
        let syy = offDiagonalSum(y, m)
        var sxy = 0.0
        forEachGramBlock(x: x, n: n, y: y, m: m, d: d, upperOnly: false) { _, rows, _, cols, g in
            for r in 0..<rows {
                var s = 0.0
                let base = r * cols
                for c in 0..<cols { s += kidKernel(g[base + c], invD) }
                sxy += s
            }
        }
        let dn = Double(n), dm = Double(m)
        return sxx / (dn * (dn - 1)) + syy / (dm * (dm - 1)) - 2 * sxy / (dn * dm)
    }

    /// Kernel Inception Distance (Bińkowski et al. 2018): the mean ± std of
    /// ``mmd2Unbiased(x:y:)`` over `subsets` random subsets, each drawn without replacement
    /// from the real and the generated features (as torch-fidelity and clean-fid do).
    ///
    /// The subset size is clamped per side: `min(subsetSize, N)` real and
    /// `min(subsetSize, M)` generated samples, with a warning when clamping happens. So with
    /// `subsets = 1` and `subsetSize >= max(N, M)` all samples are used and the result equals
    /// ``mmd2Unbiased(x:y:)`` of the whole sets.
    ///
    /// - Parameters:
    ///   - real: shape `[N, D]`, `N >= 2`.
    ///   - fake: shape `[M, D]`, `M >= 2`.
    ///   - subsets: number of subsets, `>= 1` (default 100).
    ///   - subsetSize: samples per subset and side, `>= 2` (default 1000).
    ///   - seed: seeds the subset draws (`RandomGenerator(seed:)`, one permutation per side
    ///     and subset).
    /// - Returns: mean, std (ddof = 0), the subset sizes used and warnings.
    /// - Throws: ``MetricError`` for bad shapes, fewer than 2 samples on a side, non-finite
    ///   values, `subsets < 1` or `subsetSize < 2`.
    public static func kid(real: Tensor, fake: Tensor, subsets: Int = 100, subsetSize: Int = 1000,
                           seed: UInt64 = 0) throws -> KIDResult {
        guard subsets >= 1 else { throw MetricError(metric: "KID", problem: "subsets must be >= 1, got \(subsets)", hint: "--kid-subsets") }
        guard subsetSize >= 2 else {
            throw MetricError(metric: "KID", problem: "subset size must be >= 2 for the unbiased MMD², got \(subsetSize)", hint: "--kid-subset-size")
        }
        let (n, d) = try checkFeatures(real, metric: "KID", name: "real features", minRows: 2, purpose: "for the unbiased MMD²")
        let (m, dy) = try checkFeatures(fake, metric: "KID", name: "fake features", minRows: 2, purpose: "for the unbiased MMD²")
        guard d == dy else {
            throw MetricError(metric: "KID", problem: "feature dimensions differ: real D = \(d), fake D = \(dy)",
                              hint: "use the same feature extractor for both sets")
        }
        let sr = min(subsetSize, n), sf = min(subsetSize, m)
        var warnings: [String] = []
        if sr < subsetSize || sf < subsetSize {
            warnings.append("KID subset size \(subsetSize) clamped to \(sr) real / \(sf) fake samples (N real = \(n), N fake = \(m))")
        }
        if subsets > 1 && (sr == n || sf == m) {
            warnings.append("every subset holds all \(sr == n ? "real" : "fake") samples; the spread over subsets understates the estimator's variance")
        }
        var rng = RandomGenerator(seed: seed)
        let allReal = sr == n ? doubleRows(real) : nil
        let allFake = sf == m ? doubleRows(fake) : nil
        var values: [Double] = []
        values.reserveCapacity(subsets)
        for _ in 0..<subsets {
            let x = allReal ?? doubleRows(real, rows: Array(rng.permutation(n).prefix(sr)))
            let y = allFake ?? doubleRows(fake, rows: Array(rng.permutation(m).prefix(sf)))
            values.append(mmd2Unbiased(x, n: sr, y, m: sf, d: d))
        }
        let (mean, std) = meanAndStd(values)
        return KIDResult(mean: mean, std: std, subsets: subsets, realSubsetSize: sr, fakeSubsetSize: sf,
                         realCount: n, fakeCount: m, seed: seed, warnings: warnings)
    }
}
