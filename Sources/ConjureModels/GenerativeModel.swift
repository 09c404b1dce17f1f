import ConjureNN

/// Named scalar statistics of one training step, in the order they are logged
/// (`d_loss`, `g_loss`, `d_real`, `d_fake` for a GAN; `loss`, `reconstruction`, `kl` for a VAE).
public struct StepMetrics: Sendable {
    public var values: [(name: String, value: Float)]

    public init(_ values: [(name: String, value: Float)]) { self.values = values }

    /// The value named `name`, nil when the model does not report it.
    public subscript(name: String) -> Float? { values.first { $0.name == name }?.value }

    /// The first non-finite value, if any.
    public var firstNonFinite: (name: String, value: Float)? { values.first { !$0.value.isFinite } }
}

/// What the trainer, checkpoints, `sample` and `evaluate` need of a model family: a training
/// step on a batch, sampling from the latent prior, and `state_dict`s.
public protocol GenerativeModel: AnyObject {
    /// Size of the latent `z` that ``sample(z:labels:)`` and ``train(batch:z:labels:)`` take.
    var latentDim: Int { get }
    /// One optimisation step (for a GAN: one discriminator update and, every `nCritic`-th
    /// call, one generator update).
    ///
    /// - Shapes: `real` `[N, dataDim]` (normalised); `z` `[N, latentDim]` standard normal noise
    ///   (the generator's input for a GAN, the reparameterisation noise for a VAE).
    /// - Parameter labels: class labels of the batch for conditional models, else nil.
    func train(batch real: Tensor, z: Tensor, labels: [Int]?) -> StepMetrics
    /// The names of ``train(batch:z:labels:)``'s statistics, in its order.
    var stepStatisticNames: [String] { get }
    /// How many of those, from the first, are losses (shown on progress lines).
    var lossStatisticCount: Int { get }
    /// Samples `[N, dataDim]` in the normalised range from latent `z` `[N, latentDim]`, in
    /// evaluation mode and without autodiff history.
    func sample(z: Tensor, labels: [Int]?) -> Tensor
    /// Balanced labels `i mod K` for `n` samples of a conditional model, nil otherwise.
    func balancedLabels(_ n: Int, offset: Int) -> [Int]?
    /// Multiplies every optimiser's base learning rate by `factor` (learning-rate schedules).
    func setLearningRateFactor(_ factor: Float)
    /// Parameters and buffers under PyTorch `state_dict` names.
    func stateDict() -> [(String, Tensor)]
    func loadStateDict(_ values: [String: Tensor]) throws
    /// Optimiser state under `optimizer.*` names (`exp_avg`, `exp_avg_sq`, `step`).
    func optimizerStateDict() -> [(String, Tensor)]
    func loadOptimizerStateDict(_ values: [String: Tensor]) throws
}

extension GAN: GenerativeModel {
    public var latentDim: Int { config.noiseDim }

    public var stepStatisticNames: [String] { ["d_loss", "g_loss", "d_real", "d_fake"] }
    public var lossStatisticCount: Int { 2 }

    public func train(batch real: Tensor, z: Tensor, labels: [Int]?) -> StepMetrics {
        let s = trainStep(real: real, z: z, labels: labels)
        return StepMetrics([("d_loss", s.dLoss), ("g_loss", s.gLoss), ("d_real", s.meanDReal), ("d_fake", s.meanDFake)])
    }

    public func setLearningRateFactor(_ factor: Float) {
        generatorOptimizer.lr = config.generatorLR * factor
        discriminatorOptimizer.lr = config.discriminatorLR * factor
    }
}

extension VAE: GenerativeModel {
    public var latentDim: Int { config.latentDim }

    /// One step on the negative ELBO; `z` is the reparameterisation noise. Statistics `loss`
    /// (negative ELBO), `reconstruction` and `kl`, nats per sample.
    public var stepStatisticNames: [String] { ["loss", "reconstruction", "kl"] }
    public var lossStatisticCount: Int { 3 }

    public func train(batch real: Tensor, z: Tensor, labels: [Int]?) -> StepMetrics {
        precondition(labels == nil, "VAE: labels given to an unconditional model")
        let s = trainStep(x: real, eps: z)
        return StepMetrics([("loss", s.loss), ("reconstruction", s.reconstruction), ("kl", s.kl)])
    }

    public func sample(z: Tensor, labels: [Int]?) -> Tensor {
        precondition(labels == nil, "VAE: labels given to an unconditional model")
        return sample(z: z)
    }

    public func balancedLabels(_ n: Int, offset: Int) -> [Int]? { nil }

    public func setLearningRateFactor(_ factor: Float) { optimizer.lr = config.lr * factor }
}
