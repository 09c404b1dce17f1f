import Foundation
import XCTest
import ConjureData
import ConjureTensor
import ConjureTestSupport

/// `ddpm-1d` through the real `conjure` executable on real FSDD clips (centre 256 samples):
/// train a few steps from an `.npy` of `[N, 256]` rows with `--shape 1,256`, then `sample`
/// `[N, 1, 256]` in [-1, 1]; the conditional preset from a CSV with a label column, sampled with
/// a label and guidance.
final class Diffusion1dCLITests: ConjureCLITestCase {
    override var temporaryPrefix: String { "diffusion1d" }

    /// 16 FSDD clips (digits 0-3, four speakers' recording 5), each its centre 256 samples.
    func clips() throws -> (rows: [[Float]], labels: [Int]) {
        var rows: [[Float]] = [], labels: [Int] = []
        for digit in 0..<4 { for speaker in ["george", "jackson", "nicolas", "theo"] {
            let clip = try AudioFile.read(path: try sharedPath("data/fsdd/recordings/\(digit)_\(speaker)_5.wav").path).mono()
            let start = max(0, (clip.count - 256) / 2)
            rows.append(Array(clip[start..<(start + 256)])); labels.append(digit)
        } }
        return (rows, labels)
    }

    func testTinyDDPM1dTrainsAndSamplesSequences() throws {
        let (rows, labels) = try clips()
        try NPYWriter.write(Tensor(shape: [rows.count, 256], scalars: rows.flatMap { $0 }), to: tmp.appendingPathComponent("clips.npy").path)
        let csv = (["label," + (0..<256).map { "x\($0)" }.joined(separator: ",")]
                   + zip(labels, rows).map { "\($0)," + $1.map { String($0) }.joined(separator: ",") }).joined(separator: "\n") + "\n"
        try csv.write(to: tmp.appendingPathComponent("clips.csv"), atomically: true, encoding: .utf8)
        let small = ["--shape", "1,256", "--data-range=-1,1", "--base-width", "8", "--channel-mult", "1,2,2", "--timesteps", "50",
                     "--batch-size", "8", "--epochs", "1", "--quiet", "--sample-every", "0"]
        for (preset, data) in [("ddpm-1d", "clips.npy"), ("ddpm-1d-cond", "clips.csv")] {
            try conjure(["train", "--data", data, "--model", preset, "--name", preset, "--max-steps", "3"] + small)
            let ckpt = "runs/\(preset)/checkpoints/latest.safetensors"
            let state = try SafeTensors.read(path: tmp.appendingPathComponent(ckpt).path)
            XCTAssertEqual(state.tensors["unet.down.0.downsample.conv.weight"]?.tensor?.shape, [8, 8, 7], "\(preset): stride-4 Conv1d")
            XCTAssert(state.order.contains("unet.down.2.attentions.0.attn.in_proj_weight"), "attention at the lowest level: \(state.order)")
            let label = preset == "ddpm-1d-cond" ? ["--label", "3", "--guidance", "2"] : []
            let s = try conjure(["sample", "--checkpoint", ckpt, "--count", "3", "--seed", "4", "--steps", "5", "--out", "\(preset).npy"] + label)
            XCTAssert(s.err.contains("step 5/5"), s.err)
            let x = try NPYReader.load(path: tmp.appendingPathComponent("\(preset).npy").path)
            XCTAssertEqual(x.shape, [3, 1, 256])
            XCTAssert(x.scalars.allSatisfy { $0 >= -1.0001 && $0 <= 1.0001 && $0.isFinite }, "samples in [-1, 1]")
            XCTAssertGreaterThan(x.scalars.map(abs).max()!, 1e-3)
        }
        let bad = try conjure(["train", "--data", "clips.npy", "--model", "ddpm-1d", "--name", "bad", "--max-steps", "1", "--downsample-stride", "3"] + small,
                              expectFailure: true)
        XCTAssert(bad.err.contains("--downsample-stride: must be 2 or 4, got 3"), bad.err)
    }
}
