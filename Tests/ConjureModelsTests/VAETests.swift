import XCTest
import Foundation
import ConjureNN
import ConjureData
import ConjureModels
@testable import ConjureTensor
import ConjureTestSupport

final class VAETests: XCTestCase {
    /// A small MLP VAE configuration.
    func tiny(dataDim: Int = 6, hidden: [Int] = [5], latent: Int = 2, activation: VAEActivation = .tanh,
              likelihood: VAELikelihood = .bernoulli, seed: UInt64 = 0) -> VAEConfig {
        VAEConfig(preset: "test", latentDim: latent, dataDim: dataDim, encoderHidden: hidden, decoderHidden: hidden,
                  activation: activation, likelihood: likelihood, binarize: false, lr: 1e-3, batchSize: 4, epochs: 1, seed: seed)
    }

    func uniformData(_ n: Int, _ d: Int, rng: inout RandomGenerator) -> Tensor { Tensor.randomUniform([n, d], using: &rng) }

    func softplus(_ x: Double) -> Double { max(x, 0) + log1p(exp(-abs(x))) }

    // MARK: - Loss terms against hand computation

    func testLossTermsMatchHandComputedValues() {
        // KL in closed form.
        let mu: [Float] = [0.5, -1.2, 0, 2], lv: [Float] = [-0.3, 0.8, 0, -2.5]
        let kl = VAE.gaussianKL(mu: Tensor(shape: [2, 2], scalars: mu), logvar: Tensor(shape: [2, 2], scalars: lv))
        let klHand = (0..<2).map { i in (0..<2).reduce(0.0) { s, j in
            let m = Double(mu[i * 2 + j]), v = Double(lv[i * 2 + j])
            return s - 0.5 * (1 + v - m * m - exp(v))
        } }
        assertClose(kl.scalars, klHand.map(Float.init), rtol: 1e-6, atol: 1e-7, "KL")

        // Bernoulli: -log p(x|l) = -Σ x log σ(l) + (1-x) log(1-σ(l)), including logits of ±30.
        let logits: [Float] = [30, -30, 0.7, -1.4, 0, 2.5]
        let x: [Float] = [0, 0, 1, 0.25, 1, 1]
        let nll = VAE.bernoulliNLL(logits: Tensor(shape: [2, 3], scalars: logits), x: Tensor(shape: [2, 3], scalars: x))
        let nllHand = (0..<2).map { i in (0..<3).reduce(0.0) { s, j in
            let l = Double(logits[i * 3 + j]), y = Double(x[i * 3 + j])
            // log σ(l) = -softplus(-l), log(1 - σ(l)) = -softplus(l)
            return s + y * softplus(-l) + (1 - y) * softplus(l)
        } }
        assertClose(nll.scalars, nllHand.map(Float.init), rtol: 1e-6, atol: 1e-6, "Bernoulli NLL")
        XCTAssertEqual(Double(nll.scalars[0]), 30 + 2 * log1p(exp(-30)) + softplus(-0.7), accuracy: 1e-5)

        // Gaussian with the log 2π constant.
        let mean: [Float] = [0.1, -0.4, 1.0, 2.0], ls: [Float] = [0.3, -1.1], gx: [Float] = [0.0, 0.2, 1.5, 1.0]
        let g = VAE.gaussianNLL(mean: Tensor(shape: [2, 2], scalars: mean), logSigma: Tensor(shape: [2], scalars: ls),
                                x: Tensor(shape: [2, 2], scalars: gx))
        let gHand = (0..<2).map { i in (0..<2).reduce(0.0) { s, j in
            let sigma = exp(Double(ls[j])), r = (Double(gx[i * 2 + j]) - Double(mean[i * 2 + j])) / sigma
            return s + 0.5 * log(2 * Double.pi) + Double(ls[j]) + 0.5 * r * r
        } }
        assertClose(g.scalars, gHand.map(Float.init), rtol: 1e-6, atol: 1e-6, "Gaussian NLL")
        // Unit variance at the mean: ½ log 2π nats per dimension.
        let unit = VAE.gaussianNLL(mean: .zeros([1, 3]), logSigma: Tensor(0), x: .zeros([1, 3]))
        XCTAssertEqual(Double(unit.item), 1.5 * log(2 * Double.pi), accuracy: 1e-6)

        var rng = RandomGenerator(seed: 3)
        checkGradients([Tensor.randomNormal([3, 2], using: &rng), Tensor.randomNormal([3, 2], using: &rng)]) {
            VAE.gaussianKL(mu: $0[0], logvar: $0[1])
        }
        let xt = uniformData(3, 4, rng: &rng)
        checkGradients([Tensor.randomNormal([3, 4], std: 2, using: &rng)]) { VAE.bernoulliNLL(logits: $0[0], x: xt) }
        checkGradients([Tensor.randomNormal([3, 4], using: &rng), Tensor.randomNormal([4], std: 0.3, using: &rng)]) {
            VAE.gaussianNLL(mean: $0[0], logSigma: $0[1], x: xt)
        }
    }

