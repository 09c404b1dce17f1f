import Foundation

// Longer than 400 lines on purpose: the safetensors reader and writer share the header grammar, dtype table and bounds checks; split apart, each would re-derive them.

/// The element types of a safetensors file that Conjure reads.
///
/// Names and sizes are those of the safetensors format (`Dtype` in huggingface/safetensors).
/// Floating types are converted to Float32 on reading; integer types are kept exact.
public enum SafeTensorDType: String, Sendable, CaseIterable {
    /// IEEE 754 binary64; read as Float32 (rounded to nearest).
    case f64 = "F64"
    /// IEEE 754 binary32.
    case f32 = "F32"
    /// IEEE 754 binary16; read as Float32 (exact).
    case f16 = "F16"
    /// bfloat16 (the top 16 bits of a binary32); read as Float32 (exact).
    case bf16 = "BF16"
    /// Signed 64-bit integer.
    case i64 = "I64"
    /// Signed 32-bit integer.
    case i32 = "I32"
    /// Unsigned 64-bit integer.
    case u64 = "U64"
    /// Unsigned 8-bit integer.
    case u8 = "U8"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64, .u64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16: return 2
        case .u8: return 1
        }
    }
}

/// One array of a safetensors file: a Float32 ``Tensor`` or an exact integer array with its shape.
///
/// Integer arrays carry values that must not pass through Float32, such as step counters, RNG
/// state words or label indices. Shapes are row-major (C order) like ``Tensor``.
public enum SafeTensorValue: Sendable, Equatable {
    /// Float32 data (written as `F32`; `F64`, `F16` and `BF16` are read into this case).
    case f32(Tensor)
    /// Signed 64-bit integers, `values.count == shape.reduce(1, *)` (`I64`).
    case i64([Int64], shape: [Int])
    /// Signed 32-bit integers (`I32`).
    case i32([Int32], shape: [Int])
    /// Unsigned 64-bit integers (`U64`), e.g. RNG state.
    case u64([UInt64], shape: [Int])
    /// Unsigned bytes (`U8`).
    case u8([UInt8], shape: [Int])

    /// The array's shape.
    public var shape: [Int] {
        switch self {
        case .f32(let t): return t.shape
        case .i64(_, let s), .i32(_, let s), .u64(_, let s), .u8(_, let s): return s
        }
    }

    /// Number of elements.
    public var count: Int {
        switch self {
        case .f32(let t): return t.count
        case .i64(let v, _): return v.count
        case .i32(let v, _): return v.count
        case .u64(let v, _): return v.count
        case .u8(let v, _): return v.count
        }
    }

    /// The dtype this value is written as.
    public var dtype: SafeTensorDType {
        switch self {
        case .f32: return .f32
        case .i64: return .i64
        case .i32: return .i32
        case .u64: return .u64
        case .u8: return .u8
        }
    }

    /// The Float32 tensor of an `.f32` value, else nil.
    public var tensor: Tensor? {
        if case .f32(let t) = self { return t }
        return nil
    }

    /// The values of an `.i64` or `.i32` value as Int64, else nil.
    public var int64s: [Int64]? {
        switch self {
        case .i64(let v, _): return v
        case .i32(let v, _): return v.map(Int64.init)
        default: return nil
        }
    }

    /// The values of a `.u64` or `.u8` value as UInt64, else nil.
    public var uint64s: [UInt64]? {
        switch self {
        case .u64(let v, _): return v
        case .u8(let v, _): return v.map(UInt64.init)
        default: return nil
        }
    }

    /// Equal when the cases, shapes and element bit patterns are equal (so NaN == NaN here).
    public static func == (a: SafeTensorValue, b: SafeTensorValue) -> Bool {
        switch (a, b) {
        case let (.f32(x), .f32(y)):
            return x.shape == y.shape && x.scalars.map(\.bitPattern) == y.scalars.map(\.bitPattern)
        case let (.i64(x, s), .i64(y, t)): return s == t && x == y
        case let (.i32(x, s), .i32(y, t)): return s == t && x == y
        case let (.u64(x, s), .u64(y, t)): return s == t && x == y
        case let (.u8(x, s), .u8(y, t)): return s == t && x == y
        default: return false
        }
    }
}

