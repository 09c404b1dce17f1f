import Foundation
import ConjureData
import ConjureModels
import ConjureOptim
import ConjureMetrics

/// Refuses generated samples holding a value that is not finite, before anything is written or
/// scored: a damaged checkpoint, or latents too large for the network (a finite z of 1e38
/// overflows the first layer), give NaN samples that would otherwise be written as a grid of
/// black pixels or scored as a very bad model.
///
/// - Parameters:
///   - samples: the model's samples, any shape.
///   - checkpoint: the checkpoint that generated them, named in the error.
///   - latents: the `--z` file the latents came from, if any (named in the hint).
/// - Throws: ``DataError`` naming `checkpoint`, the first non-finite element and how many there are.
public func checkFiniteSamples(_ samples: Tensor, checkpoint: String, latents: String? = nil) throws {
    let (first, count) = samples.withUnsafeScalars { v -> (Int?, Int) in
        var first: Int?, count = 0
        for (i, x) in v.enumerated() where !x.isFinite {
            if first == nil { first = i }
            count += 1
        }
        return (first, count)
    }
    guard let first else { return }
    let rows = samples.shape.first ?? 1
    let perRow = max(1, samples.count / max(rows, 1))
    throw DataError(file: checkpoint,
                    problem: "the model generated non-finite samples: \(count) of \(samples.count) values, the first in sample \(first / perRow)",
                    hint: latents.map { "the latents in '\($0)' may be too large for the network; a standard normal z stays within about +-6" }
                        ?? "the checkpoint's weights or statistics may be damaged; try an earlier checkpoint")
}

/// Writes generator samples `[N, D]` (normalised) as a PNG grid in the data's own units.
///
/// Pixel 0..255 maps linearly to the data's declared range (`minmax` normalisation, values
/// outside it clamp). Runs without a fixed range (`zscore`, `none`) are **min-max stretched over
/// this grid**: pixel 0 is the grid's smallest sample value and 255 its largest, so grids of two
/// steps are not on one scale. Either way the PNG's `Comment` text chunk states the mapping and
/// `Software` names Conjure.
/// - Throws: ``DataError`` naming `path` when the grid cannot be encoded or written.
public func writeGrid(_ samples: Tensor, shape: [Int], stats: NormalizationStats, to path: String, columns: Int? = nil) throws {
    let images = stats.inverse(samples).reshaped([samples.shape[0]] + shape)
    let stretched = stats.kind == .zscore || stats.kind == .none
    let low = Float(stretched ? images.minValue : Float(stats.low))
    var high = Float(stretched ? images.maxValue : Float(stats.high))
    if !(high > low) { high = low + 1 }
    let comment = stretched
        ? "pixel 0..255 = \(low)..\(high) in data units: min-max stretched over this grid (\(stats.kind.rawValue) normalisation has no fixed range)"
        : "pixel 0..255 = \(low)..\(high) in data units (the data's range; values outside clamp)"
    try ImageGrid.writePNG(images: images, path: path, columns: columns, range: (low, high), createDirectories: true,
                           text: [("Software", "Conjure"), ("Comment", comment)])
}


/// How samples of a data kind are written during training (the grids of `samples/`) and by
/// `conjure sample`: chosen by ``DataSpec``, never by a sample's length.
public struct SampleWriter: Sendable {
    /// The file extension of training samples (`png`).
    public let fileExtension: String
    /// Writes normalised samples `[N, D]` of `spec` in the data's units to `path`.
    public let write: @Sendable (_ samples: Tensor, _ spec: DataSpec, _ stats: NormalizationStats, _ path: String) throws -> Void
    /// True when ``write`` also writes a folder beside `path` (its name without the extension:
    /// sound's clips as WAV files), which a run's file listing names too.
    public var writesClipFolder = false

    /// The writer of in-training samples for a data kind: a PNG grid for images of 1 to 4
    /// channels; nil for images of more channels and for
    /// vectors (2-D point sets and tabular rows have no picture; use `conjure sample --out
    /// X.npy`). Sequences (WAV) and tokens (text) get theirs with their families.
    public static func training(for spec: DataSpec) -> SampleWriter? {
        switch spec {
        case .image(let channels, _, _) where !(1...4).contains(channels):
            return nil  // PNG holds 1 to 4 channels
        case .image:
            return SampleWriter(fileExtension: "png") { samples, spec, stats, path in
                try writeGrid(samples, shape: spec.sampleShape, stats: stats, to: path)
            }
        case .vector, .sequence, .tokens:
            return nil
        }
    }
}
