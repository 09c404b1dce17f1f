import Foundation
import ConjureData
import ConjureModels
import ConjureOptim
import ConjureMetrics

/// Options of `conjure train` beyond the model configuration.
public struct TrainOptions: Sendable {
    /// The data file or PNG folder; nil looks in `dataDirectory` (see ``DataFetch/defaultDataPath(in:)``).
    public var data: String?
    /// Folder searched for the default data file when ``data`` is nil (default `data`).
    public var dataDirectory: String = "data"
    /// The run directory, e.g. `runs/demo`.
    public var runDirectory: String
    /// The model family, its configuration and optimisation (a preset plus overrides).
    public var model: ModelConfig
    /// Normalisation; nil picks the one matching the generator's output (tanh: symmetric,
    /// sigmoid: unit, identity: zscore).
    public var normalization: Normalization?
    /// The data's value range for symmetric/unit scaling, overriding detection.
    public var dataRange: ClosedRange<Float>?
    /// Normalisation statistics to use as they are instead of fitting them on the training
    /// split (a resumed run's own, so a `--data-range` or a range observed when the run
    /// started is kept); nil fits them.
    public var fixedNormalization: NormalizationStats?
    /// What to do with samples holding missing or non-finite values (default: refuse the file).
    public var clean: CleanPolicy = .error
    /// `--layout`: the axis order of 4-d image arrays (nil: detected, see ``ArrayLayout/detect(shape:)``).
    public var layout: ArrayLayout?
    /// Audio folders: labels (automatic by default: FSDD names or subfolders), mono, clip
    /// length (`--length`, default 8192 samples), `--sample-rate` and peak normalisation.
    public var audio = AudioFolderOptions(labels: .automatic, length: 8192)
    /// `--shape`: what one sample is (`D`, `C,T` or `C,H,W`), overriding the reader's kind.
    public var shape: String?
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
    /// Continue the run in ``runDirectory`` from its latest checkpoint, with its saved
    /// configuration (default `false`).
    public var resume = false
    /// Replace an existing run directory.
    public var overwrite = false
    /// With `resume`: continue although the data file's contents changed since the run
    /// started (its SHA-256 differs from the one in the checkpoint).
    public var allowDataChange = false
    /// With `resume`: a new total epoch count (to train a finished run further).
    public var resumeEpochs: Int?
    /// Worker threads asked for, 1...64 (default 1); capped at the machine's core count.
    public var threads: Int = 1
    /// Steps between FID/KID measurements against the held-out split, logged to
    /// metrics.jsonl (0: never).
    public var evalEvery: Int?
    /// Samples drawn for each in-training measurement.
    public var evalCount: Int?
    /// Write a TensorBoard event file `events.out.tfevents.*` in the run folder (scalars of
    /// metrics.jsonl, sample grids, clips and texts; see the README's "TensorBoard"); default
    /// `true`, `--no-tensorboard` turns it off. Not part of the run's saved configuration.
    public var tensorboard = true
    /// Progress output: a live line on a terminal, plain lines otherwise, or nothing.
    public var progress: ProgressStyle = .automatic

    /// `automatic`: a live line on a terminal, plain lines otherwise; `lines`: plain lines;
    /// `live`: always the live line; `quiet`: no progress output.
    public enum ProgressStyle: Sendable, Equatable { case automatic, lines, live, quiet }

    /// Options for a run in `runDirectory` of `model`, defaults elsewhere.
    public init(runDirectory: String, model: ModelConfig) {
        self.runDirectory = runDirectory
        self.model = model
    }

    /// Options for a run of a family's configuration.
    public init(runDirectory: String, model: some FamilyConfig) {
        self.init(runDirectory: runDirectory, model: ModelConfig(model))
    }
}

/// The outcome of a training run.
public struct TrainSummary: Sendable {
    /// The run directory written (e.g. `runs/demo`).
    public var runDirectory: String
    /// The step count reached (the total, counting steps before a resume).
    public var steps: Int
    /// Epochs completed (fractional).
    public var epochs: Double
    /// Wall-clock seconds of this invocation's training.
    public var seconds: Double
    /// Statistics of the last step (`d_loss`, `g_loss`, ... for a GAN).
    public var last: StepMetrics?
    /// Files written by this invocation (checkpoints, grids, classifier), sorted.
    public var files: [String]
    /// True when SIGINT, SIGTERM or SIGHUP stopped training early (a checkpoint was written).
    public var interrupted: Bool
    /// Seconds from process start to the end of this run's first training step (Linux
    /// `/proc`), nil when no step ran.
    public var startupSeconds: Double? = nil
}

/// Training stopped because the optimisation failed.
public struct TrainingError: Error, CustomStringConvertible {
    /// The 0-based index of the step that failed (the number of steps completed before it).
    public var step: Int
    /// What went wrong, e.g. which loss became non-finite.
    public var problem: String
    /// What to try (a lower learning rate, clipping, ...), or nil.
    public var hint: String?
    /// `step N: PROBLEM (HINT)`, the hint only when present.
    public var description: String { "step \(step): \(problem)" + (hint.map { " (\($0))" } ?? "") }
}

