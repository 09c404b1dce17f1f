import Foundation
import XCTest
@testable import ConjureData

/// Tests of SafeTensors read/write against the format of huggingface/safetensors:
/// round trips, a file built byte by byte from the spec, and every kind of corruption.
final class SafeTensorsTests: XCTestCase {

    private var directory: String = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("conjure-safetensors-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    // MARK: Round trip

    func testRoundTripOfFloatAndIntegerArraysAndMetadata() throws {
        let weight = Tensor(shape: [2, 3], scalars: [0.5, -1.25, 3, .nan, -.infinity, 0x1p-140])  // 0x1p-140 is subnormal
        let bias = Tensor(shape: [2], scalars: [7, -8])
        let scalar = Tensor(shape: [], scalars: [42])
        let empty = Tensor(shape: [0, 3], scalars: [])
        let values: [(String, SafeTensorValue)] = [
            ("generator.net.0.weight", .f32(weight)),
            ("generator.net.0.bias", .f32(bias)),
            ("empty", .f32(empty)),
            ("step", .i64([1_234_567_890_123], shape: [])),
            ("rng.state", .u64([0xFFFF_FFFF_FFFF_FFFF, 0, 0x0123_4567_89AB_CDEF], shape: [3])),
            ("labels", .i32([-1, 0, 2_147_483_647, -2_147_483_648], shape: [2, 2])),
            ("mask", .u8([0, 255, 7], shape: [3])),
            ("scale", .f32(scalar)),
        ]
        let metadata = ["format": "pt", "config": "{\"lr\": 2e-4, \"name\": \"a\\\\b\"}\nline2\ttab",
                        "unicode": "héllo ✓ 🎲", "control": "\u{1}x"]
        let out = path("ckpt.safetensors")
        try SafeTensors.write(values: values, metadata: metadata, to: out)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), ["ckpt.safetensors"])

        let file = try SafeTensors.read(path: out)
        XCTAssertEqual(file.order, values.map(\.0))
        XCTAssertEqual(file.metadata, metadata)
        XCTAssertEqual(file.tensors.count, values.count)
        for (name, value) in values {
            XCTAssertEqual(file.tensors[name], value, name)
            XCTAssertEqual(file.storedDTypes[name], value.dtype, name)
        }
        XCTAssertEqual(try file.tensor("generator.net.0.bias").scalars, [7, -8])
        XCTAssertEqual(file.tensors["step"]?.int64s, [1_234_567_890_123])
        XCTAssertEqual(file.tensors["rng.state"]?.uint64s, [0xFFFF_FFFF_FFFF_FFFF, 0, 0x0123_4567_89AB_CDEF])