/// The contents of a safetensors file as read by ``SafeTensors/read(path:)``.
public struct SafeTensorsFile: Sendable {
    /// The file it was read from (used in error messages).
    public var path: String
    /// Every array by name.
    public var tensors: [String: SafeTensorValue]
    /// Tensor names in file order (by data offset; header order for ties such as empty tensors).
    public var order: [String]
    /// The `__metadata__` string map (empty when absent).
    public var metadata: [String: String]
    /// The dtype each array had in the file (floating types are converted to Float32 on reading).
    public var storedDTypes: [String: SafeTensorDType]

    /// The Float32 tensor named `name`.
    ///
    /// - Throws: ``DataError`` naming the file and tensor when it is missing or holds integers.
    public func tensor(_ name: String) throws -> Tensor {
        guard let value = tensors[name] else {
            throw DataError(file: path, location: "tensor '\(name)'", problem: "no such tensor in the file",
                            hint: "the file holds \(order.count) tensors")
        }
        guard let t = value.tensor else {
            throw DataError(file: path, location: "tensor '\(name)'",
                            problem: "holds \(storedDTypes[name]?.rawValue ?? value.dtype.rawValue) integers, expected floating-point data")
        }
        return t
    }
}

/// Reads and writes the safetensors format used by Hugging Face and PyTorch checkpoints.
///
/// Layout (https://github.com/huggingface/safetensors, "Format"):
///
///     [8 bytes]  N, the header size, little-endian UInt64
///     [N bytes]  UTF-8 JSON object:
///                {"__metadata__": {"key": "value", ...},
///                 "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
///                padded with spaces so that 8 + N is a multiple of 8
///     [rest]     the byte buffer: each tensor's elements little-endian, row-major, at
///                [begin, end) relative to the start of the buffer
///
/// The buffer must be fully indexed: tensors sorted by offset are contiguous, start at 0 and end
/// at the end of the file (no gaps, no overlaps, no trailing bytes), and `end - begin` equals
/// `shape.product * dtype size`. The reader checks all of this and throws a ``DataError`` that
/// names the file and the tensor; the writer produces such files (tensors in the given order,
/// `__metadata__` first with sorted keys, as the reference Python library writes it).
public enum SafeTensors {

    /// Largest header accepted by ``read(path:)`` (the reference implementation's limit).
    public static let maxHeaderBytes = 100_000_000

    // MARK: Writing

    /// Writes Float32 tensors and string metadata to `path` atomically.
    ///
    /// - Parameters:
    ///   - tensors: `(name, tensor)` pairs laid out in this order; names unique, not `__metadata__`.
    ///   - metadata: small values stored as strings under `__metadata__` (config, step, ...).
    ///   - path: destination; replaced if it exists. Nothing is written on failure.
    ///   - createDirectories: create missing parent directories first (default `false`).
    /// - Throws: ``DataError`` naming `path` (and the tensor) for a duplicate or reserved name, or
    ///   any I/O failure.
    public static func write(tensors: [(String, Tensor)], metadata: [String: String] = [:],
                             to path: String, createDirectories: Bool = false) throws {
        try write(values: tensors.map { ($0.0, SafeTensorValue.f32($0.1)) }, metadata: metadata,
                  to: path, createDirectories: createDirectories)
    }

    /// Writes Float32 and integer arrays and string metadata to `path` atomically.
    ///
    /// - Parameters:
    ///   - values: `(name, value)` pairs laid out in this order; names unique, not `__metadata__`;
    ///     integer values must have `values.count == shape.reduce(1, *)`.
    ///   - metadata, path, createDirectories: as in ``write(tensors:metadata:to:createDirectories:)``.
    /// - Throws: ``DataError`` naming `path` and the tensor for an invalid entry, or any I/O failure.
    public static func write(values: [(String, SafeTensorValue)], metadata: [String: String] = [:],
                             to path: String, createDirectories: Bool = false) throws {
        let header = try makeHeader(values: values, metadata: metadata, file: path)
        try AtomicFile.write(to: path, createDirectories: createDirectories) { w in
            try w.write(header)
            for (_, value) in values {
                switch value {
                case .f32(let t): try t.withUnsafeScalars { try w.writeLittleEndian($0) }
                case .i64(let v, _): try w.writeLittleEndian(v)
                case .i32(let v, _): try w.writeLittleEndian(v)
                case .u64(let v, _): try w.writeLittleEndian(v)
                case .u8(let v, _): try w.write(v)
                }
            }
        }
    }

