import Foundation

// Longer than 400 lines on purpose: format detection, loading options, cleaning, labels and the held-out split are the one public entry point of every reader.

/// Options for ``Dataset/load(path:options:)``.
public struct DatasetOptions: Sendable, Equatable {
    /// The file format, or `nil` to detect it (see ``Dataset/detectFormat(path:)``).
    public var format: Dataset.Format?
    /// CSV: the column holding integer class labels; `nil` (no labels) by default. The MNIST
    /// and digits CSV files keep it last: pass ``ColumnSelector/last``.
    public var labelColumn: ColumnSelector?
    /// CSV: header detection; `.auto` by default.
    public var csvHeader: CSVHeaderPolicy
    /// CSV: the field separator; `nil` means `,` (or a tab for `.tsv` files).
    public var csvDelimiter: UInt8?
    /// What to do with samples holding missing or non-finite values; `.error` by default.
    public var clean: CleanPolicy
    /// A labels file for `.npy` or IDX samples: a 1-d `.npy` or an IDX `idx1` file of
    /// non-negative integers, one per sample. `nil` by default.
    public var labelsPath: String?
    /// IDX: look for the conventional sibling labels file (`train-images-idx3-ubyte` →
    /// `train-labels-idx1-ubyte`, with or without `.gz`) when ``labelsPath`` is `nil`;
    /// `true` by default.
    public var siblingLabels: Bool
    /// `.npy`/IDX 4-d arrays: their axis order, or `nil` (the default) to detect it with
    /// ``ArrayLayout/detect(shape:)``. Channels-last arrays are transposed to `[N, C, H, W]` and
    /// a line saying so is added to ``Dataset/notes``.
    public var layout: ArrayLayout?
    /// The value range the user declares for the data (`--data-range`), or `nil`. When set,
    /// values outside it are an error (``Dataset/checkDeclaredRange(_:option:)``); when `nil`,
    /// integer data in a wide type must look like 8- or 16-bit pixels
    /// (``Dataset/checkIntegerRange()``).
    public var declaredRange: ClosedRange<Float>?
    /// CSV without ``labelColumn``: take a header column named `label`, `class`, `target` or `y`
    /// (any case) as the label column (``CSVReader/labelColumnNames``); `true` by default.
    public var labelColumnFromHeader: Bool
    /// PNG folders: the largest decoded size of one image, in bytes
    /// (``PNGReader/decode(bytes:file:maxDecodedBytes:)``); ``PNGReader/defaultMaxDecodedBytes``
    /// by default.
    public var maxImageBytes: Int
    /// Audio folders: labels, channel mixing, clip length, sample rate and value scaling
    /// (``AudioFolderOptions``; its defaults by default).
    public var audio: AudioFolderOptions = AudioFolderOptions()

    /// Options with the defaults listed on each property (format detected, no label column, header
    /// detected, `,`/tab, missing values an error, sibling IDX labels, layout detected, no declared
    /// range, label column from the header, PNG size bound ``PNGReader/defaultMaxDecodedBytes``).
    public init(format: Dataset.Format? = nil, labelColumn: ColumnSelector? = nil,
                csvHeader: CSVHeaderPolicy = .auto, csvDelimiter: UInt8? = nil, clean: CleanPolicy = .error,
                labelsPath: String? = nil, siblingLabels: Bool = true, layout: ArrayLayout? = nil,
                declaredRange: ClosedRange<Float>? = nil, labelColumnFromHeader: Bool = true,
                maxImageBytes: Int = PNGReader.defaultMaxDecodedBytes) {
        self.layout = layout
        self.declaredRange = declaredRange
        self.labelColumnFromHeader = labelColumnFromHeader
        self.maxImageBytes = maxImageBytes
        self.format = format
        self.labelColumn = labelColumn
        self.csvHeader = csvHeader
        self.csvDelimiter = csvDelimiter
        self.clean = clean
        self.labelsPath = labelsPath
        self.siblingLabels = siblingLabels
    }
}

