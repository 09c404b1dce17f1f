import Foundation

/// How sample values are scaled before training.
public enum Normalization: String, Sendable, Codable, CaseIterable {
    /// Map the data range `[low, high]` linearly onto `[-1, 1]`: `y = (x - low) / ((high - low) / 2) - 1`.
    /// For 8-bit data (`low = 0`, `high = 255`) this is `x / 127.5 - 1`, the range of a tanh
    /// generator output (Radford et al. 2016, DCGAN).
    case symmetric
    /// Map `[low, high]` linearly onto `[0, 1]`: `y = (x - low) / (high - low)` (`x / 255` for 8-bit
    /// data), the range of a sigmoid output.
    case unit
    /// Standardise with the dataset's mean and standard deviation (one pair for all values):
    /// `y = (x - mean) / std`.
    case zscore
    /// Leave the values as they are.
    case none
}

/// The parameters of a fitted normalisation, kept (e.g. in a checkpoint) so that generated
/// samples can be mapped back to the data's original units with ``inverse(_:)``.
///
/// ``apply(_:)`` and ``inverse(_:)`` compute in Double and round once to Float32, so
/// `inverse(apply(x))` returns `x` to within one or two Float32 ulps.
public struct NormalizationStats: Sendable, Codable, Equatable, CustomStringConvertible {
    /// Which normalisation.
    public var kind: Normalization
    /// The data value mapped to -1 (symmetric) or 0 (unit). Unused for zscore/none.
    public var low: Double
    /// The data value mapped to +1 (symmetric, unit). Unused for zscore/none.
    public var high: Double
    /// The mean subtracted by zscore (0 otherwise).
    public var mean: Double
    /// The standard deviation divided by in zscore (1 otherwise).
    public var std: Double

    /// Stats with explicit parameters.
    public init(kind: Normalization, low: Double = 0, high: Double = 1, mean: Double = 0, std: Double = 1) {
        self.kind = kind
        self.low = low
        self.high = high
        self.mean = mean
        self.std = std
    }

    /// No scaling.
    public static let identity = NormalizationStats(kind: .none)

    /// False when no value maps back to data units: a parameter not finite, `high <= low` for
    /// `symmetric`/`unit`, or `std <= 0` for `zscore`. ``fit(_:data:dtype:range:)`` never gives
    /// such statistics (a constant is scaled by a span or std of 1); an edited configuration may.
    public var isUsable: Bool {
        [low, high, mean, std].allSatisfy(\.isFinite)
            && ((kind != .symmetric && kind != .unit) || high > low) && (kind != .zscore || std > 0)
    }

    /// Fits a normalisation to data.
    ///
    /// Range rule for `.symmetric` and `.unit`: an explicit `range` wins; else the source type's
    /// natural range (``SourceDType/naturalRange``: 0...255 for `uint8` — MNIST IDX, PNG pixels,
    /// `u1` arrays — whatever values occur); else the observed min...max of `data` (floats, CSV
    /// text). For `.zscore`, the mean and population standard deviation of all values.
    /// Degenerate data (a constant, so `high == low` or `std == 0`) is scaled with a span or std
    /// of 1 instead, so nothing divides by zero.
    ///
    /// - Parameters:
    ///   - kind: the normalisation.
    ///   - data: the raw samples, any shape (may be empty only with an explicit range).
    ///   - dtype: the element type in the source file, if known.
    ///   - range: the data range to map, overriding detection (e.g. `0...255`).
    public static func fit(_ kind: Normalization, data: Tensor, dtype: SourceDType? = nil,
                           range: ClosedRange<Float>? = nil) -> NormalizationStats {
        switch kind {
        case .none:
            return .identity
        case .symmetric, .unit:
            if let r = range ?? dtype?.naturalRange {
                return NormalizationStats(kind: kind, low: Double(r.lowerBound), high: Double(r.upperBound))
            }
            var lo = Float.infinity, hi = -Float.infinity
            data.withUnsafeScalars { b in
                // Ties as Swift's min (keeps the first) and max (takes the later): -0 and +0 too.
                for v in b { if v < lo { lo = v }; if v >= hi { hi = v } }
            }
            if lo > hi { lo = 0; hi = 1 }  // empty
            return NormalizationStats(kind: kind, low: Double(lo), high: Double(hi))
        case .zscore:
            var sum = 0.0
            for v in data.scalars { sum += Double(v) }
            let n = Double(max(data.count, 1))
            let mean = sum / n
            var sq = 0.0
            for v in data.scalars { let d = Double(v) - mean; sq += d * d }
            return NormalizationStats(kind: .zscore, mean: mean, std: (sq / n).squareRoot())
        }
    }

    /// Fits to a dataset, using its source dtype for the range rule (see ``fit(_:data:dtype:range:)``).
    public static func fit(_ kind: Normalization, dataset: Dataset, range: ClosedRange<Float>? = nil) -> NormalizationStats {
        fit(kind, data: dataset.samples, dtype: dataset.dtype, range: range)
    }

    /// `(scale, offset)` with `y = (x - offset) / scale + shift`.
    private var affine: (offset: Double, scale: Double, shift: Double) {
        switch kind {
        case .none: return (0, 1, 0)
        case .unit:
            let span = high - low
            return (low, span > 0 ? span : 1, 0)
        case .symmetric:
            let span = high - low
            return (low, span > 0 ? span / 2 : 1, -1)
        case .zscore:
            return (mean, std > 0 ? std : 1, 0)
        }
    }

