import Foundation
import XCTest
import ConjureData
import ConjureTestSupport

/// A tiny diffusion model through the real `conjure` executable on the 8x8 digits: train, an
/// interrupted run resumed to the same weights, `sample` with the DDIM options (deterministic
/// for a seed) and DDPM, and `evaluate` recording its sampler.
final class DiffusionCLITests: ConjureCLITestCase {
    override var temporaryPrefix: String { "diffusion" }

    func testTinyDDPMTrainsResumesSamplesAndEvaluates() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        for preset in ["ddpm", "ddpm-cond"] {
            let common = ["train", "--data", digits, "--model", preset, "--base-width", "8", "--channel-mult", "1,2", "--timesteps", "100",
                          "--batch-size", "16", "--epochs", "1", "--quiet", "--checkpoint-every", "4", "--sample-every", "0"]
            try conjure(common + ["--name", "\(preset)-a", "--max-steps", "8"])
            try conjure(common + ["--name", "\(preset)-b", "--max-steps", "5"])
            try conjure(["train", "--name", "\(preset)-b", "--resume", "--max-steps", "8", "--quiet"])
            let a = try SafeTensors.read(path: tmp.appendingPathComponent("runs/\(preset)-a/checkpoints/latest.safetensors").path)
            let b = try SafeTensors.read(path: tmp.appendingPathComponent("runs/\(preset)-b/checkpoints/latest.safetensors").path)
            XCTAssertEqual(a.order, b.order, preset)
            XCTAssert(a.order.contains("unet.down.1.attentions.0.attn.in_proj_weight"), "\(a.order)")
            XCTAssert(a.order.contains { $0.hasPrefix("ema.unet.") }, "the preset averages the weights: \(a.order.prefix(5))")
            for name in a.order { XCTAssertEqual(a.tensors[name]?.tensor?.scalars, b.tensors[name]?.tensor?.scalars, "\(preset): \(name) after resume") }

            let ckpt = "runs/\(preset)-a/checkpoints/latest.safetensors"
            let label = preset == "ddpm-cond" ? ["--label", "3", "--guidance", "2"] : []
            let s1 = try conjure(["sample", "--checkpoint", ckpt, "--count", "6", "--seed", "4", "--sampler", "ddim", "--steps", "5", "--out", "\(preset)-1.npy"] + label)
            XCTAssert(s1.err.contains("step 5/5"), "progress while sampling: \(s1.err)")
            try conjure(["sample", "--checkpoint", ckpt, "--count", "6", "--seed", "4", "--sampler", "ddim", "--steps", "5", "--out", "\(preset)-2.npy", "--threads", "1"] + label)
            let x1 = try NPYReader.load(path: tmp.appendingPathComponent("\(preset)-1.npy").path)
            let x2 = try NPYReader.load(path: tmp.appendingPathComponent("\(preset)-2.npy").path)
            XCTAssertEqual(x1.shape, [6, 1, 8, 8])
            XCTAssertEqual(x1.scalars, x2.scalars, "\(preset): DDIM with eta 0, same seed, same samples")
            XCTAssert(x1.scalars.allSatisfy { $0 >= -1e-3 && $0 <= 16.001 }, "samples in the data's units 0..16")
            let ddpm = try conjure(["sample", "--checkpoint", ckpt, "--count", "4", "--sampler", "ddpm", "--out", "\(preset)-ddpm.png"] + label)
            XCTAssert(ddpm.err.contains("step 100/100"), ddpm.err)
            // The reverse process: row i is sample i, 6 states from x_T to x_0; its last column is
            // the sample itself (8x8 tiles, 2 px padding).
            let traj = try conjure(["sample", "--checkpoint", ckpt, "--count", "2", "--seed", "4", "--sampler", "ddim", "--steps", "5",
                                    "--trajectory", "6", "--out", "\(preset)-traj.png"] + label)
            XCTAssert(traj.out.contains("6 states each"), traj.out)
            try conjure(["sample", "--checkpoint", ckpt, "--count", "2", "--seed", "4", "--sampler", "ddim", "--steps", "5",
                         "--columns", "1", "--out", "\(preset)-final.png"] + label)
            let tg = try PNGReader.decode(path: tmp.appendingPathComponent("\(preset)-traj.png").path)
            let fg = try PNGReader.decode(path: tmp.appendingPathComponent("\(preset)-final.png").path)
            XCTAssertEqual([tg.width, tg.height], [6 * 8 + 7 * 2, 2 * 8 + 3 * 2])
            func tile(_ g: PNGDecodedImage, row: Int, column: Int) -> [UInt8] {
                (0..<8).flatMap { y in (0..<8).map { x in g.rgb[((2 + row * 10 + y) * g.width + 2 + column * 10 + x) * 3] } }
            }
            for r in 0..<2 {
                XCTAssertEqual(tile(tg, row: r, column: 5), tile(fg, row: r, column: 0), "\(preset): x_0 of the trajectory is the sample")
                XCTAssertNotEqual(tile(tg, row: r, column: 0), tile(tg, row: r, column: 5), "\(preset): x_T is noise, not the sample")
            }
            let notPNG = try conjure(["sample", "--checkpoint", ckpt, "--trajectory", "4", "--out", "t.npy"], expectFailure: true)
            XCTAssert(notPNG.err.contains("--trajectory"), notPNG.err)
            let bad = try conjure(["sample", "--checkpoint", ckpt, "--out", "x.npy", "--steps", "500"], expectFailure: true)
            XCTAssert(bad.err.contains("--steps: must be between 1 and T = 100, got 500"), bad.err)
        }
        let ganOnly = try conjure(["train", "--data", digits, "--model", "ddpm", "--noise-dim", "5", "--name", "x", "--quiet"], expectFailure: true)
        XCTAssert(ganOnly.err.contains("--noise-dim"), ganOnly.err)
        let vector = try conjure(["train", "--data", "ring8", "--model", "ddpm", "--name", "y", "--quiet"], expectFailure: true)
        XCTAssert(vector.err.contains("needs images"), vector.err)

