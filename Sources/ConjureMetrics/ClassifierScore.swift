import Foundation

/// The classifier (Inception) score over one or more splits.
public struct ClassifierScore: Sendable, Codable, Equatable {
    /// Mean of the per-split scores; in [1, K].
    public var mean: Double
    /// Population standard deviation (ddof = 0, as the reference implementation) of the
    /// per-split scores; 0 for one split.
    public var std: Double
    /// The per-split scores.
    public var splitScores: [Double]
    /// Number of samples scored (N).
    public var count: Int
    /// Number of classes K of the classifier (the score's upper bound).
    public var classCount: Int
}

/// How the samples spread over a classifier's classes.
public struct ModeCoverage: Sendable, Codable, Equatable {
    /// Number of samples assigned to each class (argmax of the probabilities, ties to the
    /// lowest index, or the given labels).
    public var histogram: [Int]
    /// Number of classes holding at least `minFraction` of the samples.
    public var classesCovered: Int
    /// The threshold used for ``classesCovered`` (default 0.02).
    public var minFraction: Double
    /// `KL(sample label distribution || reference label distribution)`, in nats (see
    /// ``Metrics/modeCoverage(labels:classCount:reference:minFraction:)`` for the smoothing).
    public var klToReference: Double
    /// Fraction of samples whose top class probability is `>= confidenceThreshold` (nil when
    /// computed from labels).
    public var confidentFraction: Double?
    /// The threshold used for ``confidentFraction``.
    public var confidenceThreshold: Double?
    /// Number of samples counted in ``histogram``.
    public var count: Int
}

extension Metrics {
    /// The classifier score: the Inception Score of Salimans et al. 2016 ("Improved Techniques
    /// for Training GANs") computed with a domain classifier's class probabilities:
    ///
    ///     IS = exp( (1/N) sum_i KL( p(y | x_i) || p(y) ) ),   p(y) = (1/N) sum_i p(y | x_i)
    ///
    /// With `splits > 1` the rows are cut into `splits` consecutive parts
    /// (`[s N / splits, (s + 1) N / splits)`, as the reference code), the score is computed per
    /// part with that part's marginal, and the mean and std of the part scores are returned.
    /// `0 log 0` is taken as 0. Arithmetic in Double; rows are used as given (not renormalised).
    ///
    /// - Parameters:
    ///   - probabilities: shape `[N, K]`, each row non-negative and summing to 1 within 1e-3.
    ///   - splits: `1 <= splits <= N` (default 1).
    /// - Throws: ``MetricError`` for a wrong rank, non-finite or negative values, rows that do
    ///   not sum to 1 (logits passed by mistake), or a bad `splits`.
    public static func classifierScore(probabilities: Tensor, splits: Int = 1) throws -> ClassifierScore {
        let metric = "classifier score"
        let (n, k) = try checkProbabilities(probabilities, metric: metric)
        guard splits >= 1 && splits <= n else {
            throw MetricError(metric: metric, problem: "splits must be in 1...\(n) (the sample count), got \(splits)")
        }
        var scores: [Double] = []
        probabilities.withUnsafeScalars { p in
            for s in 0..<splits {
                let lo = s * n / splits, hi = (s + 1) * n / splits
                var marginal = [Double](repeating: 0, count: k)
                for i in lo..<hi { for c in 0..<k { marginal[c] += Double(p[i * k + c]) } }
                let rows = Double(hi - lo)
                let logMarginal = marginal.map { $0 > 0 ? Foundation.log($0 / rows) : 0 }
                var klSum = 0.0
                for i in lo..<hi {
                    var kl = 0.0
                    for c in 0..<k {
                        let v = Double(p[i * k + c])
                        if v > 0 { kl += v * (Foundation.log(v) - logMarginal[c]) }
                    }
                    klSum += kl
                }
                scores.append(Foundation.exp(klSum / rows))
            }
        }
        let (mean, std) = meanAndStd(scores)
        return ClassifierScore(mean: mean, std: std, splitScores: scores, count: n, classCount: k)
    }

    /// Mode coverage from class probabilities: each sample's label is the argmax of its row
    /// (ties to the lowest index); see ``modeCoverage(labels:classCount:reference:minFraction:)``.
    /// Also reports the fraction of samples whose top probability is `>= confidenceThreshold`
    /// (confident, recognisable samples).
    ///
    /// - Parameters:
    ///   - probabilities: shape `[N, K]`, rows non-negative summing to 1 within 1e-3.
    ///   - reference: the reference label distribution over `K` classes (for example
    ///     ``labelDistribution(labels:classCount:)`` of the held-out labels); nil = uniform.
    ///   - minFraction: a class counts as covered with at least this fraction of samples.
    ///   - confidenceThreshold: in [0, 1] (default 0.9).
    /// - Throws: ``MetricError`` as ``classifierScore(probabilities:splits:)``, or for a
    ///   reference of the wrong length, with negative entries or summing to 0.
    public static func modeCoverage(probabilities: Tensor, reference: [Double]? = nil, minFraction: Double = 0.02,
                                    confidenceThreshold: Double = 0.9) throws -> ModeCoverage {
        let (n, k) = try checkProbabilities(probabilities, metric: "mode coverage")
        var labels = [Int](repeating: 0, count: n)
        var confident = 0
        probabilities.withUnsafeScalars { p in
            for i in 0..<n {
                var best = 0
                for c in 1..<k where p[i * k + c] > p[i * k + best] { best = c }
                labels[i] = best
                if Double(p[i * k + best]) >= confidenceThreshold { confident += 1 }
            }
        }
        var result = try modeCoverage(labels: labels, classCount: k, reference: reference, minFraction: minFraction)
        result.confidentFraction = Double(confident) / Double(n)
        result.confidenceThreshold = confidenceThreshold
        return result
    }

