import Foundation
import XCTest
import ConjureData
import ConjureModels
import ConjureMetrics
import ConjureTestSupport
@testable import ConjureTraining

/// Issue 15, smaller items: the final grid of any stop, data notes and `--layout`, in-training
/// measurements on the console, `--version`.
final class SmallerItemsTests: XCTestCase {
    var tmp: URL!

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("small")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    func options(_ name: String) throws -> TrainOptions {
        var config = GANConfig.ganPreset
        config.generatorHidden = [16]
        config.generatorBatchNorm = [false]
        config.discriminatorHidden = [16]
        config.noiseDim = 8
        config.batchSize = 32
        config.epochs = 3
        var o = TrainOptions(runDirectory: tmp.appendingPathComponent(name).path, model: config)
        o.data = try sharedPath("data/digits_8x8.csv.gz").path
        o.progress = .quiet
        return o
    }

    func testAFinalGridIsWrittenAfterMaxSteps() throws {
        var o = try options("m")
        o.maxSteps = 7
        let s = try Trainer(options: o, log: { _ in }).run()
        XCTAssert(s.files.contains(o.runDirectory + "/samples/final.png"), "\(s.files)")
        XCTAssertGreaterThan(try PNGReader.decode(path: o.runDirectory + "/samples/final.png").width, 0)
    }

    /// A channels-last array: the reader's note is printed when training starts; `--layout nchw`
    /// reads it as it is (no note).
    func testDataNotesArePrintedAndLayoutOverrides() throws {
        var rng = RandomGenerator(seed: 2)
        let x = Tensor.randomUniform([64, 8, 8, 1], using: &rng)
        let path = tmp.appendingPathComponent("nhwc.npy").path
        try NPYWriter.write(x, to: path)
        var o = try options("n")
        o.data = path
        o.maxSteps = 2
        o.dataRange = 0...1
        var lines: [String] = []
        _ = try Trainer(options: o, log: { lines.append($0) }).run()
        XCTAssert(lines.contains { $0.hasPrefix("data: read [N, H, W, C] = [64, 8, 8, 1] as channels-last (detected)") }, "\(lines)")
        XCTAssertEqual(try Checkpoint.read(path: o.runDirectory + "/checkpoints/latest.safetensors").run.spec, .image(channels: 1, height: 8, width: 8))
        var forced = try options("f")
        forced.data = path
        forced.maxSteps = 2
        forced.dataRange = 0...1
        forced.layout = .nchw
        lines = []
        let summary = try Trainer(options: forced, log: { lines.append($0) }).run()
        XCTAssertFalse(lines.contains { $0.hasPrefix("data:") }, "\(lines)")
        // 8 channels have no PNG grid: said before step 1, and no grid is attempted.
        XCTAssert(lines.first { $0.contains("no sample grids") }?.contains("8 channels") == true, "\(lines)")
        XCTAssertFalse(summary.files.contains { $0.hasSuffix(".png") })
        XCTAssertEqual(try Checkpoint.read(path: forced.runDirectory + "/checkpoints/latest.safetensors").run.spec, .image(channels: 8, height: 8, width: 1))
    }

    func testInTrainingMeasurementsAreShownOnTheConsole() throws {
        var o = try options("e")
        o.maxSteps = 20
        o.evalEvery = 10
        o.evalCount = 100
        o.progress = .lines
        var lines: [String] = []
        _ = try Trainer(options: o, log: { lines.append($0) }).run()
        let evals = lines.filter { $0.hasPrefix("eval step ") }
        XCTAssertEqual(evals.count, 2, "\(lines)")
        XCTAssert(evals[0].hasPrefix("eval step 10: FID ") && evals[0].contains("(MMD², raw) on 100 samples"), evals[0])
    }

    func testVersion() throws {
        var dir = Bundle(for: SmallerItemsTests.self).bundleURL.deletingLastPathComponent()
        if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("conjure").path) {
            dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/release")
        }
        let p = Process()
        p.executableURL = dir.appendingPathComponent("conjure")
        p.arguments = ["--version"]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        XCTAssert(text.hasPrefix("0.") && text.contains("conjure.checkpoint.v1"), text)
    }

    /// ring8: an untrained uniform cloud "captures" all 8 modes with a handful of samples each;
    /// the per-mode shares flag every mode as weak, and samples of the mixture flag none.
    func testRing8ModeSharesFlagBarelyCapturedModes() throws {
        var rng = RandomGenerator(seed: 5)
        // About 10 samples within 3 sigma of each mode (of 20000).
        let cloud = Tensor.randomUniform([20000, 2], low: -1.2, high: 1.2, using: &rng)
        let r = try Mixture2D.ring8.evaluate(samples: cloud)
        XCTAssertEqual(r.modesCaptured, 8)
        XCTAssertEqual(r.weakModes, Array(0..<8), "\(r.modeShares)")
        for (share, n) in zip(r.modeShares, r.histogram) { XCTAssertEqual(share, Double(n) / 20000) }
        let good = try Mixture2D.ring8.evaluate(samples: Mixture2D.ring8.sample(n: 2500, rng: &rng))
        XCTAssertEqual(good.weakModes, [])
    }

    /// The `tEXt` chunks of a PNG file, read by walking its chunks (PNG spec §5.3, §11.3.4.3).
    func textChunks(_ path: String) throws -> [String: String] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var out: [String: String] = [:]
        var i = 8
        while i + 8 <= bytes.count {
            let length = bytes[i..<i + 4].reduce(0) { $0 << 8 | Int($1) }
            let type = String(decoding: bytes[i + 4..<i + 8], as: UTF8.self)
            if type == "tEXt" {
                let body = Array(bytes[i + 8..<i + 8 + length])
                let nul = body.firstIndex(of: 0)!
                out[String(decoding: body[..<nul], as: UTF8.self)] = String(decoding: body[(nul + 1)...], as: UTF8.self)
            }
            i += 12 + length
        }
        return out
    }

    /// A grid of a z-scored run says in its `Comment` chunk that it is min-max stretched and
    /// over which data values; a grid of a fixed range states that range. The pixels still decode.
    func testGridsStateTheirPixelMappingInATextChunk() throws {
        let samples = Tensor(shape: [4, 4], scalars: [-2, -1, 0, 1, 2, 3, 0.5, -0.5, 1, 1, 1, 1, 0, 0, 0, 0])
        let z = NormalizationStats(kind: .zscore, mean: 10, std: 2)
        try writeGrid(samples, shape: [1, 2, 2], stats: z, to: tmp.appendingPathComponent("z.png").path)
        let zText = try textChunks(tmp.appendingPathComponent("z.png").path)
        XCTAssertEqual(zText["Software"], "Conjure")
        XCTAssert(zText["Comment"]?.contains("min-max stretched over this grid") == true, "\(zText)")
        XCTAssert(zText["Comment"]?.contains("pixel 0..255 = 6.0..16.0") == true, "\(zText)")  // 10 + 2 * (-2 ... 3)
        let m = NormalizationStats(kind: .symmetric, low: 0, high: 16)
        try writeGrid(samples, shape: [1, 2, 2], stats: m, to: tmp.appendingPathComponent("m.png").path)
        let mText = try textChunks(tmp.appendingPathComponent("m.png").path)
        XCTAssertEqual(mText["Comment"], "pixel 0..255 = 0.0..16.0 in data units (the data's range; values outside clamp)")
        XCTAssertGreaterThan(try PNGReader.decode(path: tmp.appendingPathComponent("m.png").path).width, 0)
    }
}