/// A data set as loaded from a file: raw samples converted to Float32 plus optional labels.
///
/// Sample layout, by source:
/// - `.npy`: the stored shape `[N, ...]`; a 1-d array `(N,)` becomes `[N, 1]` (N samples of
///   one feature); a 0-d array is an error ("array has no sample axis").
/// - IDX: the stored shape, e.g. `[N, 28, 28]` for MNIST images; 1-d becomes `[N, 1]`.
/// - CSV: `[rows, columns]` without the label column.
/// - PNG folder: `[N, C, H, W]`, values 0...255 (see ``PNGReader/loadFolder(_:)``).
/// - Audio folder (WAV/FLAC): `[N, C, T]` clips, values in `[-1, 1]` (see
///   ``AudioFolder/load(path:options:)``), with ``sampleRate`` set.
///
/// Values keep their original units (0...255 pixels stay 0...255); use
/// ``NormalizationStats`` to scale them. Every loaded dataset has at least one sample and only
/// finite values.
public struct Dataset: Sendable {
    /// Supported file formats.
    public enum Format: String, Sendable, Codable, CaseIterable {
        /// NumPy `.npy` (optionally gzipped).
        case npy
        /// MNIST IDX (`*-idx3-ubyte`, optionally `.gz`).
        case idx
        /// Comma-separated values (optionally `.gz`).
        case csv
        /// A folder of `*.png` files.
        case png
        /// A folder of `.wav`/`.flac` sound files, read through libsndfile (``AudioFolder``).
        case audio
    }

    /// The samples, shape `[N, ...]` with `N >= 1`.
    public var samples: Tensor
    /// One non-negative integer class label per sample, or `nil`.
    public var labels: [Int]?
    /// The path the samples were loaded from (a file, or the folder for PNG).
    public var source: String
    /// The file format.
    public var format: Format
    /// The element type in the file (``SourceDType/text`` for CSV, `uint8` for PNG pixels).
    public var dtype: SourceDType
    /// Where the labels came from (the samples file itself for CSV), or `nil`.
    public var labelsSource: String?
    /// How many samples were removed by ``CleanPolicy/drop``.
    public var droppedSamples: Int
    /// For PNG folders, the image files in sample order; otherwise `nil`.
    public var files: [String]?
    /// Frames per second of an audio data set's clips; nil for other formats.
    public var sampleRate: Int?
    /// Sample indices of a split the data set defines itself (FSDD's recordings 0-4 of each
    /// digit and speaker; ``AudioFolder/fsddSplit()``), used by ``splitHeldOut(fraction:seed:)``
    /// instead of a random split; nil for data without one. ``subset(_:)`` clears it.
    public var predefinedHeldOut: [Int]?
    /// What loading did to the data that the user should hear about, one sentence each (for
    /// example that a channels-last array was transposed); empty when nothing. The library
    /// prints nothing: callers show these lines.
    public var notes: [String] = []

    /// Creates a dataset from samples already in memory (e.g. a synthetic one).
    ///
    /// - Precondition: `samples` has at least one axis; `labels`, when given, has one entry per
    ///   sample.
    public init(samples: Tensor, labels: [Int]? = nil, source: String, format: Format, dtype: SourceDType = .float32,
                labelsSource: String? = nil, droppedSamples: Int = 0, files: [String]? = nil) {
        precondition(samples.rank >= 1, "Dataset: samples of shape \(samples.shape) have no sample axis")
        precondition(labels == nil || labels!.count == samples.shape[0],
                     "Dataset: \(labels?.count ?? 0) labels for \(samples.shape[0]) samples")
        self.samples = samples
        self.labels = labels
        self.source = source
        self.format = format
        self.dtype = dtype
        self.labelsSource = labelsSource
        self.droppedSamples = droppedSamples
        self.files = files
    }

    /// Number of samples `N`.
    public var count: Int { samples.shape[0] }
    /// The shape of one sample (`samples.shape` without the leading `N`).
    public var sampleShape: [Int] { Array(samples.shape.dropFirst()) }
    /// Number of values per sample.
    public var featureCount: Int { sampleShape.reduce(1, *) }
    /// `max(label) + 1` when there are labels, else `nil`.
    public var classCount: Int? { labels.map { ($0.max() ?? -1) + 1 } }

