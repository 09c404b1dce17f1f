import ConjureData
import ConjureTensor
import ConjureTestSupport
import Foundation
import XCTest

/// docs/onnx.md's three onnxruntime examples, run as written (only the file names they open are
/// the ones the docs use) on exports of small runs trained on real data, against
/// `conjure sample` given the same latent: the conditional GAN example, the DDIM loop on a
/// conditional and an unconditional diffusion export, and the greedy character loop on the three
/// character models.
final class ONNXDocsTests: ConjureCLITestCase {
    override var temporaryPrefix: String { "onnxdocs" }

    let quick = ["--overwrite", "--quiet", "--no-tensorboard", "--held-out", "0"]

    /// `$CONJURE_TEST_PYTHON`, else `.build/pyenv/bin/python` (onnxruntime and onnx, `make
    /// pyenv`). Missing: a failure when `CI` is set, else a skip.
    func onnxPython() throws -> URL { try pyenvPython(holding: "onnxruntime and onnx") }

    /// docs/onnx.md's `python` blocks in order.
    func documentedBlocks() throws -> [String] {
        let doc = try String(contentsOf: packageRoot.appendingPathComponent("docs/onnx.md"), encoding: .utf8)
        var blocks: [String] = [], current: [String]? = nil
        for line in doc.components(separatedBy: "\n") {
            if current == nil, line == "```python" { current = [] } else if current != nil, line == "```" { blocks.append(current!.joined(separator: "\n")); current = nil } else { current?.append(line) }
        }
        XCTAssertEqual(blocks.count, 3, "docs/onnx.md's python blocks: GAN, DDIM, text")
        return blocks
    }

    /// Runs `prelude`, `block` and `tail` as one script in ``tmp``; fails the test with Python's
    /// error output when it fails; returns what it printed.
    func runDocumented(_ python: URL, _ block: String, prelude: String, tail: String) throws -> String {
        let script = prelude + "\n\n" + block + "\n\n" + tail + "\n"
        try script.write(to: tmp.appendingPathComponent("doc.py"), atomically: true, encoding: .utf8)
        let r = try runProcess(python, ["doc.py"], in: tmp)
        XCTAssertEqual(r.status, 0, "docs/onnx.md's example failed: \(r.err.suffix(2000))")
        return r.out
    }