    /// Writes Float32 tensors whose elements are handed over one tensor at a time, so that a
    /// checkpoint never holds a copy of its whole state: `elements` is called once, after the
    /// header is written, and must call its `emit` argument once per entry, in `entries` order,
    /// with that tensor's row-major elements (valid during the call only).
    ///
    /// - Parameters:
    ///   - entries: `(name, shape)` of each tensor in file order; names unique, not `__metadata__`.
    ///   - metadata, path, createDirectories: as in ``write(tensors:metadata:to:createDirectories:)``.
    ///   - elements: hands the tensors' elements to `emit`.
    /// - Throws: ``DataError`` naming `path` (and the tensor) for an invalid entry, elements that
    ///   do not match the entries (wrong count, too few or too many tensors; nothing is written
    ///   then), any I/O failure, or what `elements` throws.
    public static func write(streaming entries: [(name: String, shape: [Int])], metadata: [String: String] = [:],
                             to path: String, createDirectories: Bool = false,
                             elements: (_ emit: (UnsafeBufferPointer<Float>) throws -> Void) throws -> Void) throws {
        let header = try makeHeader(entries: entries.map { ($0.name, SafeTensorDType.f32, $0.shape, $0.shape.reduce(1, *)) },
                                    metadata: metadata, file: path)
        try AtomicFile.write(to: path, createDirectories: createDirectories) { w in
            try w.write(header)
            var next = 0
            try elements { values in
                guard next < entries.count else {
                    throw DataError(file: path, problem: "more tensors handed over than the \(entries.count) in the header")
                }
                let (name, shape) = entries[next]
                guard values.count == shape.reduce(1, *) else {
                    throw DataError(file: path, location: "tensor '\(name)'", problem: "\(values.count) values for shape \(shape)")
                }
                try w.writeLittleEndian(values)
                next += 1
            }
            guard next == entries.count else {
                throw DataError(file: path, problem: "\(next) tensors handed over for the \(entries.count) in the header")
            }
        }
    }

    /// The bytes of a safetensors file holding `values` and `metadata` (see
    /// ``write(values:metadata:to:createDirectories:)``).
    ///
    /// - Throws: ``DataError`` (file `"<safetensors>"`) for a duplicate or reserved name or a
    ///   count that does not match its shape.
    public static func encode(values: [(String, SafeTensorValue)], metadata: [String: String] = [:]) throws -> [UInt8] {
        var out = try makeHeader(values: values, metadata: metadata, file: "<safetensors>")
        for (_, value) in values {
            switch value {
            case .f32(let t): appendLE(t.scalars.map(\.bitPattern), to: &out)
            case .i64(let v, _): appendLE(v, to: &out)
            case .i32(let v, _): appendLE(v, to: &out)
            case .u64(let v, _): appendLE(v, to: &out)
            case .u8(let v, _): out += v
            }
        }
        return out
    }

    /// The 8-byte length prefix and the space-padded JSON header.
    private static func makeHeader(values: [(String, SafeTensorValue)], metadata: [String: String],
                                   file: String) throws -> [UInt8] {
        try makeHeader(entries: values.map { ($0.0, $0.1.dtype, $0.1.shape, $0.1.count) }, metadata: metadata, file: file)
    }

