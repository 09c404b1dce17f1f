import Foundation
import XCTest
import ConjureNN
import ConjureTestSupport

/// Golden forward/backward values from ../shared/fixtures/layers (PyTorch, float64 from
/// float32-representable inputs). Every entry of `cases.json` is run, dispatched on its `op`,
/// so a case added there is tested without code changes; an unknown op fails.
final class ConvFixtureTests: XCTestCase {
    typealias Case = FixtureCase

    func loadCases() throws -> [Case] { try loadFixtureCases(root: try sharedPath("fixtures/layers")) }

    /// Element-wise `|a - b| <= 1e-4 |b| + atol`, with `atol` a tiny multiple of the expected
    /// tensor's largest magnitude (float32 sums of terms of that size).
    func check(_ got: Tensor, _ expected: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, expected.count, "\(message): element count", file: file, line: line)
        let scale = expected.scalars.map(abs).max() ?? 0
        assertClose(got.reshaped(expected.shape), expected, rtol: 1e-4, atol: 1e-6 * max(scale, 1e-2), message,
                    file: file, line: line)
    }

    func testEveryLayerCase() throws {
        let cases = try loadCases()
        XCTAssertFalse(cases.isEmpty, "cases.json lists no cases")
        for c in cases {
            let op = c.settings["op"] as? String ?? "<missing>"
            do {
                switch op {
                case "Conv2d", "ConvTranspose2d": try runConvolution(c, transposed: op == "ConvTranspose2d")
                case "BatchNorm2d": try runBatchNorm2d(c)
                case "SpectralNorm": try runSpectralNorm(c)
                case "WGAN-GP penalty": try runGradientPenalty(c)
                default: XCTFail("case \(c.name): unknown op '\(op)'; add it to ConvFixtureTests")
                }
            } catch {
                XCTFail("case \(c.name): \(error)")
            }
        }
    }

    // MARK: Conv2d / ConvTranspose2d

    func runConvolution(_ c: Case, transposed: Bool) throws {
        let x = try c.tensor("x"), w = try c.tensor("weight"), gy = try c.tensor("grad_y")
        let hasBias = c.settings["bias"] as? Bool ?? c.has("bias")
        let cin = try c.int("C_in"), cout = try c.int("C_out"), k = try c.int("kernel")
        let stride = try c.int("stride"), padding = try c.int("padding")
        let outputPadding = c.settings["output_padding"] as? Int ?? 0
        XCTAssertEqual(x.shape, [try c.int("N"), cin, try c.int("H"), try c.int("W")], "\(c.name): x shape")
        var rng = RandomGenerator(seed: 0)
        let layer: any SpectralNormalizable
        if transposed {
            layer = ConvTranspose2d(cin, cout, kernelSize: k, stride: stride, padding: padding,
                                    outputPadding: outputPadding, bias: hasBias, rng: &rng)
        } else {
            XCTAssertEqual(outputPadding, 0, "\(c.name): output_padding on a Conv2d")
            layer = Conv2d(cin, cout, kernelSize: k, stride: stride, padding: padding, bias: hasBias, rng: &rng)
        }
        if let ws = c.shape("weight_shape") { XCTAssertEqual(layer.weight.shape, ws, "\(c.name): layer weight shape") }
        var state = ["weight": w]
        if hasBias { state["bias"] = try c.tensor("bias") }
        try layer.loadStateDict(state)
        XCTAssertEqual(layer.stateDict().map(\.0), hasBias ? ["weight", "bias"] : ["weight"], "\(c.name): state_dict names")

        let xLeaf = x.requiringGrad()
        let y = layer(xLeaf)
        if let ys = c.shape("y_shape") { XCTAssertEqual(y.shape, ys, "\(c.name): y shape") }
        check(y, try c.tensor("y"), "\(c.name) y")
        var wrt = [xLeaf, layer.weight.value]
        if let b = layer.bias { wrt.append(b.value) }
        let grads = Tensor.gradients(of: y, seed: gy, wrt: wrt)
        check(grads[0], try c.tensor("grad_x"), "\(c.name) grad_x")
        check(grads[1], try c.tensor("grad_weight"), "\(c.name) grad_weight")
        if hasBias { check(grads[2], try c.tensor("grad_bias"), "\(c.name) grad_bias") }
    }

    // MARK: BatchNorm2d

    func runBatchNorm2d(_ c: Case) throws {
        let x = try c.tensor("x"), gy = try c.tensor("grad_y")
        let eps = Float(c.settings["eps"] as? Double ?? 1e-5), momentum = Float(c.settings["momentum"] as? Double ?? 0.1)
        let channels = x.shape[1]
        let bn = BatchNorm2d(channels, eps: eps, momentum: momentum)
        XCTAssertEqual(bn.stateDict().map(\.0), ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"],
                       "\(c.name): state_dict names")
        bn.weight.assign(try c.tensor("weight"))
        bn.bias.assign(try c.tensor("bias"))
        let xLeaf = x.requiringGrad()
        let y = bn(xLeaf)
        check(y, try c.tensor("y"), "\(c.name) y")
        let grads = Tensor.gradients(of: y, seed: gy, wrt: [xLeaf, bn.weight.value, bn.bias.value])
        check(grads[0], try c.tensor("grad_x"), "\(c.name) grad_x")
        check(grads[1], try c.tensor("grad_weight"), "\(c.name) grad_weight")
        check(grads[2], try c.tensor("grad_bias"), "\(c.name) grad_bias")
        check(bn.runningMean.value, try c.tensor("running_mean"), "\(c.name) running_mean")
        check(bn.runningVar.value, try c.tensor("running_var"), "\(c.name) running_var")
        XCTAssertEqual(bn.numBatchesTracked.value.item, 1, "\(c.name): num_batches_tracked")
        bn.isTraining = false
        check(bn(x), try c.tensor("y_eval_after"), "\(c.name) y_eval_after")
    }

    // MARK: Spectral norm

    func runSpectralNorm(_ c: Case) throws {
        let w = try c.tensor("weight"), u0 = try c.tensor("u0"), v0 = try c.tensor("v0")
        XCTAssertEqual(w.rank, 2, "\(c.name): expected a Linear weight [out, in]")
        var rng = RandomGenerator(seed: 0)
        let sn = SpectralNorm(Linear(w.shape[1], w.shape[0], bias: false, rng: &rng), rng: &rng)
        XCTAssertEqual(sn.stateDict().map(\.0), ["weight_orig", "weight_u", "weight_v"], "\(c.name): state_dict names")
        try sn.loadStateDict(["weight_orig": w, "weight_u": u0, "weight_v": v0])

        let wsn = sn.normalizedWeight()  // training mode: one power iteration
        check(Tensor(sn.lastSigma), try c.tensor("sigma"), "\(c.name) sigma")
        check(sn.u.value, try c.tensor("u1"), "\(c.name) u1")
        check(sn.v.value, try c.tensor("v1"), "\(c.name) v1")
        check(wsn, try c.tensor("weight_sn"), "\(c.name) weight_sn")
        let grad = Tensor.gradients(of: wsn, seed: try c.tensor("grad_out"), wrt: [sn.weightOrig.value])[0]
        check(grad, try c.tensor("grad_weight"), "\(c.name) grad_weight")

        // Evaluation mode keeps u1, v1 (no iteration), so it gives the same W / σ, and the
        // layer's forward applies it.
        sn.isTraining = false
        let u1 = sn.u.value.scalars
        check(sn.normalizedWeight(), try c.tensor("weight_sn"), "\(c.name) eval weight_sn")
        let x = Tensor.randomNormal([3, w.shape[1]], using: &rng)
        check(sn(x), Tensor.matmul(x, try c.tensor("weight_sn"), transposeB: true), "\(c.name) eval forward")
        XCTAssertEqual(sn.u.value.scalars, u1, "\(c.name): evaluation mode must not iterate")
        // A training forward runs one more power iteration (u changes, as in PyTorch).
        sn.isTraining = true
        _ = sn(x)
        XCTAssertNotEqual(sn.u.value.scalars, u1, "\(c.name): training forward must iterate")
    }

    // MARK: WGAN-GP

    /// The critic is `critic.<i>.weight/bias` Linear layers with an activation between each pair.
    /// The fixture's README/cases.json do not name the activation; LeakyReLU(0.2) reproduces the
    /// stored penalty (ReLU gives 0.7375 against 0.7612), so it is the default unless the case
    /// gives `"activation"`. The stored penalty is the unscaled mean, so lambda defaults to 1.
    func runGradientPenalty(_ c: Case) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: c.dir.path)
        let indices = Set(files.compactMap { f -> Int? in
            let p = f.split(separator: ".")
            return p.count == 4 && p[0] == "critic" && p[2] == "weight" && p[3] == "npy" ? Int(p[1]) : nil
        }).sorted()
        XCTAssertFalse(indices.isEmpty, "\(c.name): no critic.<i>.weight.npy")
        let activation: Activation.Kind
        switch (c.settings["activation"] as? String ?? "LeakyReLU(0.2)").lowercased() {
        case "relu": activation = .relu
        case "tanh": activation = .tanh
        case let s where s.hasPrefix("leakyrelu"):
            let slope = Float(s.drop { $0 != "(" }.dropFirst().prefix { $0 != ")" }) ?? 0.01
            activation = .leakyRelu(slope)
        case let s: throw FixtureError(description: "case \(c.name): unknown activation \(s)")
        }
        var layers: [any Layer] = []
        var rng = RandomGenerator(seed: 0)
        var state: [String: Tensor] = [:]
        for (j, i) in indices.enumerated() {
            XCTAssertEqual(i, 2 * j, "\(c.name): expected Linear layers at even indices with activations between")
            if j > 0 { layers.append(Activation(activation)) }
            let w = try c.tensor("critic.\(i).weight")
            let hasBias = c.has("critic.\(i).bias")
            layers.append(Linear(w.shape[1], w.shape[0], bias: hasBias, rng: &rng))
            state["\(i).weight"] = w
            if hasBias { state["\(i).bias"] = try c.tensor("critic.\(i).bias") }
        }
        let critic = Sequential(layers)
        try critic.loadStateDict(state)

        let lambda = Float(c.settings["lambda"] as? Double ?? 1)
        let penalty = wganGradientPenalty(critic: { critic($0) }, real: try c.tensor("real"), fake: try c.tensor("fake"),
                                          eps: try c.tensor("eps"), lambda: lambda)
        check(penalty, try c.tensor("penalty"), "\(c.name) penalty")
        let params = critic.allNamedParameters()
        let grads = Tensor.gradients(of: penalty, wrt: params.map(\.1.value))
        for ((name, _), g) in zip(params, grads) {
            check(g, try c.tensor("grad.critic.\(name)"), "\(c.name) grad.critic.\(name)")
        }
    }

    // MARK: Layer properties beyond the fixtures

    func testConvLayerInitialisationBoundsAndNames() {
        var rng = RandomGenerator(seed: 5)
        let conv = Conv2d(3, 8, kernelSize: 4, stride: 2, padding: 1, rng: &rng)
        let convBound = 1 / Float(3 * 16).squareRoot()
        XCTAssertEqual(conv.weight.shape, [8, 3, 4, 4])
        XCTAssertLessThanOrEqual(conv.weight.value.scalars.map(abs).max()!, convBound)
        XCTAssertGreaterThan(conv.weight.value.scalars.map(abs).max()!, 0.8 * convBound)
        XCTAssertLessThanOrEqual(conv.bias!.value.scalars.map(abs).max()!, convBound)
        // PyTorch takes ConvTranspose2d's fan-in from weight.size(1) = out channels.
        let convT = ConvTranspose2d(16, 2, kernelSize: 4, stride: 2, padding: 1, rng: &rng)
        let tBound = 1 / Float(2 * 16).squareRoot()
        XCTAssertEqual(convT.weight.shape, [16, 2, 4, 4])
        XCTAssertLessThanOrEqual(convT.weight.value.scalars.map(abs).max()!, tBound)
        XCTAssertGreaterThan(convT.weight.value.scalars.map(abs).max()!, 0.8 * tBound)
        XCTAssertEqual(convT(Tensor.zeros([1, 16, 7, 7])).shape, [1, 2, 14, 14])
        let net = Sequential([conv, Activation(.leakyRelu(0.2)), Conv2d(8, 4, kernelSize: 3, bias: false, rng: &rng), BatchNorm2d(4),
                              Flatten(), Linear(4 * 2 * 2, 1, rng: &rng)])
        XCTAssertEqual(net.stateDict().map(\.0),
                       ["0.weight", "0.bias", "2.weight", "3.weight", "3.bias", "3.running_mean", "3.running_var",
                        "3.num_batches_tracked", "5.weight", "5.bias"])
        XCTAssertEqual(net(Tensor.randomNormal([2, 3, 8, 8], using: &rng)).shape, [2, 1])
        XCTAssertEqual(Reshape([4, 2, 2])(Tensor.zeros([3, 16])).shape, [3, 4, 2, 2])
    }

    /// Spectral norm of a Conv2d (rows = out channels) and a ConvTranspose2d (rows = out
    /// channels, axis 1) equals spectral norm of a Linear on the matrix PyTorch forms.
    func testSpectralNormOfConvolutionsUsesPyTorchsMatrix() throws {
        var rng = RandomGenerator(seed: 9)
        let conv = SpectralNorm(Conv2d(3, 4, kernelSize: 3, padding: 1, rng: &rng), rng: &rng)
        XCTAssertEqual(conv.stateDict().map(\.0), ["bias", "weight_orig", "weight_u", "weight_v"])
        XCTAssertEqual(conv.u.value.shape, [4]); XCTAssertEqual(conv.v.value.shape, [27])
        let convT = SpectralNorm(ConvTranspose2d(3, 4, kernelSize: 2, stride: 2, rng: &rng), rng: &rng)
        XCTAssertEqual(convT.u.value.shape, [4]); XCTAssertEqual(convT.v.value.shape, [12])
        for (sn, matrix) in [(conv as any Layer, conv.weightOrig.value.reshaped([4, 27])),
                             (convT as any Layer, convT.weightOrig.value.permuted([1, 0, 2, 3]).reshaped([4, 12]))] {
            let state = Dictionary(uniqueKeysWithValues: sn.stateDict())
            let lin = SpectralNorm(Linear(matrix.shape[1], 4, bias: false, rng: &rng), rng: &rng)
            try lin.loadStateDict(["weight_orig": matrix.detached(), "weight_u": state["weight_u"]!, "weight_v": state["weight_v"]!])
            let expected = lin.normalizedWeight()
            let got: Tensor
            let sigma: Float
            if let c = sn as? SpectralNorm<Conv2d> { got = c.normalizedWeight().reshaped([4, 27]); sigma = c.lastSigma }
            else { let c = sn as! SpectralNorm<ConvTranspose2d>; got = c.normalizedWeight().permuted([1, 0, 2, 3]).reshaped([4, 12]); sigma = c.lastSigma }
            XCTAssertEqual(sigma, lin.lastSigma, accuracy: 1e-5 * lin.lastSigma)
            assertClose(got, expected, rtol: 1e-5, atol: 1e-7, "spectral norm of a convolution")
        }
        // Many iterations drive σ to the largest singular value: ‖W_sn v‖ = 1 for the top v.
        let many = SpectralNorm(Conv2d(2, 3, kernelSize: 3, rng: &rng), powerIterations: 200, rng: &rng)
        let wsn = many.normalizedWeight().reshaped([3, 18])
        let wv = Tensor.matmul(wsn, many.v.value.reshaped([18, 1]))
        XCTAssertEqual(wv.scalars.map { $0 * $0 }.reduce(0, +).squareRoot(), 1, accuracy: 1e-4)
        XCTAssertEqual(many(Tensor.zeros([1, 2, 5, 5])).shape, [1, 3, 3, 3])
    }

    /// Closed forms: for a linear critic D(x) = <w, x> + b the input gradient is w for every
    /// sample, so WGAN-GP = λ (‖w‖ - 1)² with d/dw = 2λ (‖w‖ - 1) w/‖w‖, and R1 = γ/2 ‖w‖²
    /// with d/dw = γ w.
    func testPenaltiesOnALinearCriticMatchClosedForms() {
        var rng = RandomGenerator(seed: 4)
        let critic = Linear(6, 1, rng: &rng)
        let real = Tensor.randomNormal([5, 6], using: &rng), fake = Tensor.randomNormal([5, 6], using: &rng)
        let w = critic.weight.value.scalars.map(Double.init)
        let norm = w.map { $0 * $0 }.reduce(0, +).squareRoot()
        let gp = wganGradientPenalty(critic: { critic($0) }, real: real, fake: fake, rng: &rng)
        XCTAssertEqual(Double(gp.item), 10 * (norm - 1) * (norm - 1), accuracy: 1e-5)
        let gw = Tensor.gradients(of: gp, wrt: [critic.weight.value, critic.bias!.value])
        assertClose(gw[0].scalars, w.map { Float(20 * (norm - 1) * $0 / norm) }, rtol: 1e-4, atol: 1e-6, "d GP / dw")
        XCTAssertEqual(gw[1].scalars, [0])
        let r1 = r1Penalty(critic: { critic($0) }, real: real, gamma: 3)
        XCTAssertEqual(Double(r1.item), 1.5 * norm * norm, accuracy: 1e-5)
        let gr = Tensor.gradients(of: r1, wrt: [critic.weight.value])[0]
        assertClose(gr.scalars, w.map { Float(3 * $0) }, rtol: 1e-4, atol: 1e-6, "d R1 / dw")
    }

    /// WGAN-GP through a convolutional critic: the penalty's gradient with respect to a conv
    /// weight (second order through conv2d) against finite differences of the penalty.
    func testGradientPenaltyThroughConvCriticMatchesFiniteDifferences() {
        var rng = RandomGenerator(seed: 8)
        let c1 = Conv2d(1, 3, kernelSize: 4, stride: 2, padding: 1, rng: &rng)
        let head = Linear(3 * 3 * 3, 1, rng: &rng)
        let real = Tensor.randomNormal([3, 1, 6, 6], using: &rng), fake = Tensor.randomNormal([3, 1, 6, 6], using: &rng)
        let eps = Tensor.randomUniform([3, 1, 1, 1], using: &rng)
        func penalty(_ w: Tensor) -> Tensor {
            wganGradientPenalty(critic: { x in
                head(Tensor.conv2d(x, weight: w, bias: c1.bias!.value, stride: 2, padding: 1).tanh().reshaped([x.shape[0], -1]))
            }, real: real, fake: fake, eps: eps)
        }
        checkGradients([c1.weight.value.detached()], rtol: 3e-2, atol: 3e-3) { penalty($0[0]) }
    }

    func testDropoutLayerNormEmbedding() {
        var rng = RandomGenerator(seed: 12)
        let drop = Dropout(0.25, rng: &rng)
        let ones = Tensor.ones([4000])
        let y = drop(ones)
        let zeros = y.scalars.filter { $0 == 0 }.count
        XCTAssertEqual(Double(zeros) / 4000, 0.25, accuracy: 0.03)
        XCTAssertTrue(y.scalars.allSatisfy { $0 == 0 || abs($0 - 1 / 0.75) < 1e-6 })
        drop.isTraining = false
        XCTAssertEqual(drop(ones).scalars, ones.scalars)

        let ln = LayerNorm([3, 4])
        let x = Tensor.randomNormal([2, 3, 4], std: 2, using: &rng) + 1
        let out = ln(x)
        for i in 0..<2 {
            let row = Array(out.scalars[(i * 12)..<((i + 1) * 12)])
            XCTAssertEqual(row.reduce(0, +) / 12, 0, accuracy: 1e-5)
            XCTAssertEqual(row.map { $0 * $0 }.reduce(0, +) / 12, 1, accuracy: 1e-3)
        }
        let w = Tensor.randomNormal([3, 4], using: &rng), b = Tensor.randomNormal([3, 4], using: &rng)
        ln.weight!.assign(w); ln.bias!.assign(b)
        checkGradients([x]) { ln($0[0]) }
        XCTAssertEqual(ln.stateDict().map(\.0), ["weight", "bias"])

        let emb = Embedding(5, 3, rng: &rng)
        let e = emb(Tensor(shape: [2, 2], scalars: [4, 0, 0, 2]))
        XCTAssertEqual(e.shape, [2, 2, 3])
        XCTAssertEqual(Array(e.scalars[0..<3]), Array(emb.weight.value.scalars[12..<15]))
        XCTAssertEqual(Array(e.scalars[9..<12]), Array(emb.weight.value.scalars[6..<9]))
    }

    func testBatchNorm2dLayerGradientsAndEvalMode() {
        var rng = RandomGenerator(seed: 13)
        let bn = BatchNorm2d(2)
        bn.weight.assign(Tensor.randomNormal([2], using: &rng))
        bn.bias.assign(Tensor.randomNormal([2], using: &rng))
        checkGradients([Tensor.randomNormal([2, 2, 3, 3], std: 2, using: &rng)]) { bn($0[0]) }
        bn.isTraining = false
        let x = Tensor.randomNormal([3, 2, 2, 2], using: &rng)
        checkGradients([x]) { bn($0[0]) }
        // Evaluation output of one sample does not depend on the rest of the batch.
        XCTAssertEqual(Array(bn(x).scalars[0..<8]), bn(x.slice(axis: 0, 0..<1)).scalars)
    }
}
