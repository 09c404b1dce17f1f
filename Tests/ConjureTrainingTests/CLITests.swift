import Foundation
import XCTest
import ConjureData
import ConjureTestSupport
import ConjureMetrics
import ConjureTraining

/// Runs the real `conjure` executable: errors are one clear line with a non-zero exit and
/// nothing written; sample output has the documented shape and units.
final class CLITests: ConjureCLITestCase {
    override var temporaryPrefix: String { "cli" }

    func contents() -> [String] {
        (FileManager.default.enumerator(atPath: tmp.path)?.allObjects as? [String] ?? []).sorted()
    }

    func testTrainSampleInspectEndToEnd() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        let train = try conjure(["train", "--data", digits, "--name", "d", "--epochs", "2", "--batch-size", "32",
                                 "--g-hidden", "32,64", "--d-hidden", "64,32", "--noise-dim", "16", "--plain", "--log-every", "20"])
        XCTAssert(train.out.contains("run directory: runs/d/"), train.out)
        XCTAssert(train.err.contains("step 20/"), "plain progress lines: \(train.err)")
        let ckpt = "runs/d/checkpoints/latest.safetensors"
        try conjure(["sample", "--checkpoint", ckpt, "--count", "10", "--seed", "5", "--out", "s.npy"])
        let samples = try NPYReader.load(path: tmp.appendingPathComponent("s.npy").path)
        XCTAssertEqual(samples.shape, [10, 1, 8, 8])
        XCTAssert(samples.scalars.allSatisfy { $0 >= -1e-3 && $0 <= 16.001 }, "samples in the data's units 0..16")
        try conjure(["sample", "--checkpoint", ckpt, "--count", "10", "--seed", "5", "--out", "again.npy", "--threads", "1"])
        XCTAssertEqual(try NPYReader.load(path: tmp.appendingPathComponent("again.npy").path).scalars, samples.scalars, "same seed, same samples, any thread count")
        let badThreads = try conjure(["sample", "--checkpoint", ckpt, "--out", "t.npy", "--threads", "0"], expectFailure: true)
        XCTAssert(badThreads.err.contains("--threads: must be between 1 and 64, got 0"), badThreads.err)
        try conjure(["sample", "--checkpoint", ckpt, "--count", "7", "--out", "g.png"])
        let grid = try PNGReader.decode(path: tmp.appendingPathComponent("g.png").path)
        XCTAssertEqual([grid.width, grid.height], [3 * 8 + 4 * 2, 3 * 8 + 4 * 2])
        let inspect = try conjure(["data", "inspect", digits])
        XCTAssert(inspect.out.contains("1797"), inspect.out)
    }

    /// Every preset through the command line on 300 MNIST digits: a few training steps, an
    /// interrupted run resumed to the same weights, `sample` (PNG grid and .npy in 0..255,
    /// `--label` for conditional presets) and `evaluate`.
    func testEveryPresetTrainsResumesSamplesAndEvaluates() throws {
        let bytes = try Gzip.readFile(atPath: try sharedPath("data/mnist_5k.csv.gz").path)
        let all = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        let rows = stride(from: 0, to: all.count, by: all.count / 300).map { all[$0] }  // the file is sorted by label
        let csv = tmp.appendingPathComponent("mnist300.csv")
        try (rows.joined(separator: "\n") + "\n").write(to: csv, atomically: true, encoding: .utf8)
        let trained = try conjure(["classifier", "train", "--data", csv.path, "--epochs", "3", "--out", "c.safetensors"])
        // One progress line per epoch on stderr; the result on stdout.
        XCTAssertEqual(trained.err.split(separator: "\n").filter { $0.hasPrefix("classifier epoch ") }.count, 3, trained.err)
        XCTAssert(trained.err.contains("classifier epoch 3/3  loss "), trained.err)
        XCTAssert(trained.out.hasPrefix("held-out accuracy "), trained.out)
        let presets = ["seed", "gan", "lsgan", "wgan-gp", "hinge-sn", "cgan", "dcgan", "cdcgan", "vae", "conv-vae"]
        let listed = try conjure(["train", "--help"]).out
        for p in presets { XCTAssert(listed.contains(p), "train --help lists \(p)") }
        for preset in presets {
            // A 300-row excerpt is not the known MNIST file: its rows are vectors unless --shape says they are images.
            let common = ["train", "--data", csv.path, "--shape", "1,28,28", "--model", preset, "--batch-size", "16", "--epochs", "1", "--quiet", "--checkpoint-every", "4"]
            try conjure(common + ["--name", "\(preset)-a", "--max-steps", "8"])
            try conjure(common + ["--name", "\(preset)-b", "--max-steps", "5"])
            try conjure(["train", "--name", "\(preset)-b", "--resume", "--max-steps", "8", "--quiet"])
            if preset == "vae" || preset == "seed" {  // progress lines show the losses: a VAE's three, a GAN's two
                let shown = try conjure(["train", "--data", csv.path, "--shape", "1,28,28", "--model", preset, "--batch-size", "16", "--epochs", "1",
                                         "--name", "\(preset)-log", "--max-steps", "4", "--log-every", "2"]).err
                let line = shown.split(separator: "\n").first { $0.hasPrefix("step 2/4") }.map(String.init) ?? shown
                for name in preset == "vae" ? ["loss ", "reconstruction ", "kl "] : ["d_loss ", "g_loss "] { XCTAssert(line.contains(name), "\(preset): \(line)") }
                XCTAssertFalse(line.contains("d_real"), line)
            }
            if preset == "seed" {  // a resume that has nothing left to do says so
                let again = try conjure(["train", "--name", "\(preset)-b", "--resume", "--max-steps", "6", "--quiet"])
                XCTAssert(again.err.contains("note: the run is already at step 8, at or past the 6 steps asked (--max-steps 6); nothing to train"), again.err)
            }
            let a = try SafeTensors.read(path: tmp.appendingPathComponent("runs/\(preset)-a/checkpoints/latest.safetensors").path)
            let b = try SafeTensors.read(path: tmp.appendingPathComponent("runs/\(preset)-b/checkpoints/latest.safetensors").path)
            XCTAssertEqual(a.order, b.order, preset)
            for name in a.order { XCTAssertEqual(a.tensors[name]?.tensor?.scalars, b.tensors[name]?.tensor?.scalars, "\(preset): \(name) after resume") }
            let ckpt = "runs/\(preset)-a/checkpoints/latest.safetensors"
            let label = preset.hasPrefix("c") && preset != "conv-vae" ? ["--label", "3"] : []
            try conjure(["sample", "--checkpoint", ckpt, "--count", "20", "--out", "\(preset).npy"] + label)
            let x = try NPYReader.load(path: tmp.appendingPathComponent("\(preset).npy").path)
            XCTAssertEqual(x.shape, [20, 1, 28, 28], preset)
            XCTAssert(x.scalars.allSatisfy { $0 >= -1e-3 && $0 <= 255.001 }, "\(preset): samples in 0..255")
            try conjure(["sample", "--checkpoint", ckpt, "--count", "16", "--out", "\(preset).png"] + label)
            let metrics = preset.contains("vae") ? "fid,elbo" : "fid"
            let before = try String(contentsOf: tmp.appendingPathComponent("runs/\(preset)-a/report.html"), encoding: .utf8)
            XCTAssert(before.contains("not available: run `conjure evaluate"), preset)
            let e = try conjure(["evaluate", "--checkpoint", ckpt, "--count", "100", "--classifier", "c.safetensors", "--metrics", metrics, "--iwae-k", "10"])
            XCTAssert(e.out.contains("FID"), "\(preset): \(e.out)")
            if preset.contains("vae") { XCTAssert(e.out.contains("IWAE bound"), e.out) }
            // The run's report.html is written again with the evaluation it now has; its
            // interpolation grid stays.
            XCTAssert(e.out.contains("updated runs/\(preset)-a/report.html"), e.out)
            let page = try String(contentsOf: tmp.appendingPathComponent("runs/\(preset)-a/report.html"), encoding: .utf8)
            XCTAssertFalse(page.contains("not available: run `conjure evaluate"), preset)
            XCTAssert(page.contains("interpolation.png"), preset)
            let elsewhere = try conjure(["evaluate", "--checkpoint", ckpt, "--count", "100", "--classifier", "c.safetensors", "--metrics", "fid", "--out", "e-\(preset).json"])
            XCTAssertFalse(elsewhere.out.contains("updated"), elsewhere.out)
        }
    }

    func testBadInputsGiveOneClearErrorAndWriteNothing() throws {
        let cases: [([String], String)] = [
            (["train", "--data", try sharedPath("cases/F05_truncated_8x3x4x4_f4.npy").path, "--name", "x"], "expected 1536 data bytes, found 768"),
            (["train", "--data", try sharedPath("cases/F31_ragged.csv").path, "--name", "x"], "line 3"),
            (["train", "--data", try sharedPath("cases/F10_bad_magic-idx3-ubyte").path, "--name", "x"], "magic"),
            (["train", "--data", try sharedPath("data/digits_8x8.csv.gz").path, "--name", "x", "--model", "nope"], "--model"),
            (["train", "--data", try sharedPath("data/digits_8x8.csv.gz").path, "--name", "x", "--lr-g=-1"], "--lr-g"),
            (["train", "--data", try sharedPath("data/digits_8x8.csv.gz").path, "--name", "x", "--g-hidden", "12,abc"], "--g-hidden"),
            (["train", "--data", "missing.csv", "--name", "x"], "missing.csv"),
            (["sample", "--checkpoint", "missing.safetensors", "--out", "a.png"], "missing.safetensors"),
            (["sample", "--checkpoint", try sharedPath("cases/F07_uint8_2x4.npy").path, "--out", "a.png"], "F07_uint8_2x4.npy"),
            (["data", "inspect", try sharedPath("cases/F06_empty_0x3_f4.npy").path], "0 samples"),
        ]
        for (args, needle) in cases {
            let r = try conjure(args, expectFailure: true)
            XCTAssert(r.err.contains(needle), "\(args): expected '\(needle)' in: \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "one line: \(r.err)")
            XCTAssertFalse(r.err.contains("Fatal error"), r.err)
        }
        XCTAssertEqual(contents(), [], "nothing written")
    }
}

