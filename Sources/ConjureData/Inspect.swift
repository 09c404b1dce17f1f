import Foundation

/// What `conjure data inspect` reports about a dataset.
public struct DatasetSummary: Sendable, Codable, Equatable, CustomStringConvertible {
    /// The path loaded.
    public var source: String
    /// The detected (or given) format.
    public var format: Dataset.Format
    /// The samples' shape `[N, ...]` after loading (a 1-d array shows as `[N, 1]`).
    public var shape: [Int]
    /// The element type in the file.
    public var dtype: SourceDType
    /// The smallest value.
    public var min: Float
    /// The largest value.
    public var max: Float
    /// The mean of all values.
    public var mean: Double
    /// Whether every value is an integer.
    public var integerValued: Bool
    /// Samples per label, or `nil` without labels.
    public var labelCounts: [Int: Int]?
    /// Where the labels came from.
    public var labelsSource: String?
    /// Samples removed by the clean policy.
    public var droppedSamples: Int
    /// A plausible `[C, H, W]` per sample (see ``Dataset/inferredImageShape``).
    public var imageShape: [Int]?
    /// The range ``Normalization/symmetric`` and ``Normalization/unit`` would map, by the
    /// rule of ``NormalizationStats/fit(_:data:dtype:range:)``.
    public var normalizationRange: ClosedRange<Float>

    /// The multi-line report `conjure data inspect` prints: one `name: value` line per field.
    public var description: String {
        func num(_ v: Float) -> String { v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(v) }
        var lines: [String] = []
        lines.append("source:   \(source)")
        lines.append("format:   \(format.rawValue)")
        lines.append("samples:  \(shape.first ?? 0)")
        lines.append("shape:    [\(shape.map(String.init).joined(separator: ", "))]"
                     + (imageShape.map { " (as images: \($0.map(String.init).joined(separator: "x")) per sample)" } ?? ""))
        lines.append("dtype:    \(dtype.numpyCode)\(dtype == .text && integerValued ? " (integer values)" : "")")
        lines.append("range:    min \(num(min)), max \(num(max)), mean \(String(format: "%.4g", mean))")
        lines.append("normalize range: \(num(normalizationRange.lowerBound))...\(num(normalizationRange.upperBound))"
                     + (dtype.naturalRange != nil ? " (from dtype \(dtype.numpyCode))" : " (observed)"))
        if let labelCounts {
            let parts = labelCounts.keys.sorted().map { "\($0): \(labelCounts[$0]!)" }.joined(separator: ", ")
            lines.append("labels:   \(labelCounts.count) classes {\(parts)}" + (labelsSource.map { " from \($0)" } ?? ""))
        } else {
            lines.append("labels:   none")
        }
        if droppedSamples > 0 { lines.append("dropped:  \(droppedSamples) samples with missing or non-finite values") }
        return lines.joined(separator: "\n")
    }
}

extension Dataset {
    /// A summary of this dataset: format, shape, dtype, value range and label counts.
    public func summary() -> DatasetSummary {
        var lo = Float.infinity, hi = -Float.infinity
        var sum = 0.0
        var integers = true
        samples.withUnsafeScalars { s in
            for v in s {
                if v < lo { lo = v }
                if v > hi { hi = v }
                sum += Double(v)
                if integers && v != v.rounded() { integers = false }
            }
        }
        var counts: [Int: Int]? = nil
        if let labels {
            var c: [Int: Int] = [:]
            for l in labels { c[l, default: 0] += 1 }
            counts = c
        }
        let stats = NormalizationStats.fit(.unit, data: samples, dtype: dtype)
        return DatasetSummary(source: source, format: format, shape: samples.shape, dtype: dtype,
                              min: lo, max: hi, mean: sum / Double(Swift.max(samples.count, 1)),
                              integerValued: integers, labelCounts: counts, labelsSource: labelsSource,
                              droppedSamples: droppedSamples, imageShape: inferredImageShape,
                              normalizationRange: Float(stats.low)...Float(stats.high))
    }
}

/// Loads a dataset exactly as ``Dataset/load(path:options:)`` does and summarises it
/// (`conjure data inspect`).
///
/// - Returns: the summary; its `description` is the human-readable report.
/// - Throws: the same ``DataError`` the loader would.
public func inspect(path: String, options: DatasetOptions = DatasetOptions()) throws -> DatasetSummary {
    try Dataset.load(path: path, options: options).summary()
}
