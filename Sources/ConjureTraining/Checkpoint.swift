import Foundation
import ConjureData
import ConjureModels
import ConjureNN

/// Everything about a run that is not a tensor: saved as `config.json` in the run directory
/// and in every checkpoint's `__metadata__` (key `config`).
public struct RunConfig: Codable, Sendable, Equatable {
    /// The model and its optimisation.
    public var model: ModelConfig
    /// The data file the run trains on (as given).
    public var data: String
    /// Normalisation of the data; `inverse` maps samples back to the data's units.
    public var normalization: NormalizationStats
    /// `[C, H, W]` of one sample when the data are images (for PNG grids), else nil. Kept for
    /// runs written before ``dataSpec``; new runs write both.
    public var imageShape: [Int]?
    /// The data kind of one sample (nil in runs written before data kinds: see ``spec``).
    public var dataSpec: DataSpec?
    /// Number of training samples after cleaning (and after the held-out split).
    public var trainSamples: Int
    /// Fraction of the data kept out of training (stratified by label), and a SHA-256 of the
    /// held-out indices so that evaluation can check it uses the same split.
    public var heldOutFraction: Double
    /// Lower-case hex SHA-256 of the held-out indices joined by commas (`3,17,...`), or nil when
    /// nothing is held out.
    public var heldOutIndicesSHA256: String?
    /// Steps between metric log lines, sample grids and checkpoints.
    public var logEvery: Int
    /// Steps between sample grids in `samples/` (0: only the final grid).
    public var sampleEvery: Int
    /// Steps between periodic checkpoints in `checkpoints/`.
    public var checkpointEvery: Int
    /// Steps between in-training FID/KID measurements and their sample count (nil in runs
    /// written before they were saved: 0 and 2000).
    public var evalEvery: Int?
    /// Samples drawn for each in-training FID/KID measurement (nil in older runs: 2000).
    public var evalCount: Int?
    /// Samples generated for a built-in synthetic data set (nil for files).
    public var syntheticCount: Int?
    /// SHA-256 (lowercase hex) of the data file's bytes when the run started (nil for folders,
    /// built-in data sets and runs written before it was saved): `--resume` refuses a file whose
    /// contents changed unless `--allow-data-change` is given.
    public var dataSHA256: String?
    /// `--layout` as given for a 4-d array (nil: detected), so a resume reads the file the same way.
    public var layout: ArrayLayout?
    /// How an audio folder was read (labels, mono, length, sample rate, scaling), so resume and
    /// evaluation read it the same way and samples are written at its rate; nil for other data.
    public var audio: AudioFolderOptions?

    /// A run's configuration.
    public init(model: ModelConfig, data: String, normalization: NormalizationStats, imageShape: [Int]?, dataSpec: DataSpec? = nil, trainSamples: Int,
                heldOutFraction: Double, heldOutIndicesSHA256: String?, logEvery: Int, sampleEvery: Int,
                checkpointEvery: Int) {
        self.model = model
        self.data = data
        self.normalization = normalization
        self.imageShape = imageShape
        self.dataSpec = dataSpec
        self.trainSamples = trainSamples
        self.heldOutFraction = heldOutFraction
        self.heldOutIndicesSHA256 = heldOutIndicesSHA256
        self.logEvery = logEvery
        self.sampleEvery = sampleEvery
        self.checkpointEvery = checkpointEvery
    }

    /// The data kind: ``dataSpec``, or for older runs an image of ``imageShape`` or a vector of
    /// the model's size.
    public var spec: DataSpec {
        if let s = dataSpec { return s }
        if let s = imageShape, s.count == 3 { return .image(channels: s[0], height: s[1], width: s[2]) }
        return .vector(model.dataDim)
    }

    /// Pretty-printed JSON with sorted keys (`config.json`).
    public func jsonData() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try enc.encode(self)
    }
}

