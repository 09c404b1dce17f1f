import CSPNG
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Encodes 8-bit images as PNG files through libspng.
///
/// Pixels are given **planar** (channel-major), matching the `[N, C, H, W]` tensor layout used
/// everywhere else: a buffer of shape `[H, W]` (grayscale) or `[C, H, W]` with
///
/// | C | PNG colour type (PNG spec §11.2.2, IHDR) |
/// |---|---|
/// | 1 | greyscale (0) |
/// | 2 | greyscale with alpha (4) |
/// | 3 | truecolour RGB (2) |
/// | 4 | truecolour with alpha RGBA (6) |
///
/// The writer interleaves the planes into PNG scanline order (`[H, W, C]`), encodes with
/// bit depth 8, no interlacing, and writes the file with ``AtomicFile`` so that a crash never
/// leaves a truncated PNG.
public enum PNGWriter {

    /// Encodes planar 8-bit pixels as the bytes of a PNG file.
    ///
    /// - Parameters:
    ///   - pixels: `shape.reduce(1, *)` values in row-major order of `shape`.
    ///   - shape: `[H, W]` or `[C, H, W]` with `C` in 1...4 (see the table on ``PNGWriter``);
    ///     `H` and `W` at least 1.
    /// - Returns: the complete PNG file (signature, IHDR, IDAT, IEND).
    /// - Throws: ``DataError`` (file `"<PNG encoder>"`) when the shape is not a valid image shape,
    ///   the buffer size does not match it, or libspng reports an error.
    ///   - text: `tEXt` chunks as (keyword, text) pairs (PNG spec §11.3.4.3: a keyword of 1-79
    ///     Latin-1 characters such as `Software` or `Comment`); default none.
    public static func encode(pixels: [UInt8], shape: [Int], text: [(keyword: String, text: String)] = []) throws -> [UInt8] {
        try encode(pixels: pixels, shape: shape, name: "<PNG encoder>", text: text)
    }

    /// Encodes planar 8-bit pixels as PNG and writes them to `path` atomically.
    ///
    /// - Parameters:
    ///   - pixels: `shape.reduce(1, *)` values in row-major order of `shape`.
    ///   - shape: `[H, W]` or `[C, H, W]` with `C` in 1...4.
    ///   - path: destination file; replaced if it exists.
    ///   - createDirectories: create missing parent directories first (default `false`).
    ///   - text: `tEXt` chunks as (keyword, text) pairs; default none.
    /// - Throws: ``DataError`` naming `path` for an invalid shape, an encoder failure or any
    ///   I/O failure; nothing is written in that case.
    public static func write(pixels: [UInt8], shape: [Int], to path: String,
                             createDirectories: Bool = false, text: [(keyword: String, text: String)] = []) throws {
        let png = try encode(pixels: pixels, shape: shape, name: path, text: text)
        try AtomicFile.write(png, to: path, createDirectories: createDirectories)
    }

