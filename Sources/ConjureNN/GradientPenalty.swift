import Foundation

/// Per-sample squared L2 norms of a batch `[N, ...]`: `[N]`, the sum over all features.
private func perSampleSquaredNorms(_ g: Tensor) -> Tensor {
    let n = g.shape[0]
    let flat = g.reshaped([n, g.count / Swift.max(n, 1)])
    return (flat * flat).sum(axes: [1])
}

/// The WGAN-GP gradient penalty (Gulrajani et al. 2017, "Improved Training of Wasserstein
/// GANs", eq. 3): `lambda · mean_i (‖∇ₓ D(x̂_i)‖₂ - 1)²` at `x̂ = eps·real + (1 - eps)·fake`.
///
/// The input gradient is taken with `createGraph: true`, so the returned penalty is
/// differentiable with respect to the critic's parameters (second order, exact). `real` and
/// `fake` are treated as constants (the interpolates are a fresh leaf), as in the paper's
/// critic step.
///
/// - Parameters:
///   - critic: the critic `D`; it must treat samples independently (no batch norm in
///     training mode), since the gradient of `sum_i D(x̂_i)` is taken.
///   - real, fake: samples of the same shape `[N, ...]`.
///   - eps: interpolation weights `[N, 1]` (vectors) or `[N, 1, 1, 1]` (images), usually U(0, 1).
///   - lambda: the penalty weight (the paper's 10).
/// - Returns: a scalar.
/// - Note: the norm is `sqrt(Σ g² + 1e-12)` so that a zero gradient gives a finite derivative.
public func wganGradientPenalty(critic: (Tensor) -> Tensor, real: Tensor, fake: Tensor, eps: Tensor,
                                lambda: Float = 10) -> Tensor {
    precondition(real.shape == fake.shape && real.rank >= 1,
                 "wganGradientPenalty: real \(real.shape) and fake \(fake.shape) must have the same [N, ...] shape")
    precondition(eps.rank == real.rank && eps.shape[0] == real.shape[0] && eps.shape.dropFirst().allSatisfy { $0 == 1 },
                 "wganGradientPenalty: eps \(eps.shape) must be [N, 1, ...] for samples \(real.shape)")
    let e = eps.detached(), r = real.detached(), f = fake.detached()
    let xHat = (e * r + (1 - e) * f).detached().requiringGrad()
    let out = critic(xHat)
    let grad = Tensor.gradients(of: out.sum(), wrt: [xHat], createGraph: true)[0]
    let norms = (perSampleSquaredNorms(grad) + 1e-12).sqrt()
    let dev = norms - 1
    return (dev * dev).mean() * lambda
}

/// WGAN-GP penalty with the interpolation weights drawn from U(0, 1), one per sample.
///
/// - Shapes: `real`, `fake` `[N, ...]`; `eps` is drawn as `[N, 1, ...]`.
public func wganGradientPenalty(critic: (Tensor) -> Tensor, real: Tensor, fake: Tensor,
                                lambda: Float = 10, rng: inout RandomGenerator) -> Tensor {
    let epsShape = [real.shape[0]] + [Int](repeating: 1, count: Swift.max(real.rank - 1, 0))
    let eps = Tensor.randomUniform(epsShape, using: &rng)
    return wganGradientPenalty(critic: critic, real: real, fake: fake, eps: eps, lambda: lambda)
}

/// The R1 penalty (Mescheder et al. 2018, "Which Training Methods for GANs do actually
/// Converge?", eq. 9): `gamma / 2 · mean_i ‖∇ₓ D(x_i)‖²` on real samples.
///
/// Differentiable with respect to the critic's parameters (the input gradient is taken with
/// `createGraph: true`); `real` is a constant.
///
/// - Parameters:
///   - critic: the discriminator, returning logits `[N]` or `[N, 1]`; samples independent.
///   - real: real samples `[N, ...]`.
///   - gamma: the penalty weight (StyleGAN uses 10 for FFHQ; smaller for small images).
/// - Returns: a scalar.
public func r1Penalty(critic: (Tensor) -> Tensor, real: Tensor, gamma: Float = 10) -> Tensor {
    precondition(real.rank >= 1, "r1Penalty: real samples \(real.shape) need a batch axis")
    let x = real.detached().requiringGrad()
    let grad = Tensor.gradients(of: critic(x).sum(), wrt: [x], createGraph: true)[0]
    return perSampleSquaredNorms(grad).mean() * (gamma / 2)
}
