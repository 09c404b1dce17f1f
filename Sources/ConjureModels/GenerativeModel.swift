import ConjureData
import ConjureNN
import ConjureOptim

/// Named scalar statistics of one training step, in the order they are logged
/// (`d_loss`, `g_loss`, `d_real`, `d_fake` for a GAN; `loss`, `reconstruction`, `kl` for a VAE).
public struct StepMetrics: Sendable {
    /// The statistics in logging order.
    public var values: [(name: String, value: Float)]

    /// Statistics in logging order.
    public init(_ values: [(name: String, value: Float)]) { self.values = values }

    /// The value named `name`, nil when the model does not report it.
    public subscript(name: String) -> Float? { values.first { $0.name == name }?.value }

    /// The first non-finite value, if any.
    public var firstNonFinite: (name: String, value: Float)? { values.first { !$0.value.isFinite } }
}

/// A set of parameters that one optimiser updates together, with its learning rate and the
/// names its state is saved under.
///
/// Models declare their groups (a GAN: `generator` and `discriminator`; a VAE: one group); the
/// trainer's ``Optimization`` gives each group its optimiser, learning-rate schedule, gradient
/// clipping and, for the group marked ``averaged``, an exponential moving average of its
/// weights (``averages``) that the model samples with.
public final class ParameterGroup {
    /// The group's name as stages and logs refer to it (`generator`, `discriminator`, `model`).
    public let name: String
    /// Parameters in optimiser order, with their `state_dict` names relative to ``prefix``.
    public let namedParameters: [(String, Parameter)]
    /// The prefix of the parameters' full `state_dict` names (`generator.`; empty for a VAE).
    public let prefix: String
    /// The base learning rate (before the schedule's factor).
    public let learningRate: Float
    /// The prefix of the optimiser state in checkpoints (`optimizer.generator.`; `optimizer.`
    /// for a single-group model, as runs written before groups existed).
    public let stateKeyPrefix: String
    /// Whether the model samples from this group's weights, so that `--ema` averages them.
    public let averaged: Bool
    /// The prefix of the averaged weights' names in checkpoints (`generator_ema.`).
    public let averagePrefix: String
    /// The moving average of this group's parameters when the run uses `--ema` (set by
    /// ``Optimization``), nil otherwise. Models sample from a copy holding these values; the
    /// live weights are never swapped.
    public internal(set) var averages: EMA?
    /// The group's flat layout (values and gradients each in one buffer), set when the trainer's
    /// ``Optimization`` is built; nil before.
    public internal(set) var flat: FlatParameters?

    /// A group of named parameters.
    ///
    /// - Parameters:
    ///   - name: the group's name.
    ///   - prefix: prefix of the full `state_dict` names.
    ///   - namedParameters: parameters with names relative to `prefix`, in optimiser order.
    ///   - learningRate: the base learning rate.
    ///   - stateKeyPrefix: checkpoint prefix of the optimiser state (default `optimizer.NAME.`).
    ///   - averaged: whether `--ema` averages this group (the weights the model samples with).
    ///   - averagePrefix: checkpoint prefix of the averaged weights (default `NAME_ema.`).
    public init(name: String, prefix: String, namedParameters: [(String, Parameter)], learningRate: Float,
                stateKeyPrefix: String? = nil, averaged: Bool = false, averagePrefix: String? = nil) {
        self.name = name
        self.prefix = prefix
        self.namedParameters = namedParameters
        self.learningRate = learningRate
        self.stateKeyPrefix = stateKeyPrefix ?? "optimizer.\(name)."
        self.averaged = averaged
        self.averagePrefix = averagePrefix ?? "\(name)_ema."
    }

    /// The parameters in optimiser order.
    public var parameters: [Parameter] { namedParameters.map(\.1) }
    /// Full `state_dict` names of the parameters.
    public var fullNames: [String] { namedParameters.map { prefix + $0.0 } }
}

