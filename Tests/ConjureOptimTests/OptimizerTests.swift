import XCTest
import Foundation
import ConjureNN
import ConjureOptim
import ConjureTestSupport

/// AdamW, RMSprop, learning-rate schedules and gradient clipping against references written
/// here as plain scalar Double loops from PyTorch's formulas.
final class OptimizerTests: XCTestCase {
    // Two parameters, [2, 2] and [3], seen by the references as one flat vector of 7.
    let shapes = [[2, 2], [3]]
    let initial: [Float] = [0.5, -1.25, 2, 0.75, -0.3, 1.5, -2]
    /// Fixed gradients for each step (signs change between steps so the moments matter).
    let stepGradients: [[Float]] = [
        [0.4, -0.8, 1.2, 0.1, -0.5, 0.9, -0.2],
        [-0.3, -0.6, 0.7, 0.25, 0.45, -1.1, 0.35],
        [0.2, 0.9, -0.4, 0.05, -0.65, 0.6, 0.15],
        [0.55, -0.15, 0.3, -0.7, 0.2, -0.35, 0.8],
        [-0.1, 0.5, -0.9, 0.6, 0.3, 0.2, -0.45],
    ]

    func makeParameters(_ values: [Float]? = nil) -> [Parameter] {
        let v = values ?? initial
        return [Parameter(Tensor(shape: shapes[0], scalars: Array(v[0..<4]))),
                Parameter(Tensor(shape: shapes[1], scalars: Array(v[4..<7])))]
    }

    func split(_ flat: [Float]) -> [Tensor] {
        [Tensor(shape: shapes[0], scalars: Array(flat[0..<4])), Tensor(shape: shapes[1], scalars: Array(flat[4..<7]))]
    }

    func flat(_ ps: [Parameter]) -> [Float] { ps.flatMap { $0.value.scalars } }

    /// Runs `opt` over `stepGradients[range]` and returns the flat parameter values.
    @discardableResult
    func run(_ opt: any Optimizer, steps range: Range<Int>) -> [Float] {
        for t in range { opt.step(gradients: split(stepGradients[t])) }
        return flat(opt.parameters)
    }

