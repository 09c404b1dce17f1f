@testable import ConjureData
import ConjureTensor
import Foundation
import XCTest

/// Issue 15 items 10-14: channels-last arrays, label-first CSVs, declared and integer ranges,
/// PNG decompression bombs, and regressions found by the fuzz harnesses (fuzz/).
final class ReliabilityTests: XCTestCase {
    // MARK: PNG bombs (item 14)

    /// A ~1 MB PNG declaring 32768x32768 RGBA (4 GiB decoded) is refused from its header.
    func testPNGBombIsRefusedBeforeDecoding() throws {
        let side = 32768
        let rowBytes = 1 + side * 4
        // Eight rows of real (stored, uncompressed) image data: 1 MB of file, the rest missing.
        let raw = [UInt8](repeating: 0, count: rowBytes * 8)
        func chunk(_ type: String, _ body: [UInt8]) -> [UInt8] {
            let t = Array(type.utf8)
            return bigEndianBytes([UInt32(body.count)]) + t + body + bigEndianBytes([pngTestCRC32(t + body)])
        }
        var png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        png += chunk("IHDR", bigEndianBytes([UInt32(side), UInt32(side)]) + [8, 6, 0, 0, 0])
        png += chunk("IDAT", zlibStored(raw))
        png += chunk("IEND", [])
        XCTAssertGreaterThan(png.count, 1_000_000)
        XCTAssertLessThan(png.count, 1_100_000)
        let dir = makeTempDir()
        let path = dir + "/bomb.png"
        writeBytes(png, path)
        let needed = try XCTUnwrap(PNGReader.decodedByteCount(width: side, height: side, bitDepth: 8))
        XCTAssertEqual(needed, side * side * 4)
        XCTAssertGreaterThan(needed, PNGReader.defaultMaxDecodedBytes)
        let e = expectDataError(try PNGReader.decode(path: path),
                                contains: [path, "32768x32768", "4 channels", "\(needed) bytes", "limit of \(PNGReader.defaultMaxDecodedBytes) bytes"])
        XCTAssertEqual(e?.location, "IHDR")
        // In a folder, the error names the bad file.
        expectDataError(try Dataset.load(path: dir), contains: ["bomb.png", "32768x32768"])
    }

    /// The bound is configurable: it counts width x height x 4 (RGBA) x bytes per sample.
    func testPNGDecodedSizeLimitIsConfigurable() throws {
        let (w, h) = (20, 10)
        var rows: [[UInt8]] = []
        for y in 0..<h {
            var row: [UInt8] = []
            for x in 0..<w { row += [UInt8(x), UInt8(y), 7] }
            rows.append(row)
        }
        let png = makePNG(width: w, height: h, bitDepth: 8, colorType: 2, rows: rows)
        let exact = w * h * 4
        let img = try PNGReader.decode(bytes: png, file: "ok.png", maxDecodedBytes: exact)
        XCTAssertEqual(img.rgb.count, w * h * 3)
        let at = (3 * w + 5) * 3  // pixel x 5, y 3
        XCTAssertEqual(Array(img.rgb[at..<(at + 3)]), [5, 3, 7] as [UInt8])
        expectDataError(try PNGReader.decode(bytes: png, file: "small-limit.png", maxDecodedBytes: exact - 1),
                        contains: ["small-limit.png", "20x10", "3 channels", "\(exact) bytes", "limit of \(exact - 1) bytes"])
        // 16-bit samples count twice.
        XCTAssertEqual(PNGReader.decodedByteCount(width: w, height: h, bitDepth: 16), exact * 2)
        XCTAssertNil(PNGReader.decodedByteCount(width: Int.max / 2, height: 3, bitDepth: 8))
        let dir = makeTempDir()
        writeBytes(png, dir + "/a.png")
        expectDataError(try Dataset.load(path: dir, options: DatasetOptions(maxImageBytes: 100)), contains: ["a.png", "limit of 100 bytes"])
        XCTAssertEqual(try Dataset.load(path: dir).samples.shape, [1, 3, h, w])
    }

    // MARK: Channels-last arrays (item 10)

    /// Float32 `.npy` bytes of `shape` holding 0, 1, 2, ... in row-major order.
    private func countingNPY(_ shape: [Int]) -> (bytes: [UInt8], values: [Float]) {
        let values = (0..<shape.reduce(1, *)).map { Float($0) }
        return (npyFile(descr: "<f4", shape: shape, data: littleEndianBytes(values.map(\.bitPattern))), values)
    }