    /// The header of entries `(name, dtype, shape, element count)` laid out in this order.
    private static func makeHeader(entries: [(String, SafeTensorDType, [Int], Int)], metadata: [String: String],
                                   file: String) throws -> [UInt8] {
        var json = "{"
        var first = true
        if !metadata.isEmpty {
            json += jsonString("__metadata__") + ":{"
            json += metadata.keys.sorted().map { jsonString($0) + ":" + jsonString(metadata[$0]!) }
                .joined(separator: ",")
            json += "}"
            first = false
        }
        var seen = Set<String>()
        var offset = 0
        for (name, dtype, shape, count) in entries {
            let location = "tensor '\(name)'"
            if name == "__metadata__" {
                throw DataError(file: file, location: location, problem: "'__metadata__' is reserved for the metadata map")
            }
            if !seen.insert(name).inserted {
                throw DataError(file: file, location: location, problem: "duplicate tensor name")
            }
            guard shape.allSatisfy({ $0 >= 0 }) else {
                throw DataError(file: file, location: location, problem: "negative extent in shape \(shape)")
            }
            guard shape.reduce(1, *) == count else {
                throw DataError(file: file, location: location,
                                problem: "\(count) values for shape \(shape) (needs \(shape.reduce(1, *)))")
            }
            let end = offset + count * dtype.byteSize
            if !first { json += "," }
            first = false
            json += jsonString(name) + ":{\"dtype\":\"\(dtype.rawValue)\",\"shape\":["
                + shape.map(String.init).joined(separator: ",") + "],\"data_offsets\":[\(offset),\(end)]}"
            offset = end
        }
        json += "}"
        var text = Array(json.utf8)
        let pad = (8 - text.count % 8) % 8
        text += [UInt8](repeating: 0x20, count: pad)
        var out: [UInt8] = []
        out.reserveCapacity(8 + text.count)
        appendLE([UInt64(text.count)], to: &out)
        out += text
        return out
    }

