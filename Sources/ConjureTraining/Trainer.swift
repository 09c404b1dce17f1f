import Foundation
import ConjureData
import ConjureModels
import ConjureOptim
import ConjureMetrics

/// Options of `conjure train` beyond the model configuration.
public struct TrainOptions: Sendable {
    /// The data file or PNG folder; nil looks in `dataDirectory` (see ``DataFetch/defaultDataPath(in:)``).
    public var data: String?
    public var dataDirectory: String = "data"
    /// The run directory, e.g. `runs/demo`.
    public var runDirectory: String
    public var model: ModelConfig
    /// Normalisation; nil picks the one matching the generator's output (tanh: symmetric,
    /// sigmoid: unit, identity: zscore).
    public var normalization: Normalization?
    /// The data's value range for symmetric/unit scaling, overriding detection.
    public var dataRange: ClosedRange<Float>?
    public var clean: CleanPolicy = .error
    /// CSV label column; nil means the last column for image CSVs with D = s² + 1 columns
    /// (the MNIST and digits CSVs), no labels otherwise.
    public var labelColumn: ColumnSelector?
    /// Fraction of the data kept out of training for evaluation (stratified by label, seeded).
    public var heldOutFraction: Double = 0.1
    /// Samples generated for a built-in synthetic data set (ring8, grid25, moons).
    public var syntheticCount: Int = 50_000
    /// Steps between metrics.jsonl lines. This and the other cadences below: nil means the
    /// default for a new run (50, 1000, 1000, 0, 2000) and the run's own on `resume`.
    public var logEvery: Int?
    /// Steps between sample grids (0: only the final grid).
    public var sampleEvery: Int?
    /// Steps between periodic checkpoints (`latest.safetensors` is also written at the end).
    public var checkpointEvery: Int?
    /// Stop after this many steps in total (the run can be resumed later).
    public var maxSteps: Int?
    public var resume = false
    /// Replace an existing run directory.
    public var overwrite = false
    /// With `resume`: a new total epoch count (to train a finished run further).
    public var resumeEpochs: Int?
    public var threads: Int = 1
    /// Steps between FID/KID measurements against the held-out split, logged to
    /// metrics.jsonl (0: never).
    public var evalEvery: Int?
    /// Samples drawn for each in-training measurement.
    public var evalCount: Int?
    /// Progress output: a live line on a terminal, plain lines otherwise, or nothing.
    public var progress: ProgressStyle = .automatic

    public enum ProgressStyle: Sendable, Equatable { case automatic, lines, live, quiet }

    public init(runDirectory: String, model: ModelConfig) {
        self.runDirectory = runDirectory
        self.model = model
    }

    public init(runDirectory: String, model: GANConfig) {
        self.init(runDirectory: runDirectory, model: .gan(model))
    }
}

/// The outcome of a training run.
public struct TrainSummary: Sendable {
    public var runDirectory: String
    public var steps: Int
    /// Epochs completed (fractional).
    public var epochs: Double
    public var seconds: Double
    /// Statistics of the last step (`d_loss`, `g_loss`, ... for a GAN).
    public var last: StepMetrics?
    public var files: [String]
    /// True when SIGINT/SIGTERM stopped training early (a checkpoint was written).
    public var interrupted: Bool
    /// Seconds from process start to the end of this run's first training step (Linux
    /// `/proc`), nil when no step ran.
    public var startupSeconds: Double? = nil
}

/// Seconds since this process started (from `/proc/self/stat` and `/proc/uptime`; NaN where
/// they cannot be read).
public func processUptime() -> Double {
    // /proc/self/stat field 22 is the start time in clock ticks since boot.
    guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
          let uptimeText = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return .nan }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 19, let ticks = Double(fields[19]), let up = Double(uptimeText.split(separator: " ")[0]) else { return .nan }
    return up - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// SIGINT/SIGTERM during training: finish the current step, write a checkpoint, stop.
enum Interrupt {
    nonisolated(unsafe) static var flag: sig_atomic_t = 0
    static var requested: Bool { flag != 0 }

    static func install() {
        flag = 0
        signal(SIGINT) { _ in Interrupt.flag = 1 }
        signal(SIGTERM) { _ in Interrupt.flag = 1 }
    }