    /// Scales raw values into the normalised range.
    ///
    /// - Shapes: any; the result has the input's shape.
    public func apply(_ x: Tensor) -> Tensor {
        if kind == .none { return x }
        let (offset, scale, shift) = affine
        return x.map { Float((Double($0) - offset) / scale + shift) }
    }

    /// Maps normalised values (e.g. generator outputs) back to the data's original units; the
    /// inverse of ``apply(_:)``. No clamping is done.
    ///
    /// - Shapes: any; the result has the input's shape.
    public func inverse(_ y: Tensor) -> Tensor {
        if kind == .none { return y }
        let (offset, scale, shift) = affine
        return y.map { Float((Double($0) - shift) * scale + offset) }
    }

    /// The interval normalised values fall in for data within the fitted range: `[-1, 1]`,
    /// `[0, 1]`, or `nil` when unbounded (zscore, none).
    public var outputRange: ClosedRange<Float>? {
        switch kind {
        case .symmetric: return -1...1
        case .unit: return 0...1
        default: return nil
        }
    }

    /// The kind with its fitted statistics, e.g. `symmetric: [0.0, 255.0] -> [-1, 1]`.
    public var description: String {
        switch kind {
        case .none: return "none"
        case .symmetric: return "symmetric: [\(low), \(high)] -> [-1, 1]"
        case .unit: return "unit: [\(low), \(high)] -> [0, 1]"
        case .zscore: return "zscore: mean \(mean), std \(std)"
        }
    }
}

extension Dataset {
    /// This dataset with its samples normalised, and the stats needed to undo it.
    ///
    /// - Parameters:
    ///   - kind: the normalisation.
    ///   - range: the data range, overriding the dtype/observed-range rule of
    ///     ``NormalizationStats/fit(_:data:dtype:range:)``.
    public func normalized(_ kind: Normalization, range: ClosedRange<Float>? = nil) -> (Dataset, NormalizationStats) {
        let stats = NormalizationStats.fit(kind, dataset: self, range: range)
        var d = self
        d.samples = stats.apply(samples)
        return (d, stats)
    }

    /// This dataset with each sample reshaped to an image `[C, H, W]`.
    ///
    /// - Shapes: `[N, ...]` with `C*H*W` values per sample → `[N, C, H, W]`.
    /// - Throws: ``DataError`` naming the source when a sample does not hold `C*H*W` values.
    public func reshapedToImages(channels: Int, height: Int, width: Int) throws -> Dataset {
        let need = channels * height * width
        guard channels > 0, height > 0, width > 0, need == featureCount else {
            throw DataError(file: source,
                            problem: "each sample has \(featureCount) values (shape \(sampleShape)), which cannot be reshaped to [\(channels), \(height), \(width)] (\(need) values)",
                            hint: inferredImageShape.map { "this data looks like images of shape \($0)" })
        }
        var d = self
        d.samples = samples.reshaped([count, channels, height, width])
        return d
    }

    /// This dataset with each sample flattened to a vector.
    ///
    /// - Shapes: `[N, ...]` → `[N, D]` with `D` the values per sample.
    public func flattened() -> Dataset {
        var d = self
        d.samples = samples.reshaped([count, featureCount])
        return d
    }

    /// This dataset without repeated samples (identical values and label), keeping the first
    /// occurrence of each, and how many were removed.
    public func droppingDuplicates() -> (Dataset, removed: Int) {
        let per = featureCount
        var seen: [Int: [Int]] = [:]  // hash -> kept sample indices
        var keep: [Int] = []
        samples.withUnsafeScalars { s in
            func same(_ a: Int, _ b: Int) -> Bool {
                if let l = labels, l[a] != l[b] { return false }
                for k in 0..<per where s[a * per + k].bitPattern != s[b * per + k].bitPattern { return false }
                return true
            }
            for i in 0..<count {
                var h = Hasher()
                for k in 0..<per { h.combine(s[i * per + k].bitPattern) }
                if let l = labels { h.combine(l[i]) }
                let key = h.finalize()
                if let kept = seen[key], kept.contains(where: { same($0, i) }) { continue }
                seen[key, default: []].append(i)
                keep.append(i)
            }
        }
        if keep.count == count { return (self, 0) }
        var d = subset(keep)
        d.droppedSamples += count - keep.count
        return (d, count - keep.count)
    }
}

/// One-hot encodes class labels.
///
/// - Parameters:
///   - labels: class indices in `0..<classes`.
///   - classes: the number of classes `K`.
/// - Returns: shape `[labels.count, K]`, 1 at `[i, labels[i]]`, 0 elsewhere.
/// - Precondition: every label is in `0..<classes`.
public func oneHot(_ labels: [Int], classes: Int) -> Tensor {
    precondition(classes > 0, "oneHot: classes must be positive, got \(classes)")
    var out = [Float](repeating: 0, count: labels.count * classes)
    for (i, l) in labels.enumerated() {
        precondition(l >= 0 && l < classes, "oneHot: label \(l) at index \(i) is outside 0..<\(classes)")
        out[i * classes + l] = 1
    }
    return Tensor(shape: [labels.count, classes], scalars: out)
}
