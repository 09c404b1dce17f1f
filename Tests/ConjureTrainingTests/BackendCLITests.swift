import Foundation
import XCTest
import ConjureData
import ConjureTestSupport
import ConjureTraining

/// `--backend` on the real executable: an unknown name is one clear error naming the option and
/// the available backends; the same seed, threads and backend train to the same bits, on any
/// thread count; the run says which backend computed it.
final class BackendCLITests: ConjureCLITestCase {
    override var temporaryPrefix: String { "backend" }

    func testUnknownBackendIsRefusedByTrainAndBench() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        for args in [["train", "--data", digits, "--max-steps", "2", "--backend", "mkl"], ["bench", "--model", "seed", "--backend", "mkl"]] {
            let r = try conjure(args, expectFailure: true)
            XCTAssertEqual(r.status, 1, r.err)
            XCTAssert(r.err.contains("error: --backend: unknown backend 'mkl' (available: openblas, onednn"), r.err)
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs").path), "nothing written")
    }

    /// Per backend: two trainings with the same seed (on 1 and 2 threads) sample the same bits.
    func testSameSeedThreadsAndBackendTrainToTheSameBits() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        var perBackend: [String: [Float]] = [:]
        for backend in ["openblas", "onednn"] {
            var samples: [[Float]] = []
            for threads in ["1", "2"] {
                let name = "\(backend)-\(threads)"
                let r = try conjure(["train", "--data", digits, "--name", name, "--max-steps", "12", "--batch-size", "32", "--seed", "3",
                                     "--g-hidden", "64,128", "--d-hidden", "128,64", "--noise-dim", "16", "--plain", "--no-tensorboard",
                                     "--threads", threads, "--backend", backend])
                XCTAssert((r.out + r.err).contains("backend \(backend)"), r.err)
                try conjure(["sample", "--checkpoint", "runs/\(name)/checkpoints/latest.safetensors", "--count", "16", "--seed", "5",
                             "--out", "\(name).npy", "--threads", "1"])
                samples.append(try NPYReader.load(path: tmp.appendingPathComponent("\(name).npy").path).scalars)
            }
            XCTAssertEqual(samples[0], samples[1], "\(backend): same seed and backend, 1 vs 2 threads")
            XCTAssert(samples[0].allSatisfy(\.isFinite), backend)
            perBackend[backend] = samples[0]
        }
        // Rounding differs between libraries: close after 12 steps, not necessarily equal.
        let a = perBackend["openblas"]!, b = perBackend["onednn"]!
        XCTAssertEqual(a.count, b.count)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        XCTAssertLessThan(worst, 0.5, "openblas vs onednn after 12 steps (data units 0..16)")
    }
}
