import Foundation

/// Writes tensors in NumPy's `.npy` format so that `numpy.load` reads them back exactly.
///
/// Format (NumPy Enhancement Proposal 1, "A Simple File Format for NumPy Arrays", and
/// `numpy/lib/format.py`): the magic string `\x93NUMPY`, format version 1.0 (bytes `01 00`),
/// a little-endian `UInt16` header length, then an ASCII Python-literal header
///
///     {'descr': '<f4', 'fortran_order': False, 'shape': (N, C, H, W), }
///
/// padded with spaces and terminated by `\n` so that the data starts at a multiple of 64 bytes,
/// then the elements as little-endian Float32 in C (row-major) order.
///
/// The header text and padding are byte-for-byte what `numpy.save` (NumPy ≥ 1.24) writes,
/// including its 21-digit growth allowance for the first axis, so a file written here is
/// identical to `np.save(path, array.astype('<f4'))`. Version 2.0 (a 4-byte header length) is
/// used only when the header would not fit in 65535 bytes, as NumPy does.
public enum NPYWriter {

    /// The bytes of a `.npy` file holding `tensor` as `<f4`.
    ///
    /// - Parameter tensor: any shape, including `[]` (a 0-d array) and shapes with a 0 extent.
    /// - Returns: magic, version, header length, header and data; `header + prefix` is a multiple
    ///   of 64 bytes and the data is `4 * tensor.count` bytes.
    public static func encode(_ tensor: Tensor) -> [UInt8] {
        var out = header(shape: tensor.shape)
        out.reserveCapacity(out.count + 4 * tensor.count)
        #if _endian(little)
        tensor.scalars.withUnsafeBytes { out.append(contentsOf: $0) }
        #else
        for v in tensor.scalars { withUnsafeBytes(of: v.bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        #endif
        return out
    }

    /// Writes `tensor` to `path` as a version 1.0 `<f4` C-order `.npy` file, atomically.
    ///
    /// - Parameters:
    ///   - tensor: any shape; written as float32 in row-major order.
    ///   - path: destination; replaced if it exists.
    ///   - createDirectories: create missing parent directories first (default `false`).
    /// - Throws: ``DataError`` naming `path` on any I/O failure; nothing is written then.
    public static func write(_ tensor: Tensor, to path: String, createDirectories: Bool = false) throws {
        let head = header(shape: tensor.shape)
        try AtomicFile.write(to: path, createDirectories: createDirectories) { w in
            try w.write(head)
            try tensor.withUnsafeScalars { try w.writeLittleEndian($0) }
        }
    }

    /// The magic, version, header length and padded header for a `<f4` C-order array.
    static func header(shape: [Int]) -> [UInt8] {
        let shapeText: String
        switch shape.count {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(shape[0]),)"
        default: shapeText = "(" + shape.map(String.init).joined(separator: ", ") + ")"
        }
        var dict = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // numpy.lib.format._write_array_header: room for the first axis to grow in place.
        if let first = shape.first {
            dict += String(repeating: " ", count: max(0, 21 - String(first).count))
        }
        // numpy.lib.format._wrap_header: pad so that the data starts at a multiple of 64.
        let text = Array(dict.utf8)
        let hlen = text.count + 1                             // + "\n"
        var version: UInt8 = 1
        var prefixCount = 10                                  // magic 6 + version 2 + UInt16
        var padding = 64 - (prefixCount + hlen) % 64
        if hlen + padding > Int(UInt16.max) {
            version = 2
            prefixCount = 12                                  // magic 6 + version 2 + UInt32
            padding = 64 - (prefixCount + hlen) % 64
        }
        let total = hlen + padding
        var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
        if version == 1 {
            out += [UInt8(total & 0xFF), UInt8(total >> 8)]
        } else {
            out += (0 ..< 4).map { UInt8((total >> (8 * $0)) & 0xFF) }
        }
        out += text
        out += [UInt8](repeating: 0x20, count: padding)
        out.append(0x0A)
        return out
    }
}

extension AtomicFile.Writer {
    /// Appends values as little-endian bytes (raw on little-endian hosts).
    mutating func writeLittleEndian(_ values: UnsafeBufferPointer<Float>) throws {
        #if _endian(little)
        try write(UnsafeRawBufferPointer(values))
        #else
        try writeLittleEndian(values.map { $0.bitPattern })
        #endif
    }

    /// Appends integers as little-endian bytes (raw on little-endian hosts).
    mutating func writeLittleEndian<T: FixedWidthInteger>(_ values: [T]) throws {
        #if _endian(little)
        try values.withUnsafeBytes { try write($0) }
        #else
        try values.map { $0.littleEndian }.withUnsafeBytes { try write($0) }
        #endif
    }
}
