import Foundation
import XCTest
import ConjureData
import ConjureTestSupport

/// `conjure train --model wavegan` through the real executable on a small `.npy` of sine clips
/// (`--shape 1,1024`, model size 2): a checkpoint with WaveGAN's state-dict names, a run
/// stopped and resumed equal to the uninterrupted one, `sample` in [-1, 1], and the length check.
final class WaveGANCLITests: ConjureCLITestCase {
    override var temporaryPrefix: String { "wavegan" }

    /// `n` clips of `length` samples: sines of 8 frequencies and random phases, amplitude 0.8
    /// (so the observed range is narrower than the declared `--data-range=-1,1`: a resumed run
    /// must keep the run's normalisation, not refit it from the data).
    func writeClips(_ name: String, n: Int, length: Int) throws -> String {
        var rng = RandomGenerator(seed: 11)
        var v = [Float]()
        for i in 0..<n {
            let f = Float(2 + i % 8) / 128, phase = rng.nextUniform() * 6.28
            v += (0..<length).map { 0.8 * sin(6.2831853 * f * Float($0) + phase) }
        }
        let path = tmp.appendingPathComponent(name).path
        try NPYWriter.write(Tensor(shape: [n, length], scalars: v), to: path)
        return path
    }

    func testTrainsCheckpointsResumesExactlyAndSamples() throws {
        let clips = try writeClips("clips.npy", n: 40, length: 1024)
        let common = ["train", "--data", clips, "--shape", "1,1024", "--data-range=-1,1", "--model", "WaveGAN", "--model-size", "2",
                      "--batch-size", "8", "--epochs", "3", "--quiet", "--checkpoint-every", "3", "--sample-every", "0", "--threads", "1"]
        try conjure(common + ["--name", "a", "--max-steps", "7"])
        try conjure(common + ["--name", "b", "--max-steps", "4"])
        try conjure(["train", "--name", "b", "--resume", "--max-steps", "7", "--quiet"])
        let a = try SafeTensors.read(path: tmp.appendingPathComponent("runs/a/checkpoints/latest.safetensors").path)
        let b = try SafeTensors.read(path: tmp.appendingPathComponent("runs/b/checkpoints/latest.safetensors").path)
        XCTAssertEqual(a.order, b.order)
        for name in ["generator.3.weight", "generator.11.weight", "discriminator.0.weight", "discriminator.15.weight"] {
            XCTAssert(a.order.contains(name), "\(name) in \(a.order.prefix(12))")
        }
        XCTAssertEqual(a.tensors["generator.3.weight"]?.tensor?.shape, [32, 16, 25])
        for name in a.order { XCTAssertEqual(a.tensors[name]?.tensor?.scalars, b.tensors[name]?.tensor?.scalars, "\(name) after resume") }
        let config = try String(contentsOf: tmp.appendingPathComponent("runs/a/config.json"), encoding: .utf8)
        XCTAssert(config.contains("\"wavegan\"") && config.contains("\"modelSize\" : 2") || config.contains("\"modelSize\":2"), config)

        try conjure(["sample", "--checkpoint", "runs/a/checkpoints/latest.safetensors", "--count", "3", "--out", "s.npy"])
        let s = try NPYReader.load(path: tmp.appendingPathComponent("s.npy").path)
        XCTAssertEqual(s.shape.reduce(1, *), 3 * 1024)
        XCTAssert(s.scalars.allSatisfy { $0 >= -1 && $0 <= 1 }, "samples in [-1, 1]")

        // Conditional: a CSV of the clips with a label column (4 classes), one-hot into G and D.
        let rows = try NPYReader.load(path: clips)
        let csv = (0..<40).map { i in (rows.scalars[(i * 1024)..<((i + 1) * 1024)].map { "\($0)" } + ["\(i % 4)"]).joined(separator: ",") }
        try (csv.joined(separator: "\n") + "\n").write(to: tmp.appendingPathComponent("clips.csv"), atomically: true, encoding: .utf8)
        try conjure(["train", "--data", "clips.csv", "--label-column", "-1", "--shape", "1,1024", "--model", "wavegan", "--model-size", "2",
                     "--conditional", "--batch-size", "8", "--max-steps", "6", "--sample-every", "0", "--name", "cond", "--quiet"])
        let cond = try SafeTensors.read(path: tmp.appendingPathComponent("runs/cond/checkpoints/latest.safetensors").path)
        XCTAssertEqual(cond.tensors["generator.0.weight"]?.tensor?.shape, [32, 104], "z ++ one-hot of 4 classes")
        XCTAssertEqual(cond.tensors["discriminator.0.weight"]?.tensor?.shape, [2, 5, 25], "signal ++ 4 label channels")
        try conjure(["sample", "--checkpoint", "runs/cond/checkpoints/latest.safetensors", "--count", "2", "--label", "3", "--out", "c.npy"])
        XCTAssertEqual(try NPYReader.load(path: tmp.appendingPathComponent("c.npy").path).shape.reduce(1, *), 2 * 1024)

        let short = try writeClips("short.npy", n: 20, length: 1000)
        let bad = try conjure(["train", "--data", short, "--shape", "1,1000", "--data-range=-1,1", "--model", "wavegan", "--batch-size", "8", "--name", "c", "--quiet"], expectFailure: true)
        XCTAssert(bad.err.contains("--model wavegan") && bad.err.contains("multiple of 1024"), bad.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/c").path))
        let mlp = try conjure(["train", "--data", clips, "--model", "gan", "--model-size", "4", "--name", "d", "--quiet"], expectFailure: true)
        XCTAssert(mlp.err.contains("--model-size"), mlp.err)
    }
}
