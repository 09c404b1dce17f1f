import Foundation
import XCTest
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureTestSupport
@testable import ConjureTraining

/// `conjure evaluate` on a small real run (8x8 digits): report contents, scale checks, the
/// memorisation metric on copied and unseen images.
final class EvaluationTests: XCTestCase {
    static var tmp: URL!
    static var checkpoint: String!

    override class func setUp() {
        tmp = try! makeTemporaryDirectory("eval")  // class set-up cannot throw; no folder, no test
    }

    override class func tearDown() { try? FileManager.default.removeItem(at: tmp) }

    func trainedCheckpoint() throws -> String {
        if let c = Self.checkpoint { return c }
        var config = GANConfig.ganPreset
        config.generatorHidden = [32, 64]; config.generatorBatchNorm = [false, true]; config.discriminatorHidden = [64, 32]
        config.noiseDim = 16; config.batchSize = 32; config.epochs = 3
        var o = TrainOptions(runDirectory: Self.tmp.appendingPathComponent("run").path, model: config)
        o.data = try sharedPath("data/digits_8x8.csv.gz").path
        o.progress = .quiet
        o.sampleEvery = 0
        _ = try Trainer(options: o).run()
        Self.checkpoint = o.runDirectory + "/checkpoints/latest.safetensors"
        return Self.checkpoint
    }

    func testEvaluateWritesEveryMetricWithCountsAndClassifierHash() throws {
        var o = EvaluateOptions(checkpoint: try trainedCheckpoint())
        o.count = 300
        o.kidSubsets = 5
        o.kidSubsetSize = 100
        o.floor = true
        let outcome = try Evaluator.run(o) { _ in }
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: outcome.path))) as! [String: Any]
        let metrics = json["metrics"] as! [String: Any]
        for key in ["fid", "kid", "precision_recall", "density_coverage", "classifier_score", "modes", "memorization", "floor_train_vs_reference"] {
            XCTAssertNotNil(metrics[key], key)
        }
        let fid = (metrics["fid"] as! [String: Any])["value"] as! Double
        let floorFid = ((metrics["floor_train_vs_reference"] as! [String: Any])["fid"] as! [String: Any])["value"] as! Double
        XCTAssertGreaterThanOrEqual(fid, 0)
        XCTAssertLessThan(floorFid, fid, "real training images are closer to held-out images than 3-epoch samples")
        XCTAssertEqual((json["samples"] as! [String: Any])["count"] as? Int, 300)
        let refCount = (json["reference"] as! [String: Any])["count"] as? Int ?? 0
        XCTAssert(abs(refCount - 180) <= 5, "about 10% of 1797, stratified by label: \(refCount)")
        let features = json["features"] as! [String: Any]
        XCTAssertEqual((features["classifier_sha256"] as? String)?.count, 64)
        XCTAssertGreaterThan(features["classifier_held_out_accuracy"] as? Double ?? 0, 0.85)
        XCTAssert(outcome.path.hasSuffix("/run/eval.json"))
    }

    func testSamplesOnTheWrongScaleAreRejected() throws {
        let ckpt = try trainedCheckpoint()
        // Digits are 0..16; a file in [0, 1] is on the wrong scale.
        var rng = RandomGenerator(seed: 1)
        let path = Self.tmp.appendingPathComponent("unit.npy").path
        try NPYWriter.write(Tensor.randomUniform([50, 64], using: &rng), to: path)
        var o = EvaluateOptions(checkpoint: ckpt)
        o.samplesFile = path
        XCTAssertThrowsError(try Evaluator.run(o) { _ in }) { XCTAssert("\($0)".contains("wrong scale"), "\($0)") }
        // In the data's units it is accepted.
        let ok = Self.tmp.appendingPathComponent("units.npy").path
        try NPYWriter.write(Tensor.randomUniform([50, 64], low: 0, high: 16, using: &rng), to: ok)
        o.samplesFile = ok
        o.metrics = ["fid", "pr"]
        o.output = Self.tmp.appendingPathComponent("e.json").path
        XCTAssertNoThrow(try Evaluator.run(o) { _ in })
    }

    func testMemorizationFlagsCopiesAndNotUnseenImages() throws {
        let ds = try Dataset.load(path: try sharedPath("data/digits_8x8.csv.gz").path, options: DatasetOptions(labelColumn: .last))
        let (train, held) = ds.splitHeldOut(fraction: 0.2, seed: 0)
        let t = ds.subset(train).samples, h = ds.subset(held).samples
        let copies = try Memorization.measure(samples: t.gathered(rows: Array(0..<200)), train: t, heldOut: h)
        XCTAssertEqual(copies.fraction, 1)
        let unseen = try Memorization.measure(samples: h, train: t, heldOut: h)
        XCTAssertLessThanOrEqual(unseen.fraction, 0.02)
        XCTAssertEqual(copies.closestPairs.first?[0], copies.closestPairs.first?[1], "a copy's nearest training image is itself")
    }

    func testMixtureEvaluationWritesScatterPlot() throws {
        var config = GANConfig.seedPreset
        config.epochs = 1
        var o = TrainOptions(runDirectory: Self.tmp.appendingPathComponent("ring").path, model: config)
        o.data = "ring8"
        o.syntheticCount = 4000
        o.progress = .quiet
        _ = try Trainer(options: o).run()
        var e = EvaluateOptions(checkpoint: o.runDirectory + "/checkpoints/latest.safetensors")
        e.count = 500
        e.metrics = ["mixture"]
        let outcome = try Evaluator.run(e) { _ in }
        let mixture = (outcome.report["metrics"] as! [String: Any])["mixture"] as! [String: Any]
        XCTAssertEqual(mixture["modeCount"] as? Int, 8)
        XCTAssert(FileManager.default.fileExists(atPath: o.runDirectory + "/samples/scatter.png"))
    }
}
