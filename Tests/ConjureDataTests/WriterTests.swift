import CSPNG
import Foundation
import XCTest
@testable import ConjureData

/// Tests of the output side of ConjureData: AtomicFile, PNGWriter, ImageGrid, NPYWriter.
/// Golden inputs come from ../shared/cases (see its README: F13, F15).
final class WriterTests: XCTestCase {

    private var directory: String = ""

    override func setUpWithError() throws {
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("conjure-writer-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// Files in the test directory (including hidden temporaries), sorted.
    private func listing(_ dir: String? = nil) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir ?? directory).sorted()
    }

    // MARK: Pixel mapping

    func testPixelMappingIsCanonicalRoundHalfUp() {
        // p = floor(clamp((x+1)/2, 0, 1) * 255 + 0.5)
        let cases: [(Float, UInt8)] = [
            (-1.3, 0), (-1, 0), (-0.5, 64), (0, 128), (0.5, 191), (1, 255), (1.2, 255),
            (.nan, 0), (-.nan, 0), (.infinity, 255), (-.infinity, 0),
            // 1/255 steps: x = 2k/255 - 1 maps back to k exactly.
            (2 * 40 / 255 - 1, 40), (2 * 200 / 255 - 1, 200),
            // Either side of the rounding midpoint between 0 and 1 (t*255 = 0.5).
            (-1 + 1.2 / 255, 1), (-1 + 0.8 / 255, 0),
        ]
        for (x, expected) in cases {
            XCTAssertEqual(ImageGrid.pixel(x), expected, "pixel(\(x))")
        }
        // General range [low, high].
        XCTAssertEqual(ImageGrid.pixel(0.5, low: 0, high: 1), 128)
        XCTAssertEqual(ImageGrid.pixel(0.25, low: 0, high: 1), 64)
        XCTAssertEqual(ImageGrid.pixel(127, low: 0, high: 255), 127)
        XCTAssertEqual(ImageGrid.pixel(300, low: 0, high: 255), 255)
        XCTAssertEqual(ImageGrid.pixel(-3, low: 0, high: 255), 0)
    }

    // MARK: F13: tanh-range image to PNG

    func testF13TanhRangeImageWritesCanonicalPixels() throws {
        let images = try loadCase("F13_tanh_range_1x1x2x3_f4.npy")
        XCTAssertEqual(images.shape, [1, 1, 2, 3])

        // A single image is saved unpadded by default: exactly the 3×2 picture of the README.
        let out = path("f13.png")
        try ImageGrid.writePNG(images: images, path: out)
        let png = try decodePNG(out)
        XCTAssertEqual(png.width, 3)
        XCTAssertEqual(png.height, 2)
        XCTAssertEqual(png.colorType, UInt8(SPNG_COLOR_TYPE_GRAYSCALE.rawValue))
        XCTAssertEqual(png.bitDepth, 8)
        XCTAssertEqual(png.pixels, [0, 0, 64, 128, 191, 255])
        // None of the wild bugs of the README.
        XCTAssertNotEqual(png.pixels, [0, 0, 0, 0, 128, 255])
        XCTAssertNotEqual(png.pixels, [218, 0, 63, 127, 191, 24])

        // With an explicit padding of 2 the image sits inside a pad-coloured border.
        let grid = ImageGrid.make(images: images, padding: 2)
        XCTAssertEqual(grid.columns, 1)
        XCTAssertEqual(grid.rows, 1)
        XCTAssertEqual([grid.channels, grid.height, grid.width], [1, 6, 7])
        var expected = [UInt8](repeating: 0, count: 6 * 7)
        let inner: [UInt8] = [0, 0, 64, 128, 191, 255]
        for y in 0 ..< 2 { for x in 0 ..< 3 { expected[(2 + y) * 7 + 2 + x] = inner[y * 3 + x] } }
        XCTAssertEqual(grid.pixels, expected)
    }

    // MARK: F15: grid layout