    static func uninstall() {
        signal(SIGINT, SIG_DFL)
        signal(SIGTERM, SIG_DFL)
    }
}

/// Loads, checks and normalises training data for a GAN whose samples are flat vectors.
public struct PreparedData {
    public var train: Tensor              // [N, D], normalised
    public var labels: [Int]?
    public var normalization: NormalizationStats
    public var imageShape: [Int]?
    public var source: String
    public var heldOut: [Int]
    public var dropped: Int

    /// - Throws: ``DataError`` for unreadable or invalid data, ``ConfigError`` for options that
    ///   do not fit the data.
    /// Loads the data file (or generates a built-in synthetic set: ring8, grid25, moons),
    /// picks up labels, and flattens samples to `[N, D]` (raw units).
    public static func loadDataset(_ o: TrainOptions) throws -> Dataset {
        guard let path = o.data ?? DataFetch.defaultDataPath(in: o.dataDirectory) else {
            throw ConfigError(option: "--data", problem: "no data given and none found in \(o.dataDirectory)/",
                              hint: "pass --data FILE, or run `conjure data fetch mnist` to get the 5000-image MNIST subset")
        }
        if let mix = Mixture2D(rawValue: path), !FileManager.default.fileExists(atPath: path) {
            var rng = RandomGenerator(seed: o.model.seed, stream: 0x5EED)
            return Dataset(samples: mix.sample(n: o.syntheticCount, rng: &rng), source: path, format: .npy)
        }
        var options = DatasetOptions(labelColumn: o.labelColumn, clean: o.clean, declaredRange: o.dataRange)
        let format = try Dataset.detectFormat(path: path)
        if o.labelColumn != nil && format != .csv {
            throw ConfigError(option: "--label-column", problem: "applies to CSV files only; \(path) is \(format.rawValue)")
        }
        if format == .csv && o.labelColumn == nil, let named = try CSVReader.namedLabelColumn(path: path) { options.labelColumn = named }
        if format == .csv && options.labelColumn == nil {
            // Parse once for the common case, an image CSV whose last column is the label
            // (MNIST): the load with that label column is kept when its shape and integer values
            // meet ``defaultCSVLabelColumn(path:)``'s rule; otherwise the file is probed first.
            var last = options
            last.labelColumn = .last
            if let ds = try? Dataset.load(path: path, options: last), ds.samples.rank == 2 {
                let pixels = ds.samples.shape[1], side = Int(Double(pixels).squareRoot().rounded())
                let integers = ds.samples.scalars.withUnsafeBufferPointer { b in
                    var all = true
                    for v in b where !(abs(v) < 8e6 ? Float(Int32(v)) == v : v == v.rounded()) { all = false; break }
                    return all
                }
                if pixels > 1 && side * side == pixels && integers { return ds }
            }
            options.labelColumn = try defaultCSVLabelColumn(path: path)
        }
        return try Dataset.load(path: path, options: options)
    }

    /// The label column of an image CSV: the last column when a row has `s*s + 1` integer
    /// columns (MNIST 785, the 8x8 digits 65), else none.
    public static func defaultCSVLabelColumn(path: String) throws -> ColumnSelector? {
        if let named = try CSVReader.namedLabelColumn(path: path) { return named }
        let probe = try CSVReader.read(path: path, options: CSVOptions(delimiter: CSVOptions.delimiter(forPath: path), labelColumn: nil, clean: .drop))
        let cols: Int = probe.values.rank == 2 ? probe.values.shape[1] : 0
        let pixels: Int = Swift.max(cols - 1, 0)
        let side = Int(Double(pixels).squareRoot().rounded())
        return cols > 2 && side * side == pixels && probe.allIntegers ? .last : nil
    }

