import XCTest
import Foundation
import ConjureNN
import ConjureOptim
import ConjureTestSupport

/// One table of optimisers (SGD plain, with L2, with momentum and dampening, Nesterov; Adam,
/// Adam with L2; AdamW; RMSprop plain and with momentum + centring + L2), each checked three ways:
///
/// 1. one step against a reference written here in Double from PyTorch's documented update
///    rule (the "Algorithm" boxes of `torch.optim.SGD`, `Adam`, `AdamW` and `RMSprop`, PyTorch
///    2.x documentation), from a fresh state and from a given non-zero state (so momentum,
///    moments, bias correction at step 5 and centring all enter the one step);
/// 2. convergence on a quadratic with a known minimiser (learning rate decaying linearly to 0
///    over 2000 steps), to a tolerance stated per row;
/// 3. state round trip: `stateDict()` of an optimiser after 3 steps, loaded into a new optimiser
///    over the saved weights, gives the same bits for 4 more steps as an uninterrupted run.
final class OptimizerSuiteTests: XCTestCase {

    // MARK: The reference rules (Double)

    /// An update rule with its hyper-parameters, as PyTorch names them.
    enum Rule {
        /// `torch.optim.SGD`: g += λθ; if μ ≠ 0: b = g at t = 1, else b = μ b + (1-τ) g;
        /// g = g + μ b (Nesterov) or g = b; θ -= γ g.
        case sgd(lr: Double, momentum: Double, dampening: Double, nesterov: Bool, weightDecay: Double)
        /// `torch.optim.Adam` (λ = L2 added to g) and `torch.optim.AdamW` (θ *= 1 - γλ first):
        /// m = β1 m + (1-β1) g; v = β2 v + (1-β2) g²; m̂ = m / (1-β1^t); v̂ = v / (1-β2^t);
        /// θ -= γ m̂ / (sqrt(v̂) + ε).
        case adam(lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double, decoupled: Bool)
        /// `torch.optim.RMSprop`: g += λθ; v = α v + (1-α) g²; ṽ = v, and if centred
        /// a = α a + (1-α) g, ṽ = v - a²; if μ > 0: b = μ b + g / (sqrt(ṽ) + ε), θ -= γ b;
        /// else θ -= γ g / (sqrt(ṽ) + ε).
        case rmsprop(lr: Double, alpha: Double, eps: Double, weightDecay: Double, momentum: Double, centered: Bool)
    }

    /// One reference step `t` (1-based) of `rule` on the flat parameters `p` with gradient `g`;
    /// `state` holds PyTorch's per-element buffers by name (absent = not yet created, zeros).
    static func referenceStep(_ rule: Rule, p: inout [Double], g: [Double], state: inout [String: [Double]], t: Int) {
        let n = p.count
        func buffer(_ name: String) -> [Double] { state[name] ?? [Double](repeating: 0, count: n) }
        switch rule {
        case let .sgd(lr, mu, tau, nesterov, wd):
            var b = state["momentum_buffer"]
            for j in 0..<n {
                var gj = g[j] + wd * p[j]
                if mu != 0 {
                    if b == nil { b = [Double](repeating: 0, count: n) }
                    b![j] = state["momentum_buffer"] == nil ? gj : mu * b![j] + (1 - tau) * gj
                    gj = nesterov ? gj + mu * b![j] : b![j]
                }
                p[j] -= lr * gj
            }
            if let b { state["momentum_buffer"] = b }
        case let .adam(lr, b1, b2, eps, wd, decoupled):
            var m = buffer("exp_avg"), v = buffer("exp_avg_sq")
            for j in 0..<n {
                if decoupled { p[j] *= 1 - lr * wd }
                let gj = g[j] + (decoupled ? 0 : wd * p[j])
                m[j] = b1 * m[j] + (1 - b1) * gj
                v[j] = b2 * v[j] + (1 - b2) * gj * gj
                let mHat = m[j] / (1 - pow(b1, Double(t))), vHat = v[j] / (1 - pow(b2, Double(t)))
                p[j] -= lr * mHat / (vHat.squareRoot() + eps)
            }
            state["exp_avg"] = m
            state["exp_avg_sq"] = v
        case let .rmsprop(lr, alpha, eps, wd, mu, centered):
            var s = buffer("square_avg"), a = buffer("grad_avg"), b = buffer("momentum_buffer")
            for j in 0..<n {
                let gj = g[j] + wd * p[j]
                s[j] = alpha * s[j] + (1 - alpha) * gj * gj
                var avg = s[j]
                if centered {
                    a[j] = alpha * a[j] + (1 - alpha) * gj
                    avg -= a[j] * a[j]
                }
                let d = avg.squareRoot() + eps
                if mu > 0 {
                    b[j] = mu * b[j] + gj / d
                    p[j] -= lr * b[j]
                } else {
                    p[j] -= lr * gj / d
                }
            }
            state["square_avg"] = s
            if centered { state["grad_avg"] = a }
            if mu > 0 { state["momentum_buffer"] = b }
        }
    }

