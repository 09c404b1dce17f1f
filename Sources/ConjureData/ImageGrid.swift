import Foundation

/// A batch of images tiled into one 8-bit picture (a "sample grid"), ready for ``PNGWriter``.
///
/// Layout: `columns` cells per row, `rows = ceil(N / columns)` rows, tiles in row-major order
/// (image `i` at row `i / columns`, column `i % columns`), `padding` pixels of `padValue`
/// around and between all cells; cells after the last image are left pad-coloured. So
///
///     width  = columns * W + (columns + 1) * padding
///     height = rows    * H + (rows    + 1) * padding
///
/// (7 tiles of 2×3 with 3 columns and padding 2 give 17 × 14 pixels; 32 tiles give a 6 × 6
/// grid, never 5 × 6.) This matches `torchvision.utils.make_grid` (including its rule that a
/// single image is returned unpadded, so one 3×2 sample saves as a 3×2 PNG) except that the
/// default column count is `ceil(sqrt(N))` (a square-ish grid) rather than 8.
///
/// Pixel values map from `[low, high]` to 0...255 with round-half-up:
///
///     p = floor(clamp((x - low) / (high - low), 0, 1) * 255 + 0.5)
///
/// computed in Double (exact for Float32 input and the default range), so for tanh outputs
/// in [-1, 1]: -1 → 0, -0.5 → 64, 0 → 128, 0.5 → 191, 1 → 255; values outside the range clamp
/// (-1.3 → 0, 1.2 → 255, ±inf → 0/255); NaN maps to 0.
public struct ImageGrid: Sendable, Equatable {
    /// Planar pixel values, shape ``shape`` = `[channels, height, width]`, row-major.
    public var pixels: [UInt8]
    /// Grid width in pixels.
    public var width: Int
    /// Grid height in pixels.
    public var height: Int
    /// Channels per pixel (the images' `C`).
    public var channels: Int
    /// Cells per row.
    public var columns: Int
    /// Number of cell rows, `ceil(N / columns)`.
    public var rows: Int

    /// `[channels, height, width]`, the shape to pass to ``PNGWriter/write(pixels:shape:to:createDirectories:)``.
    public var shape: [Int] { [channels, height, width] }

    /// Creates a grid from already laid-out planar pixels.
    public init(pixels: [UInt8], width: Int, height: Int, channels: Int, columns: Int, rows: Int) {
        precondition(pixels.count == channels * height * width,
                     "ImageGrid.init: \(pixels.count) pixels for [\(channels), \(height), \(width)]")
        self.pixels = pixels
        self.width = width
        self.height = height
        self.channels = channels
        self.columns = columns
        self.rows = rows
    }

    /// Maps one value in `[low, high]` to an 8-bit pixel:
    /// `floor(clamp((x - low) / (high - low), 0, 1) * 255 + 0.5)`; NaN → 0.
    ///
    /// - Precondition: `high > low`, both finite.
    @inlinable
    public static func pixel(_ x: Float, low: Float = -1, high: Float = 1) -> UInt8 {
        if x.isNaN { return 0 }
        let t = (Double(x) - Double(low)) / (Double(high) - Double(low))
        let c = min(max(t, 0), 1)
        return UInt8((c * 255 + 0.5).rounded(.down))
    }

