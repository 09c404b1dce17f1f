import Foundation

/// Improved precision and recall of a generated set against a real one.
public struct PrecisionRecall: Sendable, Codable, Equatable {
    /// Fraction of generated samples inside the real manifold, in [0, 1].
    public var precision: Double
    /// Fraction of real samples inside the generated manifold, in [0, 1].
    public var recall: Double
    /// The neighbourhood size `k`.
    public var k: Int
    /// Number of real samples (feature rows) compared.
    public var realCount: Int
    /// Number of generated samples (feature rows) compared.
    public var fakeCount: Int
}

/// Density and coverage of a generated set against a real one.
public struct DensityCoverage: Sendable, Codable, Equatable {
    /// Mean number of real neighbourhoods holding each generated sample, divided by `k`;
    /// in [0, N/k], about 1 when the two sets match.
    public var density: Double
    /// Fraction of real neighbourhoods holding at least one generated sample, in [0, 1].
    public var coverage: Double
    /// The neighbourhood size `k`.
    public var k: Int
    /// Number of real samples (feature rows) compared.
    public var realCount: Int
    /// Number of generated samples (feature rows) compared.
    public var fakeCount: Int
}

/// The result of ``Metrics/manifoldMetrics(real:fake:precisionRecallK:densityCoverageK:)``.
public struct ManifoldMetrics: Sendable, Codable, Equatable {
    /// Present when a precision/recall `k` was given.
    public var precisionRecall: PrecisionRecall?
    /// Present when a density/coverage `k` was given.
    public var densityCoverage: DensityCoverage?
}

extension Metrics {
    /// The Euclidean distance from each sample to its `k`-th nearest neighbour within the same
    /// set, the sample itself excluded (by index, so exact duplicates count as neighbours at
    /// distance 0). This is the radius of the sample's hypersphere in the manifold estimates of
    /// Kynkäänniemi et al. 2019 and Naeem et al. 2020.
    ///
    /// Squared distances `|a|² + |b|² - 2 a·b` come from Double Gram blocks (`cblas_dgemm` over
    /// the upper triangle only, each pair updating both points), negative rounding clamped
    /// to 0; memory is `O(N k)` plus one block.
    ///
    /// - Parameters:
    ///   - x: shape `[N, D]`.
    ///   - k: `1 <= k < N`.
    /// - Returns: `N` radii.
    /// - Throws: ``MetricError`` for a wrong rank, non-finite values, or `N <= k`.
    public static func nearestNeighbourRadii(_ x: Tensor, k: Int) throws -> [Double] {
        guard k >= 1 else { throw MetricError(metric: "k-NN radii", problem: "k must be >= 1, got \(k)", hint: "--k") }
        let (n, d) = try checkFeatures(x, metric: "k-NN radii", name: "features", minRows: k + 1, purpose: "(k + 1) for k = \(k) neighbours")
        return kthNeighbourSquaredDistances(doubleRows(x), n: n, d: d, ks: [k])[0].map { $0.squareRoot() }
    }

    /// Squared distance to the `k`-th nearest neighbour (self excluded) for each `k` in `ks`,
    /// computed in one pass. Requires `n > max(ks)`.
    static func kthNeighbourSquaredDistances(_ x: [Double], n: Int, d: Int, ks: [Int]) -> [[Double]] {
        let kMax = ks.max()!
        precondition(n > kMax, "kthNeighbourSquaredDistances: need n > k, got n = \(n), k = \(kMax)")
        let norms = rowSquaredNorms(x, n: n, d: d)
        // best[i * kMax ..< (i + 1) * kMax]: the kMax smallest squared distances of point i, ascending.
        var best = [Double](repeating: .infinity, count: n * kMax)
        best.withUnsafeMutableBufferPointer { b in
            @inline(__always) func offer(_ i: Int, _ v: Double) {
                let base = i * kMax
                if v >= b[base + kMax - 1] { return }
                var p = kMax - 1
                while p > 0 && b[base + p - 1] > v {
                    b[base + p] = b[base + p - 1]
                    p -= 1
                }
                b[base + p] = v
            }
            forEachGramBlock(x: x, n: n, y: x, m: n, d: d, upperOnly: true) { r0, rows, c0, cols, g in
                for r in 0..<rows {
                    let i = r0 + r
                    let ni = norms[i]
                    let base = r * cols
                    for c in (i + 1 - c0)..<cols {
                        let j = c0 + c
                        let v = max(ni + norms[j] - 2 * g[base + c], 0)
                        offer(i, v)
                        offer(j, v)
                    }
                }
            }
        }
        return ks.map { k in (0..<n).map { best[$0 * kMax + k - 1] } }
    }