    /// A model whose encoder and decoder ignore their inputs (zero weights): the ELBO terms are
    /// then known in closed form.
    func testModelTermsForFixedEncoderAndDecoderOutputs() {
        var rng = RandomGenerator(seed: 1)
        let vae = VAE(config: tiny(dataDim: 4, hidden: [], latent: 2), rng: &rng)
        let enc = vae.encoder.layers[0] as! Linear, dec = vae.decoder.layers[0] as! Linear
        XCTAssertEqual(enc.weight.shape, [4, 4])  // 2·latent outputs
        let mu: [Float] = [0.3, -0.7], logvar: [Float] = [-0.5, 40]  // 40 is clamped to 20
        enc.weight.assign(.zeros([4, 4]))
        enc.bias!.assign(Tensor(shape: [4], scalars: mu + logvar))
        let b: [Float] = [1.2, -0.4, 0, 3]
        dec.weight.assign(.zeros([4, 2]))
        dec.bias!.assign(Tensor(shape: [4], scalars: b))
        let x = Tensor(shape: [2, 4], scalars: [1, 0, 1, 1, 0, 0, 0.5, 1])
        let eps = Tensor.randomNormal([2, 2], using: &rng)
        let t = vae.elboTerms(x: x, eps: eps)
        let lvClamped = [-0.5, 20.0]
        let klHand = (0..<2).reduce(0.0) { s, j in
            let m = Double(mu[j]), v = lvClamped[j]
            return s - 0.5 * (1 + v - m * m - exp(v))
        }
        assertClose(t.kl.scalars, [Float(klHand), Float(klHand)], rtol: 1e-6, "KL with clamped log-variance")
        let reconHand = (0..<2).map { i in (0..<4).reduce(0.0) { s, j in
            let l = Double(b[j]), y = Double(x.scalars[i * 4 + j])
            return s + softplus(l) - l * y
        } }
        assertClose(t.reconstruction.scalars, reconHand.map(Float.init), rtol: 1e-6, "reconstruction")
        assertClose(vae.negativeELBO(x: x, eps: eps).scalars, reconHand.map { Float($0 + klHand) }, rtol: 1e-6, "negative ELBO")
        // The clamp passes no gradient to the clamped log-variance output, but does inside.
        let grads = Tensor.gradients(of: (t.reconstruction + t.kl).sum(), wrt: [enc.bias!.value])
        XCTAssertEqual(grads[0].scalars[3], 0)
        XCTAssertEqual(Double(grads[0].scalars[2]), 2 * 0.5 * (exp(-0.5) - 1), accuracy: 1e-5)
    }

    // MARK: - Gradients