    func testF15SevenTilesGridIs17By14RowMajor() throws {
        let images = try loadCase("F15_batch7_1x2x3_f4.npy")
        XCTAssertEqual(images.shape, [7, 1, 2, 3])
        let grid = ImageGrid.make(images: images, padValue: 0)
        XCTAssertEqual(grid.columns, 3)
        XCTAssertEqual(grid.rows, 3)
        XCTAssertEqual(grid.width, 17)
        XCTAssertEqual(grid.height, 14)

        // Independent layout: tile i is constant 40*i at row i/3, column i%3.
        let expected = referenceGrid(n: 7, columns: 3, h: 2, w: 3, padding: 2, pad: 0) { i in UInt8(40 * i) }
        XCTAssertEqual(grid.pixels, expected)

        let out = path("f15-7.png")
        try ImageGrid.writePNG(images: images, path: out)
        let png = try decodePNG(out)
        XCTAssertEqual([png.width, png.height], [17, 14])
        XCTAssertEqual(png.pixels, expected)
        // Spot checks: tile 6 (value 240) at row 2, column 0; cell 7 and 8 are empty.
        XCTAssertEqual(png.pixels[(2 + 2 * 4) * 17 + 2], 240)
        XCTAssertEqual(png.pixels[(2 + 2 * 4) * 17 + 2 + 5], 0)
    }

    func testF15ThirtyTwoTilesGridIsSixBySix() throws {
        let images = try loadCase("F15_batch32_1x2x2_f4.npy")
        XCTAssertEqual(images.shape, [32, 1, 2, 2])
        let grid = ImageGrid.make(images: images, padValue: 77)
        XCTAssertEqual(grid.columns, 6)
        XCTAssertEqual(grid.rows, 6)   // never 5 rows (30 cells for 32 images)
        XCTAssertEqual(grid.width, 6 * 2 + 7 * 2)
        XCTAssertEqual(grid.height, 6 * 2 + 7 * 2)
        let expected = referenceGrid(n: 32, columns: 6, h: 2, w: 2, padding: 2, pad: 77) { i in UInt8(32 * (i % 8)) }
        XCTAssertEqual(grid.pixels, expected)
        // The 4 empty cells (indices 32..35, last row, columns 2..5) are pad-coloured.
        for cell in 32 ..< 36 {
            let top = 2 + (cell / 6) * 4, left = 2 + (cell % 6) * 4
            XCTAssertEqual(grid.pixels[top * grid.width + left], 77, "empty cell \(cell)")
        }
    }

    func testDefaultColumnsIsCeilSqrt() {
        let expected = [1: 1, 2: 2, 3: 2, 4: 2, 5: 3, 7: 3, 9: 3, 10: 4, 16: 4, 17: 5, 32: 6, 36: 6, 37: 7, 64: 8, 65: 9]
        for (n, c) in expected {
            XCTAssertEqual(ImageGrid.defaultColumns(n), c, "ceil(sqrt(\(n)))")
        }
    }

    func testExplicitColumnsLeaveEmptyCellsAndRGBIsPlanar() throws {
        // Two RGB 1×2 images, 4 columns -> one row with two empty cells, padding 1, pad 9.
        // Image 0: R = [-1, 1], G = [0, 0], B = [1, -1]; image 1: all 0.5.
        let scalars: [Float] = [-1, 1, 0, 0, 1, -1] + [Float](repeating: 0.5, count: 6)
        let images = Tensor(shape: [2, 3, 1, 2], scalars: scalars)
        let grid = ImageGrid.make(images: images, columns: 4, padding: 1, padValue: 9)
        XCTAssertEqual([grid.channels, grid.height, grid.width], [3, 3, 4 * 2 + 5])
        XCTAssertEqual(grid.rows, 1)
        let w = grid.width
        func at(_ c: Int, _ y: Int, _ x: Int) -> UInt8 { grid.pixels[(c * grid.height + y) * w + x] }
        XCTAssertEqual([at(0, 1, 1), at(0, 1, 2)], [0, 255])
        XCTAssertEqual([at(1, 1, 1), at(1, 1, 2)], [128, 128])
        XCTAssertEqual([at(2, 1, 1), at(2, 1, 2)], [255, 0])
        XCTAssertEqual([at(0, 1, 4), at(1, 1, 5), at(2, 1, 5)], [191, 191, 191])
        XCTAssertEqual(at(0, 1, 7), 9)   // empty cell 2
        XCTAssertEqual(at(2, 1, 11), 9)  // empty cell 3
        XCTAssertEqual(at(1, 0, 1), 9)   // top border

        // Written as an RGB PNG, interleaved per pixel.
        let out = path("rgb.png")
        try ImageGrid.writePNG(images: images, path: out, columns: 4, padding: 1, padValue: 9)
        let png = try decodePNG(out)
        XCTAssertEqual(png.colorType, UInt8(SPNG_COLOR_TYPE_TRUECOLOR.rawValue))
        XCTAssertEqual([png.width, png.height], [13, 3])
        let row1 = Array(png.pixels[(1 * 13) * 3 ..< (2 * 13) * 3])
        XCTAssertEqual(Array(row1[3 ..< 9]), [0, 128, 255, 255, 128, 0])
        XCTAssertEqual(Array(row1[12 ..< 18]), [191, 191, 191, 191, 191, 191])
    }