/// The data of one training step.
public struct TrainingBatch {
    /// The real samples, normalised, `[N, D]` (flat; the model reshapes by its data kind).
    public var x: Tensor
    /// The latent noise drawn by the trainer for this step, `[N, latentDim]` standard normal
    /// (a GAN's generator input, a VAE's reparameterisation noise).
    public var z: Tensor
    /// Class labels of the batch for conditional models, else nil.
    public var labels: [Int]?

    /// A batch of samples, latent noise and optional labels.
    public init(x: Tensor, z: Tensor, labels: [Int]?) { self.x = x; self.z = z; self.labels = labels }
}

/// What a model may ask of the trainer during a step: how many updates each group has had, and
/// the random generators of per-step streams (derived in one place, ``RandomStream``).
public struct StepContext {
    /// The run's seed.
    public let seed: UInt64
    /// The data-parallel rank (0 in a single process).
    public let rank: Int
    let updateCounts: (String) -> Int

    /// A context for `seed` and `rank`, with a function giving a group's update count.
    public init(seed: UInt64, rank: Int = 0, updates: @escaping (String) -> Int) {
        self.seed = seed
        self.rank = rank
        self.updateCounts = updates
    }

    /// Optimiser updates the group named `group` has had so far (saved with its state).
    public func updates(of group: String) -> Int { updateCounts(group) }

    /// The generator of a per-step stream for `counter` (a group's update count).
    public func random(_ stream: RandomStream, counter: Int) -> RandomGenerator {
        stream.generator(seed: seed, rank: rank, counter: UInt64(counter))
    }
}

/// One stage of a training step: the loss whose gradients update one parameter group.
public struct StepStage {
    /// The parameter group this stage's gradients update.
    public var group: String
    /// The stage runs on every `every`-th update of the step's first stage's group (a GAN's
    /// generator stage with `n_critic` 5 runs after every fifth discriminator update); 1: always.
    public var every: Int
    /// Builds the stage's scalar loss (a graph over the group's parameters). Called at most
    /// once per step, after the updates of the stages before it (sequential order).
    public var loss: () -> Tensor

    /// A stage updating `group` from `loss`, on every `every`-th step.
    public init(group: String, every: Int = 1, loss: @escaping () -> Tensor) {
        self.group = group
        self.every = every
        self.loss = loss
    }
}

/// The plan of one training step: its stages, how their updates are ordered, and the step's
/// statistics once it ran.
public struct TrainingStep {
    /// How stage updates are ordered.
    public enum Order: Sendable {
        /// Each stage's loss is built after the updates of the stages before it (a GAN's
        /// alternating update: the generator loss goes through the updated discriminator).
        case sequential
        /// Every stage's gradients are taken at the same parameters, then all updates are
        /// applied (the classic simultaneous GAN update).
        case simultaneous
    }

    /// The stages in order.
    public var stages: [StepStage]
    /// The update order.
    public var order: Order
    /// The step's statistics in ``GenerativeModel/stepStatisticNames`` order, read after
    /// every stage ran.
    public var statistics: () -> StepMetrics

    /// A plan of stages in `order` with a statistics reader.
    public init(stages: [StepStage], order: Order = .sequential, statistics: @escaping () -> StepMetrics) {
        self.stages = stages
        self.order = order
        self.statistics = statistics
    }
}