    /// - Throws: ``DataError`` for unreadable or invalid data, ``ConfigError`` for options that
    ///   do not fit the data.
    public static func load(_ o: TrainOptions) throws -> PreparedData {
        var dataset = try loadDataset(o)
        let path = dataset.source
        let kind = o.normalization ?? {
            switch o.model.outputActivation {
            case .tanh: return .symmetric
            case .sigmoid: return .unit
            case .identity: return .zscore
            }
        }()
        switch (kind, o.model.outputActivation) {
        case (.symmetric, .sigmoid), (.zscore, .sigmoid), (.zscore, .tanh), (.none, .tanh), (.none, .sigmoid):
            if let v = o.model.vae {
                throw ConfigError(option: "--normalize", problem: "\(kind.rawValue) data does not suit the \(v.likelihood.rawValue) likelihood of --model \(v.preset)",
                                  hint: v.likelihood == .bernoulli ? "use --normalize unit, or --likelihood gaussian" : "use --normalize zscore, unit or none")
            }
            throw ConfigError(option: "--normalize", problem: "\(kind.rawValue) data cannot be matched by a \(o.model.outputActivation.rawValue) generator output",
                              hint: "use symmetric with tanh, unit with sigmoid, zscore or none with identity")
        default: break
        }
        let imageShape = dataset.inferredImageShape
        dataset = dataset.flattened()
        let stats = NormalizationStats.fit(kind, dataset: dataset, range: o.dataRange)
        var heldOut: [Int] = []
        var trainIdx = Array(0..<dataset.count)
        if o.heldOutFraction > 0 {
            (trainIdx, heldOut) = dataset.splitHeldOut(fraction: o.heldOutFraction, seed: o.model.seed)
        }
        let train = dataset.subset(trainIdx)
        if train.count < o.model.batchSize {
            throw ConfigError(option: "--batch-size", problem: "\(o.model.batchSize) is larger than the \(train.count) training samples in \(path)",
                              hint: "use a smaller batch size")
        }
        return PreparedData(train: stats.apply(train.samples), labels: train.labels, normalization: stats,
                            imageShape: imageShape, source: path, heldOut: heldOut, dropped: dataset.droppedSamples)
    }
}

/// The training loop of any model family: batches, steps, logging, sample grids and checkpoints.
public final class Trainer {
    public let options: TrainOptions
    let log: (String) -> Void

