import Foundation
import XCTest
import ConjureNN
import ConjureTestSupport

/// Finite-difference checks and properties of the diffusion, sequence and audio layers
/// (attention, GRU, 1-D convolutions, GroupNorm) and of the diffusion math.
final class BlocksLayerTests: XCTestCase {
    var rng = RandomGenerator(seed: 5)
    func randn(_ shape: [Int], scale: Float = 1) -> Tensor { Tensor.randomNormal(shape, std: scale, using: &rng) }

    func testAttentionGradientsAndNames() {
        for causal in [false, true] {
            var r = RandomGenerator(seed: 3)
            let attn = MultiheadSelfAttention(embedDim: 6, numHeads: 2, causal: causal, rng: &r)
            XCTAssertEqual(attn.namedParameters.map(\.0), ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"])
            XCTAssertEqual(attn.namedParameters.map(\.1.shape), [[18, 6], [18], [6, 6], [6]])
            let x = randn([2, 4, 6])
            let bIn = randn([18], scale: 0.3), bOut = randn([6], scale: 0.3)
            checkGradients([x, attn.inProjWeight.value, bIn, attn.outProjWeight.value, bOut]) { xs in
                attentionReference(xs[0], xs[1], xs[2], xs[3], xs[4], heads: 2, causal: causal)
            }
            attn.inProjBias.assign(bIn)
            attn.outProjBias.assign(bOut)
            // The layer equals the reference composition, and the causal output at position i
            // does not depend on later positions.
            assertClose(attn(x), attentionReference(x, attn.inProjWeight.value, bIn, attn.outProjWeight.value, bOut,
                                                   heads: 2, causal: causal), rtol: 1e-5, atol: 1e-6)
            checkGradients([x]) { attn($0[0]) }
            if causal {
                var x2 = x
                x2.withMutableScalars { s in for i in (3 * 6)..<(4 * 6) { s[i] += 1 } }  // change position 3 of sample 0
                let y1 = attn(x).scalars, y2 = attn(x2).scalars
                XCTAssertEqual(Array(y1[0..<(3 * 6)]), Array(y2[0..<(3 * 6)]), "positions 0-2 ignore position 3")
                XCTAssertNotEqual(Array(y1[(3 * 6)..<(4 * 6)]), Array(y2[(3 * 6)..<(4 * 6)]))
            }
        }
    }

    /// Attention written out head by head with 2-D products (the formula, independently of the
    /// layer's batched layout).
    func attentionReference(_ x: Tensor, _ wIn: Tensor, _ bIn: Tensor, _ wOut: Tensor, _ bOut: Tensor,
                            heads: Int, causal: Bool) -> Tensor {
        let b = x.shape[0], t = x.shape[1], e = x.shape[2], d = e / heads
        var outs: [Tensor] = []
        for s in 0..<b {
            let xs = x.slice(axis: 0, s..<(s + 1)).reshaped([t, e])
            let qkv = Tensor.linear(xs, weight: wIn, bias: bIn)
            var ctx: [Tensor] = []
            for h in 0..<heads {
                let q = qkv.slice(axis: 1, (h * d)..<((h + 1) * d))
                let k = qkv.slice(axis: 1, (e + h * d)..<(e + (h + 1) * d))
                let v = qkv.slice(axis: 1, (2 * e + h * d)..<(2 * e + (h + 1) * d))
                var scores = Tensor.matmul(q, k, transposeB: true) * (1 / Float(d).squareRoot())
                if causal { scores = scores + MultiheadSelfAttention.causalMask(t) }
                ctx.append(Tensor.matmul(scores.softmax(axis: 1), v))
            }
            outs.append(Tensor.linear(Tensor.concat(ctx, axis: 1), weight: wOut, bias: bOut).reshaped([1, t, e]))
        }
        return Tensor.concat(outs, axis: 0)
    }

    func testGRUGradientsAndNames() {
        var r = RandomGenerator(seed: 4)
        let gru = GRU(inputSize: 3, hiddenSize: 4, rng: &r)
        XCTAssertEqual(gru.namedParameters.map(\.0), ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"])
        XCTAssertEqual(gru.namedParameters.map(\.1.shape), [[12, 3], [12, 4], [12], [12]])
        let x = randn([2, 5, 3]), h0 = randn([2, 4], scale: 0.5)
        let p = gru.namedParameters.map(\.1.value)
        checkGradients([x, h0] + p) { xs in
            gruReference(xs[0], xs[1], xs[2], xs[3], xs[4], xs[5]).output
        }
        checkGradients([x, h0] + p) { xs in
            gruReference(xs[0], xs[1], xs[2], xs[3], xs[4], xs[5]).final
        }
        let (y, hn) = gru.run(x, initialState: h0)
        let ref = gruReference(x, h0, p[0], p[1], p[2], p[3])
        assertClose(y, ref.output, rtol: 1e-5, atol: 1e-6)
        assertClose(hn, ref.final, rtol: 1e-5, atol: 1e-6)
        XCTAssertEqual(y.slice(axis: 1, 4..<5).reshaped([2, 4]).scalars, hn.scalars, "h_n is the last output")
        checkGradients([x, h0]) { gru.run($0[0], initialState: $0[1]).output }
        // Gradients of the layer's own parameters, through the time steps.
        let seed = randn([2, 5, 4])
        let gp = Tensor.gradients(of: gru.run(x, initialState: h0).output, seed: seed, wrt: gru.parameters.map(\.value))
        let leaves = p.map { $0.requiringGrad() }
        let gr = Tensor.gradients(of: gruReference(x, h0, leaves[0], leaves[1], leaves[2], leaves[3]).output, seed: seed, wrt: leaves)
        for (a, b) in zip(gp, gr) { assertClose(a, b, rtol: 1e-4, atol: 1e-6) }
    }

    /// GRU written out step by step with per-gate weights, time-major indexing of PyTorch's
    /// formula `h' = (1 - z) n + z h`.
    func gruReference(_ x: Tensor, _ h0: Tensor, _ wih: Tensor, _ whh: Tensor, _ bih: Tensor, _ bhh: Tensor)
        -> (output: Tensor, final: Tensor) {
        let b = x.shape[0], steps = x.shape[1], i = x.shape[2], hs = h0.shape[1]
        func gate(_ w: Tensor, _ g: Int) -> Tensor { w.slice(axis: 0, (g * hs)..<((g + 1) * hs)) }
        var h = h0
        var outs: [Tensor] = []
        for s in 0..<steps {
            let xt = x.slice(axis: 1, s..<(s + 1)).reshaped([b, i])
            let r = (Tensor.linear(xt, weight: gate(wih, 0), bias: gate(bih, 0)) + Tensor.linear(h, weight: gate(whh, 0), bias: gate(bhh, 0))).sigmoid()
            let z = (Tensor.linear(xt, weight: gate(wih, 1), bias: gate(bih, 1)) + Tensor.linear(h, weight: gate(whh, 1), bias: gate(bhh, 1))).sigmoid()
            let n = (Tensor.linear(xt, weight: gate(wih, 2), bias: gate(bih, 2)) + r * Tensor.linear(h, weight: gate(whh, 2), bias: gate(bhh, 2))).tanh()
            h = (1 - z) * n + z * h
            outs.append(h.reshaped([b, 1, hs]))
        }
        return (Tensor.concat(outs, axis: 1), h)
    }

    func testConvolution1dLayersAndGroupNorm() {
        var r = RandomGenerator(seed: 8)
        let conv = Conv1d(2, 3, kernelSize: 5, stride: 2, padding: 2, rng: &r)
        XCTAssertEqual(conv.namedParameters.map(\.0), ["weight", "bias"])
        XCTAssertEqual(conv.weight.shape, [3, 2, 5])
        let x = randn([2, 2, 9])
        checkGradients([x, conv.weight.value, conv.bias!.value]) {
            Tensor.conv1d($0[0], weight: $0[1], bias: $0[2], stride: 2, padding: 2)
        }
        XCTAssertEqual(conv(x).shape, [2, 3, 5])
        let up = ConvTranspose1d(3, 1, kernelSize: 25, stride: 4, padding: 11, outputPadding: 1, bias: false, rng: &r)
        XCTAssertEqual(up.namedParameters.map(\.0), ["weight"])
        XCTAssertEqual(up.weight.shape, [3, 1, 25])
        XCTAssertEqual(up(randn([2, 3, 16])).shape, [2, 1, 64], "WaveGAN's layer multiplies the length by 4")
        checkGradients([randn([1, 3, 4])]) { up($0[0]) }

        let gn = GroupNorm(numGroups: 2, numChannels: 4)
        XCTAssertEqual(gn.namedParameters.map(\.0), ["weight", "bias"])
        gn.weight!.assign(randn([4])); gn.bias!.assign(randn([4]))
        checkGradients([randn([2, 4, 3, 3])]) { gn($0[0]) }
        XCTAssertEqual(GroupNorm(numGroups: 2, numChannels: 4, affine: false).namedParameters.count, 0)
    }

    func testDropoutModesAndExplicitGenerator() {
        var r = RandomGenerator(seed: 9)
        let drop = Dropout(0.5, rng: &r)
        let x = Tensor.ones([1000])
        var g1 = RandomGenerator(seed: 42), g2 = RandomGenerator(seed: 42)
        let a = drop(x, rng: &g1), b = drop(x, rng: &g2)
        XCTAssertEqual(a.scalars, b.scalars, "the same generator state gives the same mask")
        XCTAssert(a.scalars.allSatisfy { $0 == 0 || $0 == 2 })
        let kept = a.scalars.filter { $0 != 0 }.count
        XCTAssert(kept > 400 && kept < 600, "kept \(kept) of 1000 at p = 0.5")
        drop.isTraining = false
        let before = g1
        XCTAssertEqual(drop(x, rng: &g1).scalars, x.scalars, "identity in evaluation mode")
        XCTAssertEqual(g1, before, "evaluation mode draws nothing")
        XCTAssertEqual(drop(x).scalars, x.scalars)
    }

    func testTokenCrossEntropyGradient() {
        let targets = [1, 0, 3, 2, 2, 1]
        checkGradients([randn([2, 3, 4])]) { Loss.tokenCrossEntropy(logits: $0[0], targets: targets) }
        // Uniform logits give log V.
        XCTAssertEqual(Loss.tokenCrossEntropy(logits: .zeros([2, 3, 4]), targets: targets).item, Float(Foundation.log(4.0)), accuracy: 1e-6)
    }

    func testDiffusionMath() {
        for kind in [NoiseSchedule.Kind.linear, .cosine] {
            let s = NoiseSchedule(kind, steps: 50)
            XCTAssertEqual(s.steps, 50)
            XCTAssert(s.betas.allSatisfy { $0 > 0 && $0 <= 0.999 })
            XCTAssert(zip(s.alphasCumprod, s.alphasCumprod.dropFirst()).allSatisfy { $0 > $1 }, "ᾱ decreases")
            XCTAssertEqual(s.alphasCumprod[0], 1 - s.betas[0], accuracy: 1e-15)
        }
        let s = NoiseSchedule(.linear, steps: 100)
        XCTAssertEqual(s.betas.first!, 1e-4, accuracy: 1e-15)
        XCTAssertEqual(s.betas.last!, 0.02, accuracy: 1e-15)
        let x0 = randn([3, 2, 4]), eps = randn([3, 2, 4]), t = [0, 37, 99]
        let xt = s.noised(x0, t: t, noise: eps)
        // x̂_0 from the true noise recovers x_0; v and ε determine x_0 = sqrt(ᾱ) x_t - sqrt(1-ᾱ) v.
        assertClose(s.predictedX0(xt: xt, t: t, epsPrediction: eps), x0, rtol: 1e-4, atol: 1e-4)
        let v = s.vTarget(x0: x0, t: t, noise: eps)
        let a = Tensor(shape: [3, 1, 1], scalars: t.map { Float(s.alphasCumprod[$0].squareRoot()) })
        let c = Tensor(shape: [3, 1, 1], scalars: t.map { Float((1 - s.alphasCumprod[$0]).squareRoot()) })
        assertClose(xt * a - v * c, x0, rtol: 1e-4, atol: 1e-5)
        // With the true noise, DDIM (eta 0) lands on the forward process at t - 1; at t = 0 on x_0.
        let prev = s.ddimStep(xt: xt, t: t, epsPrediction: eps)
        let expected = s.noised(x0, t: t.map { max($0 - 1, 0) }, noise: eps)
        assertClose(prev.slice(axis: 0, 1..<3), expected.slice(axis: 0, 1..<3), rtol: 1e-4, atol: 1e-5)
        assertClose(prev.slice(axis: 0, 0..<1), x0.slice(axis: 0, 0..<1), rtol: 1e-4, atol: 1e-4)
        // DDPM: variance β̃ (0 at t = 0); the mean equals the posterior mean in x̂_0 form (Ho et al. eq. 7).
        let (mean, variance) = s.ddpmPosterior(xt: xt, t: t, epsPrediction: eps)
        XCTAssertEqual(variance.shape, [3, 1, 1])
        XCTAssertEqual(variance.scalars[0], 0)
        for (i, step) in t.enumerated() where step > 0 {
            let ab = s.alphasCumprod[step], abPrev = s.alphasCumprod[step - 1], beta = s.betas[step]
            let c0 = abPrev.squareRoot() * beta / (1 - ab), ct = s.alphas[step].squareRoot() * (1 - abPrev) / (1 - ab)
            let rows = (i * 8)..<((i + 1) * 8)
            let eq7 = rows.map { Float(c0 * Double(x0.scalars[$0]) + ct * Double(xt.scalars[$0])) }
            assertClose(Array(mean.scalars[rows]), eq7, rtol: 1e-4, atol: 1e-5)
            XCTAssertEqual(Double(variance.scalars[i]), beta * (1 - abPrev) / (1 - ab), accuracy: 1e-9)
        }
        let z = randn([3, 2, 4])
        assertClose(s.ddpmStep(xt: xt, t: t, epsPrediction: eps, noise: z), mean + z * variance.map { $0.squareRoot() })
        // DDIM with eta = 1 has DDPM's posterior variance as its σ².
        let d1 = s.ddimStep(xt: xt, t: t, epsPrediction: eps, eta: 1, noise: z)
        let d1z = s.ddimStep(xt: xt, t: t, epsPrediction: eps, eta: 1, noise: .zeros([3, 2, 4]))
        let sigma = (d1 - d1z).scalars
        for (i, _) in t.enumerated() {
            for j in 0..<8 { XCTAssertEqual(sigma[i * 8 + j], z.scalars[i * 8 + j] * variance.scalars[i].squareRoot(), accuracy: 1e-5) }
        }
        // Gradients flow through the noising (a denoiser's loss is differentiable in x_0).
        checkGradients([x0, eps]) { s.noised($0[0], t: t, noise: $0[1]) }

        // Timestep embedding: cos half first, frequencies exp(-ln(P) i / half).
        let e = timestepEmbedding([0, 5], dim: 8)
        XCTAssertEqual(e.shape, [2, 8])
        XCTAssertEqual(Array(e.scalars[0..<8]), [1, 1, 1, 1, 0, 0, 0, 0])
        for i in 0..<4 {
            let f = Foundation.exp(-Foundation.log(10_000.0) * Double(i) / 4)
            XCTAssertEqual(e.scalars[8 + i], Float(Foundation.cos(5 * f)), accuracy: 1e-6)
            XCTAssertEqual(e.scalars[12 + i], Float(Foundation.sin(5 * f)), accuracy: 1e-6)
        }
        XCTAssertEqual(timestepEmbedding([3], dim: 7).scalars.last, 0, "odd dim: zero column")
    }
}

/// The PhaseShuffle layer: shifts in [-n, n] drawn from its generator, identity in evaluation,
/// reproducible after reseeding.
final class PhaseShuffleLayerTests: XCTestCase {
    func testShiftsStayInRangeAndEvalIsIdentity() {
        var rng = RandomGenerator(seed: 3)
        let layer = PhaseShuffle(n: 2, rng: &rng)
        let x = Tensor.randomNormal([64, 3, 16], using: &rng)
        var seen = Set<Int>()
        for _ in 0..<4 {
            let y = layer(x)
            XCTAssertEqual(layer.lastShifts.count, 64)
            XCTAssert(layer.lastShifts.allSatisfy { (-2...2).contains($0) }, "\(layer.lastShifts)")
            seen.formUnion(layer.lastShifts)
            XCTAssertEqual(y.scalars, x.phaseShuffled(shifts: layer.lastShifts).scalars)
        }
        XCTAssertEqual(seen, Set(-2...2), "every shift in -2...2 occurs among 256 draws")
        layer.isTraining = false
        XCTAssertEqual(layer(x).scalars, x.scalars, "evaluation mode is the identity")
        layer.isTraining = true
        layer.rng = RandomGenerator(seed: 9)
        let a = layer(x).scalars, shiftsA = layer.lastShifts
        layer.rng = RandomGenerator(seed: 9)
        XCTAssertEqual(layer(x).scalars, a)
        XCTAssertEqual(layer.lastShifts, shiftsA, "the same generator state draws the same shifts")
    }
}
