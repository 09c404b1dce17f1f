import Foundation
import ConjureData
import ConjureNN
import ConjureOptim

// Longer than 400 lines on purpose: the VAE's loss terms, step plan, importance-weighted bound and sampling all use the same encoder/decoder conventions (shapes, clamps, likelihoods).

/// Statistics of one VAE training step, in nats per sample (means over the batch).
public struct VAEStepStats: Sendable, Equatable {
    /// The negative ELBO `reconstruction + kl` (an upper bound on `-log p(x)`), nats/sample.
    /// Always the unweighted bound, also during KL warm-up.
    public var loss: Float
    /// `E_q[-log p(x|z)]` estimated with the one reparameterised sample, nats/sample.
    public var reconstruction: Float
    /// `KL(q(z|x) ‖ N(0, I))` in closed form, nats/sample.
    public var kl: Float
    /// The KL weight used in this step's objective (1 without warm-up).
    public var klWeight: Float

    /// Statistics from the negative ELBO, its two terms (nats per sample) and the KL weight.
    public init(loss: Float, reconstruction: Float, kl: Float, klWeight: Float) {
        self.loss = loss; self.reconstruction = reconstruction; self.kl = kl; self.klWeight = klWeight
    }
}

/// The VAE family in the registry: MLP and convolutional VAEs with Bernoulli or Gaussian
/// likelihoods.
public enum VAEFamily: ModelFamily {
    /// `vae`.
    public static let name = "vae"
    /// `vae`, `conv-vae`.
    public static var presets: [String: VAEConfig] { VAEConfig.presets }
    /// A VAE with PyTorch's default initialisation (encoder first, then decoder).
    public static func make(_ config: VAEConfig, rng: inout RandomGenerator) -> any GenerativeModel { VAE(config: config, rng: &rng) }

    /// The Bernoulli likelihood needs data in [0, 1].
    ///
    /// - Throws: ``ConfigError`` naming `--normalize` or `--data-range`.
    public static func validate(_ config: VAEConfig, data: DataSummary) throws {
        if config.likelihood == .bernoulli && !(data.valueRange.lowerBound >= 0 && data.valueRange.upperBound <= 1) {
            throw ConfigError(option: "--normalize",
                              problem: "the Bernoulli likelihood of --model \(config.preset) needs data in [0, 1]; \(data.source) scales to [\(data.valueRange.lowerBound), \(data.valueRange.upperBound)]",
                              hint: "use --normalize unit with the data's true range, or --likelihood gaussian")
        }
    }

    /// Unit data for the Bernoulli likelihood; z-scored, unit or raw data for the Gaussian one.
    ///
    /// - Throws: ``ConfigError`` naming `--normalize`.
    public static func checkNormalization(_ kind: Normalization, config: VAEConfig) throws {
        switch (kind, config.outputActivation) {
        case (.symmetric, .sigmoid), (.zscore, .sigmoid), (.none, .sigmoid), (.symmetric, .identity):
            throw ConfigError(option: "--normalize", problem: "\(kind.rawValue) data does not suit the \(config.likelihood.rawValue) likelihood of --model \(config.preset)",
                              hint: config.likelihood == .bernoulli ? "use --normalize unit, or --likelihood gaussian" : "use --normalize zscore, unit or none")
        default: break
        }
    }
}

/// A variational autoencoder (Kingma & Welling 2014).
///
/// `q(z|x) = N(μ(x), diag(exp(logvar(x))))`, `p(z) = N(0, I)`, `p(x|z)` Bernoulli (logits) or
/// Gaussian (mean) per ``VAEConfig/likelihood``. Samples are flat `[N, dataDim]` everywhere;
/// the convolutional networks see them as `[N, C, H, W]`.
///
/// State-dict names follow PyTorch for a module with an `encoder` and a `decoder`
/// `nn.Sequential` (and a `log_sigma` `nn.Parameter` for a learned Gaussian scale):
/// `encoder.0.weight` `[200, 784]`, ..., `encoder.4.bias` `[100]`, `decoder.0.weight` `[200, 50]`, ...
public final class VAE: GenerativeModel {
    /// The configuration the networks were built from.
    public let config: VAEConfig
    /// Maps `[N, dataDim]` (MLP) or `[N, C, H, W]` (conv) to `[N, 2·latentDim]`: `μ` in the
    /// first half of each row, `log σ²` (before clamping) in the second.
    public let encoder: Sequential
    /// Maps `z` `[N, latentDim]` to Bernoulli logits or Gaussian means, `[N, dataDim]` (MLP)
    /// or `[N, C, H, W]` (conv).
    public let decoder: Sequential
    /// Learned per-dimension `log σ` `[dataDim]` of the Gaussian likelihood, nil otherwise.
    public let logSigma: Parameter?
    /// One parameter group, `model` (all parameters in ``parameters`` order; its optimiser
    /// state is saved as `optimizer.*` and its averages as `ema.*`).
    public let parameterGroups: [ParameterGroup]
    /// A VAE holding the averaged weights for sampling, built on first use.
    private var averagedCopy: VAE?