/// Where training stands, saved in checkpoints so that a resumed run continues exactly.
public struct TrainingProgress: Sendable, Equatable {
    /// Optimiser steps taken so far (each step: one D update and one G update).
    public var step: Int
    /// The epoch the next step belongs to, and how many of its batches are done.
    public var epoch: Int
    /// Batches of the current epoch already trained on (0 at an epoch's start).
    public var batchInEpoch: Int
    /// State of the generator producing the latent `z` batches.
    public var noiseRNG: RandomGenerator
    /// The metrics.jsonl logging window still open at this step (steps since the last logged
    /// line), so a resumed run logs the same means as one that never stopped; nil when empty.
    public var logWindow: LogWindow? = nil

    /// The same progress moved to the start of the next epoch.
    public func nextEpoch() -> TrainingProgress {
        var p = self
        p.epoch += 1
        p.batchInEpoch = 0
        return p
    }
}

/// Sums of the step statistics over the steps of an open logging window (metrics.jsonl lines
/// hold their means). No wall-clock time: a checkpoint's bytes depend on the training only.
public struct LogWindow: Codable, Sendable, Equatable {
    /// Steps accumulated in the window.
    public var steps: Int
    /// The statistic names (`d_loss`, `g_loss`, ...), in log order.
    public var names: [String]
    /// The sum over the window's steps of each statistic in ``names``, in Double.
    public var sums: [Double]
}

/// Conjure checkpoints in the safetensors format.
///
/// Tensors: the model's `state_dict` under PyTorch names (`generator.0.weight` ...,
/// `discriminator.2.bias`), then the optimisers' state (`optimizer.generator.0.exp_avg`,
/// `optimizer.generator.0.exp_avg_sq`, `optimizer.generator.step`, same for the
/// discriminator). `__metadata__`: `format` (`conjure.checkpoint.v1`), `config` (the
/// ``RunConfig`` JSON), `step`, `epoch`, `batch_in_epoch`, `rng_state` (four decimal 64-bit
/// words), `normalization` (JSON), and `log_window` (JSON, when a logging window is open). Written
/// to a temporary file, fsynced, then renamed.
public enum Checkpoint {
    /// Why tensor `name` cannot hold `t`'s values, with the first offending element: a value
    /// that is not finite, or a negative one in a variance (BatchNorm's `running_var`, Adam's
    /// `exp_avg_sq`), which would give NaN through its square root. nil when the values are valid.
    static func invalidValue(name: String, _ t: Tensor) -> String? {
        let isVariance = name.hasSuffix("running_var") || name.hasSuffix("exp_avg_sq")
        return t.withUnsafeScalars { v in
            guard let i = v.firstIndex(where: { !$0.isFinite || (isVariance && $0 < 0) }) else { return nil }
            return v[i].isFinite ? "element \(i) is \(v[i]) (a negative variance)" : "element \(i) is \(v[i]) (non-finite)"
        }
    }

    /// A BatchNorm `num_batches_tracked` counter stored as I64 or I32 (PyTorch's int64) as the
    /// Float32 scalar Conjure keeps; nil for any other name or dtype.
    static func batchCounter(name: String, _ value: SafeTensorValue) -> Tensor? {
        guard name.hasSuffix("num_batches_tracked"), let v = value.int64s else { return nil }
        return Tensor(shape: value.shape, scalars: v.map(Float.init))
    }

    /// The `format` value in every Conjure checkpoint's `__metadata__`; other values are refused.
    public static let format = "conjure.checkpoint.v1"