    /// Central finite differences of `Σ_n negELBO_n` with respect to every parameter element,
    /// each evaluation a Double sum of Float32 terms, against autodiff.
    func checkModelGradients(_ vae: VAE, x: Tensor, eps: Tensor, h: Float = 1e-2, rtol: Double = 2e-2, atol: Double = 2e-3,
                             file: StaticString = #filePath, line: UInt = #line) {
        func loss() -> Double {
            withoutGrad {
                let t = vae.elboTerms(x: x, eps: eps)
                return zip(t.reconstruction.scalars, t.kl.scalars).reduce(0.0) { $0 + Double($1.0) + Double($1.1) }
            }
        }
        let params = vae.parameters
        let t = vae.elboTerms(x: x, eps: eps)
        let grads = Tensor.gradients(of: (t.reconstruction + t.kl).sum(), wrt: params.map(\.value))
        var checked = 0
        for (k, p) in params.enumerated() {
            for i in 0..<p.value.count {
                p.update { $0[i] += h }
                let plus = loss()
                p.update { $0[i] -= 2 * h }
                let minus = loss()
                p.update { $0[i] += h }
                let numeric = (plus - minus) / (2 * Double(h))
                let analytic = Double(grads[k].scalars[i])
                if abs(numeric - analytic) > atol + rtol * abs(numeric) {
                    XCTFail("parameter \(k) element \(i): autodiff \(analytic), finite difference \(numeric)", file: file, line: line)
                    return
                }
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 0, file: file, line: line)
    }

    func testNegativeELBOGradientsMatchFiniteDifferences() {
        var rng = RandomGenerator(seed: 5)
        let vae = VAE(config: tiny(), rng: &rng)
        XCTAssertEqual(vae.parameters.map(\.value.count).reduce(0, +), (6 * 5 + 5) + (5 * 4 + 4) + (2 * 5 + 5) + (5 * 6 + 6))
        let x = uniformData(3, 6, rng: &rng)
        let eps = Tensor.randomNormal([3, 2], using: &rng)
        checkModelGradients(vae, x: x, eps: eps)

        // Gaussian likelihood with a learned per-dimension log σ (set away from 0).
        let g = VAE(config: tiny(likelihood: .gaussian), rng: &rng)
        XCTAssertEqual(g.logSigma?.shape, [6])
        g.logSigma!.assign(Tensor.randomNormal([6], std: 0.3, using: &rng))
        checkModelGradients(g, x: Tensor.randomNormal([3, 6], using: &rng), eps: eps)
    }

    // MARK: - Importance-weighted bound

    func testIWAEBound() {
        var rng = RandomGenerator(seed: 7)
        let vae = VAE(config: tiny(dataDim: 20, hidden: [16], latent: 4, activation: .relu), rng: &rng)
        let x = uniformData(16, 20, rng: &rng).map { $0 < 0.3 ? 1 : 0 }
        vae.trainStep(x: x, eps: Tensor.randomNormal([16, 4], using: &rng))
        let copies = TensorView.copiesForOtherHolders.current
        for _ in 0..<19 { vae.trainStep(x: x, eps: Tensor.randomNormal([16, 4], using: &rng)) }
        XCTAssertEqual(TensorView.copiesForOtherHolders.current, copies, "VAE steps copied weights for other holders")

        // k = 1 is the single-sample negative ELBO with a Monte Carlo KL: -log p(x|z) + log q(z|x) - log p(z).
        var iwRNG = RandomGenerator(seed: 99)
        var copy = iwRNG
        let one = vae.iwaeBound(x: x, k: 1, rng: &iwRNG)
        let eps = Tensor.randomNormal([16, 4], using: &copy)
        XCTAssertEqual(iwRNG, copy, "k = 1 draws exactly one [N, L] block of noise")
        let t = withoutGrad { vae.elboTerms(x: x, eps: eps) }
        let (mu, logvar) = withoutGrad { vae.encode(x) }
        for n in 0..<16 {
            var mcKL = 0.0
            for j in 0..<4 {
                let e = Double(eps.scalars[n * 4 + j]), lv = Double(logvar.scalars[n * 4 + j])
                let z = Double(mu.scalars[n * 4 + j]) + exp(lv / 2) * e
                mcKL += 0.5 * (z * z - e * e - lv)  // log q(z|x) - log p(z)
            }
            XCTAssertEqual(one[n], Double(t.reconstruction.scalars[n]) + mcKL, accuracy: 1e-4 * max(1, abs(one[n])), "sample \(n)")
        }

        // In expectation over the noise, k = 1 equals the analytic negative ELBO.
        var meanOne = 0.0, meanELBO = 0.0
        let draws = 200
        for _ in 0..<draws {
            meanOne += vae.iwaeBound(x: x, k: 1, rng: &rng).reduce(0, +)
            meanELBO += vae.negativeELBO(x: x, eps: Tensor.randomNormal([16, 4], using: &rng)).scalars.reduce(0) { $0 + Double($1) }
        }
        meanOne /= Double(draws * 16)
        meanELBO /= Double(draws * 16)
        XCTAssertEqual(meanOne, meanELBO, accuracy: 0.02 * abs(meanELBO), "E[IWAE_1] = negative ELBO")

        // k = 50 is tighter (lower) on average over the batch.
        var r50 = RandomGenerator(seed: 100)
        let fifty = vae.iwaeBound(x: x, k: 50, rng: &r50)
        let mean50 = fifty.reduce(0, +) / 16
        XCTAssertTrue(fifty.allSatisfy(\.isFinite))
        XCTAssertLessThan(mean50, meanELBO, "IWAE(50) \(mean50) vs negative ELBO \(meanELBO)")
        XCTAssertGreaterThan(mean50, meanELBO - 0.5 * abs(meanELBO), "a bound, not far below the ELBO")

        // Chunking does not change the draws or the result.
        var a = RandomGenerator(seed: 3), b = RandomGenerator(seed: 3)
        let whole = vae.iwaeBound(x: x, k: 7, rng: &a)
        let chunked = vae.iwaeBound(x: x, k: 7, rng: &b, maxRows: 5)
        XCTAssertEqual(a, b)
        assertClose(chunked.map(Float.init), whole.map(Float.init), rtol: 1e-5, atol: 1e-5, "chunked IWAE")
    }

    // MARK: - Training

    func testSameSeedGivesIdenticalLosses() {
        func run(_ seed: UInt64) -> [VAEStepStats] {
            var c = tiny(dataDim: 12, hidden: [8], latent: 3, activation: .relu, seed: seed)
            c.binarize = true
            c.klWarmupSteps = 2
            var rng = RandomGenerator(seed: seed)
            let vae = VAE(config: c, rng: &rng)
            let x = uniformData(4, 12, rng: &rng)
            return (0..<3).map { _ in vae.trainStep(x: x, eps: Tensor.randomNormal([4, 3], using: &rng)) }
        }
        let a = run(21), b = run(21), c = run(22)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a.map(\.loss), c.map(\.loss))
        XCTAssertEqual(a.map(\.klWeight), [0.5, 1, 1])
        for s in a {
            XCTAssertTrue(s.loss.isFinite && s.kl >= 0 && s.reconstruction > 0)
            XCTAssertEqual(s.loss, s.reconstruction + s.kl, accuracy: 1e-5 * s.loss)
        }
    }