    // MARK: The table

    struct Case {
        var name: String
        var rule: Rule
        /// The Conjure optimiser with the same hyper-parameters.
        var make: ([Parameter]) -> any Optimizer
        /// PyTorch's per-parameter state names this optimiser saves (as `N.name`), and whether
        /// it saves the scalar `step`.
        var stateNames: [String]
        var savesStep: Bool
        /// Steps of the convergence run and the largest allowed |θ - θ*| at its end.
        var convergenceSteps: Int
        var tolerance: Double
    }

    static let cases: [Case] = [
        Case(name: "SGD", rule: .sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0),
             make: { SGD(parameters: $0, lr: 0.1) },
             stateNames: [], savesStep: false, convergenceSteps: 2000, tolerance: 1e-5),
        Case(name: "SGD weight decay", rule: .sgd(lr: 0.1, momentum: 0, dampening: 0, nesterov: false, weightDecay: 0.2),
             make: { SGD(parameters: $0, lr: 0.1, weightDecay: 0.2) },
             stateNames: [], savesStep: false, convergenceSteps: 2000, tolerance: 1e-5),
        Case(name: "SGD momentum", rule: .sgd(lr: 0.05, momentum: 0.9, dampening: 0.1, nesterov: false, weightDecay: 0),
             make: { SGD(parameters: $0, lr: 0.05, momentum: 0.9, dampening: 0.1) },
             stateNames: ["momentum_buffer"], savesStep: false, convergenceSteps: 2000, tolerance: 1e-5),
        Case(name: "SGD Nesterov", rule: .sgd(lr: 0.05, momentum: 0.9, dampening: 0, nesterov: true, weightDecay: 0.01),
             make: { SGD(parameters: $0, lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01) },
             stateNames: ["momentum_buffer"], savesStep: false, convergenceSteps: 2000, tolerance: 1e-5),
        Case(name: "Adam", rule: .adam(lr: 0.05, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, decoupled: false),
             make: { Adam(parameters: $0, lr: 0.05) },
             stateNames: ["exp_avg", "exp_avg_sq"], savesStep: true, convergenceSteps: 2000, tolerance: 1e-5),
        Case(name: "Adam L2", rule: .adam(lr: 0.05, beta1: 0.5, beta2: 0.9, eps: 1e-3, weightDecay: 0.1, decoupled: false),
             make: { Adam(parameters: $0, lr: 0.05, betas: (0.5, 0.9), eps: 1e-3, weightDecay: 0.1) },
             stateNames: ["exp_avg", "exp_avg_sq"], savesStep: true, convergenceSteps: 2000, tolerance: 1e-5),
        Case(name: "AdamW", rule: .adam(lr: 0.05, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, decoupled: true),
             make: { AdamW(parameters: $0, lr: 0.05, betas: (0.9, 0.99), weightDecay: 0.1) },
             stateNames: ["exp_avg", "exp_avg_sq"], savesStep: true, convergenceSteps: 2000, tolerance: 1e-4),
        Case(name: "RMSprop", rule: .rmsprop(lr: 0.01, alpha: 0.99, eps: 1e-8, weightDecay: 0, momentum: 0, centered: false),
             make: { RMSprop(parameters: $0, lr: 0.01) },
             stateNames: ["square_avg"], savesStep: true, convergenceSteps: 2000, tolerance: 1e-5),
        Case(name: "RMSprop momentum centred L2",
             rule: .rmsprop(lr: 0.005, alpha: 0.9, eps: 0.1, weightDecay: 0.05, momentum: 0.5, centered: true),
             make: { RMSprop(parameters: $0, lr: 0.005, alpha: 0.9, eps: 0.1, weightDecay: 0.05, momentum: 0.5, centered: true) },
             stateNames: ["square_avg", "momentum_buffer", "grad_avg"], savesStep: true, convergenceSteps: 2000, tolerance: 1e-5),
    ]

    // MARK: Problem: two parameters ([2, 2] and [3]), seen by the references as one flat 7-vector

    static let shapes = [[2, 2], [3]]
    static let initial: [Double] = [0.5, -1.25, 2, 0.75, -0.3, 1.5, -2]
    static let gradient: [Double] = [0.4, -0.8, 1.2, 0.1, -0.5, 0.9, -0.2]
    /// Non-zero state to start the second golden step from, different per buffer name so a
    /// swapped buffer shows; square averages are positive and above the square of the
    /// gradient average, as real ones are.
    static let givenState: [Double] = [0.3, -0.2, 0.05, 0.6, -0.45, 0.1, 0.25]
    static func givenState(_ name: String) -> [Double] {
        switch name {
        case "exp_avg_sq": return givenState.map { 0.4 * $0 * $0 + 0.01 }
        case "square_avg": return givenState.map { 0.7 * $0 * $0 + 0.05 }
        case "exp_avg": return givenState.map { -0.5 * $0 }
        case "grad_avg": return givenState.map { 0.25 * $0 }
        default: return givenState  // momentum_buffer
        }
    }
    /// Steps already taken in that state (so bias correction uses t = 5).
    static let givenSteps = 4

    /// The quadratic f(θ) = ½ Σ a_j (θ_j - c_j)², gradient a_j (θ_j - c_j).
    static let curvature: [Double] = [1, 2, 0.5, 1.5, 1, 3, 0.75]
    static let centre: [Double] = [1, -0.5, 0.25, 2, -1, 0.5, -1.5]

    static func parameters(_ flat: [Double]) -> [Parameter] {
        [Parameter(Tensor(shape: shapes[0], scalars: flat[0..<4].map { Float($0) })),
         Parameter(Tensor(shape: shapes[1], scalars: flat[4..<7].map { Float($0) }))]
    }

    static func tensors(_ flat: [Float]) -> [Tensor] {
        [Tensor(shape: shapes[0], scalars: Array(flat[0..<4])), Tensor(shape: shapes[1], scalars: Array(flat[4..<7]))]
    }

    static func flat(_ ps: [Parameter]) -> [Float] { ps.flatMap { $0.value.scalars } }

    static func quadraticGradient(_ p: [Float]) -> [Float] {
        p.indices.map { Float(curvature[$0] * (Double(p[$0]) - centre[$0])) }
    }

    /// The parameters rounded to Float, as the optimiser starts from them.
    static var initialFloat: [Double] { initial.map { Double(Float($0)) } }

    // MARK: (a) One-step golden values

    func testOneStepFromFreshStateMatchesPyTorchRule() {
        for c in Self.cases {
            let ps = Self.parameters(Self.initial)
            let opt = c.make(ps)
            opt.step(gradients: Self.tensors(Self.gradient.map { Float($0) }))
            var expected = Self.initialFloat
            var state: [String: [Double]] = [:]
            Self.referenceStep(c.rule, p: &expected, g: Self.gradient.map { Double(Float($0)) }, state: &state, t: 1)
            assertClose(Self.flat(ps), expected.map { Float($0) }, rtol: 2e-6, atol: 1e-6, "\(c.name): first step")
            XCTAssertEqual(opt.stepCount, 1, c.name)
            // The step moved every element (a rule that did nothing would pass a loose check).
            XCTAssertGreaterThan(zip(Self.flat(ps), Self.initialFloat).map { abs(Double($0) - $1) }.min()!, 1e-3, c.name)
        }
    }

    func testOneStepFromGivenStateMatchesPyTorchRule() throws {
        for c in Self.cases where !c.stateNames.isEmpty {
            var state: [String: [Double]] = [:]
            var loaded: [String: Tensor] = [:]
            for name in c.stateNames {
                let values = Self.givenState(name).map { Double(Float($0)) }
                state[name] = values
                let parts = Self.tensors(values.map { Float($0) })
                loaded["0.\(name)"] = parts[0]
                loaded["1.\(name)"] = parts[1]
            }
            if c.savesStep { loaded["step"] = Tensor(Float(Self.givenSteps)) }
            let ps = Self.parameters(Self.initial)
            let opt = c.make(ps)
            try opt.loadStateDict(loaded)
            opt.step(gradients: Self.tensors(Self.gradient.map { Float($0) }))
            var expected = Self.initialFloat
            Self.referenceStep(c.rule, p: &expected, g: Self.gradient.map { Double(Float($0)) }, state: &state,
                               t: Self.givenSteps + 1)
            assertClose(Self.flat(ps), expected.map { Float($0) }, rtol: 2e-6, atol: 1e-6, "\(c.name): step from a given state")
            // The new state is the reference's too.
            let saved = Dictionary(uniqueKeysWithValues: opt.stateDict())
            for name in c.stateNames {
                let got = (saved["0.\(name)"]?.scalars ?? []) + (saved["1.\(name)"]?.scalars ?? [])
                assertClose(got, state[name]!.map { Float($0) }, rtol: 2e-6, atol: 1e-7, "\(c.name): \(name) after the step")
            }
            if c.savesStep { XCTAssertEqual(saved["step"]?.item, Float(Self.givenSteps + 1), c.name) }
        }
    }

    // MARK: (b) Convergence on a quadratic

    func testConvergesOnQuadratic() {
        for c in Self.cases {
            let ps = Self.parameters(Self.initial)
            let opt = c.make(ps)
            // The learning rate decays linearly to 0 (LRSchedule.linear): with a constant rate
            // the sign-like rules (Adam, RMSprop) keep oscillating about the minimum by about lr.
            let schedule = LRSchedule(.linear), baseLR = opt.lr
            for s in 0..<c.convergenceSteps {
                opt.lr = baseLR * schedule.factor(step: s, totalSteps: c.convergenceSteps)
                opt.step(gradients: Self.tensors(Self.quadraticGradient(Self.flat(ps))))
            }
            // Coupled L2 (λ) moves the minimiser of f + ½ λ |θ|² to a c / (a + λ). AdamW's
            // decoupled decay has its fixed point where λθ = -m̂ / (sqrt(v̂) + ε), which tends
            // to c as the gradient's history fades (1.3e-5 from c after these 2000 steps in
            // Double, hence its looser tolerance).
            let l2: Double
            switch c.rule {
            case let .sgd(_, _, _, _, wd): l2 = wd
            case let .adam(_, _, _, _, wd, decoupled): l2 = decoupled ? 0 : wd
            case let .rmsprop(_, _, _, wd, _, _): l2 = wd
            }
            let minimiser = Self.centre.indices.map { Self.curvature[$0] * Self.centre[$0] / (Self.curvature[$0] + l2) }
            let error = zip(Self.flat(ps), minimiser).map { abs(Double($0) - $1) }.max()!
            XCTAssertLessThanOrEqual(error, c.tolerance, "\(c.name): max |θ - θ*| after \(c.convergenceSteps) steps")
            XCTAssertTrue(Self.flat(ps).allSatisfy(\.isFinite), c.name)
        }
    }

    // MARK: (c) State round trip

    func testStateRoundTripContinuesBitForBit() throws {
        let before = 3, after = 4
        func run(_ opt: any Optimizer, steps: Int) {
            for _ in 0..<steps { opt.step(gradients: Self.tensors(Self.quadraticGradient(Self.flat(opt.parameters)))) }
        }
        for c in Self.cases {
            let uninterrupted = c.make(Self.parameters(Self.initial))
            run(uninterrupted, steps: before + after)
            let final = Self.flat(uninterrupted.parameters)

            let first = c.make(Self.parameters(Self.initial))
            run(first, steps: before)
            let saved = first.stateDict()
            let expectedKeys = [0, 1].flatMap { i in c.stateNames.map { "\(i).\($0)" } } + (c.savesStep ? ["step"] : [])
            XCTAssertEqual(saved.map(\.0).sorted(), expectedKeys.sorted(), "\(c.name): state keys")
            for (key, t) in saved where key != "step" {
                XCTAssertEqual(t.shape, Self.shapes[key.hasPrefix("0.") ? 0 : 1], "\(c.name): \(key) is shaped as its parameter")
            }
            // forEachState (what a checkpoint streams) hands over exactly stateDict(), in order.
            var streamed: [(String, [Int], [Float])] = []
            first.forEachState { name, shape, values in streamed.append((name, shape, Array(values))) }
            XCTAssertEqual(streamed.map(\.0), saved.map(\.0), "\(c.name): forEachState order")
            for ((name, shape, values), (_, t)) in zip(streamed, saved) {
                XCTAssertEqual(shape, t.shape, "\(c.name): \(name) shape")
                XCTAssertEqual(values.map(\.bitPattern), t.scalars.map(\.bitPattern), "\(c.name): \(name) values")
            }
            let weights = Self.flat(first.parameters).map { Double($0) }

            let resumed = c.make(Self.parameters(weights))
            try resumed.loadStateDict(Dictionary(uniqueKeysWithValues: saved))
            XCTAssertEqual(resumed.stepCount, c.savesStep ? before : 0, c.name)
            run(resumed, steps: after)
            XCTAssertEqual(Self.flat(resumed.parameters), final, "\(c.name): resumed run differs from the uninterrupted one")

            // The state matters: restarting from the weights alone differs (no state: equal).
            let fresh = c.make(Self.parameters(weights))
            run(fresh, steps: after)
            if c.stateNames.isEmpty && !c.savesStep {
                XCTAssertEqual(Self.flat(fresh.parameters), final, c.name)
            } else {
                XCTAssertNotEqual(Self.flat(fresh.parameters), final, "\(c.name): the state made no difference")
            }
        }
    }
}
