import Foundation
import ConjureNN
import CConjureKernels

/// A gradient-based optimiser over a fixed list of parameters: a pure per-parameter update
/// rule plus its state.
public protocol Optimizer: AnyObject {
    /// The parameters this optimiser updates, in order.
    var parameters: [Parameter] { get }
    /// The learning rate used by the next ``step(gradients:)``; a schedule sets it before each
    /// step (`opt.lr = baseLR * schedule.factor(step: s, totalSteps: n)`).
    var lr: Float { get set }
    /// Updates applied so far (saved as `step` by optimisers whose rule depends on it).
    var stepCount: Int { get }
    /// Applies one update with `gradients[i]` for `parameters[i]`.
    func step(gradients: [Tensor])
    /// The optimiser state by name (PyTorch's names: `exp_avg`, `exp_avg_sq`,
    /// `momentum_buffer`, `step`), one entry per parameter index, for checkpoints.
    func stateDict() -> [(String, Tensor)]
    /// Restores state written by ``stateDict()``.
    func loadStateDict(_ state: [String: Tensor]) throws
    /// Hands each entry of ``stateDict()`` to `body` in the same order, as its name, shape and
    /// row-major elements (valid during the call only) without copying them where the
    /// optimiser can: a checkpoint streams its state through this.
    func forEachState(_ body: (String, [Int], UnsafeBufferPointer<Float>) throws -> Void) rethrows
}

extension Optimizer {
    /// The entries of ``stateDict()`` one at a time (optimisers whose state is small).
    public func forEachState(_ body: (String, [Int], UnsafeBufferPointer<Float>) throws -> Void) rethrows {
        for (name, t) in stateDict() { try t.withUnsafeScalars { try body(name, t.shape, $0) } }
    }
}

/// Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay,
/// as PyTorch's `torch.optim.SGD` (Sutskever et al. 2013). Plain gradient descent is SGD with
/// full-batch gradients and no momentum.
public final class SGD: Optimizer {
    /// The parameters this optimiser updates, in the order given at construction.
    public let parameters: [Parameter]
    /// Learning rate (per step, in the parameters' units per unit of gradient).
    public var lr: Float
    /// Momentum factor μ of the buffer `b = μ b + (1 - dampening) g` (default 0: no momentum).
    public let momentum: Float
    /// Dampening of the gradient's contribution to the momentum buffer (default 0).
    public let dampening: Float
    /// Nesterov momentum: step along `g + μ b` instead of `b` (default `false`).
    public let nesterov: Bool
    /// L2 penalty folded into the gradient, `g += weightDecay * p` (default 0).
    public let weightDecay: Float
    var buffers: [[Float]?]
    /// Updates applied since construction (SGD's rule does not depend on it, so it is not saved).
    public private(set) var stepCount = 0

    /// SGD over `parameters` with PyTorch's defaults (no momentum, dampening or weight decay).
    /// Precondition: `lr`, `momentum` non-negative; Nesterov needs `momentum > 0` and no dampening.
    public init(parameters: [Parameter], lr: Float, momentum: Float = 0, dampening: Float = 0,
                nesterov: Bool = false, weightDecay: Float = 0) {
        precondition(lr >= 0 && momentum >= 0, "SGD: lr and momentum must be non-negative")
        precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov needs momentum > 0 and no dampening")
        self.parameters = parameters
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        buffers = Array(repeating: nil, count: parameters.count)
    }

    /// Applies `p -= lr * d` where `d` is the (decayed, momentum-filtered) gradient; the momentum
    /// buffer starts as the first gradient, as PyTorch. `gradients[i]` is shaped as `parameters[i]`.
    public func step(gradients: [Tensor]) {
        precondition(gradients.count == parameters.count, "SGD.step: \(gradients.count) gradients for \(parameters.count) parameters")
        stepCount += 1
        for (i, p) in parameters.enumerated() {
            var g = gradients[i].scalars
            let pv = p.value.scalars
            if weightDecay != 0 { for j in g.indices { g[j] += weightDecay * pv[j] } }
            if momentum != 0 {
                if var b = buffers[i] {
                    for j in b.indices { b[j] = momentum * b[j] + (1 - dampening) * g[j] }
                    buffers[i] = b
                } else {
                    buffers[i] = g
                }
                let b = buffers[i]!
                if nesterov { for j in g.indices { g[j] += momentum * b[j] } } else { g = b }
            }
            let lr = self.lr
            p.updateInPlace { v in for j in v.indices { v[j] -= lr * g[j] } }
        }
    }

    /// `N.momentum_buffer` (shaped as parameter `N`) for each parameter that has a buffer yet; no
    /// `step` (SGD's rule does not use it).
    public func stateDict() -> [(String, Tensor)] {
        parameters.indices.compactMap { i in buffers[i].map { ("\(i).momentum_buffer", Tensor(shape: parameters[i].shape, scalars: $0)) } }
    }

    /// Restores the momentum buffers from `N.momentum_buffer`; a missing entry means no buffer yet.
    /// Never throws.
    public func loadStateDict(_ state: [String: Tensor]) throws {
        for i in parameters.indices { buffers[i] = state["\(i).momentum_buffer"]?.scalars }
    }
}