    /// A JSON string literal (RFC 8259 §7): quotes, backslashes and control characters escaped.
    private static func jsonString(_ s: String) -> String {
        var r = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\r": r += "\\r"
            case "\t": r += "\\t"
            default:
                if u.value < 0x20 {
                    let hex = String(u.value, radix: 16)
                    r += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    r.unicodeScalars.append(u)
                }
            }
        }
        return r + "\""
    }

    private static func appendLE<T: FixedWidthInteger>(_ values: [T], to out: inout [UInt8]) {
        #if _endian(little)
        values.withUnsafeBytes { out.append(contentsOf: $0) }
        #else
        values.map { $0.littleEndian }.withUnsafeBytes { out.append(contentsOf: $0) }
        #endif
    }

    // MARK: Reading

    /// Reads and validates a safetensors file.
    ///
    /// - Parameter path: the file.
    /// - Returns: every array (Float32 for `F32`/`F64`/`F16`/`BF16`, exact integers for
    ///   `I64`/`I32`/`U64`/`U8`), the names in file order and the `__metadata__` map.
    /// - Throws: ``DataError`` naming the file, and the tensor where there is one, when the file
    ///   cannot be read, is shorter than 8 bytes, declares a header longer than the file, has a
    ///   header that is not a valid UTF-8 JSON object of the expected form, uses an unsupported
    ///   dtype, or has data offsets that are out of range, overlap, leave gaps or trailing bytes,
    ///   or do not match `shape × dtype size`.
    public static func read(path: String) throws -> SafeTensorsFile {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            var isDir: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            throw DataError(file: path, problem: !exists ? "no such file" : isDir.boolValue ? "is a directory" : "cannot read: \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { try decode($0, file: path) }
    }

    /// Parses and validates the bytes of a safetensors file (see ``read(path:)``).
    ///
    /// - Parameters:
    ///   - bytes: the whole file.
    ///   - file: the name used in error messages.
    public static func decode(_ bytes: [UInt8], file: String = "<safetensors>") throws -> SafeTensorsFile {
        try bytes.withUnsafeBytes { try decode($0, file: file) }
    }

    static func decode(_ raw: UnsafeRawBufferPointer, file: String) throws -> SafeTensorsFile {
        guard raw.count >= 8 else {
            throw DataError(file: file, location: "byte 0",
                            problem: "file too short: \(raw.count) bytes, but a safetensors file starts with an 8-byte header length",
                            hint: "the file is truncated or not a safetensors file")
        }
        var n: UInt64 = 0
        for i in 0 ..< 8 { n |= UInt64(raw[i]) << (8 * UInt64(i)) }
        guard n <= UInt64(raw.count - 8) else {
            throw DataError(file: file, location: "byte 0",
                            problem: "header length \(n) is larger than the rest of the file (\(raw.count - 8) bytes)",
                            hint: "the file is truncated or not a safetensors file")
        }
        guard n <= UInt64(maxHeaderBytes) else {
            throw DataError(file: file, location: "byte 0", problem: "header length \(n) exceeds the limit of \(maxHeaderBytes) bytes")
        }
        let headerCount = Int(n)
        let headerBytes = UnsafeRawBufferPointer(rebasing: raw[8 ..< 8 + headerCount])

        var parser = HeaderJSONParser(bytes: headerBytes)
        let root: HeaderJSON
        do {
            root = try parser.parseDocument()
        } catch let e as HeaderJSONParser.Failure {
            throw DataError(file: file, location: "header, byte \(8 + e.offset)", problem: "invalid JSON header: \(e.message)")
        }
        guard case .object(let members) = root else {
            throw DataError(file: file, location: "header", problem: "the JSON header is not an object")
        }

        struct Entry { var name: String; var dtype: SafeTensorDType; var shape: [Int]; var begin: Int; var end: Int; var index: Int }
        var entries: [Entry] = []
        var metadata: [String: String] = [:]
        var names = Set<String>()
        let dataStart = 8 + headerCount
        let dataCount = raw.count - dataStart

        for (index, (name, value)) in members.enumerated() {
            if !names.insert(name).inserted {
                throw DataError(file: file, location: "header", problem: "duplicate key '\(name)' in the JSON header")
            }
            if name == "__metadata__" {
                switch value {
                case .null: break
                case .object(let pairs):
                    for (k, v) in pairs {
                        guard case .string(let s) = v else {
                            throw DataError(file: file, location: "__metadata__['\(k)']",
                                            problem: "metadata values must be strings, found \(v.kind)")
                        }
                        metadata[k] = s
                    }
                default:
                    throw DataError(file: file, location: "__metadata__", problem: "must be an object of strings, found \(value.kind)")
                }
                continue
            }
            let location = "tensor '\(name)'"
            guard case .object(let fields) = value else {
                throw DataError(file: file, location: location, problem: "header entry must be an object, found \(value.kind)")
            }
            func field(_ key: String) throws -> HeaderJSON {
                guard let f = fields.first(where: { $0.0 == key }) else {
                    throw DataError(file: file, location: location, problem: "header entry has no '\(key)'")
                }
                return f.1
            }
            guard case .string(let dtypeName) = try field("dtype") else {
                throw DataError(file: file, location: location, problem: "'dtype' must be a string")
            }
            guard let dtype = SafeTensorDType(rawValue: dtypeName) else {
                throw DataError(file: file, location: location, problem: "unsupported dtype '\(dtypeName)'",
                                hint: "supported: " + SafeTensorDType.allCases.map(\.rawValue).joined(separator: ", "))
            }
            guard case .array(let shapeItems) = try field("shape") else {
                throw DataError(file: file, location: location, problem: "'shape' must be an array of integers")
            }
            var shape: [Int] = []
            for item in shapeItems {
                guard let d = item.nonNegativeInt else {
                    throw DataError(file: file, location: location, problem: "'shape' must hold non-negative integers, found \(item.kind) \(item.text)")
                }
                shape.append(d)
            }
            guard case .array(let offsetItems) = try field("data_offsets"), offsetItems.count == 2,
                  let begin = offsetItems[0].nonNegativeInt, let end = offsetItems[1].nonNegativeInt else {
                throw DataError(file: file, location: location, problem: "'data_offsets' must be [begin, end] with non-negative integers")
            }
            guard begin <= end else {
                throw DataError(file: file, location: location, problem: "data_offsets [\(begin), \(end)] end before they begin")
            }
            guard end <= dataCount else {
                throw DataError(file: file, location: location,
                                problem: "data_offsets [\(begin), \(end)] are out of range: the data buffer holds \(dataCount) bytes",
                                hint: "the file is truncated")
            }
            var elements = 1
            var overflow = false
            for d in shape {
                let (p, o) = elements.multipliedReportingOverflow(by: d)
                elements = p; overflow = overflow || o
            }
            let (needed, o2) = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, !o2, needed == end - begin else {
                throw DataError(file: file, location: location,
                                problem: "data_offsets [\(begin), \(end)] hold \(end - begin) bytes, but shape \(shape) of \(dtype.rawValue) needs \(overflow || o2 ? "more than Int.max" : String(needed))")
            }
            entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end, index: index))
        }

        // The buffer must be fully indexed: contiguous from 0 to its end.
        entries.sort { ($0.begin, $0.end, $0.index) < ($1.begin, $1.end, $1.index) }
        var position = 0
        var previous: String? = nil
        for e in entries {
            if e.begin < position {
                throw DataError(file: file, location: "tensor '\(e.name)'",
                                problem: "data_offsets [\(e.begin), \(e.end)] overlap tensor '\(previous!)', which ends at \(position)")
            }
            if e.begin > position {
                throw DataError(file: file, location: "tensor '\(e.name)'",
                                problem: "data_offsets [\(e.begin), \(e.end)] leave a gap of \(e.begin - position) unindexed bytes before the tensor",
                                hint: "a safetensors buffer must be fully indexed")
            }
            position = e.end
            previous = e.name
        }
        if position != dataCount {
            throw DataError(file: file, location: "byte \(dataStart + position)",
                            problem: "\(dataCount - position) bytes after the last tensor are not indexed by the header",
                            hint: "a safetensors buffer must be fully indexed")
        }

        var tensors: [String: SafeTensorValue] = [:]
        var stored: [String: SafeTensorDType] = [:]
        for e in entries {
            let bytes = UnsafeRawBufferPointer(rebasing: raw[(dataStart + e.begin) ..< (dataStart + e.end)])
            let count = e.shape.reduce(1, *)
            let value: SafeTensorValue
            switch e.dtype {
            case .f32:
                value = .f32(Tensor(shape: e.shape, scalars: loadLE(UInt32.self, bytes, count).map(Float.init(bitPattern:))))
            case .f64:
                value = .f32(Tensor(shape: e.shape, scalars: loadLE(UInt64.self, bytes, count).map { Float(Double(bitPattern: $0)) }))
            case .f16:
                value = .f32(Tensor(shape: e.shape, scalars: loadLE(UInt16.self, bytes, count).map(floatFromHalfBits)))
            case .bf16:
                value = .f32(Tensor(shape: e.shape, scalars: loadLE(UInt16.self, bytes, count).map { Float(bitPattern: UInt32($0) << 16) }))
            case .i64: value = .i64(loadLE(Int64.self, bytes, count), shape: e.shape)
            case .i32: value = .i32(loadLE(Int32.self, bytes, count), shape: e.shape)
            case .u64: value = .u64(loadLE(UInt64.self, bytes, count), shape: e.shape)
            case .u8: value = .u8(Array(bytes), shape: e.shape)
            }
            tensors[e.name] = value
            stored[e.name] = e.dtype
        }
        return SafeTensorsFile(path: file, tensors: tensors, order: entries.map(\.name), metadata: metadata,
                               storedDTypes: stored)
    }

    /// `count` little-endian integers from possibly unaligned bytes.
    private static func loadLE<T: FixedWidthInteger>(_: T.Type, _ bytes: UnsafeRawBufferPointer, _ count: Int) -> [T] {
        precondition(bytes.count == count * MemoryLayout<T>.size)
        let raw = [T](unsafeUninitializedCapacity: count) { buf, initialized in
            if count > 0 { UnsafeMutableRawBufferPointer(buf).copyMemory(from: bytes) }
            initialized = count
        }
        #if _endian(big)
        return raw.map { T(littleEndian: $0) }
        #else
        return raw
        #endif
    }

    /// IEEE 754 binary16 bits to Float (exact; subnormals, infinities and NaN payloads kept).
    private static func floatFromHalfBits(_ h: UInt16) -> Float {
        let sign = UInt32(h >> 15) << 31
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h) & 0x3FF
        if exponent == 0 {
            let magnitude = Float(mantissa) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        }
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

