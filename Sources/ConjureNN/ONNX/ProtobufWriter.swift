import Foundation

/// A minimal Protocol Buffers wire-format encoder: enough to write TensorBoard's
/// `Event` messages and ONNX models (``ONNXModel``) by hand.
///
/// Fields are appended in the order written (write them by increasing field number to match
/// the canonical serialisation). Wire types: 0 varint (`int32`, `int64`, `enum`, `bool`),
/// 1 fixed 64-bit (`double`), 2 length-delimited (`string`, `bytes`, embedded messages),
/// 5 fixed 32-bit (`float`). Negative `int32`/`int64` values are sign-extended to 64 bits and
/// take ten bytes, as the protobuf specification requires.
public struct ProtobufWriter: Sendable {
    /// The bytes encoded so far.
    public private(set) var bytes: [UInt8] = []

    /// An empty message.
    public init() {}

    /// Appends `value` as a base-128 varint (7 bits a byte, least significant group first,
    /// high bit set on every byte but the last).
    public mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    /// Appends a field key: `(field << 3) | wireType`.
    ///
    /// - Precondition: `field` is 1...2^29-1 and `wireType` one of 0, 1, 2, 5.
    public mutating func key(_ field: Int, wireType: Int) {
        precondition(field >= 1 && field < (1 << 29), "ProtobufWriter: field number \(field) out of range")
        precondition([0, 1, 2, 5].contains(wireType), "ProtobufWriter: wire type \(wireType) is not written")
        varint(UInt64(field) << 3 | UInt64(wireType))
    }

    /// An `int64` (or `int32`, `enum`) field: wire type 0, two's complement for negatives.
    public mutating func int64(_ field: Int, _ value: Int64) {
        key(field, wireType: 0)
        varint(UInt64(bitPattern: value))
    }

    /// A `double` field: wire type 1, 8 bytes little endian.
    public mutating func double(_ field: Int, _ value: Double) {
        key(field, wireType: 1)
        bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }

    /// A `float` field: wire type 5, 4 bytes little endian.
    public mutating func float(_ field: Int, _ value: Float) {
        key(field, wireType: 5)
        bytes += withUnsafeBytes(of: value.bitPattern.littleEndian, Array.init)
    }

    /// A `bytes` field: wire type 2, the length as a varint, then the bytes.
    public mutating func bytes(_ field: Int, _ value: [UInt8]) {
        key(field, wireType: 2)
        varint(UInt64(value.count))
        bytes += value
    }

    /// A `string` field: its UTF-8 bytes as a length-delimited field.
    public mutating func string(_ field: Int, _ value: String) {
        bytes(field, Array(value.utf8))
    }

    /// An embedded message field: `message`'s bytes as a length-delimited field.
    public mutating func message(_ field: Int, _ message: ProtobufWriter) {
        bytes(field, message.bytes)
    }
}
