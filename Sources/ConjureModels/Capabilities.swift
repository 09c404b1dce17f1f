import ConjureNN
import ConjureData

/// A model with an encoder that bounds the data's likelihood (a VAE): `conjure evaluate`'s
/// `elbo` metric asks for this capability, not for a family.
public protocol LikelihoodModel: GenerativeModel {
    /// The negative ELBO per sample with the given noise, in evaluation mode.
    ///
    /// - Shapes: `x` `[N, dataDim]`, `eps` `[N, latentDim]` → `[N]`, nats.
    func negativeELBO(x: Tensor, eps: Tensor) -> Tensor
    /// The importance-weighted bound on `-log p(x)` per sample (Burda et al. 2016), nats.
    ///
    /// - Shapes: `x` `[N, dataDim]` → N values.
    func iwaeBound(x: Tensor, k: Int, rng: inout RandomGenerator, maxRows: Int) -> [Double]
    /// The observation model's name (`bernoulli`, `gaussian`).
    var likelihoodName: String { get }
    /// Reference data as the bound is measured on: checked for the likelihood's support and,
    /// for a model trained on binarised data, binarised once with draws from `rng`.
    ///
    /// - Throws: ``DataError`` when a value lies outside the likelihood's support.
    func likelihoodReference(_ x: Tensor, rng: inout RandomGenerator) throws -> (x: Tensor, binarized: Bool)
}

/// A model that can count the matrix-product FLOPs of its training step, so that `conjure
/// bench` can state the GFLOP/s achieved.
public protocol StepCostModel {
    /// Matrix-product FLOPs of one training step at batch `n`, nil where the count is not
    /// modelled (convolutions, penalties).
    func matrixFLOPsPerStep(batch n: Int) -> Double?
}

extension VAE: LikelihoodModel {
    /// ``VAEConfig/likelihood``'s name.
    public var likelihoodName: String { config.likelihood.rawValue }

    /// Bernoulli data must lie in [0, 1]; with dynamic binarisation the reference is binarised
    /// once (the binarised-MNIST test protocol).
    ///
    /// - Throws: ``DataError`` for a value outside [0, 1] under the Bernoulli likelihood.
    public func likelihoodReference(_ x: Tensor, rng: inout RandomGenerator) throws -> (x: Tensor, binarized: Bool) {
        let bernoulli = config.likelihood == .bernoulli
        if bernoulli, let bad = x.scalars.first(where: { !($0 >= 0 && $0 <= 1) }) {
            throw DataError(file: "reference", problem: "holds the value \(bad) outside [0, 1]; a Bernoulli VAE models data in [0, 1]")
        }
        let binarize = bernoulli && config.binarize
        return (binarize ? VAE.binarized(x, using: &rng) : x, binarize)
    }
}

/// A model that samples by running a reverse diffusion process (a diffusion model): `conjure
/// sample --sampler/--steps/--eta/--guidance` and the progress display ask for this capability,
/// not for a family.
public protocol DiffusionSampling: GenerativeModel {
    /// The sampler ``GenerativeModel/sample(z:labels:)`` uses (from the configuration at load).
    var samplerSettings: DiffusionSamplerSettings { get }
    /// Checks and sets the sampler.
    ///
    /// - Throws: ``ConfigError`` naming the option (`--steps`, `--eta`, `--guidance`).
    func setSampler(_ settings: DiffusionSamplerSettings) throws
    /// Called after each denoising step of a sampling call with (steps done, steps in all).
    var samplingProgress: ((Int, Int) -> Void)? { get set }
    /// Seed of the noise added by stochastic samplers (DDPM, DDIM with eta > 0).
    var samplingNoiseSeed: UInt64 { get set }
    /// The sampler in words (`ddim 50 steps, eta 0.0`), recorded with evaluations.
    var samplerDescription: String { get }
    /// Samples with the current sampler from `x_T = z` like ``GenerativeModel/sample(z:labels:)``
    /// and hands `trajectory` every state of the reverse process: `(t, x_t)` before each
    /// denoising step (t from the largest timestep down), then `(-1, x_0)` unclipped.
    ///
    /// - Shapes: `z` `[N, D]` → `[N, D]`; each `x_t` `[N, D]` in the model's units (noise at
    ///   large t is not confined to [-1, 1]).
    func sample(z: Tensor, labels: [Int]?, trajectory: (Int, Tensor) -> Void) -> Tensor
    /// Denoiser passes (reverse-process steps) of one sampling call with ``samplerSettings``:
    /// DDIM's step count, or all T steps for DDPM ancestral sampling. A guided conditional
    /// model evaluates the network on a doubled batch at each of them.
    var samplerStepCount: Int { get }
}

/// A model whose training rows are not real values in the output's range (token indices):
/// `conjure bench` times it on the rows this gives instead of uniform noise.
public protocol SyntheticRowsModel: GenerativeModel {
    /// `batch` rows laid out as the model's training data, drawn from `rng`.
    ///
    /// - Shapes: `[batch, D]` with the model's row length `D`.
    func syntheticRows(batch: Int, rng: inout RandomGenerator) -> Tensor
}
