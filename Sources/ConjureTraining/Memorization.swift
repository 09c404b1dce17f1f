import Foundation
import ConjureData
import ConjureMetrics

/// Memorisation check: how many generated samples sit closer to a training image than real
/// unseen images do.
///
/// For each sample, the Euclidean distance (in normalised data space) to its nearest training
/// image. The threshold is calibrated on held-out real images: the 1st percentile of *their*
/// nearest-training-image distances, so about 1% of unseen real images fall below it by
/// chance. A sample below the threshold counts as memorised; a fraction well above 0.01
/// suggests copying. (In the spirit of the nearest-neighbour checks of Webster et al. 2019.)
public struct Memorization: Codable, Sendable {
    /// Fraction of samples whose nearest training image is closer than `threshold`.
    public var fraction: Double
    /// The distance below which a sample counts as memorised: the `percentile`-th percentile of
    /// the held-out images' nearest-training distances (normalised data units).
    public var threshold: Double
    /// The percentile of held-out distances used as the threshold (1).
    public var percentile: Double
    /// Median nearest-training distance of samples and of held-out real images.
    public var medianSampleDistance: Double
    /// Median nearest-training distance of the held-out real images.
    public var medianHeldOutDistance: Double
    /// Number of generated samples checked.
    public var sampleCount: Int
    /// Number of held-out real images used to calibrate the threshold.
    public var heldOutCount: Int
    /// Indices (sample, training image) of the closest pairs, closest first (up to 16).
    public var closestPairs: [[Int]]

    /// Measures memorisation of `samples` `[S, D]` against `train` `[N, D]`, with the threshold
    /// from `heldOut` `[H, D]` at `percentile` (percent, default 1); all in normalised units.
    /// - Throws: ``MetricError`` when any of the three sets is empty.
    public static func measure(samples: Tensor, train: Tensor, heldOut: Tensor, percentile: Double = 1) throws -> Memorization {
        guard samples.shape[0] > 0, heldOut.shape[0] > 0, train.shape[0] > 0 else {
            throw MetricError(metric: "memorization", problem: "needs samples, training and held-out images")
        }
        let (sd, si) = nearest(samples, in: train)
        let (hd, _) = nearest(heldOut, in: train)
        let sortedH = hd.sorted()
        let threshold = sortedH[min(sortedH.count - 1, Int(Double(sortedH.count) * percentile / 100))]
        let order = sd.indices.sorted { sd[$0] < sd[$1] }
        return Memorization(fraction: Double(sd.filter { $0 < threshold }.count) / Double(sd.count), threshold: threshold,
                            percentile: percentile, medianSampleDistance: sd.sorted()[sd.count / 2],
                            medianHeldOutDistance: sortedH[sortedH.count / 2], sampleCount: sd.count, heldOutCount: hd.count,
                            closestPairs: order.prefix(16).map { [$0, si[$0]] })
    }

    /// Nearest row of `reference` for each row of `queries`: distances and indices.
    /// `|q - r|² = |q|² + |r|² - 2 q·r`, the products by GEMM in blocks of 1024 queries.
    static func nearest(_ queries: Tensor, in reference: Tensor) -> ([Double], [Int]) {
        let n = queries.shape[0], m = reference.shape[0], d = queries.count / max(n, 1)
        let rn = (0..<m).map { i in reference.scalars[(i * d)..<((i + 1) * d)].reduce(0.0) { $0 + Double($1) * Double($1) } }
        var dist = [Double](repeating: .infinity, count: n), idx = [Int](repeating: -1, count: n)
        let block = 1024
        var start = 0
        var gram = [Float](repeating: 0, count: block * m)
        while start < n {
            let b = min(block, n - start)
            queries.withUnsafeScalars { q in
                reference.withUnsafeScalars { r in
                    gram.withUnsafeMutableBufferPointer { g in
                        sgemm(transposeA: false, transposeB: true, m: b, n: m, k: d, a: q.baseAddress! + start * d,
                              b: r.baseAddress!, c: g.baseAddress!)
                    }
                }
            }
            for i in 0..<b {
                let qi = start + i
                let qn = queries.scalars[(qi * d)..<((qi + 1) * d)].reduce(0.0) { $0 + Double($1) * Double($1) }
                var best = Double.infinity, bestJ = -1
                for j in 0..<m {
                    let v = qn + rn[j] - 2 * Double(gram[i * m + j])
                    if v < best { best = v; bestJ = j }
                }
                dist[qi] = max(best, 0).squareRoot()
                idx[qi] = bestJ
            }
            start += b
        }
        return (dist, idx)
    }

    /// A PNG of the closest pairs: samples in the top row, their nearest training images below.
    public func writeClosestPairs(samples: Tensor, train: Tensor, shape: [Int], stats: NormalizationStats, to path: String) throws {
        let pairs = closestPairs.prefix(8)
        let rows = pairs.map { samples.gathered(rows: [$0[0]]) } + pairs.map { train.gathered(rows: [$0[1]]) }
        try writeGrid(Tensor.concat(rows, axis: 0), shape: shape, stats: stats, to: path, columns: pairs.count)
    }
}

/// Scatter plots of 2-D samples over the true modes (PNG through libspng).
public enum Scatter {
    /// Draws `points` `[N, 2]` (data units) as blue dots and the mixture's modes as red crosses
    /// on a 512x512 white canvas.
    public static func write(points: Tensor, modes mix: Mixture2D, to path: String, size: Int = 512) throws {
        precondition(points.rank == 2 && points.shape[1] == 2, "Scatter.write: points \(points.shape), expected [N, 2]")
        let extent: Double = mix == .grid25 ? 5.5 : 1.6
        let xOffset: Double = mix == .moons ? 0.5 : 0
        var img = [UInt8](repeating: 255, count: 3 * size * size)
        func put(_ x: Double, _ y: Double, _ c: (UInt8, UInt8, UInt8)) {
            let px = Int(((x - xOffset) / extent + 1) / 2 * Double(size - 1))
            let py = Int((1 - (y / extent + 1) / 2) * Double(size - 1))
            guard px >= 0, px < size, py >= 0, py < size else { return }
            img[py * size + px] = c.0
            img[size * size + py * size + px] = c.1
            img[2 * size * size + py * size + px] = c.2
        }
        for i in 0..<points.shape[0] {
            let x = Double(points.scalars[2 * i]), y = Double(points.scalars[2 * i + 1])
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                put(x + Double(dx) * extent / Double(size), y + Double(dy) * extent / Double(size), (30, 80, 200))
            }
        }
        if mix != .moons {
            for m in mix.modes {
                for t in -6...6 {
                    let s = Double(t) * extent / Double(size)
                    put(m.x + s, m.y + s, (220, 20, 20))
                    put(m.x + s, m.y - s, (220, 20, 20))
                }
            }
        }
        try PNGWriter.write(pixels: img, shape: [3, size, size], to: path, createDirectories: true)
    }
}
