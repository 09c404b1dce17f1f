import Foundation
import XCTest
import ConjureData
import ConjureModels
import ConjureTraining
import ConjureTestSupport

/// Text models through the trainer and the real `conjure` executable on ../shared's names.txt.
final class TextTrainingTests: ConjureCLITestCase {
    override var temporaryPrefix: String { "text" }

    /// train (a few steps of each preset) → sample (determinism, prompt, options) → evaluate
    /// (held-out NLL, bits/char, perplexity, novelty) → data inspect, on names.txt.
    func testTrainSampleEvaluateOnNames() throws {
        let names = try sharedPath("data/text/names.txt").path
        let inspect = try conjure(["data", "inspect", names])
        XCTAssert(inspect.out.contains("mode:       lines"), inspect.out)
        XCTAssert(inspect.out.contains("31033 training lines, 1000 held-out lines"), inspect.out)
        for preset in ["char-mlp", "char-gru", "char-transformer"] {
            try conjure(["train", "--data", names, "--model", preset, "--name", preset, "--max-steps", "30", "--batch-size", "16",
                         "--width", "32", "--layers", "1", "--heads", "2", "--log-every", "10", "--sample-every", "15", "--plain"])
            let run = tmp.path + "/runs/\(preset)"
            let config = try String(contentsOfFile: run + "/config.json", encoding: .utf8)
            XCTAssert(config.contains("\"family\" : \"text\"") && config.contains("conjure-char-vocab-1"), config)
            let grid = try String(contentsOfFile: run + "/samples/step-000015.txt", encoding: .utf8)
            XCTAssertEqual(grid.split(separator: "\n", omittingEmptySubsequences: false).count, 65, "64 samples, one a line")
            let lines = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(lines.count, 3)
            let ckpt = "runs/\(preset)/checkpoints/latest.safetensors"
            try conjure(["sample", "--checkpoint", ckpt, "--count", "20", "--seed", "3", "--out", "a.txt"])
            try conjure(["sample", "--checkpoint", ckpt, "--count", "20", "--seed", "3", "--out", "b.txt"])
            let a = try String(contentsOfFile: tmp.path + "/a.txt", encoding: .utf8)
            XCTAssertEqual(a, try String(contentsOfFile: tmp.path + "/b.txt", encoding: .utf8), "same seed, same samples")
            XCTAssertEqual(a.split(separator: "\n", omittingEmptySubsequences: false).count, 21)
            try conjure(["sample", "--checkpoint", ckpt, "--count", "5", "--seed", "1", "--prompt", "ma", "--top-k", "5", "--top-p", "0.9",
                         "--temperature", "0.8", "--max-length", "6", "--out", "p.txt"])
            let p = try String(contentsOfFile: tmp.path + "/p.txt", encoding: .utf8).split(separator: "\n")
            XCTAssert(p.count == 5 && p.allSatisfy { $0.hasPrefix("ma") && $0.count <= 6 }, "\(p)")
            try conjure(["sample", "--checkpoint", ckpt, "--out", "x.png"], expectFailure: true)
            try conjure(["sample", "--checkpoint", ckpt, "--prompt", "Q", "--out", "q.txt"], expectFailure: true)
            let ev = try conjure(["evaluate", "--checkpoint", ckpt, "--count", "200"])
            XCTAssert(ev.out.contains("held-out NLL"), ev.out)
            let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: run + "/eval.json"))) as! [String: Any]
            let nll = report["held_out_nll"] as! Double, bits = report["held_out_bits_per_char"] as! Double
            // After 30 steps the model is between the uniform 27-way guess and a good model.
            XCTAssert(nll > 1.9 && nll < log(27.0) + 0.3, "\(preset): held-out NLL \(nll)")
            XCTAssertEqual(bits, nll / log(2.0), accuracy: 1e-9)
            XCTAssertEqual(report["perplexity"] as! Double, exp(nll), accuracy: 1e-9)
            XCTAssertEqual(report["held_out_predictions"] as? Int, report["held_out_predictions"] as? Int)
            let novel = report["novel_fraction"] as! Double, unique = report["unique_fraction"] as! Double
            XCTAssert((0...1).contains(novel) && (0...1).contains(unique) && unique > 0, "\(novel) \(unique)")
        }
        // Options of the text family are refused for other families, and image normalisations for text.
        try conjure(["train", "--data", names, "--model", "gan", "--context", "4", "--name", "x"], expectFailure: true)
        try conjure(["train", "--data", names, "--model", "char-mlp", "--normalize", "unit", "--name", "y"], expectFailure: true)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path + "/runs/y"))
    }

    /// The diffusion sampler options are an error for a text checkpoint, in `sample` and in
    /// `evaluate` (as for a GAN's), and nothing is written.
    func testDiffusionSamplerOptionsAreRefusedForTextCheckpoints() throws {
        let names = try sharedPath("data/text/names.txt").path
        try conjure(["train", "--data", names, "--model", "char-mlp", "--name", "t", "--max-steps", "2", "--batch-size", "16", "--quiet"])
        let ckpt = "runs/t/checkpoints/latest.safetensors"
        for (args, option) in [(["sample", "--out", "x.txt", "--guidance", "3"], "--guidance"), (["sample", "--out", "x.txt", "--steps", "5"], "--steps"),
                               (["sample", "--out", "x.txt", "--trajectory", "4"], "--trajectory"), (["sample", "--out", "x.txt", "--temperature", "0.5", "--sampler", "ddpm"], "--sampler"),
                               (["evaluate", "--out", "e.json", "--guidance", "3"], "--guidance"), (["evaluate", "--out", "e.json", "--eta", "0.5"], "--eta")] {
            let r = try conjure(args + ["--checkpoint", ckpt], expectFailure: true)
            XCTAssertEqual(r.err, "error: \(option): applies to diffusion models only; this checkpoint's model (text) does not sample by reverse diffusion\n", "\(args)")
        }
        // The other families' metric options, and a class label, are refused too.
        for option in [["--metrics", "fid"], ["--classifier", "c.safetensors"], ["--reference", names], ["--samples", "s.npy"], ["--floor"]] {
            let r = try conjure(["evaluate", "--checkpoint", ckpt, "--out", "e.json"] + option, expectFailure: true)
            XCTAssertEqual(r.err, "error: \(option[0]): applies to image, sound and vector models; a text model is scored by its held-out nats per character and its samples' statistics\n")
        }
        let labelled = try conjure(["sample", "--checkpoint", ckpt, "--out", "x.txt", "--label", "1"], expectFailure: true)
        XCTAssert(labelled.err.hasPrefix("error: --label: a text model is not conditioned on a class"), labelled.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path + "/x.txt"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.path + "/e.json"))
        try conjure(["evaluate", "--checkpoint", ckpt, "--out", "e.json", "--count", "20"])
        XCTAssert(FileManager.default.fileExists(atPath: tmp.path + "/e.json"))
        try conjure(["sample", "--checkpoint", ckpt, "--count", "3", "--out", "x.txt"])
        XCTAssertEqual(try String(contentsOfFile: tmp.path + "/x.txt", encoding: .utf8).split(separator: "\n", omittingEmptySubsequences: false).count, 4, "3 samples, one a line")
    }

    /// The held-out NLL of lines mode counts every character and the closing `<eos>` of each
    /// held-out line once: 1000 lines (makemore's cap) and their characters + 1 each.
    func testHeldOutPredictionsCountEveryCharacterAndTheEnd() throws {
        let names = try sharedPath("data/text/names.txt").path
        let ds = try TextDataset.load(path: names, seed: 42)
        let expected = ds.split.heldOut.reduce(0) { $0 + $1.count + 1 }
        var c = TextConfig.presets["char-mlp"]!
        c.width = 8; c.embedDim = 4
        c.adopt(vocabulary: ds.vocabulary, mode: .lines)
        guard case .lines(_, let held) = ds.encoded else { return XCTFail("lines mode expected") }
        try c.adapt(to: .tokens(vocabulary: ds.vocabulary.count, length: held.width))
        var rng = RandomGenerator(seed: 1)
        let model = TextModel(config: c, rng: &rng)
        let (_, n) = model.negativeLogLikelihood(rows: Tensor(shape: [held.count, held.width], scalars: held.tokens.map(Float.init)))
        XCTAssertEqual(held.count, 1000)
        XCTAssertEqual(n, expected)
    }

    /// A char-transformer run with dropout stopped and resumed equals the uninterrupted run
    /// bit for bit (weights, AdamW state, metrics).
    func testTransformerRunResumesExactly() throws {
        let names = try sharedPath("data/text/names.txt").path
        func options(_ name: String) -> TrainOptions {
            var c = TextConfig.presets["char-transformer"]!
            c.width = 16; c.heads = 2; c.layers = 1; c.dropout = 0.1; c.batchSize = 16; c.epochs = 1
            c.lrSchedule.warmupSteps = 5  // the preset's cosine schedule, warmed up quickly
            var o = TrainOptions(runDirectory: tmp.path + "/" + name, model: ModelConfig(c))
            o.data = names
            o.maxSteps = 24
            o.logEvery = 4; o.sampleEvery = 0; o.checkpointEvery = 8
            o.progress = .quiet
            return o
        }
        let a = options("a")
        _ = try Trainer(options: a, log: { _ in }).run()
        var b = options("b")
        b.maxSteps = 10
        _ = try Trainer(options: b, log: { _ in }).run()
        b.maxSteps = 24
        b.resume = true
        _ = try Trainer(options: b, log: { _ in }).run()
        let ta = try SafeTensors.read(path: a.runDirectory + "/checkpoints/latest.safetensors").tensors
        let tb = try SafeTensors.read(path: b.runDirectory + "/checkpoints/latest.safetensors").tensors
        XCTAssertEqual(Set(ta.keys), Set(tb.keys))
        XCTAssertNotNil(ta["transformer.h.0.attn.in_proj_weight"]); XCTAssertNotNil(ta["optimizer.0.exp_avg"])
        for (k, v) in ta { XCTAssertEqual(v.tensor?.scalars, tb[k]?.tensor?.scalars, "\(k) differs after resume") }
        func metrics(_ o: TrainOptions) throws -> [String] {
            try String(contentsOfFile: o.runDirectory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map {
                String($0.replacingOccurrences(of: #""samples_per_sec":[0-9.e+-]+,?"#, with: "", options: .regularExpression))
            }
        }
        XCTAssertEqual(try metrics(a), try metrics(b))
    }

    /// A held-out character that the training split lacks (stream mode: the last 10% of the
    /// characters are held out) is one error naming it and the option; `--unknown token` maps it
    /// to `<unk>`, trains, and a prompt with an unseen character then samples.
    func testUnknownCharactersAreAnErrorOrATokenByOption() throws {
        let text = String(repeating: "abcab cabba bcab\n", count: 60) + String(repeating: "abz\n", count: 20)
        let file = tmp.appendingPathComponent("z.txt")
        try text.write(to: file, atomically: true, encoding: .utf8)
        let common = ["train", "--data", file.path, "--model", "char-mlp", "--text-mode", "stream", "--context", "8",
                      "--batch-size", "8", "--epochs", "1", "--max-steps", "3", "--quiet"]
        let refused = try conjure(common + ["--name", "a"], expectFailure: true)
        XCTAssert(refused.err.contains("'z' (U+007A) is not in the vocabulary"), refused.err)
        XCTAssert(refused.err.contains("--unknown token"), refused.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/a").path))
        try conjure(common + ["--name", "b", "--unknown", "token"])
        // The last step's log line holds the held-out loss (nats per character), a finite positive value.
        let lines = try String(contentsOf: tmp.appendingPathComponent("runs/b/metrics.jsonl"), encoding: .utf8).split(separator: "\n")
        let last = try JSONSerialization.jsonObject(with: Data(lines.last!.utf8)) as! [String: Any]
        XCTAssertEqual(last["step"] as? Int, 3)
        let heldOut = try XCTUnwrap(last["held_out_loss"] as? Double, "\(last)")
        XCTAssert(heldOut > 0 && heldOut < 10, "\(heldOut)")
        let config = try String(contentsOf: tmp.appendingPathComponent("runs/b/config.json"), encoding: .utf8)
        XCTAssert(config.contains("unknown_characters"), config)
        let out = tmp.appendingPathComponent("s.txt").path
        try conjure(["sample", "--checkpoint", "runs/b/checkpoints/latest.safetensors", "--count", "2", "--prompt", "zq", "--max-length", "6", "--out", out])
        let sampled = try String(contentsOfFile: out, encoding: .utf8)
        XCTAssert(sampled.hasPrefix("zq"), "a prompt with characters outside the vocabulary samples: \(sampled)")
        let bad = try conjure(common + ["--name", "c", "--unknown", "maybe"], expectFailure: true)
        XCTAssert(bad.err.contains("--unknown"), bad.err)
    }
}