    func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max()! }

    // MARK: References (PyTorch's per-element formulas, Double)

    /// torch.optim.Adam (l2 = weight_decay) / torch.optim.AdamW (decoupled = weight_decay).
    func referenceAdam(steps: Int, lr: Double, b1: Double, b2: Double, eps: Double,
                       l2: Double = 0, decoupled: Double = 0) -> [Float] {
        var p = initial.map(Double.init)
        var m = [Double](repeating: 0, count: p.count), v = m
        for t in 1...steps {
            for j in p.indices {
                p[j] *= 1 - lr * decoupled
                let g = Double(stepGradients[t - 1][j]) + l2 * p[j]
                m[j] = b1 * m[j] + (1 - b1) * g
                v[j] = b2 * v[j] + (1 - b2) * g * g
                let bc1 = 1 - pow(b1, Double(t)), bc2 = 1 - pow(b2, Double(t))
                p[j] -= lr / bc1 * m[j] / (v[j].squareRoot() / bc2.squareRoot() + eps)
            }
        }
        return p.map { Float($0) }
    }

    /// torch.optim.RMSprop, by the table-driven suite's Double reference rule.
    func referenceRMSprop(steps: Int, lr: Double, alpha: Double, eps: Double, weightDecay: Double,
                          momentum: Double, centered: Bool) -> [Float] {
        var p = initial.map(Double.init)
        var state: [String: [Double]] = [:]
        let rule = OptimizerSuiteTests.Rule.rmsprop(lr: lr, alpha: alpha, eps: eps, weightDecay: weightDecay, momentum: momentum, centered: centered)
        for t in 0..<steps {
            OptimizerSuiteTests.referenceStep(rule, p: &p, g: stepGradients[t].map(Double.init), state: &state, t: t + 1)
        }
        return p.map { Float($0) }
    }

    // MARK: AdamW

    func testAdamWDefaultsMatchPyTorch() {
        let opt = AdamW(parameters: makeParameters())
        XCTAssertEqual(opt.lr, 1e-3)
        XCTAssertEqual(opt.betas.0, 0.9)
        XCTAssertEqual(opt.betas.1, 0.999)
        XCTAssertEqual(opt.eps, 1e-8)
        XCTAssertEqual(opt.weightDecay, 1e-2)
    }

    func testAdamWMatchesPyTorchFormula() {
        for (lr, b1, b2, wd) in [(0.05, 0.9, 0.999, 0.1), (0.02, 0.5, 0.9, 0.5), (0.01, 0.9, 0.999, 0.0)] as [(Float, Float, Float, Float)] {
            let opt = AdamW(parameters: makeParameters(), lr: lr, betas: (b1, b2), eps: 1e-8, weightDecay: wd)
            let got = run(opt, steps: 0..<3)
            let expected = referenceAdam(steps: 3, lr: Double(lr), b1: Double(b1), b2: Double(b2), eps: 1e-8, decoupled: Double(wd))
            assertClose(got, expected, rtol: 1e-5, atol: 1e-6, "AdamW lr \(lr) betas (\(b1), \(b2)) wd \(wd)")
            XCTAssertEqual(opt.stepCount, 3)
            if wd > 0 {  // the decay is large enough for the comparison to see it
                let noDecay = referenceAdam(steps: 3, lr: Double(lr), b1: Double(b1), b2: Double(b2), eps: 1e-8)
                XCTAssertGreaterThan(maxAbsDifference(expected, noDecay), 1e-3)
            }
        }
    }

    func testAdamWDecoupledDiffersFromAdamL2AndAdamIsUnchanged() {
        let lr: Float = 0.05, wd: Float = 0.1
        let adamW = run(AdamW(parameters: makeParameters(), lr: lr, weightDecay: wd), steps: 0..<3)
        let adamL2 = run(Adam(parameters: makeParameters(), lr: lr, weightDecay: wd), steps: 0..<3)
        // Adam keeps PyTorch's coupled L2 form (g += wd * p) ...
        assertClose(adamL2, referenceAdam(steps: 3, lr: Double(lr), b1: 0.9, b2: 0.999, eps: 1e-8, l2: Double(wd)),
                    rtol: 1e-5, atol: 1e-6, "Adam with L2")
        // ... which AdamW's decoupled decay is not.
        XCTAssertGreaterThan(maxAbsDifference(adamW, adamL2), 1e-3)
        // Without decay the two are the same optimiser, bit for bit.
        XCTAssertEqual(run(AdamW(parameters: makeParameters(), lr: lr, weightDecay: 0), steps: 0..<3),
                       run(Adam(parameters: makeParameters(), lr: lr), steps: 0..<3))
    }

    // MARK: RMSprop

    func testRMSpropDefaultsMatchPyTorch() {
        let opt = RMSprop(parameters: makeParameters())
        XCTAssertEqual(opt.lr, 1e-2)
        XCTAssertEqual(opt.alpha, 0.99)
        XCTAssertEqual(opt.eps, 1e-8)
        XCTAssertEqual(opt.weightDecay, 0)
        XCTAssertEqual(opt.momentum, 0)
        XCTAssertFalse(opt.centered)
    }

    func testRMSpropMatchesPyTorchFormula() {
        struct Config { var lr: Float = 0.01, alpha: Float = 0.99, eps: Float = 1e-8, wd: Float = 0, momentum: Float = 0, centered = false }
        let configs: [(String, Config)] = [
            ("plain", Config()),
            ("momentum", Config(momentum: 0.9)),
            ("centered", Config(centered: true)),
            ("weight decay", Config(wd: 0.1)),
            // A large eps separates PyTorch's sqrt(avg) + eps from sqrt(avg + eps).
            ("all, large eps", Config(lr: 0.005, alpha: 0.9, eps: 0.1, wd: 0.05, momentum: 0.5, centered: true)),
        ]
        var results: [String: [Float]] = [:]
        for (name, c) in configs {
            let opt = RMSprop(parameters: makeParameters(), lr: c.lr, alpha: c.alpha, eps: c.eps,
                              weightDecay: c.wd, momentum: c.momentum, centered: c.centered)
            let got = run(opt, steps: 0..<3)
            let expected = referenceRMSprop(steps: 3, lr: Double(c.lr), alpha: Double(c.alpha), eps: Double(c.eps),
                                            weightDecay: Double(c.wd), momentum: Double(c.momentum), centered: c.centered)
            assertClose(got, expected, rtol: 1e-5, atol: 1e-6, "RMSprop \(name)")
            XCTAssertEqual(opt.stepCount, 3)
            results[name] = got
        }
        // Each option changes the result by far more than the tolerance.
        for name in ["momentum", "centered", "weight decay"] {
            XCTAssertGreaterThan(maxAbsDifference(results[name]!, results["plain"]!), 1e-3, name)
        }
    }

    // MARK: State dicts

    func testStateDictRoundTripContinuesIdentically() throws {
        let factories: [(String, [String], ([Parameter]) -> any Optimizer)] = [
            ("AdamW", ["0.exp_avg", "0.exp_avg_sq", "1.exp_avg", "1.exp_avg_sq", "step"],
             { AdamW(parameters: $0, lr: 0.05, weightDecay: 0.1) }),
            ("RMSprop", ["0.square_avg", "0.momentum_buffer", "0.grad_avg", "1.square_avg", "1.momentum_buffer", "1.grad_avg", "step"],
             { RMSprop(parameters: $0, lr: 0.01, momentum: 0.9, centered: true) }),
            ("RMSprop plain", ["0.square_avg", "1.square_avg", "step"], { RMSprop(parameters: $0) }),
        ]
        for (name, keys, make) in factories {
            let uninterrupted = make(makeParameters())
            let final = run(uninterrupted, steps: 0..<5)

            let first = make(makeParameters())
            let checkpointValues = run(first, steps: 0..<2)
            let state = first.stateDict()
            XCTAssertEqual(state.map(\.0), keys, name)
            XCTAssertEqual(state.last?.1.item, 2, "\(name) step")
            XCTAssertEqual(state.first?.1.shape, [2, 2], "\(name) state is shaped as its parameter")

            let resumed = make(makeParameters(checkpointValues))
            try resumed.loadStateDict(Dictionary(uniqueKeysWithValues: state))
            XCTAssertEqual(run(resumed, steps: 2..<5), final, "\(name): resumed run differs from the uninterrupted one")

            // The state matters: restarting from the weights alone gives a different result.
            let fresh = make(makeParameters(checkpointValues))
            XCTAssertGreaterThan(maxAbsDifference(run(fresh, steps: 2..<5), final), 1e-4, name)
        }
    }

    func testLoadStateDictNamesMissingKey() {
        let plainState = RMSprop(parameters: makeParameters()).stateDict()
        let withMomentum = RMSprop(parameters: makeParameters(), momentum: 0.9)
        XCTAssertThrowsError(try withMomentum.loadStateDict(Dictionary(uniqueKeysWithValues: plainState))) { error in
            XCTAssertEqual((error as? StateDictError)?.key, "0.momentum_buffer")
        }
        var adamState = Dictionary(uniqueKeysWithValues: AdamW(parameters: makeParameters()).stateDict())
        adamState["step"] = nil
        XCTAssertThrowsError(try AdamW(parameters: makeParameters()).loadStateDict(adamState)) { error in
            XCTAssertEqual((error as? StateDictError)?.key, "step")
        }
    }

    // MARK: Schedules

    func testScheduleValues() {
        let constant = LRSchedule.constant
        for s in [0, 1, 50, 99, 100, 1000] { XCTAssertEqual(constant.factor(step: s, totalSteps: 100), 1) }

        let cosine = LRSchedule(.cosine)
        XCTAssertEqual(cosine.factor(step: 0, totalSteps: 100), 1)
        XCTAssertEqual(cosine.factor(step: 50, totalSteps: 100), Float((1 + cos(Double.pi / 2)) / 2), accuracy: 1e-7)
        XCTAssertEqual(cosine.factor(step: 25, totalSteps: 100), Float((1 + cos(Double.pi / 4)) / 2), accuracy: 1e-7)
        XCTAssertEqual(cosine.factor(step: 99, totalSteps: 100), Float((1 + cos(Double.pi * 0.99)) / 2), accuracy: 1e-7)
        XCTAssertEqual(cosine.factor(step: 100, totalSteps: 100), 0, accuracy: 1e-7)
        XCTAssertEqual(cosine.factor(step: 150, totalSteps: 100), 0, accuracy: 1e-7)
        // eta_min = 0.1 * lr: half way is half way between 1 and 0.1.
        XCTAssertEqual(LRSchedule(.cosine, finalFactor: 0.1).factor(step: 50, totalSteps: 100), 0.55, accuracy: 1e-6)

        let linear = LRSchedule(.linear)
        XCTAssertEqual(linear.factor(step: 0, totalSteps: 10), 1)
        XCTAssertEqual(linear.factor(step: 5, totalSteps: 10), 0.5, accuracy: 1e-7)
        XCTAssertEqual(linear.factor(step: 9, totalSteps: 10), 0.1, accuracy: 1e-7)  // last update: not 0
        XCTAssertEqual(linear.factor(step: 10, totalSteps: 10), 0, accuracy: 1e-7)
        XCTAssertEqual(LRSchedule(.linear, finalFactor: 0.2).factor(step: 5, totalSteps: 10), 0.6, accuracy: 1e-6)
        XCTAssertEqual(LRSchedule(.linear, finalFactor: 0.2).factor(step: 10, totalSteps: 10), 0.2, accuracy: 1e-6)

        // Warm-up min(1, (s+1)/W), then the decay over the remaining T - W steps.
        let warm = LRSchedule(.cosine, warmupSteps: 10)
        XCTAssertEqual(warm.factor(step: 0, totalSteps: 110), 0.1, accuracy: 1e-7)
        XCTAssertEqual(warm.factor(step: 1, totalSteps: 110), 0.2, accuracy: 1e-7)
        XCTAssertEqual(warm.factor(step: 4, totalSteps: 110), 0.5, accuracy: 1e-7)
        XCTAssertEqual(warm.factor(step: 9, totalSteps: 110), 1)
        XCTAssertEqual(warm.factor(step: 10, totalSteps: 110), 1)
        XCTAssertEqual(warm.factor(step: 60, totalSteps: 110), 0.5, accuracy: 1e-7)
        XCTAssertEqual(warm.factor(step: 110, totalSteps: 110), 0, accuracy: 1e-7)
        let warmConstant = LRSchedule(.constant, warmupSteps: 4)
        XCTAssertEqual((0..<6).map { warmConstant.factor(step: $0, totalSteps: 100) }, [0.25, 0.5, 0.75, 1, 1, 1])
        // Warm-up longer than the run: the decay never starts.
        XCTAssertEqual(LRSchedule(.linear, warmupSteps: 20).factor(step: 9, totalSteps: 10), 0.5, accuracy: 1e-7)
    }

    func testScheduleParseAndCoding() throws {
        XCTAssertEqual(try LRSchedule.parse("cosine"), LRSchedule(.cosine))
        XCTAssertEqual(try LRSchedule.parse("linear", warmupSteps: 100, finalFactor: 0.1), LRSchedule(.linear, warmupSteps: 100, finalFactor: 0.1))
        XCTAssertEqual(try LRSchedule.parse(" Constant "), LRSchedule.constant)

        XCTAssertThrowsError(try LRSchedule.parse("cosin")) { error in
            let e = error as? ConfigError
            XCTAssertEqual(e?.option, "--lr-schedule")
            XCTAssertTrue("\(error)".contains("'cosin'"), "\(error)")
            XCTAssertTrue("\(error)".contains("constant, linear, cosine"), "\(error)")
        }
        XCTAssertThrowsError(try LRSchedule.parse("cosine", warmupSteps: -1)) { error in
            XCTAssertEqual((error as? ConfigError)?.option, "--lr-warmup-steps")
        }
        XCTAssertThrowsError(try LRSchedule.parse("cosine", finalFactor: 1.5)) { error in
            XCTAssertEqual((error as? ConfigError)?.option, "--lr-final-factor")
        }

        let schedule = LRSchedule(.cosine, warmupSteps: 50, finalFactor: 0.05)
        let json = try JSONEncoder().encode(schedule)
        XCTAssertEqual(try JSONDecoder().decode(LRSchedule.self, from: json), schedule)
        let bad = Data(#"{"kind":"cosine","warmupSteps":-3,"finalFactor":0}"#.utf8)
        XCTAssertThrowsError(try JSONDecoder().decode(LRSchedule.self, from: bad))
        XCTAssertThrowsError(try JSONDecoder().decode(LRSchedule.self, from: Data(#"{"kind":"step","warmupSteps":0,"finalFactor":0}"#.utf8)))
    }

    func testScheduleSetsLearningRateThroughOptimizerProtocol() {
        let p = Parameter(Tensor(shape: [1], scalars: [0]))
        let opt: any Optimizer = SGD(parameters: [p], lr: 0.1)
        let schedule = LRSchedule(.linear, warmupSteps: 2)
        let total = 6
        var expected = 0.0
        for s in 0..<total {
            opt.lr = 0.1 * schedule.factor(step: s, totalSteps: total)
            opt.step(gradients: [Tensor(shape: [1], scalars: [1])])
            expected -= 0.1 * [0.5, 1, 1, 0.75, 0.5, 0.25][s]
        }
        XCTAssertEqual(Double(p.value.item), expected, accuracy: 1e-6)
    }

    // MARK: Clipping

    func testClipGradNormScalesToMaxNorm() {
        // Total norm sqrt(3² + 4² + 12²) = 13 over two tensors.
        var grads = [Tensor(shape: [2], scalars: [3, 4]), Tensor(shape: [1, 1], scalars: [12])]
        XCTAssertEqual(clipGradNorm(&grads, maxNorm: 1), 13)
        let c = Float(1 / (13 + 1e-6))
        assertClose(grads[0].scalars, [3 * c, 4 * c], rtol: 1e-6, atol: 0)
        assertClose(grads[1].scalars, [12 * c], rtol: 1e-6, atol: 0)
        XCTAssertEqual(grads[1].shape, [1, 1])
        let newNorm = grads.flatMap(\.scalars).map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
        XCTAssertEqual(newNorm, 1, accuracy: 1e-6)

        var small = [Tensor(shape: [2], scalars: [3, 4]), Tensor(shape: [1, 1], scalars: [12])]
        XCTAssertEqual(clipGradNorm(&small, maxNorm: 13.5), 13)
        XCTAssertEqual(small[0].scalars, [3, 4])
        XCTAssertEqual(small[1].scalars, [12])
    }

    func testClipGradNormLeavesNonFiniteGradients() {
        var infinite = [Tensor(shape: [2], scalars: [3, .infinity]), Tensor(shape: [1], scalars: [1])]
        XCTAssertEqual(clipGradNorm(&infinite, maxNorm: 1), .infinity)
        XCTAssertEqual(infinite[0].scalars, [3, .infinity])
        XCTAssertEqual(infinite[1].scalars, [1])

        var nan = [Tensor(shape: [2], scalars: [3, .nan]), Tensor(shape: [1], scalars: [1])]
        XCTAssertTrue(clipGradNorm(&nan, maxNorm: 1).isNaN)
        XCTAssertEqual(nan[0].scalars[0], 3)
        XCTAssertEqual(nan[1].scalars, [1])
    }

    /// EMA with warm-up: the t-th update uses min(decay, (1+t)/(10+t)); reference in Double.
    /// Adam, AdamW and EMA update all parameters in one pass split across the pool, whose
    /// ranges cut through parameters: two and three threads give the bits of one thread, and a
    /// split first step moves every weight by `lr * sign(g)` as the formula says.
    func testOneSplitPassOverManyParametersMatchesOneThread() {
        let sizes = [[200, 201], [7], [0], [300, 301], [1], [16_383]]  // 146,891 elements
        func run(threads: Int, _ make: ([Parameter]) -> any Optimizer) -> ([Float], [[Float]]) {
            Parallel.setThreads(threads)
            defer { Parallel.setThreads(1) }
            var rng = RandomGenerator(seed: 7)
            let params = sizes.map { Parameter(Tensor.randomNormal($0, using: &rng)) }
            let opt = make(params)
            let ema = EMA(parameters: params, decay: 0.9)
            for _ in 0..<3 {
                opt.step(gradients: sizes.map { Tensor.randomNormal($0, using: &rng) })
                ema.update(params)
            }
            return (params.flatMap { $0.value.scalars }, ema.averages)
        }
        for (name, make) in [("Adam", { Adam(parameters: $0, lr: 0.01, weightDecay: 0.1) }),
                             ("AdamW", { AdamW(parameters: $0, lr: 0.01, weightDecay: 0.1) })] as [(String, ([Parameter]) -> any Optimizer)] {
            let one = run(threads: 1, make)
            XCTAssertEqual(run(threads: 2, make).0, one.0, name)
            XCTAssertEqual(run(threads: 3, make).0, one.0, name)
            XCTAssertEqual(run(threads: 2, make).1, one.1, name)
        }
        // Every element moved, the last of the last parameter too (beyond every range cut).
        Parallel.setThreads(2)
        defer { Parallel.setThreads(1) }
        let p = Parameter(Tensor(shape: [80_001], scalars: [Float](repeating: 1, count: 80_001)))
        let g = Tensor(shape: [80_001], scalars: (0..<80_001).map { Float($0 % 7) - 3 })
        Adam(parameters: [p], lr: 0.1).step(gradients: [g])
        // The first Adam step moves each weight by lr * sign(g) (|m̂| / sqrt(v̂) = 1), or not at all for g = 0.
        let expected = g.scalars.map { $0 == 0 ? Float(1) : 1 - 0.1 * ($0 > 0 ? 1 : -1) }
        assertClose(p.value.scalars, expected, rtol: 1e-6, atol: 1e-6)
    }

    func testEMAWarmupDecay() {
        let p = Parameter(Tensor(shape: [2], scalars: [1, -2]))
        let ema = EMA(parameters: [p], decay: 0.99)
        XCTAssertEqual(ema.decay(atStep: 1), 2 / 11, accuracy: 1e-7)
        XCTAssertEqual(ema.decay(atStep: 890), 0.99, accuracy: 1e-6)
        XCTAssertEqual(ema.decay(atStep: 5000), 0.99)
        var ref: [Double] = [1, -2]
        for t in 1...30 {
            let w: [Float] = [Float(t) * 0.5, -Float(t)]
            p.assign(Tensor(shape: [2], scalars: w))
            ema.update([p], step: t)
            let d = min(0.99, Double(1 + t) / Double(10 + t))
            for j in 0..<2 { ref[j] = d * ref[j] + (1 - d) * Double(w[j]) }
        }
        assertClose(ema.averages[0], ref.map { Float($0) }, rtol: 1e-5)
        // Without warm-up the initial value would still weigh 0.99^30 = 0.74.
        XCTAssertGreaterThan(ema.averages[0][0], 10)
    }
}
