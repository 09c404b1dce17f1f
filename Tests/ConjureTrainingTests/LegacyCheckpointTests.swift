import Foundation
import XCTest
import ConjureData
import ConjureTestSupport

/// Checkpoints written by the version before the model-family registry (commit aa9207b) still
/// load: `sample` draws the same samples, `evaluate` runs, and `--resume` continues to the same
/// weights and optimiser state the old version reached. The test data in Tests/Data/legacy-v1
/// was written by that version: a small `gan` and `vae` on the 8x8 digits (30 steps), the
/// checkpoint the old version wrote after resuming to step 60, and `sample --count 8 --seed 1`.
final class LegacyCheckpointTests: XCTestCase {
    var tmp: URL!
    /// The data path recorded in the legacy runs (absolute, as every run records it).
    let legacyData = "/tmp/conjure-legacy/digits_8x8.csv.gz"

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("legacy")
        let fm = FileManager.default
        if !fm.fileExists(atPath: legacyData) {
            try fm.createDirectory(atPath: (legacyData as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try fm.copyItem(atPath: try sharedPath("data/digits_8x8.csv.gz").path, toPath: legacyData)
        }
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    var legacyDir: URL { packageRoot.appendingPathComponent("Tests/Data/legacy-v1") }

    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let r = try runProcess(conjureBinary, args, in: tmp)
        return (r.status, r.out, r.err)
    }

    /// The run folder of a legacy run at step 30, copied into the test's folder.
    func legacyRun(_ family: String) throws -> URL {
        let run = tmp.appendingPathComponent("runs/\(family)")
        try FileManager.default.createDirectory(at: run.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
        for f in ["config.json", "metrics.jsonl"] {
            try FileManager.default.copyItem(at: legacyDir.appendingPathComponent("\(family)/\(f)"), to: run.appendingPathComponent(f))
        }
        try FileManager.default.copyItem(at: legacyDir.appendingPathComponent("\(family)/step30.safetensors"),
                                         to: run.appendingPathComponent("checkpoints/latest.safetensors"))
        return run
    }

    func testLegacyCheckpointsSampleEvaluateAndResume() throws {
        for family in ["gan", "vae"] {
            let runDir = try legacyRun(family)
            let ckpt = runDir.appendingPathComponent("checkpoints/latest.safetensors").path
            // sample: the same draws as the old version.
            // The expected files were computed by Debian's OpenBLAS 0.3.21 (Haswell kernel): other
            // backends round differently (docs/backends.md), so the bit-for-bit checks name it.
            var r = try run(["sample", "--checkpoint", ckpt, "--count", "8", "--seed", "1", "--out", "s.npy", "--threads", "1", "--backend", "openblas"])
            XCTAssertEqual(r.status, 0, "\(family) sample: \(r.err)")
            let got = try NPYReader.read(path: tmp.appendingPathComponent("s.npy").path)
            let expected = try NPYReader.read(path: legacyDir.appendingPathComponent("\(family)/expected-sample-seed1.npy").path)
            XCTAssertEqual(got.tensor.shape, expected.tensor.shape, family)
            XCTAssertEqual(got.tensor.scalars, expected.tensor.scalars, "\(family): samples of the legacy checkpoint")
            // evaluate runs on it.
            r = try run(["evaluate", "--checkpoint", ckpt, "--count", "64", "--metrics", "fid,kid", "--out", "eval.json"])
            XCTAssertEqual(r.status, 0, "\(family) evaluate: \(r.err)")
            XCTAssertTrue(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("eval.json").path))
            // --resume continues to the old version's step-60 state, bit for bit.
            r = try run(["train", "--runs-dir", "runs", "--name", family, "--resume", "--max-steps", "60", "--quiet", "--threads", "1", "--backend", "openblas"])
            XCTAssertEqual(r.status, 0, "\(family) resume: \(r.err)")
            let a = try SafeTensors.read(path: ckpt)
            let b = try SafeTensors.read(path: legacyDir.appendingPathComponent("\(family)/expected-step60.safetensors").path)
            XCTAssertEqual(Set(a.order), Set(b.order), "\(family): the same tensors")
            for name in b.order {
                XCTAssertEqual(a.tensors[name]?.tensor?.scalars, b.tensors[name]?.tensor?.scalars, "\(family): \(name) after resuming the legacy run")
            }
            try FileManager.default.removeItem(at: tmp.appendingPathComponent("s.npy"))
            try FileManager.default.removeItem(at: tmp.appendingPathComponent("eval.json"))
        }
    }
}