extension CLITests {
    /// `conjure metrics` on the fixture arrays prints the reference values.
    func testMetricsCommandReproducesFixtureValues() throws {
        let dir = try sharedPath("fixtures/metrics")
        let values = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("values.json"))) as! [String: Double]
        let real = dir.appendingPathComponent("real.npy").path, fake = dir.appendingPathComponent("fake.npy").path
        func run(_ args: [String]) throws -> [String: Any] {
            let r = try conjure(["metrics"] + args)
            return try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        }
        XCTAssertEqual(try run(["fid", real, fake])["value"] as! Double, values["fid"]!, accuracy: 1e-4 * values["fid"]!)
        let kid = try run(["kid", real, fake, "--kid-subsets", "1", "--kid-subset-size", "100000"])
        XCTAssertEqual(kid["mean"] as! Double, values["kid_mmd2_unbiased_all"]!, accuracy: 1e-4 * values["kid_mmd2_unbiased_all"]!)
        XCTAssertEqual(try run(["pr", real, fake])["precision"] as! Double, values["precision_k3"]!, accuracy: 1e-9)
        XCTAssertEqual(try run(["dc", real, fake])["coverage"] as! Double, values["coverage_k5"]!, accuracy: 1e-9)
        let score = try run(["score", dir.appendingPathComponent("probs.npy").path])
        XCTAssertEqual(score["mean"] as! Double, values["inception_score_1split"]!, accuracy: 1e-4 * values["inception_score_1split"]!)
        let bad = try conjure(["metrics", "fid", real, try sharedPath("cases/F07_uint8_2x4.npy").path], expectFailure: true)
        XCTAssert(bad.err.contains("F07_uint8_2x4.npy"), bad.err)
    }
}

