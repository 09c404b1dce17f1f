import ConjureData
import ConjureTensor
import Foundation

extension Metrics {
    /// The value ranges image arrays are commonly stored in, narrowest first: `[0, 1]` and
    /// `[-1, 1]` floats (sigmoid and tanh outputs), 8-bit and 16-bit pixels.
    public static let imageUnitRanges: [ClosedRange<Double>] = [0...1, -1...1, 0...255, 0...65535]

    /// The units an image array is in: its dtype's natural range for 8/16-bit integers
    /// (``SourceDType/naturalRange``), else the narrowest of ``imageUnitRanges`` holding every
    /// value, else the observed `min...max`.
    ///
    /// - Parameter array: values of any shape; `dtype` is the element type in the file.
    public static func imageUnits(of values: Tensor, dtype: SourceDType) -> ClosedRange<Double> {
        if let r = dtype.naturalRange { return Double(r.lowerBound)...Double(r.upperBound) }
        guard values.count > 0 else { return 0...1 }
        let lo = Double(values.minValue), hi = Double(values.maxValue)
        return imageUnitRanges.first { $0.contains(lo) && $0.contains(hi) } ?? lo...hi
    }

    /// Checks that `values` are in `units`, by the rule `evaluate --samples` applies to samples
    /// against the data's range (`Evaluator.checkScale`): every value within 5% of the span
    /// outside `units`, and, unless the array is constant, spread over at least 10% of the span
    /// (`[0, 1]` floats compared with `0...255` pixels are spread over 0.4%).
    ///
    /// - Throws: ``DataError`` naming `file`, the observed span and `units`.
    public static func checkUnits(_ values: Tensor, units: ClosedRange<Double>, file: String, against other: String) throws {
        guard values.count > 0 else { return }
        let span = units.upperBound - units.lowerBound
        let lo = Double(values.minValue), hi = Double(values.maxValue)
        let narrow = hi > lo && hi - lo < 0.1 * span
        if lo < units.lowerBound - 0.05 * span || hi > units.upperBound + 0.05 * span || narrow {
            throw DataError(file: file,
                            problem: String(format: "values span [%g, %g] but %@ is in [%g, %g]: the two arrays are on different scales", lo, hi, other, units.lowerBound, units.upperBound),
                            hint: "convert both image arrays to the same units first (e.g. 0..255 pixels: (x + 1) * 127.5 for [-1, 1] floats)")
        }
    }

    /// Checks that two arrays given to a two-sample metric (FID, KID, precision/recall,
    /// density/coverage) are in the same units, when they are images.
    ///
    /// When either array has rank 3 or more (`[N, H, W]`, `[N, C, H, W]`, `[N, H, W, C]`), both are
    /// images (the other may be flattened to `[N, D]`): the
    /// reference `a`'s units are found with ``imageUnits(of:dtype:)`` and `b` must fit them by
    /// ``checkUnits(_:units:file:against:)`` (float `[-1, 1]` against uint8 `0..255` is an error,
    /// where FID would report about 1.4 million). Arrays of rank 2 (`[N, D]` features, such as
    /// Inception activations) are taken as they are: features have no fixed units.
    ///
    /// - Parameters:
    ///   - a: the reference (real) array and its file name.
    ///   - b: the other (generated) array and its file name.
    /// - Throws: ``DataError`` naming the file on the other scale.
    public static func checkComparableUnits(_ a: LoadedArray, file aFile: String, _ b: LoadedArray, file bFile: String) throws {
        guard a.tensor.rank >= 3 || b.tensor.rank >= 3 else { return }
        let units = imageUnits(of: a.tensor, dtype: a.dtype)
        try checkUnits(b.tensor, units: units, file: bFile, against: (aFile as NSString).lastPathComponent)
    }

    /// ``checkComparableUnits(_:file:_:file:)`` on two `.npy` files (read again from disk).
    ///
    /// - Throws: ``DataError`` when a file cannot be read, or as the array version.
    public static func checkComparableUnits(aPath: String, bPath: String) throws {
        try checkComparableUnits(NPYReader.read(path: aPath), file: aPath, NPYReader.read(path: bPath), file: bPath)
    }
}