    /// `vae`.
    public var family: String { VAEFamily.name }
    /// ``VAEConfig/latentDim``.
    public var latentDim: Int { config.latentDim }
    /// `loss` (negative ELBO), `reconstruction` and `kl`, nats per sample.
    public var stepStatisticNames: [String] { ["loss", "reconstruction", "kl"] }
    /// All three.
    public var lossStatisticCount: Int { 3 }
    /// Nil: a VAE is not conditional.
    public func balancedLabels(_ n: Int, offset: Int) -> [Int]? { nil }

    /// The range a learned Gaussian `log σ` is clamped to (σ from 9e-4 to 1100). Data
    /// dimensions that are constant would otherwise drive σ to 0 and the likelihood to
    /// infinity.
    public static let logSigmaRange: ClosedRange<Float> = -7...7

    /// All trainable parameters in optimiser order: `log_sigma` (if any), encoder, decoder.
    public var parameters: [Parameter] { (logSigma.map { [$0] } ?? []) + encoder.parameters + decoder.parameters }

    /// Builds the networks with PyTorch's default initialisation from `rng` (encoder first,
    /// then decoder).
    ///
    /// - Precondition: `config` is valid (see ``VAEConfig/validate()``).
    public init(config: VAEConfig, rng: inout RandomGenerator) {
        self.config = config
        let kind: Activation.Kind = config.activation == .relu ? .relu : .tanh
        func activation() -> Activation { Activation(kind) }
        var e: [any Layer] = []
        var d: [any Layer] = []
        let l = config.latentDim
        switch config.architecture {
        case .mlp:
            var width = config.dataDim
            for h in config.encoderHidden {
                e.append(Linear(width, h, rng: &rng)); e.append(activation()); width = h
            }
            e.append(Linear(width, 2 * l, rng: &rng))
            width = l
            for h in config.decoderHidden {
                d.append(Linear(width, h, rng: &rng)); d.append(activation()); width = h
            }
            d.append(Linear(width, config.dataDim, rng: &rng))
        case .conv:
            precondition(config.imageShape?.count == 3, "VAE: the conv architecture needs imageShape [C, H, W], got \(String(describing: config.imageShape))")
            let c = config.imageShape![0], s = config.convSide
            e = [Conv2d(c, 32, kernelSize: 4, stride: 2, padding: 1, rng: &rng), activation(),
                 Conv2d(32, 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng), activation(),
                 Flatten(), Linear(64 * s * s, 2 * l, rng: &rng)]
            d = [Linear(l, 64 * s * s, rng: &rng), activation(), Reshape([64, s, s]),
                 ConvTranspose2d(64, 32, kernelSize: 4, stride: 2, padding: 1, rng: &rng), activation(),
                 ConvTranspose2d(32, c, kernelSize: 4, stride: 2, padding: 1, rng: &rng)]
        }
        encoder = Sequential(e)
        decoder = Sequential(d)
        logSigma = config.likelihood == .gaussian && config.gaussianSigma == nil ? Parameter(.zeros([config.dataDim])) : nil
        parameterGroups = [ParameterGroup(name: "model", prefix: "",
                                          namedParameters: (logSigma.map { [("log_sigma", $0)] } ?? []) + encoder.allNamedParameters(prefix: "encoder.")
                                              + decoder.allNamedParameters(prefix: "decoder."),
                                          learningRate: config.lr, stateKeyPrefix: "optimizer.", averaged: true, averagePrefix: "ema.")]
    }

    // MARK: - Loss terms

    /// `KL(N(μ, diag(exp(logvar))) ‖ N(0, I)) = ½ Σ_j (μ_j² + exp(logvar_j) - 1 - logvar_j)`
    /// per row, in nats (Kingma & Welling 2014, appendix B).
    ///
    /// - Shapes: `mu`, `logvar` `[N, L]` → `[N]`.
    public static func gaussianKL(mu: Tensor, logvar: Tensor) -> Tensor {
        precondition(mu.rank == 2 && mu.shape == logvar.shape, "VAE.gaussianKL: mu \(mu.shape), logvar \(logvar.shape)")
        return (mu.squared() + logvar.exp() - logvar - 1).sum(axes: [1]) * 0.5
    }