        try conjure(["classifier", "train", "--data", digits, "--epochs", "2", "--out", "c.safetensors"])
        let e = try conjure(["evaluate", "--checkpoint", "runs/ddpm-a/checkpoints/latest.safetensors", "--count", "40", "--classifier", "c.safetensors", "--metrics", "fid"])
        XCTAssert(e.out.contains("FID"), e.out)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: tmp.appendingPathComponent("runs/ddpm-a/eval.json"))) as! [String: Any]
        let source = (report["samples"] as! [String: Any])["source"] as! String
        XCTAssert(source.contains("sampler ddim 50 steps, eta 0.0"), source)
        // The sampler options of `sample` apply to `evaluate` too, and are recorded; label
        // agreement is measured for a conditional model.
        try conjure(["evaluate", "--checkpoint", "runs/ddpm-cond-a/checkpoints/latest.safetensors", "--count", "20", "--classifier", "c.safetensors",
                     "--metrics", "fid", "--steps", "4", "--guidance", "3", "--out", "cond.json"])
        let cond = try JSONSerialization.jsonObject(with: Data(contentsOf: tmp.appendingPathComponent("cond.json"))) as! [String: Any]
        let condSource = (cond["samples"] as! [String: Any])["source"] as! String
        XCTAssert(condSource.contains("ddim 4 steps") && condSource.contains("guidance 3.0"), condSource)
        let agreement = ((cond["metrics"] as! [String: Any])["label_agreement"] as! [String: Any])["samples"] as? Int
        XCTAssertEqual(agreement, 20)
        // --trajectory is a `conjure sample` option: `evaluate` neither lists nor takes it.
        let sampleOption = try conjure(["evaluate", "--checkpoint", "runs/ddpm-a/checkpoints/latest.safetensors", "--trajectory", "3"], expectFailure: true)
        XCTAssert(sampleOption.err.contains("Unknown option '--trajectory'"), sampleOption.err)
    }
}