        // The in-memory encoder produces the same bytes as the file writer.
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: out)))
        XCTAssertEqual(try SafeTensors.encode(values: values, metadata: metadata), bytes)

        // The Float32-only convenience API.
        let simple = path("simple.safetensors")
        try SafeTensors.write(tensors: [("b", bias), ("a", weight)], to: simple)
        let back = try SafeTensors.read(path: simple)
        XCTAssertEqual(back.order, ["b", "a"])
        XCTAssertEqual(back.metadata, [:])
        XCTAssertEqual(try back.tensor("a").shape, [2, 3])
        XCTAssertEqual(try back.tensor("a").scalars.map(\.bitPattern), weight.scalars.map(\.bitPattern))
    }

    func testWrittenBytesFollowTheSpec() throws {
        let out = path("layout.safetensors")
        try SafeTensors.write(values: [("w", .f32(Tensor(shape: [1, 2], scalars: [1, -2]))),
                                       ("n", .i64([5], shape: [1]))],
                              metadata: ["k": "v"], to: out)
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: out)))
        let n = (0 ..< 8).reduce(0) { $0 | Int(bytes[$1]) << (8 * $1) }
        XCTAssertEqual(n % 8, 0, "header padded to a multiple of 8")
        XCTAssertEqual(bytes.count, 8 + n + 8 + 8)
        // Parse the header with Foundation's JSON parser, independently of the reader.
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(bytes[8 ..< 8 + n])) as? [String: Any])
        XCTAssertEqual(header["__metadata__"] as? [String: String], ["k": "v"])
        let w = try XCTUnwrap(header["w"] as? [String: Any])
        XCTAssertEqual(w["dtype"] as? String, "F32")
        XCTAssertEqual(w["shape"] as? [Int], [1, 2])
        XCTAssertEqual(w["data_offsets"] as? [Int], [0, 8])
        let s = try XCTUnwrap(header["n"] as? [String: Any])
        XCTAssertEqual(s["dtype"] as? String, "I64")
        XCTAssertEqual(s["data_offsets"] as? [Int], [8, 16])
        // Padding is spaces; data is little-endian.
        let text = String(decoding: bytes[8 ..< 8 + n], as: UTF8.self)
        XCTAssertTrue(text.hasPrefix("{"))
        XCTAssertEqual(text.trimmingCharacters(in: .init(charactersIn: " ")).last, "}")
        XCTAssertEqual(Array(bytes[(8 + n)...]), [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0,
                                                  5, 0, 0, 0, 0, 0, 0, 0])
    }

    // MARK: Hand-built file

    func testReadsAFileBuiltByteByByteFromTheSpec() throws {
        // Data buffer, in this order (offsets relative to the buffer start):
        //  f16  [2,2] @ 0..8    1.0, -2.0, +inf, 2^-24 (smallest subnormal)
        //  bf16 [2]   @ 8..12   1.0, 3.140625
        //  f64  [1]   @ 12..20  0.1
        //  i32  [2]   @ 20..28  -5, 100000
        //  u8   [3]   @ 28..31  1, 2, 250
        //  f32  [1,1] @ 31..35  -0.75
        //  i64  []    @ 35..43  -9000000000
        //  u64  [1]   @ 43..51  2^64 - 2
        //  f32  [0]   @ 51..51  (empty)
        var data: [UInt8] = []
        data += [0x00, 0x3C, 0x00, 0xC0, 0x00, 0x7C, 0x01, 0x00]
        data += [0x80, 0x3F, 0x49, 0x40]
        data += withUnsafeBytes(of: (0.1 as Double).bitPattern.littleEndian, Array.init)
        data += withUnsafeBytes(of: Int32(-5).littleEndian, Array.init) + withUnsafeBytes(of: Int32(100_000).littleEndian, Array.init)
        data += [1, 2, 250]
        data += [0x00, 0x00, 0x40, 0xBF]
        data += withUnsafeBytes(of: Int64(-9_000_000_000).littleEndian, Array.init)
        data += [0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        XCTAssertEqual(data.count, 51)
        // Keys deliberately not in data order, with whitespace, escapes and an unknown field.
        let header = """
        {
          "u8": {"dtype": "U8", "shape": [3], "data_offsets": [28, 31]},
          "half": {"dtype":"F16","shape":[2,2],"data_offsets":[0,8]},
          "__metadata__": {"format": "pt", "quote\\"d": "tab\\there \\u00e9 \\ud83c\\udfb2"},
          "brain": {"dtype": "BF16", "shape": [2], "data_offsets": [8, 12], "extra": null},
          "dbl": {"dtype": "F64", "shape": [1], "data_offsets": [12, 20]},
          "ints": {"dtype": "I32", "shape": [2], "data_offsets": [20, 28]},
          "f": {"dtype": "F32", "shape": [1, 1], "data_offsets": [31, 35]},
          "big": {"dtype": "I64", "shape": [], "data_offsets": [35, 43]},
          "rng": {"dtype": "U64", "shape": [1], "data_offsets": [43, 51]},
          "none": {"dtype": "F32", "shape": [0], "data_offsets": [51, 51]}
        }
        """
        let bytes = makeFile(header: header, data: data)
        XCTAssertEqual(bytes.count % 8, (8 + 51) % 8)   // header padded to a multiple of 8
        let out = path("handmade.safetensors")
        try Data(bytes).write(to: URL(fileURLWithPath: out))

        let file = try SafeTensors.read(path: out)
        XCTAssertEqual(file.order, ["half", "brain", "dbl", "ints", "u8", "f", "big", "rng", "none"])
        XCTAssertEqual(file.metadata, ["format": "pt", "quote\"d": "tab\there é 🎲"])

        let half = try file.tensor("half")
        XCTAssertEqual(half.shape, [2, 2])
        XCTAssertEqual(half.scalars, [1, -2, .infinity, 0x1p-24])
        XCTAssertEqual(try file.tensor("brain").scalars, [1, 3.140625])
        XCTAssertEqual(try file.tensor("dbl").scalars, [Float(0.1 as Double)])
        XCTAssertEqual(file.tensors["ints"], .i32([-5, 100_000], shape: [2]))
        XCTAssertEqual(file.tensors["u8"], .u8([1, 2, 250], shape: [3]))
        XCTAssertEqual(file.tensors["f"], .f32(Tensor(shape: [1, 1], scalars: [-0.75])))
        XCTAssertEqual(file.tensors["big"], .i64([-9_000_000_000], shape: []))
        XCTAssertEqual(file.tensors["rng"], .u64([UInt64.max - 1], shape: [1]))
        XCTAssertEqual(file.tensors["none"]?.shape, [0])
        XCTAssertEqual(file.storedDTypes["half"], .f16)
        XCTAssertEqual(file.storedDTypes["brain"], .bf16)
        XCTAssertEqual(file.storedDTypes["dbl"], .f64)

        // Integer arrays are not silently turned into floats.
        XCTAssertThrowsError(try file.tensor("ints")) { error in
            XCTAssertEqual((error as? DataError)?.location, "tensor 'ints'")
        }
        XCTAssertThrowsError(try file.tensor("missing")) { error in
            XCTAssertEqual((error as? DataError)?.file, out)
        }
    }

    func testHalfPrecisionConversionIsExact() throws {
        // Every F16 bit pattern against Swift's own Float16 conversion (NaNs compared as NaN).
        #if !((os(macOS) || targetEnvironment(macCatalyst)) && arch(x86_64))
        var data: [UInt8] = []
        for h in 0 ... UInt16.max { data += [UInt8(h & 0xFF), UInt8(h >> 8)] }
        let bytes = makeFile(header: "{\"h\":{\"dtype\":\"F16\",\"shape\":[65536],\"data_offsets\":[0,131072]}}", data: data)
        let t = try SafeTensors.decode(bytes).tensor("h")
        for h in 0 ... UInt16.max {
            let expected = Float(Float16(bitPattern: h))
            let got = t.scalars[Int(h)]
            if expected.isNaN { XCTAssertTrue(got.isNaN, "0x\(String(h, radix: 16))") }
            else if got != expected { XCTFail("F16 0x\(String(h, radix: 16)): got \(got), expected \(expected)"); break }
        }
        #endif
    }

    // MARK: Corruption

    func testEveryKindOfCorruptionIsADataErrorNamingFileAndTensor() throws {
        let ok = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#
        let twelve = [UInt8](repeating: 0, count: 12)
        // Sanity: the uncorrupted file reads.
        XCTAssertEqual(try SafeTensors.decode(makeFile(header: ok, data: twelve)).order, ["a", "b"])

        func header(_ a: String, _ b: String = #"{"dtype":"F32","shape":[1],"data_offsets":[8,12]}"#) -> String {
            #"{"a":"# + a + #","b":"# + b + "}"
        }
        func lengthPrefixed(_ n: UInt64, _ rest: [UInt8]) -> [UInt8] {
            withUnsafeBytes(of: n.littleEndian, Array.init) + rest
        }
        // (bytes, expected location fragment or nil, expected problem fragment)
        let cases: [(String, [UInt8], String?, String)] = [
            ("empty file", [], "byte 0", "file too short"),
            ("7 bytes", [1, 0, 0, 0, 0, 0, 0], "byte 0", "file too short"),
            ("header longer than file", lengthPrefixed(100, Array("{}".utf8)), "byte 0", "larger than the rest of the file"),
            ("absurd header length", lengthPrefixed(UInt64.max, []), "byte 0", "larger than the rest of the file"),
            ("truncated JSON", lengthPrefixed(10, Array(#"{"a":{"dty"#.utf8)), "header", "invalid JSON"),
            ("trailing comma", makeFile(header: #"{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},}"#, data: [0, 0, 0, 0]), "header", "invalid JSON"),
            ("not an object", makeFile(header: "[1, 2]", data: []), "header", "invalid JSON"),
            ("garbage after JSON", makeFile(header: "{} x", data: []), "header", "invalid JSON"),
            ("bad UTF-8", lengthPrefixed(8, [0x7B, 0x22, 0xFF, 0x22, 0x3A, 0x31, 0x7D, 0x20]), "header", "UTF-8"),
            ("NUL padding", lengthPrefixed(8, Array("{}".utf8) + [0, 0, 0, 0, 0, 0]), "header", "invalid JSON"),
            ("unknown dtype", makeFile(header: header(#"{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}"#), data: twelve), "tensor 'a'", "unsupported dtype 'F8_E4M3'"),
            ("lower-case dtype", makeFile(header: header(#"{"dtype":"f32","shape":[2],"data_offsets":[0,8]}"#), data: twelve), "tensor 'a'", "unsupported dtype 'f32'"),
            ("offsets past the end", makeFile(header: header(#"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, #"{"dtype":"F32","shape":[2],"data_offsets":[8,16]}"#), data: twelve), "tensor 'b'", "out of range"),
            ("overlap", makeFile(header: header(#"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, #"{"dtype":"F32","shape":[1],"data_offsets":[4,8]}"#), data: twelve), "tensor", "overlap"),
            ("size mismatch", makeFile(header: header(#"{"dtype":"F32","shape":[3],"data_offsets":[0,8]}"#), data: twelve), "tensor 'a'", "needs 12"),
            ("dtype size mismatch", makeFile(header: header(#"{"dtype":"F64","shape":[2],"data_offsets":[0,8]}"#), data: twelve), "tensor 'a'", "needs 16"),
            ("shape overflow", makeFile(header: header(#"{"dtype":"F32","shape":[9223372036854775807,4],"data_offsets":[0,8]}"#), data: twelve), "tensor 'a'", "needs more than"),
            ("begin after end", makeFile(header: header(#"{"dtype":"F32","shape":[0],"data_offsets":[8,0]}"#), data: twelve), "tensor 'a'", "end before"),
            ("gap", makeFile(header: header(#"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#), data: twelve), "tensor 'b'", "gap of 4"),
            ("trailing bytes", makeFile(header: ok, data: twelve + [0, 0, 0, 0]), "byte", "4 bytes after the last tensor"),
            ("negative extent", makeFile(header: header(#"{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}"#), data: twelve), "tensor 'a'", "non-negative integers"),
            ("fractional offset", makeFile(header: header(#"{"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}"#), data: twelve), "tensor 'a'", "data_offsets"),
            ("three offsets", makeFile(header: header(#"{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}"#), data: twelve), "tensor 'a'", "data_offsets"),
            ("missing shape", makeFile(header: header(#"{"dtype":"F32","data_offsets":[0,8]}"#), data: twelve), "tensor 'a'", "no 'shape'"),
            ("entry not an object", makeFile(header: header("[0, 8]"), data: twelve), "tensor 'a'", "must be an object"),
            ("duplicate name", makeFile(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: twelve), "header", "duplicate key 'a'"),
            ("metadata not strings", makeFile(header: #"{"__metadata__":{"step":3},"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#, data: []), "__metadata__['step']", "must be strings"),
        ]
        for (label, bytes, location, problem) in cases {
            let out = path("corrupt.safetensors")
            try Data(bytes).write(to: URL(fileURLWithPath: out))
            XCTAssertThrowsError(try SafeTensors.read(path: out), label) { error in
                guard let e = error as? DataError else { return XCTFail("\(label): not a DataError: \(error)") }
                XCTAssertEqual(e.file, out, label)
                if let location {
                    XCTAssertTrue(e.location?.contains(location) ?? false, "\(label): location \(e.location ?? "nil") should contain \(location)")
                }
                XCTAssertTrue(e.problem.contains(problem), "\(label): problem '\(e.problem)' should contain '\(problem)'")
                XCTAssertTrue(e.description.hasPrefix(out), label)
            }
        }
    }

    func testReadingAMissingFileOrDirectoryIsADataError() {
        let missing = path("nope.safetensors")
        XCTAssertThrowsError(try SafeTensors.read(path: missing)) { error in
            XCTAssertEqual(error as? DataError, DataError(file: missing, problem: "no such file"))
        }
        XCTAssertThrowsError(try SafeTensors.read(path: directory)) { error in
            XCTAssertEqual((error as? DataError)?.file, directory)
        }
    }

    func testWriterRejectsInvalidEntriesAndWritesNothing() throws {
        let out = path("bad.safetensors")
        let t = Tensor(shape: [1], scalars: [1])
        let cases: [([(String, SafeTensorValue)], String)] = [
            ([("a", .f32(t)), ("a", .f32(t))], "duplicate"),
            ([("__metadata__", .f32(t))], "reserved"),
            ([("n", .i64([1, 2, 3], shape: [2]))], "3 values for shape [2]"),
            ([("n", .u64([], shape: [-1]))], "negative"),
        ]
        for (values, fragment) in cases {
            XCTAssertThrowsError(try SafeTensors.write(values: values, to: out)) { error in
                guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)") }
                XCTAssertEqual(e.file, out)
                XCTAssertTrue(e.problem.contains(fragment), "\(e.problem) should contain \(fragment)")
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory), [])
    }

    func testStreamingWriterMatchesTheWholeStateWriterAndChecksWhatItIsHanded() throws {
        let a = Tensor(shape: [2, 3], scalars: [1, -2, 3.5, .nan, 0x1p-140, -0])
        let b = Tensor(shape: [], scalars: [42])
        let whole = path("whole.safetensors"), streamed = path("streamed.safetensors")
        try SafeTensors.write(tensors: [("a", a), ("b", b)], metadata: ["step": "7"], to: whole)
        try SafeTensors.write(streaming: [("a", [2, 3]), ("b", [])], metadata: ["step": "7"], to: streamed) { emit in
            try a.withUnsafeScalars(emit)
            try b.withUnsafeScalars(emit)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: streamed)), try Data(contentsOf: URL(fileURLWithPath: whole)))

        // Too few, too many or wrongly sized tensors: a DataError and no file.
        let out = path("bad.safetensors")
        let cases: [(String, ((UnsafeBufferPointer<Float>) throws -> Void) throws -> Void)] = [
            ("1 tensors handed over for the 2", { emit in try a.withUnsafeScalars(emit) }),
            ("more tensors handed over than the 2", { emit in for t in [a, b, b] { try t.withUnsafeScalars(emit) } }),
            ("1 values for shape [2, 3]", { emit in try b.withUnsafeScalars(emit) }),
        ]
        for (fragment, elements) in cases {
            XCTAssertThrowsError(try SafeTensors.write(streaming: [("a", [2, 3]), ("b", [])], to: out, elements: elements)) { error in
                guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)") }
                XCTAssertEqual(e.file, out)
                XCTAssertTrue(e.problem.contains(fragment), "\(e.problem) should contain \(fragment)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory).sorted(), ["streamed.safetensors", "whole.safetensors"])
    }

    func testRewritingACheckpointReplacesItAtomically() throws {
        let out = path("checkpoints/latest.safetensors")
        try SafeTensors.write(tensors: [("w", Tensor(shape: [1], scalars: [1]))], metadata: ["step": "1"],
                              to: out, createDirectories: true)
        try SafeTensors.write(tensors: [("w", Tensor(shape: [2], scalars: [2, 3]))], metadata: ["step": "2"], to: out)
        let file = try SafeTensors.read(path: out)
        XCTAssertEqual(file.metadata, ["step": "2"])
        XCTAssertEqual(try file.tensor("w").scalars, [2, 3])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: path("checkpoints")), ["latest.safetensors"])
    }

    // MARK: Helpers

    /// `[UInt64 LE header length][header padded with spaces to a multiple of 8][data]`.
    private func makeFile(header: String, data: [UInt8]) -> [UInt8] {
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(0x20) }
        return withUnsafeBytes(of: UInt64(h.count).littleEndian, Array.init) + h + data
    }
}
