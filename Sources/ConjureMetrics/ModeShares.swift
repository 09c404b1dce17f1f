/// Per-mode quality shares of a 2-D mixture evaluation: "captured" (at least one high-quality
/// sample, the VEEGAN/PacGAN definition) says little when a mode holds 1 of 2500 samples, so
/// `evaluate` also reports each mode's share and flags modes far below the uniform share.
extension Mixture2DEvaluation {
    /// A mode whose share is under this fraction of the uniform share `1 / modeCount` is weak.
    public static let weakModeFactor = 0.25

    /// For each mode (in ``Mixture2D/modes`` order), the fraction of all samples that are
    /// high-quality samples of that mode; a perfect generator gives `1 / modeCount` each
    /// (minus the 1% or so beyond 3 sigma).
    public var modeShares: [Double] { histogram.map { Double($0) / Double(Swift.max(count, 1)) } }

    /// Indices of the modes whose share is under ``weakModeFactor`` / ``modeCount``.
    public var weakModes: [Int] {
        let floor = Mixture2DEvaluation.weakModeFactor / Double(Swift.max(modeCount, 1))
        return modeShares.enumerated().filter { $0.element < floor }.map(\.offset)
    }
}