    /// Bernoulli negative log-likelihood `-log p(x|l) = Σ_d softplus(l_d) - l_d x_d` per row, in
    /// nats: binary cross-entropy on logits summed over dimensions, in the stable form
    /// `max(l, 0) - l x + log1p(exp(-|l|))` (accumulated in Double).
    ///
    /// - Shapes: `logits`, `x` `[N, D]` → `[N]`; `x` in [0, 1] (a constant).
    public static func bernoulliNLL(logits: Tensor, x: Tensor) -> Tensor {
        precondition(logits.rank == 2 && logits.shape == x.shape, "VAE.bernoulliNLL: logits \(logits.shape), x \(x.shape)")
        return (logits.softplus() - logits * x.detached()).sum(axes: [1])
    }

    /// Gaussian negative log-likelihood per row, in nats, with the `log 2π` constant so that
    /// values are true (differential) nats:
    /// `Σ_d ½ log 2π + log σ_d + ½ ((x_d - μ_d) / σ_d)²`.
    ///
    /// - Shapes: `mean`, `x` `[N, D]`; `logSigma` `[D]` or a scalar → `[N]`.
    public static func gaussianNLL(mean: Tensor, logSigma: Tensor, x: Tensor) -> Tensor {
        precondition(mean.rank == 2 && mean.shape == x.shape && (logSigma.count == 1 || logSigma.shape == [x.shape[1]]),
                     "VAE.gaussianNLL: mean \(mean.shape), logSigma \(logSigma.shape), x \(x.shape)")
        let d = x.shape[1]
        let ls = logSigma.count == 1 ? logSigma.reshaped([]) : logSigma
        let standardized = (x.detached() - mean) * (-ls).exp()
        let perSampleLogSigma = logSigma.count == 1 ? ls * Float(d) : ls.sum()
        return standardized.squared().sum(axes: [1]) * 0.5 + (perSampleLogSigma + Float(0.5 * Foundation.log(2 * Double.pi) * Double(d)))
    }

    // MARK: - Networks

    /// Flat `[N, dataDim]` view of a batch given flat or as `[N, C, H, W]`.
    func flat(_ x: Tensor, _ op: String) -> Tensor {
        precondition(x.rank >= 2 && x.shape[0] > 0 && x.count == x.shape[0] * config.dataDim,
                     "\(op): batch \(x.shape), expected [N, \(config.dataDim)]")
        return x.rank == 2 ? x : x.reshaped([x.shape[0], config.dataDim])
    }

    /// `q(z|x)`: the mean and the clamped log-variance.
    ///
    /// - Shapes: `x` `[N, dataDim]` → `mu`, `logvar` `[N, latentDim]`. Records autodiff
    ///   history unless called inside `withoutGrad`.
    public func encode(_ x: Tensor) -> (mu: Tensor, logvar: Tensor) {
        let xs = flat(x, "VAE.encode")
        let input = config.architecture == .conv ? xs.reshaped([xs.shape[0]] + config.imageShape!) : xs
        let h = encoder(input)
        let l = config.latentDim
        return (h.slice(axis: 1, 0..<l), h.slice(axis: 1, l..<(2 * l)).clamped(config.logvarClamp.lowerBound, config.logvarClamp.upperBound))
    }

    /// The decoder's output, flat: Bernoulli logits or Gaussian means `[N, dataDim]`.
    func decodeRaw(_ z: Tensor) -> Tensor {
        let y = decoder(z)
        return y.rank == 2 ? y : y.reshaped([y.shape[0], config.dataDim])
    }

    /// The likelihood's `log σ` (learned and clamped, or fixed), nil for Bernoulli.
    func currentLogSigma() -> Tensor? {
        guard config.likelihood == .gaussian else { return nil }
        if let p = logSigma { return p.value.clamped(VAE.logSigmaRange.lowerBound, VAE.logSigmaRange.upperBound) }
        return Tensor(Foundation.log(config.gaussianSigma ?? 1))
    }

