import Foundation

// Longer than 400 lines on purpose: the .npy header grammar, every dtype's conversion and the IDX reader share the dtype table and one set of size checks.

/// The element type a data file stored its values in, before conversion to Float32.
///
/// It decides the default normalisation range (see ``NormalizationStats/fit(_:data:dtype:range:)``):
/// 8-bit unsigned integers (`u1`, MNIST IDX, PNG pixels) are taken to span 0...255 whatever values
/// occur; floats and text use the range actually observed.
public enum SourceDType: String, Sendable, Codable, CaseIterable {
    /// The binary element types, named as NumPy's dtypes (`bool` is one byte, `float16` half
    /// precision, ...).
    case bool, uint8, int8, uint16, int16, uint32, int32, uint64, int64, float16, float32, float64
    /// Decimal numbers written as text (CSV).
    case text

    /// Bytes per element in a binary file (0 for ``text``).
    public var byteWidth: Int {
        switch self {
        case .bool, .uint8, .int8: return 1
        case .uint16, .int16, .float16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .text: return 0
        }
    }

    /// Whether the type holds integers (``bool`` counts as one).
    public var isInteger: Bool {
        switch self {
        case .float16, .float32, .float64, .text: return false
        default: return true
        }
    }

    /// The value range implied by the type alone, used for normalisation when the user gives
    /// none: 0...1 for `bool`, 0...255 for `uint8`, -128...127 for `int8`, 0...65535 for
    /// `uint16`. `nil` for every other type (their observed min/max is used instead): wide
    /// integers rarely use their full range.
    public var naturalRange: ClosedRange<Float>? {
        switch self {
        case .bool: return 0...1
        case .uint8: return 0...255
        case .int8: return -128...127
        case .uint16: return 0...65535
        default: return nil
        }
    }

    /// The NumPy spelling without byte order (`u1`, `f4`, ...); `text` for CSV.
    public var numpyCode: String {
        switch self {
        case .bool: return "b1"
        case .uint8: return "u1"
        case .int8: return "i1"
        case .uint16: return "u2"
        case .int16: return "i2"
        case .uint32: return "u4"
        case .int32: return "i4"
        case .uint64: return "u8"
        case .int64: return "i8"
        case .float16: return "f2"
        case .float32: return "f4"
        case .float64: return "f8"
        case .text: return "text"
        }
    }
}

/// An array read from a binary file, converted to Float32, with what the file said about it.
public struct LoadedArray: Sendable {
    /// The values, row-major, shape as stored (`[]` for a 0-d array).
    public var tensor: Tensor
    /// The element type in the file.
    public var dtype: SourceDType
    /// Whether the file stored the array in Fortran (column-major) order; ``tensor`` is always
    /// row-major regardless.
    public var fortranOrder: Bool
    /// The format version, e.g. `"1.0"` for .npy or `"idx"` for IDX.
    public var formatVersion: String
}

/// Reader for NumPy `.npy` files.
///
/// Format: <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html> — the magic
/// string `\x93NUMPY`, a major and minor version byte, a little-endian header length (2 bytes in
/// version 1.0, 4 bytes in 2.0 and 3.0), an ASCII/Latin-1 (1.x, 2.x) or UTF-8 (3.0) header that is
/// a Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }` padded with
/// spaces and ended by `\n`, then the raw data.
///
/// Supported `descr` element types: `b1 u1 i1 u2 i2 u4 i4 u8 i8 f2 f4 f8`, with byte order `<`
/// (little-endian), `>` (big-endian, byte-swapped on load), `|` (not applicable) or `=`
/// (native). Object arrays (`O`, which need pickle), complex, strings, datetimes and structured
/// dtypes are refused with an error. Fortran-order arrays are transposed into row-major order.
/// Gzipped `.npy` files (content starting with `1f 8b`) are inflated first.
///
/// 64-bit integers and doubles are rounded to the nearest Float32 (integers above 2^24 lose
/// precision).
public enum NPYReader {
    /// Reads a `.npy` file into a row-major Float32 tensor of the stored shape.
    ///
    /// - Returns: shape as in the header (`[]` for a 0-d array, `[0, 3]` for an empty one).
    /// - Throws: ``DataError`` for a missing file, bad magic, a file cut inside its preamble or
    ///   header ("truncated .npy header: expected at least 10 bytes, found 6"), unsupported
    ///   version, malformed header, unsupported dtype, or too few / too many data bytes
    ///   ("expected 1536 data bytes, found 768"). Header text quoted in a message is escaped and
    ///   cut short.
    public static func load(path: String) throws -> Tensor {
        try read(path: path).tensor
    }

