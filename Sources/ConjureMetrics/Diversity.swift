import Foundation

/// Sample diversity next to the real data's: a collapse detector (all samples alike, or a few
/// kinds repeated).
public struct Diversity: Sendable, Codable, Equatable {
    /// Mean pairwise Euclidean distance between generated samples (features).
    public var samples: Double
    /// Mean pairwise Euclidean distance between real samples (features).
    public var reference: Double
    /// `samples / reference` (1 when the sets are equally spread; 0 for identical samples).
    public var ratio: Double
    /// Samples and reference pairs measured (the first `count` rows of each).
    public var count: Int
    /// True when ``ratio`` is under ``collapseRatio``.
    public var collapsed: Bool

    /// Diversity ratio under which the samples are flagged as collapsed. Half the real spread
    /// is far outside what sampling noise gives for a few hundred samples (the ratio of two
    /// mean distances of independent draws of one distribution is 1 ± a few percent).
    public static let collapseRatio = 0.5
}

extension Metrics {
    /// Mean pairwise Euclidean distance among the first `maxCount` rows of each set, and their
    /// ratio (a mode-collapse check used by `evaluate`; the "diversity" of Salimans et al. 2016's
    /// discussion of collapse, measured in the feature space of the other metrics).
    ///
    /// - Shapes: `real` `[N, D]`, `fake` `[M, D]`, same `D`, N and M at least 2.
    /// - Throws: ``MetricError`` for sets of different widths or fewer than 2 rows.
    public static func diversity(real: Tensor, fake: Tensor, maxCount: Int = 500) throws -> Diversity {
        guard real.rank == 2, fake.rank == 2, real.shape[1] == fake.shape[1] else {
            throw MetricError(metric: "diversity", problem: "needs [N, D] sets of the same D, got \(real.shape) and \(fake.shape)")
        }
        guard real.shape[0] >= 2, fake.shape[0] >= 2 else {
            throw MetricError(metric: "diversity", problem: "needs at least 2 samples in each set, got \(real.shape[0]) and \(fake.shape[0])")
        }
        let n = min(maxCount, real.shape[0], fake.shape[0])
        func spread(_ x: Tensor) -> Double {
            let d = x.shape[1]
            let v = x.scalars
            var total = 0.0
            for i in 0..<n {
                for j in (i + 1)..<n {
                    var s = 0.0
                    for k in 0..<d { let t = Double(v[i * d + k] - v[j * d + k]); s += t * t }
                    total += s.squareRoot()
                }
            }
            return total / Double(n * (n - 1) / 2)
        }
        let a = spread(fake), b = spread(real)
        let ratio = b > 0 ? a / b : (a > 0 ? .infinity : 1)
        return Diversity(samples: a, reference: b, ratio: ratio, count: n, collapsed: ratio < Diversity.collapseRatio)
    }
}
