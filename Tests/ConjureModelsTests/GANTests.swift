import XCTest
import ConjureNN
import ConjureOptim
import ConjureTestSupport
import ConjureModels
import Foundation
import ConjureModels

final class GANTests: XCTestCase {
    func testLinearDefaultInitBoundsAndStateDictNames() {
        var rng = RandomGenerator(seed: 1)
        let gan = GAN(config: .seedPreset, rng: &rng)
        let names = gan.stateDict().map { "\($0.0)\($0.1.shape)" }
        XCTAssertEqual(names, ["generator.0.weight[128, 100]", "generator.0.bias[128]", "generator.2.weight[256, 128]",
                               "generator.2.bias[256]", "generator.4.weight[784, 256]", "generator.4.bias[784]",
                               "discriminator.0.weight[128, 784]", "discriminator.0.bias[128]",
                               "discriminator.2.weight[1, 128]", "discriminator.2.bias[1]"])
        let w = gan.generator.allNamedParameters()[0].1.value.scalars
        XCTAssert(w.allSatisfy { abs($0) <= 0.1 } && w.map(abs).max()! > 0.09, "U(-1/sqrt(100), 1/sqrt(100))")
        let bnNames = GAN(config: .ganPreset, rng: &rng).stateDict().map(\.0).filter { $0.hasPrefix("generator.3.") }
        XCTAssertEqual(bnNames, ["generator.3.weight", "generator.3.bias", "generator.3.running_mean",
                                 "generator.3.running_var", "generator.3.num_batches_tracked"])
    }

    func testSeedGANOverfitsAndIsDeterministic() {
        func run() -> [Float] {
            var rng = RandomGenerator(seed: 9)
            var config = GANConfig.seedPreset
            config.dataDim = 16; config.noiseDim = 4; config.generatorHidden = [16, 16]; config.discriminatorHidden = [16]
            let gan = GAN(config: config, rng: &rng)
            let real = Tensor.randomUniform([8, 16], low: -1, high: 1, using: &rng)
            var last: [Float] = []
            for _ in 0..<20 {
                let s = gan.trainStep(real: real, z: Tensor.randomNormal([8, 4], using: &rng))
                XCTAssert(s.dLoss.isFinite && s.gLoss.isFinite)
                last = [s.dLoss, s.gLoss]
            }
            return last + gan.stateDict()[0].1.scalars
        }
        XCTAssertEqual(run(), run())
    }

    /// PacGAN packing: D sees `pack` samples concatenated; the step matches an unpacked D
    /// applied to the reshaped batch.
    func testPackedDiscriminatorSeesConcatenatedSamples() throws {
        var rng = RandomGenerator(seed: 4)
        var config = GANConfig.seedPreset
        config.dataDim = 2; config.noiseDim = 3; config.generatorHidden = [8, 8]; config.discriminatorHidden = [8]
        config.batchSize = 8; config.pack = 4
        try config.validate()
        let gan = GAN(config: config, rng: &rng)
        XCTAssertEqual(gan.discriminator.allNamedParameters()[0].1.shape, [8, 8])  // [hidden, pack * dataDim]
        gan.recordsStepTensors = true
        let real = Tensor.randomNormal([8, 2], using: &rng)
        let s = gan.trainStep(real: real, z: Tensor.randomNormal([8, 3], using: &rng))
        XCTAssert(s.dLoss.isFinite && s.gLoss.isFinite)
        XCTAssertEqual(gan.lastStep["real_logits"]?.shape, [2, 1])
        config.pack = 3
        XCTAssertThrowsError(try config.validate())
    }
}