    public init(options: TrainOptions, log: @escaping (String) -> Void = { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }) {
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
        if let v = o.logEvery, v < 1 { throw ConfigError(option: "--log-every", problem: "must be at least 1, got \(v)") }
        if let v = o.sampleEvery, v < 0 { throw ConfigError(option: "--sample-every", problem: "must be non-negative, got \(v)") }
        if let v = o.checkpointEvery, v < 0 { throw ConfigError(option: "--checkpoint-every", problem: "must be non-negative, got \(v)") }
        if let m = o.maxSteps, m < 1 { throw ConfigError(option: "--max-steps", problem: "must be at least 1, got \(m)") }
        if let e = o.resumeEpochs, e < 1 { throw ConfigError(option: "--epochs", problem: "must be at least 1, got \(e)") }
        if !(0..<1).contains(o.heldOutFraction) { throw ConfigError(option: "--held-out", problem: "must be in [0, 1), got \(o.heldOutFraction)") }
        if let v = o.evalEvery, v < 0 { throw ConfigError(option: "--eval-every", problem: "must be non-negative, got \(v)") }
        if (o.evalEvery ?? 0) > 0 && o.heldOutFraction == 0 && !o.resume { throw ConfigError(option: "--eval-every", problem: "needs a held-out split", hint: "drop --held-out 0") }
        if let v = o.evalCount, v < 2 { throw ConfigError(option: "--eval-count", problem: "must be at least 2, got \(v)") }
        if o.threads < 1 || o.threads > 64 { throw ConfigError(option: "--threads", problem: "must be between 1 and 64, got \(o.threads)") }
        if o.resume && o.overwrite { throw ConfigError(option: "--overwrite", problem: "cannot be combined with --resume") }

        let fm = FileManager.default
        var net: any GenerativeModel
        var run: RunConfig
        var progress: TrainingProgress
        let data: PreparedData
        // A new run is built in a hidden staging folder beside the target and moved into place
        // at its first checkpoint, so a run that fails early leaves nothing (and an old run
        // being replaced with --overwrite survives until then).
        var dir = o.runDirectory
        var staging: String?
        if o.resume {
            guard fm.fileExists(atPath: checkpointPath) else {
                throw ConfigError(option: "--resume", problem: "no checkpoint at \(checkpointPath)",
                                  hint: fm.fileExists(atPath: o.runDirectory) ? "the run stopped before its first checkpoint; start it again with --overwrite" : "start the run without --resume")
            }
            let loaded = try Checkpoint.read(path: checkpointPath)
            (net, run, progress) = (loaded.model, loaded.run, loaded.progress)
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
            dataOptions.heldOutFraction = run.heldOutFraction
            if let n = run.syntheticCount { dataOptions.syntheticCount = n }
            data = try PreparedData.load(dataOptions)
            guard data.normalization == run.normalization, data.train.shape[0] == run.trainSamples else {
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
            model.dataDim = data.train.shape[1]
            if model.needsImages { model.imageShape = data.imageShape }
            if model.conditionalClasses > 0 {
                guard let labels = data.labels, let top = labels.max() else {
                    throw ConfigError(option: "--model \(model.preset)", problem: "a conditional GAN needs labelled data; \(data.source) has no labels",
                                      hint: "use an image CSV with a label column (--label-column) or IDX images with their labels file")
                }
                let present = Set(labels)
                if present.count != top + 1 || labels.contains(where: { $0 < 0 }) {
                    let missing = (0...max(top, 0)).filter { !present.contains($0) }.prefix(5).map(String.init).joined(separator: ", ")
                    throw DataError(file: data.source, problem: "a conditional model needs class labels 0..K-1 that all occur; the labels run to \(top) but \(missing.isEmpty ? "some are negative" : "\(missing)... never occur")",
                                    hint: "renumber the classes 0..K-1")
                }
                model.conditionalClasses = top + 1
            }
            try model.validate()
            if let v = model.vae, v.likelihood == .bernoulli,
               let bad = data.train.scalars.first(where: { !($0 >= 0 && $0 <= 1) }) {
                throw ConfigError(option: o.dataRange != nil ? "--data-range" : "--normalize",
                                  problem: "the Bernoulli likelihood of --model \(v.preset) needs data in [0, 1]; \(data.source) scales to values such as \(bad)",
                                  hint: "use --normalize unit with the data's true range, or --likelihood gaussian")
            }
            var rng = RandomGenerator(seed: model.seed)
            net = model.makeModel(rng: &rng)
            let heldHash = data.heldOut.isEmpty ? nil : sha256Hex(data.heldOut.map(String.init).joined(separator: ","))
            // The data path is recorded absolute so evaluate and resume work from any directory.
            let source = Mixture2D(rawValue: data.source) != nil && !fm.fileExists(atPath: data.source)
                ? data.source : URL(fileURLWithPath: data.source).standardizedFileURL.path
            run = RunConfig(model: model, data: source, normalization: data.normalization, imageShape: data.imageShape,
                            trainSamples: data.train.shape[0], heldOutFraction: o.heldOutFraction, heldOutIndicesSHA256: heldHash,
                            logEvery: o.logEvery ?? 50, sampleEvery: o.sampleEvery ?? 1000, checkpointEvery: o.checkpointEvery ?? 1000)
            run.evalEvery = o.evalEvery ?? 0
            run.evalCount = o.evalCount ?? 2000
            if Mixture2D(rawValue: data.source) != nil { run.syntheticCount = o.syntheticCount }
            progress = TrainingProgress(step: 0, epoch: 0, batchInEpoch: 0, noiseRNG: RandomGenerator(seed: model.seed, stream: 1))
            let parent = (o.runDirectory as NSString).deletingLastPathComponent
            let name = (o.runDirectory as NSString).lastPathComponent
            let stage = (parent.isEmpty ? "." : parent) + "/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            staging = stage
            dir = stage
            try AtomicFile.write(try run.jsonData(), to: stage + "/config.json", createDirectories: true)
        }
        do {
            return try train(net: net, run: run, progress: &progress, data: data, dir: &dir, staging: &staging, start: start)
        } catch {
            if let staging { try? fm.removeItem(atPath: staging) }
            throw error
        }
    }

    /// The training loop proper; `dir` is where files go (the staging folder until promoted).
    private func train(net: any GenerativeModel, run: RunConfig, progress: inout TrainingProgress, data: PreparedData, dir: inout String,
                       staging: inout String?, start: Date) throws -> TrainSummary {
        let o = options
        let fm = FileManager.default
        if data.dropped > 0 { log("cleaning: dropped \(data.dropped) samples with missing or non-finite values from \(data.source)") }
        // More threads than cores only adds contention (the pool's threads spin briefly).
        let cores = Parallel.availableCores
        let threads = min(o.threads, cores)
        Parallel.setThreads(threads)
        Allocator.keepFreedBuffers()
        let model = run.model
        let logEvery = run.logEvery, sampleEvery = run.sampleEvery, checkpointEvery = run.checkpointEvery
        let evalEvery = run.evalEvery ?? 0, evalCount = run.evalCount ?? 2000
        let sampler = BatchSampler(count: data.train.shape[0], batchSize: model.batchSize, seed: model.seed)
        let perEpoch = sampler.batchesPerEpoch
        let totalSteps = perEpoch * model.epochs
        let stopAt = min(totalSteps, o.maxSteps ?? totalSteps)
        var fixedRNG = RandomGenerator(seed: model.seed, stream: 2)
        let fixedZ = Tensor.randomNormal([64, model.latentDim], using: &fixedRNG)

        let metricsPath = dir + "/metrics.jsonl"
        if !fm.fileExists(atPath: metricsPath) { _ = fm.createFile(atPath: metricsPath, contents: nil) }
        guard let metrics = FileHandle(forWritingAtPath: metricsPath) else {
            throw DataError(file: metricsPath, problem: "cannot open for writing")
        }
        defer { try? metrics.close() }
        // On resume, drop log lines past the checkpoint (a run stopped between checkpoints), and
        // the line of a logging window the checkpoint carries on (a run stopped off the
        // --log-every grid): the resumed run logs that window whole, as a run that never stopped.
        // A measurement at the stop step off the --eval-every grid goes too. A resume with
        // nothing to train keeps every line.
        if o.resume {
            let continues = progress.step < stopAt
            try truncateMetrics(metricsPath, after: progress.step,
                                dropTrainingLineAtStep: continues && progress.logWindow != nil,
                                dropEvalLineAtStep: continues && (evalEvery == 0 || progress.step % evalEvery != 0), handle: metrics)
        }
        metrics.seekToEndOfFile()

        /// Moves a staged run into place (replacing an old run when --overwrite was given).
        func promote() throws {
            guard let stage = staging else { return }
            if fm.fileExists(atPath: o.runDirectory) { try fm.removeItem(atPath: o.runDirectory) }
            try fm.moveItem(atPath: stage, toPath: o.runDirectory)
            staging = nil
            dir = o.runDirectory
        }
        var written: Set<String> = []
        func checkpoint(_ p: TrainingProgress) throws {
            try promote()
            try Checkpoint.write(model: net, run: run, progress: p, to: checkpointPath)
            written.insert(checkpointPath)
            // A resume may change the epochs and cadences: config.json follows the checkpoint.
            if o.resume { try AtomicFile.write(try run.jsonData(), to: dir + "/config.json", createDirectories: true) }
        }

        let evaluator = evalEvery > 0 ? try InTrainingEvaluator(run: run, heldOut: data.heldOut, runDirectory: dir, shownDirectory: o.runDirectory,
                                                                   count: evalCount, seed: model.seed, log: log) : nil
        if evaluator?.trainedClassifier == true { written.insert(Evaluator.classifierPath(runDirectory: o.runDirectory)) }
        let reporter = ProgressReporter(style: o.progress, totalSteps: stopAt, startStep: progress.step, log: log)
        if o.progress != .quiet {
            log("training \(model.preset) on \(data.source): \(data.train.shape[0]) samples x \(data.train.shape[1]) features, "
                + "batch \(model.batchSize), \(perEpoch) steps/epoch, \(model.epochs) epochs (\(totalSteps) steps), threads \(threads)" + (threads < o.threads ? " (\(o.threads) asked; \(cores) cores)" : "")
                + (progress.step > 0 ? ", resuming at step \(progress.step)" : ""))
        }
        if progress.step >= stopAt && progress.step > 0 {
            // Shown even with --quiet: the command did nothing the user may have expected.
            log("note: the run is already at step \(progress.step), at or past the \(stopAt) steps asked"
                + (o.maxSteps.map { $0 < totalSteps ? " (--max-steps \($0))" : "" } ?? "") + "; nothing to train")
        }

        Interrupt.install()
        defer { Interrupt.uninstall() }
        // Sums of each step statistic over the current logging window, in the model's order.
        var window: [(name: String, sum: Double)] = []
        var windowSteps = 0
        var windowStart = DispatchTime.now().uptimeNanoseconds
        var timedSteps = 0  // the window's steps run by this process (its throughput)
        if let carried = progress.logWindow {
            window = zip(carried.names, carried.sums).map { ($0, $1) }
            windowSteps = carried.steps
        }
        /// The open window (nil when empty), or the one just logged when the run stops off the grid.
        var stopWindow: LogWindow?
        func openWindow() -> LogWindow? {
            if windowSteps == 0 { return stopWindow }
            return LogWindow(steps: windowSteps, names: window.map(\.name), sums: window.map(\.sum))
        }
        func withWindow(_ p: TrainingProgress) -> TrainingProgress {
            var p = p
            p.logWindow = openWindow()
            return p
        }
        var last: StepMetrics?
        var startup: Double?
        var interrupted = false
        training: while progress.step < stopAt {
            let batches = sampler.batches(epoch: progress.epoch)
            while progress.batchInEpoch < batches.count && progress.step < stopAt {
                if Interrupt.requested { interrupted = true; break training }
                let idx = batches[progress.batchInEpoch]
                let real = data.train.gathered(rows: idx)
                let z = Tensor.randomNormal([idx.count, model.latentDim], using: &progress.noiseRNG)
                if model.lrSchedule != .constant {
                    net.setLearningRateFactor(model.lrSchedule.factor(step: progress.step, totalSteps: totalSteps))
                }
                let stats = net.train(batch: real, z: z, labels: model.conditionalClasses > 0 ? idx.map { data.labels![$0] } : nil)
                if let bad = stats.firstNonFinite {
                    throw TrainingError(step: progress.step, problem: "the losses became non-finite (\(stats.values.map { "\($0.name) \($0.value)" }.joined(separator: ", "))); first \(bad.name)",
                                        hint: "lower the learning rates or check the data" + (staging == nil ? "; the last checkpoint is kept" : ""))
                }
                last = stats
                if startup == nil { startup = processUptime() }
                progress.step += 1
                progress.batchInEpoch += 1
                if window.isEmpty { window = stats.values.map { ($0.name, 0) } }
                for (i, v) in stats.values.enumerated() { window[i].sum += Double(v.value) }
                windowSteps += 1
                timedSteps += 1
                let epochDone = progress.batchInEpoch == batches.count

                if progress.step % logEvery == 0 || progress.step == stopAt {
                    let now = DispatchTime.now().uptimeNanoseconds
                    let secs = max(Double(now - windowStart) / 1e9, 1e-9)
                    let n = Double(windowSteps)
                    let means = window.map { (name: $0.name, value: $0.sum / n) }
                    let samplesPerSec = Double(timedSteps) * Double(model.batchSize) / secs
                    var record: [String: Any] = [
                        "step": progress.step, "epoch": Double(progress.step) / Double(perEpoch),
                        "samples_per_sec": samplesPerSec,
                    ]
                    for m in means { record[m.name] = m.value }
                    let line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
                    metrics.write(line + Data("\n".utf8))
                    reporter.report(step: progress.step, epoch: Double(progress.step) / Double(perEpoch),
                                    losses: Array(means.prefix(net.lossStatisticCount)),
                                    samplesPerSec: samplesPerSec)
                    if progress.step % logEvery != 0 { stopWindow = openWindow() }
                    window = []
                    windowSteps = 0
                    timedSteps = 0
                    windowStart = now
                }
                if let ev = evaluator, progress.step % evalEvery == 0 || progress.step == stopAt {
                    var record = try ev.measure(net)
                    record["step"] = progress.step
                    record["epoch"] = Double(progress.step) / Double(perEpoch)
                    record["wall_seconds"] = Date().timeIntervalSince(start)
                    metrics.write(try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) + Data("\n".utf8))
                }
                if sampleEvery > 0 && progress.step % sampleEvery == 0, let shape = run.imageShape {
                    let path = String(format: "/samples/step-%06d.png", progress.step)
                    try writeGrid(net.sample(z: fixedZ, labels: net.balancedLabels(64, offset: 0)), shape: shape, stats: run.normalization, to: dir + path)
                    written.insert(o.runDirectory + path)
                }
                if checkpointEvery > 0 && progress.step % checkpointEvery == 0 && progress.step < stopAt {
                    try checkpoint(withWindow(epochDone ? progress.nextEpoch() : progress))
                }
            }
            // A new epoch reshuffles: order depends only on (seed, epoch), so a resumed run
            // continues with the same batches.
            if progress.batchInEpoch == batches.count { progress = progress.nextEpoch() }
        }
        reporter.finish()
        try checkpoint(withWindow(progress))
        if progress.step == totalSteps, let shape = run.imageShape {
            let path = o.runDirectory + "/samples/final.png"
            try writeGrid(net.sample(z: fixedZ, labels: net.balancedLabels(64, offset: 0)), shape: shape, stats: run.normalization, to: path)
            written.insert(path)
        }
        if interrupted { log("interrupted at step \(progress.step): checkpoint written; continue with --resume") }
        return TrainSummary(runDirectory: o.runDirectory, steps: progress.step, epochs: Double(progress.step) / Double(max(perEpoch, 1)),
                            seconds: Date().timeIntervalSince(start), last: last, files: written.sorted(), interrupted: interrupted,
                            startupSeconds: startup)
    }

