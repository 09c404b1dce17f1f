import Foundation
import XCTest
import ConjureNN
import ConjureTestSupport

/// Golden values of the diffusion, sequence and audio building blocks from
/// ../shared/fixtures/blocks (PyTorch in float64 from float32-representable inputs). Every entry
/// of the folder's `cases.json` is run, dispatched on its `op`, with shapes read from the .npy
/// files, so a folder of the same layout with other seeds and shapes is tested without code
/// changes; an unknown op, a missing file or a missing folder fails.
final class BlocksFixtureTests: XCTestCase {
    typealias Case = FixtureCase

    /// The fixture folder; a missing ../shared or folder is an error, not a skip.
    static func fixtureRoot() throws -> URL {
        guard let shared = sharedDir else {
            throw FixtureError(description: "../shared (next to the package root) is missing: the blocks fixtures cannot be checked")
        }
        let root = shared.appendingPathComponent("fixtures/blocks")
        guard FileManager.default.fileExists(atPath: root.appendingPathComponent("cases.json").path) else {
            throw FixtureError(description: "\(root.path)/cases.json is missing")
        }
        return root
    }

    static func loadCases(root: URL) throws -> [Case] { try loadFixtureCases(root: root) }

    /// Relative tolerance of the folder's README ("about 1e-4 relative"); the absolute floor is
    /// that relative size of the largest expected magnitude, for elements that cancel to ~0.
    static let rtol: Float = 1e-4

    func compare(_ actual: Tensor, _ expected: Tensor, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        let scale = expected.scalars.reduce(Float(0)) { Swift.max($0, abs($1)) }
        guard actual.count == expected.count else {
            XCTFail("\(what): shape \(actual.shape) vs expected \(expected.shape)", file: file, line: line)
            return
        }
        assertClose(actual.reshaped(expected.shape), expected, rtol: Self.rtol, atol: Self.rtol * 1e-2 * Swift.max(scale, 1e-3),
                    what, file: file, line: line)
    }

    func testEveryBlocksCase() throws {
        let root = try Self.fixtureRoot()
        let cases = try Self.loadCases(root: root)
        XCTAssertFalse(cases.isEmpty, "no cases in \(root.path)/cases.json")
        for c in cases { try run(c) }
    }

    /// Runs one case (also used by the perturbation check).
    func run(_ c: Case) throws {
        guard let op = c.settings["op"] as? String else { XCTFail("case \(c.name): no 'op'"); return }
        var rng = RandomGenerator(seed: 1)
        switch op {
        case "GroupNorm":
            let layer = GroupNorm(numGroups: try c.int("num_groups"), numChannels: try c.int("num_channels"), eps: Float(try c.double("eps")))
            try moduleCase(c, layer) { layer($0) }
        case "LayerNorm":
            guard let shape = c.settings["normalized_shape"] as? [Int] else { throw FixtureError(description: "case \(c.name): no normalized_shape") }
            let layer = LayerNorm(shape, eps: Float(try c.double("eps")))
            try moduleCase(c, layer) { layer($0) }
        case "SiLU":
            let layer = SiLU()
            try moduleCase(c, layer) { layer($0) }
        case "GELU":
            guard let approx = GELUApproximation(rawValue: try c.string("approximate")) else {
                throw FixtureError(description: "case \(c.name): unknown approximate '\(try c.string("approximate"))'")
            }
            let layer = GELU(approximation: approx)
            try moduleCase(c, layer) { layer($0) }
        case "UpsampleNearest2d":
            let layer = UpsampleNearest2d(scale: try c.int("scale_factor"))
            try moduleCase(c, layer) { layer($0) }
        case "Conv1d":
            let layer = Conv1d(try c.int("C_in"), try c.int("C_out"), kernelSize: try c.int("kernel"), stride: try c.int("stride"),
                               padding: try c.int("padding"), bias: try c.bool("bias"), rng: &rng)
            XCTAssertEqual(try c.int("output_padding"), 0, "case \(c.name): Conv1d has no output padding")
            try moduleCase(c, layer) { layer($0) }
        case "ConvTranspose1d":
            let layer = ConvTranspose1d(try c.int("C_in"), try c.int("C_out"), kernelSize: try c.int("kernel"), stride: try c.int("stride"),
                                        padding: try c.int("padding"), outputPadding: try c.int("output_padding"),
                                        bias: try c.bool("bias"), rng: &rng)
            try moduleCase(c, layer) { layer($0) }
        case "MultiheadSelfAttention":
            let layer = MultiheadSelfAttention(embedDim: try c.int("embed_dim"), numHeads: try c.int("num_heads"),
                                               causal: try c.bool("causal"), rng: &rng)
            try moduleCase(c, layer) { layer($0) }
        case "Embedding":
            try embeddingCase(c)
        case "CrossEntropy":
            try crossEntropyCase(c)
        case "GRU":
            try gruCase(c)
        case "NoiseSchedule":
            try scheduleCase(c)
        case "TimestepEmbedding":
            try timestepEmbeddingCase(c)
        case "DiffusionStep":
            try diffusionStepCase(c)
        default:
            XCTFail("case \(c.name): unknown op '\(op)' (add it to BlocksFixtureTests)")
        }
    }