    func testConvVAEShapesAndFiniteLosses() {
        var rng = RandomGenerator(seed: 8)
        var c = VAEConfig.convPreset
        c.latentDim = 8
        XCTAssertNoThrow(try c.validate())
        let vae = VAE(config: c, rng: &rng)
        let x = uniformData(4, 784, rng: &rng)
        var losses: [Float] = []
        for _ in 0..<3 {
            let s = vae.trainStep(x: x, eps: Tensor.randomNormal([4, 8], using: &rng))
            XCTAssertTrue(s.loss.isFinite && s.reconstruction.isFinite && s.kl.isFinite, "\(s)")
            losses.append(s.loss)
        }
        XCTAssertLessThan(losses[2], losses[0])
        XCTAssertEqual(withoutGrad { vae.encoder(x.reshaped([4, 1, 28, 28])) }.shape, [4, 16])
        let samples = vae.sample(z: Tensor.randomNormal([5, 8], using: &rng))
        XCTAssertEqual(samples.shape, [5, 784])
        XCTAssertTrue(samples.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
        XCTAssertEqual(vae.stateDict().map(\.0), ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias",
                                                  "encoder.5.weight", "encoder.5.bias", "decoder.0.weight", "decoder.0.bias",
                                                  "decoder.3.weight", "decoder.3.bias", "decoder.5.weight", "decoder.5.bias"])

        // 32x32 RGB with a Gaussian likelihood.
        c.imageShape = [3, 32, 32]; c.dataDim = 3072; c.likelihood = .gaussian; c.gaussianSigma = 0.1
        XCTAssertNoThrow(try c.validate())
        let rgb = VAE(config: c, rng: &rng)
        XCTAssertNil(rgb.logSigma)
        let s = rgb.trainStep(x: Tensor.randomNormal([2, 3, 32, 32], using: &rng), eps: Tensor.randomNormal([2, 8], using: &rng))
        XCTAssertTrue(s.loss.isFinite, "\(s)")
        XCTAssertEqual(rgb.sample(z: Tensor.randomNormal([2, 8], using: &rng)).shape, [2, 3072])
        XCTAssertEqual(withoutGrad { rgb.decoder(Tensor.zeros([1, 8])) }.shape, [1, 3, 32, 32])
    }