    /// Writes the model's `state_dict`, the averaged weights and the optimiser state with the
    /// run's metadata, atomically.
    ///
    /// - Throws: ``DataError`` when the file cannot be written.
    public static func write(model: any GenerativeModel, optimization: Optimization, run: RunConfig, progress: TrainingProgress, to path: String) throws {
        // Parameters and averages are handed over as they are held (views and arrays, not
        // copied), the optimiser state read in place: the file is streamed, one tensor at a time.
        let tensors = model.stateDict() + optimization.averagesStateDict()
        var entries = tensors.map { (name: $0.0, shape: $0.1.shape) }
        optimization.forEachState { name, shape, _ in entries.append((name, shape)) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let normJSON = String(decoding: try encoder.encode(run.normalization), as: UTF8.self)
        var metadata: [String: String] = [
            "format": format,
            "config": String(decoding: try run.jsonData(), as: UTF8.self),
            "step": String(progress.step),
            "epoch": String(progress.epoch),
            "batch_in_epoch": String(progress.batchInEpoch),
            "rng_state": progress.noiseRNG.stateWords.map(String.init).joined(separator: ","),
            "normalization": normJSON,
        ]
        if let window = progress.logWindow, window.steps > 0 {
            metadata["log_window"] = String(decoding: try encoder.encode(window), as: UTF8.self)
        }
        try SafeTensors.write(streaming: entries, metadata: metadata, to: path, createDirectories: true) { emit in
            for (_, t) in tensors { try t.withUnsafeScalars(emit) }
            try optimization.forEachState { _, _, values in try emit(values) }
        }
    }

    /// A loaded checkpoint: the model (with optimiser state) and where training stood.
    public struct Loaded {
        /// The model with its weights.
        public var model: any GenerativeModel
        /// Its optimisers (with their state) and weight averages.
        public var optimization: Optimization
        /// The run's configuration (the `config` metadata).
        public var run: RunConfig
        /// Where training stood: step, epoch, batch in epoch, latent RNG state and open log window.
        public var progress: TrainingProgress
    }

    /// Reads a checkpoint written by ``write(model:run:progress:to:)`` (a `num_batches_tracked`
    /// stored as int64 by PyTorch is accepted).
    ///
    /// - Throws: ``DataError`` naming the file when it is not a Conjure checkpoint, a field is
    ///   missing or malformed, or a tensor is missing or has the wrong shape.
    public static func read(path: String) throws -> Loaded {
        let file = try SafeTensors.read(path: path)
        func bad(_ problem: String, _ hint: String? = nil) -> DataError {
            DataError(file: path, location: "__metadata__", problem: problem, hint: hint)
        }
        let hasOptimizerState = file.order.contains { $0.hasPrefix("optimizer.") }
        if file.metadata["format"] == nil || file.metadata["step"] == nil || file.metadata["rng_state"] == nil {
            // Weights only (e.g. PyTorch's save_file(model.state_dict())): say what training needs besides them.
            var missing: [String] = []
            if !hasOptimizerState { missing.append("the optimiser state (optimizer.* tensors: Adam's exp_avg, exp_avg_sq and step per parameter group)") }
            let positions = ["step", "epoch", "batch_in_epoch"].filter { file.metadata[$0] == nil }
            if !positions.isEmpty { missing.append("the training position (\(positions.joined(separator: ", ")) metadata)") }
            if file.metadata["rng_state"] == nil { missing.append("the latent generator's position (rng_state metadata)") }
            if file.metadata["config"] == nil { missing.append("the run configuration (config metadata)") }
            if file.metadata["format"] == nil { missing.append("the format tag (format = \(format))") }
            if !missing.isEmpty {
                throw DataError(file: path, problem: "holds weights only, not a Conjure training checkpoint; missing: " + missing.joined(separator: "; "),
                                hint: "`conjure sample --checkpoint \(path) --config RUN/config.json` samples from these weights; training resumes only from a checkpoint written by `conjure train`")
            }
        }
        guard file.metadata["format"] == format else {
            throw bad("not a Conjure checkpoint (format is \(file.metadata["format"].map { "'\($0)'" } ?? "missing"), expected '\(format)')",
                      "pass a checkpoints/*.safetensors file written by `conjure train`")
        }
        guard let configText = file.metadata["config"],
              let run = try? JSONDecoder().decode(RunConfig.self, from: Data(configText.utf8)) else {
            throw bad("the 'config' entry is missing or not a valid run configuration")
        }
        guard let step = file.metadata["step"].flatMap(Int.init), let epoch = file.metadata["epoch"].flatMap(Int.init),
              let batch = file.metadata["batch_in_epoch"].flatMap(Int.init) else {
            throw bad("'step', 'epoch' or 'batch_in_epoch' is missing or not an integer")
        }
        guard step >= 0, epoch >= 0, batch >= 0, batch <= step else {
            throw bad("'step' \(step), 'epoch' \(epoch) and 'batch_in_epoch' \(batch) are not a training position (negative or inconsistent)",
                      "the checkpoint was edited; use one written by `conjure train`")
        }
        if let shape = run.imageShape, shape.count != 3 || shape.contains(where: { $0 < 1 }) || shape.reduce(1, *) != run.model.dataDim {
            throw bad("the config's imageShape \(shape) does not match the model's \(run.model.dataDim) values per sample",
                      "the checkpoint was edited; use one written by `conjure train`")
        }
        if run.spec.flatCount != run.model.dataDim || run.spec.sampleShape.contains(where: { $0 < 1 }) {
            throw bad("the config's data kind \(run.spec) does not match the model's \(run.model.dataDim) values per sample",
                      "the checkpoint was edited; use one written by `conjure train`")
        }
        let words = (file.metadata["rng_state"] ?? "").split(separator: ",").compactMap { UInt64($0) }
        guard words.count == 4, words.contains(where: { $0 != 0 }) else { throw bad("'rng_state' is missing or malformed") }
        var tensors: [String: Tensor] = [:]
        for name in file.order {
            if let t = file.tensors[name]?.tensor { tensors[name] = t } else if let v = file.tensors[name], let t = Checkpoint.batchCounter(name: name, v) { tensors[name] = t }
        }
        for name in file.order {
            if let t = tensors[name], let problem = Checkpoint.invalidValue(name: name, t) {
                throw DataError(file: path, location: "tensor '\(name)'", problem: "\(problem); the checkpoint is damaged",
                                hint: "use an earlier checkpoint")
            }
        }
        do { try run.validate() } catch {
            throw bad("the configuration is not valid: \(error)", "the checkpoint was edited or damaged; use one written by `conjure train`")
        }
        let model = run.model.makeModel()
        let optimization = Optimization(model: model, settings: run.model.optimization, seed: run.model.seed)
        do {
            try model.loadStateDict(tensors)
            try optimization.loadStateDict(tensors)
        } catch let e as StateDictError {
            throw DataError(file: path, location: "tensor '\(e.key)'", problem: e.problem,
                            hint: "the checkpoint does not match its own config; was it edited?")
        }
        var window: LogWindow?
        if let text = file.metadata["log_window"] {
            guard let w = try? JSONDecoder().decode(LogWindow.self, from: Data(text.utf8)), w.steps > 0, w.steps <= step,
                  w.names.count == w.sums.count else {
                throw bad("'log_window' is not a logging window (JSON with steps, names and sums)",
                          "the checkpoint was edited; use one written by `conjure train`")
            }
            guard w.names == model.stepStatisticNames else {
                throw bad("'log_window' holds sums of \(w.names) but the model logs \(model.stepStatisticNames)",
                          "the checkpoint was edited; use one written by `conjure train`")
            }
            window = w
        }
        let progress = TrainingProgress(step: step, epoch: epoch, batchInEpoch: batch, noiseRNG: RandomGenerator(state: words),
                                        logWindow: window)
        return Loaded(model: model, optimization: optimization, run: run, progress: progress)
    }
}

/// The weights `conjure sample` draws from: a Conjure checkpoint, or a weights-only safetensors
/// file such as PyTorch's `save_file(model.state_dict(), path)` (see `docs/pytorch.md`).
public struct SamplingWeights {
    /// The model with its weights (and averaged weights when the file holds them).
    public var model: any GenerativeModel
    /// The run's configuration.
    public var run: RunConfig
    /// Notes for the user (e.g. that the file holds no averaged weights), one line each.
    public var notes: [String]
    /// The training step of a Conjure checkpoint (or the `step` metadata a weights-only file
    /// carries along), nil when the file does not say.
    public var step: Int? = nil

