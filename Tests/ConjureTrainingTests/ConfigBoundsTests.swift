import Foundation
import XCTest
import ConjureData
import ConjureModels
import ConjureTestSupport
@testable import ConjureTraining

/// Issue 15, item 15: one validation of a configuration for options and checkpoints alike;
/// huge or nonsensical counts give one clear error, never a crash.
final class ConfigBoundsTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("bounds")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func conjure(_ args: [String]) throws -> (status: Int32, reason: Process.TerminationReason, err: String) {
        let r = try runProcess(conjureBinary, args, in: tmp)
        return (r.status, r.reason, r.err)
    }

    func testHugeCountOptionsAreOneClearError() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        let huge = "9223372036854775807"
        for (option, extra) in [("--noise-dim", [String]()), ("--eval-count", ["--eval-every", "10"]), ("--epochs", []), ("--batch-size", []),
                                ("--g-hidden", []), ("--d-hidden", []), ("--pack", [])] {
            let r = try conjure(["train", "--data", digits, "--name", "h", option, huge, "--quiet"] + extra)
            XCTAssertEqual(r.reason, .exit, "\(option): no crash")
            XCTAssertEqual(r.status, 1, "\(option): \(r.err)")
            XCTAssert(r.err.hasPrefix("error: ") && r.err.contains(option), "\(option): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/h").path))
    }

    /// A checkpoint whose saved configuration was edited: refused on read (sample, evaluate,
    /// resume) with the option named, where it used to crash (SIGFPE, SIGSEGV) or be accepted.
    func testACheckpointWithBadCountsIsRefusedByTheSameValidation() throws {
        var config = GANConfig.ganPreset
        config.generatorHidden = [16]
        config.generatorBatchNorm = [false]
        config.discriminatorHidden = [16]
        config.noiseDim = 8
        config.batchSize = 32
        config.epochs = 1
        var o = TrainOptions(runDirectory: tmp.appendingPathComponent("runs/b").path, model: config)
        o.data = try sharedPath("data/digits_8x8.csv.gz").path
        o.maxSteps = 10
        o.progress = .quiet
        _ = try Trainer(options: o, log: { _ in }).run()
        let ckpt = o.runDirectory + "/checkpoints/latest.safetensors"
        let original = try SafeTensors.read(path: ckpt)
        func edited(_ key: String, _ value: Any) throws -> String {
            var json = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(original.metadata["config"]!.utf8)) as? [String: Any])
            json[key] = value
            var metadata = original.metadata
            metadata["config"] = String(decoding: try JSONSerialization.data(withJSONObject: json), as: UTF8.self)
            let path = tmp.appendingPathComponent("\(key).safetensors").path
            try SafeTensors.write(values: original.order.map { ($0, original.tensors[$0]!) }, metadata: metadata, to: path)
            return path
        }
        for (key, value, option) in [("logEvery", 0, "--log-every"), ("checkpointEvery", -5, "--checkpoint-every"), ("heldOutFraction", 1.5, "--held-out"),
                                     ("evalCount", Int.max, "--eval-count"), ("sampleEvery", -1, "--sample-every"), ("evalEvery", -3, "--eval-every")] as [(String, Any, String)] {
            let path = try edited(key, value)
            XCTAssertThrowsError(try Checkpoint.read(path: path), key) { error in
                let text = "\(error)"
                XCTAssert(error is DataError && text.contains(path) && text.contains(option), "\(key): \(text)")
            }
        }
        // The run itself: resume reads the same checkpoint reader (logEvery 0 was a SIGFPE).
        try FileManager.default.removeItem(atPath: ckpt)
        try FileManager.default.copyItem(atPath: try edited("logEvery", 0), toPath: ckpt)
        let r = try conjure(["train", "--name", "b", "--resume", "--max-steps", "20", "--quiet"])
        XCTAssertEqual(r.reason, .exit)
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssert(r.err.contains("--log-every: must be at least 1, got 0"), r.err)
    }
}
