import ConjureTensor
import Foundation

/// The smallest and largest value of `values`, or `nil` when it is empty.
func observedRange(_ values: Tensor) -> ClosedRange<Float>? {
    var lo = Float.infinity, hi = -Float.infinity
    values.withUnsafeScalars { b in
        for v in b { if v < lo { lo = v }; if v > hi { hi = v } }
    }
    return lo <= hi ? lo...hi : nil
}

extension SourceDType {
    /// The pixel ranges that integer data in a wide type (`int16`, `int32`, `int64`, `uint32`,
    /// `uint64`: types with no ``naturalRange``) is taken to use without a declared range:
    /// 8-bit (0...255) or 16-bit (0...65535) images stored in a wider integer type, as NumPy
    /// arithmetic leaves them. Empty for every other type.
    public var assumedIntegerRanges: [ClosedRange<Float>] {
        isInteger && naturalRange == nil ? [0...255, 0...65535] : []
    }
}

extension Dataset {
    /// Checks that every value lies in the range the user declared for the data (for
    /// example `--data-range 0,1`); values outside it would be scaled outside the model's
    /// output range (`0...16` with a declared `0...1` becomes `[-1, 31]`, not `[-1, 1]`).
    ///
    /// A tolerance of `1e-6` times the span allows for rounding in the file.
    ///
    /// - Parameters:
    ///   - range: the declared range.
    ///   - option: the option name used in the hint (`--data-range`).
    /// - Throws: ``DataError`` naming ``source``, the observed range and the declared one.
    public func checkDeclaredRange(_ range: ClosedRange<Float>, option: String = "--data-range") throws {
        guard let seen = observedRange(samples) else { return }
        let slack = (range.upperBound - range.lowerBound) * 1e-6
        if seen.lowerBound < range.lowerBound - slack || seen.upperBound > range.upperBound + slack {
            throw DataError(file: source,
                            problem: "values span \(seen.lowerBound)...\(seen.upperBound), outside the declared range \(range.lowerBound)...\(range.upperBound)",
                            hint: "declare the data's true range (\(option) \(seen.lowerBound),\(seen.upperBound)) or fix the data")
        }
    }

    /// Checks integer data stored in a wide type against ``SourceDType/assumedIntegerRanges``:
    /// with no declared range, `int64` values `-5...300` (8-bit pixels damaged by arithmetic,
    /// say) are an error rather than silently scaled by their observed range.
    ///
    /// - Throws: ``DataError`` naming ``source``, the dtype and the observed range.
    public func checkIntegerRange() throws {
        let allowed = dtype.assumedIntegerRanges
        guard !allowed.isEmpty, let seen = observedRange(samples) else { return }
        if allowed.contains(where: { $0.contains(seen.lowerBound) && $0.contains(seen.upperBound) }) { return }
        throw DataError(file: source,
                        problem: "\(dtype.rawValue) values span \(Int64(seen.lowerBound))...\(Int64(seen.upperBound)), which is neither 8-bit (0...255) nor 16-bit (0...65535) pixel data",
                        hint: "declare the range the values mean (--data-range LO,HI), or convert the array to the intended type first")
    }

    /// Checks that the labels name at least `minimum` different classes, as a classifier needs
    /// (see ``checkClassCount(_:source:atLeast:for:)``, with ``labelsSource`` or ``source``).
    ///
    /// - Throws: ``DataError`` when there are no labels or fewer than `minimum` distinct ones.
    public func checkClassCount(atLeast minimum: Int = 2, for purpose: String = "a classifier") throws {
        try ConjureData.checkClassCount(labels, source: labelsSource ?? source, atLeast: minimum, for: purpose)
    }
}

/// Checks that `labels` name at least `minimum` different classes: a classifier (the domain
/// classifier of FID/KID, `conjure classifier train`) cannot learn from one class, and a
/// one-class label column usually means the wrong column was taken (the last pixel of a
/// label-first CSV).
///
/// - Parameters:
///   - labels: class indices, or `nil` when the data has none.
///   - source: the file named in the error.
///   - minimum: the number of distinct classes needed; 2 by default.
///   - purpose: what needs the classes, for the message (`"a classifier"`).
/// - Throws: ``DataError`` naming `source` and the classes found.
public func checkClassCount(_ labels: [Int]?, source: String, atLeast minimum: Int = 2,
                            for purpose: String = "a classifier") throws {
    let present = Set(labels ?? [])
    guard present.count < minimum else { return }
    let found = labels == nil ? "no labels" : present.isEmpty ? "no rows" : "only class \(present.sorted().map(String.init).joined(separator: ", "))"
    throw DataError(file: source,
                    problem: "\(purpose) needs at least \(minimum) classes; the data has \(found)",
                    hint: "check the label column (a CSV's label may be its first column: --label-column 0, or name it 'label' in the header)")
}

/// Checks that `labels` are class indices 0..K-1 that all occur, K = the largest + 1: what a
/// classifier's output layer and a conditional model's one-hot inputs are sized by, so one stray
/// large label (99999999999) is refused here instead of sizing a layer or a table by it.
///
/// - Parameters:
///   - labels: class indices.
///   - source: the file named in the error.
///   - purpose: what needs the classes, for the message (`"a classifier"`).
/// - Throws: ``DataError`` naming `source`, the largest label and the first classes that never
///   occur (or that some are negative).
public func checkClassIndices(_ labels: [Int], source: String, for purpose: String) throws {
    guard let top = labels.max() else { return }
    let present = Set(labels)
    guard present.count != top + 1 || labels.contains(where: { $0 < 0 }) else { return }
    // Lazily: only the first few missing classes are listed, however large the largest label.
    let missing = (0...max(top, 0)).lazy.filter { !present.contains($0) }.prefix(5).map(String.init).joined(separator: ", ")
    throw DataError(file: source,
                    problem: "\(purpose) needs class labels 0..K-1 that all occur; the labels run to \(top) but "
                        + (missing.isEmpty ? "some are negative" : "\(missing)... never occur"),
                    hint: "renumber the classes 0..K-1")
}

extension DataError {
    /// How the CSV reader's message for a label cell that is not a class index starts.
    static let labelValueProblemPrefix = "label "

    /// Whether this is the CSV reader's "label '...' is not a non-negative integer class index".
    var isLabelValueError: Bool {
        problem.hasPrefix(Self.labelValueProblemPrefix) && problem.hasSuffix("is not a non-negative integer class index")
    }
}
