import ConjureData
import ConjureTensor
import XCTest

/// ``TrainingRows``: 8-bit data kept as bytes gives, batch by batch, exactly the bits of
/// normalising the whole set first; anything else is kept as normalised Float32.
final class TrainingRowsTests: XCTestCase {
    func testByteRowsGatherTheSameBitsAsNormalisingFirst() {
        var rng = RandomGenerator(seed: 3)
        let n = 37, d = 29
        // 8-bit values, with 0 and 255 present and some values never used.
        var raw = (0..<(n * d)).map { _ in Float(rng.next() % 200) + 20 }
        raw[5] = 0; raw[77] = 255
        let x = Tensor(shape: [n, d], scalars: raw)
        let kinds: [NormalizationStats] = [
            NormalizationStats.fit(.symmetric, data: x), NormalizationStats.fit(.unit, data: x), NormalizationStats.fit(.zscore, data: x),
            NormalizationStats(kind: .symmetric, low: 0, high: 255),
        ]
        let idx = (0..<50).map { _ in Int(rng.next() % UInt64(n)) }
        for stats in kinds {
            let rows = TrainingRows(raw: x, normalization: stats)
            XCTAssertTrue(rows.isCompact, "\(stats)")
            XCTAssertEqual(rows.shape, [n, d])
            let whole = stats.apply(x)
            XCTAssertEqual(rows.gathered(rows: idx).scalars.map(\.bitPattern), whole.gathered(rows: idx).scalars.map(\.bitPattern), "\(stats)")
            XCTAssertEqual(rows.tensor.scalars.map(\.bitPattern), whole.scalars.map(\.bitPattern), "\(stats)")
            XCTAssertEqual(rows.valueRange, whole.minValue...whole.maxValue, "\(stats)")
        }
    }

    func testOtherDataStaysFloat() {
        let cases: [[Float]] = [[0, 1.5, 2, 3], [-1, 0, 2, 3], [0, 256, 2, 3], [0.25, 0.5, 0.75, 1], [-0.0, 1, 2, 3]]
        for raw in cases {
            let x = Tensor(shape: [2, 2], scalars: raw)
            let stats = NormalizationStats.fit(.symmetric, data: x)
            let rows = TrainingRows(raw: x, normalization: stats)
            XCTAssertFalse(rows.isCompact, "\(raw)")
            XCTAssertEqual(rows.gathered(rows: [1, 0, 1]).scalars.map(\.bitPattern), stats.apply(x).gathered(rows: [1, 0, 1]).scalars.map(\.bitPattern))
            XCTAssertEqual(rows.valueRange, stats.apply(x).minValue...stats.apply(x).maxValue)
        }
        // No normalisation: the values as they are, even 8-bit ones.
        let bytes = Tensor(shape: [1, 3], scalars: [0, 7, 255])
        let none = TrainingRows(raw: bytes, normalization: NormalizationStats(kind: .none))
        XCTAssertFalse(none.isCompact)
        XCTAssertEqual(none.tensor.scalars, [0, 7, 255])
    }
}
