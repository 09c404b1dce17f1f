import Foundation

// Diffusion math (DDPM, DDIM, v-prediction) as plain values and functions. Steps are 0-based:
// step t = 0..T-1 has noise level alphasCumprod[t] (the paper's step t + 1).

/// A variance schedule of a denoising diffusion model: `betas`, `alphas = 1 - betas` and
/// `alphasCumprod` (ᾱ), computed in Double.
///
/// - `linear` (Ho et al. 2020): `betas = linspace(1e-4, 0.02, T)`.
/// - `cosine` (Nichol & Dhariwal 2021): `f(t) = cos(((t/T + s)/(1 + s)) π/2)²`, `s = 0.008`,
///   `ᾱ(t) = f(t)/f(0)`, `β_t = min(1 - ᾱ(t+1)/ᾱ(t), 0.999)` for t = 0..T-1, and then
///   `alphasCumprod = cumprod(1 - betas)` (so the clipped betas define ᾱ).
public struct NoiseSchedule: Sendable, Equatable {
    /// The schedule's family.
    public enum Kind: String, Sendable, Equatable {
        /// `linear`: Ho et al. 2020's evenly spaced betas; `cosine`: Nichol & Dhariwal 2021's cosine ᾱ.
        case linear, cosine
    }

    /// The schedule's family (`linear` or `cosine`).
    public let kind: Kind
    /// β_t for t = 0..T-1.
    public let betas: [Double]
    /// `1 - β_t`.
    public let alphas: [Double]
    /// ᾱ_t = Π_{s ≤ t} (1 - β_s).
    public let alphasCumprod: [Double]

    /// Number of diffusion steps T.
    public var steps: Int { betas.count }

    /// Builds the schedule of `kind` with `steps` (T) steps.
    ///
    /// - Parameters: `betaStart`, `betaEnd` are the linear schedule's ends (Ho et al.'s 1e-4 and
    ///   0.02); `cosineOffset` is the cosine schedule's `s` (0.008).
    /// - Precondition: `steps ≥ 1` (≥ 2 for the linear schedule's end points to differ).
    public init(_ kind: Kind, steps: Int, betaStart: Double = 1e-4, betaEnd: Double = 0.02, cosineOffset: Double = 0.008) {
        precondition(steps >= 1, "NoiseSchedule: steps \(steps) must be ≥ 1")
        self.kind = kind
        var betas: [Double]
        switch kind {
        case .linear:
            let step = steps > 1 ? (betaEnd - betaStart) / Double(steps - 1) : 0
            betas = (0..<steps).map { betaStart + Double($0) * step }
        case .cosine:
            func f(_ t: Double) -> Double {
                let c = Foundation.cos((t / Double(steps) + cosineOffset) / (1 + cosineOffset) * Double.pi / 2)
                return c * c
            }
            let f0 = f(0)
            betas = (0..<steps).map { t in Swift.min(1 - (f(Double(t + 1)) / f0) / (f(Double(t)) / f0), 0.999) }
        }
        self.betas = betas
        alphas = betas.map { 1 - $0 }
        var acc = 1.0
        alphasCumprod = alphas.map { acc *= $0; return acc }
    }

    /// ᾱ at step `t`, with ᾱ_{-1} = 1 (the clean data) for `t = -1`.
    public func alphaBar(_ t: Int) -> Double {
        precondition(t >= -1 && t < steps, "NoiseSchedule.alphaBar: step \(t) outside -1..<\(steps)")
        return t < 0 ? 1 : alphasCumprod[t]
    }

    /// Per-sample factors `value(t_i)` as a `[N, 1, ..., 1]` tensor that broadcasts over `like`.
    func perSample(_ t: [Int], like x: Tensor, op: String, _ value: (Int) -> Double) -> Tensor {
        precondition(x.rank >= 1 && x.shape[0] == t.count, "\(op): \(t.count) steps for a batch of shape \(x.shape)")
        for s in t { precondition(s >= 0 && s < steps, "\(op): step \(s) outside 0..<\(steps)") }
        return Tensor(shape: [t.count] + [Int](repeating: 1, count: x.rank - 1), scalars: t.map { Float(value($0)) })
    }