    /// `-log p(x|z)` per row from the decoder output.
    func reconstructionNLL(decoded: Tensor, x: Tensor) -> Tensor {
        switch config.likelihood {
        case .bernoulli: return VAE.bernoulliNLL(logits: decoded, x: x)
        case .gaussian: return VAE.gaussianNLL(mean: decoded, logSigma: currentLogSigma()!, x: x)
        }
    }

    func checkNoise(_ eps: Tensor, rows n: Int, _ op: String) {
        precondition(eps.shape == [n, config.latentDim], "\(op): eps \(eps.shape), expected [\(n), \(config.latentDim)]")
    }

    func checkBernoulliData(_ x: Tensor, _ op: String) {
        guard config.likelihood == .bernoulli else { return }
        if let i = x.scalars.firstIndex(where: { !($0 >= 0 && $0 <= 1) }) {
            preconditionFailure("\(op): x element \(i) of batch \(x.shape) is \(x.scalars[i]); the Bernoulli likelihood needs data in [0, 1]")
        }
    }

    /// The two terms of the negative ELBO per sample with one reparameterised sample
    /// `z = μ + exp(logvar / 2) · eps`, differentiable with respect to the parameters. The
    /// networks run in their current mode; no binarisation.
    ///
    /// - Shapes: `x` `[N, dataDim]`, `eps` `[N, latentDim]` (standard normal) →
    ///   `reconstruction` `-log p(x|z)` `[N]` and `kl` `KL(q(z|x) ‖ p(z))` `[N]`, nats.
    /// - Source: Kingma & Welling 2014, eq. 10 (the SGVB estimator with analytic KL).
    public func elboTerms(x: Tensor, eps: Tensor) -> (reconstruction: Tensor, kl: Tensor) {
        let xs = flat(x, "VAE.elboTerms")
        checkNoise(eps, rows: xs.shape[0], "VAE.elboTerms")
        let (mu, logvar) = encode(xs)
        let z = mu + (logvar * 0.5).exp() * eps
        return (reconstructionNLL(decoded: decodeRaw(z), x: xs), VAE.gaussianKL(mu: mu, logvar: logvar))
    }

    /// Runs `body` with both networks in evaluation mode and no autodiff history.
    func evaluating<R>(_ body: () -> R) -> R {
        let (e, d) = (encoder.isTraining, decoder.isTraining)
        encoder.isTraining = false
        decoder.isTraining = false
        defer { encoder.isTraining = e; decoder.isTraining = d }
        return withoutGrad(body)
    }

    /// The negative ELBO per sample, `-log p(x|z) + KL(q(z|x) ‖ p(z))` with the given noise,
    /// in evaluation mode, without autodiff history and without binarisation. An upper bound
    /// on `-log p(x)` in expectation over `eps`.
    ///
    /// - Shapes: `x` `[N, dataDim]`, `eps` `[N, latentDim]` → `[N]`, nats.
    public func negativeELBO(x: Tensor, eps: Tensor) -> Tensor {
        checkBernoulliData(x, "VAE.negativeELBO")
        return evaluating {
            let t = elboTerms(x: x, eps: eps)
            return t.reconstruction + t.kl
        }
    }

    // MARK: - Training

    /// Bernoulli(`x`) draws: 1 where a uniform draw `u` in [0, 1) is below `x`, else 0 (one
    /// draw per element, in order).
    ///
    /// - Shapes: any, with elements in [0, 1]; the result has the same shape.
    public static func binarized(_ x: Tensor, using rng: inout RandomGenerator) -> Tensor {
        var out = [Float](repeating: 0, count: x.count)
        x.withUnsafeScalars { p in
            for i in 0..<p.count where rng.nextUniform() < p[i] { out[i] = 1 }
        }
        return Tensor(shape: x.shape, scalars: out)
    }

    /// The KL weight of the training objective at optimiser step `t` (1-based):
    /// `min(1, t / klWarmupSteps)`, 1 without warm-up.
    public func klWeight(atStep t: Int) -> Float {
        config.klWarmupSteps > 0 ? Swift.min(1, Float(t) / Float(config.klWarmupSteps)) : 1
    }

