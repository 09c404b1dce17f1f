@testable import ConjureData
import Foundation
import XCTest

// MARK: - Test support (shared by the ConjureData test files)

/// `../shared` next to the package root (no other place is tried: a test whose file is
/// missing there fails).
let sharedDir: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/ConjureDataTests/File.swift -> package root
    return url.appendingPathComponent("../shared").standardized.path
}()

func casePath(_ name: String) -> String { sharedDir + "/cases/" + name }
func dataPath(_ name: String) -> String { sharedDir + "/data/" + name }

/// Asserts two Float arrays are equal within `tolerance`, treating NaN as equal to NaN.
func assertClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-6, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "count differs \(message)", file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() {
        if x.isNaN && y.isNaN { continue }
        if !(abs(x - y) <= tolerance * max(1, abs(y))) {
            XCTFail("element \(i): \(x) vs \(y) \(message)", file: file, line: line)
            return
        }
    }
}

/// Runs `body`, expecting a `DataError`; returns it (fails the test otherwise).
@discardableResult
func expectDataError<T>(_ body: @autoclosure () throws -> T, contains fragments: [String] = [],
                        file: StaticString = #filePath, line: UInt = #line) -> DataError? {
    do {
        _ = try body()
        XCTFail("expected a DataError", file: file, line: line)
        return nil
    } catch let e as DataError {
        for f in fragments where !e.description.contains(f) {
            XCTFail("error \"\(e.description)\" lacks \"\(f)\"", file: file, line: line)
        }
        return e
    } catch {
        XCTFail("expected a DataError, got \(error)", file: file, line: line)
        return nil
    }
}

extension XCTestCase {
    /// A fresh temporary directory for one test, removed with everything in it when the test
    /// ends (pass or fail), so test runs leave nothing behind in the temporary folder.
    func makeTempDir(_ name: String = #function) -> String {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        let dir = NSTemporaryDirectory() + "conjure-data-tests-\(safe)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }
}

func writeBytes(_ bytes: [UInt8], _ path: String) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

/// The bytes of a `.npy` file with the given header fields and raw data, as numpy.save writes it.
func npyFile(descr: String, fortran: Bool = false, shape: [Int], data: [UInt8], version: UInt8 = 1) -> [UInt8] {
    let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shapeText), }"
    let prefix = version == 1 ? 10 : 12
    while (prefix + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    let n = header.utf8.count
    if version == 1 {
        out += [UInt8(n & 0xff), UInt8(n >> 8)]
    } else {
        out += [UInt8(n & 0xff), UInt8((n >> 8) & 0xff), UInt8((n >> 16) & 0xff), UInt8(n >> 24)]
    }
    return out + Array(header.utf8) + data
}

func bigEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bigEndian) { Array($0) } }
}
func littleEndianBytes<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

/// An IDX file: magic 00 00 type ndims, big-endian dims, then `data` (already big-endian).
func idxFile(type: UInt8, shape: [Int], data: [UInt8]) -> [UInt8] {
    [0, 0, type, UInt8(shape.count)] + bigEndianBytes(shape.map { UInt32($0) }) + data
}

// MARK: Minimal PNG encoder for tests (stored deflate blocks, no libspng involved)

func pngTestCRC32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xffff_ffff
    for b in bytes {
        c ^= UInt32(b)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    }
    return c ^ 0xffff_ffff
}

func zlibStored(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = [0x78, 0x01]
    var i = 0
    repeat {
        let n = min(65535, data.count - i)
        let final: UInt8 = i + n == data.count ? 1 : 0
        out += [final, UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8((~n >> 8) & 0xff)]
        out += data[i..<(i + n)]
        i += n
    } while i < data.count
    var a: UInt32 = 1, b: UInt32 = 0
    for x in data { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
    return out + bigEndianBytes([b << 16 | a])
}

/// A PNG with the given IHDR fields; `rows` are the raw scanlines without filter bytes.
func makePNG(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]],
             palette: [UInt8]? = nil) -> [UInt8] {
    func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
        let t = Array(type.utf8)
        return bigEndianBytes([UInt32(body.count)]) + t + body + bigEndianBytes([pngTestCRC32(t + body)])
    }
    let ihdr = bigEndianBytes([UInt32(width), UInt32(height)]) + [bitDepth, colorType, 0, 0, 0]
    var raw: [UInt8] = []
    for r in rows { raw += [0] + r }
    var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
    png += chunk("IHDR", ihdr)
    if let palette { png += chunk("PLTE", palette) }
    png += chunk("IDAT", zlibStored(raw))
    png += chunk("IEND", [])
    return png
}

// MARK: - .npy

final class NPYReaderTests: XCTestCase {
    func testF01FortranOrderIsTransposedToRowMajor() throws {
        let t = try NPYReader.load(path: casePath("F01_fortran_3x4_f4.npy"))
        XCTAssertEqual(t.shape, [3, 4])
        XCTAssertEqual(t.scalars, (0..<12).map(Float.init))
        let info = try NPYReader.read(path: casePath("F01_fortran_3x4_f4.npy"))
        XCTAssertTrue(info.fortranOrder)
        XCTAssertEqual(info.dtype, .float32)
    }

    func testF02BigEndianIsByteSwapped() throws {
        let t = try NPYReader.load(path: casePath("F02_bigendian_2x2_f4.npy"))
        XCTAssertEqual(t.shape, [2, 2])
        XCTAssertEqual(t.scalars, [1.0, 2.0, -0.5, 255.0])
    }

    func testF04AllThreeHeaderVersionsLoadEqual() throws {
        let expected: [Float] = [0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5]
        for v in ["v1", "v2", "v3"] {
            let a = try NPYReader.read(path: casePath("F04_\(v)_header_3x4_f4.npy"))
            XCTAssertEqual(a.tensor.shape, [3, 4], v)
            XCTAssertEqual(a.tensor.scalars, expected, v)
            XCTAssertEqual(a.formatVersion, "\(v.dropFirst()).0")
        }
    }

    func testF05TruncatedDataIsAnErrorWithByteCounts() {
        let path = casePath("F05_truncated_8x3x4x4_f4.npy")
        let e = expectDataError(try NPYReader.load(path: path), contains: ["expected 1536 data bytes, found 768", "F05_truncated"])
        XCTAssertEqual(e?.file, path)
        expectDataError(try Dataset.load(path: path), contains: ["expected 1536 data bytes, found 768"])
    }

    func testF06ScalarReadsAsScalarButIsNoDataset() throws {
        let path = casePath("F06_scalar_0d_f8.npy")
        let t = try NPYReader.load(path: path)
        XCTAssertEqual(t.shape, [])
        XCTAssertEqual(t.scalars, [5.0])
        expectDataError(try Dataset.load(path: path), contains: ["array has no sample axis", "F06_scalar_0d_f8.npy"])
    }

    func testF06VectorIsSixSamplesOfOneFeature() throws {
        let d = try Dataset.load(path: casePath("F06_vector_1d_len6_f4.npy"))
        XCTAssertEqual(d.samples.shape, [6, 1])
        XCTAssertEqual(d.count, 6)
        XCTAssertEqual(try NPYReader.load(path: casePath("F06_vector_1d_len6_f4.npy")).shape, [6])
    }

    func testF06EmptyIsAnError() throws {
        let path = casePath("F06_empty_0x3_f4.npy")
        XCTAssertEqual(try NPYReader.load(path: path).shape, [0, 3])
        expectDataError(try Dataset.load(path: path), contains: ["dataset has 0 samples", "F06_empty_0x3_f4.npy"])
        // Samples without values are refused too.
        let dir = makeTempDir()
        writeBytes(npyFile(descr: "<f4", shape: [3, 0], data: []), dir + "/novalues.npy")
        expectDataError(try Dataset.load(path: dir + "/novalues.npy"), contains: ["each sample has 0 values"])
    }

    func testF07Uint8() throws {
        let a = try NPYReader.read(path: casePath("F07_uint8_2x4.npy"))
        XCTAssertEqual(a.dtype, .uint8)
        XCTAssertEqual(a.tensor.shape, [2, 4])
        XCTAssertEqual(a.tensor.scalars, [0, 1, 127, 128, 254, 255, 200, 50])
    }

    func testF13AndF15ImageArrays() throws {
        let t13 = try NPYReader.load(path: casePath("F13_tanh_range_1x1x2x3_f4.npy"))
        XCTAssertEqual(t13.shape, [1, 1, 2, 3])
        XCTAssertEqual(t13.scalars, [-1.3, -1, -0.5, 0, 0.5, 1.2])
        let t7 = try NPYReader.load(path: casePath("F15_batch7_1x2x3_f4.npy"))
        XCTAssertEqual(t7.shape, [7, 1, 2, 3])
        for k in 0..<7 {
            let tile = Array(t7.scalars[(k * 6)..<(k * 6 + 6)])
            assertClose(tile, [Float](repeating: Float(Double(40 * k) / 127.5 - 1), count: 6), "tile \(k)")
        }
        let t32 = try NPYReader.load(path: casePath("F15_batch32_1x2x2_f4.npy"))
        XCTAssertEqual(t32.shape, [32, 1, 2, 2])
        for k in 0..<32 {
            XCTAssertEqual(t32.scalars[k * 4], Float(Double(32 * (k % 8)) / 127.5 - 1), accuracy: 1e-6)
        }
    }