extension CLITests {
    func testOptionErrorsAreOneLineIncludingNegativeNumbersAndResumeConflicts() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        let names = try sharedPath("data/text/names.txt").path
        let cases: [([String], String)] = [
            (["train", "--data", digits, "--name", "x", "--epochs", "-1"], "--epochs"),
            (["train", "--data", digits, "--name", "x", "--epochs", "0"], "--epochs"),
            (["train", "--data", digits, "--name", "x", "--lr-g", "-1"], "--lr-g"),
            (["train", "--data", digits, "--name", "x", "--noise-dim", "100000000"], "parameters"),
            (["train", "--data", digits, "--name", "x", "--g-hidden", "3000000000"], "parameters"),
            (["train", "--data", digits, "--name", "x", "--bogus"], "bogus"),
            (["train", "--name", "x", "--resume", "--lr-g", "0.1"], "--lr-g"),
            (["train", "--name", "x", "--resume", "--overwrite"], "--overwrite"),
            (["train", "--data", digits, "--name", "x", "--resume"], "--data: is not accepted with --resume (even with its saved value)"),
            (["train", "--data", try sharedPath("cases/F07_uint8_2x4.npy").path, "--name", "x", "--label-column", "1"], "--label-column"),
            // A text model on non-text data names the file, not an option the user never gave (--normalize).
            (["train", "--data", digits, "--model", "char-mlp", "--name", "x"],
             "error: --data: --model char-mlp models text and needs a UTF-8 text (.txt) file; \(digits) is not one"),
            (["classifier", "train", "--data", names, "--out", "x.safetensors"],
             "error: --data: \(names) is text; the domain classifier needs labelled images or vectors (IDX, CSV, .npy, a PNG folder) or a folder of sound files"),
            (["data", "inspect"], "file"),
            (["bench", "--configs", "99999999x1"], "--configs: '99999999x1': the batch must be 2 to 1048576"),
            (["bench", "--configs", "1x1"], "the batch must be 2 to 1048576"),
            (["bench", "--configs", "64x0"], "--configs: '64x0': the thread count must be 1 to 64"),
            (["bench", "--configs", "64x65"], "the thread count must be 1 to 64"),
            (["bench", "--configs", "64x1x2"], "is not BATCHxTHREADS"),
            (["bench", "--configs", "64x"], "is not BATCHxTHREADS"),
            (["bench", "--warmup=-1"], "--warmup: must be at least 0, got -1"),
            (["bench", "--repeats", "0"], "--repeats: must be at least 1, got 0"),
            (["bench", "--steps=-1"], "--steps: must be at least 1, got -1"),
            (["bench", "--model", "gan", "--sample-steps", "5"], "--sample-steps: applies to diffusion models only"),
            (["bench", "--model", "ddpm", "--sample-steps", "51"], "--sample-steps: must be between 0 and the sampler's 50 steps, got 51"),
            (["bench", "--model", "ddpm", "--sample-steps=-1"], "--sample-steps: must be between 0"),
        ]
        for (args, needle) in cases {
            let r = try conjure(args, expectFailure: true)
            XCTAssert(r.err.contains(needle), "\(args): expected '\(needle)' in: \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, "\(args): one line: \(r.err)")
        }
        XCTAssertEqual(contents(), [], "nothing written")
    }