/// Adam (Kingma & Ba 2015) with bias correction, exactly as PyTorch's `torch.optim.Adam`:
/// `m = β1 m + (1-β1) g`, `v = β2 v + (1-β2) g²`,
/// `p -= lr / (1-β1^t) * m / (sqrt(v) / sqrt(1-β2^t) + eps)`.
/// Defaults lr 1e-3, betas (0.9, 0.999), eps 1e-8 as in the paper and PyTorch.
/// `weightDecay` is L2 regularisation folded into the gradient (`g += weightDecay * p`, coupled,
/// as PyTorch's Adam); for decoupled weight decay use ``AdamW``, which runs this class.
public final class Adam: Optimizer {
    /// The parameters this optimiser updates, in the order given at construction.
    public let parameters: [Parameter]
    /// Learning rate (per step, in the parameters' units per unit of normalised gradient).
    public var lr: Float
    /// (β1, β2), the decay rates of the first and second moment averages (default (0.9, 0.999)).
    public let betas: (Float, Float)
    /// Added to the bias-corrected root of the second moment in the denominator (default 1e-8).
    public let eps: Float
    /// L2 penalty folded into the gradient, `g += weightDecay * p` (coupled; default 0).
    public let weightDecay: Float
    /// Number of steps taken (PyTorch's per-parameter `step`, shared here).
    public private(set) var stepCount: Int = 0
    /// AdamW's decoupled decay λ: `p *= 1 - lr * λ` before each update (0 for Adam).
    let decoupledWeightDecay: Float
    /// The public name in precondition messages (`Adam` or `AdamW`).
    let name: String
    /// Elements per thread from which an update is split across the pool. Adam reads four
    /// arrays and writes three per element, so it pays to split from fewer elements than a
    /// plain element-wise pass: the seed discriminator's 100,609 parameters took 78 µs on one
    /// thread and 39 µs on two.
    static let splitCount = 1 << 14
    /// The first moments of all parameters back to back (parameter `i` from `offsets[i]`), the
    /// layout of the group's flat buffer.
    var expAvg: [Float]
    /// The second moments, laid out as ``expAvg``.
    var expAvgSq: [Float]
    /// The element offset of each parameter in the moment arrays.
    let offsets: [Int]

    /// Adam over `parameters` with the paper's and PyTorch's defaults; moments start at zero.
    /// Precondition: `lr ≥ 0`, betas in `[0, 1)`, no parameter listed twice.
    public convenience init(parameters: [Parameter], lr: Float = 1e-3, betas: (Float, Float) = (0.9, 0.999),
                            eps: Float = 1e-8, weightDecay: Float = 0) {
        self.init(parameters: parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupledWeightDecay: 0, name: "Adam")
    }

    init(parameters: [Parameter], lr: Float, betas: (Float, Float), eps: Float, weightDecay: Float,
         decoupledWeightDecay: Float, name: String) {
        precondition(lr >= 0, "\(name): lr must be non-negative, got \(lr)")
        precondition((0..<1).contains(betas.0) && (0..<1).contains(betas.1), "\(name): betas must be in [0, 1), got \(betas)")
        precondition(Set(parameters.map(ObjectIdentifier.init)).count == parameters.count, "\(name): a parameter is listed twice")
        self.parameters = parameters
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        self.name = name
        var offsets: [Int] = [], total = 0
        for p in parameters { offsets.append(total); total += p.value.count }
        self.offsets = offsets
        expAvg = [Float](repeating: 0, count: total)
        expAvgSq = expAvg
    }

