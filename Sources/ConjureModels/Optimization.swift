import ConjureNN
import ConjureOptim

/// Optimiser settings shared by every family: which optimiser, its constants, the learning-rate
/// schedule, gradient clipping and weight averaging. Each family's configuration carries one
/// (under its own, backward-compatible JSON keys); per-group learning rates come from
/// ``ParameterGroup/learningRate``.
public struct OptimizationSettings: Sendable, Equatable {
    /// The optimiser of every group.
    public var optimizer: OptimizerKind
    /// Adam's (β1, β2); RMSprop ignores them.
    public var betas: (Float, Float)
    /// The denominator's ε.
    public var eps: Float
    /// Weight decay (decoupled for AdamW, an L2 term for Adam and RMSprop).
    public var weightDecay: Float
    /// The learning-rate schedule over the run's total steps.
    public var lrSchedule: LRSchedule
    /// Clips each group's total gradient L2 norm to this value before its update
    /// (`torch.nn.utils.clip_grad_norm_`); nil: no clipping.
    public var clipGradNorm: Float?
    /// Exponential moving average of the sampled group's weights with this decay, warmed up as
    /// `min(decay, (1+t)/(10+t))` at the group's update t (Yazıcı et al. 2019); nil: off.
    public var emaDecay: Float?

    /// Settings with the given values.
    public init(optimizer: OptimizerKind = .adam, betas: (Float, Float) = (0.9, 0.999), eps: Float = 1e-8, weightDecay: Float = 0,
                lrSchedule: LRSchedule = .constant, clipGradNorm: Float? = nil, emaDecay: Float? = nil) {
        self.optimizer = optimizer; self.betas = betas; self.eps = eps; self.weightDecay = weightDecay
        self.lrSchedule = lrSchedule; self.clipGradNorm = clipGradNorm; self.emaDecay = emaDecay
    }

    /// Compares every field.
    public static func == (a: OptimizationSettings, b: OptimizationSettings) -> Bool {
        a.optimizer == b.optimizer && a.betas.0 == b.betas.0 && a.betas.1 == b.betas.1 && a.eps == b.eps
            && a.weightDecay == b.weightDecay && a.lrSchedule == b.lrSchedule && a.clipGradNorm == b.clipGradNorm && a.emaDecay == b.emaDecay
    }
}

/// The optimisation of one model, owned by the trainer: per parameter group an optimiser, the
/// learning-rate schedule's factor, gradient clipping and (for the sampled group) an exponential
/// moving average; and the runner of the model's step plan (``TrainingStep``).
///
/// A step: the model builds its stages; in `sequential` order each stage's loss is
/// differentiated with respect to its group's parameters and the group is updated before the
/// next stage's loss is built (a stage with `every = k` runs only when the first stage's group
/// has had a multiple of k updates); in `simultaneous` order every stage's gradients are taken
/// first, then every group is updated. An update is: clip the group's gradients to the total
/// norm `clipGradNorm` (if set), the optimiser's step, then the average's update.
///
/// Each group is laid out in one flat buffer when the optimisation is built (``FlatParameters``):
/// its parameters become views of the buffer's slices and each update gathers the group's
/// gradients into a second flat buffer of the same layout, so clipping and the optimiser each
/// make one pass over the group.
public final class Optimization {
    /// The model being optimised.
    public let model: any GenerativeModel
    /// The settings every group uses.
    public let settings: OptimizationSettings
    /// One optimiser per group, in ``GenerativeModel/parameterGroups`` order.
    public let optimizers: [any Optimizer]
    /// The run's seed and data-parallel rank, from which per-step random streams derive.
    public let seed: UInt64
    /// The data-parallel rank (0 in a single process).
    public let rank: Int
    /// When true, each update keeps the gradients it applied in ``lastGradients`` under
    /// `grad.FULL_NAME` (before clipping), for inspection and fixture tests.
    public var recordsGradients = false
    /// The gradients of the last step's updates when ``recordsGradients`` is on.
    public private(set) var lastGradients: [String: Tensor] = [:]

    /// Builds an optimiser per group of `model` and, with `settings.emaDecay`, the average of
    /// each ``ParameterGroup/averaged`` group (starting at the current weights).
    public init(model: any GenerativeModel, settings: OptimizationSettings, seed: UInt64, rank: Int = 0) {
        self.model = model
        self.settings = settings
        self.seed = seed
        self.rank = rank
        for g in model.parameterGroups { g.flat = FlatParameters(g.parameters) }
        optimizers = model.parameterGroups.map { g in
            settings.optimizer.make(parameters: g.parameters, lr: g.learningRate, betas: settings.betas, eps: settings.eps,
                                    weightDecay: settings.weightDecay)
        }
        for g in model.parameterGroups {
            g.averages = g.averaged ? settings.emaDecay.map { EMA(parameters: g.parameters, decay: $0) } : nil
        }
    }