    /// Keeps only the metric lines with `step <= step`, less the training line (the one with
    /// `samples_per_sec`) at `step` itself when `dropTrainingLineAtStep`, and the measurement
    /// line (the one with `wall_seconds`) there when `dropEvalLineAtStep`.
    func truncateMetrics(_ path: String, after step: Int, dropTrainingLineAtStep: Bool, dropEvalLineAtStep: Bool,
                         handle: FileHandle) throws {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        var kept = ""
        for line in text.split(separator: "\n") {
            if let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let s = obj["step"] as? Int, s <= step,
               !(dropTrainingLineAtStep && s == step && obj["samples_per_sec"] != nil),
               !(dropEvalLineAtStep && s == step && obj["wall_seconds"] != nil) { kept += line + "\n" }
        }
        try handle.truncate(atOffset: 0)
        handle.write(Data(kept.utf8))
    }
}

/// Writes generator samples `[N, D]` (normalised) as a PNG grid in the data's own units.
public func writeGrid(_ samples: Tensor, shape: [Int], stats: NormalizationStats, to path: String, columns: Int? = nil) throws {
    let images = stats.inverse(samples).reshaped([samples.shape[0]] + shape)
    let low = Float(stats.kind == .zscore || stats.kind == .none ? images.minValue : Float(stats.low))
    var high = Float(stats.kind == .zscore || stats.kind == .none ? images.maxValue : Float(stats.high))
    if !(high > low) { high = low + 1 }
    try ImageGrid.writePNG(images: images, path: path, columns: columns, range: (low, high), createDirectories: true)
}

