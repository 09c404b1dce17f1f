import ArgumentParser
import ConjureData
import ConjureTraining
import Foundation

/// How a folder of sound files is read (`conjure train`, `conjure classifier train`,
/// `conjure data inspect`): labels, channels, clip length, sample rate, scaling.
struct AudioDataOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Audio folders: samples per clip; longer clips are cropped around their centre, shorter ones zero-padded at the end (default 8192).") var length: Int?
    @Option(parsing: .unconditional, help: "Audio folders: resample every file to this rate in Hz with libsamplerate (default: the files' own rate, which must then agree).") var sampleRate: Int?
    @Option(help: "Audio folders: a regular expression whose group 1 is a file name's label, e.g. '^(\\d)_' for FSDD's 7_jackson_32.wav.") var labelPattern: String?
    @Option(help: "Audio folders: where labels come from: auto (FSDD file names, else subfolders when there are at least two, else none; the default), subfolders, pattern (needs --label-pattern) or none.") var labels: String?
    @Flag(help: "Audio folders: keep every channel (all files must then have the same count) instead of mixing down to mono.") var keepChannels = false
    @Flag(help: "Audio folders: divide each clip by its own peak |x| instead of using the format's full scale.") var peakNormalize = false

    /// The options given, for the refusal of data options on `--resume`.
    var given: [(String, Bool)] {
        [("--length", length != nil), ("--sample-rate", sampleRate != nil), ("--label-pattern", labelPattern != nil),
         ("--labels", labels != nil), ("--keep-channels", keepChannels), ("--peak-normalize", peakNormalize)]
    }

    /// `base` with the given options applied.
    ///
    /// - Throws: ``ConfigError`` naming the option for a length or rate out of range, an unknown
    ///   label source, or a pattern that contradicts `--labels`.
    func apply(to base: AudioFolderOptions) throws -> AudioFolderOptions {
        var a = base
        if let v = length {
            guard (1 ... 10_000_000).contains(v) else { throw ConfigError(option: "--length", problem: "must be between 1 and 10000000 samples, got \(v)") }
            a.length = v
        }
        if let v = sampleRate {
            let r = AudioFile.sampleRates
            guard r.contains(v) else { throw ConfigError(option: "--sample-rate", problem: "must be between \(r.lowerBound) and \(r.upperBound) Hz, got \(v)") }
            a.sampleRate = v
        }
        switch labels?.lowercased() {
        case nil: if let p = labelPattern { a.labels = .pattern(p) }
        case "auto": a.labels = .automatic
        case "none": a.labels = .none
        case "subfolders": a.labels = .subfolders
        case "pattern":
            guard let p = labelPattern else { throw ConfigError(option: "--labels", problem: "pattern needs --label-pattern REGEX") }
            a.labels = .pattern(p)
        case let other?: throw ConfigError(option: "--labels", problem: "expected auto, subfolders, pattern or none, got '\(other)'")
        }
        if labelPattern != nil, let l = labels?.lowercased(), l != "pattern" {
            throw ConfigError(option: "--label-pattern", problem: "contradicts --labels \(l)")
        }
        if case .pattern(let p) = a.labels {
            guard let re = try? NSRegularExpression(pattern: p) else { throw ConfigError(option: "--label-pattern", problem: "'\(p)' is not a valid regular expression") }
            guard re.numberOfCaptureGroups >= 1 else {
                throw ConfigError(option: "--label-pattern", problem: "'\(p)' has no capture group; the label is group 1", hint: "for FSDD names such as 7_jackson_32.wav use '^(\\d)_'")
            }
        }
        if keepChannels { a.mono = false }
        if peakNormalize { a.normalization = .peak }
        return a
    }
}