    func testBigEndianFloat64FortranRoundTrip() throws {
        // A (2, 3, 4) array with value 100*i + 10*j + k, stored big-endian f8 in Fortran order.
        let shape = [2, 3, 4]
        var fortranValues: [Double] = []
        for k in 0..<4 { for j in 0..<3 { for i in 0..<2 { fortranValues.append(Double(100 * i + 10 * j + k) + 0.25) } } }
        let data = bigEndianBytes(fortranValues.map(\.bitPattern))
        let dir = makeTempDir()
        let path = dir + "/be_f8_fortran.npy"
        writeBytes(npyFile(descr: ">f8", fortran: true, shape: shape, data: data, version: 2), path)
        let a = try NPYReader.read(path: path)
        XCTAssertEqual(a.tensor.shape, shape)
        XCTAssertEqual(a.dtype, .float64)
        var expected: [Float] = []
        for i in 0..<2 { for j in 0..<3 { for k in 0..<4 { expected.append(Float(100 * i + 10 * j + k) + 0.25) } } }
        XCTAssertEqual(a.tensor.scalars, expected)
    }

    func testAllIntegerAndHalfDtypesAndByteOrders() throws {
        let dir = makeTempDir()
        func load(_ descr: String, _ shape: [Int], _ data: [UInt8]) throws -> [Float] {
            let p = dir + "/a.npy"
            writeBytes(npyFile(descr: descr, shape: shape, data: data), p)
            return try NPYReader.load(path: p).scalars
        }
        XCTAssertEqual(try load("|i1", [3], [0xff, 0x7f, 0x80]), [-1, 127, -128])
        XCTAssertEqual(try load("|b1", [3], [0, 1, 2]), [0, 1, 1])
        XCTAssertEqual(try load("<u2", [2], littleEndianBytes([UInt16(65535), 300])), [65535, 300])
        XCTAssertEqual(try load(">u2", [2], bigEndianBytes([UInt16(65535), 300])), [65535, 300])
        XCTAssertEqual(try load("<i2", [2], littleEndianBytes([Int16(-300), 7])), [-300, 7])
        XCTAssertEqual(try load(">i2", [2], bigEndianBytes([Int16(-300), 7])), [-300, 7])
        XCTAssertEqual(try load("=i4", [2], littleEndianBytes([Int32(-70000), 70000])), [-70000, 70000])
        XCTAssertEqual(try load(">i4", [2], bigEndianBytes([Int32(-70000), 70000])), [-70000, 70000])
        XCTAssertEqual(try load("<i8", [2], littleEndianBytes([Int64(-5), 1 << 40])), [-5, Float(1 << 40)])
        XCTAssertEqual(try load(">i8", [2], bigEndianBytes([Int64(-5), 1 << 40])), [-5, Float(1 << 40)])
        XCTAssertEqual(try load("<u4", [1], littleEndianBytes([UInt32(4_000_000_000)])), [4_000_000_000])
        // float16: 1.0 = 0x3c00, -2.0 = 0xc000, 0.5 = 0x3800, 65504 = 0x7bff, smallest subnormal 0x0001, inf 0x7c00.
        let halves = try load("<f2", [6], littleEndianBytes([UInt16(0x3c00), 0xc000, 0x3800, 0x7bff, 0x0001, 0x7c00]))
        XCTAssertEqual(Array(halves.prefix(5)), [1, -2, 0.5, 65504, Float(sign: .plus, exponent: -24, significand: 1)])
        XCTAssertEqual(halves[5], .infinity)
        XCTAssertEqual(try load(">f2", [1], bigEndianBytes([UInt16(0x3c00)])), [1])
        XCTAssertEqual(try load(">f4", [1], bigEndianBytes([Float(3.5).bitPattern])), [3.5])
    }

    func testGzippedNpyLoads() throws {
        let dir = makeTempDir()
        let p = dir + "/a.npy.gz"
        writeBytes(Gzip.compress(npyFile(descr: "<f4", shape: [2], data: littleEndianBytes([Float(1.5).bitPattern, Float(-3).bitPattern]))), p)
        XCTAssertEqual(try NPYReader.load(path: p).scalars, [1.5, -3])
        XCTAssertEqual(try Dataset.detectFormat(path: p), .npy)
    }

    func testBadInputsAreDataErrors() {
        let dir = makeTempDir()
        let p = dir + "/bad.npy"
        writeBytes(Array("hello, this is not numpy".utf8), p)
        expectDataError(try NPYReader.load(path: p), contains: ["bad.npy", "not a .npy file", "93 4e 55 4d 50 59"])

        writeBytes([0x93] + Array("NUMPY".utf8) + [4, 0, 10, 0] + Array("{}        ".utf8), p)
        expectDataError(try NPYReader.load(path: p), contains: ["unsupported .npy format version 4.0"])

        var bytes = npyFile(descr: "<f4", shape: [2], data: [])
        // Corrupt the dict: drop the closing brace.
        let brace = bytes.lastIndex(of: UInt8(ascii: "}"))!
        bytes[brace] = UInt8(ascii: " ")
        writeBytes(bytes + [UInt8](repeating: 0, count: 8), p)
        expectDataError(try NPYReader.load(path: p), contains: ["header", "malformed header dict"])

        let missingKey: [UInt8] = {
            var h = "{'descr': '<f4', 'shape': (2,), }"
            while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
            h += "\n"
            return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count), 0] + Array(h.utf8) + [UInt8](repeating: 0, count: 8)
        }()
        writeBytes(missingKey, p)
        expectDataError(try NPYReader.load(path: p), contains: ["lacks key(s) 'fortran_order'"])

        writeBytes(npyFile(descr: "|O", shape: [1], data: [0, 0, 0, 0, 0, 0, 0, 0]), p)
        expectDataError(try NPYReader.load(path: p), contains: ["unsupported dtype '|O'", "pickle"])
        writeBytes(npyFile(descr: "<c8", shape: [1], data: [UInt8](repeating: 0, count: 8)), p)
        expectDataError(try NPYReader.load(path: p), contains: ["unsupported dtype '<c8'", "complex"])
        writeBytes(npyFile(descr: "<U3", shape: [1], data: [UInt8](repeating: 0, count: 12)), p)
        expectDataError(try NPYReader.load(path: p), contains: ["unsupported dtype '<U3'"])

        writeBytes(npyFile(descr: "<f4", shape: [2], data: [UInt8](repeating: 0, count: 12)), p)
        expectDataError(try NPYReader.load(path: p), contains: ["expected 8 data bytes, found 12", "4 extra bytes"])

        expectDataError(try NPYReader.load(path: dir + "/missing.npy"), contains: ["missing.npy", "cannot open file"])
    }

    func testHeaderDialects() throws {
        // Python 2 long suffixes, double quotes, keys in another order, no trailing comma.
        let dir = makeTempDir()
        let p = dir + "/a.npy"
        var h = "{\"shape\": (2L, 1L), \"fortran_order\": False, \"descr\": \"<f4\"}"
        while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
        h += "\n"
        writeBytes([0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count), 0] + Array(h.utf8)
                   + littleEndianBytes([Float(7).bitPattern, Float(8).bitPattern]), p)
        let t = try NPYReader.load(path: p)
        XCTAssertEqual(t.shape, [2, 1])
        XCTAssertEqual(t.scalars, [7, 8])
    }
}

// MARK: - IDX

final class IDXReaderTests: XCTestCase {
    func testF09ImagesAreNonSquareAndBigEndian() throws {
        let a = try IDXReader.read(path: casePath("F09_images_2x3x4-idx3-ubyte"))
        XCTAssertEqual(a.dtype, .uint8)
        XCTAssertEqual(a.tensor.shape, [2, 3, 4])
        XCTAssertEqual(Array(a.tensor.scalars[0..<12]), [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110])
        XCTAssertEqual(Array(a.tensor.scalars[12..<24]), stride(from: 120, through: 230, by: 10).map(Float.init))
    }

    func testF09LabelsAndPairing() throws {
        XCTAssertEqual(try IDXReader.load(path: casePath("F09_labels_2-idx1-ubyte")).scalars, [7, 2])
        let d = try Dataset.load(path: casePath("F09_images_2x3x4-idx3-ubyte"),
                                 options: DatasetOptions(labelsPath: casePath("F09_labels_2-idx1-ubyte")))
        XCTAssertEqual(d.format, .idx)
        XCTAssertEqual(d.samples.shape, [2, 3, 4])
        XCTAssertEqual(d.labels, [7, 2])
        XCTAssertEqual(d.inferredImageShape, [1, 3, 4])
        // The names do not follow the MNIST convention, so nothing is paired automatically.
        XCTAssertNil(try Dataset.load(path: casePath("F09_images_2x3x4-idx3-ubyte")).labels)
    }

    func testF09Float32() throws {
        let a = try IDXReader.read(path: casePath("F09_float32_2x2-idx2"))
        XCTAssertEqual(a.dtype, .float32)
        XCTAssertEqual(a.tensor.shape, [2, 2])
        XCTAssertEqual(a.tensor.scalars, [1.5, -2.0, 0.25, 100.0])
        XCTAssertEqual(try Dataset.detectFormat(path: casePath("F09_float32_2x2-idx2")), .idx)
    }

    func testF10BadMagic() {
        let path = casePath("F10_bad_magic-idx3-ubyte")
        expectDataError(try IDXReader.load(path: path),
                        contains: ["F10_bad_magic-idx3-ubyte", "the first two magic bytes must be 0", "0x61 0x00"])
        expectDataError(try Dataset.load(path: path), contains: ["the first two magic bytes must be 0"])
    }

