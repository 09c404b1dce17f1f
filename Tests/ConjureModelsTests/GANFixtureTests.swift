import Foundation
import XCTest
import ConjureNN
import ConjureModels
import ConjureTestSupport

/// Reproduces a golden GAN-step folder (../shared/fixtures/gan_step, gan_step_bn): the
/// architecture is read from the `init.*` files' names and shapes and the README's words, the
/// step count, batch and noise size from losses.json, so any folder of that layout is tested.
final class GANFixtureTests: XCTestCase {
    struct Fixture {
        var dir: URL
        var tensors: [String: Tensor]
        var config: GANConfig
        var losses: [(d: Double, g: Double)]
    }

    func loadFixture(_ name: String) throws -> Fixture {
        let dir = try sharedPath("fixtures/\(name)")
        guard FileManager.default.fileExists(atPath: dir.path) else { throw MissingSharedFile(path: "fixtures/" + name) }
        var tensors: [String: Tensor] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: dir.path) where file.hasSuffix(".npy") {
            tensors[String(file.dropLast(4))] = try loadFixtureNPY(dir.appendingPathComponent(file))
        }
        let readme = try String(contentsOf: dir.appendingPathComponent("README.md"), encoding: .utf8)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("losses.json"))) as! [String: Any]
        let losses = (json["losses"] as! [[String: Any]]).map { ($0["d_loss"] as! Double, $0["g_loss"] as! Double) }
        XCTAssertEqual(losses.count, json["steps"] as? Int)

        func linearShapes(_ module: String) -> [(index: Int, shape: [Int])] {
            tensors.keys.compactMap { key -> (Int, [Int])? in
                let parts = key.split(separator: ".")
                guard parts.count == 4, parts[0] == "init", parts[1] == Substring(module), parts[3] == "weight",
                      let i = Int(parts[2]), tensors[key]!.rank == 2 else { return nil }
                return (i, tensors[key]!.shape)
            }.sorted { $0.0 < $1.0 }
        }
        let g = linearShapes("generator"), d = linearShapes("discriminator")
        var config = GANConfig.seedPreset
        config.preset = name
        config.noiseDim = g.first!.shape[1]
        config.dataDim = g.last!.shape[0]
        config.generatorHidden = g.dropLast().map { $0.shape[0] }
        config.generatorBatchNorm = g.dropLast().map { tensors["init.generator.\($0.index + 1).running_mean"] != nil }
        config.discriminatorHidden = d.dropLast().map { $0.shape[0] }
        let gLine = readme.split(separator: "\n").first { $0.contains("- generator:") } ?? ""
        config.generatorActivation = gLine.contains("LeakyReLU") ? .leakyrelu : .relu
        config.update = readme.contains("alternating update") ? .alternating : .simultaneous
        XCTAssertEqual(config.noiseDim, json["noise_dim"] as? Int)
        return Fixture(dir: dir, tensors: tensors, config: config, losses: losses)
    }

    func reproduce(_ name: String, expectedConfig: GANConfig) throws {
        let fx = try loadFixture(name)
        // The preset must be the network the fixture describes.
        XCTAssertEqual(fx.config.generatorHidden, expectedConfig.generatorHidden)
        XCTAssertEqual(fx.config.generatorBatchNorm, expectedConfig.generatorBatchNorm)
        XCTAssertEqual(fx.config.discriminatorHidden, expectedConfig.discriminatorHidden)
        XCTAssertEqual(fx.config.generatorActivation, expectedConfig.generatorActivation)
        XCTAssertEqual(fx.config.update, expectedConfig.update)

        var rng = RandomGenerator(seed: 0)
        let gan = GAN(config: fx.config, rng: &rng)
        var initial: [String: Tensor] = [:]
        for (k, v) in fx.tensors where k.hasPrefix("init.") { initial[String(k.dropFirst(5))] = v }
        try gan.loadStateDict(initial)
        XCTAssertEqual(Set(gan.stateDict().map(\.0)), Set(initial.keys), "state_dict names")
        gan.recordsStepTensors = true
        gan.optimization.recordsGradients = true

        // Float32 cannot settle the sign of a pre-activation within ~1e-6 of a ReLU kink that
        // the float64 reference sees on one side: gradients flowing back through such a kink,
        // and everything after that step, are then compared by relative norm (0.1: Adam turns tiny gradient differences into
        // lr-sized steps) instead of
        // element-wise 1e-4. Everything else is compared element-wise.
        var kinkStep: Int? = nil
        var kinkLayer = -1
        for (s, expected) in fx.losses.enumerated() {
            let real = fx.tensors["step\(s).real"]!, z = fx.tensors["step\(s).z"]!
            if kinkStep == nil, let layer = nearestKink(gan.generator, z) { kinkStep = s; kinkLayer = layer }
            let stats = gan.trainStep(real: real, z: z)
            XCTAssertEqual(Double(stats.dLoss), expected.d, accuracy: 1e-4 * abs(expected.d), "\(name) step \(s) d_loss")
            XCTAssertEqual(Double(stats.gLoss), expected.g, accuracy: 1e-4 * abs(expected.g), "\(name) step \(s) g_loss")
            for (k, v) in fx.tensors where k.hasPrefix("step\(s).") && !k.hasSuffix(".real") && !k.hasSuffix(".z") {
                let key = String(k.dropFirst("step\(s).".count))
                guard let got = gan.lastStep[key] ?? gan.optimization.lastGradients[key] else { XCTFail("\(name): step value \(key) not produced"); continue }
                let parts = key.split(separator: ".")
                let throughKink = kinkStep == s && parts.count == 4 && parts[1] == "generator" && Int(parts[2])! < kinkLayer
                compare(got.reshaped(v.shape), v, loose: throughKink || (kinkStep.map { $0 < s } ?? false), "\(name) \(k)")
            }
        }
        let final = Dictionary(uniqueKeysWithValues: gan.stateDict())
        var checked = 0
        for (k, v) in fx.tensors where k.hasPrefix("final.") {
            let key = String(k.dropFirst(6))
            guard let got = final[key] else { XCTFail("\(name): no parameter \(key)"); continue }
            compare(got.reshaped(v.shape), v, loose: kinkStep != nil, "\(name) \(k)")
            checked += 1
        }
        XCTAssertEqual(checked, final.count, "every parameter and buffer has a final value")
    }

    func compare(_ got: Tensor, _ expected: Tensor, loose: Bool, _ message: String, line: UInt = #line) {
        if loose {
            var num = 0.0, den = 0.0
            for (a, b) in zip(got.scalars, expected.scalars) { num += Double(a - b) * Double(a - b); den += Double(b) * Double(b) }
            let rel = (num / max(den, 1e-300)).squareRoot()
            XCTAssert(rel <= 0.1 || num.squareRoot() < 1e-9, "\(message): relative norm error \(rel)", line: line)
        } else {
            assertClose(got, expected, rtol: 1e-4, atol: 1e-6 * max(1, expected.scalars.map(abs).max() ?? 1), message, line: line)
        }
    }

    /// Index of the last generator activation layer whose input lies within 1e-6 of its kink
    /// for this batch (training-mode forward; BatchNorm running statistics are restored).
    func nearestKink(_ g: Sequential, _ z: Tensor) -> Int? {
        let saved = g.stateDict()
        defer { try! g.loadStateDict(Dictionary(uniqueKeysWithValues: saved)) }
        var h = z
        var found: Int? = nil
        withoutGrad {
            for (i, layer) in g.layers.enumerated() {
                if let a = layer as? Activation, a.kind != .tanh, a.kind != .sigmoid, h.scalars.contains(where: { abs($0) < 1e-6 }) {
                    found = i
                }
                h = layer(h)
            }
        }
        return found
    }

    func testSeedGANStepReproducesFixture() throws {
        try reproduce("gan_step", expectedConfig: .seedPreset)
    }

    func testBatchNormGANStepReproducesFixture() throws {
        try reproduce("gan_step_bn", expectedConfig: .ganPreset)
    }
}