    /// Mode coverage from predicted labels: the label histogram, the number of classes holding
    /// at least `minFraction` (default 2%) of the samples, and
    ///
    ///     KL(p || q) = sum_{c: p_c > 0} p_c log(p_c / q~_c)     (nats)
    ///
    /// where `p` is the samples' label distribution and `q` the reference distribution.
    /// Smoothing: classes the samples never hit contribute 0 (`0 log 0 = 0`), and the reference
    /// is smoothed as `q~_c = (q_c + 1e-10) / (1 + K 1e-10)` so a class missing from the
    /// reference gives a large finite value (about 23 nats per unit mass) instead of infinity.
    ///
    /// - Parameters:
    ///   - labels: `N >= 1` labels in `0..<classCount`.
    ///   - classCount: `K >= 1`.
    ///   - reference: `K` non-negative weights (normalised here); nil = uniform.
    /// - Throws: ``MetricError`` for an empty sample, a label out of range, or a bad reference.
    public static func modeCoverage(labels: [Int], classCount: Int, reference: [Double]? = nil,
                                    minFraction: Double = 0.02) throws -> ModeCoverage {
        let metric = "mode coverage"
        guard classCount >= 1 else { throw MetricError(metric: metric, problem: "class count must be >= 1, got \(classCount)") }
        guard !labels.isEmpty else { throw MetricError(metric: metric, problem: "no samples") }
        var histogram = [Int](repeating: 0, count: classCount)
        for (i, l) in labels.enumerated() {
            guard l >= 0 && l < classCount else {
                throw MetricError(metric: metric, problem: "label \(l) of sample \(i) is outside 0..<\(classCount)")
            }
            histogram[l] += 1
        }
        let q = try normalisedReference(reference, classCount: classCount, metric: metric)
        let n = Double(labels.count)
        let p = histogram.map { Double($0) / n }
        let covered = histogram.filter { Double($0) >= minFraction * n }.count
        return ModeCoverage(histogram: histogram, classesCovered: covered, minFraction: minFraction,
                            klToReference: smoothedKL(p, q), confidentFraction: nil, confidenceThreshold: nil,
                            count: labels.count)
    }

    /// The empirical label distribution `count_c / N` of `labels` over `classCount` classes
    /// (to build the `reference` of ``modeCoverage(labels:classCount:reference:minFraction:)``
    /// from held-out labels).
    /// - Precondition: every label is in `0..<classCount`.
    public static func labelDistribution(labels: [Int], classCount: Int) -> [Double] {
        var h = [Double](repeating: 0, count: classCount)
        for l in labels {
            precondition(l >= 0 && l < classCount, "labelDistribution: label \(l) outside 0..<\(classCount)")
            h[l] += 1
        }
        return labels.isEmpty ? h : h.map { $0 / Double(labels.count) }
    }

    /// `sum_{p_c > 0} p_c log(p_c / q~_c)` with `q~ = (q + 1e-10) / (1 + K 1e-10)`.
    static func smoothedKL(_ p: [Double], _ q: [Double]) -> Double {
        let eps = 1e-10
        let z = 1 + Double(q.count) * eps
        var kl = 0.0
        for (pc, qc) in zip(p, q) where pc > 0 { kl += pc * Foundation.log(pc / ((qc + eps) / z)) }
        return max(kl, 0)
    }

    static func normalisedReference(_ reference: [Double]?, classCount: Int, metric: String) throws -> [Double] {
        guard let r = reference else { return [Double](repeating: 1 / Double(classCount), count: classCount) }
        guard r.count == classCount else {
            throw MetricError(metric: metric, problem: "reference distribution has \(r.count) classes, the samples have \(classCount)")
        }
        guard r.allSatisfy({ $0.isFinite && $0 >= 0 }) else {
            throw MetricError(metric: metric, problem: "reference distribution holds negative or non-finite weights")
        }
        let total = r.reduce(0, +)
        guard total > 0 else { throw MetricError(metric: metric, problem: "reference distribution sums to 0") }
        return r.map { $0 / total }
    }

    /// Checks a probability matrix `[N, K]` (N, K >= 1; entries finite, >= 0; rows sum to 1
    /// within 1e-3). Returns `(N, K)`.
    static func checkProbabilities(_ x: Tensor, metric: String) throws -> (Int, Int) {
        let (n, k) = try checkFeatures(x, metric: metric, name: "probabilities", minRows: 1, purpose: "")
        let problem: String? = x.withUnsafeScalars { p in
            for i in 0..<n {
                var s = 0.0
                for c in 0..<k {
                    let v = p[i * k + c]
                    if v < 0 { return "probability \(v) < 0 at row \(i), column \(c)" }
                    s += Double(v)
                }
                if abs(s - 1) > 1e-3 { return "row \(i) sums to \(s), not 1" }
            }
            return nil
        }
        if let problem {
            throw MetricError(metric: metric, problem: problem, hint: "pass softmax probabilities, not logits")
        }
        return (n, k)
    }
}