    func testInt16Float64Int32RoundTripsAndGzip() throws {
        let dir = makeTempDir()
        let i16: [Int16] = [-32768, -1, 0, 1, 32767, 1234]
        writeBytes(idxFile(type: 0x0B, shape: [2, 3], data: bigEndianBytes(i16)), dir + "/a-idx2-i16")
        let a = try IDXReader.read(path: dir + "/a-idx2-i16")
        XCTAssertEqual(a.dtype, .int16)
        XCTAssertEqual(a.tensor.shape, [2, 3])
        XCTAssertEqual(a.tensor.scalars, i16.map(Float.init))

        let f64: [Double] = [0.1, -1e10, 3]
        writeBytes(Gzip.compress(idxFile(type: 0x0E, shape: [3], data: bigEndianBytes(f64.map(\.bitPattern)))), dir + "/b-idx1.gz")
        XCTAssertEqual(try IDXReader.load(path: dir + "/b-idx1.gz").scalars, f64.map { Float($0) })

        let i32: [Int32] = [-100000, 5]
        writeBytes(idxFile(type: 0x0C, shape: [1, 2], data: bigEndianBytes(i32)), dir + "/c-idx2")
        XCTAssertEqual(try IDXReader.load(path: dir + "/c-idx2").scalars, [-100000, 5])

        writeBytes(idxFile(type: 0x09, shape: [2], data: [0xff, 0x05]), dir + "/d-idx1")
        XCTAssertEqual(try IDXReader.load(path: dir + "/d-idx1").scalars, [-1, 5])
    }

    func testTruncatedAndUnknownType() {
        let dir = makeTempDir()
        writeBytes(idxFile(type: 0x08, shape: [2, 3, 4], data: [UInt8](repeating: 1, count: 12)), dir + "/t-idx3-ubyte")
        expectDataError(try IDXReader.load(path: dir + "/t-idx3-ubyte"), contains: ["expected 24 data bytes, found 12", "truncated"])
        writeBytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 5], dir + "/u-idx1-ubyte")
        expectDataError(try IDXReader.load(path: dir + "/u-idx1-ubyte"), contains: ["unknown IDX type code 0x0a"])
        writeBytes([0, 0, 0x08, 3, 0, 0], dir + "/h-idx3-ubyte")
        expectDataError(try IDXReader.load(path: dir + "/h-idx3-ubyte"), contains: ["truncated IDX header", "3 dimension sizes", "found 6"])
    }

    func testSiblingLabelsAreFoundForMNISTNames() throws {
        let dir = makeTempDir()
        let pixels: [UInt8] = (0..<(3 * 2 * 2)).map { UInt8($0 * 20) }
        writeBytes(Gzip.compress(idxFile(type: 0x08, shape: [3, 2, 2], data: pixels)), dir + "/train-images-idx3-ubyte.gz")
        writeBytes(idxFile(type: 0x08, shape: [3], data: [4, 0, 9]), dir + "/train-labels-idx1-ubyte")
        let d = try Dataset.load(path: dir + "/train-images-idx3-ubyte.gz")
        XCTAssertEqual(d.labels, [4, 0, 9])
        XCTAssertEqual(d.labelsSource, dir + "/train-labels-idx1-ubyte")
        XCTAssertEqual(d.samples.shape, [3, 2, 2])
        XCTAssertEqual(d.samples.scalars, pixels.map(Float.init))
        XCTAssertEqual(d.dtype, .uint8)

        // A labels file of the wrong length is an error naming it.
        writeBytes(idxFile(type: 0x08, shape: [2], data: [4, 0]), dir + "/train-labels-idx1-ubyte")
        expectDataError(try Dataset.load(path: dir + "/train-images-idx3-ubyte.gz"),
                        contains: ["train-labels-idx1-ubyte", "has 2 labels", "3 samples"])
    }
}

// MARK: - CSV

final class CSVReaderTests: XCTestCase {
    func testF31MissingValuesNameFileLineAndColumn() throws {
        let path = casePath("F31_missing_values.csv")
        let e = expectDataError(try CSVReader.read(path: path),
                                contains: ["F31_missing_values.csv", "line 3", "column 2 (x2)", "empty cell"])
        XCTAssertEqual(e?.location, "line 3, column 2 (x2)")
        expectDataError(try Dataset.load(path: path), contains: ["line 3, column 2 (x2)"])

        let t = try CSVReader.read(path: path, options: CSVOptions(clean: .drop))
        XCTAssertEqual(t.values.shape, [2, 3])
        assertClose(t.values.scalars, [0.1, 0.2, 0.3, 1.0, 1.1, 1.2])
        XCTAssertEqual(t.droppedRows, 2)
        XCTAssertEqual(t.droppedLines, [3, 4])
        let d = try Dataset.load(path: path, options: DatasetOptions(clean: .drop))
        XCTAssertEqual(d.droppedSamples, 2)
        XCTAssertEqual(d.count, 2)
    }

    func testNanCellIsAlsoNamed() {
        let dir = makeTempDir()
        // Line 3 is fine here, so the nan on line 4 is the first bad cell.
        writeBytes(Array("x1,x2,x3\n0.1,0.2,0.3\n0.4,0.5,0.6\n0.7,nan,0.9\n".utf8), dir + "/m.csv")
        expectDataError(try CSVReader.read(path: dir + "/m.csv"),
                        contains: ["m.csv", "line 4, column 2 (x2)", "'nan' is not a finite number"])
        writeBytes(Array("1,2\n3,-inf\n".utf8), dir + "/n.csv")
        expectDataError(try CSVReader.read(path: dir + "/n.csv"), contains: ["line 2, column 2:", "'-inf'"])
        writeBytes(Array("1,2\n3,1e39\n".utf8), dir + "/o.csv")
        expectDataError(try CSVReader.read(path: dir + "/o.csv"), contains: ["line 2, column 2", "overflows Float32"])
        writeBytes(Array("1,2\n3,NA\n5,6\n".utf8), dir + "/p.csv")
        expectDataError(try CSVReader.read(path: dir + "/p.csv"), contains: ["missing value 'NA'"])
        XCTAssertEqual(try CSVReader.read(path: dir + "/p.csv", options: CSVOptions(clean: .drop)).values.scalars, [1, 2, 5, 6])
    }

    func testF31HeaderDetection() throws {
        let h = try CSVReader.read(path: casePath("F31_header_ok.csv"))
        XCTAssertEqual(h.header, ["x1", "x2", "x3"])
        XCTAssertEqual(h.values.shape, [2, 3])
        XCTAssertEqual(h.values.scalars, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])