    /// Improved precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and Recall
    /// Metric for Assessing Generative Models"), Euclidean distance:
    ///
    ///     r_i  = distance from real x_i to its k-th nearest real neighbour (itself excluded)
    ///     precision = (1/M) sum_j 1[ exists i: |y_j - x_i| <= r_i ]
    ///     recall    = (1/N) sum_i 1[ exists j: |x_i - y_j| <= s_j ]   (s_j: the same over fakes)
    ///
    /// Distances come from Double Gram blocks (`cblas_dgemm`), so `N = M = 10 000` needs only a
    /// few tens of MB.
    ///
    /// - Parameters:
    ///   - real: shape `[N, D]`, `N > k`.
    ///   - fake: shape `[M, D]`, `M > k`.
    ///   - k: neighbourhood size (default 3, the paper's choice).
    /// - Throws: ``MetricError`` for bad shapes, different `D`, non-finite values, `k < 1`, or
    ///   a set with `k` or fewer samples.
    public static func precisionRecall(real: Tensor, fake: Tensor, k: Int = 3) throws -> PrecisionRecall {
        try manifoldMetrics(real: real, fake: fake, precisionRecallK: k, densityCoverageK: nil).precisionRecall!
    }

    /// Density and coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
    /// Generative Models"), Euclidean distance, strict `<`:
    ///
    ///     r_i      = distance from real x_i to its k-th nearest real neighbour (itself excluded)
    ///     density  = 1/(k M) sum_j sum_i 1[ |y_j - x_i| < r_i ]
    ///     coverage = (1/N) sum_i 1[ min_j |x_i - y_j| < r_i ]
    ///
    /// - Parameters:
    ///   - real: shape `[N, D]`, `N > k`.
    ///   - fake: shape `[M, D]`, `M >= 1`.
    ///   - k: neighbourhood size (default 5, the paper's choice).
    /// - Throws: as ``precisionRecall(real:fake:k:)``.
    public static func densityCoverage(real: Tensor, fake: Tensor, k: Int = 5) throws -> DensityCoverage {
        try manifoldMetrics(real: real, fake: fake, precisionRecallK: nil, densityCoverageK: k).densityCoverage!
    }

