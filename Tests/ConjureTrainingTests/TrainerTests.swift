import Foundation
import XCTest
import ConjureData
import ConjureModels
import ConjureOptim
import ConjureNN
import ConjureTestSupport
@testable import ConjureTraining

/// End-to-end training on real data (the 8x8 digits, small networks): run outputs, exact
/// resume, checkpoint contents, and bad options leaving nothing behind.
final class TrainerTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("trainer")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func options(_ name: String, epochs: Int = 2, seed: UInt64 = 3,
                 generatorHidden: [Int] = [32, 48], discriminatorHidden: [Int] = [48, 24]) throws -> TrainOptions {
        var config = GANConfig.ganPreset
        config.generatorHidden = generatorHidden
        config.generatorBatchNorm = [false, true]
        config.discriminatorHidden = discriminatorHidden
        config.noiseDim = 16
        config.batchSize = 32
        config.epochs = epochs
        config.seed = seed
        var o = TrainOptions(runDirectory: tmp.appendingPathComponent(name).path, model: config)
        o.data = try sharedPath("data/digits_8x8.csv.gz").path
        o.logEvery = 10
        o.sampleEvery = 50
        o.checkpointEvery = 40
        o.progress = .quiet
        return o
    }

    func testTSVFilesLoadWithAndWithoutALabelColumn() throws {
        // Tab-separated: the label-column probe reads with the file's own delimiter.
        var o = try options("tsv")
        let plain = tmp.appendingPathComponent("plain.tsv").path
        try "1\t2\t3\n4\t5\t6\n7\t8\t9\n".write(toFile: plain, atomically: true, encoding: .utf8)
        o.data = plain
        let ds = try PreparedData.loadDataset(o)
        XCTAssertEqual(ds.samples.shape, [3, 3])
        XCTAssertNil(ds.labels)
        let image = tmp.appendingPathComponent("image.tsv").path
        try "0\t1\t2\t3\t7\n4\t5\t6\t7\t2\n".write(toFile: image, atomically: true, encoding: .utf8)
        o.data = image
        let labelled = try PreparedData.loadDataset(o)
        XCTAssertEqual(labelled.samples.shape, [2, 4])
        XCTAssertEqual(labelled.labels, [7, 2])
    }

    /// A new run is staged in a hidden folder; messages and the file list name the run's own.
    func testInTrainingClassifierIsNamedByItsFinalPath() throws {
        var o = try options("named", epochs: 1)
        o.maxSteps = 20
        o.evalEvery = 20
        o.evalCount = 100
        var lines: [String] = []
        let summary = try Trainer(options: o, log: { lines.append($0) }).run()
        let file = o.runDirectory + "/classifier.safetensors"
        XCTAssert(lines.contains { $0.contains("saved to \(file))") }, "\(lines)")
        XCTAssertFalse(lines.contains { $0.contains(".tmp") }, "\(lines)")
        XCTAssert(summary.files.contains(file), "\(summary.files)")
        XCTAssert(FileManager.default.fileExists(atPath: file))
        var resumed = o
        resumed.resume = true
        resumed.maxSteps = 40
        XCTAssertFalse(try Trainer(options: resumed, log: { _ in }).run().files.contains(file))
    }

    func testLiveProgressLineFitsTheTerminal() {
        let line = "step 50/7000  epoch 0.71  d_loss 0.9495  g_loss 1.2345  8000 samples/s  ETA 1m02s"
        XCTAssertEqual(ProgressReporter.fitted(line, columns: 40), String(line.prefix(39)))
        XCTAssertEqual(ProgressReporter.fitted(line, columns: line.count + 1), line)
        XCTAssertEqual(ProgressReporter.fitted(line, columns: line.count), String(line.dropLast()))
        XCTAssertEqual(ProgressReporter.fitted(line, columns: nil), line)
        XCTAssertEqual(ProgressReporter.fitted(line, columns: 1), line)
        // A whole progress line: parts left out before anything is cut, the ETA kept longest.
        let fields = ProgressReporter.Fields(step: "step 1234/7000", epoch: "epoch 17.63", losses: ["loss 128.4567", "recon 110.1234", "kl 4.0758"],
                                             rate: "30800 samples/s", eta: "ETA 1m05s")
        XCTAssertEqual(fields.line, "step 1234/7000  epoch 17.63  loss 128.4567  recon 110.1234  kl 4.0758  30800 samples/s  ETA 1m05s")
        XCTAssertEqual(ProgressReporter.fitted(fields, columns: nil), fields.line)
        XCTAssertEqual(ProgressReporter.fitted(fields, columns: 200), fields.line)
        XCTAssertEqual(ProgressReporter.fitted(fields, columns: 90), "step 1234/7000  loss 128.4567  recon 110.1234  kl 4.0758  30800 samples/s  ETA 1m05s")
        XCTAssertEqual(ProgressReporter.fitted(fields, columns: 80), "step 1234/7000  loss 128.4567  recon 110.1234  kl 4.0758  ETA 1m05s")
        XCTAssertEqual(ProgressReporter.fitted(fields, columns: 30), "step 1234/7000  loss 128.4567")
        for columns in [20, 30, 62, 63, 80, 81, 90, 120] {
            XCTAssertLessThan(ProgressReporter.fitted(fields, columns: columns).count, columns, "\(columns)")
        }
    }

    func tensors(_ path: String) throws -> [String: Tensor] {
        let f = try SafeTensors.read(path: path)
        var out: [String: Tensor] = [:]
        for (k, v) in f.tensors { out[k] = v.tensor }
        return out
    }

    /// Stops `b` after `stopAt` steps, resumes it to the end, and asserts that its final
    /// checkpoint holds exactly the tensors of the uninterrupted run `a` (already trained).
    /// Returns `a`'s tensors.
    @discardableResult
    func assertStopAndResumeMatches(_ a: TrainOptions, _ b: TrainOptions, stopAt: Int, _ label: String) throws -> [String: Tensor] {
        var b = b
        b.maxSteps = stopAt
        XCTAssertEqual(try Trainer(options: b).run().steps, stopAt, label)
        b.maxSteps = nil
        b.resume = true
        _ = try Trainer(options: b).run()
        let ta = try tensors(a.runDirectory + "/checkpoints/latest.safetensors")
        let tb = try tensors(b.runDirectory + "/checkpoints/latest.safetensors")
        XCTAssertEqual(Set(ta.keys), Set(tb.keys), label)
        for (k, v) in ta { XCTAssertEqual(v.scalars, tb[k]!.scalars, "\(label): \(k) differs after resume at \(stopAt)") }
        return ta
    }

    func testRunDirectoryContentsAndCheckpointNames() throws {
        let o = try options("run")
        let summary = try Trainer(options: o).run()
        XCTAssertEqual(summary.steps, 2 * (1618 / 32), "2 epochs over the 90% training split (1618 of 1797)")
        let dir = o.runDirectory
        for f in ["config.json", "metrics.jsonl", "checkpoints/latest.safetensors", "samples/final.png", "samples/step-000050.png"] {
            XCTAssert(FileManager.default.fileExists(atPath: dir + "/" + f), "missing \(f)")
        }
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, Int((Double(summary.steps) / 10).rounded(.up)))
        let first = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as! [String: Any]
        for key in ["step", "epoch", "d_loss", "g_loss", "d_real", "d_fake", "samples_per_sec"] { XCTAssertNotNil(first[key], key) }
        XCTAssertEqual(first["step"] as? Int, 10)
        let t = try tensors(dir + "/checkpoints/latest.safetensors")
        XCTAssertEqual(t["generator.0.weight"]?.shape, [32, 16])
        XCTAssertEqual(t["generator.3.running_var"]?.shape, [48])
        XCTAssertEqual(t["generator.5.weight"]?.shape, [64, 48])
        XCTAssertEqual(t["discriminator.4.weight"]?.shape, [1, 24])
        XCTAssertEqual(t["optimizer.generator.0.exp_avg"]?.shape, [32, 16])
        // The digits CSV's last column became labels: 64 features, range 0..16 mapped to [-1, 1].
        let loaded = try Checkpoint.read(path: dir + "/checkpoints/latest.safetensors")
        XCTAssertEqual(loaded.run.model.dataDim, 64)
        XCTAssertEqual(loaded.run.normalization.low, 0)
        XCTAssertEqual(loaded.run.normalization.high, 16)
        XCTAssertEqual(loaded.run.imageShape, [1, 8, 8])
        XCTAssertEqual(loaded.progress.step, summary.steps)
    }

    /// A run stopped after step k and resumed equals the uninterrupted run exactly: the same
    /// checkpoint bytes, and the same metrics.jsonl lines less the throughput, also when it
    /// stopped off the --log-every grid (the checkpoint carries the open logging window; the
    /// stopped run's partial line at k is replaced by the whole window's line).
    func testResumeEqualsUninterruptedRun() throws {
        for stopAt in [40, 67] {  // at a checkpoint and between checkpoints, mid-epoch
            let a = try options("a\(stopAt)")
            _ = try Trainer(options: a).run()
            let b = try options("b\(stopAt)")
            var stopped = b
            stopped.maxSteps = stopAt
            _ = try Trainer(options: stopped).run()
            let partial = try String(contentsOfFile: b.runDirectory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            XCTAssertEqual(partial.last.map { strip($0).split(separator: " ")[0] }, "\(stopAt)", "the stopped run logs its last step")
            let window = try Checkpoint.read(path: b.runDirectory + "/checkpoints/latest.safetensors").progress.logWindow
            XCTAssertEqual(window?.steps, stopAt % 10 == 0 ? nil : stopAt % 10, "open window in the checkpoint")
            // A resume that asks for no more steps changes no line and no byte.
            let metricsBefore = try Data(contentsOf: URL(fileURLWithPath: b.runDirectory + "/metrics.jsonl"))
            var idle = b
            idle.resume = true
            idle.maxSteps = stopAt
            XCTAssertEqual(try Trainer(options: idle).run().steps, stopAt)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: b.runDirectory + "/metrics.jsonl")), metricsBefore)
            // Resumed without the cadence options: the run's own (log every 10, not the default 50).
            var resumed = b
            resumed.resume = true
            resumed.logEvery = nil; resumed.sampleEvery = nil; resumed.checkpointEvery = nil
            _ = try Trainer(options: resumed).run()
            let ma = try String(contentsOfFile: a.runDirectory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { exact($0) }
            let mb = try String(contentsOfFile: b.runDirectory + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").map { exact($0) }
            XCTAssertEqual(ma, mb, "metrics.jsonl of the resumed run (stopped at \(stopAt))")
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: a.runDirectory + "/checkpoints/latest.safetensors")),
                           try Data(contentsOf: URL(fileURLWithPath: b.runDirectory + "/checkpoints/latest.safetensors")))
        }
    }

    /// Resume options checked before anything is written: --eval-every on a run without a
    /// held-out split is an error that leaves the run as it was; new cadences reach config.json.
    func testResumeChecksEvalBeforeWritingAndUpdatesConfig() throws {
        var o = try options("h0", epochs: 1)
        o.heldOutFraction = 0
        o.maxSteps = 17
        _ = try Trainer(options: o).run()
        let dir = o.runDirectory
        let before = try Data(contentsOf: URL(fileURLWithPath: dir + "/metrics.jsonl"))
        var bad = o
        bad.resume = true
        bad.maxSteps = nil
        bad.evalEvery = 10
        bad.evalCount = 50
        XCTAssertThrowsError(try Trainer(options: bad).run()) { XCTAssert("\($0)".contains("held-out"), "\($0)") }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dir + "/metrics.jsonl")), before)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/classifier.safetensors"))
        var more = o
        more.resume = true
        more.maxSteps = 30
        more.logEvery = 7
        _ = try Trainer(options: more).run()
        let config = try String(contentsOfFile: dir + "/config.json", encoding: .utf8)
        XCTAssert(config.contains("\"logEvery\" : 7"), config)
    }

    /// A metrics line without its throughput, every other value exact.
    func exact(_ line: Substring) -> String {
        var obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
        obj["samples_per_sec"] = nil
        obj["wall_seconds"] = nil
        return String(decoding: (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data(), as: UTF8.self)
    }

    /// The training options of issue 5 (AdamW / RMSprop, a warm-up + cosine schedule,
    /// gradient clipping, generator EMA) survive a checkpoint: stopping and resuming gives the
    /// same weights, optimiser state and averages as the uninterrupted run; and they matter.
    func testResumeWithOptimizerScheduleClippingAndEMA() throws {
        for kind in [OptimizerKind.adamw, .rmsprop] {
            func configured(_ name: String) throws -> TrainOptions {
                var o = try options(name)
                var g = o.model.gan!
                g.optimizer = kind
                g.weightDecay = 0.01
                g.lrSchedule = LRSchedule(.cosine, warmupSteps: 10, finalFactor: 0.1)
                g.clipGradNorm = 5
                g.emaDecay = 0.9
                if kind == .rmsprop { g.generatorLR = 5e-5; g.discriminatorLR = 5e-5 }
                o.model = .gan(g)
                return o
            }
            let a = try configured("a-\(kind)")
            _ = try Trainer(options: a).run()
            let ta = try assertStopAndResumeMatches(a, try configured("b-\(kind)"), stopAt: 47, "\(kind)")
            XCTAssertEqual(ta["generator_ema.0.weight"]?.shape, [32, 16], "\(kind): averaged weights saved under generator_ema.*")
            XCTAssertNotEqual(ta["generator_ema.0.weight"]?.scalars, ta["generator.0.weight"]?.scalars)
            if kind == .rmsprop { XCTAssertNotNil(ta["optimizer.generator.0.square_avg"]) } else { XCTAssertNotNil(ta["optimizer.generator.0.exp_avg"]) }
            // The loaded model samples with the averaged weights.
            let loaded = try Checkpoint.read(path: a.runDirectory + "/checkpoints/latest.safetensors")
            let gan = loaded.model as! GAN
            let z = Tensor(shape: [3, 16], scalars: (0..<48).map { Float($0 % 7) / 7 - 0.5 })
            let withEMA = gan.sample(z: z)
            for (p, (_, t)) in zip(gan.generator.parameters, gan.generator.allNamedParameters(prefix: "generator_ema.").map { ($0.0, ta[$0.0]!) }) { p.assign(t) }
            gan.generator.isTraining = false
            XCTAssertEqual(withEMA.scalars, withoutGrad { gan.generator(z) }.scalars, "\(kind): sample() uses the generator_ema weights")
        }
    }

    /// `alternating-fresh` (the reference scripts' step): the D update is the alternating one,
    /// the G update uses its own z (so G's weights differ after one step while D's agree), and a
    /// stopped and resumed run reproduces the uninterrupted one.
    func testAlternatingFreshDrawsItsOwnZAndResumesExactly() throws {
        var config = try options("x").model.gan!
        config.emaDecay = nil
        var rng = RandomGenerator(seed: 9)
        let real = Tensor.randomUniform([32, config.dataDim], low: -1, high: 1, using: &rng)
        let z = Tensor.randomNormal([32, config.noiseDim], using: &rng)
        func oneStep(_ update: UpdateOrder) -> GAN {
            var c = config
            c.update = update
            var r = RandomGenerator(seed: 4)
            let gan = GAN(config: c, rng: &r)
            Optimization(model: gan, settings: c.optimization, seed: c.seed).step(TrainingBatch(x: real, z: z, labels: nil))
            return gan
        }
        let same = oneStep(.alternating), fresh = oneStep(.alternatingFresh)
        XCTAssertEqual(same.discriminator.parameters.map(\.value.scalars), fresh.discriminator.parameters.map(\.value.scalars))
        XCTAssertNotEqual(same.generator.parameters[0].value.scalars, fresh.generator.parameters[0].value.scalars)

        func configured(_ name: String) throws -> TrainOptions {
            var o = try options(name)
            var g = o.model.gan!
            g.update = .alternatingFresh
            o.model = .gan(g)
            return o
        }
        let a = try configured("fresh-a")
        _ = try Trainer(options: a).run()
        try assertStopAndResumeMatches(a, try configured("fresh-b"), stopAt: 33, "alternating-fresh")
    }

    /// The VAE through the trainer: run files, exact resume, and `evaluate`'s likelihood
    /// bounds (the IWAE bound is tighter than the ELBO; both finite and positive).
    func testVAERunResumesExactlyAndEvaluatesBounds() throws {
        func vaeOptions(_ name: String) throws -> TrainOptions {
            var o = try options(name, epochs: 3)
            var v = VAEConfig.mlpPreset
            v.encoderHidden = [32]; v.decoderHidden = [32]; v.latentDim = 4; v.batchSize = 50; v.epochs = 3; v.seed = 3
            o.model = .vae(v)
            return o
        }
        let a = try vaeOptions("vae-a")
        let full = try Trainer(options: a).run()
        XCTAssertEqual(full.last.map { $0.values.map(\.name) }, ["loss", "reconstruction", "kl"])
        XCTAssertEqual(try Checkpoint.read(path: a.runDirectory + "/checkpoints/latest.safetensors").model.stepStatisticNames,
                       ["loss", "reconstruction", "kl"], "the names a carried logging window is checked against")
        let ta = try assertStopAndResumeMatches(a, try vaeOptions("vae-b"), stopAt: 50, "VAE")
        XCTAssertNotNil(ta["encoder.0.weight"]); XCTAssertNotNil(ta["decoder.2.weight"]); XCTAssertNotNil(ta["optimizer.0.exp_avg"])
        let config = try String(contentsOfFile: a.runDirectory + "/config.json", encoding: .utf8)
        XCTAssert(config.contains("\"family\" : \"vae\""), config)
        var e = EvaluateOptions(checkpoint: a.runDirectory + "/checkpoints/latest.safetensors")
        e.metrics = ["elbo"]
        e.iwaeK = 200
        let out = try Evaluator.run(e, log: { _ in })
        let r = (out.report["metrics"] as! [String: Any])["elbo"] as! [String: Any]
        let elbo = r["negative_elbo_nats"] as! Double, iwae = r["iwae_nats"] as! Double
        XCTAssert(elbo.isFinite && elbo > 0 && iwae > 0, "\(r)")
        XCTAssertLessThan(iwae, elbo, "the IWAE bound is at least as tight as the ELBO")
        XCTAssertGreaterThan(iwae, elbo - 10, "and close to it for a small latent space")
        // A GAN run has no likelihood bound to report.
        let g = try options("gan-for-elbo", epochs: 1)
        _ = try Trainer(options: g).run()
        var eg = EvaluateOptions(checkpoint: g.runDirectory + "/checkpoints/latest.safetensors")
        eg.metrics = ["elbo"]
        XCTAssertThrowsError(try Evaluator.run(eg, log: { _ in })) { XCTAssertEqual(($0 as? ConfigError)?.option, "--metrics") }
    }

    /// The metric line without its timing fields.
    func strip(_ line: Substring) -> String {
        var obj = (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
        obj["samples_per_sec"] = nil
        obj["d_loss"] = (obj["d_loss"] as? Double).map { String(format: "%.6f", $0) }
        return "\(obj["step"] ?? "") \(obj["d_loss"] ?? "") \(obj["g_loss"] ?? "")"
    }

    func testSameSeedSameResultOtherSeedDiffers() throws {
        var a = try options("s1", epochs: 1), b = try options("s2", epochs: 1), c = try options("s3", epochs: 1, seed: 4)
        a.sampleEvery = 0; b.sampleEvery = 0; c.sampleEvery = 0
        for o in [a, b, c] { _ = try Trainer(options: o).run() }
        let ta = try tensors(a.runDirectory + "/checkpoints/latest.safetensors")
        let tb = try tensors(b.runDirectory + "/checkpoints/latest.safetensors")
        let tc = try tensors(c.runDirectory + "/checkpoints/latest.safetensors")
        XCTAssertEqual(ta["generator.0.weight"]!.scalars, tb["generator.0.weight"]!.scalars)
        XCTAssertNotEqual(ta["generator.0.weight"]!.scalars, tc["generator.0.weight"]!.scalars)
    }

    /// `--threads 2` splits products, optimiser and EMA updates and convolution passes across
    /// the pool (thresholds lowered so every op of this small model splits); the weights must
    /// be bit-identical to the one-thread run's.
    func testTwoThreadsGiveTheSameWeightsAsOne() throws {
        let (gemm, elementwise) = (Parallel.gemmSplitFLOPs, Parallel.elementwiseSplitCount)
        defer { Parallel.gemmSplitFLOPs = gemm; Parallel.elementwiseSplitCount = elementwise; Parallel.setThreads(1) }
        Parallel.gemmSplitFLOPs = 1
        Parallel.elementwiseSplitCount = 16
        // Layers wide enough (64 rows or columns) that the products are cut into blocks.
        func wide(_ name: String) throws -> TrainOptions {
            try options(name, epochs: 1, generatorHidden: [128, 1024], discriminatorHidden: [1024, 128])
        }
        var one = try wide("t1"), two = try wide("t2")
        one.sampleEvery = 0; two.sampleEvery = 0
        two.threads = 2
        for o in [one, two] { _ = try Trainer(options: o).run() }
        let t1 = try tensors(one.runDirectory + "/checkpoints/latest.safetensors")
        let t2 = try tensors(two.runDirectory + "/checkpoints/latest.safetensors")
        XCTAssertEqual(Set(t1.keys), Set(t2.keys))
        XCTAssertGreaterThan(t1.count, 20)
        for (k, v) in t1 { XCTAssertEqual(v.scalars, t2[k]!.scalars, "\(k) differs between 1 and 2 threads") }
        // The thread count is not part of the run: the checkpoint files are byte-identical.
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: one.runDirectory + "/checkpoints/latest.safetensors")),
                       try Data(contentsOf: URL(fileURLWithPath: two.runDirectory + "/checkpoints/latest.safetensors")))
    }

    func testBadOptionsAndFilesLeaveNoRunDirectory() throws {
        var bad: [TrainOptions] = []
        var o = try options("bad1"); o.model.batchSize = 5000; bad.append(o)           // larger than the data
        o = try options("bad2"); var g = o.model.gan!; g.beta1 = 1.5; o.model = .gan(g); bad.append(o)
        o = try options("bad3"); o.data = try sharedPath("cases/F05_truncated_8x3x4x4_f4.npy").path; bad.append(o)
        o = try options("bad4"); o.data = try sharedPath("cases/F31_missing_values.csv").path; bad.append(o)
        o = try options("bad5"); o.data = tmp.appendingPathComponent("nope.npy").path; bad.append(o)
        o = try options("bad6"); o.normalization = .symmetric; g = o.model.gan!; g.outputActivation = .sigmoid; o.model = .gan(g); bad.append(o)  // [0, 1] output vs [-1, 1] data
        o = try options("bad7"); o.logEvery = 0; bad.append(o)
        o = try options("bad8"); o.resume = true; bad.append(o)                         // nothing to resume
        o = try options("bad9"); o.data = try sharedPath("cases/F30_png_corrupt").path; bad.append(o)
        for o in bad {
            XCTAssertThrowsError(try Trainer(options: o).run(), o.runDirectory)
            XCTAssertFalse(FileManager.default.fileExists(atPath: o.runDirectory), "\(o.runDirectory) was left behind")
        }
        // An existing run is not overwritten without --overwrite.
        var ok = try options("exists", epochs: 1); ok.sampleEvery = 0
        _ = try Trainer(options: ok).run()
        XCTAssertThrowsError(try Trainer(options: ok).run()) { XCTAssert("\($0)".contains("already exists")) }
    }

    func testTrainsOnNpyImagesAndSamplesInDataUnits() throws {
        // A .npy of uint8 images [N, 1, 6, 6]: the generator learns in [-1, 1], samples come back in 0..255.
        var rng = RandomGenerator(seed: 1)
        let n = 96
        var bytes = [UInt8](repeating: 0, count: n * 36)
        for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: rng.next() % 256) }
        let header = "{'descr': '|u1', 'fortran_order': False, 'shape': (\(n), 1, 6, 6), }"
        var h = Array(header.utf8)
        while (10 + h.count + 1) % 64 != 0 { h.append(0x20) }
        h.append(0x0A)
        let file = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.count & 0xFF), UInt8(h.count >> 8)] + h + bytes
        let path = tmp.appendingPathComponent("imgs.npy").path
        _ = FileManager.default.createFile(atPath: path, contents: Data(file))
        var o = try options("npy", epochs: 3)
        o.data = path
        o.model.batchSize = 16
        _ = try Trainer(options: o).run()
        let loaded = try Checkpoint.read(path: o.runDirectory + "/checkpoints/latest.safetensors")
        XCTAssertEqual(loaded.run.imageShape, [1, 6, 6])
        XCTAssertEqual(loaded.run.normalization.high, 255)
        let samples = loaded.run.normalization.inverse(loaded.model.sample(z: Tensor.randomNormal([8, 16], using: &rng), labels: nil))
        XCTAssert(samples.scalars.allSatisfy { $0 >= -1e-3 && $0 <= 255.001 })
        XCTAssertGreaterThan(samples.maxValue - samples.minValue, 10)
    }
}

