import XCTest
import ConjureNN
import ConjureOptim
import ConjureTestSupport
import ConjureModels
import Foundation

final class LayerTests: XCTestCase {
    var rng = RandomGenerator(seed: 11)

    func testBatchNorm1dGradientsInTrainingMode() {
        let bn = BatchNorm1d(3)
        let x = Tensor.randomNormal([5, 3], std: 2, using: &rng)
        checkGradients([x, Tensor.randomNormal([3], using: &rng), Tensor.randomNormal([3], using: &rng)], h: 1e-2) { xs in
            let mean = xs[0].mean(axes: [0])
            let c = xs[0] - mean
            let v = (c * c).mean(axes: [0])
            return c / (v + bn.eps).sqrt() * xs[1] + xs[2]
        }
        checkGradients([x]) { bn($0[0]) }
    }
}

/// Cases from ../shared/cases: losses, optimiser and resume state.
final class CaseTests: XCTestCase {
    func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: sharedPath("cases/\(name)"))) as! [String: Any]
    }

    func testF16StableBCEWithLogits() throws {
        let text = try String(contentsOf: sharedPath("cases/F16_logits_labels.csv"), encoding: .utf8)
        let rows = text.split(whereSeparator: \.isNewline).dropFirst().map { $0.split(separator: ",").map { Double($0)! } }
        let logits = Tensor(shape: [rows.count], scalars: rows.map { Float($0[0]) })
        let labels = Tensor(shape: [rows.count], scalars: rows.map { Float($0[1]) })
        let expectedMean = rows.map { $0[2] }.reduce(0, +) / Double(rows.count)
        XCTAssertEqual(Double(try Loss.binaryCrossEntropyWithLogits(logits, targets: labels).item), expectedMean, accuracy: 1e-6 * expectedMean)
        for r in rows {  // element-wise, including 30.0 with label 0 (a log clamped at -100 gives 100)
            let l = try Loss.binaryCrossEntropyWithLogits(Tensor(shape: [1], scalars: [Float(r[0])]), targets: Tensor(shape: [1], scalars: [Float(r[1])]))
            XCTAssertEqual(Double(l.item), r[2], accuracy: 1e-6 * max(1, r[2]))
        }
    }

    func testF17DiscriminatorLossAndTargetValidation() throws {
        let j = try json("F17_d_logits.json")
        func t(_ key: String) -> Tensor { let v = (j[key] as! [Double]).map { Float($0) }; return Tensor(shape: [v.count], scalars: v) }
        XCTAssertEqual(Double(Loss.discriminatorLoss(realLogits: t("real_logits"), fakeLogits: t("fake_logits")).item),
                       j["expected_d_loss"] as! Double, accuracy: 1e-6)
        XCTAssertEqual(Double(Loss.discriminatorLoss(realLogits: t("uneven_real_logits"), fakeLogits: t("uneven_fake_logits")).item),
                       j["expected_uneven_d_loss"] as! Double, accuracy: 1e-6)
        // Discriminator outputs passed as labels leave [0, 1]: rejected.
        XCTAssertThrowsError(try Loss.binaryCrossEntropyWithLogits(t("real_logits"), targets: t("fake_logits")))
        XCTAssertThrowsError(try Loss.binaryCrossEntropyWithLogits(t("real_logits"), targets: Tensor(shape: [2], scalars: [.nan, 1])))
    }

    func adamRun(beta1: Float, grads: [Float]) -> Adam {
        let p = Parameter(Tensor(shape: [1], scalars: [0]))
        let adam = Adam(parameters: [p], lr: 2e-4, betas: (beta1, 0.999), eps: 1e-8)
        for g in grads { adam.step(gradients: [Tensor(shape: [1], scalars: [g])]) }
        return adam
    }

    func testF20AdamUsesConfiguredBeta1() throws {
        let j = try json("F20_adam_beta1.json")
        let grads = (j["grads"] as! [Double]).map { Float($0) }
        XCTAssertEqual(Double(adamRun(beta1: 0.5, grads: grads).parameters[0].value.item), j["p_after_2_steps_beta1_0.5"] as! Double, accuracy: 1e-10)
        XCTAssertEqual(Double(adamRun(beta1: 0.9, grads: grads).parameters[0].value.item), j["p_after_2_steps_beta1_0.9"] as! Double, accuracy: 1e-10)
    }

    func testF22ResumeRestoresAdamAndEMAState() throws {
        let j = try json("F22_F23_resume.json")
        let grads: [Float] = [1, -1, 1]
        let uninterrupted = adamRun(beta1: 0.5, grads: grads).parameters[0].value.item
        // Checkpoint after step 2: parameter and optimiser state through a state dict, resume, step 3.
        let before = adamRun(beta1: 0.5, grads: Array(grads.prefix(2)))
        let saved = Dictionary(uniqueKeysWithValues: before.stateDict())
        let p = Parameter(before.parameters[0].value)
        let resumed = Adam(parameters: [p], lr: 2e-4, betas: (0.5, 0.999), eps: 1e-8)
        try resumed.loadStateDict(saved)
        resumed.step(gradients: [Tensor(shape: [1], scalars: [grads[2]])])
        let expected = j["p_after_step3_uninterrupted_or_correct_resume"] as! Double
        XCTAssertEqual(Double(uninterrupted), expected, accuracy: 1e-10)
        XCTAssertEqual(Double(p.value.item), expected, accuracy: 1e-10)
        // EMA: saved averages are restored, not re-initialised from the weights.
        let weights = (j["weights_after_steps"] as! [Double]).map { Float($0) }
        let w = Parameter(Tensor(shape: [1], scalars: [0]))
        let ema = EMA(parameters: [w], decay: Float(j["ema_decay"] as! Double), startAtZero: true)
        for v in weights.prefix(2) { w.assign(Tensor(shape: [1], scalars: [v])); ema.update([w]) }
        let resumedEMA = EMA(parameters: [w], decay: ema.decay)
        resumedEMA.load(ema.averages)
        w.assign(Tensor(shape: [1], scalars: [weights[2]])); resumedEMA.update([w])
        XCTAssertEqual(Double(resumedEMA.averages[0][0]), j["ema_after_step3_correct"] as! Double, accuracy: 1e-6)
    }

    func testSGDMomentumAndNesterovMatchPyTorchFormula() {
        // PyTorch: b = mu*b + g; p -= lr*b (plain) or p -= lr*(g + mu*b) (Nesterov).
        let p1 = Parameter(Tensor(shape: [1], scalars: [1])), p2 = Parameter(Tensor(shape: [1], scalars: [1]))
        let plain = SGD(parameters: [p1], lr: 0.1, momentum: 0.9)
        let nesterov = SGD(parameters: [p2], lr: 0.1, momentum: 0.9, nesterov: true)
        for g: Float in [1, 2] {
            plain.step(gradients: [Tensor(shape: [1], scalars: [g])])
            nesterov.step(gradients: [Tensor(shape: [1], scalars: [g])])
        }
        XCTAssertEqual(p1.value.item, 0.61, accuracy: 1e-6)  // 1 - 0.1*1 - 0.1*(0.9*1 + 2)
        XCTAssertEqual(p2.value.item, 0.349, accuracy: 1e-6)  // 1 - 0.1*1.9 - 0.1*(2 + 0.9*2.9)
    }

    /// Plain full-batch gradient descent fits least squares to its closed-form solution.
    func testGradientDescentFitsLinearRegression() {
        var rng = RandomGenerator(seed: 5)
        let x = Tensor.randomNormal([64, 3], using: &rng)
        let trueW = Tensor(shape: [1, 3], scalars: [2, -1, 0.5])
        let y = Tensor.linear(x, weight: trueW, bias: Tensor(shape: [1], scalars: [0.3]))
        let layer = Linear(3, 1, rng: &rng)
        let opt = SGD(parameters: layer.parameters, lr: 0.1)
        for _ in 0..<300 {
            let loss = Loss.meanSquaredError(layer(x), y)
            opt.step(gradients: Tensor.gradients(of: loss, wrt: layer.parameters.map(\.value)))
        }
        assertClose(layer.weight.value.scalars, trueW.scalars, rtol: 1e-3, atol: 1e-4)
        XCTAssertEqual(layer.bias!.value.item, 0.3, accuracy: 1e-4)
    }

}