        let n = try CSVReader.read(path: casePath("F31_no_header_ok.csv"))
        XCTAssertNil(n.header)
        XCTAssertEqual(n.values.shape, [3, 3])
        XCTAssertEqual(n.values.scalars, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])
    }

    func testF31RaggedNamesTheLine() {
        expectDataError(try CSVReader.read(path: casePath("F31_ragged.csv")),
                        contains: ["F31_ragged.csv", "line 3", "2 fields where 3 are expected"])
    }

    func testF31CRLFAndTrailingBlankLines() throws {
        let t = try CSVReader.read(path: casePath("F31_crlf_trailing_newlines.csv"))
        XCTAssertEqual(t.header, ["x1", "x2"])
        XCTAssertEqual(t.values.shape, [2, 2])
        XCTAssertEqual(t.values.scalars, [1, 2, 3, 4])
    }

    func testF16LogitsWithLabelColumnByName() throws {
        let t = try CSVReader.read(path: casePath("F16_logits_labels.csv"), options: CSVOptions(labelColumn: "label"))
        XCTAssertEqual(t.header, ["logit", "label", "expected_elementwise_bce"])
        XCTAssertEqual(t.labelColumnIndex, 1)
        XCTAssertEqual(t.labels, [1, 0, 1, 0, 1, 0])
        XCTAssertEqual(t.values.shape, [6, 2])
        XCTAssertEqual(t.values.scalars.enumerated().filter { $0.offset % 2 == 0 }.map(\.element), [100, -100, 0, 30, -100, 100])
        XCTAssertEqual(t.values.scalars[1], Float(3.7200759760208361e-44))
        XCTAssertEqual(t.values.scalars[5], Float(0.69314718055994529))
    }

    func testLabelColumnSelectionAndErrors() throws {
        let dir = makeTempDir()
        let p = dir + "/l.csv"
        writeBytes(Array("a,b,cls\n1,2,3\n4,5,0\n".utf8), p)
        let last = try CSVReader.read(path: p, options: CSVOptions(labelColumn: .last))
        XCTAssertEqual(last.labels, [3, 0])
        XCTAssertEqual(last.values.scalars, [1, 2, 4, 5])
        let first = try CSVReader.read(path: p, options: CSVOptions(labelColumn: .index(0)))
        XCTAssertEqual(first.labels, [1, 4])
        XCTAssertEqual(first.values.scalars, [2, 3, 5, 0])
        XCTAssertEqual(try CSVReader.read(path: p, options: CSVOptions(labelColumn: .index(-2))).labels, [2, 5])
        XCTAssertEqual(try CSVReader.read(path: p, options: CSVOptions(labelColumn: ColumnSelector(parsing: "cls"))).labels, [3, 0])
        expectDataError(try CSVReader.read(path: p, options: CSVOptions(labelColumn: .index(3))), contains: ["out of range", "3 columns"])
        expectDataError(try CSVReader.read(path: p, options: CSVOptions(labelColumn: "nope")), contains: ["no column named 'nope'"])

        writeBytes(Array("1,2,0.5\n".utf8), p)
        expectDataError(try CSVReader.read(path: p, options: CSVOptions(labelColumn: .last)),
                        contains: ["line 1, column 3", "label '0.5' is not a non-negative integer"])
        expectDataError(try CSVReader.read(path: p, options: CSVOptions(labelColumn: "label")), contains: ["no header row"])
    }

    func testNonNumericTextIsAlwaysAnError() {
        let dir = makeTempDir()
        writeBytes(Array("a,b\n1,2\n3,abc\n".utf8), dir + "/t.csv")
        expectDataError(try CSVReader.read(path: dir + "/t.csv", options: CSVOptions(clean: .drop)),
                        contains: ["line 3, column 2 (b)", "'abc' is not a number"])
    }

    func testQuotesSpacesDelimitersBOMAndTrailingDelimiter() throws {
        let dir = makeTempDir()
        writeBytes([0xEF, 0xBB, 0xBF] + Array("\"x, one\" ; \"y\"\"q\"\n  1.5 ; \"2\" \n\n-3e2;+.25\n".utf8), dir + "/q.csv")
        let t = try CSVReader.read(path: dir + "/q.csv", options: CSVOptions(delimiter: UInt8(ascii: ";")))
        XCTAssertEqual(t.header, ["x, one", "y\"q"])
        XCTAssertEqual(t.values.scalars, [1.5, 2, -300, 0.25])

        writeBytes(Array("1,2,\n3,4,5\n".utf8), dir + "/e.csv")
        expectDataError(try CSVReader.read(path: dir + "/e.csv"), contains: ["line 1, column 3", "empty cell"])

        writeBytes(Array("x\ty\n1\t2\n".utf8), dir + "/t.tsv")
        let d = try Dataset.load(path: dir + "/t.tsv")
        XCTAssertEqual(d.samples.scalars, [1, 2])

        writeBytes(Array("".utf8), dir + "/empty.csv")
        expectDataError(try Dataset.load(path: dir + "/empty.csv"), contains: ["dataset has 0 samples"])
        writeBytes(Array("a,b\n".utf8), dir + "/headeronly.csv")
        expectDataError(try Dataset.load(path: dir + "/headeronly.csv"), contains: ["dataset has 0 samples"])
    }

    func testNumberParsingMatchesCorrectRounding() throws {
        // Random decimal texts in many styles; each must equal Swift's correctly rounded parse.
        var rng = RandomGenerator(seed: 7)
        var texts: [String] = []
        for i in 0..<4000 {
            let mant = Double(rng.next() % 10_000_000_000) / pow(10, Double(rng.next() % 12))
            let sign = rng.next() % 2 == 0 ? "" : "-"
            switch i % 4 {
            case 0: texts.append(sign + String(mant))
            case 1: texts.append(sign + String(format: "%.17g", mant * 1e-30))
            case 2: texts.append(sign + String(format: "%.3e", mant * 1e20))
            default: texts.append(sign + "0000" + String(Int(mant * 1000)) + "." + String(rng.next() % 100_000_000_000_000_000))
            }
        }
        texts += ["12345678901234567890123", "0.000000000000000000000000000001", "1e-45", "3.4028235e38", "0", "-0", "007"]
        let csv = texts.joined(separator: "\n") + "\n"
        let t = try CSVReader.read(bytes: Array(csv.utf8), file: "numbers.csv", options: CSVOptions(header: .absent))
        XCTAssertEqual(t.values.count, texts.count)
        for (i, s) in texts.enumerated() {
            let expected = Float(Double(s)!)
            XCTAssertEqual(t.values.scalars[i], expected, "'\(s)'")
        }
    }

    func testIntegerCellsAroundTheFastPathEqualTheGeneralParse() throws {
        // Plain digit cells of up to 15 digits take a fast path; every neighbour of that rule
        // (16+ digits, signs, decimals, exponents, spaces, quotes, leading zeros) must give the
        // correctly rounded value all the same, in the right column.
        let cells = ["0", "7", "255", "000255", "999999999999999", "9999999999999999", "123456789012345678",
                     "18446744073709551616", "-0", "+12", "12.", "12.5", "1e3", "12E-1", " 42", "42 ", "\"42\"",
                     "00000000000000000001", "16777217", "4294967297"]
        let line = cells.joined(separator: ",")
        for ending in ["\n", "\r\n", ""] {
            let csv = line + "\n" + line.replacingOccurrences(of: "\"42\"", with: "43") + ending
            let t = try CSVReader.read(bytes: Array(csv.utf8), file: "fast.csv", options: CSVOptions(header: .absent))
            XCTAssertEqual(t.values.shape, [2, cells.count])
            for (j, s) in cells.enumerated() {
                let text = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "\"", with: "")
                let expected = Float(Double(text)!)
                XCTAssertEqual(t.values.scalars[j].bitPattern, expected.bitPattern, "'\(s)'")
            }
            XCTAssertEqual(t.values.scalars[cells.count + 16], 43)
        }
        // Any delimiter ends a digit run the way the general path splits fields, a digit too.
        for (delim, text, expected) in [(UInt8(ascii: "0"), "1023\n405\n", [Float](arrayLiteral: 1, 23, 4, 5)),
                                        (UInt8(ascii: "."), "1.5\n2.25\n", [1, 5, 2, 25]),
                                        (UInt8(ascii: " "), "1 2\n3 4\n", [1, 2, 3, 4])] {
            let t = try CSVReader.read(bytes: Array(text.utf8), file: "d.csv", options: CSVOptions(header: .absent, delimiter: delim))
            XCTAssertEqual(t.values.scalars, expected, "delimiter \(Character(Unicode.Scalar(delim)))")
        }
        // The label column takes the general path; values after it are in their own columns.
        let labelled = try CSVReader.read(bytes: Array("3,9,1\n10,0,2\n".utf8), file: "l.csv",
                                          options: CSVOptions(header: .absent, labelColumn: .index(1)))
        XCTAssertEqual(labelled.values.scalars, [3, 1, 10, 2])
        XCTAssertEqual(labelled.labels, [9, 0])
        // Errors after fast-path cells name the right line and column.
        expectDataError(try CSVReader.read(bytes: Array("1,2,3\n4,5,6x\n".utf8), file: "x.csv"),
                        contains: ["line 2, column 3", "'6x' is not a number"])
        expectDataError(try CSVReader.read(bytes: Array("1,2,3\n4,5,\n".utf8), file: "x.csv"),
                        contains: ["line 2, column 3", "empty cell"])
        expectDataError(try CSVReader.read(bytes: Array("1,2,3\n4,5,6,\n".utf8), file: "x.csv"),
                        contains: ["line 2", "4 fields where 3 are expected"])
        expectDataError(try CSVReader.read(bytes: Array("1,2,3\n4,5\n".utf8), file: "x.csv"),
                        contains: ["line 2", "2 fields where 3 are expected"])
        // Dropped rows leave no values behind, and the tightest file (one digit per cell)
        // fits the in-place buffer.
        let dropped = try CSVReader.read(bytes: Array("1,2\n3,\n4,5\n".utf8), file: "d.csv",
                                         options: CSVOptions(header: .absent, clean: .drop))
        XCTAssertEqual(dropped.values.scalars, [1, 2, 4, 5])
        XCTAssertEqual(dropped.droppedLines, [2])
        let tight = (0..<999).map { String($0 % 10) }.joined(separator: ",")
        let dense = try CSVReader.read(bytes: Array(tight.utf8), file: "t.csv", options: CSVOptions(header: .absent))
        XCTAssertEqual(dense.values.scalars, (0..<999).map { Float($0 % 10) })
    }

    func testDelimitersAreNeverTrimmedAndBadQuotingIsAnError() throws {
        let dir = makeTempDir()
        // Two tabs are an empty cell, not one separator (tabs are trimmed as blanks elsewhere).
        writeBytes(Array("1\t\t2\n3\t4\t5\n".utf8), dir + "/e.tsv")
        expectDataError(try Dataset.load(path: dir + "/e.tsv"), contains: ["line 1, column 2", "empty cell"])
        writeBytes(Array("1\t 2 \t3\n4\t5\t6\n".utf8), dir + "/s.tsv")
        XCTAssertEqual(try Dataset.load(path: dir + "/s.tsv").samples.scalars, [1, 2, 3, 4, 5, 6])
        writeBytes(Array("1\t2\n3\t4\t5\n".utf8), dir + "/r.tsv")
        expectDataError(try Dataset.load(path: dir + "/r.tsv"), contains: ["line 2", "3 fields where 2", "separated by tabs"])
        // Quotes: unclosed on the line, or followed by text, in the first row or later.
        for (text, location, problem) in [("1,\"42,3\n4,5,6\n", "line 1, column 2", "not closed on its line"),
                                          ("1,2,3\n4,\"5,6\n", "line 2, column 2", "not closed on its line"),
                                          ("1,2,3\n4,\"5\"x,6\n", "line 2, column 2", "text follows the closing quote"),
                                          ("\"a\"b,c\n1,2\n", "line 1, column 1", "text follows the closing quote")] {
            expectDataError(try CSVReader.read(bytes: Array(text.utf8), file: "q.csv", options: CSVOptions(clean: .drop)),
                            contains: ["q.csv", location, problem])
        }
        // A .tsv row of tabs only is a row of empty cells, not a blank line.
        writeBytes(Array("a\tb\tc\n1\t2\t3\n\t\t\n4\t5\t6\n".utf8), dir + "/b.tsv")
        expectDataError(try Dataset.load(path: dir + "/b.tsv"), contains: ["line 3, column 1 (a)", "empty cell"])
        XCTAssertEqual(try Dataset.load(path: dir + "/b.tsv", options: DatasetOptions(clean: .drop)).droppedSamples, 1)
        writeBytes(Array("a,b,c\n1,2,3\n \t \n4,5,6\n".utf8), dir + "/b.csv")
        XCTAssertEqual(try Dataset.load(path: dir + "/b.csv").samples.scalars, [1, 2, 3, 4, 5, 6])
        // Classic Mac OS line ends (CR only), with and without a header.
        for (text, values) in [("a,b\r1,2\r3,4\r", [Float](arrayLiteral: 1, 2, 3, 4)), ("1,2\r3,4\r5,6", [1, 2, 3, 4, 5, 6])] {
            let t = try CSVReader.read(bytes: Array(text.utf8), file: "mac.csv")
            XCTAssertEqual(t.values.scalars, values)
        }
        expectDataError(try CSVReader.read(bytes: Array("1,2\r3\r".utf8), file: "mac.csv"),
                        contains: ["line 2", "1 field where 2 are expected"])
        // pandas' default column names are a header; other numeric first rows are data.
        let pandas = try CSVReader.read(bytes: Array("0,1,2,3,4\n10,20,30,40,0\n50,60,70,80,1\n".utf8), file: "p.csv",
                                        options: CSVOptions(labelColumn: .last))
        XCTAssertEqual(pandas.header, ["0", "1", "2", "3", "4"])
        XCTAssertEqual(pandas.labels, [0, 1])
        for text in ["0,1\n5,6\n", "1,2,3\n5,6,7\n", "0,1,3\n5,6,7\n", "0,01,2\n5,6,7\n", "0,1.0,2\n5,6,7\n"] {
            XCTAssertNil(try CSVReader.read(bytes: Array(text.utf8), file: "n.csv").header, text)
        }
        // A semicolon file read with commas says so; a huge integer overflows like 1e39.
        expectDataError(try CSVReader.read(bytes: Array("a;b;c\n1;2;3\n".utf8), file: "semi.csv"),
                        contains: ["line 2, column 1", "separate fields by ';'"])
        expectDataError(try CSVReader.read(bytes: Array(("1,2\n3," + String(repeating: "9", count: 400) + "\n").utf8), file: "big.csv"),
                        contains: ["line 2, column 2", "overflows Float32"])
        let fine = try CSVReader.read(bytes: Array("\"a \"\"b\"\" \" , \"c\"\t\n \"1\" ,2\n".utf8), file: "f.csv")
        XCTAssertEqual(fine.header, ["a \"b\"", "c"])
        XCTAssertEqual(fine.values.scalars, [1, 2])
    }

    func testGzippedCSVRoundTrip() throws {
        let dir = makeTempDir()
        var text = "f1,f2,f3,label\n"
        var expected: [Float] = []
        var labels: [Int] = []
        for r in 0..<300 {
            let v = [Float(r) * 0.5, -Float(r), Float(r % 7) / 4]
            expected += v
            labels.append(r % 3)
            text += v.map { String($0) }.joined(separator: ",") + ",\(r % 3)\r\n"
        }
        let p = dir + "/table.csv.gz"
        writeBytes(Gzip.compress(Array(text.utf8)), p)
        XCTAssertEqual(try Dataset.detectFormat(path: p), .csv)
        let d = try Dataset.load(path: p, options: DatasetOptions(labelColumn: .name("label")))
        XCTAssertEqual(d.samples.shape, [300, 3])
        XCTAssertEqual(d.samples.scalars, expected)
        XCTAssertEqual(d.labels, labels)
        XCTAssertEqual(d.labelsSource, p)
        // A damaged gzip is an error, not garbage.
        var gz = Gzip.compress(Array(text.utf8))
        gz.removeLast(gz.count / 2)
        writeBytes(gz, dir + "/cut.csv.gz")
        expectDataError(try Dataset.load(path: dir + "/cut.csv.gz"), contains: ["cut.csv.gz", "gzip"])
    }

    func testMNIST5kCSV() throws {
        let path = dataPath("mnist_5k.csv.gz")
        guard FileManager.default.fileExists(atPath: path) else { return XCTFail("no \(path): ../shared/data is needed") }
        let start = Date()
        let d = try Dataset.load(path: path, options: DatasetOptions(labelColumn: .last))
        let seconds = Date().timeIntervalSince(start)
        print("[timing] mnist_5k.csv.gz loaded in \(String(format: "%.3f", seconds)) s")
        XCTAssertEqual(d.samples.shape, [5000, 784])
        XCTAssertEqual(d.format, .csv)
        XCTAssertEqual(d.dtype, .text)
        XCTAssertEqual(d.inferredImageShape, [1, 28, 28])
        let labels = try XCTUnwrap(d.labels)
        var counts = [Int](repeating: 0, count: 10)
        for l in labels { counts[l] += 1 }
        XCTAssertEqual(counts, [Int](repeating: 500, count: 10))
        XCTAssertEqual(Array(labels[0..<500]), [Int](repeating: 0, count: 500))
        XCTAssertEqual(labels[4999], 9)
        XCTAssertEqual(d.samples.scalars.max(), 255)
        XCTAssertEqual(d.samples.scalars.min(), 0)
        let mean = d.samples.scalars.reduce(0.0) { $0 + Double($1) } / Double(d.samples.count)
        XCTAssertEqual(mean, 33.49, accuracy: 0.01)
        let zeros = d.samples.scalars.filter { $0 == 0 }.count
        XCTAssertEqual(Double(zeros) / Double(d.samples.count), 0.807, accuracy: 0.001)
        XCTAssertTrue(d.samples.scalars.allSatisfy { $0 == $0.rounded() })
    }

    func testDigits8x8CSV() throws {
        let path = dataPath("digits_8x8.csv.gz")
        guard FileManager.default.fileExists(atPath: path) else { return XCTFail("no \(path): ../shared/data is needed") }
        let d = try Dataset.load(path: path, options: DatasetOptions(labelColumn: .last))
        XCTAssertEqual(d.samples.shape, [1797, 64])
        XCTAssertEqual(d.inferredImageShape, [1, 8, 8])
        XCTAssertEqual(d.samples.scalars.max(), 16)
        XCTAssertEqual(d.samples.scalars.min(), 0)
        let labels = try XCTUnwrap(d.labels)
        XCTAssertEqual(Array(labels[0..<12]), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1])
        var counts = [Int](repeating: 0, count: 10)
        for l in labels { counts[l] += 1 }
        XCTAssertEqual(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
        // The range for normalisation is the observed one (0...16), not 0...255.
        let stats = NormalizationStats.fit(.symmetric, dataset: d)
        XCTAssertEqual(stats.low, 0)
        XCTAssertEqual(stats.high, 16)
    }
}