    /// The optimiser of the group named `name`.
    ///
    /// - Precondition: the model has such a group.
    public func optimizer(_ name: String) -> any Optimizer {
        guard let i = model.parameterGroups.firstIndex(where: { $0.name == name }) else {
            preconditionFailure("Optimization: no parameter group '\(name)' (groups: \(model.parameterGroups.map(\.name)))")
        }
        return optimizers[i]
    }

    /// Updates the group named `name` has had.
    public func updates(of name: String) -> Int { optimizer(name).stepCount }

    /// The context handed to the model's step.
    public var context: StepContext {
        StepContext(seed: seed, rank: rank) { [unowned self] in self.updates(of: $0) }
    }

    /// Sets every optimiser's learning rate to its group's base rate times `factor` (the
    /// schedule's multiplier at the coming step).
    public func setLearningRateFactor(_ factor: Float) {
        for (g, o) in zip(model.parameterGroups, optimizers) { o.lr = g.learningRate * factor }
    }

    /// Sets the learning rates for `step` of `totalSteps` from the schedule (nothing for a
    /// constant schedule, whose factor is 1).
    public func applySchedule(step: Int, totalSteps: Int) {
        if settings.lrSchedule != .constant {
            setLearningRateFactor(settings.lrSchedule.factor(step: step, totalSteps: totalSteps))
        }
    }

    /// Clips, applies and averages one group's gradients.
    ///
    /// - Precondition: one gradient per parameter of the group, of its shape.
    public func update(_ name: String, gradients: [Tensor]) {
        guard let i = model.parameterGroups.firstIndex(where: { $0.name == name }) else {
            preconditionFailure("Optimization.update: no parameter group '\(name)'")
        }
        let group = model.parameterGroups[i]
        if recordsGradients {
            for (n, g) in zip(group.fullNames, gradients) { lastGradients["grad." + n] = g }
        }
        StepTimer.timed(.parameterUpdate) { apply(group, i, gradients) }
    }

    /// ``update(_:gradients:)``'s clipping, optimiser step and averaging of group `i`.
    private func apply(_ group: ParameterGroup, _ i: Int, _ gradients: [Tensor]) {
        // With clipping the gradients are gathered into the group's flat gradient buffer, so
        // clipping and the optimiser's update are each one pass over the group; without it the
        // optimiser reads each gradient where the backward pass left it (no copy, and the
        // group's gradient buffer is never allocated).
        if let m = settings.clipGradNorm {
            var g = group.flat?.gather(gradients) ?? gradients
            clipGradNorm(&g, maxNorm: m)
            optimizers[i].step(gradients: g)
        } else {
            optimizers[i].step(gradients: gradients)
        }
        group.averages?.update(group.parameters, step: optimizers[i].stepCount)
    }

    /// Runs one training step of the model's plan on `batch` and returns its statistics.
    @discardableResult
    public func step(_ batch: TrainingBatch) -> StepMetrics {
        if recordsGradients { lastGradients = [:] }
        var plan = model.trainingStep(batch, context: context)
        precondition(!plan.stages.isEmpty, "Optimization.step: \(model.family) planned no stage")
        // Each stage is taken out of the plan when it runs, so its closure and everything it
        // captured (a GAN's fakes with the generator's graph) is freed before its group is
        // updated: nothing else holds the weights then, and the in-place update of the flat
        // buffer copies nothing.
        var stages: [StepStage?] = plan.stages
        plan.stages = []
        let lead = stages[0]!.group
        func gradients(_ slot: inout StepStage?) -> (group: String, gradients: [Tensor]) {
            let stage = slot!
            slot = nil
            return (stage.group, Tensor.gradients(of: stage.loss(), wrt: model.group(stage.group).parameters.map(\.value)))
        }
        switch plan.order {
        case .simultaneous:
            var grads: [(group: String, gradients: [Tensor])] = []
            for i in stages.indices { grads.append(gradients(&stages[i])) }
            for (group, g) in grads { update(group, gradients: g) }
        case .sequential:
            for i in stages.indices {
                if i > 0, let s = stages[i], s.every > 1 && updates(of: lead) % s.every != 0 { stages[i] = nil; continue }
                let (group, g) = gradients(&stages[i])
                update(group, gradients: g)
            }
        }
        return plan.statistics()
    }