    /// The GAN block's first line (its imports) and its `to_data_units`, which the later
    /// examples use.
    func sharedDefinitions(_ ganBlock: String) -> String {
        let lines = ganBlock.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { $0.hasPrefix("def to_data_units") }) else {
            XCTFail("the GAN example defines no to_data_units"); return lines[0]
        }
        let end = lines[start...].firstIndex(where: { $0.isEmpty }) ?? lines.endIndex
        return ([lines[0]] + lines[start..<end]).joined(separator: "\n")
    }

    func npy(_ file: String) throws -> Tensor { try NPYReader.load(path: tmp.appendingPathComponent(file).path) }

    func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
        XCTAssertEqual(a.shape, b.shape)
        return zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? .infinity
    }

    func testDocumentedOnnxruntimeExamplesMatchSample() throws {
        let python = try onnxPython()
        let blocks = try documentedBlocks()
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        func save(_ latent: String) -> String {
            "np.save('doc_z.npy', np.asarray(\(latent), dtype=np.float32)); np.save('doc_x.npy', np.asarray(pixels, dtype=np.float32))"
        }
        let shared = sharedDefinitions(blocks[0])

        // The conditional GAN example: sixteen sevens from its own z.
        try conjure(["train", "--name", "cgan", "--model", "cgan", "--data", digits, "--g-hidden", "16", "--d-hidden", "16",
                     "--noise-dim", "8", "--max-steps", "6", "--batch-size", "32"] + quick)
        try conjure(["export", "--checkpoint", "runs/cgan/checkpoints/latest.safetensors", "--out", "gan.onnx"])
        _ = try runDocumented(python, blocks[0], prelude: "", tail: save("z"))
        try conjure(["sample", "--checkpoint", "runs/cgan/checkpoints/latest.safetensors", "--z", "doc_z.npy", "--label", "7", "--out", "x.npy"])
        XCTAssertEqual(try npy("doc_x.npy").shape, [16, 1, 8, 8])
        XCTAssertLessThan(maxAbsDiff(try npy("doc_x.npy"), try npy("x.npy")), 1e-4, "GAN example (units 0..16)")

        // The DDIM example on a conditional and an unconditional export (T = 50: one network
        // evaluation per step).
        for (name, preset) in [("dc", "ddpm-cond"), ("du", "ddpm")] {
            let ckpt = "runs/\(name)/checkpoints/latest.safetensors"
            try conjure(["train", "--name", name, "--model", preset, "--data", digits, "--base-width", "8", "--channel-mult", "1,2",
                         "--timesteps", "50", "--max-steps", "2", "--batch-size", "16"] + quick)
            try conjure(["export", "--checkpoint", ckpt, "--out", "ddpm.onnx"])
            // The example draws its own x_T; the same draw, made first, is saved for conjure.
            let xT = "x_T = np.random.default_rng(0).standard_normal((8, *json.loads({m['conjure.sample_shape']}))).astype(np.float32)"
            let draw = "m = {p.key: p.value for p in onnx.load('ddpm.onnx').metadata_props}\n" + xT.replacingOccurrences(of: "{m['conjure.sample_shape']}", with: "m['conjure.sample_shape']")
            _ = try runDocumented(python, blocks[1], prelude: shared + "\n" + draw, tail: save("x_T"))
            try conjure(["sample", "--checkpoint", ckpt, "--z", "doc_z.npy", "--steps", "50", "--sampler", "ddim", "--out", "x.npy"]
                        + (preset == "ddpm-cond" ? ["--guidance", "1"] : []))
            XCTAssertLessThan(maxAbsDiff(try npy("doc_x.npy"), try npy("x.npy")), 1e-3, "DDIM example on \(preset) (units 0..16)")
        }

        // The greedy character example against conjure sample --temperature 0.
        let names = try String(contentsOf: try sharedPath("data/text/names.txt"), encoding: .utf8).split(separator: "\n").prefix(300)
        try (names.joined(separator: "\n") + "\n").write(to: tmp.appendingPathComponent("names.txt"), atomically: true, encoding: .utf8)
        for (name, extra) in [("char-gru", [String]()), ("char-mlp", ["--context", "4"]), ("char-transformer", ["--layers", "1", "--heads", "2"])] {
            try conjure(["train", "--name", name, "--model", name, "--data", "names.txt", "--width", "16", "--embed-dim", "8",
                         "--max-steps", "40", "--batch-size", "32"] + extra + quick)
            try conjure(["export", "--checkpoint", "runs/\(name)/checkpoints/latest.safetensors", "--out", "names.onnx"])
            let printed = try runDocumented(python, blocks[2], prelude: shared, tail: "")
            try conjure(["sample", "--checkpoint", "runs/\(name)/checkpoints/latest.safetensors", "--temperature", "0", "--count", "1", "--out", "t.txt"])
            let sampled = try String(contentsOf: tmp.appendingPathComponent("t.txt"), encoding: .utf8)
            XCTAssertFalse(sampled.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, name)
            // conjure stops at the longest training line, the example at 19 characters: the same
            // text up to the shorter stop (a sample that ends with <eos> earlier is equal).
            let a = printed.trimmingCharacters(in: .whitespacesAndNewlines), b = sampled.trimmingCharacters(in: .whitespacesAndNewlines)
            XCTAssertTrue(a.count < 19 && b.count < 10 ? a == b : (a.hasPrefix(b) || b.hasPrefix(a)), "\(name): example '\(a)', conjure '\(b)'")
        }
    }
}
