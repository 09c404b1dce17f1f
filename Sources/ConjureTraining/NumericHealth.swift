import ConjureData
import ConjureModels

/// Checks of the numbers a checkpoint would hold.
enum NumericHealth {
    /// The first tensor (in checkpoint order: parameters, averaged weights, optimiser state)
    /// holding a NaN or an infinity, with the first such element's index and value; nil when
    /// all are finite. A checkpoint with such a tensor would be refused by `sample` and
    /// `--resume` (``Checkpoint/read(path:)``), so the trainer stops before writing it.
    static func firstNonFinite(model: any GenerativeModel, optimization: Optimization) -> (name: String, index: Int, value: Float)? {
        // Read in place: a copy of every tensor at once would be the run's peak memory.
        func first(_ values: UnsafeBufferPointer<Float>) -> (Int, Float)? {
            values.firstIndex(where: { !$0.isFinite }).map { ($0, values[$0]) }
        }
        for (name, t) in model.stateDict() + optimization.averagesStateDict() {
            if let (i, v) = t.withUnsafeScalars(first) { return (name, i, v) }
        }
        var found: (name: String, index: Int, value: Float)?
        optimization.forEachState { name, _, values in
            if found == nil, let (i, v) = first(values) { found = (name, i, v) }
        }
        return found
    }
}