    /// Tiles a batch of images into one grid.
    ///
    /// - Parameters:
    ///   - images: `[N, C, H, W]` with `N >= 1` (a single `[C, H, W]` image is also accepted
    ///     and treated as `N = 1`). Any `C` is laid out; PNG output needs `C` in 1...4.
    ///   - columns: cells per row (>= 1); default `ceil(sqrt(N))`. Used as given, so more
    ///     columns than images leaves empty cells.
    ///   - padding: pixels between and around cells (>= 0). Default (nil): 2, or 0 when
    ///     `N == 1` so that a single image is saved as itself. An explicit value is always used.
    ///   - padValue: 8-bit value of padding and empty cells in every channel, default 0.
    ///   - range: the data range mapped to 0...255, default `(-1, 1)` (tanh outputs).
    /// - Returns: the grid, planar `[C, height, width]`.
    /// - Precondition: the shape is as above, `columns >= 1`, `padding >= 0`, `high > low`
    ///   and both finite. (``writePNG(images:path:columns:padding:padValue:range:createDirectories:text:)``
    ///   checks these and throws instead.)
    public static func make(images: Tensor, columns: Int? = nil, padding: Int? = nil, padValue: UInt8 = 0,
                            range: (low: Float, high: Float) = (-1, 1)) -> ImageGrid {
        if let problem = validate(shape: images.shape, columns: columns, padding: padding, range: range) {
            preconditionFailure("ImageGrid.make: \(problem)")
        }
        let s = images.rank == 3 ? [1] + images.shape : images.shape
        let (n, c, h, w) = (s[0], s[1], s[2], s[3])
        let padding = padding ?? (n == 1 ? 0 : 2)
        let cols = columns ?? defaultColumns(n)
        let rows = (n + cols - 1) / cols
        let width = cols * w + (cols + 1) * padding
        let height = rows * h + (rows + 1) * padding
        var out = [UInt8](repeating: padValue, count: c * height * width)

        let low = range.low, high = range.high
        images.withUnsafeScalars { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0 ..< n {
                    let top = padding + (i / cols) * (h + padding)
                    let left = padding + (i % cols) * (w + padding)
                    for ch in 0 ..< c {
                        let srcPlane = (i * c + ch) * h * w
                        let dstPlane = ch * height * width
                        for y in 0 ..< h {
                            let srcRow = srcPlane + y * w
                            let dstRow = dstPlane + (top + y) * width + left
                            for x in 0 ..< w {
                                dst[dstRow + x] = pixel(src[srcRow + x], low: low, high: high)
                            }
                        }
                    }
                }
            }
        }
        return ImageGrid(pixels: out, width: width, height: height, channels: c, columns: cols, rows: rows)
    }

    /// Tiles a batch of images (see ``make(images:columns:padding:padValue:range:)``) and writes the
    /// grid as an 8-bit PNG, atomically (no partial file on failure).
    ///
    /// - Parameters:
    ///   - images: `[N, C, H, W]` with `N >= 1` and `C` = 1 (gray), 3 (RGB), or 2/4 (with alpha).
    ///   - path: destination `.png` file; replaced if it exists.
    ///   - columns, padding, padValue, range: as in ``make(images:columns:padding:padValue:range:)``.
    ///   - createDirectories: create missing parent directories first (default `false`).
    ///   - text: `tEXt` chunks (keyword, text) written into the PNG, for example how pixel values
    ///     map to data units; default none.
    /// - Throws: ``DataError`` naming `path` for an unsupported shape or channel count, invalid
    ///   layout options, or any encoding / I/O failure.
    public static func writePNG(images: Tensor, path: String, columns: Int? = nil, padding: Int? = nil,
                                padValue: UInt8 = 0, range: (low: Float, high: Float) = (-1, 1),
                                createDirectories: Bool = false, text: [(keyword: String, text: String)] = []) throws {
        if let problem = validate(shape: images.shape, columns: columns, padding: padding, range: range) {
            throw DataError(file: path, problem: "cannot write image grid: \(problem)")
        }
        let grid = make(images: images, columns: columns, padding: padding, padValue: padValue, range: range)
        guard (1...4).contains(grid.channels) else {
            throw DataError(file: path, problem: "cannot write image grid: images have \(grid.channels) channels (shape \(images.shape))",
                            hint: "PNG holds 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels")
        }
        try PNGWriter.write(pixels: grid.pixels, shape: grid.shape, to: path, createDirectories: createDirectories, text: text)
    }

    /// `ceil(sqrt(n))`, computed exactly in integers.
    static func defaultColumns(_ n: Int) -> Int {
        var c = Int(Double(n).squareRoot())
        while c * c < n { c += 1 }
        while c > 1 && (c - 1) * (c - 1) >= n { c -= 1 }
        return max(c, 1)
    }

    /// A description of what is wrong with the arguments, or nil.
    static func validate(shape: [Int], columns: Int?, padding: Int?, range: (low: Float, high: Float)) -> String? {
        guard shape.count == 4 || shape.count == 3 else {
            return "images must be [N, C, H, W], got shape \(shape)"
        }
        let s = shape.count == 3 ? [1] + shape : shape
        if s[0] < 1 { return "no images to tile (shape \(shape))" }
        if s[1] < 1 || s[2] < 1 || s[3] < 1 { return "empty image (shape \(shape))" }
        if let columns, columns < 1 { return "columns must be at least 1, got \(columns)" }
        if let padding, padding < 0 { return "padding must be >= 0, got \(padding)" }
        if !(range.low.isFinite && range.high.isFinite && range.high > range.low) {
            return "value range must have finite low < high, got (\(range.low), \(range.high))"
        }
        return nil
    }
}
