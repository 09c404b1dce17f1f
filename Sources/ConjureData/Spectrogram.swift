import CKissFFT
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A log-magnitude short-time Fourier transform of one signal, for pictures of audio.
///
/// Definition (frames `m = 0 ..< frames`, bins `k = 0 ... size/2`):
///
///     w[j]    = 0.5 - 0.5 cos(2π j / size)                 (periodic Hann, torch.hann_window)
///     X[m, k] = Σ_j w[j] x[m·hop + j] e^(-2πi jk / size)   (KissFFT's real FFT, kiss_fftr)
///     S[m, k] = 20 log10(max(|X[m, k]|, 1e-5))             (dB re amplitude 1)
///
/// No centre padding: frame `m` covers `x[m·hop ..< m·hop + size]`, `frames = 1 + (T - size) / hop`
/// (rounded down; a tail shorter than a window is dropped); a signal shorter than `size` is
/// zero-padded to one frame. Bin `k` is the frequency `k · sampleRate / size` Hz.
///
/// Defaults: `size` 256, `hop` 64 (at 8 kHz: 31.25 Hz bins, 8 ms hop, 32 ms windows).
/// FFT: KissFFT (Debian libkissfft-dev, BSD-3-Clause, float build).
public struct Spectrogram: Sendable, Equatable {
    /// Default FFT size (window length), samples.
    public static let defaultSize = 256
    /// Default hop between frames, samples.
    public static let defaultHop = 64
    /// Smallest magnitude before the log (−100 dB).
    public static let floor: Float = 1e-5

    /// dB values, row-major `[bins, frames]` (row `k` = frequency bin `k`, lowest first).
    public var values: [Float]
    /// `size / 2 + 1`.
    public var bins: Int
    /// Number of frames.
    public var frames: Int
    /// FFT size.
    public var size: Int
    /// Hop, samples.
    public var hop: Int

    /// Computes the spectrogram of `signal`.
    ///
    /// - Precondition: `size` even and >= 2, `hop >= 1`, `signal` not empty.
    public init(signal: [Float], size: Int = Spectrogram.defaultSize, hop: Int = Spectrogram.defaultHop) {
        precondition(size >= 2 && size % 2 == 0, "Spectrogram: size must be even and >= 2, got \(size)")
        precondition(hop >= 1, "Spectrogram: hop must be >= 1, got \(hop)")
        precondition(!signal.isEmpty, "Spectrogram: empty signal")
        var x = signal
        if x.count < size { x += [Float](repeating: 0, count: size - x.count) }
        let frames = 1 + (x.count - size) / hop
        let bins = size / 2 + 1
        let window = Self.hann(size)
        var out = [Float](repeating: 0, count: bins * frames)
        guard let cfg = kiss_fftr_alloc(Int32(size), 0, nil, nil) else {
            preconditionFailure("Spectrogram: KissFFT could not allocate a plan of size \(size)")
        }
        defer { free(UnsafeMutableRawPointer(cfg)) }
        var frame = [Float](repeating: 0, count: size)
        var spectrum = [kiss_fft_cpx](repeating: kiss_fft_cpx(), count: bins)
        for m in 0 ..< frames {
            let start = m * hop
            for j in 0 ..< size { frame[j] = x[start + j] * window[j] }
            frame.withUnsafeBufferPointer { f in
                spectrum.withUnsafeMutableBufferPointer { s in kiss_fftr(cfg, f.baseAddress, s.baseAddress) }
            }
            for k in 0 ..< bins {
                let mag = (spectrum[k].r * spectrum[k].r + spectrum[k].i * spectrum[k].i).squareRoot()
                out[k * frames + m] = 20 * log10(max(mag, Self.floor))
            }
        }
        self.values = out
        self.bins = bins
        self.frames = frames
        self.size = size
        self.hop = hop
    }

    /// The periodic Hann window of length `n`: `0.5 - 0.5 cos(2π j / n)`.
    public static func hann(_ n: Int) -> [Float] {
        (0 ..< n).map { j in Float(0.5 - 0.5 * cos(2 * Double.pi * Double(j) / Double(n))) }
    }

    /// The bin with the largest mean magnitude over all frames (for tests and quick checks).
    public var peakBin: Int {
        var best = 0, bestValue = -Float.infinity
        for k in 0 ..< bins {
            var s: Float = 0
            for m in 0 ..< frames { s += values[k * frames + m] }
            if s > bestValue { bestValue = s; best = k }
        }
        return best
    }

    /// Pictures of clips' spectrograms as images for ``ImageGrid``: `[N, 1, bins, frames]` in
    /// `[-1, 1]`, low frequencies at the **bottom** row, `top - dynamicRange ... top` dB mapped
    /// to `-1 ... 1` where `top` is the loudest value over all clips (so clips compare).
    ///
    /// - Parameters:
    ///   - clips: `[N, C, T]` (channel 0 is drawn) or `[N, T]`.
    ///   - size, hop: as in ``init(signal:size:hop:)``.
    ///   - dynamicRange: dB shown below the loudest value (default 80).
    /// - Precondition: rank 2 or 3, `N >= 1`, `T >= 1`.
    public static func images(clips: Tensor, size: Int = defaultSize, hop: Int = defaultHop,
                              dynamicRange: Float = 80) -> Tensor {
        precondition(clips.rank == 2 || clips.rank == 3, "Spectrogram.images: clips must be [N, C, T] or [N, T], got \(clips.shape)")
        let n = clips.shape[0], t = clips.shape[clips.rank - 1]
        let c = clips.rank == 3 ? clips.shape[1] : 1
        precondition(n >= 1 && t >= 1 && c >= 1, "Spectrogram.images: empty clips \(clips.shape)")
        let all = clips.scalars
        let specs = (0 ..< n).map { i in Spectrogram(signal: Array(all[i * c * t ..< i * c * t + t]), size: size, hop: hop) }
        let top = specs.map { $0.values.max() ?? 0 }.max() ?? 0
        let bins = specs[0].bins, frames = specs[0].frames
        var out = [Float](repeating: -1, count: n * bins * frames)
        for (i, s) in specs.enumerated() {
            for k in 0 ..< bins {
                let row = bins - 1 - k
                for m in 0 ..< frames {
                    let v = (s.values[k * frames + m] - (top - dynamicRange)) / dynamicRange
                    out[(i * bins + row) * frames + m] = min(max(v, 0), 1) * 2 - 1
                }
            }
        }
        return Tensor(shape: [n, 1, bins, frames], scalars: out)
    }

    /// Writes a PNG grid of the clips' spectrograms (see ``images(clips:size:hop:dynamicRange:)``
    /// and ``ImageGrid/writePNG(images:path:columns:padding:padValue:range:createDirectories:text:)``),
    /// atomically.
    ///
    /// - Throws: ``DataError`` naming `path` for an I/O or encoding failure.
    public static func writeGridPNG(clips: Tensor, path: String, size: Int = defaultSize, hop: Int = defaultHop,
                                    columns: Int? = nil, createDirectories: Bool = false) throws {
        let pictures = images(clips: clips, size: size, hop: hop)
        try ImageGrid.writePNG(images: pictures, path: path, columns: columns, padValue: 255, createDirectories: createDirectories)
    }
}