    /// 16 MNIST digits (binarised at 0.5), 300 full-batch steps of the `vae` preset's networks.
    func testOverfitsSixteenDigits() throws {
        let data = try Dataset.load(path: sharedPath("data/mnist_5k.csv.gz").path, options: DatasetOptions(labelColumn: .last))
        let rows = (0..<16).map { $0 * 311 }
        let x = gatherSamples(data.samples, rows).map { $0 / 255 > 0.5 ? 1 : 0 }.reshaped([16, 784])
        var c = VAEConfig.mlpPreset
        c.binarize = false
        var rng = RandomGenerator(seed: 4)
        let vae = VAE(config: c, rng: &rng)
        func evalLoss() -> Double {
            var r = RandomGenerator(seed: 77)
            return (0..<4).reduce(0.0) { s, _ in
                s + vae.negativeELBO(x: x, eps: Tensor.randomNormal([16, 50], using: &r)).scalars.reduce(0) { $0 + Double($1) } / 64
            }
        }
        let initial = evalLoss()
        XCTAssertEqual(initial, 784 * log(2.0), accuracy: 150, "an untrained decoder is close to a fair coin per pixel")
        let start = Date()
        for _ in 0..<300 { vae.trainStep(x: x, eps: Tensor.randomNormal([16, 50], using: &rng)) }
        print("[timing] VAE 300 steps on 16 digits: \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
        let final = evalLoss()
        print("[vae] negative ELBO \(initial) -> \(final) nats")
        XCTAssertLessThan(final, 0.5 * initial)
        let recon = vae.reconstruct(x: x)
        let meanAbs = zip(recon.scalars, x.scalars).reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) } / Double(x.count)
        let agree = zip(recon.scalars, x.scalars).filter { ($0.0 > 0.5 ? 1 : 0) == $0.1 }.count
        print("[vae] reconstruction mean |error| \(meanAbs), thresholded agreement \(Double(agree) / Double(x.count))")
        XCTAssertLessThan(meanAbs, 0.05)
        XCTAssertGreaterThan(Double(agree) / Double(x.count), 0.98)
    }

    // MARK: - State

    func testStateDictRoundTrip() throws {
        for likelihood in [VAELikelihood.bernoulli, .gaussian] {
            var rng = RandomGenerator(seed: 31)
            let c = tiny(dataDim: 10, hidden: [7, 6], latent: 3, activation: .relu, likelihood: likelihood)
            let a = VAE(config: c, rng: &rng)
            let x = uniformData(5, 10, rng: &rng)
            for _ in 0..<2 { a.trainStep(x: x, eps: Tensor.randomNormal([5, 3], using: &rng)) }
            let state = a.stateDict(), opt = a.optimization.stateDict()
            var names = ["encoder.0.weight", "encoder.0.bias", "encoder.2.weight", "encoder.2.bias", "encoder.4.weight", "encoder.4.bias",
                         "decoder.0.weight", "decoder.0.bias", "decoder.2.weight", "decoder.2.bias", "decoder.4.weight", "decoder.4.bias"]
            if likelihood == .gaussian { names.insert("log_sigma", at: 0) }
            XCTAssertEqual(state.map(\.0), names)
            XCTAssertEqual(state.first { $0.0 == "encoder.4.weight" }?.1.shape, [6, 6])
            XCTAssertTrue(opt.allSatisfy { $0.0.hasPrefix("optimizer.") })
            XCTAssertEqual(opt.first { $0.0 == "optimizer.step" }?.1.item, 2)

            var other = RandomGenerator(seed: 32)
            let b = VAE(config: c, rng: &other)
            let z = Tensor.randomNormal([4, 3], using: &rng), eps = Tensor.randomNormal([5, 3], using: &rng)
            XCTAssertNotEqual(a.sample(z: z).scalars, b.sample(z: z).scalars)
            try b.loadStateDict(Dictionary(uniqueKeysWithValues: state))
            try b.optimization.loadStateDict(Dictionary(uniqueKeysWithValues: opt))
            XCTAssertEqual(a.sample(z: z).scalars, b.sample(z: z).scalars)
            XCTAssertEqual(a.reconstruct(x: x).scalars, b.reconstruct(x: x).scalars)
            XCTAssertEqual(a.negativeELBO(x: x, eps: eps).scalars, b.negativeELBO(x: x, eps: eps).scalars)
            // The restored optimiser continues identically.
            XCTAssertEqual(a.trainStep(x: x, eps: eps), b.trainStep(x: x, eps: eps))
            XCTAssertEqual(a.stateDict().map(\.1.scalars), b.stateDict().map(\.1.scalars))

            var missing = Dictionary(uniqueKeysWithValues: state)
            missing["decoder.2.bias"] = nil
            XCTAssertThrowsError(try b.loadStateDict(missing)) { XCTAssertTrue("\($0)".contains("decoder.2.bias")) }
        }
    }

    // MARK: - Configuration

    func testConfigValidationAndCoding() throws {
        for (name, c) in VAEConfig.presets {
            XCTAssertNoThrow(try c.validate(), name)
            XCTAssertEqual(c.preset, name)
        }
        XCTAssertEqual(VAEConfig.mlpPreset.latentDim, 50)
        XCTAssertEqual(VAEConfig.mlpPreset.encoderHidden, [200, 200])
        XCTAssertTrue(VAEConfig.mlpPreset.binarize)
        XCTAssertFalse(VAEConfig(likelihood: .gaussian).binarize)
        func expectOption(_ c: VAEConfig, _ option: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try c.validate(), file: file, line: line) {
                XCTAssertEqual(($0 as? ConfigError)?.option, option, "\($0)", file: file, line: line)
            }
        }
        var c = VAEConfig.mlpPreset
        c.latentDim = 0; expectOption(c, "--latent-dim")
        c = .mlpPreset; c.encoderHidden = [200, -1]; expectOption(c, "--encoder-hidden")
        c = .mlpPreset; c.logvarClamp = 5...5; expectOption(c, "--logvar-clamp")
        c = .mlpPreset; c.lr = .nan; expectOption(c, "--lr")
        c = .mlpPreset; c.likelihood = .gaussian; c.gaussianSigma = 0; expectOption(c, "--sigma")
        c = .mlpPreset; c.encoderHidden = [1 << 15, 1 << 15]; expectOption(c, "--encoder-hidden/--decoder-hidden/--latent-dim")
        c = .convPreset; c.imageShape = [1, 30, 30]; c.dataDim = 900; expectOption(c, "--model conv-vae")
        c = .convPreset; c.encoderHidden = [100]; expectOption(c, "--encoder-hidden")

        var custom = VAEConfig.convPreset
        custom.gaussianSigma = 0.5; custom.likelihood = .gaussian; custom.logvarClamp = -10...5; custom.klWarmupSteps = 100
        let json = try JSONEncoder().encode(custom)
        XCTAssertEqual(try JSONDecoder().decode(VAEConfig.self, from: json), custom)
        let minimal = try JSONDecoder().decode(VAEConfig.self, from: Data(#"{"latentDim": 8, "dataDim": 64}"#.utf8))
        XCTAssertEqual(minimal, VAEConfig(latentDim: 8, dataDim: 64))
        XCTAssertEqual(minimal.logvarClamp, -30...20)
    }
}
