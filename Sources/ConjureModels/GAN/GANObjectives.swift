import ConjureNN

/// An adversarial objective as a value: the discriminator's (critic's) loss of real and fake
/// logits and the generator's loss of fake logits, each a scalar mean over the batch. Testable
/// on its own; ``GAN`` composes it with an optional ``GradientPenalty``.
public protocol GANObjective: Sendable {
    /// The discriminator's loss.
    ///
    /// - Shapes: `realLogits` `[N, 1]`, `fakeLogits` `[M, 1]` → scalar.
    func discriminatorLoss(realLogits: Tensor, fakeLogits: Tensor) -> Tensor
    /// The generator's loss.
    ///
    /// - Shapes: `fakeLogits` `[M, 1]` → scalar.
    func generatorLoss(fakeLogits: Tensor) -> Tensor
    /// The statistic logged as `d_real`/`d_fake`: the mean of `sigmoid(logit)` for a
    /// probabilistic objective, the mean raw output otherwise.
    func meanOutput(_ logits: Tensor) -> Float
}

extension GANObjective {
    /// The mean raw output (critics).
    public func meanOutput(_ logits: Tensor) -> Float { logits.scalars.reduce(0, +) / Float(logits.count) }
}

/// Binary cross-entropy on logits with the non-saturating generator loss (Goodfellow et al.
/// 2014): D `BCE(D(x), 1) + BCE(D(G(z)), 0)`, G `BCE(D(G(z)), 1)`.
public struct BCEObjective: GANObjective {
    /// The objective.
    public init() {}
    /// `mean BCE(realLogits, 1) + mean BCE(fakeLogits, 0)`, numerically stable.
    public func discriminatorLoss(realLogits: Tensor, fakeLogits: Tensor) -> Tensor {
        Loss.discriminatorLoss(realLogits: realLogits, fakeLogits: fakeLogits)
    }
    /// `mean BCE(fakeLogits, 1)` (non-saturating).
    public func generatorLoss(fakeLogits: Tensor) -> Tensor { Loss.generatorLoss(fakeLogits: fakeLogits) }
    /// The mean discriminator probability `sigmoid(logit)`.
    public func meanOutput(_ logits: Tensor) -> Float {
        logits.scalars.reduce(0) { $0 + Tensor.stableSigmoid($1) } / Float(logits.count)
    }
}

/// Least squares (Mao et al. 2017): D `½E[(D(x)-1)²] + ½E[D(G(z))²]`, G `½E[(D(G(z))-1)²]`.
public struct LeastSquaresObjective: GANObjective {
    /// The objective.
    public init() {}
    /// `½ mean (realLogits - 1)² + ½ mean fakeLogits²`.
    public func discriminatorLoss(realLogits r: Tensor, fakeLogits f: Tensor) -> Tensor { ((r - 1).squared().mean() + f.squared().mean()) * 0.5 }
    /// `½ mean (fakeLogits - 1)²`.
    public func generatorLoss(fakeLogits f: Tensor) -> Tensor { (f - 1).squared().mean() * 0.5 }
}

/// Hinge (Lim & Ye 2017; Miyato et al. 2018): D `E[relu(1-D(x))] + E[relu(1+D(G(z)))]`,
/// G `-E[D(G(z))]`.
public struct HingeObjective: GANObjective {
    /// The objective.
    public init() {}
    /// `mean relu(1 - realLogits) + mean relu(1 + fakeLogits)`.
    public func discriminatorLoss(realLogits r: Tensor, fakeLogits f: Tensor) -> Tensor { (1 - r).relu().mean() + (f + 1).relu().mean() }
    /// `-mean fakeLogits`.
    public func generatorLoss(fakeLogits f: Tensor) -> Tensor { -f.mean() }
}

/// Wasserstein (Arjovsky et al. 2017): critic `E[D(G(z))] - E[D(x)]`, G `-E[D(G(z))]`; with the
/// gradient penalty of ``GradientPenalty`` it is WGAN-GP (Gulrajani et al. 2017).
public struct WassersteinObjective: GANObjective {
    /// The objective.
    public init() {}
    /// `mean fakeLogits - mean realLogits`.
    public func discriminatorLoss(realLogits r: Tensor, fakeLogits f: Tensor) -> Tensor { f.mean() - r.mean() }
    /// `-mean fakeLogits`.
    public func generatorLoss(fakeLogits f: Tensor) -> Tensor { -f.mean() }
}

/// The WGAN-GP gradient penalty `λ E[(‖∇D(x̂)‖₂ - 1)²]` at random interpolates
/// `x̂ = ε x + (1 - ε) x̃` (Gulrajani et al. 2017, algorithm 1), differentiated through the
/// input gradient's norm.
public struct GradientPenalty: Sendable {
    /// The weight λ.
    public var lambda: Float

    /// A penalty of weight `lambda`.
    public init(lambda: Float) { self.lambda = lambda }

    /// The penalty for a critic on real and fake samples, drawing ε per sample from `rng`.
    ///
    /// - Shapes: `real`, `fake` `[N, D]` → scalar.
    public func callAsFunction(critic: (Tensor) -> Tensor, real: Tensor, fake: Tensor, rng: inout RandomGenerator) -> Tensor {
        wganGradientPenalty(critic: critic, real: real, fake: fake, lambda: lambda, rng: &rng)
    }
}

extension GANLoss {
    /// The objective this loss names.
    public var objective: any GANObjective {
        switch self {
        case .bce: return BCEObjective()
        case .lsgan: return LeastSquaresObjective()
        case .hinge: return HingeObjective()
        case .wgangp: return WassersteinObjective()
        }
    }
}
