import Foundation

/// Reader for the IDX format of the MNIST distribution files (`train-images-idx3-ubyte`,
/// `train-labels-idx1-ubyte`, ..., raw or gzipped).
///
/// Format (Y. LeCun, C. Cortes, C. J. C. Burges, "THE MNIST DATABASE", file-format section):
/// a 4-byte magic number — two zero bytes, a type code, and the number of dimensions — then
/// one big-endian 32-bit size per dimension, then the data, big-endian, in row-major order.
/// Type codes: `0x08` unsigned byte, `0x09` signed byte, `0x0B` 16-bit integer, `0x0C` 32-bit
/// integer, `0x0D` 32-bit float, `0x0E` 64-bit float. Gzip is detected by content.
public enum IDXReader {
    /// Reads an IDX file into a row-major Float32 tensor of the stored dimensions.
    ///
    /// - Returns: e.g. `[N, rows, cols]` for an `idx3` image file, `[N]` for an `idx1` label file.
    /// - Throws: ``DataError`` when the first two magic bytes are not 0, the type code is
    ///   unknown, the header is cut short, or the data holds fewer or more bytes than the
    ///   dimensions need ("expected 24 data bytes, found 12").
    public static func load(path: String) throws -> Tensor {
        try read(path: path).tensor
    }

    /// Reads an IDX file, also returning its element type.
    ///
    /// - Throws: as ``load(path:)``.
    public static func read(path: String) throws -> LoadedArray {
        try read(bytes: Gzip.readFile(atPath: path), file: path)
    }

    /// Parses the bytes of an (uncompressed) IDX file.
    ///
    /// - Throws: as ``load(path:)``.
    public static func read(bytes: [UInt8], file: String) throws -> LoadedArray {
        guard bytes.count >= 4 else {
            throw DataError(file: file, location: "byte 0",
                            problem: "not an IDX file: it has \(bytes.count) bytes, fewer than the 4-byte magic number")
        }
        guard bytes[0] == 0 && bytes[1] == 0 else {
            throw DataError(file: file, location: "byte 0",
                            problem: String(format: "not an IDX file: the first two magic bytes must be 0, found 0x%02x 0x%02x", bytes[0], bytes[1]),
                            hint: "IDX files (MNIST) start 00 00 08 03 for images and 00 00 08 01 for labels")
        }
        let types: [UInt8: SourceDType] = [0x08: .uint8, 0x09: .int8, 0x0B: .int16, 0x0C: .int32, 0x0D: .float32, 0x0E: .float64]
        guard let dtype = types[bytes[2]] else {
            throw DataError(file: file, location: "byte 2",
                            problem: String(format: "unknown IDX type code 0x%02x", bytes[2]),
                            hint: "valid codes: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64")
        }
        let rank = Int(bytes[3])
        let dataStart = 4 + 4 * rank
        guard bytes.count >= dataStart else {
            throw DataError(file: file, location: "header",
                            problem: "the header declares \(rank) dimensions (\(4 * rank) bytes of sizes) but the file ends at byte \(bytes.count)",
                            hint: "the file looks truncated")
        }
        var shape: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            shape.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        var count = 1
        var overflow = false
        for d in shape {
            let (m, o) = count.multipliedReportingOverflow(by: d)
            count = m
            overflow = overflow || o
        }
        let (expected, o2) = count.multipliedReportingOverflow(by: dtype.byteWidth)
        let found = bytes.count - dataStart
        if overflow || o2 {
            throw DataError(file: file, location: "header",
                            problem: "the header dimensions \(shape.map(String.init).joined(separator: " x ")) are impossibly large",
                            hint: "the file is not a valid IDX file")
        }
        if expected != found {
            let dims = shape.map(String.init).joined(separator: " x ")
            throw DataError(file: file, location: "data",
                            problem: "expected \(expected) data bytes, found \(found)" + (found > expected ? " (\(found - expected) extra)" : ""),
                            hint: found < expected ? "the file is truncated (header dimensions \(dims)); re-download it"
                                                   : "the header dimensions \(dims) do not match the data")
        }
        let scalars = try NPYReader.decodeScalars(bytes, from: dataStart, count: count, dtype: dtype,
                                                  bigEndian: true, file: file)
        return LoadedArray(tensor: Tensor(shape: shape, scalars: scalars), dtype: dtype, fortranOrder: false,
                           formatVersion: "idx\(rank)")
    }

    /// The conventional labels file for an MNIST images file, if one exists next to it:
    /// `train-images-idx3-ubyte[.gz]` → `train-labels-idx1-ubyte[.gz]` (also `train-images.idx3-ubyte`
    /// → `train-labels.idx1-ubyte`), trying the names with and without `.gz`.
    ///
    /// - Returns: the path of the first candidate that exists, or `nil`.
    public static func siblingLabelsPath(forImages path: String) -> String? {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        var name = url.lastPathComponent
        if name.hasSuffix(".gz") { name.removeLast(3) }
        guard name.contains("images") || name.contains("idx3") else { return nil }
        let base = name.replacingOccurrences(of: "images", with: "labels")
            .replacingOccurrences(of: "idx3", with: "idx1")
        guard base != name else { return nil }
        for candidate in [base, base + ".gz"] {
            let p = dir.appendingPathComponent(candidate).path
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: p, isDirectory: &isDir), !isDir.boolValue { return p }
        }
        return nil
    }
}
