import Foundation
import XCTest
import ConjureData
import ConjureTestSupport
@testable import ConjureTraining

/// The report of a small real run as a browser shows it: headless Chromium renders
/// `report.html` to a PNG, which must be far from blank, with no console message.
final class ReportBrowserTests: ConjureCLITestCase {
    override var temporaryPrefix: String { "report-browser" }

    /// `chromium-headless-shell` on the PATH (Debian's package), or nil.
    static var chromium: URL? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in path.split(separator: ":").map(String.init) + ["/usr/bin"] {
            let url = URL(fileURLWithPath: dir).appendingPathComponent("chromium-headless-shell")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return nil
    }

    /// The browser is a test dependency: `make test` installs it (`test-deps`), `make demo` does
    /// not (`deps`), and README's "Needs" names every package either installs.
    func testTheBrowserIsInstalledForTheTestsOnlyAndDocumented() throws {
        let makefile = try String(contentsOf: packageRoot.appendingPathComponent("Makefile"), encoding: .utf8)
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        func packages(_ variable: String) -> [String] {
            let line = makefile.split(separator: "\n").first { $0.hasPrefix(variable + " := ") } ?? ""
            return line.dropFirst(variable.count + 4).split(separator: " ").map(String.init)
        }
        XCTAssertEqual(packages("APT_PACKAGES"), ["libopenblas-dev", "libdnnl-dev", "libspng-dev", "zlib1g-dev", "libsndfile1-dev", "libsamplerate0-dev", "libkissfft-dev"])
        XCTAssertEqual(packages("TEST_APT_PACKAGES"), ["chromium-headless-shell"])
        XCTAssert(makefile.contains("\ntest: test-deps pyenv torchenv\n") && makefile.contains("\ntest-deps: deps\n") && makefile.contains("\ndemo: build "), makefile)
        let needs = readme.components(separatedBy: "Needs:").dropFirst().first?.components(separatedBy: "\n\n").first ?? ""
        for p in packages("APT_PACKAGES") + packages("TEST_APT_PACKAGES") { XCTAssert(needs.contains("`\(p)`"), "README's Needs names \(p)") }
    }

    func testReportOfARealRunRendersInHeadlessChromium() throws {
        guard let chromium = Self.chromium else {
            if ProcessInfo.processInfo.environment["CI"] != nil {
                XCTFail("chromium-headless-shell is not installed; the Makefile's test-deps target (make test-deps, run by make test) installs it")
                return
            }
            throw XCTSkip("chromium-headless-shell is not installed; `make test-deps` installs it")
        }
        let data = try sharedPath("data/mnist_5k.csv.gz").path
        try conjure(["train", "--model", "gan", "--data", data, "--name", "g", "--max-steps", "40", "--log-every", "5",
                     "--sample-every", "10", "--checkpoint-every", "20", "--eval-every", "20", "--eval-count", "200", "--threads", "1"])
        let run = tmp.appendingPathComponent("runs/g")
        let trained = try String(contentsOf: run.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssert(trained.contains("Written by Conjure at step 40"), "the trainer wrote the page at the end")
        XCTAssert(trained.contains("src=\"interpolation.png\""), "with the interpolation grid")
        try conjure(["evaluate", "--checkpoint", "runs/g/checkpoints/latest.safetensors", "--count", "300", "--kid-subset-size", "100"])
        let r = try conjure(["report", "runs/g"])
        XCTAssert(r.out.hasPrefix("wrote runs/g/report.html ("), r.out)
        let page = try String(contentsOf: run.appendingPathComponent("report.html"), encoding: .utf8)
        // Every section has its content: 5 statistic charts (d_fake, d_loss, d_real, g_loss,
        // samples per second), FID and KID over steps and wall time, 4 grids in the strip.
        XCTAssertEqual(page.components(separatedBy: "<svg").count - 1, 5 + 4)
        for s in ["<figcaption>step 10</figcaption>", "<figcaption>step 40</figcaption>", "src=\"samples/final.png\"",
                  "src=\"memorization-closest.png\"", "<th>FID</th>", "<th>held-out indices SHA-256</th>",
                  "symmetric", "&quot;preset&quot; : &quot;gan&quot;"] {
            XCTAssert(page.contains(s), "\(s) missing")
        }
        XCTAssertFalse(page.contains("not available"), "a run with everything has no note")
        // Every linked file exists (a missing one would be a broken image, not a console error).
        for part in page.components(separatedBy: "src=\"").dropFirst() {
            let src = String(part.prefix { $0 != "\"" })
            XCTAssert(FileManager.default.fileExists(atPath: run.appendingPathComponent(src).path), "\(src) is linked but missing")
        }

        let shot = tmp.appendingPathComponent("shot.png").path
        let started = Date()
        let c = try runProcess(chromium, ["--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--screenshot=\(shot)", "--window-size=1200,3000",
                                          "--enable-logging=stderr", "--v=0", run.appendingPathComponent("report.html").absoluteString], in: tmp)
        XCTAssertEqual(c.status, 0, c.err)
        print("[timing] chromium rendered the report in \(String(format: "%.2f", Date().timeIntervalSince(started))) s")
        let console = c.err.split(separator: "\n").filter { $0.contains("CONSOLE") }
        XCTAssert(console.isEmpty, "console messages: \(console)")
        let png = try PNGReader.decode(path: shot)
        XCTAssertEqual([png.width, png.height], [1200, 3000])
        // Non-blank: a real share of non-white pixels and a spread of values.
        let n = png.width * png.height
        var nonWhite = 0, sum = 0.0, sumSq = 0.0
        for i in 0..<n {
            let (r, g, b) = (png.rgb[3 * i], png.rgb[3 * i + 1], png.rgb[3 * i + 2])
            if r < 240 || g < 240 || b < 240 { nonWhite += 1 }
            let v = (Double(r) + Double(g) + Double(b)) / 3
            sum += v; sumSq += v * v
        }
        let mean = sum / Double(n), std = (sumSq / Double(n) - mean * mean).squareRoot()
        print("[report] screenshot: \(String(format: "%.3f", Double(nonWhite) / Double(n))) of the pixels non-white, grey level std \(String(format: "%.1f", std))")
        XCTAssertGreaterThan(Double(nonWhite) / Double(n), 0.1, "the page is mostly blank")
        XCTAssertGreaterThan(std, 30)
    }
}