    func testGridWithCustomRangeAndNaN() {
        let images = Tensor(shape: [1, 1, 1, 4], scalars: [0, 0.5, 1, .nan])
        let grid = ImageGrid.make(images: images, padding: 0, range: (0, 1))
        XCTAssertEqual(grid.pixels, [0, 128, 255, 0])
    }

    func testWritePNGRejectsBadInputWithoutWriting() throws {
        let out = path("bad.png")
        let cases: [(Tensor, Int?, Int, String)] = [
            (Tensor(shape: [0, 1, 2, 2], scalars: []), nil, 2, "no images"),
            (Tensor(shape: [1, 5, 2, 2], scalars: [Float](repeating: 0, count: 20)), nil, 2, "5 channels"),
            (Tensor(shape: [4, 4], scalars: [Float](repeating: 0, count: 16)), nil, 2, "[N, C, H, W]"),
            (Tensor(shape: [1, 1, 2, 2], scalars: [0, 0, 0, 0]), 0, 2, "columns"),
            (Tensor(shape: [1, 1, 2, 2], scalars: [0, 0, 0, 0]), nil, -1, "padding"),
        ]
        for (images, columns, padding, fragment) in cases {
            XCTAssertThrowsError(try ImageGrid.writePNG(images: images, path: out, columns: columns, padding: padding)) { error in
                guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)") }
                XCTAssertEqual(e.file, out)
                XCTAssertTrue(e.problem.contains(fragment), "\(e.problem) should mention \(fragment)")
            }
        }
        XCTAssertEqual(try listing(), [])
    }

    // MARK: PNGWriter

    func testPNGWriterGrayAndRGBRoundTripThroughLibspng() throws {
        // Gray [H, W] = [2, 3].
        let gray: [UInt8] = [0, 1, 2, 253, 254, 255]
        let grayPath = path("gray.png")
        try PNGWriter.write(pixels: gray, shape: [2, 3], to: grayPath)
        let g = try decodePNG(grayPath)
        XCTAssertEqual([g.width, g.height, Int(g.bitDepth)], [3, 2, 8])
        XCTAssertEqual(g.colorType, UInt8(SPNG_COLOR_TYPE_GRAYSCALE.rawValue))
        XCTAssertEqual(g.pixels, gray)
        // A file starts with the PNG signature (PNG spec §5.2).
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: grayPath)))
        XCTAssertEqual(Array(bytes.prefix(8)), [137, 80, 78, 71, 13, 10, 26, 10])

        // RGB planar [3, 2, 2] -> interleaved RGB.
        let planar: [UInt8] = [10, 11, 12, 13, /* G */ 20, 21, 22, 23, /* B */ 30, 31, 32, 33]
        let rgb = try decodePNG(bytes: PNGWriter.encode(pixels: planar, shape: [3, 2, 2]))
        XCTAssertEqual(rgb.colorType, UInt8(SPNG_COLOR_TYPE_TRUECOLOR.rawValue))
        XCTAssertEqual([rgb.width, rgb.height], [2, 2])
        XCTAssertEqual(rgb.pixels, [10, 20, 30, 11, 21, 31, 12, 22, 32, 13, 23, 33])

        // [1, H, W] is gray too; RGBA planar -> interleaved RGBA.
        let one = try decodePNG(bytes: PNGWriter.encode(pixels: [5, 6], shape: [1, 1, 2]))
        XCTAssertEqual(one.colorType, UInt8(SPNG_COLOR_TYPE_GRAYSCALE.rawValue))
        XCTAssertEqual(one.pixels, [5, 6])
        let rgba = try decodePNG(bytes: PNGWriter.encode(pixels: [1, 2, 3, 4], shape: [4, 1, 1]))
        XCTAssertEqual(rgba.colorType, UInt8(SPNG_COLOR_TYPE_TRUECOLOR_ALPHA.rawValue))
        XCTAssertEqual(rgba.pixels, [1, 2, 3, 4])
    }

    func testPNGWriterRejectsInvalidShapes() throws {
        let out = path("x.png")
        let cases: [([UInt8], [Int])] = [
            ([0, 0, 0, 0, 0], [5, 1, 1]),   // 5 channels
            ([0, 0, 0], [2, 2]),             // count mismatch
            ([], [0, 3]),                    // empty image
            ([0], [1, 1, 1, 1]),             // rank 4
        ]
        for (pixels, shape) in cases {
            XCTAssertThrowsError(try PNGWriter.write(pixels: pixels, shape: shape, to: out)) { error in
                XCTAssertEqual((error as? DataError)?.file, out, "shape \(shape)")
            }
        }
        XCTAssertEqual(try listing(), [])
    }

    // MARK: NPYWriter

    func testNPYWriterIsByteIdenticalToNumPySave() throws {
        // F13 was written by numpy.save; the same array must give the same bytes.
        let casePath = try casesDirectory() + "/F13_tanh_range_1x1x2x3_f4.npy"
        let numpyBytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: casePath)))
        let t = Tensor(shape: [1, 1, 2, 3], scalars: [-1.3, -1, -0.5, 0, 0.5, 1.2])
        XCTAssertEqual(NPYWriter.encode(t), numpyBytes)

        // Header text of numpy 2.x `np.save` for other ranks (checked against numpy 2.4).
        let headers: [([Int], String)] = [
            ([], "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"),
            ([6], "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }"),
            ([0, 3], "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }"),
            ([3, 4], "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"),
        ]
        for (shape, dict) in headers {
            let h = NPYWriter.header(shape: shape)
            XCTAssertEqual(h.count, 128, "shape \(shape)")
            XCTAssertEqual(Array(h.prefix(10)), [0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, 118, 0])
            let text = String(decoding: h[10...], as: UTF8.self)
            XCTAssertTrue(text.hasPrefix(dict), text)
            XCTAssertTrue(text.hasSuffix(" \n"))
            XCTAssertEqual(text.trimmingCharacters(in: .whitespacesAndNewlines), dict)
        }
        // A long shape still aligns the data to 64 bytes.
        let long = NPYWriter.header(shape: [Int](repeating: 123456, count: 20))
        XCTAssertEqual(long.count % 64, 0)
        XCTAssertEqual(long.last, 0x0A)
    }

    func testNPYWriteRoundTripsThroughIndependentParser() throws {
        let values: [Float] = [0, -0.0, 1.5, -2.25, .greatestFiniteMagnitude, .leastNonzeroMagnitude,
                               .infinity, 3.14159274, 1e-30, 65504, -7, 42]
        let t = Tensor(shape: [2, 3, 2], scalars: values)
        let out = path("t.npy")
        try NPYWriter.write(t, to: out)
        let back = try parseNPYF4(path: out)
        XCTAssertEqual(back.shape, [2, 3, 2])
        XCTAssertEqual(back.scalars.map(\.bitPattern), values.map(\.bitPattern))

        // Scalar and empty arrays.
        try NPYWriter.write(Tensor(shape: [], scalars: [5]), to: out)
        let scalar = try parseNPYF4(path: out)
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.scalars, [5])
        try NPYWriter.write(Tensor(shape: [0, 3], scalars: []), to: out)
        let empty = try parseNPYF4(path: out)
        XCTAssertEqual(empty.shape, [0, 3])
        XCTAssertEqual(empty.scalars, [])
        XCTAssertEqual(try listing(), ["t.npy"])
    }

    // MARK: AtomicFile

    func testAtomicWriteCreatesAndReplacesWithoutLeftovers() throws {
        let out = path("file.bin")
        try AtomicFile.write([1, 2, 3], to: out)
        XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: out))), [1, 2, 3])
        try AtomicFile.write(Data([9, 8]), to: out)
        XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: out))), [9, 8])
        try AtomicFile.write(to: out) { w in
            try w.write([1])
            try w.write([2, 3, 4])
            XCTAssertEqual(w.bytesWritten, 4)
        }
        XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: out))), [1, 2, 3, 4])
        XCTAssertEqual(try listing(), ["file.bin"])   // no .file.bin.tmp-* left behind
    }

    /// A temporary file left by a killed writer of the same destination (its PID gone) is
    /// removed by the next write; a live writer's (this process's PID), another destination's,
    /// a directory of that name and a file not of the `.NAME.tmp-PID-HEX` form are kept.
    func testAtomicWriteRemovesTemporariesOfKilledWritersOnly() throws {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        let dead = child.processIdentifier
        XCTAssertEqual(kill(dead, 0), -1, "the exited child's PID should be free")
        let stale = ".m.onnx.tmp-\(dead)-a1e12752985fa866"
        let live = ".m.onnx.tmp-\(getpid())-0123abcd"
        let other = ".n.onnx.tmp-\(dead)-beef"
        let odd = ".m.onnx.tmp-\(dead)-notes.txt"
        for f in [stale, live, other, odd] { try Data([7]).write(to: URL(fileURLWithPath: path(f))) }
        try FileManager.default.createDirectory(atPath: path(".m.onnx.tmp-\(dead)-dead"), withIntermediateDirectories: false)
        try AtomicFile.write([1, 2], to: path("m.onnx"))
        XCTAssertEqual(try listing(), [".m.onnx.tmp-\(dead)-dead", live, odd, other, "m.onnx"].sorted())
    }

    func testAtomicWriteIntoMissingDirectoryThrowsNamingDestination() throws {
        let out = path("missing/sub/file.bin")
        XCTAssertThrowsError(try AtomicFile.write([1], to: out)) { error in
            guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)") }
            XCTAssertEqual(e.file, out)
            XCTAssertTrue(e.problem.contains("temporary file"), e.problem)
        }
        XCTAssertEqual(try listing(), [])

        // With createDirectories the same write succeeds.
        try AtomicFile.write([7], to: out, createDirectories: true)
        XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: out))), [7])
        XCTAssertEqual(try listing(path("missing/sub")), ["file.bin"])
    }

    func testAtomicWriteOverDirectoryFailsAndRemovesTemporary() throws {
        let out = path("adir")
        try FileManager.default.createDirectory(atPath: out + "/inner", withIntermediateDirectories: true)
        XCTAssertThrowsError(try AtomicFile.write([1, 2], to: out)) { error in
            guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)") }
            XCTAssertEqual(e.file, out)
            XCTAssertTrue(e.problem.contains("is a directory"), e.problem)
        }
        XCTAssertEqual(try listing(), ["adir"])
        XCTAssertEqual(try listing(out), ["inner"])
    }

    /// A symbolic link is written through (its target replaced, the link kept); a FIFO is refused.
    func testAtomicWriteFollowsSymlinksAndRefusesSpecialFiles() throws {
        let target = path("target.bin"), link = path("link.bin")
        try AtomicFile.write([1], to: target)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        try AtomicFile.write([2, 3], to: link)
        XCTAssertEqual(try FileManager.default.destinationOfSymbolicLink(atPath: link), target)
        XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: target))), [2, 3])
        let fifo = path("fifo")
        XCTAssertEqual(mkfifo(fifo, 0o644), 0)
        XCTAssertThrowsError(try AtomicFile.write([1], to: fifo)) { XCTAssert("\($0)".contains("not a regular file"), "\($0)") }
    }

    func testAtomicWriteKeepsOldFileWhenBodyThrows() throws {
        struct Boom: Error {}
        let out = path("keep.bin")
        try AtomicFile.write([1, 2, 3], to: out)
        XCTAssertThrowsError(try AtomicFile.write(to: out) { w in
            try w.write([9, 9, 9, 9])
            throw Boom()
        }) { error in XCTAssertTrue(error is Boom) }
        XCTAssertEqual(try [UInt8](Data(contentsOf: URL(fileURLWithPath: out))), [1, 2, 3])
        XCTAssertEqual(try listing(), ["keep.bin"])
    }

    func testCreateParentDirectories() throws {
        let out = path("a/b/c/file.png")
        try AtomicFile.createParentDirectories(of: out)
        var isDir: ObjCBool = false
        XCTAssertTrue(FileManager.default.fileExists(atPath: path("a/b/c"), isDirectory: &isDir) && isDir.boolValue)
        try AtomicFile.createParentDirectories(of: out)   // idempotent

        // A regular file in the way is an error naming the destination.
        try AtomicFile.write([0], to: path("plain"))
        let blocked = path("plain/x/file.png")
        XCTAssertThrowsError(try AtomicFile.createParentDirectories(of: blocked)) { error in
            XCTAssertEqual((error as? DataError)?.file, blocked)
        }
        // Grids can create their directory (run/samples/step-000001.png).
        let sample = path("run/samples/step-000001.png")
        try ImageGrid.writePNG(images: Tensor(shape: [1, 1, 1, 1], scalars: [0]), path: sample, padding: 2,
                               createDirectories: true)
        XCTAssertEqual(try decodePNG(sample).pixels, [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    // MARK: Helpers

    /// Expected planar gray grid built with plain loops, independent of ImageGrid.make.
    private func referenceGrid(n: Int, columns: Int, h: Int, w: Int, padding: Int, pad: UInt8,
                               value: (Int) -> UInt8) -> [UInt8] {
        let rows = (n + columns - 1) / columns
        let width = columns * w + (columns + 1) * padding
        let height = rows * h + (rows + 1) * padding
        var out = [UInt8](repeating: pad, count: width * height)
        for y in 0 ..< height {
            for x in 0 ..< width {
                let cy = y - padding, cx = x - padding
                guard cy >= 0, cx >= 0, cy % (h + padding) < h, cx % (w + padding) < w else { continue }
                let (r, c) = (cy / (h + padding), cx / (w + padding))
                guard r < rows, c < columns else { continue }
                let i = r * columns + c
                if i < n { out[y * width + x] = value(i) }
            }
        }
        return out
    }
}

// MARK: - Test-only helpers (file-private: the readers are written elsewhere)

/// ../shared/cases (see `sharedDir` in ReaderTests.swift).
private func casesDirectory() throws -> String {
    let dir = sharedDir + "/cases"
    guard FileManager.default.fileExists(atPath: dir) else {
        throw DataError(file: dir, problem: "the fault cases of ../shared/cases are missing; these tests need them")
    }
    return dir
}

private func loadCase(_ name: String) throws -> Tensor {
    try parseNPYF4(path: casesDirectory() + "/" + name)
}

private struct TestParseError: Error, CustomStringConvertible { var description: String }

/// A minimal `.npy` parser for tests: version 1.0, `'<f4'`, C order only.
private func parseNPYF4(path: String) throws -> Tensor {
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
    guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1 ..< 6]) == Array("NUMPY".utf8), bytes[6] == 1 else {
        throw TestParseError(description: "\(path): not a v1 .npy file")
    }
    let headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
    let header = String(decoding: bytes[10 ..< 10 + headerLength], as: UTF8.self)
    guard header.contains("'descr': '<f4'"), header.contains("'fortran_order': False"),
          let open = header.range(of: "'shape': ("), let close = header[open.upperBound...].firstIndex(of: ")") else {
        throw TestParseError(description: "\(path): unsupported header \(header)")
    }
    let shape = header[open.upperBound ..< close].split(separator: ",")
        .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map { Int($0)! }
    let count = shape.reduce(1, *)
    let start = 10 + headerLength
    guard bytes.count == start + 4 * count else {
        throw TestParseError(description: "\(path): \(bytes.count - start) data bytes for \(count) floats")
    }
    let scalars = (0 ..< count).map { i -> Float in
        let o = start + 4 * i
        let bits = UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        return Float(bitPattern: bits)
    }
    return Tensor(shape: shape, scalars: scalars)
}

