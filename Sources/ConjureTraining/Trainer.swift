import Foundation
import ConjureData
import ConjureModels
import ConjureOptim
import ConjureMetrics

/// The training loop of any model family: batches, steps, logging, sample grids and checkpoints.
public final class Trainer {
    /// The options of this run (data, run directory, model, cadences, threads).
    public let options: TrainOptions
    let log: (String) -> Void

    /// A trainer for `options`; `log` receives each message line (default: standard error).
    public init(options: TrainOptions, log: @escaping (String) -> Void = { Console.error($0) }) {
        self.options = options
        self.log = log
    }

    var checkpointPath: String { options.runDirectory + "/checkpoints/latest.safetensors" }

    /// Runs training. Options and data are checked before anything is written, so a bad
    /// option or file leaves no run directory behind.
    public func run() throws -> TrainSummary {
        let o = options
        let start = Date()
        try o.model.validate()
        // The same bounds as a checkpoint's saved configuration (RunConfig.validate).
        try RunLimits.validate(logEvery: o.logEvery, sampleEvery: o.sampleEvery, checkpointEvery: o.checkpointEvery, evalEvery: o.evalEvery,
                               evalCount: o.evalCount, heldOutFraction: o.heldOutFraction, epochs: o.resumeEpochs,
                               syntheticCount: o.syntheticCount)
        if let m = o.maxSteps, m < 1 { throw ConfigError(option: "--max-steps", problem: "must be at least 1, got \(m)") }
        if (o.evalEvery ?? 0) > 0 && o.heldOutFraction == 0 && !o.resume { throw ConfigError(option: "--eval-every", problem: "needs a held-out split", hint: "drop --held-out 0") }
        if o.threads < 1 || o.threads > 64 { throw ConfigError(option: "--threads", problem: "must be between 1 and 64, got \(o.threads)") }
        if o.resume && o.overwrite { throw ConfigError(option: "--overwrite", problem: "cannot be combined with --resume") }

        let fm = FileManager.default
        // One writer per run: the lock is held until this function returns (the process's
        // life in the CLI); stale files of dead writers go first.
        let folder = try RunDirectory(target: o.runDirectory, log: log)
        defer { folder.lock.release() }
        var net: any GenerativeModel
        var optimization: Optimization
        var run: RunConfig
        var progress: TrainingProgress
        let data: PreparedData
        // A new run is built in a hidden staging folder beside the target and moved into place
        // once its first checkpoint is durable, so a run that fails early leaves nothing (and an
        // old run being replaced with --overwrite survives until then).
        if o.resume {
            guard fm.fileExists(atPath: checkpointPath) else {
                throw ConfigError(option: "--resume", problem: "no checkpoint at \(checkpointPath)",
                                  hint: fm.fileExists(atPath: o.runDirectory) ? "the run stopped before its first checkpoint; start it again with --overwrite" : "start the run without --resume")
            }
            let loaded = try Checkpoint.read(path: checkpointPath)
            (net, optimization, run, progress) = (loaded.model, loaded.optimization, loaded.run, loaded.progress)
            if let e = o.resumeEpochs { run.model.epochs = e }
            // The run's own cadences unless given again (then the new ones are kept for later resumes).
            if let v = o.logEvery { run.logEvery = v }
            if let v = o.sampleEvery { run.sampleEvery = v }
            if let v = o.checkpointEvery { run.checkpointEvery = v }
            if let v = o.evalEvery { run.evalEvery = v }
            if let v = o.evalCount { run.evalCount = v }
            if (run.evalEvery ?? 0) > 0 && run.heldOutFraction == 0 {
                throw ConfigError(option: "--eval-every", problem: "needs a held-out split; this run was trained with --held-out 0",
                                  hint: "resume without --eval-every, or with --eval-every 0")
            }
            var dataOptions = o
            dataOptions.data = run.data
            dataOptions.model = run.model
            dataOptions.normalization = run.normalization.kind
            dataOptions.fixedNormalization = run.normalization  // kept, not refitted (a --data-range is not re-given on resume)
            dataOptions.heldOutFraction = run.heldOutFraction
            dataOptions.layout = run.layout
            if let a = run.audio { dataOptions.audio = a }
            dataOptions.shape = run.dataSpec.map { $0.sampleShape.map(String.init).joined(separator: ",") }
            if let n = run.syntheticCount { dataOptions.syntheticCount = n }
            data = try PreparedData.load(dataOptions)
            if let saved = run.dataSHA256, let now = data.contentSHA256, saved != now {
                guard o.allowDataChange else {
                    throw DataError(file: run.data, problem: "the file's contents changed since the run started (SHA-256 \(now.prefix(12))..., the run recorded \(saved.prefix(12))...)",
                                    hint: "resume with the original file, or pass --allow-data-change to continue on the new contents deliberately")
                }
                log("note: \(run.data) changed since the run started; continuing on the new contents (--allow-data-change)")
                run.dataSHA256 = now
            }
            guard data.normalization == run.normalization, data.train.rows == run.trainSamples else {
                throw DataError(file: run.data, problem: "the data changed since the checkpoint was written (normalisation or sample count differ)",
                                hint: "resume with the same data file")
            }
            let perEpoch = BatchSampler(count: run.trainSamples, batchSize: run.model.batchSize, seed: run.model.seed).batchesPerEpoch
            guard progress.batchInEpoch < perEpoch, progress.step == progress.epoch * perEpoch + progress.batchInEpoch else {
                throw DataError(file: checkpointPath, location: "__metadata__",
                                problem: "step \(progress.step), epoch \(progress.epoch) and batch_in_epoch \(progress.batchInEpoch) do not agree with \(perEpoch) batches per epoch",
                                hint: "the checkpoint was edited; use one written by `conjure train`")
            }
            if let e = o.resumeEpochs, run.model.lrSchedule.kind != .constant, e != loaded.run.model.epochs {
                throw ConfigError(option: "--epochs", problem: "cannot change the length of a run with a \(run.model.lrSchedule.kind.rawValue) learning-rate schedule: the schedule would restart from a different curve",
                                  hint: "start a new run, or resume without --epochs")
            }
        } else {
            if fm.fileExists(atPath: o.runDirectory) && !o.overwrite {
                throw ConfigError(option: "--name", problem: "\(o.runDirectory) already exists",
                                  hint: "pass --resume to continue it, --overwrite to replace it, or choose another --name")
            }
            var model = o.model
            data = try PreparedData.load(o)
            try model.adapt(to: data.spec)
            if let text = data.text { model.adopt(vocabulary: text.vocabulary, mode: text.mode) }
            if model.config.isConditional {
                guard let labels = data.labels, let top = labels.max() else {
                    throw ConfigError(option: "--model \(model.preset)", problem: "a conditional model needs labelled data; \(data.source) has no labels",
                                      hint: "use an image CSV with a label column (--label-column) or IDX images with their labels file")
                }
                try checkClassIndices(labels, source: data.source, for: "a conditional model")
                model.conditionalClasses = top + 1
            }
            try model.validate()
            try model.validate(data: DataSummary(spec: data.spec, source: data.source, normalization: data.normalization.kind,
                                                 valueRange: data.train.valueRange ?? 0...0,
                                                 classes: data.labels.map { Set($0).count }))
            net = model.makeModel()
            optimization = Optimization(model: net, settings: model.optimization, seed: model.seed)
            let heldHash = data.heldOut.isEmpty ? nil : sha256Hex(data.heldOut.map(String.init).joined(separator: ","))
            // The data path is recorded absolute so evaluate and resume work from any directory.
            let source = Mixture2D(rawValue: data.source) != nil && !fm.fileExists(atPath: data.source)
                ? data.source : URL(fileURLWithPath: data.source).standardizedFileURL.path
            run = RunConfig(model: model, data: source, normalization: data.normalization, imageShape: data.imageShape, dataSpec: data.spec,
                            trainSamples: data.train.rows, heldOutFraction: o.heldOutFraction, heldOutIndicesSHA256: heldHash,
                            logEvery: o.logEvery ?? 50, sampleEvery: o.sampleEvery ?? 1000, checkpointEvery: o.checkpointEvery ?? 1000)
            run.evalEvery = o.evalEvery ?? 0
            run.evalCount = o.evalCount ?? 2000
            if Mixture2D(rawValue: data.source) != nil { run.syntheticCount = o.syntheticCount }
            run.dataSHA256 = data.contentSHA256
            run.layout = o.layout
            run.audio = data.audio
            progress = TrainingProgress(step: 0, epoch: 0, batchInEpoch: 0, noiseRNG: RandomStream.latent.generator(seed: model.seed))
            try folder.stage()
        }
        do {
            if !o.resume { try AtomicFile.write(try run.jsonData(), to: folder.current + "/config.json", createDirectories: true) }
            return try train(net: net, optimization: optimization, run: run, progress: &progress, data: data, folder: folder, start: start)
        } catch {
            throw folder.discard(after: error)
        }
    }

