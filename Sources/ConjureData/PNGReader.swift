import CSPNG
import Foundation

/// One decoded PNG image, with its pixels as 8-bit RGB regardless of how it was stored.
public struct PNGDecodedImage: Sendable {
    /// Width in pixels.
    public var width: Int
    /// Height in pixels.
    public var height: Int
    /// Whether the file stores grayscale (PNG colour type 0 gray or 4 gray+alpha, any bit depth).
    public var isGrayscale: Bool
    /// The PNG colour type (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA).
    public var colorType: Int
    /// The PNG bit depth (1, 2, 4, 8 or 16).
    public var bitDepth: Int
    /// Interleaved 8-bit RGB pixels, row-major: `rgb[(y * width + x) * 3 + c]`. Alpha is dropped
    /// (not composited), 16-bit samples are scaled to 8 bits by `round(v * 255 / 65535)`,
    /// palettes are expanded, low bit depths scaled to 0...255; gray is copied into R, G and B.
    public var rgb: [UInt8]
}

/// Reader for PNG files and folders of PNG files, through libspng
/// (<https://libspng.org>; format: W3C PNG Specification, Third Edition).
public enum PNGReader {
    /// The default bound on the bytes one image may decode to: 2^28 bytes (256 MiB), that is
    /// 67 million pixels at 8 bits per sample or 33 million at 16 bits (a 50-megapixel
    /// 8-bit photo fits). See ``decodedByteCount(width:height:bitDepth:)``.
    public static let defaultMaxDecodedBytes = 1 << 28

    /// The bytes the decoder allocates for an image: `width * height * 4 * (bitDepth == 16 ? 2 : 1)`
    /// (every image is decoded as RGBA, 8 or 16 bits per sample), or `nil` when that product
    /// overflows `Int`.
    public static func decodedByteCount(width: Int, height: Int, bitDepth: Int) -> Int? {
        let sample = bitDepth == 16 ? 8 : 4
        let (pixels, o1) = width.multipliedReportingOverflow(by: height)
        let (bytes, o2) = pixels.multipliedReportingOverflow(by: sample)
        return o1 || o2 ? nil : bytes
    }

    /// Decodes one PNG file held in memory.
    ///
    /// The header's width, height and bit depth are checked against `maxDecodedBytes` before
    /// anything is allocated, so a small file that declares a huge image (a "decompression
    /// bomb", such as 32768x32768 in 1 MB) is refused with an error instead of exhausting memory.
    ///
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - file: the name used in error messages.
    ///   - maxDecodedBytes: the largest decoded size accepted, in bytes, as
    ///     ``decodedByteCount(width:height:bitDepth:)`` counts it; default
    ///     ``defaultMaxDecodedBytes``.
    /// - Throws: ``DataError`` when the bytes are not a PNG (bad signature), are truncated, fail
    ///   to decode (libspng's message is quoted), or declare an image larger than
    ///   `maxDecodedBytes` (the message gives width x height, channels and bytes).
    public static func decode(bytes: [UInt8], file: String,
                              maxDecodedBytes: Int = defaultMaxDecodedBytes) throws -> PNGDecodedImage {
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        guard bytes.count >= 8, Array(bytes[0..<8]) == signature else {
            throw DataError(file: file, location: "byte 0",
                            problem: "not a PNG file (the first 8 bytes are not the PNG signature 89 50 4e 47 0d 0a 1a 0a)")
        }
        guard let ctx = spng_ctx_new(0) else {
            throw DataError(file: file, problem: "cannot create a libspng decoder (out of memory?)")
        }
        defer { spng_ctx_free(ctx) }
        func fail(_ what: String, _ rc: Int32) -> DataError {
            let msg = String(cString: spng_strerror(rc))
            let truncated = rc == Int32(truncatingIfNeeded: SPNG_IO_EOF.rawValue) || rc == Int32(truncatingIfNeeded: SPNG_EOF.rawValue)
            return DataError(file: file, problem: "\(truncated ? "truncated" : "corrupt") PNG: \(what) failed: \(msg)",
                             hint: truncated ? "the file looks truncated; re-export it" : "re-export the image")
        }
        // Guard against absurd dimensions in a damaged header (libspng's default limit is huge).
        spng_set_image_limits(ctx, 1 << 15, 1 << 15)
        // Ancillary chunks (text, ICC profiles) are small in real files; bound what libspng
        // keeps of them (its default is unbounded) so compressed text cannot inflate without end.
        spng_set_chunk_limits(ctx, 1 << 24, 1 << 26)
        return try bytes.withUnsafeBytes { raw -> PNGDecodedImage in
            var rc = spng_set_png_buffer(ctx, raw.baseAddress, raw.count)
            if rc != 0 { throw fail("reading the buffer", rc) }
            var ihdr = spng_ihdr()
            rc = spng_get_ihdr(ctx, &ihdr)
            if rc != 0 { throw fail("reading the header", rc) }
            let w = Int(ihdr.width), h = Int(ihdr.height)
            let colorType = Int(ihdr.color_type)
            let depth = Int(ihdr.bit_depth)
            let sixteen = depth == 16
            let storedChannels = [0: 1, 2: 3, 3: 3, 4: 2, 6: 4][colorType] ?? 4
            let needed = decodedByteCount(width: w, height: h, bitDepth: depth)
            guard let needed, needed <= maxDecodedBytes else {
                throw DataError(file: file, location: "IHDR",
                                problem: "the image declares \(w)x\(h) pixels (width x height) with \(storedChannels) channel\(storedChannels == 1 ? "" : "s") at \(depth) bits, which decodes to \(needed.map { "\($0) bytes" } ?? "more than Int.max bytes"), over the limit of \(maxDecodedBytes) bytes",
                                hint: "a file this small declaring an image this large is damaged or crafted; if it is real, downscale it or raise the limit (maxDecodedBytes)")
            }
            let fmt = Int32(sixteen ? SPNG_FMT_RGBA16.rawValue : SPNG_FMT_RGBA8.rawValue)
            var size = 0
            rc = spng_decoded_image_size(ctx, fmt, &size)
            if rc != 0 { throw fail("sizing the image", rc) }
            var decoded = [UInt8](repeating: 0, count: size)
            rc = decoded.withUnsafeMutableBytes { spng_decode_image(ctx, $0.baseAddress, size, fmt, 0) }
            if rc != 0 { throw fail("decoding the image data", rc) }
            let n = w * h
            var rgb = [UInt8](repeating: 0, count: n * 3)
            if sixteen {
                decoded.withUnsafeBytes { src in
                    for i in 0..<n {
                        for c in 0..<3 {
                            let v = UInt32(src.loadUnaligned(fromByteOffset: (i * 4 + c) * 2, as: UInt16.self))
                            rgb[i * 3 + c] = UInt8((v * 255 + 32767) / 65535)
                        }
                    }
                }
            } else {
                for i in 0..<n {
                    rgb[i * 3] = decoded[i * 4]
                    rgb[i * 3 + 1] = decoded[i * 4 + 1]
                    rgb[i * 3 + 2] = decoded[i * 4 + 2]
                }
            }
            return PNGDecodedImage(width: w, height: h, isGrayscale: colorType == 0 || colorType == 4,
                                   colorType: colorType, bitDepth: depth, rgb: rgb)
        }
    }

