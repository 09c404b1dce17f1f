import Foundation

/// What `conjure data inspect FOLDER` reports about a folder of sound files (headers only: no
/// sample is decoded, so it is fast).
public struct AudioFolderSummary: Sendable, Codable, Equatable, CustomStringConvertible {
    /// The folder.
    public var source: String
    /// Sound files found.
    public var count: Int
    /// Files per sample rate (Hz).
    public var sampleRates: [Int: Int]
    /// Files per channel count.
    public var channelCounts: [Int: Int]
    /// Files per encoding (`"WAV PCM 16-bit"`, ...).
    public var formats: [String: Int]
    /// Shortest clip, in frames.
    public var minFrames: Int
    /// Median clip length in frames: `sorted[count / 2]`, the upper middle value for an even
    /// count (Python's `statistics.median_high`), so it is always a length that occurs.
    public var medianFrames: Int
    /// Longest clip, in frames.
    public var maxFrames: Int
    /// Total duration in seconds.
    public var totalSeconds: Double
    /// Files per label text, or nil without a label source.
    public var labelCounts: [String: Int]?
    /// With a length given: clips longer than it (they would be centre-cropped).
    public var longerThanLength: Int?
    /// The length the count above refers to.
    public var length: Int?

    /// Summarises a folder.
    ///
    /// - Parameters:
    ///   - path: the folder.
    ///   - labels: label source (counts per label).
    ///   - length: optional clip length in frames (counts clips longer than it).
    /// - Throws: ``DataError`` naming the first file whose header cannot be read or is
    ///   unsupported, or a file without a label.
    public init(path: String, labels: AudioLabelSource = .none, length: Int? = nil) throws {
        let files = try AudioFolder.listFiles(path: path)
        source = path
        count = files.count
        var rates: [Int: Int] = [:], chans: [Int: Int] = [:], fmts: [String: Int] = [:]
        var lengths: [Int] = []
        var seconds = 0.0
        for rel in files {
            let info = try AudioFile.info(path: path + "/" + rel)
            rates[info.sampleRate, default: 0] += 1
            chans[info.channels, default: 0] += 1
            fmts[info.format, default: 0] += 1
            lengths.append(info.frames)
            seconds += Double(info.frames) / Double(info.sampleRate)
        }
        lengths.sort()
        sampleRates = rates
        channelCounts = chans
        formats = fmts
        minFrames = lengths.first ?? 0
        medianFrames = lengths.isEmpty ? 0 : lengths[lengths.count / 2]
        maxFrames = lengths.last ?? 0
        totalSeconds = seconds
        if let texts = try AudioFolder.labelTexts(files: files, folder: path, source: labels) {
            var c: [String: Int] = [:]
            for t in texts { c[t, default: 0] += 1 }
            labelCounts = c
        }
        self.length = length
        longerThanLength = length.map { l in lengths.filter { $0 > l }.count }
    }

    /// The report, one fact per line.
    public var description: String {
        func dict<K: Comparable>(_ d: [K: Int], _ show: (K) -> String) -> String {
            d.keys.sorted().map { "\(show($0)): \(d[$0]!)" }.joined(separator: ", ")
        }
        let rate = sampleRates.count == 1 ? Double(sampleRates.keys.first!) : nil
        func secs(_ frames: Int) -> String { rate.map { String(format: " (%.3f s)", Double(frames) / $0) } ?? "" }
        var out: [String] = []
        out.append("source:   \(source)")
        out.append("format:   audio folder (\(dict(formats) { $0 }))")
        out.append("files:    \(count) (\(String(format: "%.1f", totalSeconds)) s in all)")
        out.append("rates:    \(dict(sampleRates) { "\($0) Hz" })")
        out.append("channels: \(dict(channelCounts) { "\($0)" })")
        out.append("length:   min \(minFrames)\(secs(minFrames)), median \(medianFrames)\(secs(medianFrames)), max \(maxFrames)\(secs(maxFrames)) frames")
        if let length, let longerThanLength {
            out.append("longer than \(length): \(longerThanLength) files (centre-cropped when loaded)")
        }
        if let labelCounts {
            let numeric = labelCounts.keys.allSatisfy { Int($0) != nil }
            let keys = numeric ? labelCounts.keys.sorted { Int($0)! < Int($1)! } : labelCounts.keys.sorted()
            out.append("labels:   \(labelCounts.count) classes {\(keys.map { "\($0): \(labelCounts[$0]!)" }.joined(separator: ", "))}")
        } else {
            out.append("labels:   none")
        }
        return out.joined(separator: "\n")
    }
}