    /// Loads the layer's parameters from `param.K`, checks the names and shapes against the
    /// case's `params` and the layer's state dict, then compares `y`, `grad_x` and every `grad.K`.
    func moduleCase(_ c: Case, _ layer: any Layer, _ forward: (Tensor) -> Tensor) throws {
        let files = try c.parameterFiles()
        let names = layer.namedParameters.map(\.0)
        XCTAssertEqual(Set(files.keys), Set(names), "case \(c.name): parameter files vs the layer's state-dict names")
        if let declared = c.settings["params"] as? [String: Any] {
            XCTAssertEqual(Set(declared.keys), Set(names), "case \(c.name): cases.json params vs the layer's names")
            for (k, v) in declared { XCTAssertEqual(files[k]?.shape, v as? [Int], "case \(c.name): shape of \(k)") }
        }
        try layer.loadStateDict(files)
        let x = try c.tensor("x").requiringGrad()
        let y = forward(x)
        compare(y, try c.tensor("y"), "case \(c.name): y")
        let params = layer.namedParameters
        let grads = Tensor.gradients(of: y, seed: try c.tensor("grad_y").reshaped(y.shape), wrt: [x] + params.map { $0.1.value })
        compare(grads[0], try c.tensor("grad_x"), "case \(c.name): grad_x")
        for (i, (name, _)) in params.enumerated() {
            compare(grads[i + 1], try c.tensor("grad." + name), "case \(c.name): grad.\(name)")
        }
    }

    static func integers(_ t: Tensor, _ what: String) throws -> [Int] {
        try t.scalars.map { v in
            guard v.rounded() == v, v >= 0 else { throw FixtureError(description: "\(what): \(v) is not a non-negative integer") }
            return Int(v)
        }
    }

    func embeddingCase(_ c: Case) throws {
        var rng = RandomGenerator(seed: 1)
        let layer = Embedding(try c.int("num_embeddings"), try c.int("embedding_dim"), rng: &rng)
        try layer.loadStateDict(try c.parameterFiles())
        let indices = try c.tensor("indices")
        let rows = try Self.integers(indices, "case \(c.name) indices")  // checked here: release builds drop preconditions
        XCTAssert(rows.allSatisfy { $0 < layer.weight.shape[0] }, "case \(c.name): index out of range")
        let y = layer(indices)
        compare(y, try c.tensor("y"), "case \(c.name): y")
        let g = Tensor.gradients(of: y, seed: try c.tensor("grad_y").reshaped(y.shape), wrt: [layer.weight.value])[0]
        compare(g, try c.tensor("grad.weight"), "case \(c.name): grad.weight")
    }

    func crossEntropyCase(_ c: Case) throws {
        let logits = try c.tensor("logits").requiringGrad()
        let targets = try Self.integers(try c.tensor("targets"), "case \(c.name) targets")
        let loss = Loss.tokenCrossEntropy(logits: logits, targets: targets)
        compare(loss, try c.tensor("loss"), "case \(c.name): loss")
        compare(Tensor.gradients(of: loss, wrt: [logits])[0], try c.tensor("grad_logits"), "case \(c.name): grad_logits")
    }