/// Training stopped because the optimisation failed.
public struct TrainingError: Error, CustomStringConvertible {
    public var step: Int
    public var problem: String
    public var hint: String?
    public var description: String { "step \(step): \(problem)" + (hint.map { " (\($0))" } ?? "") }
}

/// Prints progress: a live line (carriage return) on a terminal, plain lines otherwise.
final class ProgressReporter {
    let live: Bool
    let quiet: Bool
    let totalSteps: Int
    let startStep: Int
    let started = DispatchTime.now().uptimeNanoseconds
    let log: (String) -> Void

    init(style: TrainOptions.ProgressStyle, totalSteps: Int, startStep: Int, log: @escaping (String) -> Void) {
        switch style {
        case .automatic: live = isatty(STDERR_FILENO) == 1; quiet = false
        case .live: live = true; quiet = false
        case .lines: live = false; quiet = false
        case .quiet: live = false; quiet = true
        }
        self.totalSteps = totalSteps
        self.startStep = startStep
        self.log = log
    }

    /// - Parameter losses: the first statistics of the step (d_loss and g_loss for a GAN).
    func report(step: Int, epoch: Double, losses: [(name: String, value: Double)], samplesPerSec: Double) {
        if quiet { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let done = step - startStep
        let eta = done > 0 ? elapsed / Double(done) * Double(totalSteps - step) : 0
        let shown = losses.map { String(format: "%@ %.4f", $0.name, $0.value) }.joined(separator: "  ")
        let line = String(format: "step %d/%d  epoch %.2f  %@  %.0f samples/s  ETA %@",
                          step, totalSteps, epoch, shown, samplesPerSec, formatDuration(eta))
        if live {
            // A live line wider than the terminal would wrap, and `\r` would then redraw only
            // its last row: cut it to the width, asked each time so a resize is followed.
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + Self.fitted(line, columns: Self.terminalColumns())).utf8))
        } else {
            log(line)
        }
    }

    func finish() {
        if live && !quiet { FileHandle.standardError.write(Data("\n".utf8)) }
    }

    /// `line` cut to `columns - 1` characters (the cursor keeps the last column), or whole when
    /// the width is unknown.
    static func fitted(_ line: String, columns: Int?) -> String {
        guard let columns, columns > 1, line.count >= columns else { return line }
        return String(line.prefix(columns - 1))
    }

    /// Standard error's terminal width in columns (`TIOCGWINSZ`); nil when it is not a
    /// terminal or reports 0.
    static func terminalColumns() -> Int? {
        var size = winsize()
        guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }
}