    /// Whether a safetensors file holds a Conjure checkpoint's training state (the `format`,
    /// `step` and `rng_state` metadata and optimiser tensors), rather than weights only (also
    /// weights saved by PyTorch with a Conjure checkpoint's metadata passed along).
    static func isTrainingCheckpoint(_ file: SafeTensorsFile) -> Bool {
        file.metadata["format"] == Checkpoint.format && file.metadata["step"] != nil && file.metadata["rng_state"] != nil
            && file.order.contains { $0.hasPrefix("optimizer.") }
    }

    /// The run configuration of `--config`: a `config.json` of a run directory, or any
    /// safetensors file whose `__metadata__` holds `config` (a Conjure checkpoint of the run).
    ///
    /// - Throws: ``DataError`` naming `path` when it cannot be read or holds no valid configuration.
    public static func readConfig(path: String) throws -> RunConfig {
        let text: String
        if path.lowercased().hasSuffix(".safetensors") {
            guard let t = try SafeTensors.read(path: path).metadata["config"] else {
                throw DataError(file: path, location: "__metadata__", problem: "holds no 'config' entry",
                                hint: "pass the run's config.json or a checkpoint written by `conjure train`")
            }
            text = t
        } else {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw DataError(file: path, problem: "cannot be read", hint: "pass RUN/config.json of the run the weights came from")
            }
            text = String(decoding: data, as: UTF8.self)
        }
        do { return try JSONDecoder().decode(RunConfig.self, from: Data(text.utf8)) } catch {
            throw DataError(file: path, problem: "is not a Conjure run configuration: \(error)", hint: "pass RUN/config.json of the run the weights came from")
        }
    }