    /// Precision/recall and density/coverage in one pass over the real-to-fake distances (the
    /// expensive part is shared): see ``precisionRecall(real:fake:k:)`` and
    /// ``densityCoverage(real:fake:k:)`` for the definitions. Pass `nil` to skip either pair.
    ///
    /// Cost: one Gram matrix per set (upper triangle) for the radii and one `M x N` cross Gram
    /// matrix, all in row blocks of at most 32 MB.
    ///
    /// - Shapes: `real` `[N, D]`, `fake` `[M, D]`.
    /// - Throws: as ``precisionRecall(real:fake:k:)``.
    public static func manifoldMetrics(real: Tensor, fake: Tensor, precisionRecallK: Int? = 3,
                                       densityCoverageK: Int? = 5) throws -> ManifoldMetrics {
        let metric = densityCoverageK == nil ? "precision/recall" : precisionRecallK == nil ? "density/coverage" : "precision/recall, density/coverage"
        for k in [precisionRecallK, densityCoverageK].compactMap({ $0 }) where k < 1 {
            throw MetricError(metric: metric, problem: "k must be >= 1, got \(k)", hint: "--k")
        }
        let realK = max(precisionRecallK ?? 0, densityCoverageK ?? 0)
        let fakeK = precisionRecallK ?? 0
        let (n, d) = try checkFeatures(real, metric: metric, name: "real features", minRows: realK + 1,
                                       purpose: "(k + 1) for k = \(realK) neighbours")
        let (m, dy) = try checkFeatures(fake, metric: metric, name: "fake features", minRows: max(fakeK + 1, 1),
                                        purpose: fakeK > 0 ? "(k + 1) for k = \(fakeK) neighbours" : "")
        guard d == dy else {
            throw MetricError(metric: metric, problem: "feature dimensions differ: real D = \(d), fake D = \(dy)",
                              hint: "use the same feature extractor for both sets")
        }
        let x = doubleRows(real), y = doubleRows(fake)
        let realKs = [precisionRecallK, densityCoverageK].compactMap { $0 }
        let realRadii = kthNeighbourSquaredDistances(x, n: n, d: d, ks: realKs)
        let rPR: [Double] = precisionRecallK == nil ? [] : realRadii[0]
        let rDC: [Double] = densityCoverageK == nil ? [] : realRadii[realKs.count - 1]
        let sPR: [Double] = precisionRecallK.map { kthNeighbourSquaredDistances(y, n: m, d: d, ks: [$0])[0] } ?? []

        let normsX = rowSquaredNorms(x, n: n, d: d), normsY = rowSquaredNorms(y, n: m, d: d)
        let doPR = precisionRecallK != nil, doDC = densityCoverageK != nil
        var precisionHits = 0
        var densityCount = 0
        var recalled = [Bool](repeating: false, count: n)
        var nearestFake = [Double](repeating: .infinity, count: n)
        let rPRb = doPR ? rPR : [Double](repeating: -1, count: n)   // -1: never inside
        let rDCb = doDC ? rDC : [Double](repeating: -1, count: n)
        recalled.withUnsafeMutableBufferPointer { recalledP in
            nearestFake.withUnsafeMutableBufferPointer { nearestP in
                rPRb.withUnsafeBufferPointer { rP in
                    rDCb.withUnsafeBufferPointer { rD in
                        normsX.withUnsafeBufferPointer { nx in
                            // Rows: generated samples j; columns: all real samples i.
                            forEachGramBlock(x: y, n: m, y: x, m: n, d: d, upperOnly: false) { r0, rows, _, cols, g in
                                for r in 0..<rows {
                                    let j = r0 + r
                                    let nj = normsY[j]
                                    let sj = doPR ? sPR[j] : -1
                                    let base = r * cols
                                    var inside = false
                                    var count = 0
                                    for i in 0..<cols {
                                        let v = max(nj + nx[i] - 2 * g[base + i], 0)
                                        if v <= rP[i] { inside = true }
                                        if v <= sj { recalledP[i] = true }
                                        if v < rD[i] { count += 1 }
                                        if v < nearestP[i] { nearestP[i] = v }
                                    }
                                    if inside { precisionHits += 1 }
                                    densityCount += count
                                }
                            }
                        }
                    }
                }
            }
        }
        let pr = precisionRecallK.map { k in
            PrecisionRecall(precision: Double(precisionHits) / Double(m),
                            recall: Double(recalled.lazy.filter { $0 }.count) / Double(n),
                            k: k, realCount: n, fakeCount: m)
        }
        let dc = densityCoverageK.map { k -> DensityCoverage in
            var covered = 0
            for i in 0..<n where nearestFake[i] < rDC[i] { covered += 1 }
            return DensityCoverage(density: Double(densityCount) / (Double(k) * Double(m)),
                                   coverage: Double(covered) / Double(n), k: k, realCount: n, fakeCount: m)
        }
        return ManifoldMetrics(precisionRecall: pr, densityCoverage: dc)
    }
}