    /// Reads a `.npy` file, also returning its stored dtype and layout.
    ///
    /// - Throws: as ``load(path:)``.
    public static func read(path: String) throws -> LoadedArray {
        try read(bytes: Gzip.readFile(atPath: path), file: path)
    }

    /// Parses the bytes of a `.npy` file.
    ///
    /// - Parameters:
    ///   - bytes: the whole (uncompressed) file.
    ///   - file: the name used in error messages.
    /// - Throws: as ``load(path:)``.
    public static func read(bytes: [UInt8], file: String) throws -> LoadedArray {
        let magic: [UInt8] = [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59]  // \x93NUMPY
        let n = bytes.count
        func truncated(_ needed: Int, _ what: String) -> DataError {
            DataError(file: file, location: "header",
                      problem: "truncated .npy header: expected at least \(needed) bytes, found \(n)" + (n == 0 ? " (the file is empty)" : ""),
                      hint: "the file ends \(what); re-save it with numpy.save or re-download it")
        }
        // The magic string: a file that is a (possibly empty) prefix of it is cut short, any
        // other is not a .npy file.
        let seenMagic = Array(bytes.prefix(magic.count))
        guard seenMagic == Array(magic.prefix(seenMagic.count)) else {
            let seen = seenMagic.map { String(format: "%02x", $0) }.joined(separator: " ")
            throw DataError(file: file, location: "byte 0",
                            problem: "not a .npy file: the first 6 bytes must be 93 4e 55 4d 50 59 (\"\\x93NUMPY\"), found \(seen)",
                            hint: "save arrays with numpy.save")
        }
        guard n > magic.count else { throw truncated(10, n < magic.count ? "inside the magic string" : "after the magic string") }
        let major = bytes[6]
        guard (1...3).contains(major) else {
            throw DataError(file: file, location: "byte 6",
                            problem: "unsupported .npy format version \(major).\(n > 7 ? String(bytes[7]) : "?") (supported: 1.0, 2.0, 3.0)")
        }
        // Version 1.0 has a 2-byte header length, 2.0 and 3.0 a 4-byte one.
        let headerStart = major == 1 ? 10 : 12
        guard n >= headerStart else {
            throw truncated(headerStart, n < 8 ? "inside the version bytes" : "inside the header length field")
        }
        let minor = bytes[7]
        let headerLength = major == 1
            ? Int(bytes[8]) | Int(bytes[9]) << 8
            : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
        guard headerStart + headerLength <= n else {
            throw DataError(file: file, location: "header",
                            problem: "truncated .npy header: expected at least \(headerStart + headerLength) bytes (a \(headerLength)-byte header after the \(headerStart)-byte preamble), found \(n)",
                            hint: "the file ends inside the header; re-save it with numpy.save or re-download it")
        }
        let headerBytes = bytes[headerStart..<(headerStart + headerLength)]
        let headerText: String
        if major == 3 {
            guard let s = String(validating: headerBytes, as: UTF8.self) else {
                throw DataError(file: file, location: "header", problem: "header is not valid UTF-8")
            }
            headerText = s
        } else {
            headerText = String(headerBytes.map { Character(Unicode.Scalar($0)) })  // Latin-1
        }

        let header = try parseHeader(headerText, file: file)
        let (dtype, bigEndian) = try parseDescr(header.descr, file: file)
        let shape = header.shape
        let dataStart = headerStart + headerLength
        let found = bytes.count - dataStart
        // The byte count of the non-zero extents must fit in an Int even when another extent is
        // 0: every partial product of the shape (as tensors compute it) then fits too.
        let (nonZeroBytes, overflow) = shape.reduce((dtype.byteWidth, false)) { acc, d in
            if acc.1 || d == 0 { return acc }
            return acc.0.multipliedReportingOverflow(by: d)
        }
        if overflow {
            throw DataError(file: file, location: "header",
                            problem: "the header shape \(sanitizedForMessage(readerShapeText(shape), limit: 200)) is impossibly large (more than \(Int.max) bytes); the file has \(found) data bytes",
                            hint: "the header is damaged; re-save the array with numpy.save")
        }
        let expected = shape.contains(0) ? 0 : nonZeroBytes
        let count = expected / dtype.byteWidth
        if expected > found {
            throw DataError(file: file, location: "data",
                            problem: "expected \(expected) data bytes, found \(found)",
                            hint: "the file is truncated or its header shape \(sanitizedForMessage(readerShapeText(shape), limit: 200)) is wrong; re-save it")
        }
        if expected < found {
            throw DataError(file: file, location: "byte \(dataStart + expected)",
                            problem: "expected \(expected) data bytes, found \(found) (\(found - expected) extra bytes after the array)",
                            hint: "the header shape \(sanitizedForMessage(readerShapeText(shape), limit: 200)) does not match the data; re-save it with numpy.save")
        }
        var scalars = try decodeScalars(bytes, from: dataStart, count: count, dtype: dtype, bigEndian: bigEndian,
                                        file: file)
        if header.fortranOrder && shape.count > 1 {
            scalars = fortranToRowMajor(scalars, shape: shape)
        }
        return LoadedArray(tensor: Tensor(shape: shape, scalars: scalars), dtype: dtype,
                           fortranOrder: header.fortranOrder, formatVersion: "\(major).\(minor)")
    }