private struct DecodedPNG {
    var width: Int
    var height: Int
    var bitDepth: UInt8
    var colorType: UInt8
    /// Interleaved samples exactly as stored (SPNG_FMT_PNG).
    var pixels: [UInt8]
}

private func decodePNG(_ path: String) throws -> DecodedPNG {
    try decodePNG(bytes: [UInt8](Data(contentsOf: URL(fileURLWithPath: path))))
}

/// Decodes a PNG with libspng, independently of the writer's code path.
private func decodePNG(bytes: [UInt8]) throws -> DecodedPNG {
    guard let ctx = spng_ctx_new(0) else { throw TestParseError(description: "spng_ctx_new failed") }
    defer { spng_ctx_free(ctx) }
    return try bytes.withUnsafeBytes { buf -> DecodedPNG in
        func check(_ rc: Int32) throws {
            if rc != 0 { throw TestParseError(description: String(cString: spng_strerror(rc))) }
        }
        try check(spng_set_png_buffer(ctx, buf.baseAddress, buf.count))
        var ihdr = spng_ihdr()
        try check(spng_get_ihdr(ctx, &ihdr))
        let fmt = Int32(SPNG_FMT_PNG.rawValue)
        var size = 0
        try check(spng_decoded_image_size(ctx, fmt, &size))
        var out = [UInt8](repeating: 0, count: size)
        try out.withUnsafeMutableBytes { o in try check(spng_decode_image(ctx, o.baseAddress, o.count, fmt, 0)) }
        return DecodedPNG(width: Int(ihdr.width), height: Int(ihdr.height), bitDepth: ihdr.bit_depth,
                          colorType: ihdr.color_type, pixels: out)
    }
}