// MARK: - A small JSON parser that keeps key order and exact integer text

/// A parsed JSON value of a safetensors header. Objects keep their members in file order and
/// numbers keep their literal text, so offsets up to UInt64 are read exactly.
private indirect enum HeaderJSON {
    case object([(String, HeaderJSON)])
    case array([HeaderJSON])
    case string(String)
    case number(String)
    case bool(Bool)
    case null

    var kind: String {
        switch self {
        case .object: return "an object"
        case .array: return "an array"
        case .string: return "a string"
        case .number: return "a number"
        case .bool: return "a boolean"
        case .null: return "null"
        }
    }

    /// A short rendering for error messages.
    var text: String {
        switch self {
        case .number(let t): return t
        case .string(let s): return "\"\(s)\""
        case .bool(let b): return String(b)
        default: return ""
        }
    }

    /// The value as a non-negative Int when it is an integer literal without fraction or
    /// exponent that fits in Int.
    var nonNegativeInt: Int? {
        guard case .number(let t) = self, let v = Int(t), v >= 0 else { return nil }
        return v
    }
}

/// RFC 8259 parser over the header bytes.
private struct HeaderJSONParser {
    struct Failure: Error { var offset: Int; var message: String }

    let bytes: UnsafeRawBufferPointer
    var i = 0
    var depth = 0

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

