import XCTest
import ConjureNN
import ConjureOptim
import ConjureModels
@testable import ConjureTensor

/// Each parameter group is one flat buffer of values and one of gradients (issue 14): the
/// trainer's updates run over them, values held elsewhere keep their values, and the flat
/// update gives the same bits as the per-parameter one.
final class FlatParametersTests: XCTestCase {
    private func smallGAN(seed: UInt64) -> GAN {
        var rng = RandomGenerator(seed: seed)
        var config = GANConfig.seedPreset
        config.dataDim = 12; config.noiseDim = 3; config.generatorHidden = [10, 8]; config.discriminatorHidden = [9]
        config.optimizer = .adamw; config.weightDecay = 0.01; config.clipGradNorm = 0.05; config.emaDecay = 0.9
        return GAN(config: config, rng: &rng)
    }

    func testEveryGroupIsOneFlatBufferOfValuesAndGradients() {
        let gan = smallGAN(seed: 3)
        let o = Optimization(model: gan, settings: gan.config.optimization, seed: 3)
        var rng = RandomGenerator(seed: 4)
        let x = Tensor.randomUniform([6, 12], low: -1, high: 1, using: &rng)
        o.step(TrainingBatch(x: x, z: Tensor.randomNormal([6, 3], using: &rng), labels: nil))
        // Nothing holds a weight or a gradient across an update, so no step copies the buffers.
        let copies = TensorView.copiesForOtherHolders.current
        for _ in 0..<3 { o.step(TrainingBatch(x: x, z: Tensor.randomNormal([6, 3], using: &rng), labels: nil)) }
        XCTAssertEqual(TensorView.copiesForOtherHolders.current, copies, "a training step copied weights or gradients for other holders")
        for g in gan.parameterGroups {
            let flat = try! XCTUnwrap(g.flat)
            XCTAssertEqual(flat.count, g.parameters.map(\.value.count).reduce(0, +))
            XCTAssertNotNil(Tensor.contiguousElements(g.parameters.map(\.value)), "\(g.name): values are back-to-back views")
            XCTAssert(FlatParameters.contiguous(g.parameters) === flat.values)
            // The buffer holds exactly the parameters' values.
            let all = g.parameters.flatMap(\.value.scalars)
            XCTAssertEqual(Array(UnsafeBufferPointer(start: flat.values.base, count: flat.count)), all)
            XCTAssert(all.contains { $0 != 0 })
        }
        // The gradient buffer holds the last update's (clipped) gradients: finite, not all zero.
        let d = gan.group("discriminator").flat!
        XCTAssert(d.gradientBufferAllocated, "clipping gathers the gradients")
        let grads = Array(UnsafeBufferPointer(start: d.gradients.base, count: d.count))
        XCTAssert(grads.allSatisfy(\.isFinite) && grads.contains { $0 != 0 })
        let norm = grads.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        XCTAssertLessThanOrEqual(norm, 0.05 * 1.0001, "clipping ran on the flat gradients")
    }

    func testValuesHeldAcrossAnUpdateKeepTheirValues() {
        let gan = smallGAN(seed: 5)
        let o = Optimization(model: gan, settings: gan.config.optimization, seed: 5)
        let p = gan.group("generator").parameters[0]
        let held = p.value
        let before = held.scalars
        var rng = RandomGenerator(seed: 6)
        o.step(TrainingBatch(x: Tensor.randomUniform([6, 12], low: -1, high: 1, using: &rng),
                             z: Tensor.randomNormal([6, 3], using: &rng), labels: nil))
        XCTAssertEqual(held.scalars, before, "a copy taken before the update is not changed by it")
        XCTAssertNotEqual(p.value.scalars, before, "the parameter itself was updated")
        XCTAssertNotNil(p.value.flatLocation, "and is still a view of its group's buffer")
        // assign writes into the buffer.
        let flat = gan.group("generator").flat!
        p.assign(Tensor(repeating: 0.25, shape: p.shape))
        XCTAssertEqual(flat.values.base[0], 0.25)
        XCTAssertEqual(p.value.flatLocation?.offset, 0)
    }

