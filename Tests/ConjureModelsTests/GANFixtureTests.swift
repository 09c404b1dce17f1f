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

    /// What one run of the fixture's steps produced: the losses per step, every step value the
    /// folder holds (`stepS.KEY`, forward values and gradients) and every final parameter and
    /// buffer (`final.KEY`).
    struct Trajectory {
        var losses: [(d: Float, g: Float)] = []
        var values: [String: Tensor] = [:]
    }

    /// Runs the folder's steps from its `init.*` state. With `perturbation`, every starting
    /// parameter and buffer and every real and z element is multiplied by `1 + u * 2^-23`, u uniform
    /// in [-1, 1) drawn from that seed: a change of about one float32 rounding.
    func run(_ fx: Fixture, perturbation: UInt64? = nil) throws -> Trajectory {
        var noise = RandomGenerator(seed: perturbation ?? 0, stream: 77)
        func perturbed(_ t: Tensor) -> Tensor {
            guard perturbation != nil else { return t }
            return Tensor(shape: t.shape, scalars: t.scalars.map { $0 * (1 + (2 * noise.nextUniform() - 1) * 0x1p-23) })
        }
        var rng = RandomGenerator(seed: 0)
        let gan = GAN(config: fx.config, rng: &rng)
        var initial: [String: Tensor] = [:]
        for (k, v) in fx.tensors.sorted(by: { $0.key < $1.key }) where k.hasPrefix("init.") {
            initial[String(k.dropFirst(5))] = k.hasSuffix("num_batches_tracked") ? v : perturbed(v)
        }
        try gan.loadStateDict(initial)
        XCTAssertEqual(Set(gan.stateDict().map(\.0)), Set(initial.keys), "state_dict names")
        gan.recordsStepTensors = true
        gan.optimization.recordsGradients = true
        var out = Trajectory()
        for s in fx.losses.indices {
            let stats = gan.trainStep(real: perturbed(fx.tensors["step\(s).real"]!), z: perturbed(fx.tensors["step\(s).z"]!))
            out.losses.append((stats.dLoss, stats.gLoss))
            for k in fx.tensors.keys where k.hasPrefix("step\(s).") && !k.hasSuffix(".real") && !k.hasSuffix(".z") {
                let key = String(k.dropFirst("step\(s).".count))
                if let got = gan.lastStep[key] ?? gan.optimization.lastGradients[key] { out.values[k] = got }
            }
        }
        for (k, v) in gan.stateDict() { out.values["final." + k] = v }
        return out
    }

    /// The comparison rule, one for every value of the folder (forward values, gradients, final
    /// parameters and buffers). A float32 run cannot follow a float64 trajectory more closely than
    /// float32 reproduces itself: where a pre-activation sits within rounding of a ReLU kink, or
    /// where a parameter's true gradient is zero (a bias before a train-mode BatchNorm) so that
    /// Adam normalises rounding noise into a step of a fraction of lr, a change of one rounding
    /// in the inputs moves the result by far more than 1e-4 relative. So each element e gets
    ///
    ///     |got_e - ref_e| <= 1e-4 |ref_e| + 1e-6 max(1, max|ref|) + 4 spread_e
    ///
    /// where spread_e is the largest change of element e over four runs whose inputs were
    /// perturbed by one float32 rounding (``run(_:perturbation:)``). Well-conditioned elements
    /// have spread ~1e-7 relative and are held to 1e-4; the rule needs no list of special
    /// parameters and no step after which everything is loosened.
    /// Returns the number of violating elements and the worst one's description.
    func violations(_ got: Tensor, _ ref: Tensor, spread: [Float]) -> (count: Int, worst: String) {
        let floor = 1e-6 * max(1, ref.scalars.map(abs).max() ?? 1)
        var count = 0, worst = (excess: Float(0), text: "")
        for e in 0..<ref.count {
            let (a, b) = (got.scalars[e], ref.scalars[e])
            let excess = abs(a - b) - (1e-4 * abs(b) + floor + 4 * spread[e])
            if !(excess <= 0) {
                count += 1
                if !(excess <= worst.excess) || count == 1 { worst = (excess, "element \(e): \(a) vs expected \(b) (spread \(spread[e]))") }
            }
        }
        return (count, worst.text)
    }

    func reproduce(_ name: String, expectedConfig: GANConfig) throws {
        let fx = try loadFixture(name)
        // The preset must be the network the fixture describes.
        XCTAssertEqual(fx.config.generatorHidden, expectedConfig.generatorHidden)
        XCTAssertEqual(fx.config.generatorBatchNorm, expectedConfig.generatorBatchNorm)
        XCTAssertEqual(fx.config.discriminatorHidden, expectedConfig.discriminatorHidden)
        XCTAssertEqual(fx.config.generatorActivation, expectedConfig.generatorActivation)
        XCTAssertEqual(fx.config.update, expectedConfig.update)

        let base = try run(fx)
        let perturbed = try (1...4).map { try run(fx, perturbation: UInt64($0)) }
        for (s, expected) in fx.losses.enumerated() {
            XCTAssertEqual(Double(base.losses[s].d), expected.d, accuracy: 1e-4 * abs(expected.d), "\(name) step \(s) d_loss")
            XCTAssertEqual(Double(base.losses[s].g), expected.g, accuracy: 1e-4 * abs(expected.g), "\(name) step \(s) g_loss")
        }
        var finals = 0
        for (k, ref) in fx.tensors.sorted(by: { $0.key < $1.key }) where k.hasPrefix("step") || k.hasPrefix("final.") {
            if k.hasSuffix(".real") || k.hasSuffix(".z") { continue }
            guard let got = base.values[k]?.reshaped(ref.shape) else { XCTFail("\(name): \(k) not produced"); continue }
            XCTAssertEqual(got.count, ref.count, "\(name) \(k)")
            var spread = [Float](repeating: 0, count: ref.count)
            for p in perturbed {
                let other = p.values[k]!.scalars
                for e in spread.indices { spread[e] = max(spread[e], abs(other[e] - got.scalars[e])) }
            }
            let v = violations(got, ref, spread: spread)
            XCTAssertEqual(v.count, 0, "\(name) \(k): \(v.count) of \(ref.count) elements outside the rule; worst \(v.worst)")
            if k.hasPrefix("final.") {
                finals += 1
                // The rule must be able to fail: a 1% change of the reference tensor is caught.
                for factor: Float in [1.01, 0.99] {
                    let changed = Tensor(shape: ref.shape, scalars: ref.scalars.map { $0 * factor })
                    XCTAssertGreaterThan(violations(got, changed, spread: spread).count, 0, "\(name) \(k): a \(factor)x change would pass")
                }
            }
        }
        XCTAssertEqual(finals, base.values.keys.filter { $0.hasPrefix("final.") }.count, "every parameter and buffer has a final value")
    }

    func testSeedGANStepReproducesFixture() throws {
        try reproduce("gan_step", expectedConfig: .seedPreset)
    }

    func testBatchNormGANStepReproducesFixture() throws {
        try reproduce("gan_step_bn", expectedConfig: .ganPreset)
    }
}
