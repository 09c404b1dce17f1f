import ConjureTensor

/// The training samples `[N, D]` in the model's range, as the trainer draws its batches from
/// them. Data whose raw values are all integers 0...255 (8-bit images: MNIST, PNG folders) is
/// kept as those bytes and normalised when a batch is gathered, through a 256-entry table of
/// ``NormalizationStats/apply(_:)``'s own values, so a batch is bit for bit what normalising
/// the whole set first would give, in a quarter of the memory (MNIST's 4500 training images:
/// 3.5 MB instead of 14.1 MB). Any other data is kept as Float32, normalised once.
public struct TrainingRows {
    private enum Storage {
        case floats(Tensor)
        /// Raw bytes `[N·D]` and the normalised value of each byte.
        case bytes([UInt8], table: [Float])
    }

    private let storage: Storage
    /// `[N, D]`.
    public let shape: [Int]
    /// The smallest and largest normalised value (nil when there are no values).
    public let valueRange: ClosedRange<Float>?

    /// Rows already normalised, kept as they are.
    ///
    /// - Precondition: `normalized` is `[N, D]`.
    public init(normalized: Tensor) {
        precondition(normalized.rank == 2, "TrainingRows: samples \(normalized.shape), expected [N, D]")
        storage = .floats(normalized)
        shape = normalized.shape
        valueRange = normalized.count > 0 ? normalized.minValue...normalized.maxValue : nil
    }

    /// Rows `raw` normalised by `stats`: kept as bytes when every raw value is an integer in
    /// 0...255, else normalised once into Float32.
    ///
    /// - Precondition: `raw` is `[N, D]`.
    public init(raw: Tensor, normalization stats: NormalizationStats) {
        precondition(raw.rank == 2, "TrainingRows: samples \(raw.shape), expected [N, D]")
        shape = raw.shape
        let bytes: [UInt8]? = stats.kind == .none ? nil : raw.withUnsafeScalars { v in
            var out = [UInt8](repeating: 0, count: v.count)
            for i in v.indices {
                let x = v[i]
                // -0 stays float: its normalised value can differ from +0's in the sign bit.
                guard x >= 0 && x <= 255 && x == x.rounded(.towardZero) && x.sign == .plus else { return nil }
                out[i] = UInt8(x)
            }
            return out
        }
        guard let bytes else {
            let normalized = stats.apply(raw)
            storage = .floats(normalized)
            valueRange = normalized.count > 0 ? normalized.minValue...normalized.maxValue : nil
            return
        }
        let table = stats.apply(Tensor(shape: [256], scalars: (0..<256).map { Float($0) })).scalars
        var seen = [Bool](repeating: false, count: 256)
        for b in bytes { seen[Int(b)] = true }
        let present = (0..<256).filter { seen[$0] }.map { table[$0] }
        valueRange = present.isEmpty ? nil : present.min()!...present.max()!
        storage = .bytes(bytes, table: table)
    }

    /// Number of rows N.
    public var rows: Int { shape[0] }
    /// Values per row D.
    public var width: Int { shape[1] }
    /// True when the raw values are kept as bytes (normalised per batch).
    public var isCompact: Bool { if case .bytes = storage { return true } else { return false } }

    /// The rows at `indices`, normalised: `[indices.count, D]`.
    ///
    /// - Precondition: every index is in `0..<N`.
    public func gathered(rows indices: [Int]) -> Tensor {
        switch storage {
        case .floats(let t): return t.gathered(rows: indices)
        case .bytes(let bytes, let table):
            let d = width
            var out = [Float](repeating: 0, count: indices.count * d)
            bytes.withUnsafeBufferPointer { b in
                table.withUnsafeBufferPointer { lut in
                    for (r, i) in indices.enumerated() {
                        precondition(i >= 0 && i < rows, "TrainingRows.gathered: row \(i) outside 0..<\(rows)")
                        for j in 0..<d { out[r * d + j] = lut[Int(b[i * d + j])] }
                    }
                }
            }
            return Tensor(shape: [indices.count, d], scalars: out)
        }
    }

    /// All rows normalised, `[N, D]` (a new tensor when the rows are kept as bytes).
    public var tensor: Tensor {
        switch storage {
        case .floats(let t): return t
        case .bytes: return gathered(rows: Array(0..<rows))
        }
    }
}
