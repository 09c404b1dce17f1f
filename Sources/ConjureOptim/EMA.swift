import ConjureNN
import CConjureKernels

/// Exponential moving average of parameters, `ema = decay * ema + (1 - decay) * w` after each
/// step (used for generator weights in GAN training, e.g. Karras et al. 2018). The averages
/// are state to checkpoint: re-initialising them from the weights at resume gives a different
/// result from the uninterrupted run.
public final class EMA {
    /// The largest decay per update, in `[0, 1)` (e.g. 0.999); see ``decay(atStep:)``.
    public let decay: Float
    /// The averaged values, one flat row-major array per parameter, in the order given at construction.
    public private(set) var averages: [[Float]]

    /// Starts the averages at the parameters' current values (or zeros when `startAtZero`).
    public init(parameters: [Parameter], decay: Float, startAtZero: Bool = false) {
        precondition(decay >= 0 && decay < 1, "EMA: decay must be in [0, 1), got \(decay)")
        self.decay = decay
        averages = parameters.map { startAtZero ? [Float](repeating: 0, count: $0.value.count) : $0.value.scalars }
    }

    /// The decay used for the `step`-th update (1-based) with warm-up: `min(decay, (1 + step) /
    /// (10 + step))`, TensorFlow's `ExponentialMovingAverage(num_updates:)` rule, so the
    /// initial weights are forgotten quickly in short runs (0.5 at step 8, 0.99 at step 890).
    public func decay(atStep step: Int) -> Float {
        min(decay, Float(1 + step) / Float(10 + step))
    }

    /// Folds the parameters' current values into the averages, with the warm-up decay of
    /// ``decay(atStep:)`` when `step` (the number of updates so far, this one included) is
    /// given, else with `decay`.
    public func update(_ parameters: [Parameter], step: Int? = nil) {
        precondition(parameters.count == averages.count, "EMA.update: \(parameters.count) parameters for \(averages.count) averages")
        let d = step.map { decay(atStep: $0) } ?? decay
        let values = parameters.map(\.value)
        for (i, w) in values.enumerated() {
            precondition(w.count == averages[i].count, "EMA.update: parameter \(i) has \(w.count) values, its average \(averages[i].count)")
        }
        // One pass over all parameters split evenly across the pool, by a vectorised C kernel
        // (AVX-512/AVX2/baseline chosen at run time).
        withScalarPointers(values) { w in
            withElementPointers(&averages) { a in
                Parallel.forSegments(values.map(\.count)) { s, r in
                    conjure_ema_update(a[s]! + r.lowerBound, w[s]! + r.lowerBound, r.count, d)
                }
            }
        }
    }

    /// The averages as named tensors for a checkpoint.
    public func stateDict(names: [String]) -> [(String, Tensor)] {
        zip(names, averages).map { ($0, Tensor(shape: [$1.count], scalars: $1)) }
    }

    /// Restores averages saved by ``stateDict(names:)``.
    public func load(_ values: [[Float]]) {
        precondition(values.map(\.count) == averages.map(\.count), "EMA.load: sizes differ")
        averages = values
    }
}