    /// Applies one bias-corrected Adam update with `gradients[i]` (shaped as `parameters[i]`),
    /// split across the thread pool; the result does not depend on the thread count.
    public func step(gradients: [Tensor]) {
        precondition(gradients.count == parameters.count, "\(name).step: \(gradients.count) gradients for \(parameters.count) parameters")
        stepCount += 1
        let (b1, b2) = betas
        let bc1 = 1 - pow(Double(b1), Double(stepCount))
        let bc2 = 1 - pow(Double(b2), Double(stepCount))
        let stepSize = Float(Double(lr) / bc1)
        let invSqrtBc2 = Float(1 / bc2.squareRoot())
        let eps = self.eps, wd = weightDecay, decoupled = decoupledWeightDecay
        let decay = Float(1 - Double(lr) * Double(decoupled))
        for (i, p) in parameters.enumerated() {
            precondition(gradients[i].shape == p.shape, "\(name).step: gradient \(gradients[i].shape) for parameter \(p.shape)")
        }
        // One pass over all parameters, split evenly across the pool (a C kernel built for
        // AVX-512, AVX2 and baseline x86-64, chosen at run time); each element's update is
        // independent of the split. When the parameters are a flat group (``FlatParameters``)
        // and the gradients its gathered gradients, the pass runs over the two flat buffers;
        // otherwise each gradient is read where the backward pass left it.
        let counts = parameters.map { $0.value.count }, total = expAvg.count, offsets = self.offsets
        func apply(_ w: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ m: UnsafeMutablePointer<Float>,
                   _ v: UnsafeMutablePointer<Float>, _ n: Int) {
            if decoupled != 0 {  // AdamW: decay first, then the Adam update of the decayed weights
                for j in 0..<n { w[j] *= decay }
            }
            conjure_adam_update(w, g, m, v, n, b1, b2, stepSize, invSqrtBc2, eps, wd)
        }
        expAvg.withUnsafeMutableBufferPointer { mb in
            expAvgSq.withUnsafeMutableBufferPointer { vb in
                let m = mb.baseAddress, v = vb.baseAddress
                if total > 0, let buffer = FlatParameters.contiguous(parameters), let g = Tensor.contiguousElements(gradients) {
                    FlatParameters.updateContiguous(parameters, buffer: buffer) { w in
                        Parallel.forSegments([total], minimum: Adam.splitCount) { _, r in
                            let o = r.lowerBound
                            apply(w.baseAddress! + o, g + o, m! + o, v! + o, r.count)
                        }
                    }
                    return
                }
                withScalarPointers(gradients) { g in
                    withParameterPointers(parameters) { w in
                        Parallel.forSegments(counts, minimum: Adam.splitCount) { s, r in
                            let o = r.lowerBound, f = offsets[s] + o
                            apply(w[s]! + o, g[s]! + o, m! + f, v! + f, r.count)
                        }
                    }
                }
            }
        }
    }

    /// `N.exp_avg` and `N.exp_avg_sq` for each parameter `N` (shaped as it), then the scalar `step`.
    public func stateDict() -> [(String, Tensor)] {
        var out: [(String, Tensor)] = []
        for (i, p) in parameters.enumerated() {
            let r = offsets[i]..<(offsets[i] + p.value.count)
            out.append(("\(i).exp_avg", Tensor(shape: p.shape, scalars: Array(expAvg[r]))))
            out.append(("\(i).exp_avg_sq", Tensor(shape: p.shape, scalars: Array(expAvgSq[r]))))
        }
        out.append(("step", Tensor(Float(stepCount))))
        return out
    }

    /// The entries of ``stateDict()`` read in place from the moment buffers (no copy of
    /// either moment is made).
    public func forEachState(_ body: (String, [Int], UnsafeBufferPointer<Float>) throws -> Void) rethrows {
        try expAvg.withUnsafeBufferPointer { m in
            try expAvgSq.withUnsafeBufferPointer { v in
                for (i, p) in parameters.enumerated() {
                    let r = offsets[i]..<(offsets[i] + p.value.count)
                    try body("\(i).exp_avg", p.shape, UnsafeBufferPointer(rebasing: m[r]))
                    try body("\(i).exp_avg_sq", p.shape, UnsafeBufferPointer(rebasing: v[r]))
                }
            }
        }
        var step = Float(stepCount)
        try withUnsafePointer(to: &step) { try body("step", [], UnsafeBufferPointer(start: $0, count: 1)) }
    }

    /// Restores the moments and the step count written by ``stateDict()``.
    /// - Throws: ``StateDictError`` when a parameter's moments or `step` are missing or a moment's
    ///   element count differs from its parameter's.
    public func loadStateDict(_ state: [String: Tensor]) throws {
        var newM = expAvg, newV = expAvgSq
        for (i, p) in parameters.enumerated() {
            guard let m = state["\(i).exp_avg"], let v = state["\(i).exp_avg_sq"], m.count == p.value.count, v.count == p.value.count else {
                throw StateDictError(key: "\(i).exp_avg", problem: "missing or of the wrong size for parameter of shape \(p.shape)")
            }
            let r = offsets[i]..<(offsets[i] + p.value.count)
            newM.replaceSubrange(r, with: m.scalars)
            newV.replaceSubrange(r, with: v.scalars)
        }
        guard let s = state["step"] else { throw StateDictError(key: "step", problem: "missing") }
        (expAvg, expAvgSq, stepCount) = (newM, newV, Int(s.item))
    }
}

/// The optimisers a model configuration can name (`--optimizer`).
public enum OptimizerKind: String, Codable, Sendable, CaseIterable {
    /// ``Adam`` (coupled L2 weight decay when `weightDecay` > 0, as `torch.optim.Adam`).
    case adam
    /// ``AdamW``: decoupled weight decay (Loshchilov & Hutter 2019).
    case adamw
    /// ``RMSprop`` with PyTorch's defaults (`alpha` 0.99, no momentum, not centred; Hinton 2012).
    case rmsprop

    /// An optimiser of this kind over `parameters`. `betas` are Adam's (β1, β2); RMSprop ignores them.
    public func make(parameters: [Parameter], lr: Float, betas: (Float, Float), eps: Float, weightDecay: Float) -> any Optimizer {
        switch self {
        case .adam: return Adam(parameters: parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay)
        case .adamw: return AdamW(parameters: parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay)
        case .rmsprop: return RMSprop(parameters: parameters, lr: lr, eps: eps, weightDecay: weightDecay)
        }
    }
}