    func testChannelsLastArrayIsDetectedAndTransposed() throws {
        let dir = makeTempDir()
        for c in [1, 3, 4] {
            let shape = [2, 6, 5, c]
            let (bytes, x) = countingNPY(shape)
            let path = dir + "/nhwc\(c).npy"
            writeBytes(bytes, path)
            let d = try Dataset.load(path: path)
            XCTAssertEqual(d.samples.shape, [2, c, 6, 5])
            let y = d.samples.scalars
            for n in 0..<2 { for h in 0..<6 { for w in 0..<5 { for k in 0..<c {
                XCTAssertEqual(y[((n * c + k) * 6 + h) * 5 + w], x[((n * 6 + h) * 5 + w) * c + k])
            } } } }
            XCTAssertEqual(d.notes.count, 1)
            XCTAssertTrue(d.notes[0].contains("channels-last") && d.notes[0].contains("[2, 6, 5, \(c)]"), d.notes[0])
            // The override keeps the stored order.
            let kept = try Dataset.load(path: path, options: DatasetOptions(layout: .nchw))
            XCTAssertEqual(kept.samples.shape, shape)
            XCTAssertEqual(kept.samples.scalars, x)
            XCTAssertEqual(kept.notes, [])
        }
    }

    func testLayoutDetectionLeavesChannelsFirstAlone() throws {
        XCTAssertEqual(ArrayLayout.detect(shape: [10, 28, 28, 1]), .nhwc)
        XCTAssertEqual(ArrayLayout.detect(shape: [10, 32, 32, 3]), .nhwc)
        XCTAssertEqual(ArrayLayout.detect(shape: [10, 3, 32, 32]), .nchw)
        XCTAssertEqual(ArrayLayout.detect(shape: [10, 1, 28, 28]), .nchw)
        XCTAssertEqual(ArrayLayout.detect(shape: [10, 4, 4, 3]), .nchw)  // H, W not > 4
        XCTAssertEqual(ArrayLayout.detect(shape: [10, 8, 8, 2]), .nchw)  // 2 channels is not an image layout
        XCTAssertNil(ArrayLayout.detect(shape: [10, 28, 28]))
        let dir = makeTempDir()
        let (bytes, x) = countingNPY([2, 3, 6, 5])
        writeBytes(bytes, dir + "/nchw.npy")
        let d = try Dataset.load(path: dir + "/nchw.npy")
        XCTAssertEqual(d.samples.shape, [2, 3, 6, 5])
        XCTAssertEqual(d.samples.scalars, x)
        XCTAssertEqual(d.notes, [])
        // Forcing nhwc transposes even an undetectable shape; forcing a layout on 2-d data is an error.
        let forced = try Dataset.load(path: dir + "/nchw.npy", options: DatasetOptions(layout: .nhwc))
        XCTAssertEqual(forced.samples.shape, [2, 5, 3, 6])
        XCTAssertEqual(forced.samples.scalars[1], x[5])  // out[0, 0, 0, 1] = in[0, 0, 1, 0]
        let (flat, _) = countingNPY([4, 3])
        writeBytes(flat, dir + "/flat.npy")
        expectDataError(try Dataset.load(path: dir + "/flat.npy", options: DatasetOptions(layout: .nhwc)),
                        contains: ["flat.npy", "layout nhwc", "[4, 3]"])
    }

    // MARK: Declared and integer ranges (item 12)

    func testValuesOutsideTheDeclaredRangeAreAnError() throws {
        let dir = makeTempDir()
        let values: [Float] = (0...16).map(Float.init)
        writeBytes(npyFile(descr: "<f4", shape: [17, 1], data: littleEndianBytes(values.map(\.bitPattern))), dir + "/digits.npy")
        expectDataError(try Dataset.load(path: dir + "/digits.npy", options: DatasetOptions(declaredRange: 0...1)),
                        contains: [dir + "/digits.npy", "values span 0.0...16.0", "declared range 0.0...1.0"])
        XCTAssertEqual(try Dataset.load(path: dir + "/digits.npy", options: DatasetOptions(declaredRange: 0...16)).count, 17)
        // The same for CSV text.
        writeBytes(Array("a,b\n0,16\n3,4\n".utf8), dir + "/t.csv")
        expectDataError(try Dataset.load(path: dir + "/t.csv", options: DatasetOptions(declaredRange: 0...1)),
                        contains: ["t.csv", "values span 0.0...16.0"])
    }