// MARK: - PNG

final class PNGReaderTests: XCTestCase {
    func testF30MixedFolderLoadsAsRGB() throws {
        let (images, files) = try PNGReader.loadFolder(casePath("F30_png_mixed"))
        XCTAssertEqual(images.shape, [6, 3, 4, 4])
        XCTAssertEqual(files.map { ($0 as NSString).lastPathComponent },
                       ["a_rgb.png", "b_gray.png", "c_gray_alpha.png", "d_rgba.png", "e_gray16.png", "f_palette.png"])
        let expected: [[Float]] = [[200, 10, 10], [128, 128, 128], [128, 128, 128], [10, 200, 10], [255, 255, 255], [10, 20, 250]]
        for (k, rgb) in expected.enumerated() {
            for c in 0..<3 {
                let plane = Array(images.scalars[((k * 3 + c) * 16)..<((k * 3 + c + 1) * 16)])
                XCTAssertEqual(plane, [Float](repeating: rgb[c], count: 16), "\(files[k]) channel \(c)")
            }
        }
        let d = try Dataset.load(path: casePath("F30_png_mixed"))
        XCTAssertEqual(d.format, .png)
        XCTAssertEqual(d.dtype, .uint8)
        XCTAssertEqual(d.samples.shape, [6, 3, 4, 4])
        XCTAssertEqual(d.files?.count, 6)
    }

    func testAllGrayFolderHasOneChannel() throws {
        let dir = makeTempDir()
        for name in ["b_gray.png", "c_gray_alpha.png", "e_gray16.png"] {
            try FileManager.default.copyItem(atPath: casePath("F30_png_mixed/" + name), toPath: dir + "/" + name)
        }
        let (images, _) = try PNGReader.loadFolder(dir)
        XCTAssertEqual(images.shape, [3, 1, 4, 4])
        XCTAssertEqual(images.scalars, [Float](repeating: 128, count: 32) + [Float](repeating: 255, count: 16))
    }

    func testF30CorruptFilesAreAllNamed() {
        let e = expectDataError(try PNGReader.loadFolder(casePath("F30_png_corrupt")),
                                contains: ["F30_png_corrupt", "2 of 3 PNG files cannot be read", "b_truncated.png", "c_not_a_png.png"])
        XCTAssertFalse(e?.problem.contains("a_ok.png") ?? true)
        expectDataError(try Dataset.load(path: casePath("F30_png_corrupt")), contains: ["b_truncated.png", "c_not_a_png.png"])
        expectDataError(try PNGReader.decode(path: casePath("F30_png_corrupt/c_not_a_png.png")), contains: ["not a PNG file"])
        expectDataError(try PNGReader.decode(path: casePath("F30_png_corrupt/b_truncated.png")), contains: ["truncated PNG"])
        XCTAssertNoThrow(try PNGReader.decode(path: casePath("F30_png_corrupt/a_ok.png")))
    }

    func testBitDepthsPaletteAndSizeMismatch() throws {
        let dir = makeTempDir()
        // 1-bit gray, 2x1: black, white.
        writeBytes(makePNG(width: 2, height: 1, bitDepth: 1, colorType: 0, rows: [[0b0100_0000]]), dir + "/a_1bit.png")
        // 16-bit RGB, 2x1: (65535, 32896, 0), (257, 0, 65535).
        writeBytes(makePNG(width: 2, height: 1, bitDepth: 16, colorType: 2,
                           rows: [bigEndianBytes([UInt16(65535), 32896, 0, 257, 0, 65535])]), dir + "/b_rgb16.png")
        // 2-bit palette: indices 0 and 3.
        let palette: [UInt8] = [1, 2, 3, 10, 20, 30, 40, 50, 60, 70, 80, 90]
        writeBytes(makePNG(width: 2, height: 1, bitDepth: 2, colorType: 3, rows: [[0b0011_0000]], palette: palette), dir + "/c_pal.png")
        // 8-bit RGBA: alpha dropped, not composited.
        writeBytes(makePNG(width: 2, height: 1, bitDepth: 8, colorType: 6, rows: [[9, 8, 7, 0, 6, 5, 4, 128]]), dir + "/d_rgba.png")
        let (images, _) = try PNGReader.loadFolder(dir)
        XCTAssertEqual(images.shape, [4, 3, 1, 2])
        XCTAssertEqual(images.scalars, [
            0, 255, 0, 255, 0, 255,      // 1-bit gray
            255, 1, 128, 0, 0, 255,      // 16-bit RGB: R plane, G plane, B plane
            1, 70, 2, 80, 3, 90,         // palette
            9, 6, 8, 5, 7, 4,            // RGBA
        ])

        writeBytes(makePNG(width: 3, height: 1, bitDepth: 8, colorType: 0, rows: [[1, 2, 3]]), dir + "/e_wide.png")
        let e = expectDataError(try PNGReader.loadFolder(dir), contains: ["e_wide.png", "3x1", "2x1", "same size"])
        XCTAssertEqual(e?.file, dir + "/e_wide.png")

        let empty = makeTempDir("empty")
        expectDataError(try Dataset.load(path: empty), contains: ["no .png files"])
    }
}