    /// Optimiser state under each group's ``ParameterGroup/stateKeyPrefix`` (`exp_avg`,
    /// `exp_avg_sq`, `step`, ...), then nothing else.
    public func stateDict() -> [(String, Tensor)] {
        zip(model.parameterGroups, optimizers).flatMap { g, o in o.stateDict().map { (g.stateKeyPrefix + $0.0, $0.1) } }
    }

    /// The entries of ``stateDict()`` in the same order, handed to `body` without copies where
    /// the optimisers allow (Adam's moments are read in place): what a checkpoint streams.
    public func forEachState(_ body: (String, [Int], UnsafeBufferPointer<Float>) throws -> Void) rethrows {
        for (g, o) in zip(model.parameterGroups, optimizers) {
            try o.forEachState { name, shape, values in try body(g.stateKeyPrefix + name, shape, values) }
        }
    }

    /// The averaged weights under `averagePrefix + name` (same shapes as the parameters).
    public func averagesStateDict() -> [(String, Tensor)] {
        model.parameterGroups.flatMap { g -> [(String, Tensor)] in
            guard let ema = g.averages else { return [] }
            return zip(g.namedParameters, ema.averages).map { (g.averagePrefix + $0.0.0, Tensor(shape: $0.0.1.shape, scalars: $0.1)) }
        }
    }

    /// Restores optimiser state and averages written by ``stateDict()`` and
    /// ``averagesStateDict()``.
    ///
    /// - Throws: ``StateDictError`` naming a missing or mis-shaped entry, or averages present in
    ///   `values` for a run without `--ema`.
    public func loadStateDict(_ values: [String: Tensor]) throws {
        for (g, o) in zip(model.parameterGroups, optimizers) {
            var own: [String: Tensor] = [:]
            for (k, v) in values where k.hasPrefix(g.stateKeyPrefix) { own[String(k.dropFirst(g.stateKeyPrefix.count))] = v }
            try o.loadStateDict(own)
            if g.averages == nil, let stray = values.keys.first(where: { $0.hasPrefix(g.averagePrefix) }) {
                throw StateDictError(key: stray, problem: "averaged \(g.name) weights, but the configuration has no emaDecay (tensors and config disagree)")
            }
            if let ema = g.averages {
                var averages: [[Float]] = []
                for (name, p) in g.namedParameters {
                    guard let t = values[g.averagePrefix + name], t.shape == p.shape else {
                        throw StateDictError(key: g.averagePrefix + name, problem: "missing or not of shape \(p.shape) (the run averages the \(g.name)'s weights)")
                    }
                    averages.append(t.scalars)
                }
                ema.load(averages)
            }
        }
    }
}

/// A configuration that stores the optimiser settings as its own flat fields (the JSON keys
/// `optimizer`, `beta1`, `beta2`, `eps`, `weightDecay`, `lrSchedule`, `clipGradNorm`, `emaDecay`
/// that runs written since the first release carry). Conforming gives the configuration its
/// ``optimization`` view of those fields, so every family reads and writes them the same way.
public protocol OptimizationFields {
    /// The optimiser of every group (`--optimizer`).
    var optimizer: OptimizerKind { get set }
    /// Adam's β1.
    var beta1: Float { get set }
    /// Adam's β2.
    var beta2: Float { get set }
    /// The denominator's ε.
    var eps: Float { get set }
    /// Weight decay (see ``OptimizationSettings/weightDecay``).
    var weightDecay: Float { get set }
    /// The learning-rate schedule (`--lr-schedule`).
    var lrSchedule: LRSchedule { get set }
    /// Total-norm gradient clipping (`--clip-grad-norm`); nil: off.
    var clipGradNorm: Float? { get set }
    /// EMA decay of the sampled group's weights (`--ema`); nil: off.
    var emaDecay: Float? { get set }
}

extension OptimizationFields {
    /// The optimiser settings, read from and written to the configuration's own fields (per-group
    /// learning rates stay the family's, through ``ParameterGroup/learningRate``).
    public var optimization: OptimizationSettings {
        get {
            OptimizationSettings(optimizer: optimizer, betas: (beta1, beta2), eps: eps, weightDecay: weightDecay,
                                 lrSchedule: lrSchedule, clipGradNorm: clipGradNorm, emaDecay: emaDecay)
        }
        set {
            optimizer = newValue.optimizer; beta1 = newValue.betas.0; beta2 = newValue.betas.1; eps = newValue.eps
            weightDecay = newValue.weightDecay; lrSchedule = newValue.lrSchedule; clipGradNorm = newValue.clipGradNorm
            emaDecay = newValue.emaDecay
        }
    }
}