    mutating func parseDocument() throws -> HeaderJSON {
        skipSpace()
        guard i < bytes.count else { throw Failure(offset: i, message: "the header is empty") }
        guard bytes[i] == UInt8(ascii: "{") else {
            throw Failure(offset: i, message: "the header must start with '{'")
        }
        let v = try parseValue()
        skipSpace()
        if i < bytes.count {
            throw Failure(offset: i, message: "unexpected \(describe(bytes[i])) after the end of the JSON object")
        }
        return v
    }

    private func describe(_ b: UInt8) -> String {
        (0x21 ... 0x7E).contains(b) ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x" + String(b, radix: 16)
    }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    private mutating func expect(_ c: Character, _ what: String) throws {
        skipSpace()
        guard i < bytes.count else { throw Failure(offset: i, message: "unexpected end of header, expected \(what)") }
        guard bytes[i] == c.asciiValue! else { throw Failure(offset: i, message: "expected \(what), found \(describe(bytes[i]))") }
        i += 1
    }

    private mutating func parseValue() throws -> HeaderJSON {
        skipSpace()
        guard i < bytes.count else { throw Failure(offset: i, message: "unexpected end of header, expected a value") }
        switch bytes[i] {
        case UInt8(ascii: "{"):
            depth += 1
            defer { depth -= 1 }
            guard depth <= 64 else { throw Failure(offset: i, message: "nesting deeper than 64 levels") }
            i += 1
            var members: [(String, HeaderJSON)] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
            while true {
                skipSpace()
                guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else {
                    throw Failure(offset: i, message: i < bytes.count ? "expected a string key, found \(describe(bytes[i]))" : "unexpected end of header, expected a key")
                }
                let key = try parseString()
                try expect(":", "':'")
                members.append((key, try parseValue()))
                skipSpace()
                guard i < bytes.count else { throw Failure(offset: i, message: "unexpected end of header, expected ',' or '}'") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "}") { i += 1; return .object(members) }
                throw Failure(offset: i, message: "expected ',' or '}', found \(describe(bytes[i]))")
            }
        case UInt8(ascii: "["):
            depth += 1
            defer { depth -= 1 }
            guard depth <= 64 else { throw Failure(offset: i, message: "nesting deeper than 64 levels") }
            i += 1
            var items: [HeaderJSON] = []
            skipSpace()
            if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
            while true {
                items.append(try parseValue())
                skipSpace()
                guard i < bytes.count else { throw Failure(offset: i, message: "unexpected end of header, expected ',' or ']'") }
                if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
                if bytes[i] == UInt8(ascii: "]") { i += 1; return .array(items) }
                throw Failure(offset: i, message: "expected ',' or ']', found \(describe(bytes[i]))")
            }
        case UInt8(ascii: "\""):
            return .string(try parseString())
        case UInt8(ascii: "t"):
            try literal("true"); return .bool(true)
        case UInt8(ascii: "f"):
            try literal("false"); return .bool(false)
        case UInt8(ascii: "n"):
            try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0") ... UInt8(ascii: "9"):
            return .number(try parseNumber())
        default:
            throw Failure(offset: i, message: "unexpected \(describe(bytes[i])), expected a value")
        }
    }