/// What the trainer, checkpoints, `sample`, `evaluate` and `bench` need of any model family:
/// parameter groups, the plan of a training step, sampling, and `state_dict`s. Optimisers,
/// schedules, clipping and weight averages belong to the trainer (``Optimization``).
public protocol GenerativeModel: AnyObject {
    /// The family's registry name (`gan`, `vae`, ...).
    var family: String { get }
    /// Size of the latent `z` that ``sample(z:labels:)`` and ``TrainingBatch/z`` hold.
    var latentDim: Int { get }
    /// The parameter groups, each updated by its own optimiser.
    var parameterGroups: [ParameterGroup] { get }
    /// The stages of one training step on `batch`.
    func trainingStep(_ batch: TrainingBatch, context: StepContext) -> TrainingStep
    /// The names of a step's statistics, in order.
    var stepStatisticNames: [String] { get }
    /// How many of those, from the first, are losses (shown on progress lines).
    var lossStatisticCount: Int { get }
    /// Samples `[N, dataDim]` in the normalised range from latent `z` `[N, latentDim]`, in
    /// evaluation mode, without autodiff history, from the averaged weights when the sampled
    /// group has ``ParameterGroup/averages``.
    ///
    /// - Parameter labels: one class per sample for conditional models, else nil.
    func sample(z: Tensor, labels: [Int]?) -> Tensor
    /// Balanced labels `(i + offset) mod K` for `n` samples of a conditional model, nil otherwise.
    func balancedLabels(_ n: Int, offset: Int) -> [Int]?
    /// Parameters and buffers under PyTorch `state_dict` names.
    func stateDict() -> [(String, Tensor)]
    /// Loads parameters and buffers by `state_dict` name.
    ///
    /// - Throws: ``StateDictError`` naming a missing key or a shape mismatch.
    func loadStateDict(_ values: [String: Tensor]) throws
    /// Prefixes of the `state_dict` names that ``sample(z:labels:)`` uses (`generator.` for a
    /// GAN, `decoder.` for a VAE; `""`, every tensor, by default): a weights-only file loaded for
    /// sampling must hold these, the others may be absent.
    var samplingStatePrefixes: [String] { get }
}

extension GenerativeModel {
    /// Every tensor: `[""]`.
    public var samplingStatePrefixes: [String] { [""] }
}

extension GenerativeModel {
    /// The group named `name`.
    ///
    /// - Precondition: the model has such a group.
    public func group(_ name: String) -> ParameterGroup {
        guard let g = parameterGroups.first(where: { $0.name == name }) else {
            preconditionFailure("\(family): no parameter group '\(name)' (groups: \(parameterGroups.map(\.name)))")
        }
        return g
    }
}

/// Copies averaged weights into `copy` (a network of the same architecture as the live one) and
/// the live network's buffers (BatchNorm running statistics), so that sampling uses the
/// averages without touching the live weights.
///
/// - Precondition: `copy` and `live` have the same parameters and buffers; `averages` holds one
///   array per parameter of `copy`.
public func loadAveragedCopy(_ copy: any Layer, from live: any Layer, averages: EMA) {
    let params = copy.allNamedParameters()
    precondition(params.count == averages.averages.count, "loadAveragedCopy: \(params.count) parameters for \(averages.averages.count) averages")
    for ((_, p), a) in zip(params, averages.averages) { p.assign(Tensor(shape: p.shape, scalars: a)) }
    for ((_, b), (_, l)) in zip(copy.allNamedBuffers(), live.allNamedBuffers()) { b.value = l.value }
    copy.isTraining = false
}

extension ParameterGroup {
    /// The copy a model samples with under `--ema`: `cache` (made by `make` on first use) with
    /// this group's averaged weights assigned to `parameters(copy)` in order; nil when the group
    /// is not averaged (sample with the live weights).
    ///
    /// - Precondition: `parameters(copy)` matches the group's parameters in count and shapes.
    func averagedCopy<M>(_ cache: inout M?, make: () -> M, parameters: (M) -> [Parameter]) -> M? {
        guard let ema = averages else { return nil }
        let copy = cache ?? make()
        cache = copy
        let targets = parameters(copy)
        precondition(targets.count == ema.averages.count, "averagedCopy: \(targets.count) parameters for \(ema.averages.count) averages")
        for (p, a) in zip(targets, ema.averages) { p.assign(Tensor(shape: p.shape, scalars: a)) }
        return copy
    }
}