// MARK: - Dataset-level behaviour and inspect

final class DatasetTests: XCTestCase {
    func testFormatDetection() throws {
        let dir = makeTempDir()
        writeBytes(npyFile(descr: "<f4", shape: [1], data: littleEndianBytes([Float(1).bitPattern])), dir + "/noext")
        XCTAssertEqual(try Dataset.detectFormat(path: dir + "/noext"), .npy)
        writeBytes(idxFile(type: 0x08, shape: [1], data: [3]), dir + "/labels.bin")
        XCTAssertEqual(try Dataset.detectFormat(path: dir + "/labels.bin"), .idx)
        writeBytes(Array("1,2\n".utf8), dir + "/plain")
        XCTAssertEqual(try Dataset.detectFormat(path: dir + "/plain"), .csv)
        XCTAssertEqual(try Dataset.detectFormat(path: dir), .png)
        writeBytes([0xde, 0xad, 0xbe, 0xef, 0x00, 0x01], dir + "/blob.bin")
        expectDataError(try Dataset.detectFormat(path: dir + "/blob.bin"), contains: ["unknown data format"])
        expectDataError(try Dataset.load(path: dir + "/nothing.npy"), contains: ["nothing.npy", "no such file"])
        XCTAssertEqual(try Dataset.detectFormat(path: casePath("F31_header_ok.csv")), .csv)
        XCTAssertEqual(try Dataset.detectFormat(path: casePath("F01_fortran_3x4_f4.npy")), .npy)
        XCTAssertEqual(try Dataset.detectFormat(path: casePath("F09_images_2x3x4-idx3-ubyte")), .idx)
    }

    func testNonFiniteSamplesErrorOrDrop() throws {
        let dir = makeTempDir()
        let values: [Float] = [0, 1, 2, 3, .nan, 5, 6, 7, 8, 9, .infinity, 11]
        writeBytes(npyFile(descr: "<f4", shape: [4, 3], data: littleEndianBytes(values.map(\.bitPattern))), dir + "/x.npy")
        writeBytes(npyFile(descr: "<i8", shape: [4], data: littleEndianBytes([Int64(0), 1, 2, 3])), dir + "/y.npy")
        let e = expectDataError(try Dataset.load(path: dir + "/x.npy"), contains: ["x.npy", "sample 1", "[1, 1]", "element 4", "nan is not finite"])
        XCTAssertEqual(e?.location, "sample 1, index [1, 1] (element 4)")
        let d = try Dataset.load(path: dir + "/x.npy", options: DatasetOptions(clean: .drop, labelsPath: dir + "/y.npy"))
        XCTAssertEqual(d.samples.shape, [2, 3])
        XCTAssertEqual(d.samples.scalars, [0, 1, 2, 6, 7, 8])
        XCTAssertEqual(d.labels, [0, 2])
        XCTAssertEqual(d.droppedSamples, 2)

        let all: [Float] = [.nan, 1]
        writeBytes(npyFile(descr: "<f4", shape: [1, 2], data: littleEndianBytes(all.map(\.bitPattern))), dir + "/z.npy")
        expectDataError(try Dataset.load(path: dir + "/z.npy", options: DatasetOptions(clean: .drop)),
                        contains: ["dataset has 0 samples after dropping 1"])
    }

    func testSubsetAndBatchGather() throws {
        let d = try Dataset.load(path: casePath("F09_images_2x3x4-idx3-ubyte"),
                                 options: DatasetOptions(labelsPath: casePath("F09_labels_2-idx1-ubyte")))
        let b = d.batch([1, 0, 1])
        XCTAssertEqual(b.samples.shape, [3, 3, 4])
        XCTAssertEqual(b.samples.scalars[0], 120)
        XCTAssertEqual(b.samples.scalars[12], 0)
        XCTAssertEqual(b.labels, [2, 7, 2])
        XCTAssertEqual(d.subset([1]).labels, [2])
    }

    func testInspect() throws {
        let s = try inspect(path: casePath("F07_uint8_2x4.npy"))
        XCTAssertEqual(s.format, .npy)
        XCTAssertEqual(s.shape, [2, 4])
        XCTAssertEqual(s.dtype, .uint8)
        XCTAssertEqual(s.min, 0)
        XCTAssertEqual(s.max, 255)
        XCTAssertEqual(s.normalizationRange, 0...255)
        XCTAssertTrue(s.description.contains("dtype:    u1"), s.description)
        XCTAssertTrue(s.description.contains("shape:    [2, 4]"), s.description)

        let c = try inspect(path: casePath("F16_logits_labels.csv"), options: DatasetOptions(labelColumn: "label"))
        XCTAssertEqual(c.labelCounts, [0: 3, 1: 3])
        XCTAssertTrue(c.description.contains("2 classes {0: 3, 1: 3}"), c.description)

        // inspect throws exactly what the loader throws.
        let path = casePath("F05_truncated_8x3x4x4_f4.npy")
        var loaderError: DataError?
        do { _ = try Dataset.load(path: path) } catch let e as DataError { loaderError = e }
        let inspectError = expectDataError(try inspect(path: path))
        XCTAssertEqual(inspectError, loaderError)

        let mnist = dataPath("mnist_5k.csv.gz")
        if FileManager.default.fileExists(atPath: mnist) {
            let m = try inspect(path: mnist, options: DatasetOptions(labelColumn: .last))
            XCTAssertEqual(m.shape, [5000, 784])
            XCTAssertEqual(m.labelCounts?.count, 10)
            XCTAssertTrue(m.integerValued)
            XCTAssertEqual(m.imageShape, [1, 28, 28])
            print(m.description)
        }
    }
}

final class ErrorMessageTests: XCTestCase {
    /// Prints one message per kind of bad input (for reading in the test log) and checks each
    /// names its file.
    func testMessagesNameTheFile() {
        let cases: [(String, () throws -> Any)] = [
            ("F05_truncated_8x3x4x4_f4.npy", { try Dataset.load(path: casePath("F05_truncated_8x3x4x4_f4.npy")) }),
            ("F06_scalar_0d_f8.npy", { try Dataset.load(path: casePath("F06_scalar_0d_f8.npy")) }),
            ("F06_empty_0x3_f4.npy", { try Dataset.load(path: casePath("F06_empty_0x3_f4.npy")) }),
            ("F10_bad_magic-idx3-ubyte", { try Dataset.load(path: casePath("F10_bad_magic-idx3-ubyte")) }),
            ("F31_missing_values.csv", { try Dataset.load(path: casePath("F31_missing_values.csv")) }),
            ("F31_ragged.csv", { try Dataset.load(path: casePath("F31_ragged.csv")) }),
            ("F30_png_corrupt", { try Dataset.load(path: casePath("F30_png_corrupt")) }),
        ]
        for (name, body) in cases {
            let e = expectDataError(try body(), contains: [name])
            print("[message] \(e?.description ?? "none")")
        }
    }
}

// MARK: - Regression tests: truncated headers, degenerate IDX dimensions, binary CSV, quoting

/// Asserts an error message holds no control characters and stays short.
func assertPrintableMessage(_ e: DataError?, maxLength: Int = 600, file: StaticString = #filePath, line: UInt = #line) {
    guard let e else { return }
    let text = e.description
    let bad = text.unicodeScalars.first { $0.value < 0x20 || (0x7f...0x9f).contains($0.value) }
    XCTAssertNil(bad, "message holds control character \(bad.map { String($0.value, radix: 16) } ?? ""): \(text.debugDescription)",
                 file: file, line: line)
    XCTAssertLessThanOrEqual(text.count, maxLength, "message too long: \(text.debugDescription)", file: file, line: line)
}

