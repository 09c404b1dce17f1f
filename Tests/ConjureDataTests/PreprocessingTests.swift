import ConjureData
import Foundation
import XCTest

final class NormalizationTests: XCTestCase {
    func testF07SymmetricIsXOver127_5Minus1() throws {
        let d = try Dataset.load(path: casePath("F07_uint8_2x4.npy"))
        XCTAssertEqual(d.dtype, .uint8)
        let (n, stats) = d.normalized(.symmetric)
        XCTAssertEqual(stats.low, 0)
        XCTAssertEqual(stats.high, 255)
        assertClose(n.samples.scalars, [-1, -0.992157, -0.003922, 0.003922, 0.992157, 1, 0.568627, -0.607843], tolerance: 1e-6)
        // Exactly x / 127.5 - 1 (rounded once to Float32).
        XCTAssertEqual(n.samples.scalars, d.samples.scalars.map { Float(Double($0) / 127.5 - 1) })
        XCTAssertEqual(n.samples.scalars.max(), 1)
        XCTAssertEqual(n.samples.scalars.min(), -1)
        // The inverse gives back the bytes.
        XCTAssertEqual(stats.inverse(n.samples).scalars.map { $0.rounded() }, d.samples.scalars)
        assertClose(stats.inverse(n.samples).scalars, d.samples.scalars, tolerance: 1e-6)
    }

    func testUnitRangeAndDtypeRule() throws {
        let d = try Dataset.load(path: casePath("F07_uint8_2x4.npy"))
        let (n, stats) = d.normalized(.unit)
        XCTAssertEqual(n.samples.scalars, d.samples.scalars.map { Float(Double($0) / 255) })
        XCTAssertEqual(stats.outputRange, 0...1)
        // Even when the observed values do not reach 0 or 255, uint8 data uses 0...255.
        let small = Tensor(shape: [2], scalars: [10, 20])
        let s = NormalizationStats.fit(.symmetric, data: small, dtype: .uint8)
        XCTAssertEqual(s.low, 0)
        XCTAssertEqual(s.high, 255)
        // Float data uses its observed range; an explicit range wins over both.
        let f = NormalizationStats.fit(.symmetric, data: Tensor(shape: [3], scalars: [2, 4, 6]), dtype: .float32)
        XCTAssertEqual(f.apply(Tensor(shape: [3], scalars: [2, 4, 6])).scalars, [-1, 0, 1])
        let r = NormalizationStats.fit(.symmetric, data: small, dtype: .uint8, range: 0...20)
        XCTAssertEqual(r.apply(small).scalars, [0, 1])
    }

    func testObservedRangeBreaksTiesAsSwiftMinAndMax() {
        // min keeps the first of equal values, max takes the later: the sign of a zero bound
        // (written to config.json and checkpoints) follows the data's order, as before.
        for (values, lowMinus, highMinus) in [([-0.0, 0.0, 3.0], true, false), ([0.0, -0.0, 3.0], false, false),
                                              ([-1.0, 0.0, -0.0], true, true), ([-1.0, -0.0, 0.0], true, false)] as [([Float], Bool, Bool)] {
            let s = NormalizationStats.fit(.symmetric, data: Tensor(shape: [3], scalars: values), dtype: .float32)
            XCTAssertEqual(s.low.sign == .minus, lowMinus, "\(values)")
            XCTAssertEqual(s.high.sign == .minus, highMinus, "\(values)")
            XCTAssertEqual(s.low, Double(values.min()!))
            XCTAssertEqual(s.high, Double(values.max()!))
        }
    }

    func testZScore() {
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randomNormal([1000], mean: 5, std: 2, using: &rng)
        let stats = NormalizationStats.fit(.zscore, data: x)
        XCTAssertEqual(stats.mean, 5, accuracy: 0.2)
        XCTAssertEqual(stats.std, 2, accuracy: 0.2)
        let y = stats.apply(x).scalars
        let mean = y.reduce(0.0) { $0 + Double($1) } / 1000
        let variance = y.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / 1000
        XCTAssertEqual(mean, 0, accuracy: 1e-5)
        XCTAssertEqual(variance, 1, accuracy: 1e-4)
    }

    func testInverseRoundTripForEveryKind() {
        var rng = RandomGenerator(seed: 11)
        let x = Tensor.randomUniform([500], low: -3, high: 40, using: &rng)
        for kind in Normalization.allCases {
            let stats = NormalizationStats.fit(kind, data: x)
            let back = stats.inverse(stats.apply(x))
            XCTAssertEqual(back.shape, x.shape)
            assertClose(back.scalars, x.scalars, tolerance: 1e-5, "\(kind)")
        }
        // Constant data does not divide by zero.
        let c = Tensor(repeating: 4, shape: [3])
        for kind in Normalization.allCases {
            let stats = NormalizationStats.fit(kind, data: c)
            XCTAssertTrue(stats.apply(c).scalars.allSatisfy(\.isFinite), "\(kind)")
            XCTAssertEqual(stats.inverse(stats.apply(c)).scalars, c.scalars, "\(kind)")
        }
    }

