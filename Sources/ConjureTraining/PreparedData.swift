import Foundation
import ConjureData
import ConjureMetrics
import ConjureModels

/// Data sets Conjure knows by the SHA-256 of their file bytes, so that the reader can say what
/// a sample is (an image) where the file format cannot: the MNIST subset and the 8x8 digits as
/// CSV, gzipped or not (checksums from ../shared/data/README.md). Any other CSV row is a vector
/// unless `--shape` says otherwise.
public enum KnownDataSets {
    /// SHA-256 (lowercase hex) → the kind of one sample.
    public static let specs: [String: DataSpec] = [
        DataFetch.mnistSHA256: .image(channels: 1, height: 28, width: 28),
        "167bbe5fc3dfbce27f9a4c6c1814964f3367677ee226d9811d79cbd41fd5d053": .image(channels: 1, height: 28, width: 28),
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22": .image(channels: 1, height: 8, width: 8),
        "6ebb3d2fee246a4e99363262ddf8a00a3c41bee6014c373ed9d9216ba7f651b8": .image(channels: 1, height: 8, width: 8),
    ]

    /// SHA-256 of a regular file's bytes, nil for folders, built-in data sets and unreadable paths.
    public static func contentSHA256(path: String) -> String? {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue,
              let data = FileManager.default.contents(atPath: path) else { return nil }
        return DataFetch.sha256Hex(of: data)
    }
}

/// Loads, checks and normalises training data: flat samples `[N, D]` in the model's range, the
/// data kind, labels, and the held-out split. Normalisation statistics are fitted on the
/// training split only.
public struct PreparedData {
    /// Training samples `[N, D]`, normalised (8-bit data kept as bytes, see ``TrainingRows``).
    public var train: TrainingRows
    /// Labels of the training samples, when the data has labels.
    public var labels: [Int]?
    /// The normalisation (fitted on the training split).
    public var normalization: NormalizationStats
    /// What one sample is (set by the reader or `--shape`).
    public var spec: DataSpec
    /// The data file (or built-in data set name).
    public var source: String
    /// Indices (into the cleaned data set) of the held-out samples.
    public var heldOut: [Int]
    /// Samples dropped by cleaning.
    public var dropped: Int
    /// SHA-256 of the data file's bytes (nil for folders and built-in sets).
    public var contentSHA256: String?
    /// What the reader did that the user should know (``Dataset/notes``: a channels-last array
    /// transposed, a header column taken as labels), printed when training starts.
    public var notes: [String] = []
    /// The text data set (vocabulary, split, encoded parts) when the file is text, else nil.
    public var text: TextDataset? = nil
    /// The audio folder options as applied (the clips' sample rate and length filled in), so a
    /// resume or an evaluation reads the folder the same way; nil for other data.
    public var audio: AudioFolderOptions? = nil

    /// `[C, H, W]` when the data are images.
    public var imageShape: [Int]? { spec.imageShape }

