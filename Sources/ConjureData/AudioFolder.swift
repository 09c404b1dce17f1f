import Foundation

/// Where the labels of an audio folder come from.
public enum AudioLabelSource: Sendable, Equatable, Codable {
    /// No labels.
    case none
    /// Decided from the file names (``AudioFolder/resolvedLabelSource(files:)``): FSDD names
    /// (`7_jackson_32.wav`) → the digit (``AudioFolder/fsddLabelPattern``); otherwise, when
    /// every file lies in a subfolder and there are at least two, the subfolder; otherwise none.
    case automatic
    /// The first path component below the folder (`folder/dog/x.wav` → "dog"); a file directly
    /// in the folder is an error.
    case subfolders
    /// Capture group 1 of a regular expression (ICU syntax, `NSRegularExpression`) searched in
    /// the file name, e.g. `^(\d)_` for FSDD's `7_jackson_32.wav` → "7". A name that does not
    /// match is an error.
    case pattern(String)
}

/// How clip values are scaled.
public enum AudioNormalization: String, Sendable, Codable, CaseIterable {
    /// By the format's full scale (libsndfile's normalised read): PCM lies in `[-1, 1)`.
    case fullScale
    /// Each clip divided by its own peak `max |x|` (after mono conversion and crop/pad), so its
    /// loudest sample is ±1; an all-zero clip stays zero.
    case peak
}

/// Options of ``AudioFolder/load(path:options:)``.
public struct AudioFolderOptions: Sendable, Equatable, Codable {
    /// Label source; ``AudioLabelSource/none`` by default.
    public var labels: AudioLabelSource
    /// Mix every clip down to one channel (the mean of its channels); `true` by default. With
    /// `false` all files must have the same channel count.
    public var mono: Bool
    /// Frames per clip after crop/pad; nil keeps the longest clip's length (every shorter clip
    /// zero-padded at the end).
    public var length: Int?
    /// The rate clips are resampled to; nil requires all files to share one rate.
    public var sampleRate: Int?
    /// Value scaling; ``AudioNormalization/fullScale`` by default.
    public var normalization: AudioNormalization

    /// Options with the defaults listed on each property (no labels, mono, longest length, the
    /// files' own rate, full-scale values).
    public init(labels: AudioLabelSource = .none, mono: Bool = true, length: Int? = nil,
                sampleRate: Int? = nil, normalization: AudioNormalization = .fullScale) {
        self.labels = labels
        self.mono = mono
        self.length = length
        self.sampleRate = sampleRate
        self.normalization = normalization
    }
}

/// A folder of sound files as a data set `[N, C, T]`.
///
/// Files: every `*.wav`, `*.wave` and `*.flac` (any letter case) below the folder, recursively,
/// hidden files and folders skipped, in byte order of their relative paths.
///
/// Length policy: a clip longer than ``length`` is **cropped around its centre** (start
/// `(frames - length) / 2`, rounded down) and counted in ``croppedCount``; a shorter clip is
/// **zero-padded at the end**.
public struct AudioFolder: Sendable {
    /// The folder read.
    public var source: String
    /// Clips, `[N, C, T]` Float32 (see ``AudioNormalization`` for units).
    public var samples: Tensor
    /// Class index per clip, or nil without labels. Label texts that are all non-negative
    /// integers (`"0"`...`"9"`) are used as the indices; otherwise the sorted distinct texts are
    /// numbered 0, 1, ... (see ``labelNames``).
    public var labels: [Int]?
    /// The label text of each class index (`labelNames[k]` is class `k`'s name).
    public var labelNames: [String]?
    /// Paths of the files, relative to ``source``, in sample order.
    public var files: [String]
    /// Frames per second of every clip.
    public var sampleRate: Int
    /// Frames per clip (`T`).
    public var length: Int
    /// Clips longer than ``length`` (centre-cropped).
    public var croppedCount: Int
    /// Clips shorter than ``length`` (zero-padded at the end).
    public var paddedCount: Int
    /// Each clip's frame count before crop/pad (after resampling).
    public var originalLengths: [Int]

