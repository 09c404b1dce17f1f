import Foundation

/// CRC-32C (Castagnoli): the checksum of TFRecord framing.
///
/// The reflected CRC-32 with polynomial 0x1EDC6F41 (reversed 0x82F63B78), initial value and
/// final XOR 0xFFFFFFFF (RFC 3720 §B.4, as iSCSI and SSE4.2's `crc32` instruction define it).
/// Computed one byte at a time from a 256-entry table. Check value: `checksum("123456789") ==
/// 0xE3069283`.
public enum CRC32C {
    /// `table[b]`: the CRC register after shifting the byte `b` through eight reflected steps.
    static let table: [UInt32] = (0 ..< 256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0 ..< 8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    /// The CRC-32C of `bytes`.
    public static func checksum<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
        var crc: UInt32 = 0xFFFF_FFFF
        table.withUnsafeBufferPointer { t in
            for b in bytes { crc = t[Int((crc ^ UInt32(b)) & 0xFF)] ^ (crc >> 8) }
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// TFRecord's masked CRC: `((crc >> 15) | (crc << 17)) &+ 0xA282EAD8` (rotated right by
    /// 15 bits, plus a constant), so that a CRC stored inside CRC'd data does not weaken it.
    public static func masked(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

/// TFRecord framing, the record format of TensorFlow event files.
///
/// Each record is `uint64 length` (little endian), `uint32 masked_crc32c(length bytes)`, the
/// `length` payload bytes, `uint32 masked_crc32c(payload)`; both CRCs little endian and masked
/// with ``CRC32C/masked(_:)``.
public enum TFRecord {
    /// One record holding `payload`: 16 bytes of framing plus the payload.
    public static func frame(_ payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(payload.count + 16)
        let length = withUnsafeBytes(of: UInt64(payload.count).littleEndian, Array.init)
        out += length
        out += withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(length)).littleEndian, Array.init)
        out += payload
        out += withUnsafeBytes(of: CRC32C.masked(CRC32C.checksum(payload)).littleEndian, Array.init)
        return out
    }
}