    /// Reads and decodes one PNG file.
    ///
    /// - Throws: ``DataError`` as ``decode(bytes:file:maxDecodedBytes:)``, or when the file cannot be read.
    public static func decode(path: String, maxDecodedBytes: Int = defaultMaxDecodedBytes) throws -> PNGDecodedImage {
        try decode(bytes: Gzip.readRawFile(atPath: path), file: path, maxDecodedBytes: maxDecodedBytes)
    }

    /// The `*.png` files (any case of the extension) directly inside `directory`, sorted by name
    /// (byte order of the UTF-8 names), as full paths. Hidden files (names starting with `.`,
    /// such as macOS `._x.png` metadata files) and subfolders are skipped.
    ///
    /// - Throws: ``DataError`` when the directory cannot be listed.
    public static func pngFiles(in directory: String) throws -> [String] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
        } catch {
            throw DataError(file: directory, problem: "cannot list the folder: \(error.localizedDescription)")
        }
        return names.filter { $0.lowercased().hasSuffix(".png") && !$0.hasPrefix(".") }
            .sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
            .map { (directory as NSString).appendingPathComponent($0) }
    }

    /// Loads every `*.png` directly inside a folder (see ``pngFiles(in:)``) as one batch of images.
    ///
    /// Channel rule: the output has 1 channel when **every** image is grayscale (PNG gray or
    /// gray+alpha, any bit depth), otherwise 3 channels (RGB; gray images are repeated into R, G
    /// and B). Alpha is dropped, not composited over a background. 16-bit samples are scaled to
    /// 8 bits (65535 → 255); palette images are expanded to RGB.
    ///
    /// - Parameters:
    ///   - directory: the folder path.
    ///   - maxDecodedBytes: the per-image bound of ``decode(bytes:file:maxDecodedBytes:)``.
    /// - Returns: the images, shape `[N, C, H, W]`, values 0...255 (Float32), and the file paths
    ///   in the same order (sorted by name).
    /// - Throws: ``DataError`` naming the folder when it holds no PNG files; naming **every**
    ///   corrupt, truncated or non-PNG file (all are checked before the error is raised); or
    ///   naming the first file whose width/height differs from the first image's.
    public static func loadFolder(_ directory: String,
                                  maxDecodedBytes: Int = defaultMaxDecodedBytes) throws -> (images: Tensor, files: [String]) {
        let files = try pngFiles(in: directory)
        guard !files.isEmpty else {
            throw DataError(file: directory, problem: "the folder holds no .png files (nor .wav or .flac files)",
                            hint: "point at a folder of PNG images (files directly inside it, named *.png), or of sound files")
        }
        var images: [PNGDecodedImage] = []
        var failures: [(String, DataError)] = []
        for f in files {
            do { images.append(try decode(path: f, maxDecodedBytes: maxDecodedBytes)) } catch let e as DataError { failures.append((f, e)) }
        }
        if !failures.isEmpty {
            let list = failures.map { "\(($0.0 as NSString).lastPathComponent) (\($0.1.problem))" }.joined(separator: "; ")
            throw DataError(file: directory,
                            problem: "\(failures.count) of \(files.count) PNG files cannot be read: \(list)",
                            hint: "remove or re-export the bad files: \(failures.map(\.0).joined(separator: ", "))")
        }
        let w = images[0].width, h = images[0].height
        for (i, im) in images.enumerated() where im.width != w || im.height != h {
            throw DataError(file: files[i],
                            problem: "image is \(im.width)x\(im.height) (width x height) but \((files[0] as NSString).lastPathComponent) is \(w)x\(h); all images in a folder must have the same size",
                            hint: "resize the images to one size first")
        }
        let channels = images.allSatisfy(\.isGrayscale) ? 1 : 3
        let plane = w * h
        var out = [Float](repeating: 0, count: images.count * channels * plane)
        for (k, im) in images.enumerated() {
            let base = k * channels * plane
            im.rgb.withUnsafeBufferPointer { rgb in
                for c in 0..<channels {
                    for i in 0..<plane { out[base + c * plane + i] = Float(rgb[i * 3 + c]) }
                }
            }
        }
        return (Tensor(shape: [images.count, channels, h, w], scalars: out), files)
    }
}
