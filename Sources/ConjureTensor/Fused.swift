import Foundation

extension Tensor {
    /// Mean binary cross-entropy between `logits` and `targets`, computed on logits in the
    /// numerically stable form `max(x, 0) - x*y + log1p(exp(-|x|))` (accumulated in Double), so
    /// it is exact for |x| up to 1e4 and beyond where `log(sigmoid(x))` would overflow.
    ///
    /// - Shapes: `logits` any shape; `targets` the same shape (or one element, broadcast).
    /// - Returns: a scalar, the mean over all elements.
    /// - Precondition: every target lies in [0, 1] (probabilities, not discriminator outputs).
    /// - Gradient: `(sigmoid(x) - y) / N` with respect to the logits (the targets are constants).
    /// - Source: PyTorch `BCEWithLogitsLoss`; TensorFlow `sigmoid_cross_entropy_with_logits`.
    public static func binaryCrossEntropyWithLogits(_ logits: Tensor, targets: Tensor) -> Tensor {
        let t = targets.count == 1 && logits.count != 1 ? Tensor(repeating: targets.scalars[0], shape: logits.shape) : targets
        precondition(t.shape == logits.shape,
                     "binaryCrossEntropyWithLogits: targets \(targets.shape) do not match logits \(logits.shape)")
        for y in t.scalars {
            precondition(y >= 0 && y <= 1, "binaryCrossEntropyWithLogits: target \(y) outside [0, 1]; targets are labels, not logits")
        }
        var s = 0.0
        for (xf, yf) in zip(logits.scalars, t.scalars) {
            let x = Double(xf), y = Double(yf)
            s += Swift.max(x, 0) - x * y + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
        }
        let n = Float(Swift.max(logits.count, 1))
        let value = Float(s / Double(Swift.max(logits.count, 1)))
        let targetConst = t.detached()
        return record(shape: [], scalars: [value], inputs: [logits]) { g, x in
            if GradMode.enabled { return [(x[0].sigmoid() - targetConst) * (g / n)] }
            let scale = g.scalars[0] / n
            let out = zip(x[0].scalars, targetConst.scalars).map { (stableSigmoid($0) - $1) * scale }
            return [Tensor(shape: x[0].shape, scalars: out)]
        }
    }
}