    func testStatsAreCodable() throws {
        let stats = NormalizationStats(kind: .zscore, mean: 33.49, std: 78.5)
        let data = try JSONEncoder().encode(stats)
        XCTAssertEqual(try JSONDecoder().decode(NormalizationStats.self, from: data), stats)
        let json = String(decoding: data, as: UTF8.self)
        XCTAssertTrue(json.contains("\"kind\":\"zscore\""), json)
        let sym = NormalizationStats(kind: .symmetric, low: 0, high: 255)
        XCTAssertEqual(try JSONDecoder().decode(NormalizationStats.self, from: JSONEncoder().encode(sym)), sym)
    }

    func testMNISTSymmetricRange() throws {
        let path = dataPath("mnist_5k.csv.gz")
        guard FileManager.default.fileExists(atPath: path) else { return XCTFail("no \(path): ../shared/data is needed") }
        let d = try Dataset.load(path: path, options: DatasetOptions(labelColumn: .last))
        let (n, stats) = d.normalized(.symmetric)
        XCTAssertEqual(stats.low, 0)
        XCTAssertEqual(stats.high, 255)
        XCTAssertEqual(n.samples.scalars.min(), -1)
        XCTAssertEqual(n.samples.scalars.max(), 1)
        let images = try n.reshapedToImages(channels: 1, height: 28, width: 28)
        XCTAssertEqual(images.samples.shape, [5000, 1, 28, 28])
    }
}

final class TransformTests: XCTestCase {
    func testReshapeAndFlatten() throws {
        let d = Dataset(samples: Tensor(shape: [2, 12], scalars: (0..<24).map(Float.init)), source: "mem", format: .npy)
        let images = try d.reshapedToImages(channels: 3, height: 2, width: 2)
        XCTAssertEqual(images.samples.shape, [2, 3, 2, 2])
        XCTAssertEqual(images.samples.scalars, d.samples.scalars)
        XCTAssertEqual(images.flattened().samples.shape, [2, 12])
        expectDataError(try d.reshapedToImages(channels: 1, height: 28, width: 28),
                        contains: ["mem", "each sample has 12 values", "[1, 28, 28] (784 values)"])
    }

    func testOneHot() {
        let t = oneHot([2, 0, 1], classes: 3)
        XCTAssertEqual(t.shape, [3, 3])
        XCTAssertEqual(t.scalars, [0, 0, 1, 1, 0, 0, 0, 1, 0])
    }

    func testDroppingDuplicates() {
        let d = Dataset(samples: Tensor(shape: [5, 2], scalars: [1, 2, 3, 4, 1, 2, 1, 2, 5, 6]),
                        labels: [0, 1, 0, 1, 2], source: "mem", format: .csv)
        let (u, removed) = d.droppingDuplicates()
        // Rows 2 and 3 repeat row 0's values; row 3 has another label so only row 2 goes.
        XCTAssertEqual(removed, 1)
        XCTAssertEqual(u.samples.scalars, [1, 2, 3, 4, 1, 2, 5, 6])
        XCTAssertEqual(u.labels, [0, 1, 1, 2])
        XCTAssertEqual(u.droppedSamples, 1)
    }
}

final class BatchTests: XCTestCase {
    func testDeterministicPerSeedAndEpoch() {
        let s = BatchSampler(count: 100, batchSize: 8, seed: 42)
        XCTAssertEqual(s.batches(epoch: 0), s.batches(epoch: 0))
        XCTAssertEqual(s.batches(epoch: 3), BatchSampler(count: 100, batchSize: 8, seed: 42).batches(epoch: 3))
        XCTAssertNotEqual(s.batches(epoch: 0), s.batches(epoch: 1))
        XCTAssertNotEqual(s.batches(epoch: 0), BatchSampler(count: 100, batchSize: 8, seed: 43).batches(epoch: 0))
        XCTAssertNotEqual(s.order(epoch: 0), Array(0..<100))
        XCTAssertEqual(s.order(epoch: 0).sorted(), Array(0..<100))
    }