    /// Reads the weights at `path` for sampling.
    ///
    /// A Conjure checkpoint (its `format`, `step` and `rng_state` metadata and optimiser state)
    /// is read by ``Checkpoint/read(path:)``. Any other safetensors file is taken as weights only: tensors
    /// under the model's `state_dict` names, F32 (F64, F16, BF16 converted), with
    /// `num_batches_tracked` allowed as I64/I32 (PyTorch's dtype). The run configuration comes from
    /// `configPath` (a `config.json`, or a checkpoint of the same run), else from the file's own
    /// `config` metadata. Only the weights that sampling uses must be present
    /// (``GenerativeModel/samplingStatePrefixes``); averaged weights (`generator_ema.*`,
    /// `ema.*`) are used when all are present, and when none are the plain weights are used
    /// (with a note).
    ///
    /// - Throws: ``ConfigError`` naming `--config` when no configuration is available or it is
    ///   given for a Conjure checkpoint; ``DataError`` naming the file and tensor for a missing,
    ///   mis-shaped, non-finite or integer (other than `num_batches_tracked`) tensor.
    public static func read(path: String, config configPath: String?) throws -> SamplingWeights {
        let file = try SafeTensors.read(path: path)
        if isTrainingCheckpoint(file) {
            if configPath != nil {
                throw ConfigError(option: "--config", problem: "'\(path)' is a Conjure checkpoint with its own configuration",
                                  hint: "--config is for weights-only files (e.g. saved by PyTorch)")
            }
            let loaded = try Checkpoint.read(path: path)
            return SamplingWeights(model: loaded.model, run: loaded.run, notes: [], step: loaded.progress.step)
        }
        let run: RunConfig
        if let configPath {
            run = try readConfig(path: configPath)
        } else if let text = file.metadata["config"] {
            guard let r = try? JSONDecoder().decode(RunConfig.self, from: Data(text.utf8)) else {
                throw DataError(file: path, location: "__metadata__", problem: "the 'config' entry is not a valid run configuration",
                                hint: "pass --config RUN/config.json of the run the weights came from")
            }
            run = r
        } else {
            throw ConfigError(option: "--config", problem: "'\(path)' holds weights only (no Conjure metadata), so the model's configuration is unknown",
                              hint: "pass --config RUN/config.json (or a checkpoint) of the run the weights came from")
        }
        do { try run.validate() } catch {
            throw DataError(file: configPath ?? path, problem: "the run configuration is not valid: \(error)")
        }
        var tensors: [String: Tensor] = [:]
        for name in file.order {
            guard let value = file.tensors[name] else { continue }
            if let t = value.tensor {
                if let problem = Checkpoint.invalidValue(name: name, t) {
                    throw DataError(file: path, location: "tensor '\(name)'", problem: "\(problem); the weights are damaged")
                }
                tensors[name] = t
            } else if let t = Checkpoint.batchCounter(name: name, value) {
                tensors[name] = t
            } else {
                if name.hasSuffix("num_batches_tracked") {
                    throw DataError(file: path, location: "tensor '\(name)'", problem: "holds \(value.dtype.rawValue) integers; a batch counter is I64 (PyTorch's dtype), I32 or F32",
                                    hint: "save it as int64, as PyTorch's state_dict does")
                }
                throw DataError(file: path, location: "tensor '\(name)'", problem: "holds \(value.dtype.rawValue) integers; model weights are floating-point",
                                hint: "only num_batches_tracked may be an integer tensor")
            }
        }
        let model = run.model.makeModel()
        let fresh = model.stateDict()
        let needed = fresh.map(\.0).filter { k in model.samplingStatePrefixes.contains { k.hasPrefix($0) } }
        let missing = needed.filter { tensors[$0] == nil }
        if !missing.isEmpty {
            let shown = missing.prefix(4).joined(separator: ", ") + (missing.count > 4 ? " and \(missing.count - 4) more" : "")
            let present = file.order.prefix(3).joined(separator: ", ")
            throw DataError(file: path, problem: "sampling needs \(needed.count) tensors of the \(run.model.preset) model; \(missing.count) are missing: \(shown)",
                            hint: "the names must be Conjure's state_dict names (docs/pytorch.md); the file holds \(file.order.count) tensors\(present.isEmpty ? "" : " (\(present), ...)")")
        }
        var merged: [String: Tensor] = [:]
        for (k, v) in fresh { merged[k] = tensors[k] ?? v }
        do { try model.loadStateDict(merged) } catch let e as StateDictError {
            throw DataError(file: path, location: "tensor '\(e.key)'", problem: e.problem, hint: "were the weights saved from a model of this configuration?")
        }
        var settings = run.model.optimization
        var notes: [String] = []
        var averaged: [(ParameterGroup, [[Float]])] = []
        if settings.emaDecay != nil {
            for g in model.parameterGroups where g.averaged {
                let names = g.namedParameters.map { g.averagePrefix + $0.0 }
                let found = names.filter { tensors[$0] != nil }
                if found.isEmpty {
                    notes.append("note: '\(path)' holds no averaged weights (\(g.averagePrefix)*); sampling with the plain \(g.name) weights")
                    continue
                }
                var arrays: [[Float]] = []
                for ((name, p), full) in zip(g.namedParameters, names) {
                    guard let t = tensors[full], t.shape == p.shape else {
                        throw DataError(file: path, location: "tensor '\(full)'", problem: "missing or not of shape \(p.shape) (the file holds other averaged weights under \(g.averagePrefix); averaged \(name) is needed too)")
                    }
                    arrays.append(t.scalars)
                }
                averaged.append((g, arrays))
            }
            if averaged.isEmpty { settings.emaDecay = nil }
        }
        let optimization = Optimization(model: model, settings: settings, seed: run.model.seed)
        for g in model.parameterGroups where g.averaged && !averaged.contains(where: { $0.0 === g }) {
            // Plain weights for a group without averages in the file.
            if let ema = g.averages { ema.load(g.parameters.map(\.value.scalars)) }
        }
        for (g, arrays) in averaged { g.averages?.load(arrays) }
        _ = optimization
        // Tensors under no name the model knows are not loaded anywhere: say so rather than
        // ignore them silently (a renamed module, a stray buffer).
        var known = Set(fresh.map(\.0))
        for g in model.parameterGroups where g.averaged { for (name, _) in g.namedParameters { known.insert(g.averagePrefix + name) } }
        let unused = file.order.filter { !known.contains($0) }
        if !unused.isEmpty {
            let shown = unused.prefix(4).joined(separator: ", ") + (unused.count > 4 ? " and \(unused.count - 4) more" : "")
            notes.append("note: '\(path)' holds \(unused.count) tensor\(unused.count == 1 ? "" : "s") the \(run.model.preset) model has no place for, not loaded: \(shown)")
        }
        return SamplingWeights(model: model, run: run, notes: notes, step: file.metadata["step"].flatMap(Int.init).flatMap { $0 >= 0 ? $0 : nil })
    }
}