    // MARK: Header

    struct Header {
        var descr: PyLiteral
        var fortranOrder: Bool
        var shape: [Int]
    }

    static func parseHeader(_ text: String, file: String) throws -> Header {
        func bad(_ problem: String) -> DataError {
            DataError(file: file, location: "header", problem: problem,
                      hint: "the header must be a dict like {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }")
        }
        var parser = PyLiteralParser(Array(text.unicodeScalars))
        let value: PyLiteral
        do {
            value = try parser.parseAll()
        } catch let e as PyLiteralParser.Failure {
            let scalars = Array(text.unicodeScalars)
            let from = max(0, min(e.offset, scalars.count) - 20)
            var near = String(String.UnicodeScalarView(scalars[from...]))
            near = near.trimmingCharacters(in: .whitespacesAndNewlines)
            throw bad("malformed header dict: \(e.message) at character \(e.offset), near '\(from > 0 ? "..." : "")\(sanitizedForMessage(near))'")
        }
        guard case .dict(let pairs) = value else { throw bad("header is not a dict") }
        var dict: [String: PyLiteral] = [:]
        for (k, v) in pairs {
            guard case .string(let key) = k else { throw bad("header dict key \(sanitizedForMessage(k.description)) is not a string") }
            dict[key] = v
        }
        let keys = Set(dict.keys)
        let required: Set<String> = ["descr", "fortran_order", "shape"]
        if !required.isSubset(of: keys) {
            throw bad("header lacks key(s) \(required.subtracting(keys).sorted().map { "'\($0)'" }.joined(separator: ", "))")
        }
        if !keys.isSubset(of: required) {
            let extra = keys.subtracting(required).sorted()
            let listed = extra.prefix(5).map { "'\(sanitizedForMessage($0))'" }.joined(separator: ", ")
            throw bad("header has unexpected key(s) \(listed)\(extra.count > 5 ? " and \(extra.count - 5) more" : "")")
        }
        guard case .bool(let fortran) = dict["fortran_order"]! else {
            throw bad("'fortran_order' must be True or False, found \(sanitizedForMessage(dict["fortran_order"]!.description))")
        }
        guard case .tuple(let items) = dict["shape"]! else {
            throw bad("'shape' must be a tuple of integers, found \(sanitizedForMessage(dict["shape"]!.description))")
        }
        var shape: [Int] = []
        for item in items {
            guard case .int(let n) = item, n >= 0 else {
                throw bad("'shape' must hold non-negative integers, found \(sanitizedForMessage(item.description))")
            }
            shape.append(n)
        }
        return Header(descr: dict["descr"]!, fortranOrder: fortran, shape: shape)
    }

