import ConjureNN

/// Exponential moving average of parameters, `ema = decay * ema + (1 - decay) * w` after each
/// step (used for generator weights in GAN training, e.g. Karras et al. 2018). The averages
/// are state to checkpoint: re-initialising them from the weights at resume gives a different
/// result from the uninterrupted run.
public final class EMA {
    public let decay: Float
    public private(set) var averages: [[Float]]

    /// Starts the averages at the parameters' current values (or zeros when `startAtZero`).
    public init(parameters: [Parameter], decay: Float, startAtZero: Bool = false) {
        precondition(decay >= 0 && decay < 1, "EMA: decay must be in [0, 1), got \(decay)")
        self.decay = decay
        averages = parameters.map { startAtZero ? [Float](repeating: 0, count: $0.value.count) : $0.value.scalars }
    }

    /// Folds the parameters' current values into the averages.
    public func update(_ parameters: [Parameter]) {
        precondition(parameters.count == averages.count, "EMA.update: \(parameters.count) parameters for \(averages.count) averages")
        let d = decay
        for (i, p) in parameters.enumerated() {
            let w = p.value.scalars
            averages[i].withUnsafeMutableBufferPointer { a in for j in 0..<a.count { a[j] = d * a[j] + (1 - d) * w[j] } }
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
