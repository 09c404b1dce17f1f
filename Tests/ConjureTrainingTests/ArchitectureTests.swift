import Foundation
import XCTest
import ConjureData
import ConjureModels
import ConjureNN
import ConjureOptim
import ConjureTestSupport
@testable import ConjureTraining

/// The seams of the architecture: data kinds travel from the reader to the run, every family
/// gets the trainer's optimisation options, and the registry decodes what it encoded.
final class ArchitectureTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("arch")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func tinyGAN(_ name: String) -> TrainOptions {
        var c = GANConfig.ganPreset
        c.generatorHidden = [8]; c.generatorBatchNorm = [false]; c.discriminatorHidden = [8]; c.noiseDim = 4
        c.batchSize = 4; c.epochs = 1; c.emaDecay = nil
        var o = TrainOptions(runDirectory: tmp.appendingPathComponent(name).path, model: c)
        o.progress = .quiet
        o.heldOutFraction = 0
        o.logEvery = 1
        return o
    }

    /// Rows of 4096 and 16384 values are vectors (no grid is written); `--shape 1,64,64` makes
    /// the 4096-value rows images with a grid.
    func testLongRowsAreVectorsUnlessShaped() throws {
        var rng = RandomGenerator(seed: 1)
        for d in [4096, 16384] {
            let csv = tmp.appendingPathComponent("rows\(d).csv")
            let rows = (0..<8).map { _ in (0..<d).map { _ in String(format: "%.3f", rng.nextUniform()) }.joined(separator: ",") }
            try (rows.joined(separator: "\n") + "\n").write(to: csv, atomically: true, encoding: .utf8)
            var o = tinyGAN("v\(d)")
            o.data = csv.path
            let summary = try Trainer(options: o).run()
            let run = try Checkpoint.read(path: o.runDirectory + "/checkpoints/latest.safetensors").run
            XCTAssertEqual(run.dataSpec, .vector(d), "\(d) values per row and no --shape: a vector")
            XCTAssertNil(run.imageShape)
            XCTAssertFalse(summary.files.contains { $0.hasSuffix(".png") }, "no image grid for vectors")
            if d == 4096 {
                var shaped = tinyGAN("shaped")
                shaped.data = csv.path
                shaped.shape = "1,64,64"
                let s = try Trainer(options: shaped).run()
                let r = try Checkpoint.read(path: shaped.runDirectory + "/checkpoints/latest.safetensors").run
                XCTAssertEqual(r.dataSpec, .image(channels: 1, height: 64, width: 64))
                XCTAssertTrue(s.files.contains { $0.hasSuffix("samples/final.png") }, "an image grid for images")
                var bad = tinyGAN("badshape")
                bad.data = csv.path
                bad.shape = "1,60,64"
                XCTAssertThrowsError(try Trainer(options: bad).run()) { e in
                    XCTAssertEqual((e as? ConfigError)?.option, "--shape", "\(e)")
                }
                XCTAssertFalse(FileManager.default.fileExists(atPath: bad.runDirectory))
            }
        }
    }

    /// The known data sets are images by their checksum; the same values in another file are a vector.
    func testKnownFilesAreImagesByChecksum() throws {
        var o = tinyGAN("known")
        o.data = try sharedPath("data/digits_8x8.csv.gz").path
        let known = try PreparedData.load(o)
        XCTAssertEqual(known.spec, .image(channels: 1, height: 8, width: 8))
        let copy = tmp.appendingPathComponent("copy.csv")
        let text = try Dataset.load(path: o.data!, options: DatasetOptions(labelColumn: .last))
        let rows = (0..<20).map { i in (0..<64).map { String(Int(text.samples.scalars[i * 64 + $0])) }.joined(separator: ",") + ",\(text.labels![i])" }
        try (rows.joined(separator: "\n") + "\n").write(to: copy, atomically: true, encoding: .utf8)
        o.data = copy.path
        XCTAssertEqual(try PreparedData.load(o).spec, .vector(64))
    }

    /// Normalisation statistics come from the training split only: a held-out outlier does not
    /// move them.
    func testNormalizationIsFittedOnTheTrainingSplit() throws {
        var values: [Float] = []
        for i in 0..<40 { values += [Float(i % 5), Float(i % 3)] }
        let npy = tmp.appendingPathComponent("x.npy")
        var o = tinyGAN("split")
        o.heldOutFraction = 0.25
        o.normalization = .zscore
        var c = o.model.gan!; c.outputActivation = .identity; o.model = .gan(c)
        try NPYWriter.write(Tensor(shape: [40, 2], scalars: values), to: npy.path)
        o.data = npy.path
        let p = try PreparedData.load(o)
        let all = try Dataset.load(path: npy.path).flattened()
        let trainIdx = Array(Set(0..<40).subtracting(p.heldOut)).sorted()
        let fitted = NormalizationStats.fit(.zscore, dataset: all.subset(trainIdx))
        let allFitted = NormalizationStats.fit(.zscore, dataset: all)
        XCTAssertEqual(p.normalization, fitted)
        XCTAssertNotEqual(p.normalization, allFitted, "the held-out rows would change the statistics")
    }

    /// Every family gets the trainer's optimisation: a VAE with AdamW, a cosine schedule,
    /// clipping and EMA trains, saves `ema.*` averages and AdamW state, samples from the average,
    /// and resumes exactly.
    func testVAETrainsWithAdamWCosineClippingAndEMA() throws {
        func vae(_ name: String) throws -> TrainOptions {
            var v = VAEConfig.mlpPreset
            v.encoderHidden = [16]; v.decoderHidden = [16]; v.latentDim = 4; v.batchSize = 50; v.epochs = 2; v.seed = 2
            v.optimizer = .adamw; v.weightDecay = 0.01
            v.lrSchedule = LRSchedule(.cosine, warmupSteps: 5, finalFactor: 0.1)
            v.clipGradNorm = 1
            v.emaDecay = 0.999
            var o = TrainOptions(runDirectory: tmp.appendingPathComponent(name).path, model: v)
            o.data = try sharedPath("data/digits_8x8.csv.gz").path
            o.progress = .quiet
            o.checkpointEvery = 20
            o.sampleEvery = 0
            return o
        }
        let a = try vae("a")
        let full = try Trainer(options: a).run()
        XCTAssertNil(full.last?.firstNonFinite)
        let t = try SafeTensors.read(path: a.runDirectory + "/checkpoints/latest.safetensors")
        XCTAssertNotNil(t.tensors["ema.encoder.0.weight"], "averaged weights saved")
        XCTAssertNotNil(t.tensors["optimizer.0.exp_avg"], "AdamW state saved under the single group's prefix")
        let loaded = try Checkpoint.read(path: a.runDirectory + "/checkpoints/latest.safetensors")
        XCTAssertEqual(loaded.run.model.optimization.optimizer, .adamw)
        XCTAssertEqual(loaded.run.model.optimization.lrSchedule.kind, .cosine)
        XCTAssertEqual(loaded.run.model.optimization.clipGradNorm, 1)
        let model = loaded.model as! VAE
        let z = Tensor(shape: [2, 4], scalars: [0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8])
        let averaged = model.sample(z: z)
        let live = withoutGrad { model.decoder(z).sigmoid() }
        XCTAssertNotEqual(averaged.scalars, live.scalars, "sampling uses the averaged weights")
        XCTAssertEqual(model.sample(z: z).scalars, averaged.scalars, "and never changes the live ones")
        var b = try vae("b")
        b.maxSteps = 27
        _ = try Trainer(options: b).run()
        b.maxSteps = nil
        b.resume = true
        _ = try Trainer(options: b).run()
        let tb = try SafeTensors.read(path: b.runDirectory + "/checkpoints/latest.safetensors")
        XCTAssertEqual(Set(t.order), Set(tb.order))
        for k in t.order { XCTAssertEqual(t.tensors[k]?.tensor?.scalars, tb.tensors[k]?.tensor?.scalars, "\(k) after resume") }
    }

    /// The registry decodes every preset's configuration to an equal one, under its family.
    func testRegistryRoundTripsEveryPreset() throws {
        for (name, config) in ModelConfig.presets {
            let data = try JSONEncoder().encode(config)
            let back = try JSONDecoder().decode(ModelConfig.self, from: data)
            XCTAssertEqual(back, config, name)
            XCTAssertEqual(back.family, config.family, name)
            XCTAssertNotNil(ModelFamilies.family(named: config.family), name)
        }
        XCTAssertThrowsError(try JSONDecoder().decode(ModelConfig.self, from: Data(#"{"family": "nope"}"#.utf8)))
        // A configuration without a family key is a GAN's (runs written before families existed).
        var json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(ModelConfig.gan(.seedPreset))) as! [String: Any]
        json["family"] = nil
        let legacy = try JSONDecoder().decode(ModelConfig.self, from: JSONSerialization.data(withJSONObject: json))
        XCTAssertEqual(legacy.family, "gan")
    }
}
