import Foundation

/// Built-in 2-D synthetic distributions for measuring mode collapse, as defined by VEEGAN
/// (Srivastava et al. 2017) and PacGAN (Lin et al. 2018).
///
/// - `ring8`: 8 Gaussians with means `(cos 2πk/8, sin 2πk/8)`, `k = 0..<8`, on the unit circle,
///   standard deviation 0.01. (Not `np.linspace(0, 2π, 8)`, which repeats angle 0 as 2π and
///   yields only 7 distinct modes.)
/// - `grid25`: 25 Gaussians with means `{-4, -2, 0, 2, 4}²` (ordered `x` major, then `y`),
///   standard deviation 0.05.
/// - `moons`: two interleaved half circles (scikit-learn's `make_moons` shape): upper
///   `(cos t, sin t)`, lower `(1 - cos t, 0.5 - sin t)`, `t ~ U[0, π]`, each half with
///   probability 1/2, plus Gaussian noise of standard deviation 0.05. It has no discrete modes:
///   a sampler only, not evaluated.
public enum Mixture2D: String, CaseIterable, Sendable, Codable {
    /// The three distributions described above.
    case ring8, grid25, moons

    /// The mode centres (empty for `moons`).
    public var modes: [SIMD2<Double>] {
        switch self {
        case .ring8:
            return (0..<8).map { k in
                let a = 2 * Double.pi * Double(k) / 8
                return SIMD2(Foundation.cos(a), Foundation.sin(a))
            }
        case .grid25:
            let v: [Double] = [-4, -2, 0, 2, 4]
            return v.flatMap { x in v.map { y in SIMD2(x, y) } }
        case .moons:
            return []
        }
    }

    /// The standard deviation of each mode (for `moons`, the noise level).
    public var sigma: Double {
        switch self {
        case .ring8: return 0.01
        case .grid25: return 0.05
        case .moons: return 0.05
        }
    }

    /// Draws `n` samples: for `ring8`/`grid25` a mode chosen uniformly at random plus
    /// `N(0, sigma²)` noise per coordinate.
    ///
    /// - Returns: shape `[n, 2]`.
    public func sample(n: Int, rng: inout RandomGenerator) -> Tensor {
        precondition(n >= 0, "Mixture2D.sample: n must be >= 0, got \(n)")
        var out = [Float](repeating: 0, count: 2 * n)
        let centres = modes
        for i in 0..<n {
            let (z0, z1) = rng.nextNormalPair()
            let centre: SIMD2<Double>
            switch self {
            case .ring8, .grid25:
                centre = centres[Int(rng.next() % UInt64(centres.count))]
            case .moons:
                let t = Double.pi * rng.nextUniformDouble()
                centre = rng.next() & 1 == 0
                    ? SIMD2(Foundation.cos(t), Foundation.sin(t))
                    : SIMD2(1 - Foundation.cos(t), 0.5 - Foundation.sin(t))
            }
            out[2 * i] = Float(centre.x + sigma * Double(z0))
            out[2 * i + 1] = Float(centre.y + sigma * Double(z1))
        }
        return Tensor(shape: [n, 2], scalars: out)
    }

    /// Mode-collapse metrics of VEEGAN and PacGAN: each sample is assigned to its nearest mode
    /// and is *high quality* when within `3 sigma` (Euclidean) of it; a mode is *captured* when
    /// it holds at least one high-quality sample. The histogram counts high-quality samples
    /// per mode; its normalisation `p` is compared with the uniform distribution `u` over the
    /// modes by `KL(p || u) = sum p log(p K)` and the Jensen–Shannon divergence
    /// `JSD = ½ KL(p || m) + ½ KL(u || m)`, `m = (p + u)/2` (nats, `0 log 0 = 0`).
    /// Non-finite samples (diverged generators) count as low quality.
    ///
    /// - Parameter samples: shape `[n, 2]`, `n >= 1` (2 500 in the papers).
    /// - Returns: modes captured, high-quality fraction, histogram (in ``modes`` order) and the
    ///   divergences to uniform (nil when no sample is high quality).
    /// - Throws: ``MetricError`` for `moons` (no modes), a wrong shape, or no samples.
    public func evaluate(samples: Tensor) throws -> Mixture2DEvaluation {
        let metric = "\(rawValue) modes"
        guard self != .moons else {
            throw MetricError(metric: metric, problem: "moons has no discrete modes to evaluate", hint: "use ring8 or grid25")
        }
        guard samples.rank == 2, samples.shape[1] == 2 else {
            throw MetricError(metric: metric, problem: "expected samples of shape [n, 2], got \(samples.shape)")
        }
        let n = samples.shape[0]
        guard n >= 1 else { throw MetricError(metric: metric, problem: "no samples") }
        let centres = modes
        let limit = 3 * sigma
        var histogram = [Int](repeating: 0, count: centres.count)
        var highQuality = 0
        samples.withUnsafeScalars { p in
            for i in 0..<n {
                let s = SIMD2(Double(p[2 * i]), Double(p[2 * i + 1]))
                var best = 0
                var bestD2 = Double.infinity
                for (k, c) in centres.enumerated() {
                    let e = s - c
                    let d2 = (e * e).sum()
                    if d2 < bestD2 { bestD2 = d2; best = k }
                }
                if bestD2 <= limit * limit {  // false for NaN
                    histogram[best] += 1
                    highQuality += 1
                }
            }
        }
        var kl: Double? = nil, jsd: Double? = nil
        if highQuality > 0 {
            let k = Double(centres.count)
            let pr = histogram.map { Double($0) / Double(highQuality) }
            var klU = 0.0, js = 0.0
            for pc in pr {
                let u = 1 / k, m = (pc + u) / 2
                if pc > 0 {
                    klU += pc * Foundation.log(pc * k)
                    js += 0.5 * pc * Foundation.log(pc / m)
                }
                js += 0.5 * u * Foundation.log(u / m)
            }
            kl = max(klU, 0)
            jsd = max(js, 0)
        }
        return Mixture2DEvaluation(modesCaptured: histogram.filter { $0 > 0 }.count, modeCount: centres.count,
                                   highQualityFraction: Double(highQuality) / Double(n), histogram: histogram,
                                   jsdToUniform: jsd, klToUniform: kl, count: n)
    }
}

/// The VEEGAN/PacGAN mode-collapse metrics of a 2-D sample set (see ``Mixture2D/evaluate(samples:)``).
public struct Mixture2DEvaluation: Sendable, Codable, Equatable {
    /// Modes holding at least one high-quality sample.
    public var modesCaptured: Int
    /// Number of modes of the mixture (8 or 25).
    public var modeCount: Int
    /// Fraction of samples within 3 sigma of their nearest mode.
    public var highQualityFraction: Double
    /// High-quality samples per mode, in ``Mixture2D/modes`` order.
    public var histogram: [Int]
    /// Jensen–Shannon divergence (nats) of the high-quality mode histogram to uniform; nil
    /// when no sample is high quality.
    public var jsdToUniform: Double?
    /// `KL(histogram || uniform)` in nats; nil when no sample is high quality.
    public var klToUniform: Double?
    /// Number of samples evaluated.
    public var count: Int
}
