import Foundation
import Crypto
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureNN

/// Training, saving and loading the domain classifier used to judge samples.
public enum ClassifierTool {
    /// The `format` value in a classifier file's `__metadata__`; other values are refused.
    public static let format = "conjure.classifier.v1"

    /// A freshly trained classifier with what it needs to be saved and its accuracies.
    public struct Trained {
        /// The trained network.
        public var classifier: Classifier
        /// The normalisation applied to raw inputs before the network (saved with it).
        public var normalization: NormalizationStats
        /// Fraction of held-out samples classified correctly, in [0, 1]; NaN without a held-out split.
        public var heldOutAccuracy: Double
        /// Fraction of training samples classified correctly, in [0, 1].
        public var trainAccuracy: Double
    }

    /// Trains on a labelled data set with a stratified held-out split and reports accuracy.
    ///
    /// - Parameter onEpoch: called after each epoch with (epoch, epochs, mean training loss in
    ///   nats), for progress lines.
    /// - Throws: ``DataError`` for unreadable data or labels that are not classes 0..K-1 that all
    ///   occur; ``ConfigError`` naming `--data` when the data is text (`.txt`) or has no labels.
    /// A folder of sound files (read with `audio`) gets the spectrogram CNN
    /// (``Classifier/init(frontEnd:classes:rng:)``) and, for FSDD, the data set's own test split
    /// as the held-out part (``Dataset/predefinedHeldOut``).
    public static func train(data path: String, epochs: Int, heldOut: Double, seed: UInt64,
                             labelColumn: ColumnSelector? = nil, audio: AudioFolderOptions? = nil,
                             onEpoch: ((Int, Int, Float) -> Void)? = nil) throws -> Trained {
        if PreparedData.isText(path: path) {
            throw ConfigError(option: "--data", problem: "\(path) is text; the domain classifier needs labelled images or vectors (IDX, CSV, .npy, a PNG folder) or a folder of sound files",
                              hint: "a text model is evaluated by its held-out likelihood: `conjure evaluate --checkpoint F`")
        }
        if let mixture = Mixture2D(rawValue: path), !FileManager.default.fileExists(atPath: path) {
            throw ConfigError(option: "--data", problem: "\(mixture.rawValue) is a built-in 2-D point set without class labels; the domain classifier needs labelled images or vectors or a folder of sound files",
                              hint: "a 2-D mixture run is scored by its modes: `conjure evaluate --checkpoint F`")
        }
        var o = TrainOptions(runDirectory: "", model: GANConfig.ganPreset)
        o.data = path
        o.labelColumn = labelColumn
        if let audio { o.audio = audio }
        if try Dataset.detectFormat(path: path) == .audio {
            let raw = try PreparedData.loadDataset(o)
            let spec = DataSpec.sequence(channels: raw.sampleShape[0], length: raw.sampleShape[1])
            let ds = raw.flattened()
            guard ds.labels != nil else {
                throw ConfigError(option: "--data", problem: "\(path) has no labels", hint: "name the classes by subfolder, or give --label-pattern")
            }
            let (trainIdx, testIdx) = ds.splitHeldOut(fraction: heldOut, seed: seed)
            let stats = NormalizationStats.fit(.symmetric, dataset: ds.subset(trainIdx), range: -1 ... 1)
            return try train(dataset: ds, train: trainIdx, heldOut: testIdx, normalization: stats, epochs: epochs, seed: seed,
                             spec: spec, onEpoch: onEpoch)
        }
        o.heldOutFraction = 0
        o.model.batchSize = 2
        var prepared = try PreparedData.load(o)
        guard let labels = prepared.labels else {
            throw ConfigError(option: "--data", problem: "\(path) has no labels", hint: "pass --label-column for a CSV, or an IDX file with its labels file")
        }
        try checkClassCount(labels, source: path)
        try checkClassIndices(labels, source: path, for: "a classifier")
        let (trainIdx, testIdx) = splitHeldOut(count: labels.count, fraction: heldOut, seed: seed, labels: labels)
        let x = prepared.train
        let classes = (labels.max() ?? 0) + 1
        var rng = RandomStream.initialization.generator(seed: seed)
        let clf = Classifier(inputDim: x.width, classes: max(classes, 2), rng: &rng)
        clf.train(x: x.gathered(rows: trainIdx), labels: trainIdx.map { labels[$0] }, epochs: epochs, rng: &rng,
                  onEpoch: onEpoch.map { f in { f($0, epochs, $1) } })
        let testAcc = testIdx.isEmpty ? .nan : clf.accuracy(x: x.gathered(rows: testIdx), labels: testIdx.map { labels[$0] })
        let trainAcc = clf.accuracy(x: x.gathered(rows: trainIdx), labels: trainIdx.map { labels[$0] })
        prepared.labels = nil
        return Trained(classifier: clf, normalization: prepared.normalization, heldOutAccuracy: testAcc, trainAccuracy: trainAcc)
    }

