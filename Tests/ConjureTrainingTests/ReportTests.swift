import Foundation
import XCTest
import ConjureData
import ConjureTensor
import ConjureModels
import ConjureTestSupport
@testable import ConjureTraining

/// The HTML of run reports (issue 20, part 1): escaping, chart geometry, smoothing, the
/// comparison page, and what bad run folders give.
final class ReportTests: ConjureCLITestCase {
    override var temporaryPrefix: String { "report" }

    /// A run folder `runs/NAME` with a gan configuration of generator learning rate `lrG`, the
    /// given metrics.jsonl lines, and eval.json when given.
    @discardableResult
    func makeRun(_ name: String, lrG: Double = 2e-4, lines: [String], eval: String? = nil, model: ModelConfig? = nil,
                 spec: DataSpec = .image(channels: 1, height: 28, width: 28)) throws -> String {
        let dir = tmp.appendingPathComponent("runs/" + name).path
        try FileManager.default.createDirectory(atPath: dir + "/samples", withIntermediateDirectories: true)
        var m = model ?? ModelConfig.presets["gan"]!
        if var g = m.config as? GANConfig { g.generatorLR = Float(lrG); m = ModelConfig(g) }
        let c = RunConfig(model: m, data: "/data/digits.csv", normalization: NormalizationStats(kind: .symmetric, low: 0, high: 255),
                          imageShape: spec.imageShape, dataSpec: spec, trainSamples: 900, heldOutFraction: 0.1,
                          heldOutIndicesSHA256: "ab12", logEvery: 10, sampleEvery: 10, checkpointEvery: 10)
        try c.jsonData().write(to: URL(fileURLWithPath: dir + "/config.json"))
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: dir + "/metrics.jsonl"))
        if let e = eval { try Data(e.utf8).write(to: URL(fileURLWithPath: dir + "/eval.json")) }
        return dir
    }

    func trainingLine(_ step: Int, d: Double, g: Double) -> String {
        "{\"d_loss\":\(d),\"epoch\":\(Double(step) / 100),\"g_loss\":\(g),\"samples_per_sec\":1000,\"step\":\(step)}"
    }

    func testEscapingOfTextNamesAndSamples() throws {
        XCTAssertEqual(HTML.escape("<script>alert('x&y')</script> \"q\""), "&lt;script&gt;alert(&#39;x&amp;y&#39;)&lt;/script&gt; &quot;q&quot;")
        XCTAssertEqual(HTML.escape("plain ü"), "plain ü")
        // A text run whose sample file and statistic name hold markup: shown as text.
        let text = ModelConfig.presets["char-mlp"]!
        let dir = try makeRun("a<b>", lines: ["{\"<i>loss\":1.5,\"samples_per_sec\":10,\"step\":10}"], model: text,
                              spec: .tokens(vocabulary: 30, length: 16))
        try Data("hello <script>alert(1)</script>\nsecond & line\n".utf8).write(to: URL(fileURLWithPath: dir + "/samples/final.txt"))
        let page = ReportPage.render(try RunRecord.load(directory: dir), smoothing: 0.6)
        XCTAssert(page.contains("hello &lt;script&gt;alert(1)&lt;/script&gt;\nsecond &amp; line"), "the sample text is escaped")
        XCTAssert(page.contains("Run a&lt;b&gt;") && page.contains("&lt;i&gt;loss"))
        XCTAssertFalse(page.contains("<script") || page.contains("<b>") || page.contains("<i>"), "no markup from the run's files")
    }

    func testSVGPathAndTicksOfAKnownSeries() {
        let plot = (x: 10.0, y: 20.0, w: 100.0, h: 40.0)
        XCTAssertEqual(SVGChart.pathData([(0, 0), (1, 1), (2, 4)], xr: 0...2, yr: 0...4, plot: plot), "M10.0,60.0L60.0,50.0L110.0,20.0")
        XCTAssertEqual(SVGChart.pathData([(0, 0), (1, .nan), (2, 4)], xr: 0...2, yr: 0...4, plot: plot), "M10.0,60.0 M110.0,20.0", "a NaN breaks the line")
        XCTAssertEqual(SVGChart.ticks(0, 1), [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0])
        XCTAssertEqual(SVGChart.ticks(3, 97), [20, 40, 60, 80])
        // The chart of the same series draws that path inside its own plot area (y padded 4%).
        let chart = SVGChart(title: "loss", xLabel: "step", series: [ChartSeries(name: "r", points: [(0, 0), (1, 1), (2, 4)], color: "#123456")], smoothing: 0)
        let p = chart.plot, yr = (-0.16)...(4.16)
        XCTAssert(chart.render().contains("d=\"" + SVGChart.pathData([(0, 0), (1, 1), (2, 4)], xr: 0...2, yr: yr, plot: p) + "\""), chart.render())
    }

    func testLongSeriesAreThinnedWhenDrawn() {
        XCTAssertEqual(SVGChart.drawnIndices(5), [0, 1, 2, 3, 4])
        let idx = SVGChart.drawnIndices(10_001)
        // k = ceil(10001 / 1000) = 11: 0, 11, ..., 9999 (910 points), then the last, 10000.
        XCTAssertEqual(idx.count, 911)
        XCTAssertEqual(idx.prefix(3), [0, 11, 22])
        XCTAssertEqual(idx.suffix(2), [9999, 10_000])
        XCTAssertEqual(idx.last, 10_000)
        let points = (0..<10_001).map { (x: Double($0), y: sin(Double($0) / 100)) }
        let svg = SVGChart(title: "t", xLabel: "step", series: [ChartSeries(name: "r", points: points, color: "#000")], smoothing: 0.6).render()
        XCTAssertEqual(svg.components(separatedBy: "L").count - 1, 2 * 910, "raw and smoothed lines of 911 points each")
    }

    func testSmoothingMatchesAHandComputedDebiasedEMA() {
        // w = 0.6: last = 0.4, 1.04, 1.824; debiased by 1 - 0.6^k = 0.4, 0.64, 0.784.
        let s = Smoothing.ema([1, 2, 3], weight: 0.6)
        XCTAssertEqual(s[0], 1, accuracy: 1e-12)
        XCTAssertEqual(s[1], 1.04 / 0.64, accuracy: 1e-12)
        XCTAssertEqual(s[2], 1.824 / 0.784, accuracy: 1e-12)
        XCTAssertEqual(Smoothing.ema([3, -1, 7], weight: 0), [3, -1, 7])
        let n = Smoothing.ema([1, .nan, 3], weight: 0.5)
        XCTAssert(n[1].isNaN)
        XCTAssertEqual(n[2], 1.75 / 0.75, accuracy: 1e-12, "a NaN neither enters the average nor counts")
    }

    func testComparisonPageOverlaysTwoRuns() throws {
        try makeRun("alpha", lines: (1...5).map { trainingLine($0 * 10, d: 1.0 + Double($0), g: 0.5) },
                    eval: "{\"metrics\":{\"fid\":{\"value\":12.5}},\"step\":50}")
        try makeRun("beta", lrG: 1e-3, lines: (1...4).map { trainingLine($0 * 10, d: 2.0, g: 0.25 * Double($0)) }
                        + ["{\"epoch\":0.4,\"eval_samples\":100,\"eval_space\":\"pixels\",\"fid\":40.5,\"kid\":0.1,\"kid_std\":0.01,\"step\":40,\"wall_seconds\":3.5}"])
        let r = try conjure(["report", "runs/alpha", "runs/beta", "--out", "cmp/both.html"])
        XCTAssert(r.out.contains("wrote cmp/both.html comparing 2 runs"), r.out)
        let page = try String(contentsOf: tmp.appendingPathComponent("cmp/both.html"), encoding: .utf8)
        XCTAssert(page.contains("Comparing 2 runs"))
        // d_loss: each run's raw and smoothed line in its own colour.
        let chart = page.components(separatedBy: "<title>d_loss</title>")[1].components(separatedBy: "</svg>")[0]
        XCTAssertEqual(chart.components(separatedBy: "stroke=\"#1f77b4\"").count - 1, 2, "alpha: raw and smoothed")
        XCTAssertEqual(chart.components(separatedBy: "stroke=\"#ff7f0e\"").count - 1, 2, "beta: raw and smoothed")
        // Metric table side by side: alpha's eval FID, beta's in-training FID, a dash where absent.
        let row = page.components(separatedBy: "<th>eval: fid.value</th>")[1].components(separatedBy: "</tr>")[0]
        XCTAssertEqual(row, "<td class=\"n\">12.5</td><td class=\"n\">—</td>")
        let last = page.components(separatedBy: "<th>last in-training FID</th>")[1].components(separatedBy: "</tr>")[0]
        XCTAssertEqual(last, "<td class=\"n\">—</td><td class=\"n\">40.5</td>")
        let lr = page.components(separatedBy: "<th>model.generatorLR</th>")[1].components(separatedBy: "</tr>")[0]
        XCTAssertEqual(lr, "<td>0.0002</td><td>0.001</td>", "the differing configuration field")
        XCTAssertFalse(page.contains("<th>model.batchSize</th>"), "fields that agree are left out")
        XCTAssert(page.contains("eval.json not available for: beta"))
    }

    func testBadRunFoldersAndMissingFiles() throws {
        try FileManager.default.createDirectory(at: tmp.appendingPathComponent("empty"), withIntermediateDirectories: true)
        var r = try conjure(["report", "empty"], expectFailure: true)
        XCTAssert(r.err.contains("error: empty: is not a run folder: it has no config.json"), r.err)
        r = try conjure(["report", "nowhere"], expectFailure: true)
        XCTAssert(r.err.contains("nowhere: is not a folder"), r.err)
        try makeRun("broken", lines: [trainingLine(10, d: 1, g: 1), "", "{\"step\":20,\"d_loss\":"])
        r = try conjure(["report", "runs/broken"], expectFailure: true)
        XCTAssert(r.err.contains("runs/broken/metrics.jsonl") && r.err.contains("line 3"), r.err)
        try makeRun("nostep", lines: ["{\"d_loss\":1}"])
        r = try conjure(["report", "runs/nostep"], expectFailure: true)
        XCTAssert(r.err.contains("metrics.jsonl") && r.err.contains("line 1") && r.err.contains("no integer \"step\""), r.err)
        try makeRun("badeval", lines: [trainingLine(10, d: 1, g: 1)], eval: "[1, 2]")
        r = try conjure(["report", "runs/badeval"], expectFailure: true)
        XCTAssert(r.err.contains("runs/badeval/eval.json: is not a JSON object"), r.err)
        r = try conjure(["report", "runs/badeval", "--smoothing", "1"], expectFailure: true)
        XCTAssert(r.err.contains("--smoothing") && r.err.contains("[0, 1)"), r.err)
        // Absent files are notes: no checkpoint, no eval.json, no samples, no in-training FID.
        try makeRun("bare", lines: [trainingLine(10, d: 1, g: 1), trainingLine(20, d: 0.5, g: 2)])
        r = try conjure(["report", "runs/bare"])
        XCTAssert(r.out.hasPrefix("wrote runs/bare/report.html ("), r.out)
        let page = try String(contentsOf: tmp.appendingPathComponent("runs/bare/report.html"), encoding: .utf8)
        for n in ["not available: the run was trained without --eval-every", "not available: no samples/step-*.png yet",
                  "not available: samples/final.png", "not available: no checkpoint at runs/bare/checkpoints/latest.safetensors",
                  "not available: run `conjure evaluate"] {
            XCTAssert(page.contains(HTML.escape(n)), "note '\(n)' missing")
        }
        XCTAssertEqual(page.components(separatedBy: "<svg").count - 1, 3, "d_loss, g_loss and samples per second")
        try FileManager.default.removeItem(atPath: tmp.appendingPathComponent("runs/bare/metrics.jsonl").path)
        try conjure(["report", "runs/bare"])
        XCTAssert(try String(contentsOf: tmp.appendingPathComponent("runs/bare/report.html"), encoding: .utf8).contains("not available: no metrics.jsonl"))
    }

    func testSlerpEndsAndNorm() {
        let a: [Float] = [1, 0], b: [Float] = [0, 1]
        XCTAssertEqual(LatentInterpolation.slerp(a, b, 0), a)
        assertClose(LatentInterpolation.slerp(a, b, 1), b, atol: 1e-7)
        assertClose(LatentInterpolation.slerp(a, b, 0.5), [Float(0.5).squareRoot(), Float(0.5).squareRoot()], atol: 1e-7, "the arc's midpoint keeps the norm")
        let z = LatentInterpolation.latents(latentDim: 3, seed: 0)
        XCTAssertEqual(z.shape, [64, 3])
        var rng = RandomStream.fixedLatent.generator(seed: 0)
        let fixed = Tensor.randomNormal([64, 3], using: &rng)
        XCTAssertEqual(Array(z.scalars[0..<3]), Array(fixed.scalars[0..<3]), "row 0 starts at the sample grids' z[0]")
        assertClose(Array(z.scalars[21..<24]), Array(fixed.scalars[3..<6]), atol: 1e-6, "and ends at z[1]")
        XCTAssertEqual(RunReport.relativePath(from: "/a/b", to: "/a/c/d"), "../c/d")
        XCTAssertEqual(RunReport.relativePath(from: "/a/b", to: "/a/b"), "")
    }
}