    /// The plan of one step: a single stage on the mean negative ELBO of a batch (Kingma &
    /// Welling 2014, algorithm 1).
    ///
    /// With ``VAEConfig/binarize`` (and the Bernoulli likelihood) the batch is first replaced
    /// by Bernoulli(`x`) draws from the ``RandomStream/binarization`` stream at the group's
    /// update count, so a resumed run repeats the same draws. The objective is
    /// `mean(reconstruction) + w · mean(kl)` with the warm-up weight `w` of
    /// ``klWeight(atStep:)``.
    ///
    /// - Shapes: `batch.x` `[N, dataDim]` (in [0, 1] for Bernoulli), `batch.z` `[N, latentDim]`
    ///   standard normal noise for `z = μ + exp(logvar / 2) · eps`.
    public func trainingStep(_ batch: TrainingBatch, context: StepContext) -> TrainingStep {
        precondition(batch.labels == nil, "VAE: labels given to an unconditional model")
        var xs = flat(batch.x, "VAE.trainingStep")
        let eps = batch.z
        checkNoise(eps, rows: xs.shape[0], "VAE.trainingStep")
        checkBernoulliData(xs, "VAE.trainingStep")
        encoder.isTraining = true
        decoder.isTraining = true
        let t = context.updates(of: "model")
        if config.binarize && config.likelihood == .bernoulli {
            var r = context.random(.binarization, counter: t)
            xs = VAE.binarized(xs, using: &r)
        }
        let w = klWeight(atStep: t + 1)
        var stats = (recon: Float.nan, kl: Float.nan)
        let stage = StepStage(group: "model") { [self] in
            let terms = elboTerms(x: xs, eps: eps)
            let recon = terms.reconstruction.mean(), kl = terms.kl.mean()
            stats = (recon.item, kl.item)
            return w == 1 ? recon + kl : recon + kl * w
        }
        return TrainingStep(stages: [stage]) {
            StepMetrics([("loss", stats.recon + stats.kl), ("reconstruction", stats.recon), ("kl", stats.kl)])
        }
    }

    // MARK: - Evaluation and sampling

    /// `log p(x, z) - log q(z|x)` for one `z = μ + σ·eps` per row, in nats, evaluated in Double
    /// from the Float32 terms. `log p(z) - log q(z|x) = ½ Σ_j (eps_j² + logvar_j - z_j²)`
    /// (the `log 2π` terms cancel).
    ///
    /// - Shapes: `x` `[N, dataDim]`, `eps` `[N, latentDim]` → N values.
    public func logImportanceWeights(x: Tensor, eps: Tensor) -> [Double] {
        evaluating {
            let xs = flat(x, "VAE.logImportanceWeights")
            checkNoise(eps, rows: xs.shape[0], "VAE.logImportanceWeights")
            let (mu, logvar) = encode(xs)
            return logWeights(x: xs, mu: mu, logvar: logvar, eps: eps)
        }
    }

    func logWeights(x: Tensor, mu: Tensor, logvar: Tensor, eps: Tensor) -> [Double] {
        let z = mu + (logvar * 0.5).exp() * eps
        let nll = reconstructionNLL(decoded: decodeRaw(z), x: x).scalars
        let n = x.shape[0], l = config.latentDim
        var out = [Double](repeating: 0, count: n)
        for i in 0..<n {
            var s = 0.0
            for j in (i * l)..<((i + 1) * l) {
                let e = Double(eps.scalars[j]), zz = Double(z.scalars[j])
                s += e * e + Double(logvar.scalars[j]) - zz * zz
            }
            out[i] = 0.5 * s - Double(nll[i])
        }
        return out
    }

    /// The importance-weighted estimate of `-log p(x)` per sample (Burda et al. 2016, eq. 8):
    /// `-log (1/k Σ_i p(x, z_i) / q(z_i|x))` with `z_i ~ q(z|x)`, the log-sum-exp in Double.
    /// Its expectation is an upper bound on `-log p(x)` that tightens as `k` grows; `k = 1`
    /// is the negative ELBO with a Monte Carlo KL term.
    ///
    /// Runs in evaluation mode without autodiff history, at most `maxRows` rows of `N·k` at
    /// a time, so memory stays bounded. The noise equals one draw
    /// `Tensor.randomNormal([N·k, latentDim], using: &rng)` whatever `maxRows` is; row `r`
    /// belongs to sample `r / k`.
    ///
    /// - Shapes: `x` `[N, dataDim]` (not binarised here) → N values, nats.
    public func iwaeBound(x: Tensor, k: Int, rng: inout RandomGenerator, maxRows: Int = 1024) -> [Double] {
        precondition(k >= 1, "VAE.iwaeBound: k must be at least 1, got \(k)")
        let xs = flat(x, "VAE.iwaeBound")
        checkBernoulliData(xs, "VAE.iwaeBound")
        let n = xs.shape[0], total = n * k
        // Even chunks keep the Box–Muller pairs aligned with a single draw.
        let chunk = Swift.max(2, maxRows - maxRows % 2)
        var logW = [Double](repeating: 0, count: total)
        evaluating {
            var start = 0
            while start < total {
                let rows = Swift.min(chunk, total - start)
                let first = start / k, last = (start + rows - 1) / k
                let (mu, logvar) = encode(xs.slice(axis: 0, first..<(last + 1)))
                let owners = (start..<(start + rows)).map { $0 / k - first }
                let eps = Tensor.randomNormal([rows, config.latentDim], using: &rng)
                let w = logWeights(x: xs.gathered(rows: owners.map { $0 + first }), mu: mu.gathered(rows: owners),
                                   logvar: logvar.gathered(rows: owners), eps: eps)
                for (i, v) in w.enumerated() { logW[start + i] = v }
                start += rows
            }
        }
        let logK = Foundation.log(Double(k))
        return (0..<n).map { i in
            let ws = logW[(i * k)..<((i + 1) * k)]
            let m = ws.max()!
            guard m.isFinite else { return -m }
            let s = ws.reduce(0.0) { $0 + Foundation.exp($1 - m) }
            return -(m + Foundation.log(s) - logK)
        }
    }