    /// A plausible image shape `[C, H, W]` for one sample: `[C, H, W]` for 4-d samples,
    /// `[1, H, W]` for 3-d ones, `[1, s, s]` for `[N, D]` with `D = s * s` (784 → 1×28×28,
    /// 64 → 1×8×8); otherwise `nil`.
    public var inferredImageShape: [Int]? {
        let s = sampleShape
        switch s.count {
        case 3: return s
        case 2: return [1] + s
        case 1:
            let side = Int(Double(s[0]).squareRoot().rounded())
            return side * side == s[0] && side > 1 ? [1, side, side] : nil
        default: return nil
        }
    }

    // MARK: Loading

    /// Detects a file's format: a directory is an audio folder when it holds `.wav`/`.flac`
    /// files and no `.png` (searched recursively, hidden entries skipped), else a PNG folder; then by name (`.npy`, `.csv`,
    /// `.tsv`, `.txt`, names containing `idx` or `-ubyte`, each optionally followed by `.gz`);
    /// failing that by content (the `.npy` magic, the IDX magic `00 00 <type> <dims>`, or
    /// printable text for CSV).
    ///
    /// - Throws: ``DataError`` when the path does not exist or the format cannot be told.
    public static func detectFormat(path: String) throws -> Format {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DataError(file: path, problem: "no such file or folder")
        }
        if isDir.boolValue { return folderHoldsAudioOnly(path) ? .audio : .png }
        if AudioFile.extensions.contains((path as NSString).pathExtension.lowercased()) {
            throw DataError(file: path, problem: "a single sound file is not a dataset",
                            hint: "point at the folder that holds the .wav or .flac files")
        }
        if let f = formatFromName(path) { return f }
        let head = try sniff(path)
        if head.starts(with: [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]) { return .npy }
        if head.count >= 4 && head[0] == 0 && head[1] == 0 && [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E].contains(head[2]) {
            return .idx
        }
        if head.starts(with: [0x89, 0x50, 0x4E, 0x47]) {
            throw DataError(file: path, problem: "a single PNG file is not a dataset",
                            hint: "point at the folder that holds the PNG images")
        }
        if !head.isEmpty && head.allSatisfy({ $0 == 9 || $0 == 10 || $0 == 13 || ($0 >= 32 && $0 != 127) }) { return .csv }
        throw DataError(file: path, problem: "unknown data format",
                        hint: "supported: .npy, MNIST IDX (*-idx3-ubyte), .csv (each optionally .gz), or a folder of .png files")
    }

    /// Whether a folder (recursively, hidden entries skipped) holds sound files and no PNG.
    static func folderHoldsAudioOnly(_ path: String) -> Bool {
        guard let e = FileManager.default.enumerator(atPath: path) else { return false }
        var audio = false
        while let rel = e.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            if name.hasPrefix(".") { e.skipDescendants(); continue }
            let ext = (name as NSString).pathExtension.lowercased()
            if ext == "png" { return false }
            if AudioFile.extensions.contains(ext) { audio = true }
        }
        return audio
    }

    static func formatFromName(_ path: String) -> Format? {
        var name = (path as NSString).lastPathComponent.lowercased()
        if name.hasSuffix(".gz") { name.removeLast(3) }
        if name.hasSuffix(".npy") { return .npy }
        if name.hasSuffix(".csv") || name.hasSuffix(".tsv") || name.hasSuffix(".txt") { return .csv }
        if name.contains("idx") || name.contains("-ubyte") || name.contains(".ubyte") { return .idx }
        return nil
    }

    /// The first bytes of a file's content (inflated when gzipped).
    static func sniff(_ path: String) throws -> [UInt8] {
        let raw = try Gzip.readRawFile(atPath: path)
        if Gzip.isGzip(raw) { return Array(try Gzip.decompress(raw, file: path).prefix(512)) }
        return Array(raw.prefix(512))
    }

    /// Loads a dataset, detecting its format unless ``DatasetOptions/format`` is set.
    ///
    /// Checks made for every format: the array must have a sample axis ("array has no sample
    /// axis" for 0-d arrays), at least one sample ("dataset has 0 samples"), and only finite
    /// values — the first NaN/infinity is an error naming the file and its index, unless
    /// ``DatasetOptions/clean`` is `.drop`, which removes the samples that hold one (counted in
    /// ``droppedSamples``). Labels must be non-negative integers, one per sample.
    ///
    /// - Parameters:
    ///   - path: a `.npy`, IDX or CSV file (each optionally gzipped), or a folder of PNG files.
    ///   - options: format, label and cleaning options.
    /// - Returns: the dataset; see the type's documentation for the sample shapes.
    /// - Throws: ``DataError`` naming the file and the problem, from the readers (bad magic,
    ///   truncated data, bad header, unsupported dtype, ragged CSV rows, missing cells, corrupt
    ///   PNGs, ...) and from the checks above.
    public static func load(path: String, options: DatasetOptions = DatasetOptions()) throws -> Dataset {
        let d = try loadUnchecked(path: path, options: options)
        if let r = options.declaredRange { try d.checkDeclaredRange(r) } else { try d.checkIntegerRange() }
        return d
    }

    static func loadUnchecked(path: String, options: DatasetOptions) throws -> Dataset {
        let format = try options.format ?? detectFormat(path: path)
        switch format {
        case .npy:
            let array = try NPYReader.read(path: path)
            return try fromArray(array, path: path, format: .npy, options: options)
        case .idx:
            let array = try IDXReader.read(path: path)
            return try fromArray(array, path: path, format: .idx, options: options)
        case .csv:
            let csv = CSVOptions(header: options.csvHeader, delimiter: options.csvDelimiter ?? CSVOptions.delimiter(forPath: path),
                                 labelColumn: options.labelColumn, clean: options.clean,
                                 labelColumnFromHeader: options.labelColumnFromHeader)
            let table = try CSVReader.read(path: path, options: csv)
            if table.values.shape[1] == 0 && table.values.shape[0] > 0 {
                throw DataError(file: path, problem: "no feature columns (the only column is the label column)")
            }
            try checkCount(table.values.shape[0], path: path, dropped: table.droppedRows)
            var d = Dataset(samples: table.values, labels: table.labels, source: path, format: .csv, dtype: .text,
                            labelsSource: table.labels == nil ? nil : path, droppedSamples: table.droppedRows)
            if options.labelColumn == nil, let j = table.labelColumnIndex, let name = table.header?[j] {
                d.notes.append("column \(j + 1) ('\(sanitizedForMessage(name))') of the header holds the labels")
            }
            return d
        case .png:
            let (images, files) = try PNGReader.loadFolder(path, maxDecodedBytes: options.maxImageBytes)
            return Dataset(samples: images, labels: nil, source: path, format: .png, dtype: .uint8, files: files)
        case .audio:
            let folder = try AudioFolder.load(path: path, options: options.audio)
            var d = Dataset(samples: folder.samples, labels: folder.labels, source: path, format: .audio, dtype: .float32,
                            labelsSource: folder.labels == nil ? nil : path, files: folder.files)
            d.sampleRate = folder.sampleRate
            if options.audio.labels == .automatic {
                switch AudioFolder.resolvedLabelSource(files: folder.files) {
                case .pattern(let p): d.notes.append("labels: the digit of the FSDD file names (pattern '\(p)')")
                case .subfolders: d.notes.append("labels: the subfolder names (\(folder.labelNames?.count ?? 0) classes)")
                default: break
                }
            }
            d.predefinedHeldOut = (try? folder.fsddSplit())?.test
            if folder.croppedCount > 0 {
                d.notes.append("\(folder.croppedCount) of \(folder.files.count) clips are longer than \(folder.length) samples and were cropped around their centre")
            }
            if folder.paddedCount > 0 {
                d.notes.append("\(folder.paddedCount) of \(folder.files.count) clips are shorter than \(folder.length) samples and were zero-padded at the end")
            }
            return d
        }
    }

    static func checkCount(_ n: Int, path: String, dropped: Int) throws {
        if n == 0 {
            throw DataError(file: path,
                            problem: dropped > 0 ? "dataset has 0 samples after dropping \(dropped) with missing or non-finite values"
                                                 : "dataset has 0 samples",
                            hint: "a dataset needs at least one sample")
        }
    }

    static func fromArray(_ array: LoadedArray, path: String, format: Format, options: DatasetOptions) throws -> Dataset {
        var t = array.tensor
        guard t.rank >= 1 else {
            throw DataError(file: path, problem: "array has no sample axis (it is 0-d, shape ())",
                            hint: "save an array of shape [N, ...] with one row per sample")
        }
        if t.rank == 1 { t = t.reshaped([t.shape[0], 1]) }
        try checkCount(t.shape[0], path: path, dropped: 0)
        var notes: [String] = []
        if let forced = options.layout, t.rank != 4 {
            throw DataError(file: path, problem: "layout \(forced.rawValue) was given but the array has shape \(t.shape), not 4-d images",
                            hint: "drop the layout option for arrays that are not [N, C, H, W] or [N, H, W, C]")
        }
        if t.rank == 4, (options.layout ?? ArrayLayout.detect(shape: t.shape)) == .nhwc {
            let s = t.shape
            t = nhwcToNCHW(t)
            let how = options.layout == nil ? "detected" : "as given"
            let undo = options.layout == nil ? "; pass layout nchw (--layout nchw) if the array is already channels-first" : ""
            notes.append("read [N, H, W, C] = \(s) as channels-last (\(how)) and transposed it to [N, C, H, W] = \(t.shape)\(undo)")
        }
        if t.count == 0 {
            throw DataError(file: path, problem: "each sample has 0 values (shape \(t.shape))",
                            hint: "save an array of shape [N, ...] whose samples hold at least one value")
        }

        // Labels.
        var labels: [Int]? = nil
        var labelsSource: String? = nil
        let labelsPath = options.labelsPath
            ?? (format == .idx && options.siblingLabels && t.rank >= 3 ? IDXReader.siblingLabelsPath(forImages: path) : nil)
        if let lp = labelsPath {
            labels = try loadLabels(path: lp, expected: t.shape[0], samplesPath: path)
            labelsSource = lp
        }

        // Non-finite values (only floats can hold them).
        var dropped = 0
        if !array.dtype.isInteger {
            let n = t.shape[0]
            let per = t.count / n
            var badSamples: [Int] = []
            t.withUnsafeScalars { s in
                var i = 0
                while i < s.count {
                    if !s[i].isFinite {
                        let sample = i / per
                        badSamples.append(sample)
                        i = (sample + 1) * per  // skip the rest of this sample
                        if options.clean == .error { break }
                        continue
                    }
                    i += 1
                }
            }
            if let first = badSamples.first {
                if options.clean == .error {
                    let flat = t.scalars.firstIndex { !$0.isFinite }!
                    let index = multiIndex(flat, shape: t.shape)
                    throw DataError(file: path, location: "sample \(first), index [\(index.map(String.init).joined(separator: ", "))] (element \(flat))",
                                    problem: "value \(t.scalars[flat]) is not finite",
                                    hint: "clean the data, or load with the 'drop' clean policy to remove such samples")
                }
                let bad = Set(badSamples)
                let keep = (0..<n).filter { !bad.contains($0) }
                dropped = bad.count
                try checkCount(keep.count, path: path, dropped: dropped)
                t = gatherSamples(t, keep)
                labels = labels.map { l in keep.map { l[$0] } }
            }
        }
        var d = Dataset(samples: t, labels: labels, source: path, format: format, dtype: array.dtype,
                        labelsSource: labelsSource, droppedSamples: dropped)
        d.notes = notes
        return d
    }

    /// Loads a labels file (1-d `.npy` or IDX) and checks it has `expected` non-negative integers.
    static func loadLabels(path: String, expected: Int, samplesPath: String) throws -> [Int] {
        let fmt = try detectFormat(path: path)
        let array: LoadedArray
        switch fmt {
        case .npy: array = try NPYReader.read(path: path)
        case .idx: array = try IDXReader.read(path: path)
        default:
            throw DataError(file: path, problem: "a labels file must be a 1-d .npy or IDX (idx1) file, not \(fmt.rawValue)")
        }
        let t = array.tensor
        guard t.rank == 1 || (t.rank == 2 && t.shape[1] == 1) else {
            throw DataError(file: path, problem: "labels must be 1-d, found shape \(t.shape)")
        }
        guard t.shape[0] == expected else {
            throw DataError(file: path,
                            problem: "has \(t.shape[0]) labels but \((samplesPath as NSString).lastPathComponent) has \(expected) samples",
                            hint: "the labels file must hold one label per sample")
        }
        var out = [Int](repeating: 0, count: expected)
        for (i, v) in t.scalars.enumerated() {
            guard v.isFinite, v >= 0, v == v.rounded() else {
                throw DataError(file: path, location: "element \(i)", problem: "label \(v) is not a non-negative integer class index")
            }
            out[i] = Int(v)
        }
        return out
    }

    static func multiIndex(_ flat: Int, shape: [Int]) -> [Int] {
        var rest = flat
        var out = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) {
            out[d] = rest % shape[d]
            rest /= shape[d]
        }
        return out
    }

    // MARK: Subsets

    /// The samples (and labels) at `indices`, in that order.
    ///
    /// - Precondition: every index is in `0..<count`.
    public func subset(_ indices: [Int]) -> Dataset {
        var d = self
        d.samples = gatherSamples(samples, indices)
        d.labels = labels.map { l in indices.map { l[$0] } }
        d.files = files.map { f in indices.map { f[$0] } }
        d.predefinedHeldOut = nil
        return d
    }

    /// One mini-batch: the samples at `indices` (shape `[indices.count, ...]`) and their labels.
    ///
    /// - Precondition: every index is in `0..<count`.
    public func batch(_ indices: [Int]) -> (samples: Tensor, labels: [Int]?) {
        (gatherSamples(samples, indices), labels.map { l in indices.map { l[$0] } })
    }
}