    /// Loads the data file (or generates a built-in synthetic set: ring8, grid25, moons) and
    /// picks up labels (raw units, the reader's sample shape).
    ///
    /// - Throws: ``DataError`` for unreadable or invalid data, ``ConfigError`` for options that
    ///   do not fit the data.
    public static func loadDataset(_ o: TrainOptions) throws -> Dataset {
        guard let path = o.data ?? DataFetch.defaultDataPath(in: o.dataDirectory) else {
            throw ConfigError(option: "--data", problem: "no data given and none found in \(o.dataDirectory)/",
                              hint: "pass --data FILE, or run `conjure data fetch mnist` to get the 5000-image MNIST subset")
        }
        if let mix = Mixture2D(rawValue: path), !FileManager.default.fileExists(atPath: path) {
            var rng = RandomStream.syntheticData.generator(seed: o.model.seed)
            return Dataset(samples: mix.sample(n: o.syntheticCount, rng: &rng), source: path, format: .npy)
        }
        var options = DatasetOptions(labelColumn: o.labelColumn, clean: o.clean, declaredRange: o.dataRange)
        options.layout = o.layout
        options.audio = o.audio
        let format = try Dataset.detectFormat(path: path)
        // Sound is already in [-1, 1] at the format's full scale: that is its range, not the
        // clips' own extremes.
        if format == .audio && options.declaredRange == nil { options.declaredRange = -1 ... 1 }
        if o.labelColumn != nil && format != .csv {
            throw ConfigError(option: "--label-column", problem: "applies to CSV files only; \(path) is \(format.rawValue)")
        }
        if format == .csv && o.labelColumn == nil, let named = try CSVReader.namedLabelColumn(path: path) {
            options.labelColumn = named  // a header column named label, class, target or y
        }
        if format == .csv && options.labelColumn == nil {
            // Parse once for the common case, a CSV whose last column is the label (MNIST): the
            // load with that label column is kept when its shape and integer values meet
            // ``defaultCSVLabelColumn(path:)``'s rule; otherwise the file is probed first.
            var last = options
            last.labelColumn = .last
            if let ds = try? Dataset.load(path: path, options: last), ds.samples.rank == 2 {
                let pixels = ds.samples.shape[1], side = Int(Double(pixels).squareRoot().rounded())
                let integers = ds.samples.withUnsafeScalars { b in
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

    /// The label column of a CSV without `--label-column`: the last column when every row has
    /// `D + 1` integer columns and the file is a known labelled image set, or when a row has
    /// `s*s + 1` integer columns (the layout of the MNIST and digits CSVs), else none. This
    /// decides labels only: the data kind of such a file is still a vector unless the file is
    /// known (``KnownDataSets``) or `--shape` is given.
    public static func defaultCSVLabelColumn(path: String) throws -> ColumnSelector? {
        if let named = try CSVReader.namedLabelColumn(path: path) { return named }
        let probe = try CSVReader.read(path: path, options: CSVOptions(delimiter: CSVOptions.delimiter(forPath: path), labelColumn: nil, clean: .drop))
        let cols: Int = probe.values.rank == 2 ? probe.values.shape[1] : 0
        let pixels: Int = Swift.max(cols - 1, 0)
        let side = Int(Double(pixels).squareRoot().rounded())
        return cols > 2 && side * side == pixels && probe.allIntegers ? .last : nil
    }

    /// The data kind of a loaded data set: `--shape` when given, else what the reader saw (rank-3
    /// samples `[C, H, W]` and rank-2 `[H, W]` are images, rank-1 vectors), upgraded to an image
    /// for a known data set.
    ///
    /// - Throws: ``ConfigError`` naming `--shape` when it does not fit the data.
    public static func spec(of dataset: Dataset, shape: String?, contentSHA256: String?) throws -> DataSpec {
        let count = dataset.sampleShape.reduce(1, *)
        if let shape { return try DataSpec.parse(shape: shape, count: count) }
        if let h = contentSHA256, let known = KnownDataSets.specs[h], known.flatCount == count { return known }
        if dataset.format == .audio, dataset.sampleShape.count == 2 {
            return .sequence(channels: dataset.sampleShape[0], length: dataset.sampleShape[1])
        }
        return DataSpec.fromSampleShape(dataset.sampleShape) ?? .vector(count)
    }

    /// Loads the data, splits off the held-out samples (stratified by label, seeded), fits the
    /// normalisation on the training split and applies it.
    ///
    /// - Throws: ``DataError`` for unreadable or invalid data, ``ConfigError`` for options that
    ///   do not fit the data (naming `--data` when a text model is given a file that is not
    ///   `.txt`).
    public static func load(_ o: TrainOptions) throws -> PreparedData {
        if let path = o.data, isText(path: path) { return try loadText(o, path: path) }
        if o.model.tokenData != nil {
            // Before any option that only fits the other kind of data is blamed (--normalize).
            let path = o.data ?? DataFetch.defaultDataPath(in: o.dataDirectory)
            throw ConfigError(option: "--data", problem: "--model \(o.model.preset) models text and needs a UTF-8 text (.txt) file; "
                              + (path.map { "\($0) is not one" } ?? "none was given"),
                              hint: "pass --data FILE.txt (`conjure data fetch names` writes data/names.txt), or choose a model for this data")
        }
        var dataset = try loadDataset(o)
        let path = dataset.source
        let kind = o.normalization ?? {
            switch o.model.outputActivation {
            case .tanh: return .symmetric
            case .sigmoid: return .unit
            case .identity: return .zscore
            }
        }()
        try o.model.checkNormalization(kind)
        let hash = KnownDataSets.contentSHA256(path: path)
        let spec = try spec(of: dataset, shape: o.shape, contentSHA256: hash)
        dataset = dataset.flattened()
        var heldOut: [Int] = []
        var trainIdx = Array(0..<dataset.count)
        if o.heldOutFraction > 0 {
            (trainIdx, heldOut) = dataset.splitHeldOut(fraction: o.heldOutFraction, seed: o.model.seed)
        }
        if trainIdx.isEmpty, let own = dataset.predefinedHeldOut {
            throw DataError(file: path, problem: "the data set's own test split (FSDD recordings 0-4 of each digit and speaker) holds all \(own.count) samples, so none is left to train on",
                            hint: "add recordings numbered 5 and up, or train on everything with --held-out 0")
        }
        let train = dataset.subset(trainIdx)
        let stats = o.fixedNormalization ?? NormalizationStats.fit(kind, dataset: train, range: o.dataRange)
        if train.count < o.model.batchSize {
            throw ConfigError(option: "--batch-size", problem: "\(o.model.batchSize) is larger than the \(train.count) training samples in \(path)",
                              hint: "use a smaller batch size")
        }
        var prepared = PreparedData(train: TrainingRows(raw: train.samples, normalization: stats), labels: train.labels, normalization: stats, spec: spec,
                                    source: path, heldOut: heldOut, dropped: dataset.droppedSamples, contentSHA256: hash, notes: dataset.notes)
        if dataset.format == .audio {
            var applied = o.audio
            applied.sampleRate = dataset.sampleRate
            applied.length = dataset.sampleShape.last
            prepared.audio = applied
            if o.heldOutFraction > 0 && dataset.predefinedHeldOut != nil {
                prepared.notes.append("held out: the data set's own test split (FSDD recordings 0-4 of each digit and speaker, \(heldOut.count) clips), not a random \(Int(o.heldOutFraction * 100))%")
            }
        }
        return prepared
    }
}