    func testDropLastAndKeepPartialCounts() {
        let drop = BatchSampler(count: 10, batchSize: 3, seed: 1)
        XCTAssertEqual(drop.batchesPerEpoch, 3)
        let b = drop.batches(epoch: 0)
        XCTAssertEqual(b.map(\.count), [3, 3, 3])
        XCTAssertEqual(Set(b.joined()).count, 9)

        let keep = BatchSampler(count: 10, batchSize: 3, seed: 1, dropLast: false)
        XCTAssertEqual(keep.batchesPerEpoch, 4)
        let k = keep.batches(epoch: 0)
        XCTAssertEqual(k.map(\.count), [3, 3, 3, 1])
        XCTAssertEqual(k.joined().sorted(), Array(0..<10))
        // Same seed and epoch: the full batches agree whether or not the partial one is kept.
        XCTAssertEqual(Array(k.prefix(3)), b)

        XCTAssertEqual(BatchSampler(count: 2, batchSize: 3, seed: 1).batchesPerEpoch, 0)
        var it = keep.makeIterator(epoch: 5)
        var n = 0
        while let batch = it.next() { n += batch.count }
        XCTAssertEqual(n, 10)
        XCTAssertEqual(it.position, 4)

        let ordered = BatchSampler(count: 5, batchSize: 2, seed: 9, dropLast: false, shuffle: false)
        XCTAssertEqual(ordered.batches(epoch: 7), [[0, 1], [2, 3], [4]])
    }

    func testRanksGetDisjointEqualShards() {
        let r0 = BatchSampler(count: 23, batchSize: 4, seed: 5, dropLast: false, rank: 0, worldSize: 2)
        let r1 = BatchSampler(count: 23, batchSize: 4, seed: 5, dropLast: false, rank: 1, worldSize: 2)
        XCTAssertEqual(r0.batchesPerEpoch, 2)
        XCTAssertEqual(r1.batchesPerEpoch, 2)
        let a = Set(r0.batches(epoch: 2).joined()), b = Set(r1.batches(epoch: 2).joined())
        XCTAssertEqual(a.count, 8)
        XCTAssertEqual(b.count, 8)
        XCTAssertTrue(a.isDisjoint(with: b))
    }

    func testStratifiedHeldOutSplit() throws {
        let labels = (0..<1000).map { $0 / 100 }  // 10 classes of 100, sorted like mnist_5k
        let split = splitHeldOut(count: 1000, fraction: 0.1, seed: 7, labels: labels)
        XCTAssertEqual(split.heldOut.count, 100)
        XCTAssertEqual(split.train.count, 900)
        XCTAssertEqual((split.train + split.heldOut).sorted(), Array(0..<1000))
        var perClass = [Int](repeating: 0, count: 10)
        for i in split.heldOut { perClass[labels[i]] += 1 }
        XCTAssertEqual(perClass, [Int](repeating: 10, count: 10))
        XCTAssertEqual(split.heldOut, splitHeldOut(count: 1000, fraction: 0.1, seed: 7, labels: labels).heldOut)
        XCTAssertNotEqual(split.heldOut, splitHeldOut(count: 1000, fraction: 0.1, seed: 8, labels: labels).heldOut)

        let plain = splitHeldOut(count: 10, fraction: 0.3, seed: 1)
        XCTAssertEqual(plain.heldOut.count, 3)
        XCTAssertEqual((plain.train + plain.heldOut).sorted(), Array(0..<10))

        // Uneven classes: 7 and 3 samples, 0.5 → round(3.5)=4 and round(1.5)=2.
        let uneven = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]
        let u = splitHeldOut(count: 10, fraction: 0.5, seed: 2, labels: uneven)
        XCTAssertEqual(u.heldOut.filter { uneven[$0] == 0 }.count, 4)
        XCTAssertEqual(u.heldOut.filter { uneven[$0] == 1 }.count, 2)
    }

    func testMNISTSplitIsStratified() throws {
        let path = dataPath("mnist_5k.csv.gz")
        guard FileManager.default.fileExists(atPath: path) else { return XCTFail("no \(path): ../shared/data is needed") }
        let d = try Dataset.load(path: path, options: DatasetOptions(labelColumn: .last))
        let split = d.splitHeldOut(fraction: 0.1, seed: 0)
        XCTAssertEqual(split.heldOut.count, 500)
        var perClass = [Int](repeating: 0, count: 10)
        for i in split.heldOut { perClass[d.labels![i]] += 1 }
        XCTAssertEqual(perClass, [Int](repeating: 50, count: 10))
        let train = d.subset(split.train)
        XCTAssertEqual(train.samples.shape, [4500, 784])
        let sampler = train.batchSampler(batchSize: 64, seed: 1)
        XCTAssertEqual(sampler.batchesPerEpoch, 70)  // 4500 / 64, partial batch dropped
        let batch = train.batch(sampler.batches(epoch: 0)[0])
        XCTAssertEqual(batch.samples.shape, [64, 784])
        XCTAssertEqual(batch.labels?.count, 64)
    }
}
