@testable import ConjureMetrics
@testable import ConjureData
import ConjureTensor
import Foundation
import XCTest

/// `conjure metrics fid|kid|pr|dc` unit checks (issue 15, item 13).
final class UnitsTests: XCTestCase {
    private func array(_ shape: [Int], _ values: [Float], _ dtype: SourceDType) -> LoadedArray {
        LoadedArray(tensor: Tensor(shape: shape, scalars: values), dtype: dtype, fortranOrder: false, formatVersion: "1.0")
    }

    /// `count` values spread evenly over `range`.
    private func ramp(_ count: Int, _ range: ClosedRange<Float>) -> [Float] {
        (0..<count).map { range.lowerBound + (range.upperBound - range.lowerBound) * Float($0) / Float(count - 1) }
    }

    func testImagesInDifferentUnitsAreRefused() throws {
        let tanh = array([2, 1, 4, 4], ramp(32, -1...1), .float32)
        let pixels = array([2, 1, 4, 4], ramp(32, 0...255).map { $0.rounded() }, .uint8)
        let unit = array([2, 1, 4, 4], ramp(32, 0...1), .float32)
        XCTAssertThrowsError(try Metrics.checkComparableUnits(tanh, file: "real.npy", pixels, file: "fake.npy")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.contains("fake.npy") && text.contains("[0, 255]") && text.contains("real.npy is in [-1, 1]"), text)
        }
        XCTAssertThrowsError(try Metrics.checkComparableUnits(pixels, file: "real.npy", tanh, file: "fake.npy")) { e in
            XCTAssertTrue("\(e)".contains("fake.npy") && "\(e)".contains("[0, 255]"), "\(e)")
        }
        XCTAssertThrowsError(try Metrics.checkComparableUnits(pixels, file: "real.npy", unit, file: "fake.npy"))
        XCTAssertThrowsError(try Metrics.checkComparableUnits(unit, file: "real.npy", pixels, file: "fake.npy"))
        // Same units pass: uint8 against 0..255 floats, [-1, 1] against a narrower [-0.9, 0.8].
        let floatPixels = array([2, 16], ramp(32, 3...250), .float32)  // flattened images
        XCTAssertNoThrow(try Metrics.checkComparableUnits(pixels, file: "real.npy", floatPixels, file: "fake.npy"))
        XCTAssertNoThrow(try Metrics.checkComparableUnits(tanh, file: "real.npy", array([2, 1, 4, 4], ramp(32, -0.9...0.8), .float32), file: "fake.npy"))
        // A constant array (a collapsed generator) is legitimate.
        XCTAssertNoThrow(try Metrics.checkComparableUnits(pixels, file: "real.npy", array([2, 1, 4, 4], [Float](repeating: 0.5, count: 32), .float32), file: "fake.npy"))
        XCTAssertEqual(Metrics.imageUnits(of: tanh.tensor, dtype: .float32), -1...1)
        XCTAssertEqual(Metrics.imageUnits(of: pixels.tensor, dtype: .uint8), 0...255)
        XCTAssertEqual(Metrics.imageUnits(of: Tensor(shape: [2], scalars: [0, 300]), dtype: .float32), 0...65535)
    }

    func testFeatureArraysAreTakenAsTheyAre() throws {
        let a = array([4, 2], ramp(8, -1...1), .float32)
        let b = array([4, 2], ramp(8, 0...1000), .float32)
        XCTAssertNoThrow(try Metrics.checkComparableUnits(a, file: "a.npy", b, file: "b.npy"))
    }

    func testFilesAreCheckedFromDisk() throws {
        let dir = NSTemporaryDirectory() + "conjure-units-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try NPYWriter.write(Tensor(shape: [2, 1, 4, 4], scalars: ramp(32, -1...1)), to: dir + "/real.npy")
        try NPYWriter.write(Tensor(shape: [2, 1, 4, 4], scalars: ramp(32, 0...255)), to: dir + "/fake.npy")
        XCTAssertThrowsError(try Metrics.checkComparableUnits(aPath: dir + "/real.npy", bPath: dir + "/fake.npy"))
        XCTAssertNoThrow(try Metrics.checkComparableUnits(aPath: dir + "/real.npy", bPath: dir + "/real.npy"))
    }
}