    func testDivergedRunLeavesNothingAndKeepsTheRunItWouldReplace() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        let small = ["--g-hidden", "16,16", "--d-hidden", "16,16", "--noise-dim", "8", "--batch-size", "32", "--quiet"]
        try conjure(["train", "--data", digits, "--name", "keep", "--epochs", "1"] + small)
        let before = try Data(contentsOf: tmp.appendingPathComponent("runs/keep/checkpoints/latest.safetensors"))
        let r = try conjure(["train", "--data", digits, "--name", "keep", "--overwrite", "--lr-g=1e30", "--lr-d=1e30"] + small, expectFailure: true)
        XCTAssert(r.err.contains("non-finite"), r.err)
        XCTAssertEqual(try Data(contentsOf: tmp.appendingPathComponent("runs/keep/checkpoints/latest.safetensors")), before)
        try conjure(["train", "--data", digits, "--name", "new", "--lr-g=1e30", "--lr-d=1e30"] + small, expectFailure: true)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.appendingPathComponent("runs").path), ["keep"])
    }

    func testInterruptWritesACheckpointAndResumes() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        let p = Process()
        p.executableURL = conjureBinary
        p.arguments = ["train", "--data", digits, "--name", "int", "--epochs", "500", "--batch-size", "32", "--quiet"]
        p.currentDirectoryURL = tmp
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        Thread.sleep(forTimeInterval: 1.5)
        p.interrupt()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        let ckpt = tmp.appendingPathComponent("runs/int/checkpoints/latest.safetensors").path
        XCTAssert(FileManager.default.fileExists(atPath: ckpt), "a checkpoint is written on interrupt")
        let r = try conjure(["train", "--name", "int", "--resume", "--max-steps", "3000", "--quiet"])
        XCTAssert(r.out.contains("trained to step 3000"), r.out)
    }

    func testCheckpointWithNonFiniteWeightsIsRejected() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        try conjure(["train", "--data", digits, "--name", "n", "--epochs", "1", "--batch-size", "32", "--g-hidden", "16", "--g-batchnorm", "0",
                     "--d-hidden", "16", "--noise-dim", "8", "--quiet"])
        let file = try SafeTensors.read(path: tmp.appendingPathComponent("runs/n/checkpoints/latest.safetensors").path)
        var values: [(String, SafeTensorValue)] = []
        for name in file.order {
            var v = file.tensors[name]!
            if name == "generator.0.weight", var t = v.tensor { t = Tensor(shape: t.shape, scalars: [Float.nan] + t.scalars.dropFirst()); v = .f32(t) }
            values.append((name, v))
        }
        try SafeTensors.write(values: values, metadata: file.metadata, to: tmp.appendingPathComponent("nan.safetensors").path)
        let r = try conjure(["sample", "--checkpoint", "nan.safetensors", "--out", "s.npy"], expectFailure: true)
        XCTAssert(r.err.contains("generator.0.weight") && r.err.contains("non-finite"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("s.npy").path))
    }

    /// `evaluate` says why a run gets no feature space: for a 2-D mixture the feature-based
    /// metrics of the default set do not apply, which the features line names.
    func testEvaluateSaysWhyNoFeatureMetricApplies() throws {
        try conjure(["train", "--data", "ring8", "--name", "r", "--max-steps", "30", "--quiet"])
        let r = try conjure(["evaluate", "--checkpoint", "runs/r/checkpoints/latest.safetensors"])
        XCTAssert(r.out.contains("features: none (fid, kid, pr, dc, score, modes do not apply: 2-D mixture runs are scored with 'mixture')"), r.out)
        XCTAssert(r.out.contains("modes captured"), r.out)
        let c = try conjure(["classifier", "train", "--data", "ring8", "--out", "c.safetensors"], expectFailure: true)
        XCTAssert(c.err.hasPrefix("error: --data: ring8 is a built-in 2-D point set without class labels"), c.err)
    }

    /// Values that are finite but cannot be right: a negative BatchNorm running variance in a
    /// checkpoint (its square root is NaN) is refused at load; latents too large for the network
    /// give non-finite samples, which `sample` refuses to write (naming the checkpoint and --z).
    func testNegativeVarianceAndNonFiniteSamplesAreRefused() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        try conjure(["train", "--data", digits, "--name", "v", "--max-steps", "20", "--quiet"])  // the gan preset: BatchNorm in G
        let path = tmp.appendingPathComponent("runs/v/checkpoints/latest.safetensors").path
        let file = try SafeTensors.read(path: path)
        let variance = try XCTUnwrap(file.order.first { $0.hasPrefix("generator.") && $0.hasSuffix("running_var") })
        var values: [(String, SafeTensorValue)] = []
        for name in file.order {
            var v = file.tensors[name]!
            if name == variance, let t = v.tensor { v = .f32(Tensor(shape: t.shape, scalars: t.scalars.dropLast() + [-1])) }
            values.append((name, v))
        }
        try SafeTensors.write(values: values, metadata: file.metadata, to: tmp.appendingPathComponent("negvar.safetensors").path)
        for command in [["sample", "--checkpoint", "negvar.safetensors", "--out", "s.npy"],
                        ["evaluate", "--checkpoint", "negvar.safetensors", "--count", "100", "--out", "e.json"]] {
            let r = try conjure(command, expectFailure: true)
            XCTAssert(r.err.contains("negvar.safetensors") && r.err.contains(variance) && r.err.contains("is -1.0 (a negative variance)"), r.err)
        }
        // z of 3e38 (finite) overflows the generator's first layer: inf - inf is NaN.
        try NPYWriter.write(Tensor(repeating: 3e38, shape: [4, 100]), to: tmp.appendingPathComponent("z.npy").path)
        for out in ["s.npy", "s.png"] {
            let r = try conjure(["sample", "--checkpoint", path, "--z", "z.npy", "--out", out], expectFailure: true)
            XCTAssert(r.err.contains("latest.safetensors") && r.err.contains("non-finite samples") && r.err.contains("z.npy"), r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent(out).path))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("e.json").path))
        // The same latents scaled to a standard normal's size sample fine.
        try NPYWriter.write(Tensor(repeating: 1, shape: [4, 100]), to: tmp.appendingPathComponent("z1.npy").path)
        try conjure(["sample", "--checkpoint", path, "--z", "z1.npy", "--out", "s.npy"])
        XCTAssert(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("s.npy").path))
    }
}