final class TruncatedHeaderTests: XCTestCase {
    /// Every cut of a valid file, for each header version, is reported as what it is: a cut
    /// inside the preamble or header is "truncated .npy header ... found n", never "not a .npy
    /// file"; a cut in the data is "expected 48 data bytes, found k".
    func testEveryCutOfAValidNpyFileIsATruncationError() throws {
        let data = littleEndianBytes((0..<12).map { Float($0).bitPattern })
        for version: UInt8 in [1, 2, 3] {
            let whole = npyFile(descr: "<f4", shape: [3, 4], data: data, version: version)
            let headerEnd = whole.count - data.count
            XCTAssertEqual(try NPYReader.read(bytes: whole, file: "ok.npy").tensor.scalars, (0..<12).map(Float.init))
            for n in 0..<whole.count {
                let e = expectDataError(try NPYReader.read(bytes: Array(whole.prefix(n)), file: "cut.npy"),
                                        contains: ["cut.npy", "truncated"])
                guard let e else { continue }
                XCTAssertFalse(e.description.contains("not a .npy file"), "v\(version) cut at \(n): \(e)")
                if n < headerEnd {
                    XCTAssertTrue(e.problem.hasPrefix("truncated .npy header: expected at least "), "v\(version) cut at \(n): \(e)")
                    XCTAssertTrue(e.problem.contains("found \(n)"), "v\(version) cut at \(n): \(e)")
                    // The bytes it says are needed are more than are there, and no more than the header needs.
                    let needed = Int(e.problem.dropFirst("truncated .npy header: expected at least ".count)
                        .prefix { $0.isNumber })!
                    XCTAssertGreaterThan(needed, n, "v\(version) cut at \(n): \(e)")
                    XCTAssertLessThanOrEqual(needed, headerEnd, "v\(version) cut at \(n): \(e)")
                } else {
                    XCTAssertTrue(e.problem.contains("expected 48 data bytes, found \(n - headerEnd)"), "v\(version) cut at \(n): \(e)")
                }
            }
        }
        // The defect as reported: a file that is only the magic string.
        let dir = makeTempDir()
        writeBytes([0x93] + Array("NUMPY".utf8), dir + "/magic.npy")
        let e = expectDataError(try Dataset.load(path: dir + "/magic.npy"),
                                contains: ["magic.npy", "truncated .npy header: expected at least 10 bytes, found 6"])
        XCTAssertFalse(e?.description.contains("not a .npy file") ?? true)
        // Version 2.0 needs 12 bytes before the header.
        expectDataError(try NPYReader.read(bytes: [0x93] + Array("NUMPY".utf8) + [2, 0, 0x76, 0], file: "v2.npy"),
                        contains: ["truncated .npy header: expected at least 12 bytes, found 10"])
        writeBytes([], dir + "/empty.npy")
        expectDataError(try NPYReader.load(path: dir + "/empty.npy"), contains: ["empty.npy", "found 0", "the file is empty"])
    }

    /// Shapes whose element count overflows are errors, never a crash, even next to a 0 extent.
    func testImpossiblyLargeNpyShapes() throws {
        for shape in [[1 << 40, 1 << 40], [1 << 40, 1 << 40, 0], [Int.max, 2]] {
            expectDataError(try NPYReader.read(bytes: npyFile(descr: "<f4", shape: shape, data: [1, 2, 3]), file: "big.npy"),
                            contains: ["big.npy", "impossibly large", "the file has 3 data bytes"])
        }
        expectDataError(try NPYReader.read(bytes: npyFile(descr: "<f8", shape: [1 << 20, 1 << 20], data: [1, 2, 3]), file: "big.npy"),
                        contains: ["expected 8796093022208 data bytes, found 3"])
        XCTAssertEqual(try NPYReader.read(bytes: npyFile(descr: "<f4", shape: [1 << 40, 0], data: []), file: "e.npy").tensor.shape,
                       [1 << 40, 0])
    }

    func testBadMagicIsStillBadMagicWhateverTheLength() {
        for bytes: [UInt8] in [Array("abc".utf8), [0x93, 0x4E, 0x55, 0x00], [0x93] + Array("NUMPX".utf8) + [1, 0],
                               [0x93] + Array("NUMPZ".utf8) + [1, 0, 0x76, 0] + [UInt8](repeating: 0x20, count: 0x76)] {
            let e = expectDataError(try NPYReader.read(bytes: bytes, file: "x.npy"), contains: ["not a .npy file"])
            XCTAssertFalse(e?.description.contains("truncated") ?? true, "\(bytes.prefix(8)): \(e.map(String.init(describing:)) ?? "")")
        }
        expectDataError(try NPYReader.read(bytes: [0x93, 0x4E, 0x55], file: "x.npy"),
                        contains: ["truncated .npy header: expected at least 10 bytes, found 3"])
        expectDataError(try NPYReader.read(bytes: [0x93] + Array("NUMPY".utf8) + [9], file: "x.npy"),
                        contains: ["unsupported .npy format version 9.?"])
    }

    /// Every cut of a valid IDX file is a truncation error with true byte counts.
    func testEveryCutOfAValidIDXFileIsATruncationError() throws {
        let whole = idxFile(type: 0x08, shape: [2, 3, 4], data: (0..<24).map { UInt8($0) })
        XCTAssertEqual(try IDXReader.read(bytes: whole, file: "ok").tensor.shape, [2, 3, 4])
        for n in 0..<whole.count {
            let e = expectDataError(try IDXReader.read(bytes: Array(whole.prefix(n)), file: "cut-idx3-ubyte"),
                                    contains: ["cut-idx3-ubyte", "truncated"])
            guard let e else { continue }
            XCTAssertFalse(e.description.contains("not an IDX file"), "cut at \(n): \(e)")
            if n < 4 {
                XCTAssertTrue(e.problem.contains("truncated IDX header: expected at least 4 bytes"), "cut at \(n): \(e)")
                XCTAssertTrue(e.problem.contains("found \(n)"), "cut at \(n): \(e)")
            } else if n < 16 {
                XCTAssertTrue(e.problem.contains("truncated IDX header: expected at least 16 bytes"), "cut at \(n): \(e)")
                XCTAssertTrue(e.problem.contains("found \(n)"), "cut at \(n): \(e)")
            } else {
                XCTAssertTrue(e.problem.contains("expected 24 data bytes, found \(n - 16)"), "cut at \(n): \(e)")
            }
        }
        expectDataError(try IDXReader.read(bytes: [0, 0, 0x08, 255, 0, 0, 0, 1], file: "r-idx"),
                        contains: ["truncated IDX header: expected at least 1024 bytes", "255 dimension sizes", "found 8"])
        expectDataError(try IDXReader.read(bytes: [0x61], file: "m-idx"), contains: ["not an IDX file", "found 0x61"])
        expectDataError(try IDXReader.read(bytes: [0, 0, 0x07], file: "t-idx"), contains: ["unknown IDX type code 0x07"])
    }
}

final class IDXDimensionTests: XCTestCase {
    func testZeroDimensionsIsRejected() {
        let dir = makeTempDir()
        for (name, bytes): (String, [UInt8]) in [("a", [0, 0, 0x08, 0]), ("b", [0, 0, 0x08, 0, 42]), ("c", [0, 0, 0x0D, 0, 1, 2, 3, 4])] {
            let e = expectDataError(try IDXReader.read(bytes: bytes, file: name), contains: ["IDX header declares 0 dimensions"])
            XCTAssertFalse(e?.description.contains("data bytes") ?? true, e?.description ?? "")
            XCTAssertEqual(e?.location, "byte 3")
        }
        writeBytes([0, 0, 0x08, 0], dir + "/zero-idx0-ubyte")
        expectDataError(try Dataset.load(path: dir + "/zero-idx0-ubyte"), contains: ["zero-idx0-ubyte", "IDX header declares 0 dimensions"])
    }

    func testDimensionOfSizeZero() throws {
        let dir = makeTempDir()
        // No samples: readable as an empty array, refused as a dataset.
        writeBytes(idxFile(type: 0x08, shape: [0, 3, 4], data: []), dir + "/n0-idx3-ubyte")
        XCTAssertEqual(try IDXReader.load(path: dir + "/n0-idx3-ubyte").shape, [0, 3, 4])
        expectDataError(try Dataset.load(path: dir + "/n0-idx3-ubyte"), contains: ["n0-idx3-ubyte", "dataset has 0 samples"])
        // Samples without values.
        writeBytes(idxFile(type: 0x08, shape: [2, 0, 4], data: []), dir + "/w0-idx3-ubyte")
        expectDataError(try Dataset.load(path: dir + "/w0-idx3-ubyte"), contains: ["each sample has 0 values"])
        // A zero dimension followed by data: the header is wrong, and the message says which dimension.
        writeBytes(idxFile(type: 0x08, shape: [2, 0, 4], data: [UInt8](repeating: 7, count: 8)), dir + "/z-idx3-ubyte")
        expectDataError(try IDXReader.load(path: dir + "/z-idx3-ubyte"),
                        contains: ["dimensions 2 x 0 x 4 hold no values (dimension 2 is 0)", "8 data bytes follow"])
        // A zero dimension next to huge ones: an error, not a crash computing the element count.
        expectDataError(try IDXReader.read(bytes: idxFile(type: 0x0E, shape: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF, 0], data: []),
                                           file: "e"), contains: ["impossibly large"])
        XCTAssertEqual(try IDXReader.read(bytes: idxFile(type: 0x0E, shape: [0xFFFF_FFFF, 0], data: []), file: "f").tensor.shape,
                       [0xFFFF_FFFF, 0])
    }

    func testAbsurdlyLargeDimensions() {
        // The product overflows Int.
        let huge = idxFile(type: 0x08, shape: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], data: [1, 2, 3])
        let e1 = expectDataError(try IDXReader.read(bytes: huge, file: "huge-idx3-ubyte"),
                                 contains: ["4294967295 x 4294967295 x 4294967295", "impossibly large", "3 data bytes"])
        XCTAssertEqual(e1?.location, "header")
        // No overflow, but far more than the file holds.
        let big = idxFile(type: 0x0E, shape: [65536, 65536, 4], data: [1, 2, 3])
        let e2 = expectDataError(try IDXReader.read(bytes: big, file: "big-idx3"),
                                 contains: ["expected 137438953472 data bytes, found 3", "65536 x 65536 x 4", "truncated or its header is damaged"])
        // The message reads cleanly (no nested or empty parentheses as in "(header dimensions )").
        XCTAssertFalse(e2?.description.contains("( ") ?? true)
        XCTAssertFalse(e2?.description.contains("dimensions )") ?? true)
    }
}