    /// Writes `t` as safetensors: the network's `state_dict` under `classifier.` and `__metadata__`
    /// `format`, `input_dim`, `classes`, `hidden`, `normalization` (JSON) and `held_out_accuracy`.
    /// The same classifier always gives the same bytes.
    /// - Throws: ``DataError`` when the file cannot be written.
    public static func save(_ t: Trained, to path: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]  // the same bytes for the same classifier
        let norm = String(decoding: try enc.encode(t.normalization), as: UTF8.self)
        let hidden = t.classifier.net.layers.compactMap { ($0 as? Linear)?.weight.shape[0] }.dropLast()
        var metadata = [
            "format": format, "input_dim": String(t.classifier.inputDim), "classes": String(t.classifier.classes),
            "hidden": hidden.map(String.init).joined(separator: ","), "normalization": norm,
            "held_out_accuracy": String(t.heldOutAccuracy),
        ]
        if let f = t.classifier.frontEnd { metadata["front_end"] = String(decoding: try enc.encode(f), as: UTF8.self) }
        try SafeTensors.write(tensors: t.classifier.net.stateDict(prefix: "classifier."), metadata: metadata, to: path, createDirectories: true)
    }

    /// A classifier read back from a file by ``load(path:)``.
    public struct Loaded {
        /// The network with the saved weights.
        public var classifier: Classifier
        /// The normalisation to apply to raw inputs (data units) before the network.
        public var normalization: NormalizationStats
        /// Lower-case hex SHA-256 of the file's bytes, reported with scores so they name their judge.
        public var sha256: String
        /// Accuracy on the held-out split it was trained with (nil when unknown).
        public var heldOutAccuracy: Double?
    }

    /// Trains on `train` rows of a labelled (flattened, raw-unit) dataset and measures accuracy
    /// on `heldOut` rows; inputs are normalised with `normalization`. Sound (`spec` a sequence,
    /// or an audio-folder dataset) gets the spectrogram CNN with its front end fitted on the
    /// training rows; everything else the MLP.
    ///
    /// - Throws: ``ConfigError`` when the data has no labels, fewer than two classes, or is sound
    ///   of more than one channel; ``DataError`` when the labels are not classes 0..K-1 that all
    ///   occur.
    public static func train(dataset: Dataset, train: [Int], heldOut: [Int], normalization: NormalizationStats,
                             epochs: Int, seed: UInt64, spec: DataSpec? = nil, onEpoch: ((Int, Int, Float) -> Void)? = nil) throws -> Trained {
        guard let labels = dataset.labels else {
            throw ConfigError(option: "--data", problem: "\(dataset.source) has no labels for a classifier")
        }
        try checkClassCount(labels, source: dataset.labelsSource ?? dataset.source)
        try checkClassIndices(labels, source: dataset.labelsSource ?? dataset.source, for: "a classifier")
        let x = normalization.apply(dataset.flattened().samples)
        var rng = RandomStream.classifierBatches.generator(seed: seed)
        let classes = max((labels.max() ?? 0) + 1, 2)
        let clf: Classifier
        if case .sequence(let c, let t)? = spec ?? (dataset.format == .audio ? .sequence(channels: 1, length: x.shape[1]) : nil) {
            guard c == 1 else {
                throw ConfigError(option: "--data", problem: "the sound classifier takes mono clips; \(dataset.source) has \(c) channels", hint: "read the folder without --keep-channels")
            }
            let front = SpectrogramFrontEnd(length: t)
            guard front.frames >= 8 else {
                throw ConfigError(option: "--length", problem: "\(t) samples give \(front.frames) spectrogram frames; the sound classifier needs at least 8 (\(front.size + 7 * front.hop) samples)")
            }
            clf = Classifier(frontEnd: front.fitted(on: x.gathered(rows: train)), classes: classes, rng: &rng)
        } else {
            clf = Classifier(inputDim: x.shape[1], classes: classes, rng: &rng)
        }
        clf.train(x: x.gathered(rows: train), labels: train.map { labels[$0] }, epochs: epochs, rng: &rng,
                  onEpoch: onEpoch.map { f in { f($0, epochs, $1) } })
        let testAcc = heldOut.isEmpty ? .nan : clf.accuracy(x: x.gathered(rows: heldOut), labels: heldOut.map { labels[$0] })
        let trainAcc = clf.accuracy(x: x.gathered(rows: train), labels: train.map { labels[$0] })
        return Trained(classifier: clf, normalization: normalization, heldOutAccuracy: testAcc, trainAccuracy: trainAcc)
    }

    /// Reads a classifier written by ``save(_:to:)``.
    /// - Throws: ``DataError`` naming `path` when the file is unreadable, is not a Conjure classifier
    ///   (format or metadata), a tensor is missing or mis-shaped, or a weight is not finite.
    public static func load(path: String) throws -> Loaded {
        let file = try SafeTensors.read(path: path)
        guard file.metadata["format"] == format, let d = file.metadata["input_dim"].flatMap(Int.init),
              let k = file.metadata["classes"].flatMap(Int.init),
              let normText = file.metadata["normalization"],
              let norm = try? JSONDecoder().decode(NormalizationStats.self, from: Data(normText.utf8)) else {
            throw DataError(file: path, location: "__metadata__", problem: "not a Conjure classifier", hint: "train one with `conjure classifier train`")
        }
        let hidden = (file.metadata["hidden"] ?? "").split(separator: ",").compactMap { Int($0) }
        var rng = RandomGenerator(seed: 0)
        let clf: Classifier
        if let text = file.metadata["front_end"] {
            guard let f = try? JSONDecoder().decode(SpectrogramFrontEnd.self, from: Data(text.utf8)), f.length == d,
                  f.size >= 4, f.size % 2 == 0, f.size <= 65536, f.hop >= 1, f.frames >= 8, f.bins >= 8, k >= 2, f.std > 0, f.mean.isFinite else {
                throw DataError(file: path, location: "__metadata__ 'front_end'", problem: "not a valid spectrogram front end for \(d) inputs")
            }
            clf = Classifier(frontEnd: f, classes: k, rng: &rng)
        } else {
            clf = Classifier(inputDim: d, classes: k, hidden: hidden, rng: &rng)
        }
        var tensors: [String: Tensor] = [:]
        for (name, v) in file.tensors { tensors[name] = v.tensor }
        do { try clf.net.loadStateDict(tensors, prefix: "classifier.") } catch let e as StateDictError {
            throw DataError(file: path, location: "tensor '\(e.key)'", problem: e.problem)
        }
        for (name, p) in clf.net.allNamedParameters(prefix: "classifier.") {
            if let i = p.value.scalars.firstIndex(where: { !$0.isFinite }) {
                throw DataError(file: path, location: "tensor '\(name)'", problem: "element \(i) is \(p.value.scalars[i]); the classifier holds non-finite weights")
            }
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let hash = SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
        return Loaded(classifier: clf, normalization: norm, sha256: hash,
                      heldOutAccuracy: file.metadata["held_out_accuracy"].flatMap(Double.init).flatMap { $0.isNaN ? nil : $0 })
    }

    /// How confidently and evenly a classifier labels samples (given in the data's own units).
    public struct Score: Codable {
        /// Number of samples scored.
        public var samples: Int
        /// Fraction of samples whose top class probability is at least `threshold`.
        public var confidentFraction: Double
        /// The top-class probability from which a sample counts as confident (default 0.9).
        public var threshold: Double
        /// Fraction of samples per predicted class (all samples, argmax).
        public var classFractions: [Double]
        /// SHA-256 of the classifier file used (``Loaded/sha256``).
        public var classifierSHA256: String
    }

    /// Scores `samples` `[N, ...]` (data units, flattened per sample): the fraction labelled with
    /// top probability ≥ `threshold` and the fraction per predicted class (argmax, ties to the
    /// lowest class). N = 0 gives zero fractions.
    public static func score(_ loaded: Loaded, samples: Tensor, threshold: Double = 0.9) -> Score {
        let n = samples.shape[0]
        let x = loaded.normalization.apply(samples.reshaped([n, -1]))
        let p = loaded.classifier.probabilities(x)
        let k = loaded.classifier.classes
        var confident = 0
        var hist = [Int](repeating: 0, count: k)
        for i in 0..<n {
            let row = Array(p.scalars[(i * k)..<((i + 1) * k)])
            let m = row.max()!
            hist[row.firstIndex(of: m)!] += 1
            if Double(m) >= threshold { confident += 1 }
        }
        return Score(samples: n, confidentFraction: Double(confident) / Double(max(n, 1)), threshold: threshold,
                     classFractions: hist.map { Double($0) / Double(max(n, 1)) }, classifierSHA256: loaded.sha256)
    }
}
