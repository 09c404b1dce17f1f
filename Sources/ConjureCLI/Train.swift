import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model and write a run directory (config, metrics, samples, checkpoints).")

    @Option(help: "Data file (.npy, IDX[.gz], CSV[.gz], UTF-8 .txt), a folder of PNG images or a folder of WAV/FLAC sound files. Default: data/train-images-idx3-ubyte[.gz] or data/mnist_5k.csv.gz.")
    var data: String?
    @Option(help: "Model preset: \(ModelConfig.presetNames.joined(separator: ", ")) (default gan).")
    var model: String?
    @Option(help: "Run name; the run directory is <runs-dir>/<name>.")
    var name: String = "default"
    @Option(help: "Folder holding run directories.")
    var runsDir: String = "runs"
    @Option(parsing: .unconditional, help: "Epochs (preset default if omitted).") var epochs: Int?
    @Option(parsing: .unconditional, help: "Batch size.") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Adam beta1.") var beta1: Float?
    @Option(parsing: .unconditional, help: "Adam beta2.") var beta2: Float?
    @Option(parsing: .unconditional, help: "Random seed (weights, batches, z).") var seed: UInt64?
    @Option(help: "Optimiser of every parameter group: adam, adamw or rmsprop (default adam).") var optimizer: String?
    @Option(parsing: .unconditional, help: "Weight decay (decoupled for adamw, an L2 term for adam and rmsprop; default 0).") var weightDecay: Float?
    @Option(help: "Learning-rate schedule over the run: constant, linear or cosine (decay to --lr-final-factor).") var lrSchedule: String?
    @Option(parsing: .unconditional, help: "Linear learning-rate warm-up over this many steps (default 0).") var lrWarmupSteps: Int?
    @Option(parsing: .unconditional, help: "Learning-rate factor reached at the end of a linear or cosine schedule (default 0).") var lrFinalFactor: Float?
    @Option(parsing: .unconditional, help: "Clip each parameter group's total gradient L2 norm to this value.") var clipGradNorm: Float?
    @Option(parsing: .unconditional, help: "Average the sampled weights (a GAN's generator, a VAE's networks) with this decay, e.g. 0.999, and sample with the average; 0 turns it off.") var ema: Float?
    @Option(help: "Axis order of 4-d image arrays: nchw or nhwc (default: detected; channels-last arrays are transposed).") var layout: String?
    @Option(help: "What one sample is: D (a vector), C,T (a signal) or C,H,W (an image), e.g. 1,28,28. Default: what the file says.") var shape: String?
    @OptionGroup(title: "Audio folder options") var audio: AudioDataOptions
    @OptionGroup(title: "GAN options") var gan: GANOptions
    @OptionGroup(title: "VAE options") var vae: VAEOptions
    @OptionGroup(title: "Text options") var text: TextOptions
    @OptionGroup(title: "Diffusion options") var diffusion: DiffusionOptions
    @OptionGroup(title: "Options of several families") var shared: SharedModelOptions
    @Option(help: "Normalisation: symmetric ([-1,1]), unit ([0,1]), zscore, none. Default matches the generator output.")
    var normalize: String?
    @Option(help: "Data value range for scaling, e.g. 0,255 (default: from the dtype, else observed).")
    var dataRange: String?
    @Option(help: "Rows with missing or non-finite values: error (default) or drop.") var clean: String?
    @Option(parsing: .unconditional, help: "CSV label column: index (negative from the end) or header name.") var labelColumn: String?
    @Option(parsing: .unconditional, help: "Fraction of samples held out of training for evaluation (stratified by label; default 0.1).") var heldOut: Double?
    @Option(parsing: .unconditional, help: "Steps between metric lines (default 50; with --resume, the run's own).") var logEvery: Int?
    @Option(parsing: .unconditional, help: "Steps between sample grids (0: final grid only; default 1000; with --resume, the run's own).") var sampleEvery: Int?
    @Option(parsing: .unconditional, help: "Steps between checkpoints (default 1000; with --resume, the run's own).") var checkpointEvery: Int?
    @Option(parsing: .unconditional, help: "Stop after this many steps (resume later with --resume).") var maxSteps: Int?
    @OptionGroup var pool: ThreadsOption
    @OptionGroup var matrixBackend: BackendOption
    @Option(parsing: .unconditional, help: "Steps between FID/KID measurements against the held-out split (logged to metrics.jsonl; 0: never, the default; with --resume, the run's own).") var evalEvery: Int?
    @Option(parsing: .unconditional, help: "Samples per in-training measurement (default 2000; with --resume, the run's own).") var evalCount: Int?
    @Flag(help: "Continue the run from checkpoints/latest.safetensors.") var resume = false
    @Flag(help: "Replace an existing run directory.") var overwrite = false
    @Flag(help: "With --resume: continue although the data file's contents changed since the run started.") var allowDataChange = false
    @Flag(inversion: .prefixedNo, help: "Write a TensorBoard event file (events.out.tfevents.*) in the run directory: metrics, sample grids, clips, texts (default on; view with `tensorboard --logdir runs`).") var tensorboard = true
    @Flag(help: "Print plain progress lines even on a terminal.") var plain = false
    @Flag(help: "No progress output.") var quiet = false

    /// Every option group of a family, in registry order; each applies to its family's presets.
    var familyOptions: [any FamilyOptions] { [gan, vae, text, diffusion] }

    /// Options that control the model or data, refused with `--resume`.
    var modelOptionsGiven: [(String, Bool)] {
        [("--data", data != nil), ("--model", model != nil), ("--batch-size", batchSize != nil), ("--beta1", beta1 != nil),
         ("--beta2", beta2 != nil), ("--seed", seed != nil), ("--normalize", normalize != nil), ("--data-range", dataRange != nil),
         ("--clean", clean != nil), ("--label-column", labelColumn != nil), ("--held-out", heldOut != nil), ("--overwrite", overwrite),
         ("--optimizer", optimizer != nil), ("--weight-decay", weightDecay != nil), ("--lr-schedule", lrSchedule != nil),
         ("--lr-warmup-steps", lrWarmupSteps != nil), ("--lr-final-factor", lrFinalFactor != nil), ("--clip-grad-norm", clipGradNorm != nil),
         ("--ema", ema != nil), ("--shape", shape != nil), ("--layout", layout != nil)] + audio.given + familyOptions.flatMap(\.given) + shared.given
    }

    func makeOptions() throws -> TrainOptions {
        if resume, let given = modelOptionsGiven.first(where: { $0.1 }) {
            // A resumed run continues its saved configuration; only run-control options apply.
            throw ConfigError(option: given.0, problem: "is not accepted with --resume (even with its saved value): the run continues with the configuration in its checkpoint",
                              hint: "only --epochs, --max-steps, --threads and the logging options apply with --resume")
        }
        let model = (self.model ?? "gan").lowercased()
        guard var chosen = ModelConfig.presets[model] else {
            throw ConfigError(option: "--model", problem: "unknown preset '\(model)'", hint: "choose one of \(ModelConfig.presetNames.joined(separator: ", "))")
        }
        // Options of another family are refused, with that family's hint.
        for group in familyOptions where type(of: group).family != chosen.family {
            if let given = group.given.first(where: { $0.1 }) {
                let own = familyOptions.first { type(of: $0).family == chosen.family }
                throw ConfigError(option: given.0, problem: "applies to \(type(of: group).title) presets only; --model \(chosen.preset) is a \(own.map { type(of: $0).title } ?? chosen.family)",
                                  hint: own?.hint(forForeignOption: given.0))
            }
        }
        // An option several families take is refused for the others, naming all that take it.
        for (flag, isGiven) in shared.given where isGiven {
            let takers = familyOptions.filter { type(of: $0).sharedOptions.contains(flag) }
            if !takers.contains(where: { type(of: $0).family == chosen.family }) {
                let own = familyOptions.first { type(of: $0).family == chosen.family }
                throw ConfigError(option: flag, problem: "applies to \(takers.map { type(of: $0).title }.joined(separator: " and ")) presets only; --model \(chosen.preset) is a \(own.map { type(of: $0).title } ?? chosen.family)",
                                  hint: own?.hint(forForeignOption: flag))
            }
        }
        if let v = epochs { chosen.epochs = v }
        if let v = batchSize { chosen.batchSize = v }
        if let v = seed { chosen.seed = v }
        chosen.optimization = try optimization(chosen.optimization)
        for group in familyOptions where type(of: group).family == chosen.family {
            try group.apply(to: &chosen.config)
            try group.apply(shared, to: &chosen.config)
        }
        if name.isEmpty || name.contains("/") || name.hasPrefix(".") {
            throw ConfigError(option: "--name", problem: "'\(name)' is not a plain folder name")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: runsDir, isDirectory: &isDirectory) && !isDirectory.boolValue {
            throw ConfigError(option: "--runs-dir", problem: "'\(runsDir)' exists and is not a directory")
        }
        var o = TrainOptions(runDirectory: runsDir + "/" + name, model: chosen)
        o.data = data
        o.shape = shape
        o.audio = try audio.apply(to: o.audio)
        if let v = layout {
            guard let l = ArrayLayout(rawValue: v.lowercased()) else {
                throw ConfigError(option: "--layout", problem: "expected nchw or nhwc, got '\(v)'")
            }
            o.layout = l
        }
        if let v = normalize {
            guard let n = Normalization(rawValue: v.lowercased()) else {
                throw ConfigError(option: "--normalize", problem: "expected symmetric, unit, zscore or none, got '\(v)'")
            }
            o.normalization = n
        }
        if let v = dataRange {
            let p = v.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
            guard p.count == 2, let lo = p[0], let hi = p[1], lo.isFinite, hi.isFinite, lo < hi else {
                throw ConfigError(option: "--data-range", problem: "expected LOW,HIGH with LOW < HIGH, got '\(v)'")
            }
            o.dataRange = lo...hi
        }
        guard let c = CleanPolicy(rawValue: clean ?? "error") else { throw ConfigError(option: "--clean", problem: "expected error or drop, got '\(clean ?? "")'") }
        o.clean = c
        o.labelColumn = labelColumn.map { ColumnSelector(parsing: $0) }
        o.heldOutFraction = heldOut ?? 0.1
        if resume { o.resumeEpochs = epochs }
        o.logEvery = logEvery
        o.sampleEvery = sampleEvery
        o.checkpointEvery = checkpointEvery
        o.maxSteps = maxSteps
        o.threads = pool.threads ?? defaultThreads
        o.evalEvery = evalEvery
        o.evalCount = evalCount
        o.resume = resume
        o.overwrite = overwrite
        if allowDataChange && !resume {
            throw ConfigError(option: "--allow-data-change", problem: "applies with --resume only")
        }
        o.allowDataChange = allowDataChange
        o.tensorboard = tensorboard
        o.progress = quiet ? .quiet : (plain ? .lines : .automatic)
        return o
    }

    /// `current` with the optimiser options given (every family has them).
    func optimization(_ current: OptimizationSettings) throws -> OptimizationSettings {
        var o = current
        if let v = optimizer {
            guard let k = OptimizerKind(rawValue: v.lowercased()) else {
                throw ConfigError(option: "--optimizer", problem: "expected \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(v)'")
            }
            o.optimizer = k
        }
        if o.optimizer == .rmsprop, let given = [("--beta1", beta1 != nil), ("--beta2", beta2 != nil)].first(where: { $0.1 }) {
            throw ConfigError(option: given.0, problem: "is an Adam setting; RMSprop uses PyTorch's alpha 0.99 and no momentum")
        }
        if let v = beta1 { o.betas.0 = v }
        if let v = beta2 { o.betas.1 = v }
        if let v = weightDecay { o.weightDecay = v }
        o.lrSchedule = try schedule(o.lrSchedule)
        if let v = clipGradNorm { o.clipGradNorm = v }
        if let v = ema { o.emaDecay = v == 0 ? nil : v }
        return o
    }

    /// `current` with the schedule options given.
    func schedule(_ current: LRSchedule) throws -> LRSchedule {
        guard lrSchedule != nil || lrWarmupSteps != nil || lrFinalFactor != nil else { return current }
        if lrFinalFactor != nil && (lrSchedule ?? current.kind.rawValue).lowercased() == "constant" {
            throw ConfigError(option: "--lr-final-factor", problem: "has no effect with a constant learning rate", hint: "add --lr-schedule linear or cosine")
        }
        return try LRSchedule.parse(lrSchedule ?? current.kind.rawValue, warmupSteps: lrWarmupSteps ?? current.warmupSteps,
                                    finalFactor: lrFinalFactor ?? current.finalFactor)
    }

    func run() {
        // Before anything is printed (the trainer's first line comes before its signal
        // handlers): `conjure train ... | head` must not be killed by SIGPIPE on that line.
        signal(SIGPIPE, SIG_IGN)
        runReporting {
            try matrixBackend.apply()
            let summary = try Trainer(options: try makeOptions()).run()
            var lines = ["trained to step \(summary.steps) (" + String(format: "%.2f", summary.epochs) + " epochs) in \(formatDuration(summary.seconds))"
                         + (summary.startupSeconds.map { String(format: "; start-up to first step %.2f s", $0) } ?? "")
                         + String(format: ", peak RSS %.0f MB", peakRSSMegabytes())]
            if let s = summary.last { lines.append("last step: " + s.values.map { String(format: "%@ %.4f", $0.name, $0.value) }.joined(separator: "  ")) }
            lines.append("run directory: \(summary.runDirectory)/")
            lines.append("  config.json, metrics.jsonl")
            for f in summary.files { lines.append("  " + f.replacingOccurrences(of: summary.runDirectory + "/", with: "")) }
            print(lines.joined(separator: "\n"))
            if summary.interrupted { Foundation.exit(130) }
        }
    }
}