    /// Lists the sound files below `path` (relative paths, byte order).
    ///
    /// - Throws: ``DataError`` naming `path` when it is not a folder or holds no sound file.
    public static func listFiles(path: String) throws -> [String] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw DataError(file: path, problem: "not a folder", hint: "give a folder of .wav or .flac files")
        }
        guard let e = FileManager.default.enumerator(atPath: path) else {
            throw DataError(file: path, problem: "cannot list the folder")
        }
        var files: [String] = []
        while let rel = e.nextObject() as? String {
            let name = (rel as NSString).lastPathComponent
            if name.hasPrefix(".") { e.skipDescendants(); continue }
            let ext = (name as NSString).pathExtension.lowercased()
            if AudioFile.extensions.contains(ext) { files.append(rel) }
        }
        files.sort { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        if files.isEmpty {
            throw DataError(file: path, problem: "no .wav or .flac files in the folder (searched recursively)")
        }
        return files
    }

    /// The label pattern of Free Spoken Digit Dataset names (`{digit}_{speaker}_{index}.wav`).
    public static let fsddLabelPattern = #"^(\d)_"#

    /// What ``AudioLabelSource/automatic`` means for these files (relative paths): `.pattern`
    /// (``fsddLabelPattern``) when every name is an FSDD name, `.subfolders` when every file lies
    /// in a subfolder and there are at least two subfolders, else `.none`.
    public static func resolvedLabelSource(files: [String]) -> AudioLabelSource {
        let fsdd = try? NSRegularExpression(pattern: #"^\d_[A-Za-z]+_\d+\.(wav|wave|flac)$"#, options: [.caseInsensitive])
        if let fsdd, !files.isEmpty, files.allSatisfy({ f in
            let name = (f as NSString).lastPathComponent
            return fsdd.firstMatch(in: name, range: NSRange(name.startIndex..., in: name)) != nil
        }) { return .pattern(fsddLabelPattern) }
        let parts = files.map { $0.split(separator: "/") }
        if !files.isEmpty, parts.allSatisfy({ $0.count >= 2 }), Set(parts.map { $0[0] }).count >= 2 { return .subfolders }
        return .none
    }

    /// The label text of each file (nil for ``AudioLabelSource/none``).
    ///
    /// - Throws: ``DataError`` naming the file that has no label, or the option for a bad pattern.
    public static func labelTexts(files: [String], folder: String, source: AudioLabelSource) throws -> [String]? {
        switch source {
        case .none:
            return nil
        case .automatic:
            let resolved = resolvedLabelSource(files: files)
            return resolved == .none ? nil : try labelTexts(files: files, folder: folder, source: resolved)
        case .subfolders:
            return try files.map { rel in
                let parts = rel.split(separator: "/")
                guard parts.count >= 2 else {
                    throw DataError(file: folder + "/" + rel, problem: "is not in a subfolder, so it has no label",
                                    hint: "put each class in its own subfolder, or use a label pattern")
                }
                return String(parts[0])
            }
        case .pattern(let pattern):
            let re: NSRegularExpression
            do { re = try NSRegularExpression(pattern: pattern) } catch {
                throw DataError(file: "--label-pattern", problem: "'\(pattern)' is not a valid regular expression")
            }
            guard re.numberOfCaptureGroups >= 1 else {
                throw DataError(file: "--label-pattern", problem: "'\(pattern)' has no capture group; the label is group 1",
                                hint: "for FSDD names such as 7_jackson_32.wav use '^(\\d)_'")
            }
            return try files.map { rel in
                let name = (rel as NSString).lastPathComponent
                let range = NSRange(name.startIndex..., in: name)
                guard let m = re.firstMatch(in: name, range: range), let r = Range(m.range(at: 1), in: name) else {
                    throw DataError(file: folder + "/" + rel, problem: "file name does not match the label pattern '\(pattern)'")
                }
                return String(name[r])
            }
        }
    }

    /// Class indices and names for label texts: all non-negative integers → the integers
    /// themselves (names "0"..."max"); otherwise sorted distinct texts numbered from 0.
    public static func classIndices(_ texts: [String]) -> (labels: [Int], names: [String]) {
        let ints = texts.map { t -> Int? in t.allSatisfy(\.isASCII) ? Int(t) : nil }
        if ints.allSatisfy({ ($0 ?? -1) >= 0 }), let top = ints.map({ $0! }).max(), top < 100_000 {
            return (ints.map { $0! }, (0 ... top).map(String.init))
        }
        let names = Set(texts).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        return (texts.map { index[$0]! }, names)
    }

    /// Reads every sound file of a folder into one `[N, C, T]` tensor.
    ///
    /// - Parameters:
    ///   - path: the folder.
    ///   - options: labels, mono, length, rate and normalisation.
    /// - Throws: ``DataError`` naming the file for an unreadable, corrupt, truncated or
    ///   unsupported file, a NaN or infinite sample (a float file), a rate different from the first file's (without a target rate), a
    ///   channel count different from the first file's (without mono), or a missing label.
    public static func load(path: String, options: AudioFolderOptions = AudioFolderOptions()) throws -> AudioFolder {
        let files = try listFiles(path: path)
        let texts = try labelTexts(files: files, folder: path, source: options.labels)
        var clips: [[Float]] = []   // planar [C, frames] per clip
        clips.reserveCapacity(files.count)
        var lengths: [Int] = []
        var rate: Int? = options.sampleRate
        var channels: Int? = options.mono ? 1 : nil
        for rel in files {
            let full = path + "/" + rel
            var clip = try AudioFile.read(path: full, sampleRate: options.sampleRate)
            if let r = rate, r != clip.sampleRate {
                throw DataError(file: full, problem: "sample rate \(clip.sampleRate) Hz differs from the folder's \(r) Hz",
                                hint: "resample every file with the sample-rate option")
            }
            rate = clip.sampleRate
            if options.mono {
                clip = AudioClip(samples: clip.mono(), channels: 1, sampleRate: clip.sampleRate, format: clip.format)
            } else if let c = channels, c != clip.channels {
                throw DataError(file: full, problem: "has \(clip.channels) channels, the folder's first file \(c)",
                                hint: "mix down to mono by option")
            }
            channels = clip.channels
            if let bad = clip.samples.firstIndex(where: { !$0.isFinite }) {
                throw DataError(file: full, location: "channel \(bad / max(clip.frames, 1)), frame \(bad % max(clip.frames, 1))",
                                problem: "sample is \(clip.samples[bad]); sound must hold finite values",
                                hint: "remove or repair the file")
            }
            clips.append(clip.samples)
            lengths.append(clip.frames)
        }
        let c = channels ?? 1
        let t = options.length ?? (lengths.max() ?? 0)
        precondition(t >= 1, "AudioFolder.load: length must be at least 1, got \(t)")
        var out = [Float](repeating: 0, count: files.count * c * t)
        var cropped = 0, padded = 0
        for (i, planar) in clips.enumerated() {
            let frames = lengths[i]
            let start = frames > t ? (frames - t) / 2 : 0
            if frames > t { cropped += 1 } else if frames < t { padded += 1 }
            let n = min(frames, t)
            var peak: Float = 0
            for ch in 0 ..< c {
                for k in 0 ..< n {
                    let v = planar[ch * frames + start + k]
                    out[(i * c + ch) * t + k] = v
                    peak = max(peak, abs(v))
                }
            }
            if options.normalization == .peak && peak > 0 {
                let s = 1 / peak
                for j in i * c * t ..< (i + 1) * c * t { out[j] *= s }
            }
        }
        let classes = texts.map(classIndices)
        return AudioFolder(source: path, samples: Tensor(shape: [files.count, c, t], scalars: out),
                           labels: classes?.labels, labelNames: classes?.names, files: files,
                           sampleRate: rate ?? 0, length: t, croppedCount: cropped, paddedCount: padded,
                           originalLengths: lengths)
    }

    /// The Free Spoken Digit Dataset's own split by recording index: files named
    /// `{digit}_{speaker}_{index}.wav` with index 0-4 are the test set, 5-49 training
    /// (the data set's README; 300 test and 2700 training clips for the full set).
    ///
    /// - Returns: sample indices (into ``files``) of each part, in sample order.
    /// - Throws: ``DataError`` naming a file whose name is not of that form.
    public func fsddSplit() throws -> (train: [Int], test: [Int]) {
        try Self.fsddSplit(files: files, folder: source)
    }

    /// ``fsddSplit()`` for a list of relative file paths.
    public static func fsddSplit(files: [String], folder: String) throws -> (train: [Int], test: [Int]) {
        var train: [Int] = [], test: [Int] = []
        for (i, rel) in files.enumerated() {
            let stem = ((rel as NSString).lastPathComponent as NSString).deletingPathExtension
            let parts = stem.split(separator: "_")
            guard parts.count >= 3, let index = Int(parts[parts.count - 1]), Int(parts[0]) != nil else {
                throw DataError(file: folder + "/" + rel, problem: "not an FSDD file name ({digit}_{speaker}_{index}.wav)")
            }
            if index < 5 { test.append(i) } else { train.append(i) }
        }
        return (train, test)
    }
}
