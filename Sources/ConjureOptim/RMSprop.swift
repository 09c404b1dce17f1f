import Foundation
import ConjureNN

/// RMSprop (Hinton, Srivastava & Swersky 2012, "Neural Networks for Machine Learning",
/// lecture 6e; the centered variant from Graves 2013, "Generating Sequences With Recurrent
/// Neural Networks", section 4), exactly as PyTorch's `torch.optim.RMSprop`.
///
/// Each step, for every element of a parameter `p` with gradient `g`:
///
///     g  += weightDecay * p                         // L2, coupled (if weightDecay != 0)
///     s   = α s + (1-α) g²                          // square_avg
///     if centered: a = α a + (1-α) g                // grad_avg
///                  d = sqrt(s - a²) + eps
///     else:        d = sqrt(s) + eps                // eps added after the square root
///     if momentum > 0: b = momentum b + g / d;  p -= lr * b   // momentum_buffer
///     else:            p -= lr * g / d
///
/// All state starts at zero. There is no bias correction (unlike Adam), so early steps are
/// large: the first plain step moves each element by about `lr / sqrt(1-α)` = 10 lr.
/// One deviation from PyTorch: in the centered form `s - a²` is clamped at 0 before the square
/// root; it is non-negative in exact arithmetic but can round to a tiny negative number when
/// the gradient is nearly constant, where PyTorch would produce NaN.
///
/// Defaults: lr 1e-2, alpha 0.99, eps 1e-8, weightDecay 0, momentum 0, centered false, as
/// PyTorch. State (for checkpoints) uses PyTorch's names: `N.square_avg`, `N.momentum_buffer`
/// (only when momentum > 0), `N.grad_avg` (only when centered), shaped as parameter `N`, and
/// the scalar `step`.
public final class RMSprop: Optimizer {
    /// The parameters this optimiser updates, in the order given at construction.
    public let parameters: [Parameter]
    /// Learning rate (per step, in the parameters' units per unit of normalised gradient).
    public var lr: Float
    /// Smoothing constant α of the moving averages, in `[0, 1)`.
    public let alpha: Float
    /// Added to the root-mean-square denominator after the square root.
    public let eps: Float
    /// L2 penalty folded into the gradient (`g += weightDecay * p`).
    public let weightDecay: Float
    /// Momentum factor of the buffer `b = momentum b + g / d` (default 0: no buffer).
    public let momentum: Float
    /// Normalise by an estimate of the gradient's variance rather than its second moment.
    public let centered: Bool
    /// Number of steps taken (PyTorch's per-parameter `step`, shared here).
    public private(set) var stepCount: Int = 0
    var squareAvg: [[Float]]
    /// Empty arrays when `momentum == 0`.
    var momentumBuffer: [[Float]]
    /// Empty arrays when not `centered`.
    var gradAvg: [[Float]]

    /// - Precondition: `lr`, `eps`, `weightDecay`, `momentum` non-negative; `alpha` in `[0, 1)`.
    public init(parameters: [Parameter], lr: Float = 1e-2, alpha: Float = 0.99, eps: Float = 1e-8,
                weightDecay: Float = 0, momentum: Float = 0, centered: Bool = false) {
        precondition(lr >= 0 && eps >= 0 && weightDecay >= 0 && momentum >= 0,
                     "RMSprop: lr, eps, weightDecay and momentum must be non-negative, got \(lr), \(eps), \(weightDecay), \(momentum)")
        precondition((0..<1).contains(alpha), "RMSprop: alpha must be in [0, 1), got \(alpha)")
        self.parameters = parameters
        self.lr = lr
        self.alpha = alpha
        self.eps = eps
        self.weightDecay = weightDecay
        self.momentum = momentum
        self.centered = centered
        let zeros = parameters.map { [Float](repeating: 0, count: $0.value.count) }
        squareAvg = zeros
        momentumBuffer = momentum > 0 ? zeros : parameters.map { _ in [] }
        gradAvg = centered ? zeros : parameters.map { _ in [] }
    }

    /// Applies one update with `gradients[i]` (shaped as `parameters[i]`) for `parameters[i]`.
    public func step(gradients: [Tensor]) {
        precondition(gradients.count == parameters.count, "RMSprop.step: \(gradients.count) gradients for \(parameters.count) parameters")
        stepCount += 1
        let lr = self.lr, alpha = self.alpha, eps = self.eps, wd = weightDecay, mu = momentum, centered = self.centered
        for (i, p) in parameters.enumerated() {
            precondition(gradients[i].shape == p.shape, "RMSprop.step: gradient \(gradients[i].shape) for parameter \(p.shape)")
            p.updateInPlace { w in
                do {
                    gradients[i].withUnsafeScalars { g in
                        squareAvg[i].withUnsafeMutableBufferPointer { s in
                            gradAvg[i].withUnsafeMutableBufferPointer { a in
                                momentumBuffer[i].withUnsafeMutableBufferPointer { b in
                                    for j in 0..<w.count {
                                        let gj = wd != 0 ? g[j] + wd * w[j] : g[j]
                                        s[j] = alpha * s[j] + (1 - alpha) * gj * gj
                                        let d: Float
                                        if centered {
                                            a[j] = alpha * a[j] + (1 - alpha) * gj
                                            d = max(0, s[j] - a[j] * a[j]).squareRoot() + eps
                                        } else {
                                            d = s[j].squareRoot() + eps
                                        }
                                        if mu > 0 {
                                            b[j] = mu * b[j] + gj / d
                                            w[j] -= lr * b[j]
                                        } else {
                                            w[j] -= lr * (gj / d)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `N.square_avg`, `N.momentum_buffer` (momentum > 0), `N.grad_avg` (centered), each shaped
    /// as parameter `N`, and the scalar `step`.
    public func stateDict() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (i, p) in parameters.enumerated() {
            out.append(("\(i).square_avg", Tensor(shape: p.shape, scalars: squareAvg[i])))
            if momentum > 0 { out.append(("\(i).momentum_buffer", Tensor(shape: p.shape, scalars: momentumBuffer[i]))) }
            if centered { out.append(("\(i).grad_avg", Tensor(shape: p.shape, scalars: gradAvg[i]))) }
        }
        out.append(("step", Tensor(Float(stepCount))))
        return out
    }

    /// Restores state written by ``stateDict()`` by an RMSprop with the same `momentum > 0`
    /// and `centered` settings. Nothing is changed when it throws.
    /// - Throws: ``StateDictError`` naming a missing or wrongly sized key.
    public func loadStateDict(_ state: [String: Tensor]) throws {
        func values(_ key: String, _ p: Parameter) throws -> [Float] {
            guard let t = state[key] else { throw StateDictError(key: key, problem: "missing") }
            guard t.count == p.value.count else {
                throw StateDictError(key: key, problem: "\(t.count) elements for parameter of shape \(p.shape)")
            }
            return t.scalars
        }
        var s = squareAvg, b = momentumBuffer, a = gradAvg
        for (i, p) in parameters.enumerated() {
            s[i] = try values("\(i).square_avg", p)
            if momentum > 0 { b[i] = try values("\(i).momentum_buffer", p) }
            if centered { a[i] = try values("\(i).grad_avg", p) }
        }
        guard let step = state["step"] else { throw StateDictError(key: "step", problem: "missing") }
        (squareAvg, momentumBuffer, gradAvg, stepCount) = (s, b, a, Int(step.item))
    }
}