    /// The forward (noising) process q(x_t | x_0) sampled with the given noise:
    /// `x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε` (Ho et al. 2020, eq. 4).
    ///
    /// - Shapes: `x0` and `noise` `[N, ...]`, `t` N steps → `[N, ...]`. Differentiable in both.
    public func noised(_ x0: Tensor, t: [Int], noise: Tensor) -> Tensor {
        precondition(x0.shape == noise.shape, "NoiseSchedule.noised: x0 \(x0.shape) and noise \(noise.shape) differ")
        let a = perSample(t, like: x0, op: "NoiseSchedule.noised") { alphasCumprod[$0].squareRoot() }
        let s = perSample(t, like: x0, op: "NoiseSchedule.noised") { (1 - alphasCumprod[$0]).squareRoot() }
        return x0 * a + noise * s
    }

    /// The clean-data estimate from a noise prediction:
    /// `x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t)`.
    ///
    /// - Shapes: `xt`, `epsPrediction` `[N, ...]`, `t` N steps → `[N, ...]`.
    public func predictedX0(xt: Tensor, t: [Int], epsPrediction: Tensor) -> Tensor {
        precondition(xt.shape == epsPrediction.shape, "NoiseSchedule.predictedX0: x_t \(xt.shape) and ε̂ \(epsPrediction.shape) differ")
        let s = perSample(t, like: xt, op: "NoiseSchedule.predictedX0") { (1 - alphasCumprod[$0]).squareRoot() }
        let inv = perSample(t, like: xt, op: "NoiseSchedule.predictedX0") { 1 / alphasCumprod[$0].squareRoot() }
        return (xt - epsPrediction * s) * inv
    }

    /// One DDIM step (Song et al. 2021, eq. 12) from step `t` to `t - 1` (to the data at
    /// `t = 0`): `x_{t-1} = sqrt(ᾱ_{t-1}) x̂_0 + sqrt(1 - ᾱ_{t-1} - σ²) ε̂ + σ z` with
    /// `σ = eta sqrt((1 - ᾱ_{t-1})/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_{t-1})`; `eta = 0` is the
    /// deterministic sampler, `eta = 1` DDPM's posterior variance.
    ///
    /// - Parameters: `noise` `z` like `xt`; needed only when `eta > 0`.
    /// - Shapes: `xt`, `epsPrediction` `[N, ...]`, `t` N steps → `[N, ...]`.
    public func ddimStep(xt: Tensor, t: [Int], epsPrediction: Tensor, eta: Double = 0, noise: Tensor? = nil) -> Tensor {
        precondition(eta >= 0 && (eta == 0 || noise?.shape == xt.shape),
                     "NoiseSchedule.ddimStep: eta \(eta) needs eta ≥ 0 and, when > 0, noise of shape \(xt.shape)")
        let x0 = predictedX0(xt: xt, t: t, epsPrediction: epsPrediction)
        func sigma(_ s: Int) -> Double {
            let ab = alphasCumprod[s], prev = alphaBar(s - 1)
            return eta * ((1 - prev) / (1 - ab)).squareRoot() * (1 - ab / prev).squareRoot()
        }
        let a = perSample(t, like: xt, op: "NoiseSchedule.ddimStep") { alphaBar($0 - 1).squareRoot() }
        let c = perSample(t, like: xt, op: "NoiseSchedule.ddimStep") { s in
            let sg = sigma(s)
            return Swift.max(1 - alphaBar(s - 1) - sg * sg, 0).squareRoot()
        }
        var out = x0 * a + epsPrediction * c
        if eta > 0, let noise {
            out = out + noise * perSample(t, like: xt, op: "NoiseSchedule.ddimStep", sigma)
        }
        return out
    }

