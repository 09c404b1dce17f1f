import ConjureData
import ConjureModels

/// Checks of the numbers a checkpoint would hold.
enum NumericHealth {
    /// The first tensor (in checkpoint order: parameters, averaged weights, optimiser state)
    /// holding a NaN or an infinity, with the first such element's index and value; nil when
    /// all are finite. A checkpoint with such a tensor would be refused by `sample` and
    /// `--resume` (``Checkpoint/read(path:)``), so the trainer stops before writing it.
    static func firstNonFinite(model: any GenerativeModel, optimization: Optimization) -> (name: String, index: Int, value: Float)? {
        for (name, t) in model.stateDict() + optimization.averagesStateDict() + optimization.stateDict() {
            if let i = t.scalars.firstIndex(where: { !$0.isFinite }) { return (name, i, t.scalars[i]) }
        }
        return nil
    }
}
