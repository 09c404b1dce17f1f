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
    ///   unknown, the header declares 0 dimensions, the header is cut short ("truncated IDX
    ///   header: expected at least 16 bytes, found 9"), the dimensions are impossibly large, or
    ///   the data holds fewer or more bytes than the dimensions need ("expected 24 data bytes,
    ///   found 12"). A dimension of size 0 with no data gives an empty tensor.
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
        let n = bytes.count
        let types: [UInt8: SourceDType] = [0x08: .uint8, 0x09: .int8, 0x0B: .int16, 0x0C: .int32, 0x0D: .float32, 0x0E: .float64]
        // Check what is there of the magic number before complaining that it is cut short.
        if (n >= 1 && bytes[0] != 0) || (n >= 2 && bytes[1] != 0) {
            let seen = bytes.prefix(2).map { String(format: "0x%02x", $0) }.joined(separator: " ")
            throw DataError(file: file, location: "byte 0",
                            problem: "not an IDX file: the first two magic bytes must be 0, found \(seen)",
                            hint: "IDX files (MNIST) start 00 00 08 03 for images and 00 00 08 01 for labels")
        }
        if n >= 3 && types[bytes[2]] == nil {
            throw DataError(file: file, location: "byte 2",
                            problem: String(format: "unknown IDX type code 0x%02x", bytes[2]),
                            hint: "valid codes: 0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32, 0x0D f32, 0x0E f64")
        }
        guard n >= 4 else {
            throw DataError(file: file, location: "header",
                            problem: "truncated IDX header: expected at least 4 bytes (the magic number), found \(n)" + (n == 0 ? " (the file is empty)" : ""),
                            hint: "the file ends inside the magic number; re-download it")
        }
        let dtype = types[bytes[2]]!
        let rank = Int(bytes[3])
        guard rank > 0 else {
            throw DataError(file: file, location: "byte 3",
                            problem: "IDX header declares 0 dimensions",
                            hint: "an IDX file needs at least one dimension (1 for labels, 3 for images); the file is damaged or not IDX")
        }
        let dataStart = 4 + 4 * rank
        guard n >= dataStart else {
            throw DataError(file: file, location: "header",
                            problem: "truncated IDX header: expected at least \(dataStart) bytes (the magic number and \(rank) dimension size\(rank == 1 ? "" : "s")), found \(n)",
                            hint: "the file ends inside the header; re-download it")
        }
        var shape: [Int] = []
        for d in 0..<rank {
            let o = 4 + 4 * d
            shape.append(Int(bytes[o]) << 24 | Int(bytes[o + 1]) << 16 | Int(bytes[o + 2]) << 8 | Int(bytes[o + 3]))
        }
        let dims = shape.map(String.init).joined(separator: " x ")
        let found = n - dataStart
        // The byte count the dimensions need, or nil when it does not fit in an Int.
        // The non-zero dimensions must fit in an Int even when another one is 0, so that every
        // partial product of the shape (as tensors compute it) fits too.
        var expected: Int? = dtype.byteWidth
        for d in shape where d != 0 {
            guard let e = expected else { break }
            let (m, o) = e.multipliedReportingOverflow(by: d)
            expected = o ? nil : m
        }
        if expected != nil && shape.contains(0) { expected = 0 }
        if let zero = shape.firstIndex(of: 0), found > 0 {
            throw DataError(file: file, location: "header",
                            problem: "the header dimensions \(dims) hold no values (dimension \(zero + 1) is 0), but \(found) data bytes follow",
                            hint: "the header is damaged; re-download the file")
        }
        guard let expected else {
            throw DataError(file: file, location: "header",
                            problem: "the header dimensions \(dims) are impossibly large (more than \(Int.max) data bytes); the file has \(found) data bytes",
                            hint: "the header is damaged or this is not an IDX file")
        }
        if expected > found {
            throw DataError(file: file, location: "data",
                            problem: "expected \(expected) data bytes, found \(found)",
                            hint: "the header dimensions \(dims) need more data than the file holds: it is truncated or its header is damaged; re-download it")
        }
        if expected < found {
            throw DataError(file: file, location: "byte \(dataStart + expected)",
                            problem: "expected \(expected) data bytes, found \(found) (\(found - expected) extra)",
                            hint: "the header dimensions \(dims) do not match the data")
        }
        let count = expected / dtype.byteWidth
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