    static func parseDescr(_ descr: PyLiteral, file: String) throws -> (SourceDType, bigEndian: Bool) {
        guard case .string(let s) = descr else {
            throw DataError(file: file, location: "header",
                            problem: "unsupported dtype: structured arrays (descr \(sanitizedForMessage(descr.description))) are not supported",
                            hint: "save a plain numeric array, e.g. arr.astype('float32')")
        }
        var code = Substring(s)
        var order: Character = "|"
        if let c = code.first, "<>|=".contains(c) { order = c; code = code.dropFirst() }
        let kinds: [String: SourceDType] = [
            "b1": .bool, "?": .bool, "u1": .uint8, "i1": .int8, "u2": .uint16, "i2": .int16,
            "u4": .uint32, "i4": .int32, "u8": .uint64, "i8": .int64, "f2": .float16, "e": .float16,
            "f4": .float32, "f": .float32, "f8": .float64, "d": .float64, "B": .uint8, "b": .int8,
        ]
        guard let dtype = kinds[String(code)] else {
            let what: String
            switch code.first {
            case "O": what = "object arrays need Python's pickle"
            case "c": what = "complex numbers have no single real value"
            case "U", "S", "a": what = "string arrays hold no numbers"
            case "M", "m": what = "datetimes are not numeric samples"
            case "V": what = "void/structured arrays are not supported"
            case "f": what = "only 16-, 32- and 64-bit floats are supported"
            default: what = "supported: b1 u1 i1 u2 i2 u4 i4 u8 i8 f2 f4 f8"
            }
            throw DataError(file: file, location: "header",
                            problem: "unsupported dtype '\(sanitizedForMessage(s))': \(what)",
                            hint: "convert it first, e.g. numpy.save(path, arr.astype('float32'))")
        }
        #if _endian(big)
        let native = true
        #else
        let native = false
        #endif
        let big: Bool
        switch order {
        case ">": big = true
        case "<": big = false
        default: big = native  // '=' native, '|' not applicable (single bytes)
        }
        return (dtype, big)
    }

    // MARK: Data

    /// Converts `count` elements of `dtype` starting at byte `offset` to Float32.
    static func decodeScalars(_ bytes: [UInt8], from offset: Int, count: Int, dtype: SourceDType,
                              bigEndian: Bool, file: String) throws -> [Float] {
        #if _endian(big)
        let swap = !bigEndian
        #else
        let swap = bigEndian
        #endif
        return [Float](unsafeUninitializedCapacity: count) { out, initialized in
            bytes.withUnsafeBytes { raw in
                let base = raw.baseAddress! + offset
                func each<T: FixedWidthInteger>(_: T.Type, _ convert: (T) -> Float) {
                    let w = MemoryLayout<T>.size
                    if swap {
                        for i in 0..<count { out[i] = convert(base.loadUnaligned(fromByteOffset: i * w, as: T.self).byteSwapped) }
                    } else {
                        for i in 0..<count { out[i] = convert(base.loadUnaligned(fromByteOffset: i * w, as: T.self)) }
                    }
                }
                switch dtype {
                case .bool: for i in 0..<count { out[i] = base.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
                case .uint8: for i in 0..<count { out[i] = Float(base.load(fromByteOffset: i, as: UInt8.self)) }
                case .int8: for i in 0..<count { out[i] = Float(base.load(fromByteOffset: i, as: Int8.self)) }
                case .uint16: each(UInt16.self) { Float($0) }
                case .int16: each(Int16.self) { Float($0) }
                case .uint32: each(UInt32.self) { Float($0) }
                case .int32: each(Int32.self) { Float($0) }
                case .uint64: each(UInt64.self) { Float($0) }
                case .int64: each(Int64.self) { Float($0) }
                case .float16: each(UInt16.self) { halfToFloat($0) }
                case .float32: each(UInt32.self) { Float(bitPattern: $0) }
                case .float64: each(UInt64.self) { Float(Double(bitPattern: $0)) }
                case .text: break
                }
            }
            initialized = count
        }
    }

    /// IEEE 754 binary16 to binary32 (exact; subnormals, infinities and NaN included).
    @inline(__always)
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int(h >> 10) & 0x1f
        let mant = UInt32(h & 0x3ff)
        if exp == 0 {
            // zero or subnormal: mant * 2^-24
            let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -v : v
        }
        if exp == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13)) }
        return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
    }

    /// Reorders elements stored in Fortran (column-major) order for `shape` into row-major order.
    static func fortranToRowMajor(_ f: [Float], shape: [Int]) -> [Float] {
        let n = f.count
        guard n > 0 else { return f }
        let rank = shape.count
        // Strides of the column-major source.
        var fstride = [Int](repeating: 1, count: rank)
        for d in 1..<rank { fstride[d] = fstride[d - 1] * shape[d - 1] }
        var out = [Float](repeating: 0, count: n)
        var index = [Int](repeating: 0, count: rank)
        var src = 0
        for dst in 0..<n {
            out[dst] = f[src]
            // Advance the row-major multi-index (last axis fastest).
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                src += fstride[d]
                if index[d] < shape[d] { break }
                src -= fstride[d] * shape[d]
                index[d] = 0
                d -= 1
            }
        }
        return out
    }
}

func readerShapeText(_ shape: [Int]) -> String {
    shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
}

// MARK: - Python literal parsing (the .npy header)