final class BinaryCSVTests: XCTestCase {
    /// Binary files named .csv are refused up front, with the offset of the first non-text byte.
    func testBinaryContentIsDetectedEarly() throws {
        let dir = makeTempDir()
        func check(_ bytes: [UInt8], offset: Int, _ extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) {
            let p = dir + "/b.csv"
            writeBytes(bytes, p)
            let e = expectDataError(try Dataset.load(path: p),
                                    contains: ["b.csv", "not a text CSV file (binary content at byte \(offset))"] + extra,
                                    file: file, line: line)
            assertPrintableMessage(e, file: file, line: line)
        }
        check(Array("1,2\n3,4".utf8) + [0] + Array("\n".utf8), offset: 7, ["0x00 (NUL)", "line 2"])
        check(Array("x,y\n1,2\n".utf8) + [0xff, 0x31], offset: 8, ["0xff", "not valid UTF-8"])
        check(Array("a,".utf8) + [0x1b] + Array("[31m\n".utf8), offset: 2, ["0x1b"])
        check([0xC0, 0x80], offset: 0)                      // overlong NUL
        check(Array("1,".utf8) + [0xED, 0xA0, 0x80], offset: 2)  // UTF-16 surrogate
        check(Array("1,".utf8) + [0xE2, 0x82], offset: 2)        // cut sequence at the end
        check([0xFF, 0xFE] + Array("x,y\n".utf16.flatMap { [UInt8($0 & 0xff), UInt8($0 >> 8)] }), offset: 0, ["UTF-16"])
        // Past the first kilobyte: a NUL found by the eight-bytes-at-a-time scan, at its exact offset.
        for pad in 0..<9 {
            var text = Array("a,b\n".utf8)
            while text.count < 4000 + pad { text += Array("1,2\n".utf8) }
            let at = text.count
            check(text + Array("1,".utf8) + [0] + Array("\n".utf8), offset: at + 2)
            check(text + Array("1,".utf8) + [0x80] + Array("\n".utf8), offset: at + 2)
        }
        // Real binary files given a .csv name.
        for name in ["F01_fortran_3x4_f4.npy", "F09_images_2x3x4-idx3-ubyte", "F30_png_mixed/a_rgb.png"] {
            try? FileManager.default.removeItem(atPath: dir + "/b.csv")
            try FileManager.default.copyItem(atPath: casePath(name), toPath: dir + "/b.csv")
            let e = expectDataError(try Dataset.load(path: dir + "/b.csv"), contains: ["not a text CSV file (binary content at byte "])
            assertPrintableMessage(e)
        }
        // Gzipped binary is inflated first, then refused the same way.
        writeBytes(Gzip.compress([1, 2, 3, 0, 4]), dir + "/g.csv.gz")
        expectDataError(try Dataset.load(path: dir + "/g.csv.gz"), contains: ["not a text CSV file (binary content at byte 0)"])
    }

    func testUTF8TextAndLateControlCharactersAreNotBinary() throws {
        let dir = makeTempDir()
        writeBytes(Array("température,größe\n1,2\n".utf8), dir + "/u.csv")
        XCTAssertEqual(try CSVReader.read(path: dir + "/u.csv").header, ["température", "größe"])
        // A stray control character deep in a text file is a bad cell, quoted with an escape.
        var text = "a,b\n"
        while text.utf8.count < 3000 { text += "1,2\n" }
        text += "3,\u{1b}[0m\n"
        writeBytes(Array(text.utf8), dir + "/late.csv")
        let e = expectDataError(try CSVReader.read(path: dir + "/late.csv"), contains: ["column 2 (b)", "'\\x1b[0m' is not a number"])
        assertPrintableMessage(e)
    }
}

final class MessageQuotingTests: XCTestCase {
    func testSanitizer() {
        XCTAssertEqual(sanitizedForMessage("a\u{1b}b\u{7f}\u{0}"), "a\\x1bb\\x7f\\x00")
        XCTAssertEqual(sanitizedForMessage("tab\there\r\n"), "tab\\there\\r\\n")
        XCTAssertEqual(sanitizedForMessage("é ü 中 ✓"), "é ü 中 ✓")
        XCTAssertEqual(sanitizedForMessage("x\u{202e}y\u{85}\u{200b}"), "x\\u{202e}y\\u{85}\\u{200b}")
        XCTAssertEqual(sanitizedForMessage(String(repeating: "x", count: 40)), String(repeating: "x", count: 40))
        XCTAssertEqual(sanitizedForMessage(String(repeating: "x", count: 41)), String(repeating: "x", count: 40) + "...")
        XCTAssertEqual(sanitizedForMessage(String(repeating: "\u{1b}", count: 30)), String(repeating: "\\x1b", count: 10) + "...")
        XCTAssertEqual(sanitizedForMessage(bytes: [0x61, 0xff, 0x62, 0xC3, 0xA9]), "a\\xffbé")
        XCTAssertEqual(sanitizedForMessage(bytes: [UInt8](repeating: 0x41, count: 600)), String(repeating: "A", count: 40) + "...")
        XCTAssertEqual(sanitizedForMessage(bytes: [0xE2, 0x82]), "\\xe2\\x82")
    }

    /// Whatever a CSV cell, header or label holds, the message quotes it printable and short.
    func testCSVMessagesQuoteCellsSafely() {
        let long = String(repeating: "Z", count: 600)
        let cases: [(String, CSVOptions, [String])] = [
            ("a,b\n1,\(long)\n", CSVOptions(), ["'" + String(repeating: "Z", count: 40) + "...' is not a number"]),
            ("x\u{202e}gnp.exe,\(long)\n1,2\n3,\n", CSVOptions(), ["line 3, column 2 (ZZZZ", "...)", "empty cell"]),
            ("x\u{202e}gnp.exe,\(long)\n,2\n", CSVOptions(), ["line 2, column 1 (x\\u{202e}gnp.exe)", "empty cell"]),
            ("a,b\n1,\u{9b}\u{85}\n", CSVOptions(), ["'\\u{9b}\\u{85}' is not a number"]),
            ("1,\(String(repeating: "1", count: 100)).5\n", CSVOptions(labelColumn: .last),
             ["label '\(String(repeating: "1", count: 40))...' is not a non-negative integer"]),
            ("1,\(long)\n", CSVOptions(header: .absent, labelColumn: .last), ["'ZZZZ", "...' is not a number"]),
            ("h\u{85}1,\(long)\n1,2\n", CSVOptions(labelColumn: "nope\u{1b}"), ["no column named 'nope\\x1b'", "'h\\u{85}1'", "'ZZZZ"]),
        ]
        for (text, options, fragments) in cases {
            let e = expectDataError(try CSVReader.read(bytes: Array(text.utf8), file: "q.csv", options: options), contains: fragments)
            assertPrintableMessage(e, maxLength: 300)
        }
        // Many header names: the list is cut too.
        let header = (0..<784).map { "pixel\($0)" }.joined(separator: ",")
        let e = expectDataError(try CSVReader.read(bytes: Array((header + "\n").utf8), file: "h.csv",
                                                   options: CSVOptions(labelColumn: "label")),
                                contains: ["no column named 'label'", "'pixel9', ... 784 columns in all"])
        assertPrintableMessage(e, maxLength: 300)
    }

    /// Text quoted from a .npy header is escaped and cut short too.
    func testNpyHeaderTextIsQuotedSafely() {
        func header(_ dict: String) -> [UInt8] {
            var h = dict
            while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
            h += "\n"
            return [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count & 0xff), UInt8(h.utf8.count >> 8)] + Array(h.utf8)
        }
        let long = String(repeating: "Q", count: 500)
        let cases: [([UInt8], [String])] = [
            (npyFile(descr: "\u{1b}[31m<f4", shape: [1], data: [0, 0, 0, 0]), ["unsupported dtype '\\x1b[31m<f4'"]),
            (npyFile(descr: long, shape: [1], data: [0, 0, 0, 0]), ["unsupported dtype 'QQQQ", "...'"]),
            (header("{'descr': '<f4', 'fortran_order': '\(long)', 'shape': (1,), }"), ["'fortran_order' must be True or False", "..."]),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': ('\u{7}',), }"), ["found '\\x07'"]),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), '\u{1b}\(long)': 1}"), ["unexpected key(s) '\\x1bQQQ", "...'"]),
            (header("{'descr': '<f4', \u{1b}\(long)}"), ["malformed header dict", "\\x1b"]),
            (header("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), } \(long)"), ["malformed header dict", "unexpected 'Q' after the dict"]),
        ]
        for (bytes, fragments) in cases {
            let e = expectDataError(try NPYReader.read(bytes: bytes + [0, 0, 0, 0], file: "h.npy"), contains: fragments)
            assertPrintableMessage(e, maxLength: 400)
        }
        // Latin-1 header bytes that are C1 control characters.
        let c1 = header("{'descr': '<f4\u{85}', 'fortran_order': False, 'shape': (1,), }").map { $0 == 0xC2 ? 0x20 : $0 }
        let e = expectDataError(try NPYReader.read(bytes: c1 + [0, 0, 0, 0], file: "c1.npy"), contains: ["unsupported dtype '<f4 \\u{85}'"])
        assertPrintableMessage(e, maxLength: 400)
    }
}

/// Temporary folders made by these tests are gone once each test ends.
final class TempDirCleanupTests: XCTestCase {
    private var made: [String] = []

    override func tearDown() {
        // Teardown blocks (which remove the folders) have run by now.
        for dir in made {
            XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "\(dir) was left behind")
        }
        made = []
        super.tearDown()
    }

    func testTempDirIsRemovedAfterTheTest() throws {
        let dir = makeTempDir()
        let empty = makeTempDir("empty")
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        writeBytes([1, 2, 3], dir + "/sub/file.bin")
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/sub/file.bin"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: empty))
        XCTAssertNotEqual(dir, empty)
        made = [dir, empty]
    }
}