    /// The decoder's mean `E[x|z]` (sigmoid of the logits for Bernoulli, the mean for
    /// Gaussian), in evaluation mode without autodiff history; from a copy holding the averaged
    /// weights when the run averages them (`--ema`). Likelihood bounds
    /// (``negativeELBO(x:eps:)``, ``iwaeBound(x:k:rng:maxRows:)``) use the live weights.
    ///
    /// - Shapes: `z` `[N, latentDim]` → `[N, dataDim]`.
    public func sample(z: Tensor) -> Tensor {
        precondition(z.rank == 2 && z.shape[1] == config.latentDim, "VAE.sample: z \(z.shape), expected [N, \(config.latentDim)]")
        let sampler = samplingModel()
        if sampler !== self { return sampler.sample(z: z) }
        return evaluating {
            let y = decodeRaw(z)
            return config.likelihood == .bernoulli ? y.sigmoid() : y
        }
    }

    /// `decoder.`: sampling needs the decoder only.
    public var samplingStatePrefixes: [String] { ["decoder."] }

    /// The VAE ``sample(z:)`` decodes with: a copy holding the averaged weights when the run
    /// averages them (`--ema`), else this one.
    func samplingModel() -> VAE {
        parameterGroups[0].averagedCopy(&averagedCopy, make: { [config] in
            var scratch = RandomStream.initialization.generator(seed: config.seed)
            return VAE(config: config, rng: &scratch)
        }, parameters: { $0.parameterGroups[0].parameters }) ?? self
    }

    /// ``sample(z:)`` for the ``GenerativeModel`` protocol.
    ///
    /// - Precondition: `labels` is nil (a VAE is unconditional).
    public func sample(z: Tensor, labels: [Int]?) -> Tensor {
        precondition(labels == nil, "VAE: labels given to an unconditional model")
        return sample(z: z)
    }

    /// The decoder's mean at the posterior mean `z = μ(x)` (deterministic), in evaluation
    /// mode without autodiff history.
    ///
    /// - Shapes: `x` `[N, dataDim]` → `[N, dataDim]`.
    public func reconstruct(x: Tensor) -> Tensor {
        let mu = evaluating { encode(x).mu }
        return sample(z: mu)
    }

    // MARK: - State

    /// Parameters and buffers: `log_sigma` (learned Gaussian scale only), `encoder.*`, `decoder.*`.
    public func stateDict() -> [(String, Tensor)] {
        (logSigma.map { [("log_sigma", $0.value.detached())] } ?? [])
            + encoder.stateDict(prefix: "encoder.") + decoder.stateDict(prefix: "decoder.")
    }

    /// Loads every parameter from `state_dict` names.
    ///
    /// - Throws: ``StateDictError`` naming a missing key or a shape mismatch.
    public func loadStateDict(_ values: [String: Tensor]) throws {
        if let p = logSigma {
            guard let v = values["log_sigma"] else { throw StateDictError(key: "log_sigma", problem: "missing") }
            guard v.shape == p.shape else { throw StateDictError(key: "log_sigma", problem: "shape \(v.shape) does not match the model's \(p.shape)") }
            p.assign(v)
        }
        try encoder.loadStateDict(values, prefix: "encoder.")
        try decoder.loadStateDict(values, prefix: "decoder.")
    }
}