/// Copies the samples (slices along axis 0) of `tensor` at `indices`, in that order.
///
/// - Shapes: `[N, ...]` → `[indices.count, ...]`.
/// - Precondition: `tensor` has rank ≥ 1 and every index is in `0..<N`.
public func gatherSamples(_ tensor: Tensor, _ indices: [Int]) -> Tensor {
    precondition(tensor.rank >= 1, "gatherSamples: tensor of shape \(tensor.shape) has no sample axis")
    let n = tensor.shape[0]
    let per = n == 0 ? 0 : tensor.count / n
    var out = [Float](repeating: 0, count: indices.count * per)
    tensor.withUnsafeScalars { src in
        out.withUnsafeMutableBufferPointer { dst in
            for (k, i) in indices.enumerated() {
                precondition(i >= 0 && i < n, "gatherSamples: index \(i) out of range 0..<\(n) for shape \(tensor.shape)")
                if per > 0 {
                    (dst.baseAddress! + k * per).update(from: src.baseAddress! + i * per, count: per)
                }
            }
        }
    }
    var shape = tensor.shape
    shape[0] = indices.count
    return Tensor(shape: shape, scalars: out)
}

// MARK: - Quoting text from user files in messages

/// Text taken from a user's file, made safe to quote in an error message.
///
/// Characters that would not print as themselves are escaped: `\n`, `\r`, `\t`; other ASCII
/// control bytes and DEL as `\x1b`; other control, format (e.g. bidirectional overrides),
/// surrogate, private-use, unassigned and line/paragraph separator characters as `\u{202e}`.
/// The result is cut to at most `limit` characters, followed by `...` when anything was cut.
///
/// - Parameters:
///   - text: the text as found in the file (already decoded).
///   - limit: the maximum number of characters kept before `...`; 40 by default.
func sanitizedForMessage(_ text: String, limit: Int = 40) -> String {
    var out = ""
    var used = 0
    for u in text.unicodeScalars {
        let piece = escapedForMessage(u)
        let width = piece?.unicodeScalars.count ?? 1
        if used + width > limit { return out + "..." }
        if let piece { out += piece } else { out.unicodeScalars.append(u) }
        used += width
    }
    return out
}