    private mutating func literal(_ word: String) throws {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, (0 ..< w.count).allSatisfy({ bytes[i + $0] == w[$0] }) else {
            throw Failure(offset: i, message: "invalid literal, expected '\(word)'")
        }
        i += w.count
    }

    private mutating func parseNumber() throws -> String {
        let start = i
        func digits() -> Int {
            let s = i
            while i < bytes.count, (0x30 ... 0x39).contains(bytes[i]) { i += 1 }
            return i - s
        }
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let n = digits()
        guard n > 0 else { throw Failure(offset: i, message: "invalid number: no digits") }
        if n > 1 && bytes[intStart] == UInt8(ascii: "0") { throw Failure(offset: intStart, message: "invalid number: leading zero") }
        if i < bytes.count, bytes[i] == UInt8(ascii: ".") {
            i += 1
            guard digits() > 0 else { throw Failure(offset: i, message: "invalid number: no digits after '.'") }
        }
        if i < bytes.count, bytes[i] == UInt8(ascii: "e") || bytes[i] == UInt8(ascii: "E") {
            i += 1
            if i < bytes.count, bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard digits() > 0 else { throw Failure(offset: i, message: "invalid number: no digits in the exponent") }
        }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start ..< i]), as: UTF8.self)
    }

    /// Parses a string starting at the opening quote; validates UTF-8 and escapes.
    private mutating func parseString() throws -> String {
        let open = i
        i += 1
        var utf8: [UInt8] = []
        while true {
            guard i < bytes.count else { throw Failure(offset: open, message: "unterminated string") }
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; break }
            if b < 0x20 { throw Failure(offset: i, message: "control character 0x\(String(b, radix: 16)) in a string") }
            if b != UInt8(ascii: "\\") { utf8.append(b); i += 1; continue }
            i += 1
            guard i < bytes.count else { throw Failure(offset: open, message: "unterminated string") }
            let e = bytes[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""): utf8.append(0x22)
            case UInt8(ascii: "\\"): utf8.append(0x5C)
            case UInt8(ascii: "/"): utf8.append(0x2F)
            case UInt8(ascii: "b"): utf8.append(0x08)
            case UInt8(ascii: "f"): utf8.append(0x0C)
            case UInt8(ascii: "n"): utf8.append(0x0A)
            case UInt8(ascii: "r"): utf8.append(0x0D)
            case UInt8(ascii: "t"): utf8.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800 ... 0xDBFF).contains(scalar) {
                    guard i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                        throw Failure(offset: i, message: "unpaired UTF-16 surrogate in \\u escape")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00 ... 0xDFFF).contains(low) else {
                        throw Failure(offset: i, message: "unpaired UTF-16 surrogate in \\u escape")
                    }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00 ... 0xDFFF).contains(scalar) {
                    throw Failure(offset: i, message: "unpaired UTF-16 surrogate in \\u escape")
                }
                utf8 += Array(String(Character(Unicode.Scalar(scalar)!)).utf8)
            default:
                throw Failure(offset: i - 1, message: "invalid escape '\\\(Character(Unicode.Scalar(e)))'")
            }
        }
        guard let s = String(validating: utf8, as: UTF8.self) else {
            throw Failure(offset: open, message: "string is not valid UTF-8")
        }
        return s
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw Failure(offset: i, message: "incomplete \\u escape") }
        var v: UInt32 = 0
        for _ in 0 ..< 4 {
            let b = bytes[i]
            let d: UInt32
            switch b {
            case 0x30 ... 0x39: d = UInt32(b - 0x30)
            case 0x41 ... 0x46: d = UInt32(b - 0x41 + 10)
            case 0x61 ... 0x66: d = UInt32(b - 0x61 + 10)
            default: throw Failure(offset: i, message: "invalid hex digit in \\u escape")
            }
            v = v * 16 + d
            i += 1
        }
        return v
    }
}
