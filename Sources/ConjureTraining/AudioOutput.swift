import Foundation
import ConjureData
import ConjureModels

/// How generated sound is written: WAV files (16-bit PCM through libsndfile) and PNG grids of
/// their log-magnitude spectrograms (``Spectrogram``: periodic Hann window, FFT size 256, hop 64,
/// KissFFT).
public enum AudioSampleOutput {
    /// Clips shown and saved during training at each `--sample-every` step.
    public static let trainingClips = 4

    /// The clips `[N, C, T]` in the data's units (`[-1, 1]`) of normalised generator rows `[N, C·T]`.
    ///
    /// - Precondition: `spec` is a sequence of `C·T` values per row.
    public static func clips(_ samples: Tensor, spec: DataSpec, stats: NormalizationStats) -> Tensor {
        guard case .sequence(let c, let t) = spec else { preconditionFailure("AudioSampleOutput: \(spec) is not a sequence") }
        return stats.inverse(samples).reshaped([samples.shape[0], c, t])
    }

    /// Writes each clip of `[N, C, T]` as its own WAV file `folder/sample-NNNN.wav` (N ≥ 1,
    /// numbered from 0, four digits or more).
    ///
    /// - Returns: the paths written and the number of samples clipped to 16-bit full scale.
    /// - Throws: ``DataError`` naming the file that cannot be written (non-finite values, I/O).
    @discardableResult
    public static func writeFolder(_ clips: Tensor, sampleRate: Int, folder: String, prefix: String = "sample-") throws -> (paths: [String], clipped: Int) {
        precondition(clips.rank == 3, "AudioSampleOutput.writeFolder: clips must be [N, C, T], got \(clips.shape)")
        let n = clips.shape[0], per = clips.shape[1] * clips.shape[2]
        let all = clips.scalars
        var paths: [String] = [], clipped = 0
        for i in 0 ..< n {
            let path = folder + "/" + prefix + String(format: "%04d", i) + ".wav"
            clipped += try AudioFile.writeWAV(samples: Array(all[i * per ..< (i + 1) * per]), channels: clips.shape[1],
                                              sampleRate: sampleRate, to: path, createDirectories: true)
            paths.append(path)
        }
        return (paths, clipped)
    }

    /// Writes all clips of `[N, C, T]` into one WAV file, one after another with `gap` seconds
    /// of silence between neighbours (none after the last).
    ///
    /// - Returns: the number of samples clipped to 16-bit full scale.
    /// - Throws: ``DataError`` naming `path` (non-finite values, I/O); nothing is written then.
    @discardableResult
    public static func writeConcatenated(_ clips: Tensor, sampleRate: Int, gap: Double, to path: String) throws -> Int {
        precondition(clips.rank == 3, "AudioSampleOutput.writeConcatenated: clips must be [N, C, T], got \(clips.shape)")
        let n = clips.shape[0], c = clips.shape[1], t = clips.shape[2]
        let silence = max(0, Int((gap * Double(sampleRate)).rounded()))
        let frames = n * t + (n - 1) * silence
        var planar = [Float](repeating: 0, count: c * frames)
        let all = clips.scalars
        for i in 0 ..< n {
            let start = i * (t + silence)
            for ch in 0 ..< c {
                for k in 0 ..< t { planar[ch * frames + start + k] = all[(i * c + ch) * t + k] }
            }
        }
        return try AudioFile.writeWAV(samples: planar, channels: c, sampleRate: sampleRate, to: path, createDirectories: true)
    }
}

extension SampleWriter {
    /// The in-training writer of sound: `samples/step-NNNNNN.png`, the spectrograms of the
    /// step's first 16 clips, and its first ``AudioSampleOutput/trainingClips`` clips as
    /// `samples/step-NNNNNN/sample-NNNN.wav` at `sampleRate`.
    public static func audio(sampleRate: Int) -> SampleWriter {
        var writer = SampleWriter(fileExtension: "png") { samples, spec, stats, path in
            let clips = AudioSampleOutput.clips(samples, spec: spec, stats: stats)
            let shown = clips.shape[0] <= 16 ? clips : clips.slice(0 ..< 16)
            try Spectrogram.writeGridPNG(clips: shown, path: path, columns: 4, createDirectories: true)
            let keep = min(AudioSampleOutput.trainingClips, clips.shape[0])
            try AudioSampleOutput.writeFolder(clips.slice(0 ..< keep), sampleRate: sampleRate,
                                              folder: (path as NSString).deletingPathExtension)
        }
        writer.writesClipFolder = true
        return writer
    }
}