    /// Without clipping nothing gathers the gradients: the optimiser reads them where the backward
    /// pass left them and no group allocates its gradient buffer (a second copy of the model),
    /// with the same bits as the run that gathers them for a clip that never binds.
    func testWithoutClippingTheGradientBufferIsNeverAllocated() {
        func run(clip: Float?) -> GAN {
            let gan = smallGAN(seed: 3)
            var settings = gan.config.optimization
            settings.clipGradNorm = clip
            let o = Optimization(model: gan, settings: settings, seed: 3)
            var data = RandomGenerator(seed: 4)
            let x = Tensor.randomUniform([6, 12], low: -1, high: 1, using: &data)
            for _ in 0..<4 { o.step(TrainingBatch(x: x, z: Tensor.randomNormal([6, 3], using: &data), labels: nil)) }
            return gan
        }
        let plain = run(clip: nil), clipped = run(clip: 1e30)
        for (g, h) in zip(plain.parameterGroups, clipped.parameterGroups) {
            XCTAssertFalse(try XCTUnwrap(g.flat).gradientBufferAllocated, "\(g.name): gradient buffer allocated without clipping")
            XCTAssert(try XCTUnwrap(h.flat).gradientBufferAllocated, "\(h.name): clipping gathers")
            XCTAssertEqual(g.parameters.flatMap(\.value.scalars), h.parameters.flatMap(\.value.scalars), g.name)
        }
    }

    /// Adam/AdamW over a flat group (one pass over the buffers) against the same optimiser over
    /// parameters that own their values (one pass per parameter): the same bits, state included.
    func testFlatUpdateMatchesPerParameterUpdateBitForBit() {
        for kind in [OptimizerKind.adam, .adamw, .rmsprop] {
            var rng = RandomGenerator(seed: 11)
            let shapes = [[7, 5], [5], [70_001], [3, 3]]
            let initial = shapes.map { Tensor.randomNormal($0, using: &rng) }
            let plain = initial.map { Parameter($0) }
            let bound = initial.map { Parameter($0) }, loose = initial.map { Parameter($0) }
            let flat = FlatParameters(bound), looseFlat = FlatParameters(loose)
            let a = kind.make(parameters: plain, lr: 0.01, betas: (0.8, 0.95), eps: 1e-6, weightDecay: 0.1)
            let b = kind.make(parameters: bound, lr: 0.01, betas: (0.8, 0.95), eps: 1e-6, weightDecay: 0.1)
            let f = kind.make(parameters: loose, lr: 0.01, betas: (0.8, 0.95), eps: 1e-6, weightDecay: 0.1)
            for _ in 0..<4 {
                let grads = shapes.map { Tensor.randomNormal($0, using: &rng) }
                a.step(gradients: grads)
                b.step(gradients: flat.gather(grads))
                XCTAssertEqual(Array(UnsafeBufferPointer(start: flat.gradients.base, count: flat.count)),
                               grads.flatMap(\.scalars), "\(kind): gradients gathered into the flat buffer")
                // Flat values, gradients read where they are (no gather).
                f.step(gradients: grads)
            }
            XCTAssertFalse(looseFlat.gradientBufferAllocated)
            for (p, q) in zip(plain, bound) {
                XCTAssertEqual(p.value.scalars, q.value.scalars, "\(kind)")
                XCTAssertNotNil(q.value.flatLocation)
            }
            for (p, q) in zip(plain, loose) { XCTAssertEqual(p.value.scalars, q.value.scalars, "\(kind) flat values, ungathered gradients") }
            XCTAssertNotEqual(plain[0].value.scalars, initial[0].scalars)
            let sa = Dictionary(uniqueKeysWithValues: a.stateDict()), sb = Dictionary(uniqueKeysWithValues: b.stateDict())
            XCTAssertEqual(Set(sa.keys), Set(sb.keys))
            for (k, v) in sa { XCTAssertEqual(v.scalars, sb[k]!.scalars, "\(kind) \(k)") }
            // State round trip into a flat optimiser.
            let c = kind.make(parameters: bound, lr: 0.01, betas: (0.8, 0.95), eps: 1e-6, weightDecay: 0.1)
            XCTAssertNoThrow(try c.loadStateDict(sb))
            for (k, v) in c.stateDict() { XCTAssertEqual(v.scalars, sb[k]!.scalars, "\(kind) \(k) after load") }
        }
    }
}