    func gruCase(_ c: Case) throws {
        var rng = RandomGenerator(seed: 1)
        let layer = GRU(inputSize: try c.int("input_size"), hiddenSize: try c.int("hidden_size"), rng: &rng)
        let files = try c.parameterFiles()
        XCTAssertEqual(Set(files.keys), Set(layer.namedParameters.map(\.0)), "case \(c.name): state-dict names")
        try layer.loadStateDict(files)
        let x = try c.tensor("x").requiringGrad()
        let b = x.shape[0], h = layer.hiddenSize
        let h0 = try c.tensor("h0").reshaped([b, h]).requiringGrad()  // PyTorch's [layers, B, H]
        let (y, hn) = layer.run(x, initialState: h0)
        compare(y, try c.tensor("y"), "case \(c.name): y")
        compare(hn, try c.tensor("h_n"), "case \(c.name): h_n")
        let loss = try (y * c.tensor("grad_y").reshaped(y.shape)).sum() + (hn * c.tensor("grad_h_n").reshaped(hn.shape)).sum()
        let params = layer.namedParameters
        let grads = Tensor.gradients(of: loss, wrt: [x, h0] + params.map { $0.1.value })
        compare(grads[0], try c.tensor("grad_x"), "case \(c.name): grad_x")
        compare(grads[1], try c.tensor("grad_h0"), "case \(c.name): grad_h0")
        for (i, (name, _)) in params.enumerated() {
            compare(grads[i + 2], try c.tensor("grad." + name), "case \(c.name): grad.\(name)")
        }
    }

    func scheduleCase(_ c: Case) throws {
        let steps = try c.int("T")
        for kind in [NoiseSchedule.Kind.linear, .cosine] {
            let s = NoiseSchedule(kind, steps: steps)
            func tensor(_ v: [Double]) -> Tensor { Tensor(shape: [v.count], scalars: v.map { Float($0) }) }
            compare(tensor(s.betas), try c.tensor("betas_\(kind.rawValue)"), "case \(c.name): betas \(kind)")
            compare(tensor(s.alphasCumprod), try c.tensor("alphas_cumprod_\(kind.rawValue)"), "case \(c.name): alphas_cumprod \(kind)")
        }
    }

    func timestepEmbeddingCase(_ c: Case) throws {
        let t = try c.tensor("t").scalars.map(Double.init)
        let e = timestepEmbedding(t, dim: try c.int("dim"), maxPeriod: try c.double("max_period"))
        compare(e, try c.tensor("embedding"), "case \(c.name): embedding")
    }

    func diffusionStepCase(_ c: Case) throws {
        guard let kind = NoiseSchedule.Kind(rawValue: try c.string("schedule")) else {
            throw FixtureError(description: "case \(c.name): unknown schedule '\(try c.string("schedule"))'")
        }
        let s = NoiseSchedule(kind, steps: try c.int("T"))
        let t = try Self.integers(try c.tensor("t"), "case \(c.name) t")
        let x0 = try c.tensor("x0"), eps = try c.tensor("eps"), xt = try c.tensor("x_t"), epsPred = try c.tensor("eps_pred")
        compare(s.noised(x0, t: t, noise: eps), xt, "case \(c.name): x_t")
        compare(s.predictedX0(xt: xt, t: t, epsPrediction: epsPred), try c.tensor("x0_pred"), "case \(c.name): x0_pred")
        compare(s.ddimStep(xt: xt, t: t, epsPrediction: epsPred, eta: 0), try c.tensor("ddim_prev_eta0"), "case \(c.name): ddim_prev_eta0")
        let (mean, variance) = s.ddpmPosterior(xt: xt, t: t, epsPrediction: epsPred)
        compare(mean, try c.tensor("ddpm_posterior_mean"), "case \(c.name): ddpm_posterior_mean")
        compare(variance, try c.tensor("ddpm_posterior_var"), "case \(c.name): ddpm_posterior_var")
        compare(s.vTarget(x0: x0, t: t, noise: eps), try c.tensor("v_target"), "case \(c.name): v_target")
        compare(Loss.meanSquaredError(epsPred, eps), try c.tensor("eps_mse"), "case \(c.name): eps_mse")
    }
}
