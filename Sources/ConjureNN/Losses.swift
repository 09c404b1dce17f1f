/// Loss functions. Each takes logits or predictions and returns a scalar tensor (the mean
/// over all elements), differentiable with respect to its first argument.
public enum Loss {
    /// Mean binary cross-entropy on logits (stable form; see
    /// `Tensor.binaryCrossEntropyWithLogits`). `target` is a probability in [0, 1].
    public static func binaryCrossEntropyWithLogits(_ logits: Tensor, target: Float) -> Tensor {
        Tensor.binaryCrossEntropyWithLogits(logits, targets: Tensor(target))
    }

    /// Mean binary cross-entropy on logits against per-element targets.
    ///
    /// - Throws: ``LossError`` when a target lies outside [0, 1] or is not finite (for example
    ///   discriminator outputs passed as labels, which TensorFlow's formula silently accepts
    ///   and turns into negative losses).
    public static func binaryCrossEntropyWithLogits(_ logits: Tensor, targets: Tensor) throws -> Tensor {
        if let bad = targets.scalars.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            throw LossError(message: "binaryCrossEntropyWithLogits: target \(targets.scalars[bad]) at index \(bad) is outside [0, 1]; targets are probabilities (labels), not logits")
        }
        guard targets.shape == logits.shape || targets.count == 1 else {
            throw LossError(message: "binaryCrossEntropyWithLogits: targets \(targets.shape) do not match logits \(logits.shape)")
        }
        return Tensor.binaryCrossEntropyWithLogits(logits, targets: targets)
    }

    /// The GAN discriminator loss `mean BCE(D(x), 1) + mean BCE(D(G(z)), 0)` on logits
    /// (Goodfellow et al. 2014). Real and fake batches may differ in size.
    ///
    /// - Shapes: `realLogits` `[N]` or `[N, 1]`, `fakeLogits` `[M]` or `[M, 1]`.
    public static func discriminatorLoss(realLogits: Tensor, fakeLogits: Tensor) -> Tensor {
        binaryCrossEntropyWithLogits(realLogits, target: 1) + binaryCrossEntropyWithLogits(fakeLogits, target: 0)
    }

    /// The non-saturating generator loss `mean BCE(D(G(z)), 1) = -mean log sigmoid(D(G(z)))`
    /// (Goodfellow et al. 2014, section 3).
    public static func generatorLoss(fakeLogits: Tensor) -> Tensor {
        binaryCrossEntropyWithLogits(fakeLogits, target: 1)
    }

    /// Mean squared error `mean((prediction - target)²)`.
    ///
    /// - Precondition: the shapes are equal.
    public static func meanSquaredError(_ prediction: Tensor, _ target: Tensor) -> Tensor {
        precondition(prediction.shape == target.shape, "meanSquaredError: shapes \(prediction.shape) and \(target.shape) differ")
        let d = prediction - target
        return (d * d).mean()
    }
}

/// Invalid arguments to a loss function.
public struct LossError: Error, CustomStringConvertible {
    /// What was invalid, naming the loss function and the offending value or shapes.
    public var message: String
    /// The message.
    public var description: String { message }
}