    /// The DDPM reverse-process posterior q(x_{t-1} | x_t, x̂_0) with x̂_0 from the noise
    /// prediction (Ho et al. 2020, eqs. 6-7 and 11): mean
    /// `(x_t - β_t / sqrt(1 - ᾱ_t) ε̂) / sqrt(1 - β_t)`, variance
    /// `β̃_t = β_t (1 - ᾱ_{t-1}) / (1 - ᾱ_t)` (0 at t = 0).
    ///
    /// - Shapes: `xt`, `epsPrediction` `[N, ...]`, `t` N steps → `mean` `[N, ...]`, `variance`
    ///   `[N, 1, ..., 1]`.
    public func ddpmPosterior(xt: Tensor, t: [Int], epsPrediction: Tensor) -> (mean: Tensor, variance: Tensor) {
        precondition(xt.shape == epsPrediction.shape, "NoiseSchedule.ddpmPosterior: x_t \(xt.shape) and ε̂ \(epsPrediction.shape) differ")
        let c = perSample(t, like: xt, op: "NoiseSchedule.ddpmPosterior") { betas[$0] / (1 - alphasCumprod[$0]).squareRoot() }
        let inv = perSample(t, like: xt, op: "NoiseSchedule.ddpmPosterior") { 1 / alphas[$0].squareRoot() }
        let variance = perSample(t, like: xt, op: "NoiseSchedule.ddpmPosterior") {
            betas[$0] * (1 - alphaBar($0 - 1)) / (1 - alphasCumprod[$0])
        }
        return ((xt - epsPrediction * c) * inv, variance)
    }

    /// One ancestral DDPM sampling step (Ho et al. 2020, Algorithm 2 with σ_t² = β̃_t):
    /// `x_{t-1} = mean + sqrt(β̃_t) z` (no noise at t = 0, where β̃ is 0).
    ///
    /// - Shapes: `xt`, `epsPrediction`, `noise` `[N, ...]`, `t` N steps → `[N, ...]`.
    public func ddpmStep(xt: Tensor, t: [Int], epsPrediction: Tensor, noise: Tensor) -> Tensor {
        precondition(noise.shape == xt.shape, "NoiseSchedule.ddpmStep: noise \(noise.shape) for x_t \(xt.shape)")
        let (mean, variance) = ddpmPosterior(xt: xt, t: t, epsPrediction: epsPrediction)
        return mean + noise * variance.map { $0.squareRoot() }
    }

    /// The v-prediction target `v = sqrt(ᾱ_t) ε - sqrt(1 - ᾱ_t) x_0` (Salimans & Ho 2022).
    ///
    /// - Shapes: `x0`, `noise` `[N, ...]`, `t` N steps → `[N, ...]`.
    public func vTarget(x0: Tensor, t: [Int], noise: Tensor) -> Tensor {
        precondition(x0.shape == noise.shape, "NoiseSchedule.vTarget: x0 \(x0.shape) and noise \(noise.shape) differ")
        let a = perSample(t, like: x0, op: "NoiseSchedule.vTarget") { alphasCumprod[$0].squareRoot() }
        let s = perSample(t, like: x0, op: "NoiseSchedule.vTarget") { (1 - alphasCumprod[$0]).squareRoot() }
        return noise * a - x0 * s
    }
}

/// Sinusoidal timestep embedding of DDPM's U-Net (Ho et al. 2020, from Vaswani et al. 2017):
/// with `half = dim / 2` and `freqs[i] = exp(-ln(maxPeriod) i / half)`, the embedding of `t` is
/// `[cos(t freqs), sin(t freqs)]` (cosines first), computed in Double; an odd `dim` gets a
/// trailing zero column.
///
/// - Parameters: `t` the (0-based, possibly fractional) steps; `dim` ≥ 2.
/// - Returns: `[t.count, dim]`, a constant.
public func timestepEmbedding(_ t: [Double], dim: Int, maxPeriod: Double = 10_000) -> Tensor {
    precondition(dim >= 2 && maxPeriod > 0, "timestepEmbedding: dim \(dim) must be ≥ 2 and maxPeriod \(maxPeriod) > 0")
    let half = dim / 2
    let freqs = (0..<half).map { Foundation.exp(-Foundation.log(maxPeriod) * Double($0) / Double(half)) }
    var out = [Float](repeating: 0, count: t.count * dim)
    for (row, v) in t.enumerated() {
        for i in 0..<half {
            let a = v * freqs[i]
            out[row * dim + i] = Float(Foundation.cos(a))
            out[row * dim + half + i] = Float(Foundation.sin(a))
        }
    }
    return Tensor(shape: [t.count, dim], scalars: out)
}