/// "1m05s" style durations.
public func formatDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 60 ? String(format: "%dm%02ds", s / 60, s % 60) : "\(s)s"
}

/// FID and KID of generator samples against the held-out split during training, in the
/// domain classifier's feature space when the data has labels, else in pixel space.
final class InTrainingEvaluator {
    let realFeatures: Tensor
    let features: (Tensor) -> Tensor
    let z: Tensor
    let space: String
    let seed: UInt64

    /// Whether this evaluator trained (and saved) the run's domain classifier.
    let trainedClassifier: Bool

    init(run: RunConfig, heldOut: [Int], runDirectory: String, shownDirectory: String, count: Int, seed: UInt64, log: (String) -> Void) throws {
        let runData = try Evaluator.loadRunData(run)
        let stats = run.normalization
        let real = stats.apply(runData.all.subset(runData.heldOut).samples)
        if runData.all.labels != nil {
            trainedClassifier = !FileManager.default.fileExists(atPath: Evaluator.classifierPath(runDirectory: runDirectory))
            let c = try Evaluator.domainClassifier(runDirectory: runDirectory, shownDirectory: shownDirectory, runData: runData, run: run, log: log)
            features = { c.classifier.features(c.normalization.apply(stats.inverse($0))) }
            space = "classifier"
        } else {
            guard run.model.dataDim <= Evaluator.maxPixelFeatures else {
                throw ConfigError(option: "--eval-every", problem: "the data has no labels for a domain classifier, and pixel-space FID of \(run.model.dataDim) values per sample is too costly (limit \(Evaluator.maxPixelFeatures))",
                                  hint: "use labelled data, or evaluate afterwards with `conjure evaluate --classifier FILE`")
            }
            features = { $0 }
            space = "pixels"
            trainedClassifier = false
        }
        realFeatures = features(real)
        var rng = RandomGenerator(seed: seed, stream: 4)
        z = Tensor.randomNormal([count, run.model.latentDim], using: &rng)
        self.seed = seed
    }

    func measure(_ model: any GenerativeModel) throws -> [String: Any] {
        let fake = features(model.sample(z: z, labels: model.balancedLabels(z.shape[0], offset: 0)))
        let fid = try Metrics.fid(real: realFeatures, fake: fake)
        let kid = try Metrics.kid(real: realFeatures, fake: fake, subsets: 10, subsetSize: min(500, realFeatures.shape[0], fake.shape[0]), seed: seed)
        return ["fid": fid.value, "kid": kid.mean, "kid_std": kid.std, "eval_samples": fake.shape[0], "eval_space": space]
    }
}