/// A Python literal as it appears in a `.npy` header.
indirect enum PyLiteral: CustomStringConvertible {
    case string(String)
    case int(Int)
    case bool(Bool)
    case none
    case tuple([PyLiteral])
    case list([PyLiteral])
    case dict([(PyLiteral, PyLiteral)])

    var description: String {
        switch self {
        case .string(let s): return "'\(s)'"
        case .int(let n): return String(n)
        case .bool(let b): return b ? "True" : "False"
        case .none: return "None"
        case .tuple(let a): return a.count == 1 ? "(\(a[0]),)" : "(" + a.map(\.description).joined(separator: ", ") + ")"
        case .list(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .dict(let p): return "{" + p.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
        }
    }
}

/// A recursive-descent parser for the subset of Python literal syntax `numpy.lib.format`
/// writes: dicts, tuples, lists, quoted strings, integers (with an optional Python 2 `L`
/// suffix), `True`, `False` and `None`.
struct PyLiteralParser {
    struct Failure: Error { var message: String; var offset: Int }
    let s: [Unicode.Scalar]
    var i = 0
    init(_ s: [Unicode.Scalar]) { self.s = s }

    mutating func parseAll() throws -> PyLiteral {
        let v = try value()
        skipSpace()
        if i < s.count { throw Failure(message: "unexpected '\(sanitizedForMessage(String(s[i])))' after the dict", offset: i) }
        return v
    }

    mutating func skipSpace() {
        while i < s.count, s[i] == " " || s[i] == "\n" || s[i] == "\t" || s[i] == "\r" { i += 1 }
    }

    mutating func value() throws -> PyLiteral {
        skipSpace()
        guard i < s.count else { throw Failure(message: "unexpected end", offset: i) }
        let c = s[i]
        switch c {
        case "{":
            i += 1
            var pairs: [(PyLiteral, PyLiteral)] = []
            while true {
                skipSpace()
                if i < s.count, s[i] == "}" { i += 1; return .dict(pairs) }
                let k = try value()
                skipSpace()
                guard i < s.count, s[i] == ":" else { throw Failure(message: "expected ':'", offset: i) }
                i += 1
                let v = try value()
                pairs.append((k, v))
                skipSpace()
                if i < s.count, s[i] == "," { i += 1; continue }
                if i < s.count, s[i] == "}" { i += 1; return .dict(pairs) }
                throw Failure(message: "expected ',' or '}'", offset: i)
            }
        case "(", "[":
            let close: Unicode.Scalar = c == "(" ? ")" : "]"
            i += 1
            var items: [PyLiteral] = []
            var sawComma = false
            while true {
                skipSpace()
                if i < s.count, s[i] == close {
                    i += 1
                    if c == "[" { return .list(items) }
                    // "(5)" is just 5 in Python, "(5,)" is a tuple.
                    if items.count == 1 && !sawComma { return items[0] }
                    return .tuple(items)
                }
                items.append(try value())
                skipSpace()
                if i < s.count, s[i] == "," { i += 1; sawComma = true; continue }
                if i < s.count, s[i] == close { continue }
                throw Failure(message: "expected ',' or '\(close)'", offset: i)
            }
        case "'", "\"":
            i += 1
            var out = String.UnicodeScalarView()
            while i < s.count, s[i] != c {
                if s[i] == "\\", i + 1 < s.count { i += 1 }
                out.append(s[i])
                i += 1
            }
            guard i < s.count else { throw Failure(message: "unterminated string", offset: i) }
            i += 1
            return .string(String(out))
        case "-", "+", "0"..."9":
            let start = i
            if c == "-" || c == "+" { i += 1 }
            var n = 0
            var digits = 0
            while i < s.count, ("0"..."9").contains(s[i]) {
                let (m, o1) = n.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int(s[i].value - 48))
                if o1 || o2 { throw Failure(message: "integer too large", offset: start) }
                n = a
                digits += 1
                i += 1
            }
            if digits == 0 { throw Failure(message: "expected digits", offset: i) }
            if i < s.count, s[i] == "L" || s[i] == "l" { i += 1 }
            return .int(c == "-" ? -n : n)
        default:
            let start = i
            while i < s.count, s[i].properties.isAlphabetic || s[i] == "_" { i += 1 }
            let word = String(String.UnicodeScalarView(s[start..<i]))
            switch word {
            case "True": return .bool(true)
            case "False": return .bool(false)
            case "None": return .none
            default: throw Failure(message: "unexpected '\(sanitizedForMessage(word.isEmpty ? String(c) : word))'", offset: start)
            }
        }
    }
}