extension CLITests {
    /// Regressions found by testing evaluate and metrics with bad inputs.
    func testMetricsAndEvaluateRejectBadInputsClearly() throws {
        let empty = try sharedPath("cases/F06_empty_0x3_f4.npy").path
        var r = try conjure(["metrics", "fid", empty, empty], expectFailure: true)
        XCTAssert(r.err.contains("F06_empty_0x3_f4.npy") && !r.err.contains("crashed"), r.err)
        let real = try sharedPath("fixtures/metrics/real.npy").path
        r = try conjure(["metrics", "kid", real, real, "--kid-subsets", "100000000"], expectFailure: true)
        XCTAssert(r.err.contains("--kid-subsets"), r.err)
        // Evaluate from another directory, with a labelled CSV as reference.
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        try conjure(["train", "--data", digits, "--name", "e", "--epochs", "1", "--batch-size", "32", "--g-hidden", "16", "--g-batchnorm", "0",
                     "--d-hidden", "16", "--noise-dim", "8", "--quiet"])
        let ckpt = tmp.appendingPathComponent("runs/e/checkpoints/latest.safetensors").path
        let p = Process()
        p.executableURL = conjureBinary
        p.arguments = ["evaluate", "--checkpoint", ckpt, "--count", "50", "--reference", digits, "--metrics", "fid,pr", "--out", "/dev/null/x.json"]
        p.currentDirectoryURL = URL(fileURLWithPath: "/")
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run(); p.waitUntilExit()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertFalse(text.contains("no such file or folder") && text.contains("digits_8x8"), "the run's data path is absolute: \(text)")
        try? FileManager.default.removeItem(at: tmp.appendingPathComponent("runs/e/classifier.safetensors"))
        r = try conjure(["evaluate", "--checkpoint", ckpt, "--count", "50", "--metrics", "mixture"], expectFailure: true)
        XCTAssert(r.err.contains("mixture"), r.err)
        r = try conjure(["evaluate", "--checkpoint", ckpt, "--count", "50", "--pr-k", "0"], expectFailure: true)
        XCTAssert(r.err.contains("--pr-k"), r.err)
        r = try conjure(["evaluate", "--checkpoint", ckpt, "--count", "3"], expectFailure: true)
        XCTAssert(r.err.contains("--count"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/e/eval.json").path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/e/classifier.safetensors").path),
                       "no classifier trained for a request that fails validation")
    }
}