    func testWideIntegerDataOutsidePixelRangesNeedsADeclaredRange() throws {
        let dir = makeTempDir()
        // F07-like: 8-bit pixels gone wrong, stored as int64.
        let bad: [Int64] = [0, 1, 127, 128, 254, 300, 200, -5]
        writeBytes(npyFile(descr: "<i8", shape: [2, 4], data: littleEndianBytes(bad)), dir + "/i8.npy")
        expectDataError(try Dataset.load(path: dir + "/i8.npy"), contains: ["i8.npy", "int64 values span -5...300", "--data-range"])
        let declared = try Dataset.load(path: dir + "/i8.npy", options: DatasetOptions(declaredRange: -5...300))
        XCTAssertEqual(declared.samples.scalars, bad.map(Float.init))
        // 8-bit and 16-bit pixel values in wide types load as before.
        writeBytes(npyFile(descr: "<i8", shape: [2, 2], data: littleEndianBytes([0, 3, 255, 9] as [Int64])), dir + "/ok8.npy")
        XCTAssertEqual(try Dataset.load(path: dir + "/ok8.npy").samples.scalars, [0, 3, 255, 9])
        writeBytes(npyFile(descr: "<i4", shape: [2], data: littleEndianBytes([0, 60000] as [Int32])), dir + "/ok16.npy")
        XCTAssertEqual(try Dataset.load(path: dir + "/ok16.npy").samples.scalars, [0, 60000])
        // F07 itself (uint8) is unchanged.
        XCTAssertEqual(try Dataset.load(path: casePath("F07_uint8_2x4.npy")).samples.scalars, [0, 1, 127, 128, 254, 255, 200, 50])
    }

    // MARK: Label-first CSVs and class counts (item 11)

    func testHeaderNamedLabelColumnIsTheLabel() throws {
        let dir = makeTempDir()
        writeBytes(Array("label,pixel0,pixel1,pixel2,pixel3\n7,0,255,3,4\n2,9,8,7,6\n".utf8), dir + "/kaggle.csv")
        let d = try Dataset.load(path: dir + "/kaggle.csv")
        XCTAssertEqual(d.labels, [7, 2])
        XCTAssertEqual(d.samples.shape, [2, 4])
        XCTAssertEqual(d.samples.scalars, [0, 255, 3, 4, 9, 8, 7, 6])
        XCTAssertTrue(d.notes.first?.contains("'label'") ?? false, "\(d.notes)")
        XCTAssertEqual(try CSVReader.namedLabelColumn(path: dir + "/kaggle.csv"), .index(0))
        // Any case, any of the names, the first by preference; an explicit column wins.
        XCTAssertEqual(CSVReader.labelColumnIndex(header: ["a", " Class ", "b"]), 1)
        XCTAssertEqual(CSVReader.labelColumnIndex(header: ["y", "TARGET"]), 1)
        XCTAssertNil(CSVReader.labelColumnIndex(header: ["labels", "x"]))
        XCTAssertEqual(CSVReader.labelColumnIndex(header: ["a", "b", "Y"]), 2)
        XCTAssertNil(CSVReader.labelColumnIndex(header: ["x", "y"]))  // 2-d points
        let explicit = try Dataset.load(path: dir + "/kaggle.csv", options: DatasetOptions(labelColumn: .last))
        XCTAssertEqual(explicit.labels, [4, 6])
        // The reader alone does only what it is told.
        XCTAssertNil(try CSVReader.read(path: dir + "/kaggle.csv").labels)
        XCTAssertNil(try Dataset.load(path: dir + "/kaggle.csv", options: DatasetOptions(labelColumnFromHeader: false)).labels)
    }

    func testColumnNamedLikeALabelButNotClassIndicesIsAFeature() throws {
        let dir = makeTempDir()
        writeBytes(Array("u,y\n0.5,-1.25\n2,3\n".utf8), dir + "/points.csv")
        let d = try Dataset.load(path: dir + "/points.csv")
        XCTAssertNil(d.labels)
        XCTAssertEqual(d.samples.scalars, [0.5, -1.25, 2, 3])
        XCTAssertNil(try CSVReader.namedLabelColumn(path: dir + "/points.csv"))
        // A headerless or one-column file has no named label column.
        writeBytes(Array("1,2\n3,4\n".utf8), dir + "/plain.csv")
        XCTAssertNil(try CSVReader.namedLabelColumn(path: dir + "/plain.csv"))
        writeBytes(Array("label\n1\n2\n".utf8), dir + "/one.csv")
        XCTAssertNil(try Dataset.load(path: dir + "/one.csv").labels)
    }

    func testAClassifierNeedsTwoClasses() throws {
        let e = expectDataError(try checkClassCount([3, 3, 3], source: "one.csv"), contains: ["one.csv", "at least 2 classes", "only class 3"])
        XCTAssertEqual(e?.file, "one.csv")
        expectDataError(try checkClassCount(nil, source: "none.csv"), contains: ["no labels"])
        XCTAssertNoThrow(try checkClassCount([0, 1, 1], source: "two.csv"))
        let d = Dataset(samples: Tensor(shape: [2, 1], scalars: [0, 1]), labels: [5, 5], source: "s.npy", format: .npy, labelsSource: "l.npy")
        expectDataError(try d.checkClassCount(), contains: ["l.npy", "only class 5"])
    }
}
