import Foundation
import ConjureNN

/// Adam with decoupled weight decay (Loshchilov & Hutter 2019, "Decoupled Weight Decay
/// Regularization", Algorithm 2), exactly as PyTorch's `torch.optim.AdamW`.
///
/// Each step `t` (1-based), for every element of a parameter `p` with gradient `g`:
///
///     p *= 1 - lr * weightDecay                  // decoupled decay, before the Adam update
///     m  = β1 m + (1-β1) g
///     v  = β2 v + (1-β2) g²
///     p -= lr / (1-β1^t) * m / (sqrt(v) / sqrt(1-β2^t) + eps)
///
/// Unlike ``Adam``'s `weightDecay` (L2 added to the gradient, so the decay is rescaled by
/// `1/sqrt(v)`), the decay here shrinks every weight by the same fraction `lr * weightDecay`
/// per step. The decay uses the current `lr`, so a learning-rate schedule scales it too (as in
/// PyTorch; the paper's schedule multiplier `η_t` plays this role).
///
/// Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weightDecay 1e-2, as PyTorch.
/// State (for checkpoints) uses PyTorch's names: `N.exp_avg` and `N.exp_avg_sq` (shaped as
/// parameter `N`) and the scalar `step`, the same as ``Adam``.
public final class AdamW: Optimizer {
    /// The Adam that does the work: no L2 term, the decoupled decay on.
    let adam: Adam

    /// The parameters this optimiser updates, in the order given at construction.
    public var parameters: [Parameter] { adam.parameters }
    /// Learning rate (per step, in the parameters' units per unit of normalised gradient).
    public var lr: Float {
        get { adam.lr }
        set { adam.lr = newValue }
    }
    /// (β1, β2), the decay rates of the first and second moment averages (default (0.9, 0.999)).
    public var betas: (Float, Float) { adam.betas }
    /// Added to the bias-corrected root of the second moment in the denominator (default 1e-8).
    public var eps: Float { adam.eps }
    /// Decoupled weight decay λ: each step multiplies the parameters by `1 - lr * λ`.
    public var weightDecay: Float { adam.decoupledWeightDecay }
    /// Number of steps taken (PyTorch's per-parameter `step`, shared here).
    public var stepCount: Int { adam.stepCount }

    /// - Precondition: `lr >= 0`, betas in `[0, 1)`, `weightDecay >= 0`.
    public init(parameters: [Parameter], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                eps: Float = 1e-8, weightDecay: Float = 1e-2) {
        precondition(weightDecay >= 0, "AdamW: weightDecay must be non-negative, got \(weightDecay)")
        adam = Adam(parameters: parameters, lr: lr, betas: betas, eps: eps, weightDecay: 0,
                    decoupledWeightDecay: weightDecay, name: "AdamW")
    }

    /// Applies one update with `gradients[i]` (shaped as `parameters[i]`) for `parameters[i]`.
    public func step(gradients: [Tensor]) { adam.step(gradients: gradients) }

    /// `N.exp_avg`, `N.exp_avg_sq` (shaped as parameter `N`) and the scalar `step`.
    public func stateDict() -> [(String, Tensor)] { adam.stateDict() }
    /// Adam's entries, read in place.
    public func forEachState(_ body: (String, [Int], UnsafeBufferPointer<Float>) throws -> Void) rethrows { try adam.forEachState(body) }

    /// Restores state written by ``stateDict()`` (by an ``AdamW`` or an ``Adam``).
    /// - Throws: ``StateDictError`` naming a missing or wrongly sized key.
    public func loadStateDict(_ state: [String: Tensor]) throws { try adam.loadStateDict(state) }
}