extension CLITests {
    /// Regressions found by a tester of the model-family and optimiser options: edited
    /// checkpoint positions and shapes, sparse class labels, options that would do nothing.
    func testEditedCheckpointsSparseLabelsAndIneffectiveOptionsAreErrors() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        let small = ["--g-hidden", "16", "--g-batchnorm", "0", "--d-hidden", "16", "--noise-dim", "8", "--quiet", "--batch-size", "32"]
        try conjure(["train", "--data", digits, "--name", "r", "--epochs", "2", "--max-steps", "60"] + small)
        let path = tmp.appendingPathComponent("runs/r/checkpoints/latest.safetensors").path
        let file = try SafeTensors.read(path: path)
        let values = file.order.map { ($0, file.tensors[$0]!) }
        for (key, value, needle) in [("batch_in_epoch", "-1", "training position"), ("batch_in_epoch", "46", "batches per epoch"),
                                     ("step", "-5", "training position"), ("log_window", "{\"steps\": 3}", "logging window"),
                                     ("log_window", "{\"steps\": 999, \"names\": [], \"sums\": []}", "logging window"),
                                     ("log_window", "{\"steps\": 3, \"names\": [\"a\"], \"sums\": [1]}", "but the model logs"),
                                     ("log_window", "{\"steps\": 3, \"names\": [\"g_loss\", \"d_loss\", \"d_real\", \"d_fake\"], \"sums\": [1, 2, 3, 4]}", "but the model logs")] {
            var meta = file.metadata
            meta[key] = value
            try SafeTensors.write(values: values, metadata: meta, to: path)
            let r = try conjure(["train", "--name", "r", "--resume"], expectFailure: true)
            XCTAssertEqual(r.status, 1, "\(key)=\(value): \(r.err)")
            XCTAssert(r.err.contains(needle) && r.err.split(separator: "\n").count == 1, "\(key)=\(value): \(r.err)")
        }
        var meta = file.metadata
        meta["config"] = meta["config"]!.replacingOccurrences(of: "\"imageShape\" : [\n    1,\n    8,\n    8\n  ]", with: "\"imageShape\" : [\n    1,\n    9,\n    8\n  ]")
        XCTAssertNotEqual(meta["config"], file.metadata["config"], "the test edits the image shape")
        try SafeTensors.write(values: values, metadata: meta, to: path)
        var r = try conjure(["sample", "--checkpoint", path, "--out", "s.npy"], expectFailure: true)
        XCTAssert(r.err.contains("imageShape"), r.err)
        // EMA tensors without EMA in the configuration.
        meta = file.metadata
        meta["config"] = meta["config"]!.replacingOccurrences(of: "\"emaDecay\" : 0.999", with: "\"emaDecay\" : null")
        try SafeTensors.write(values: values, metadata: meta, to: path)
        r = try conjure(["sample", "--checkpoint", path, "--out", "s.npy"], expectFailure: true)
        XCTAssert(r.err.contains("generator_ema"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("s.npy").path))