/// Bytes taken from a user's file, decoded as UTF-8 and made safe to quote in an error message
/// as ``sanitizedForMessage(_:limit:)`` does; bytes that are not valid UTF-8 are shown as `\xNN`.
func sanitizedForMessage<C: Collection>(bytes: C, limit: Int = 40) -> String where C.Element == UInt8 {
    // Each kept character takes at most 4 bytes, so this prefix is enough to fill `limit`.
    let head = Array(bytes.prefix(limit * 4 + 4))
    let more = head.count < bytes.count
    var out = ""
    var used = 0
    return head.withUnsafeBufferPointer { buf -> String in
        var i = 0
        while i < buf.count {
            let length = utf8SequenceLength(buf, at: i)
            let piece: String?
            var scalar: Unicode.Scalar? = nil
            if length == 0 {
                // An incomplete sequence cut by the prefix is not invalid: stop there.
                if more && buf.count - i < 4 { return out + "..." }
                piece = String(format: "\\x%02x", buf[i])
            } else {
                scalar = decodeUTF8Scalar(buf, at: i, length: length)
                piece = escapedForMessage(scalar!)
            }
            let width = piece?.unicodeScalars.count ?? 1
            if used + width > limit { return out + "..." }
            if let piece { out += piece } else { out.unicodeScalars.append(scalar!) }
            used += width
            i += max(length, 1)
        }
        return more ? out + "..." : out
    }
}