/// Every preset trains a few steps with finite losses, is deterministic for a seed, and its
/// checkpoint resumes exactly and samples in the data's units.
final class PresetTests: XCTestCase {
    func testEveryPresetTrainsResumesAndSamples() throws {
        let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("conjure-presets-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: tmp) }
        let mnist = try sharedPath("data/mnist_5k.csv.gz").path
        // wavegan models signals, not MNIST images: WaveGANCLITests resumes it on sine clips.
        for (name, preset) in GANConfig.presets.sorted(by: { $0.key < $1.key }) where preset.architecture != .wavegan {
            var config = preset
            config.batchSize = 16
            config.epochs = 1
            func options(_ run: String) -> TrainOptions {
                var o = TrainOptions(runDirectory: tmp.appendingPathComponent("\(name)-\(run)").path, model: config)
                o.data = mnist
                o.progress = .quiet
                o.sampleEvery = 0
                o.checkpointEvery = 0
                o.maxSteps = 12
                return o
            }
            let full = try Trainer(options: options("full")).run()
            XCTAssertEqual(full.steps, 12, name)
            XCTAssert(full.last.map { $0.firstNonFinite == nil && $0["d_loss"] != nil } ?? false, "\(name): finite losses")
            var a = options("split"); a.maxSteps = 7
            _ = try Trainer(options: a).run()
            a.maxSteps = 12; a.resume = true
            _ = try Trainer(options: a).run()
            let ca = try Checkpoint.read(path: full.runDirectory + "/checkpoints/latest.safetensors")
            let cb = try Checkpoint.read(path: a.runDirectory + "/checkpoints/latest.safetensors")
            let sa = Dictionary(uniqueKeysWithValues: ca.model.stateDict()), sb = Dictionary(uniqueKeysWithValues: cb.model.stateDict())
            XCTAssertEqual(Set(sa.keys), Set(sb.keys), name)
            for (k, v) in sa { XCTAssertEqual(v.scalars, sb[k]!.scalars, "\(name): \(k) differs after resume") }
            var rng = RandomGenerator(seed: 3)
            let samples = ca.run.normalization.inverse(ca.model.sample(z: Tensor.randomNormal([4, config.noiseDim], using: &rng), labels: ca.model.balancedLabels(4, offset: 0)))
            XCTAssertEqual(samples.shape, [4, 784], name)
            XCTAssert(samples.scalars.allSatisfy { $0 >= -0.01 && $0 <= 255.01 }, "\(name): samples in 0..255")
        }
    }
}