        // Class labels with gaps.
        let rows = (0..<40).map { i in (0..<64).map { _ in String(Int.random(in: 0...16)) }.joined(separator: ",") + ",\(i % 2 == 0 ? 0 : 1000)" }
        try (rows.joined(separator: "\n") + "\n").write(to: tmp.appendingPathComponent("gaps.csv"), atomically: true, encoding: .utf8)
        r = try conjure(["train", "--data", "gaps.csv", "--model", "cgan", "--name", "g", "--label-column", "-1", "--batch-size", "8", "--quiet"], expectFailure: true)
        XCTAssert(r.err.contains("0..K-1"), r.err)
        // One huge label among classes 0..9: refused at once (not a range of 1e11 classes
        // scanned, nor a layer or table sized by it), by a conditional model and by the classifier.
        let huge = (0..<40).map { i in (0..<64).map { _ in String(Int.random(in: 0...16)) }.joined(separator: ",") + ",\(i == 7 ? 99_999_999_999 : i % 10)" }
        try (huge.joined(separator: "\n") + "\n").write(to: tmp.appendingPathComponent("huge.csv"), atomically: true, encoding: .utf8)
        r = try conjure(["train", "--data", "huge.csv", "--model", "cgan", "--name", "h", "--label-column", "-1", "--batch-size", "8", "--quiet"], expectFailure: true)
        XCTAssert(r.err.contains("huge.csv") && r.err.contains("run to 99999999999 but 10, 11, 12, 13, 14... never occur"), r.err)
        r = try conjure(["classifier", "train", "--data", "huge.csv", "--label-column", "-1", "--out", "c.safetensors"], expectFailure: true)
        XCTAssert(r.err.contains("huge.csv") && r.err.contains("a classifier needs class labels 0..K-1"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("c.safetensors").path))
        // Options that would silently do nothing.
        for (args, option) in [(["--model", "dcgan", "--g-hidden", "10"], "--g-hidden"), (["--lr-final-factor", "0.5"], "--lr-final-factor"),
                               (["--optimizer", "rmsprop", "--beta1", "0.3"], "--beta1")] {
            r = try conjure(["train", "--data", digits, "--name", "x"] + args, expectFailure: true)
            XCTAssert(r.err.hasPrefix("error: \(option)"), "\(args): \(r.err)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/x").path))
    }

    /// `bench` prints each preset's ratio to its reference figure (REFERENCE.md or the project's
    /// PyTorch script) only when the step timed is the reference's step.
    func testBenchPrintsRatiosOnlyForTheReferenceSteps() throws {
        let quick = ["--configs", "64x1", "--steps", "1", "--repeats", "1", "--warmup", "0"]
        func ratioLine(_ args: [String]) throws -> String {
            let out = try conjure(["bench"] + args + quick).out
            return out.split(separator: "\n").first { $0.hasPrefix("batch   64") }.map(String.init) ?? ""
        }
        XCTAssertTrue(try ratioLine(["--model", "seed"]).contains("PyTorch eager (240), x"))
        // The split of the step's time measured inside it: products, parameter updates (Adam
        // on both networks) and the rest add up to the step.
        let out = try conjure(["bench", "--model", "seed"] + quick).out
        let split = try XCTUnwrap(out.split(separator: "\n").first { $0.hasPrefix("  in the step (timed there, ") }, out)
        let ms = split.split(separator: " ").compactMap { Double($0) }
        XCTAssertEqual(ms.count, 4, String(split))  // step, products, parameter updates, the rest (ms)
        if ms.count == 4 {
            XCTAssertGreaterThan(ms[1], 0, String(split))
            XCTAssertGreaterThan(ms[2], 0, String(split))
            XCTAssertLessThanOrEqual(ms[1] + ms[2], ms[0], String(split))
            XCTAssertEqual(ms[1] + ms[2] + ms[3], ms[0], accuracy: 0.016, String(split))
        }
        // The probed FMA peak and the products' share of it, consistent with the bound line's
        // GFLOP and GFLOP/s.
        let lines = out.split(separator: "\n").map(String.init)
        let bound = try XCTUnwrap(lines.first { $0.hasPrefix("  matrix work ") }, out)
        let peakLine = try XCTUnwrap(lines.first { $0.hasPrefix("  the FMA peak of 1 thread (probed): ") }, out)
        func numbers(_ s: String) -> [Double] {
            s.split(whereSeparator: { " (),;%".contains($0) }).compactMap { Double($0) }
        }
        let b = numbers(bound)  // ms, GFLOP/s, products, GFLOP, the largest's GFLOP/s, step ms, other share
        let p = numbers(peakLine)  // threads, peak, products' share, the largest's share, ms at the peak
        XCTAssertEqual(p.count, 5, peakLine)
        if p.count == 5 && b.count >= 5 {
            XCTAssertGreaterThan(p[1], 0, peakLine)
            XCTAssertEqual(p[2], (100 * b[1] / p[1]).rounded(), accuracy: 1, "\(bound)\n\(peakLine)")
            XCTAssertEqual(p[4], b[3] / p[1] * 1000, accuracy: 0.01 + 0.001 * p[4], "\(bound)\n\(peakLine)")
        }
        XCTAssertTrue(try ratioLine(["--model", "seed"]).contains("JAX scan (400)"))
        XCTAssertTrue(try ratioLine(["--model", "gan"]).contains("PyTorch eager (48.3)"))
        XCTAssertTrue(try ratioLine(["--model", "dcgan"]).contains("PyTorch eager (8.3)"))
        // Another step than the reference's: no ratio.
        XCTAssertFalse(try ratioLine(["--model", "seed", "--update", "simultaneous"]).contains("PyTorch"))
        XCTAssertFalse(try ratioLine(["--model", "dcgan", "--update", "simultaneous"]).contains("PyTorch"))
    }

    /// `bench --model ddpm` also states the DDIM-50 sampling speed (text and JSON), timed from
    /// a short run at each configuration's batch; `--sample-steps 0` leaves it out; the GAN gets none.
    func testBenchReportsDiffusionSamplingSpeed() throws {
        let quick = ["--configs", "2x1", "--steps", "1", "--repeats", "1", "--warmup", "0"]
        let text = try conjure(["bench", "--model", "ddpm", "--sample-steps", "1"] + quick).out
        let line = try XCTUnwrap(text.split(separator: "\n").first { $0.hasPrefix("sampling batch    2  threads 1") }, text)
        XCTAssert(line.contains(" images/s (min ") && line.contains("ddim 50 steps, eta 0.0, x0 clipped; from the averaged weights, per-step time of runs of 1 step"), String(line))
        let rate = try XCTUnwrap(Double(line.split(separator: " ", omittingEmptySubsequences: true)[5]), String(line))
        XCTAssertGreaterThan(rate, 0)
        XCTAssert(text.contains("scripts/bench_torch_ddpm.py --model ddpm"), text)
        let json = try conjure(["bench", "--model", "ddpm-cond", "--sample-steps", "1", "--json"] + quick).out
        let row = try XCTUnwrap(json.split(separator: "\n").first { $0.hasPrefix("{") })
        let r = try JSONDecoder().decode(Benchmark.Result.self, from: Data(row.utf8))
        XCTAssertEqual(r.sampler, "ddim 50 steps, eta 0.0, guidance 1.0, x0 clipped")
        XCTAssertEqual(r.sampleStepsTimed, 1)
        XCTAssertGreaterThan(try XCTUnwrap(r.imagesPerSecondMedian), 0)
        XCTAssertFalse(try conjure(["bench", "--model", "ddpm", "--sample-steps", "0"] + quick).out.contains("sampling"))
        XCTAssertFalse(try conjure(["bench", "--model", "gan"] + quick).out.contains("sampling"))
    }

    /// A --runs-dir that is a file is named as such, and left as it was.
    func testRunsDirThatIsAFileIsOneClearError() throws {
        let file = tmp.appendingPathComponent("runs")
        try Data("not a folder".utf8).write(to: file)
        let r = try conjure(["train", "--data", try sharedPath("data/digits_8x8.csv.gz").path, "--runs-dir", file.path,
                             "--name", "x", "--epochs", "1"], expectFailure: true)
        XCTAssert(r.err.contains("--runs-dir: '\(file.path)' exists and is not a directory"), r.err)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertEqual(try String(contentsOf: file, encoding: .utf8), "not a folder")
        XCTAssertEqual(contents(), ["runs"])
    }
}