/// The escape for a character that does not print as itself, or `nil` for one that does.
private func escapedForMessage(_ u: Unicode.Scalar) -> String? {
    switch u {
    case "\n": return "\\n"
    case "\r": return "\\r"
    case "\t": return "\\t"
    default: break
    }
    if u.value < 0x20 || u.value == 0x7f { return String(format: "\\x%02x", u.value) }
    if u.isASCII { return nil }
    switch u.properties.generalCategory {
    case .control, .format, .surrogate, .privateUse, .unassigned, .lineSeparator, .paragraphSeparator:
        return "\\u{" + String(u.value, radix: 16) + "}"
    default:
        return nil
    }
}

/// The length (1...4) of the well-formed UTF-8 sequence starting at `i` (RFC 3629: no overlong
/// forms, no surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
@inline(__always)
func utf8SequenceLength(_ buf: UnsafeBufferPointer<UInt8>, at i: Int) -> Int {
    let n = buf.count
    let b0 = buf[i]
    if b0 < 0x80 { return 1 }
    @inline(__always) func cont(_ k: Int, _ lo: UInt8 = 0x80, _ hi: UInt8 = 0xBF) -> Bool {
        k < n && buf[k] >= lo && buf[k] <= hi
    }
    switch b0 {
    case 0xC2...0xDF:
        return cont(i + 1) ? 2 : 0
    case 0xE0...0xEF:
        let ok1 = b0 == 0xE0 ? cont(i + 1, 0xA0) : b0 == 0xED ? cont(i + 1, 0x80, 0x9F) : cont(i + 1)
        return ok1 && cont(i + 2) ? 3 : 0
    case 0xF0...0xF4:
        let ok1 = b0 == 0xF0 ? cont(i + 1, 0x90) : b0 == 0xF4 ? cont(i + 1, 0x80, 0x8F) : cont(i + 1)
        return ok1 && cont(i + 2) && cont(i + 3) ? 4 : 0
    default:
        return 0
    }
}

/// The scalar of a well-formed UTF-8 sequence of `length` bytes at `i`.
private func decodeUTF8Scalar(_ buf: UnsafeBufferPointer<UInt8>, at i: Int, length: Int) -> Unicode.Scalar {
    var v: UInt32
    switch length {
    case 1: return Unicode.Scalar(buf[i])
    case 2: v = UInt32(buf[i] & 0x1F)
    case 3: v = UInt32(buf[i] & 0x0F)
    default: v = UInt32(buf[i] & 0x07)
    }
    for k in 1..<length { v = v << 6 | UInt32(buf[i + k] & 0x3F) }
    return Unicode.Scalar(v) ?? "\u{FFFD}"
}