    static func encode(pixels: [UInt8], shape: [Int], name: String, text: [(keyword: String, text: String)] = []) throws -> [UInt8] {
        let (channels, height, width): (Int, Int, Int)
        switch shape.count {
        case 2: (channels, height, width) = (1, shape[0], shape[1])
        case 3: (channels, height, width) = (shape[0], shape[1], shape[2])
        default:
            throw DataError(file: name, problem: "cannot encode PNG: pixel shape \(shape) is not [H, W] or [C, H, W]")
        }
        guard (1...4).contains(channels) else {
            throw DataError(file: name, problem: "cannot encode PNG: \(channels) channels (shape \(shape))",
                            hint: "PNG holds 1 (gray), 2 (gray+alpha), 3 (RGB) or 4 (RGBA) channels")
        }
        guard height >= 1, width >= 1, height <= Int(Int32.max), width <= Int(Int32.max) else {
            throw DataError(file: name, problem: "cannot encode PNG: image size \(width)x\(height) is outside 1...2^31-1")
        }
        let (count, overflow) = height.multipliedReportingOverflow(by: width)
        guard !overflow, pixels.count == count * channels else {
            throw DataError(file: name, problem: "cannot encode PNG: \(pixels.count) pixel values for shape \(shape)")
        }

        // Planar [C, H, W] -> interleaved [H, W, C] scanlines.
        let plane = height * width
        var interleaved: [UInt8]
        if channels == 1 {
            interleaved = pixels
        } else {
            interleaved = [UInt8](repeating: 0, count: pixels.count)
            pixels.withUnsafeBufferPointer { src in
                interleaved.withUnsafeMutableBufferPointer { dst in
                    for c in 0 ..< channels {
                        let base = c * plane
                        for i in 0 ..< plane { dst[i * channels + c] = src[base + i] }
                    }
                }
            }
        }

        let colorType: spng_color_type
        switch channels {
        case 1: colorType = SPNG_COLOR_TYPE_GRAYSCALE
        case 2: colorType = SPNG_COLOR_TYPE_GRAYSCALE_ALPHA
        case 3: colorType = SPNG_COLOR_TYPE_TRUECOLOR
        default: colorType = SPNG_COLOR_TYPE_TRUECOLOR_ALPHA
        }

        guard let ctx = spng_ctx_new(Int32(SPNG_CTX_ENCODER.rawValue)) else {
            throw DataError(file: name, problem: "cannot encode PNG: libspng could not create an encoder (out of memory)")
        }
        defer { spng_ctx_free(ctx) }

        func check(_ rc: Int32, _ step: String) throws {
            if rc != 0 {
                throw DataError(file: name, problem: "cannot encode PNG (\(step)): \(String(cString: spng_strerror(rc)))")
            }
        }
        try check(spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1), "spng_set_option")
        var ihdr = spng_ihdr(width: UInt32(width), height: UInt32(height), bit_depth: 8,
                             color_type: UInt8(colorType.rawValue), compression_method: 0,
                             filter_method: 0, interlace_method: UInt8(SPNG_INTERLACE_NONE.rawValue))
        try check(spng_set_ihdr(ctx, &ihdr), "spng_set_ihdr")
        // tEXt chunks: libspng copies them when encoding, so the C strings live until then.
        let cTexts = text.map { strdup($0.text) }
        defer { cTexts.forEach { free($0) } }
        if !text.isEmpty {
            var chunks = [spng_text]()
            for (i, t) in text.enumerated() {
                let key = Array(t.keyword.utf8)
                guard (1...79).contains(key.count), key.allSatisfy({ $0 >= 32 && $0 < 127 }) else {
                    throw DataError(file: name, problem: "cannot encode PNG: text keyword \"\(t.keyword)\" is not 1-79 printable characters")
                }
                var chunk = spng_text()
                withUnsafeMutableBytes(of: &chunk.keyword) { raw in
                    for (j, b) in key.enumerated() { raw[j] = b }
                    raw[key.count] = 0
                }
                chunk.type = Int32(SPNG_TEXT.rawValue)
                chunk.length = strlen(cTexts[i]!)
                chunk.text = cTexts[i]
                chunks.append(chunk)
            }
            try check(spng_set_text(ctx, &chunks, UInt32(chunks.count)), "spng_set_text")
        }
        let rc = interleaved.withUnsafeBytes { buf in
            spng_encode_image(ctx, buf.baseAddress, buf.count, Int32(SPNG_FMT_PNG.rawValue),
                              Int32(SPNG_ENCODE_FINALIZE.rawValue))
        }
        try check(rc, "spng_encode_image")

        var length = 0
        var error: Int32 = 0
        guard let buffer = spng_get_png_buffer(ctx, &length, &error) else {
            try check(error == 0 ? Int32(SPNG_EINTERNAL.rawValue) : error, "spng_get_png_buffer")
            return []
        }
        defer { free(buffer) }
        try check(error, "spng_get_png_buffer")
        return [UInt8](UnsafeRawBufferPointer(start: buffer, count: length))
    }
}