    /// The training loop proper; files go to `folder.current` (the staging folder until promoted).
    private func train(net: any GenerativeModel, optimization: Optimization, run: RunConfig, progress: inout TrainingProgress, data: PreparedData,
                       folder: RunDirectory, start: Date) throws -> TrainSummary {
        let o = options
        if data.dropped > 0 { log("cleaning: dropped \(data.dropped) samples with missing or non-finite values from \(data.source)") }
        for note in data.notes { log("data: \(note)") }
        // More threads than cores only adds contention (the pool's threads spin briefly).
        let cores = Parallel.availableCores
        let threads = min(o.threads, cores)
        Parallel.setThreads(threads)
        Allocator.keepFreedBuffers()
        Allocator.releaseFreePages()  // the loader's temporaries (file text, unnormalised copies)
        let model = run.model
        let logEvery = run.logEvery, sampleEvery = run.sampleEvery, checkpointEvery = run.checkpointEvery
        let evalEvery = run.evalEvery ?? 0, evalCount = run.evalCount ?? 2000
        let sampler = BatchSampler(count: data.train.rows, batchSize: model.batchSize, seed: model.seed)
        let perEpoch = sampler.batchesPerEpoch
        let totalSteps = perEpoch * model.epochs
        let stopAt = min(totalSteps, o.maxSteps ?? totalSteps)
        var fixedRNG = RandomStream.fixedLatent.generator(seed: model.seed)
        let fixedZ = Tensor.randomNormal([64, model.latentDim], using: &fixedRNG)
        let sampleWriter = SampleWriter.training(for: run)
        if sampleWriter == nil, case .image(let c, _, _) = run.spec {
            log("note: no sample grids: a PNG holds 1 to 4 channels and the data has \(c) channels; use `conjure sample --out X.npy`")
        }

        let metricsPath = folder.current + "/metrics.jsonl"
        // On resume, drop log lines past the checkpoint (a run stopped between checkpoints), and
        // the line of a logging window the checkpoint carries on (a run stopped off the
        // --log-every grid). A measurement at the stop step off the --eval-every grid goes too.
        // A resume with nothing to train keeps every line.
        if o.resume {
            let continues = progress.step < stopAt
            try MetricsLog.truncate(metricsPath, after: progress.step,
                                    dropTrainingLineAtStep: continues && progress.logWindow != nil,
                                    dropEvalLineAtStep: continues && (evalEvery == 0 || progress.step % evalEvery != 0))
        }
        let metrics = try MetricsLog(path: metricsPath)
        let events = o.tensorboard ? try TrainingEvents(run: run, folder: folder.current, sampleExtension: sampleWriter?.fileExtension, resumeStep: o.resume ? progress.step : nil, log: log) : nil

        var written: Set<String> = events.map { [o.runDirectory + "/" + $0.fileName] } ?? []
        /// Writes the checkpoint into the current folder, then (a new run) promotes the staging
        /// folder: the run appears under its name only with a durable checkpoint.
        var lastCheckpointStep: Int? = o.resume ? progress.step : nil
        func checkpoint(_ p: TrainingProgress) throws {
            // Parameters and optimiser state (not only the losses) must be finite: a checkpoint
            // with an inf in exp_avg_sq would be refused by sample and --resume.
            if let bad = NumericHealth.firstNonFinite(model: net, optimization: optimization) {
                throw TrainingError(step: p.step, problem: "tensor '\(bad.name)' became non-finite (element \(bad.index) is \(bad.value)); training diverged",
                                    hint: "lower the learning rates or check the data; "
                                        + (lastCheckpointStep.map { "the last checkpoint (step \($0)) is kept" } ?? "no checkpoint was written"))
            }
            try Checkpoint.write(model: net, optimization: optimization, run: run, progress: p, to: folder.current + "/checkpoints/latest.safetensors")
            // A resume may change the epochs and cadences: config.json follows the checkpoint.
            if o.resume { try AtomicFile.write(try run.jsonData(), to: folder.current + "/config.json", createDirectories: true) }
            try folder.promote()
            try events?.flush()
            lastCheckpointStep = p.step
            written.insert(checkpointPath)
        }

        let evaluator = evalEvery > 0 ? try InTrainingEvaluator(run: run, heldOut: data.heldOut, runDirectory: folder.current, shownDirectory: o.runDirectory,
                                                                   count: evalCount, seed: model.seed, log: log) : nil
        if evaluator?.trainedClassifier == true { written.insert(Evaluator.classifierPath(runDirectory: o.runDirectory)) }
        let reporter = ProgressReporter(style: o.progress, totalSteps: stopAt, startStep: progress.step, log: log)
        if o.progress != .quiet {
            log("training \(model.preset) on \(data.source): \(data.train.rows) samples x \(data.train.width) features, "
                + "batch \(model.batchSize), \(perEpoch) steps/epoch, \(model.epochs) epochs (\(totalSteps) steps), threads \(threads)" + (threads < o.threads ? " (\(o.threads) asked; \(cores) cores)" : "")
                + ", backend \(MatrixBackend.current.name)"
                + (progress.step > 0 ? ", resuming at step \(progress.step)" : ""))
        }
        if progress.step >= stopAt && progress.step > 0 {
            // Shown even with --quiet: the command did nothing the user may have expected.
            log("note: the run is already at step \(progress.step), at or past the \(stopAt) steps asked"
                + (o.maxSteps.map { $0 < totalSteps ? " (--max-steps \($0))" : "" } ?? "") + "; nothing to train")
        }

        // Token models: the held-out loss (nats per character, every held-out row) joins the log
        // line of every --sample-every step and of the last step.
        let heldOutText: (model: any TokenSequenceModel, rows: Tensor)? = try {
            guard let ds = data.text, let m = net as? any TokenSequenceModel else { return nil }
            return (m, try heldOutTextRows(ds, rowLength: m.rowLength, source: data.source))
        }()

        Interrupt.install()
        defer { Interrupt.uninstall() }
        var window = MetricsWindow(carried: progress.logWindow)
        /// The open window (nil when empty), or the one just logged when the run stops off the grid.
        var stopWindow: LogWindow?
        func openWindow() -> LogWindow? { window.saved ?? stopWindow }
        func withWindow(_ p: TrainingProgress) -> TrainingProgress {
            var p = p
            p.logWindow = openWindow()
            return p
        }
        var last: StepMetrics?
        var recentWindows: [[(name: String, value: Double)]] = []
        var diagnosed = false  // a family's warning is printed once
        var startup: Double?
        var interrupted = false
        training: while progress.step < stopAt {
            let batches = sampler.batches(epoch: progress.epoch)
            while progress.batchInEpoch < batches.count && progress.step < stopAt {
                if Interrupt.requested { interrupted = true; break training }
                let idx = batches[progress.batchInEpoch]
                let real = data.train.gathered(rows: idx)
                let z = Tensor.randomNormal([idx.count, model.latentDim], using: &progress.noiseRNG)
                optimization.applySchedule(step: progress.step, totalSteps: totalSteps)
                let stats = optimization.step(TrainingBatch(x: real, z: z, labels: model.conditionalClasses > 0 ? idx.map { data.labels![$0] } : nil))
                if let bad = stats.firstNonFinite {
                    // Steps are numbered as in metrics.jsonl: this is step progress.step + 1.
                    throw TrainingError(step: progress.step + 1, problem: "the losses became non-finite (\(stats.values.map { "\($0.name) \($0.value)" }.joined(separator: ", "))); first \(bad.name)",
                                        hint: "lower the learning rates or check the data; "
                                            + (lastCheckpointStep.map { "the last checkpoint (step \($0)) is kept" } ?? "no checkpoint was written"))
                }
                // Parameters and optimiser state can overflow while the losses stay finite (an inf
                // exp_avg_sq): checked every step (a scan, cheap next to the step) so the step
                // named is the one that went bad.
                if let bad = NumericHealth.firstNonFinite(model: net, optimization: optimization) {
                    throw TrainingError(step: progress.step + 1, problem: "tensor '\(bad.name)' became non-finite (element \(bad.index) is \(bad.value)); training diverged",
                                        hint: "lower the learning rates or check the data; "
                                            + (lastCheckpointStep.map { "the last checkpoint (step \($0)) is kept" } ?? "no checkpoint was written"))
                }
                last = stats
                if startup == nil { startup = processUptime() }
                progress.step += 1
                progress.batchInEpoch += 1
                window.add(stats)
                let epochDone = progress.batchInEpoch == batches.count

                if progress.step % logEvery == 0 || progress.step == stopAt {
                    if progress.step % logEvery != 0 { stopWindow = window.saved }
                    let (means, samplesPerSec) = window.close(batchSize: model.batchSize)
                    var record: [String: Any] = [
                        "step": progress.step, "epoch": Double(progress.step) / Double(perEpoch),
                        "samples_per_sec": samplesPerSec,
                    ]
                    for m in means { record[m.name] = m.value }
                    if let h = heldOutText, sampleEvery > 0 && progress.step % sampleEvery == 0 || progress.step == stopAt {
                        let (nats, n) = h.model.negativeLogLikelihood(rows: h.rows)
                        let loss = nats / Double(max(n, 1))
                        record["held_out_loss"] = loss
                        if o.progress != .quiet { log(String(format: "step %d  held-out loss %.4f nats/char (%d predictions)", progress.step, loss, n)) }
                    }
                    try metrics.append(record)
                    try events?.scalars(record)
                    if !diagnosed, let d = net as? any TrainingDiagnosis {
                        recentWindows = Array((recentWindows + [means]).suffix(4))
                        if let warning = d.diagnose(windows: recentWindows) { log(warning); diagnosed = true }
                    }
                    reporter.report(step: progress.step, epoch: Double(progress.step) / Double(perEpoch),
                                    losses: Array(means.prefix(net.lossStatisticCount)),
                                    samplesPerSec: samplesPerSec)
                }
                if let ev = evaluator, progress.step % evalEvery == 0 || progress.step == stopAt {
                    var record = try ev.measure(net)
                    record["step"] = progress.step
                    record["epoch"] = Double(progress.step) / Double(perEpoch)
                    record["wall_seconds"] = Date().timeIntervalSince(start)
                    try metrics.append(record)
                    try events?.scalars(record)
                    if o.progress != .quiet { log(InTrainingEvaluator.consoleLine(record)) }
                }
                if sampleEvery > 0 && progress.step % sampleEvery == 0, let writer = sampleWriter {
                    let path = String(format: "/samples/step-%06d.", progress.step) + writer.fileExtension
                    try writer.write(net.sample(z: fixedZ, labels: net.balancedLabels(64, offset: 0)), run.spec, run.normalization, folder.current + path)
                    written.insert(o.runDirectory + path)
                    try events?.samples(at: folder.current + path, step: progress.step)
                }
                if checkpointEvery > 0 && progress.step % checkpointEvery == 0 && progress.step < stopAt {
                    try checkpoint(withWindow(epochDone ? progress.nextEpoch() : progress))
                    _ = writeReport(folder: folder.current, model: net, run: run)
                }
            }
            // A new epoch reshuffles: order depends only on (seed, epoch), so a resumed run
            // continues with the same batches.
            if progress.batchInEpoch == batches.count { progress = progress.nextEpoch() }
        }
        reporter.finish()
        try checkpoint(withWindow(progress))
        // The final grid of wherever training stopped: the end, --max-steps or an interrupt.
        if let writer = sampleWriter {
            let path = o.runDirectory + "/samples/final." + writer.fileExtension
            try writer.write(net.sample(z: fixedZ, labels: net.balancedLabels(64, offset: 0)), run.spec, run.normalization, path)
            written.insert(path)
            if writer.writesClipFolder { written.insert((path as NSString).deletingPathExtension + "/") }
            try events?.samples(at: path, step: progress.step, final: true)
        }
        if let report = writeReport(folder: folder.current, model: net, run: run) { written.insert(o.runDirectory + "/" + (report as NSString).lastPathComponent) }
        if interrupted { log("interrupted at step \(progress.step): checkpoint written; continue with --resume") }
        return TrainSummary(runDirectory: o.runDirectory, steps: progress.step, epochs: Double(progress.step) / Double(max(perEpoch, 1)),
                            seconds: Date().timeIntervalSince(start), last: last, files: written.sorted(), interrupted: interrupted,
                            startupSeconds: startup)
    }
}
