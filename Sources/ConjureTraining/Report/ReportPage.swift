import Foundation
import ConjureData
import ConjureModels

/// The HTML of run reports: one run's page (`report.html` in its folder) and the page comparing
/// several runs. Self-contained: inline CSS and SVG charts, no script; pictures and sounds are
/// relative links to the run's files (a run's page) or base64 data URIs (a comparison page).
public enum ReportPage {
    /// Inline style sheet shared by both pages.
    static let css = """
    body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fff;max-width:1400px}
    h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:3px;margin-top:28px}
    .sub{color:#555;margin:0 0 12px}.note{color:#666;font-style:italic}
    .charts{display:flex;flex-wrap:wrap;gap:10px}.chart{background:#fff;border:1px solid #e4e4e4}
    .ct{font-size:13px;font-weight:600;fill:#222}.ck{font-size:10px;fill:#555}.cn{font-size:12px;fill:#888}.cf{fill:#fafafa;stroke:#ccc}.cg{stroke:#e6e6e6}
    .strip{display:flex;gap:8px;overflow-x:auto;padding-bottom:6px}figure{margin:0;text-align:center}figcaption{font-size:12px;color:#555}
    .strip img{height:168px;width:auto;image-rendering:pixelated;border:1px solid #ddd}.big img{width:448px;height:auto;max-height:640px;object-fit:contain;object-position:left top;image-rendering:pixelated;border:1px solid #ddd}
    table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
    td.n{text-align:right;font-variant-numeric:tabular-nums}pre{background:#f7f7f7;border:1px solid #e4e4e4;padding:8px;font-size:12px;overflow:auto;max-height:480px}
    .legend span{display:inline-block;margin-right:16px}.legend i{display:inline-block;width:14px;height:4px;margin-right:5px;vertical-align:middle}
    """

    /// The page head and opening of the body.
    static func head(title: String) -> String {
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
            + "<title>\(HTML.escape(title))</title><style>\(css)</style></head><body>\n"
    }

    static func note(_ text: String) -> String { "<p class=\"note\">\(HTML.escape(text))</p>\n" }

    /// A relative link from the page to a run file: `prefix` is the run folder seen from the
    /// page's folder ("" for the run's own page); each path component is percent-escaped.
    static func link(_ prefix: String, _ file: String) -> String {
        let path = (prefix.isEmpty ? "" : prefix + "/") + file
        let allowed = CharacterSet.urlPathAllowed.subtracting(CharacterSet(charactersIn: "?#"))
        return HTML.escape(path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path)
    }

    /// The description of a data kind (`image 1x28x28`, `sequence 1x16384`).
    static func kind(_ spec: DataSpec) -> String {
        switch spec {
        case .vector(let d): return "vector of \(d) values"
        case .image(let c, let h, let w): return "image \(c)x\(h)x\(w) (C x H x W)"
        case .sequence(let c, let t): return "signal \(c)x\(t) (channels x samples)"
        case .tokens(let v, let l): return "\(l) tokens of a \(v)-entry vocabulary"
        }
    }

    /// The charts of the training statistics, of the throughput and of the in-training FID/KID.
    static func curveSections(_ runs: [RunRecord], smoothing: Double) -> String {
        let colors = runs.indices.map { SVGChart.palette[$0 % SVGChart.palette.count] }
        var s = "<h2>Training curves</h2>\n"
        let train = runs.map(\.trainingLines)
        let statNames = RunRecord.statistics(train.flatMap { $0 }, except: ["step", "epoch", "samples_per_sec"])
        if statNames.isEmpty {
            s += note(runs.contains { $0.metrics == nil } ? "not available: no metrics.jsonl (the run has not logged a line yet)" : "not available: metrics.jsonl holds no training line yet")
        } else {
            s += "<p class=\"sub\">Mean of each statistic over each logging window (metrics.jsonl); faint: as logged, solid: "
                + (smoothing > 0 ? "smoothed (TensorBoard's debiased EMA, weight \(HTML.number(smoothing)))" : "no smoothing") + ".</p>\n<div class=\"charts\">"
            for name in statNames {
                let series = runs.indices.map { ChartSeries(name: runs[$0].name, points: RunRecord.series(train[$0], x: "step", y: name), color: colors[$0]) }
                s += SVGChart(title: name, xLabel: "step", series: series, smoothing: smoothing).render()
            }
            let rate = runs.indices.map { ChartSeries(name: runs[$0].name, points: RunRecord.series(train[$0], x: "step", y: "samples_per_sec"), color: colors[$0]) }
            s += SVGChart(title: "samples per second", xLabel: "step", series: rate, smoothing: smoothing).render()
            s += "</div>\n"
        }
        s += "<h2>In-training FID / KID</h2>\n"
        let evals = runs.map(\.evaluationLines)
        let evalNames = RunRecord.statistics(evals.flatMap { $0 }, except: ["step", "epoch", "wall_seconds", "eval_samples", "kid_std"])
        if evalNames.isEmpty {
            s += note("not available: the run was trained without --eval-every (FID and KID on the held-out split every N steps)")
        } else {
            let first = evals.flatMap { $0 }.first ?? [:]
            s += "<p class=\"sub\">On \(HTML.escape("\(first["eval_samples"] ?? "?")")) samples in \(HTML.escape("\(first["eval_space"] ?? "?")")) features; KID as the raw MMD² estimate. Over steps and over wall time since the start of training.</p>\n<div class=\"charts\">"
            for name in evalNames {
                for (x, label) in [("step", "step"), ("wall_seconds", "wall time (s)")] {
                    let series = runs.indices.map { ChartSeries(name: runs[$0].name, points: RunRecord.series(evals[$0], x: x, y: name), color: colors[$0]) }
                    s += SVGChart(title: name.uppercased() + (x == "step" ? " over steps" : " over wall time"), xLabel: label, series: series, smoothing: 0).render()
                }
            }
            s += "</div>\n"
        }
        return s
    }

    /// Rows of a data summary of `config`.
    static func dataRows(_ c: RunConfig) -> [(String, String)] {
        var rows: [(String, String)] = [("source", c.data), ("kind", kind(c.spec)),
                                        ("file SHA-256", c.dataSHA256 ?? "not recorded (folder, built-in data set or an older run)"),
                                        ("training samples", "\(c.trainSamples)"), ("normalisation", c.normalization.description),
                                        ("held-out fraction", HTML.number(c.heldOutFraction)),
                                        ("held-out indices SHA-256", c.heldOutIndicesSHA256 ?? "none (nothing held out)")]
        if let a = c.audio, let data = try? JSONEncoder().encode(a) { rows.append(("audio folder options", String(decoding: data, as: UTF8.self))) }
        if let l = c.layout { rows.append(("layout", l.rawValue)) }
        if let n = c.syntheticCount { rows.append(("synthetic samples", "\(n)")) }
        if c.model.conditionalClasses > 0 { rows.append(("classes", "\(c.model.conditionalClasses)")) }
        return rows
    }

    static func table(_ rows: [(String, String)], header: [String]? = nil) -> String {
        var s = "<table>"
        if let h = header { s += "<tr>" + h.map { "<th>\(HTML.escape($0))</th>" }.joined() + "</tr>" }
        for (k, v) in rows { s += "<tr><th>\(HTML.escape(k))</th><td>\(HTML.escape(v))</td></tr>" }
        return s + "</table>\n"
    }

    /// One run's page. Links point into the run folder through `linkPrefix` (the run folder seen
    /// from the page's folder; "" for `report.html` inside the run).
    ///
    /// - Parameters:
    ///   - smoothing: EMA weight of the smoothed curves, in [0, 1).
    ///   - footer: a line at the page's end (when and how long the page took).
    public static func render(_ run: RunRecord, smoothing: Double, linkPrefix: String = "", footer: String = "") -> String {
        let c = run.config
        var s = head(title: "Conjure run \(run.name)")
        s += "<h1>Run \(HTML.escape(run.name))</h1>\n"
        s += "<p class=\"sub\">\(HTML.escape(c.model.preset)) (\(HTML.escape(c.model.family)) family) on \(HTML.escape((c.data as NSString).lastPathComponent)); "
            + "step \(run.lastStep) logged, batch \(c.model.batchSize), \(c.model.epochs) epochs asked.</p>\n"
        s += curveSections([run], smoothing: smoothing)
        s += samplesSection(run, linkPrefix: linkPrefix)
        s += evaluationSection(run, linkPrefix: linkPrefix)
        s += "<h2>Data</h2>\n" + table(dataRows(c))
        s += "<h2>Configuration</h2>\n<p class=\"sub\">config.json</p><pre>\(HTML.escape(run.configText.replacingOccurrences(of: "\\/", with: "/")))</pre>\n"
        if !footer.isEmpty { s += "<p class=\"sub\">\(HTML.escape(footer))</p>\n" }
        return s + "</body></html>\n"
    }

    /// Samples over training, the final samples and the interpolation grid, by data kind.
    static func samplesSection(_ run: RunRecord, linkPrefix: String) -> String {
        let c = run.config
        var s = "<h2>Samples</h2>\n"
        let isAudio: Bool = { if case .sequence = c.spec, c.audio != nil { return true }; return false }()
        if case .tokens = c.spec {
            let steps = run.stepFiles(ext: "txt")
            if steps.isEmpty && !run.files.contains("samples/final.txt") {
                s += note("not available: no samples/step-*.txt yet (written every --sample-every steps and at the end)")
            }
            let hasFinal = run.files.contains("samples/final.txt")
            // The last step's file is the final one again when training ended there (same fixed draws).
            let earlier = hasFinal && steps.last?.step == run.lastStep ? Array(steps.dropLast()) : steps
            for (title, file) in (hasFinal ? [("Final samples", "samples/final.txt")] : [])
                + earlier.suffix(3).reversed().map({ ("Samples at step \($0.step)", $0.path) }) {
                let text = (try? String(contentsOfFile: run.directory + "/" + file, encoding: .utf8)) ?? "(unreadable)"
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                let shown = lines.prefix(24).joined(separator: "\n") + (lines.count > 24 ? "\n… (\(lines.count - 24) more lines in \(file))" : "")
                s += "<h3>\(HTML.escape(title))</h3><pre>\(HTML.escape(shown))</pre>\n"
            }
            return s
        }
        let steps = run.stepFiles(ext: "png")
        if steps.isEmpty {
            s += note(SampleWriter.training(for: c) == nil ? "not available: the data kind (\(kind(c.spec))) has no picture; use `conjure sample --out X.npy`"
                          : "not available: no samples/step-*.png yet (written every --sample-every steps)")
        } else {
            s += "<p class=\"sub\">" + (isAudio ? "Spectrograms of the fixed-z samples" : "The fixed-z sample grid") + " over training (samples/step-*.png).</p><div class=\"strip\">"
            for f in steps {
                s += "<figure><img loading=\"lazy\" src=\"\(link(linkPrefix, f.path))\" alt=\"step \(f.step)\"><figcaption>step \(f.step)</figcaption></figure>"
            }
            s += "</div>\n"
        }
        s += "<h3>Final samples</h3>\n"
        if run.files.contains("samples/final.png") {
            s += "<div class=\"big\"><img src=\"\(link(linkPrefix, "samples/final.png"))\" alt=\"final samples\"></div>\n"
        } else {
            s += note("not available: samples/final.png is written when training stops (end, --max-steps or an interrupt)")
        }
        if isAudio {
            var clips = run.wavs(in: "samples/final")
            var from = "samples/final"
            if clips.isEmpty, let last = steps.last {
                from = (last.path as NSString).deletingPathExtension
                clips = run.wavs(in: from)
            }
            if clips.isEmpty {
                s += note("not available: no sample WAV files yet")
            } else {
                s += "<p class=\"sub\">Clips of \(HTML.escape(from))/ at \(c.audio?.sampleRate.map { "\($0) Hz" } ?? "the data's rate").</p>"
                for f in clips {
                    s += "<figure><audio controls preload=\"none\" src=\"\(link(linkPrefix, f))\"></audio><figcaption>\(HTML.escape((f as NSString).lastPathComponent))</figcaption></figure>\n"
                }
            }
        }
        if case .image(let ch, _, _) = c.spec, (1...4).contains(ch) {
            s += "<h3>Latent interpolation</h3>\n"
            if let why = run.interpolationNote {
                s += note(why)
            } else if run.files.contains("interpolation.png") {
                s += "<p class=\"sub\">Each row: spherical interpolation (slerp) in 8 steps between two fixed latents (rows 2i and 2i+1 of the sample grids' z; for diffusion the initial noise x_T, sampled with DDIM, eta 0).</p>"
                s += "<div class=\"big\"><img src=\"\(link(linkPrefix, "interpolation.png"))\" alt=\"latent interpolation\"></div>\n"
            } else {
                s += note("not available: interpolation.png is written with the report from the checkpoint (`conjure report RUN`)")
            }
        }
        return s
    }

    /// The eval.json table, its warnings and the memorisation panel.
    static func evaluationSection(_ run: RunRecord, linkPrefix: String) -> String {
        var s = "<h2>Evaluation (eval.json)</h2>\n"
        guard let e = run.evaluation else {
            return s + note("not available: run `conjure evaluate --checkpoint \(run.directory)/checkpoints/latest.safetensors` to write eval.json")
        }
        s += "<p class=\"sub\">Checkpoint at step \(HTML.escape("\(e["step"] ?? "?")")), seed \(HTML.escape("\(e["seed"] ?? "?")")).</p>"
        var rows: [(String, String)] = []
        let shownElsewhere: Set<String> = ["checkpoint", "step", "seed", "warnings", "skipped_metrics"]
        let keys = e.keys.filter { !shownElsewhere.contains($0) }.sorted { ($0 == "metrics" ? 0 : 1, $0) < ($1 == "metrics" ? 0 : 1, $1) }
        for key in keys { rows += flattenJSON(e[key]!, prefix: key == "metrics" ? "" : key) }
        let byPath = Dictionary(rows, uniquingKeysWith: { a, _ in a })
        let headline = headlines.compactMap { h -> (String, String)? in
            guard let v = byPath[h.path] else { return nil }
            return (h.label, v + (h.spread.flatMap { byPath[$0] }.map { " ± " + $0 } ?? ""))
        }
        if !headline.isEmpty { s += "<p><b>Headline</b></p>" + table(headline) + "<p><b>All fields</b></p>" }
        s += "<table><tr><th>metric</th><th>value</th></tr>"
        for (k, v) in rows { s += "<tr><th>\(HTML.escape(k))</th><td class=\"n\">\(HTML.escape(v))</td></tr>" }
        s += "</table>\n"
        if let w = e["warnings"] as? [String], !w.isEmpty {
            s += "<p><b>Warnings</b></p><ul>" + w.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul>\n"
        }
        if let skipped = e["skipped_metrics"] as? [String: Any], !skipped.isEmpty {
            s += "<p class=\"sub\">Skipped: " + HTML.escape(skipped.keys.sorted().map { "\($0) (\(skipped[$0]!))" }.joined(separator: "; ")) + "</p>\n"
        }
        if run.config.spec.imageShape != nil {
            s += "<h3>Memorisation check: nearest training images</h3>\n"
            if run.files.contains("memorization-closest.png") {
                s += "<p class=\"sub\">Top row: the generated samples closest to a training image; below each, that training image (memorization-closest.png).</p>"
                s += "<div class=\"big\"><img src=\"\(link(linkPrefix, "memorization-closest.png"))\" alt=\"closest sample and training image pairs\"></div>\n"
            } else {
                s += note("not available: `conjure evaluate` with the memorization metric writes memorization-closest.png")
            }
        }
        if run.files.contains("samples/scatter.png") {
            s += "<h3>Samples over the true modes</h3><div class=\"big\"><img src=\"\(link(linkPrefix, "samples/scatter.png"))\" alt=\"scatter\"></div>\n"
        }
        return s
    }

    /// The eval.json fields shown first: label, flattened path, and the path of a spread.
    static let headlines: [(label: String, path: String, spread: String?)] = [
        ("FID", "fid.value", nil), ("KID (MMD², raw)", "kid.mean", "kid.std"), ("precision", "precision_recall.precision", nil),
        ("recall", "precision_recall.recall", nil), ("density", "density_coverage.density", nil), ("coverage", "density_coverage.coverage", nil),
        ("classifier score (IS)", "classifier_score.mean", nil), ("classes covered", "modes.classesCovered", nil),
        ("memorised fraction", "memorization.fraction", nil), ("negative ELBO (nats)", "elbo.negative_elbo_nats", nil), ("IWAE bound (nats)", "elbo.iwae_nats", nil),
    ]

    /// A base64 `data:` URI of a PNG file, nil when it cannot be read.
    static func dataURI(png path: String) -> String? {
        guard let d = FileManager.default.contents(atPath: path) else { return nil }
        return "data:image/png;base64," + d.base64EncodedString()
    }

    /// The page comparing `runs`: one chart per statistic with every run overlaid (colour per
    /// run), the in-training FID/KID, the eval.json metrics side by side, the configuration
    /// fields that differ and the final sample grids (embedded as base64).
    ///
    /// - Precondition: at least one run; `smoothing` in [0, 1).
    public static func renderComparison(_ runs: [RunRecord], smoothing: Double, footer: String = "") -> String {
        precondition(!runs.isEmpty, "ReportPage.renderComparison: no runs")
        var s = head(title: "Conjure: " + runs.map(\.name).joined(separator: " vs "))
        s += "<h1>Comparing \(runs.count) runs</h1>\n<p class=\"legend\">"
        for (i, r) in runs.enumerated() {
            s += "<span><i style=\"background:\(SVGChart.palette[i % SVGChart.palette.count])\"></i>\(HTML.escape(r.name)) (\(HTML.escape(r.directory)))</span>"
        }
        s += "</p>\n" + curveSections(runs, smoothing: smoothing)
        // Metrics side by side.
        s += "<h2>Metrics</h2>\n"
        var columns: [[String: String]] = runs.map { r in
            var d: [String: String] = ["steps logged": "\(r.lastStep)"]
            if let last = r.evaluationLines.last {
                for k in ["fid", "kid"] { if let v = RunRecord.number(last[k]) { d["last in-training \(k.uppercased())"] = HTML.number(v) } }
            }
            let rates = r.trainingLines.compactMap { RunRecord.number($0["samples_per_sec"]) }.sorted()
            if !rates.isEmpty { d["samples per second (median)"] = HTML.number(rates[rates.count / 2], digits: 4) }
            if let e = r.evaluation?["metrics"] { for (k, v) in flattenJSON(e) { d["eval: " + k] = v } }
            return d
        }
        let keys = Set(columns.flatMap(\.keys)).sorted { a, b in
            (a.hasPrefix("eval: ") ? 1 : 0, a) < (b.hasPrefix("eval: ") ? 1 : 0, b)
        }
        s += "<table><tr><th>metric</th>" + runs.map { "<th>\(HTML.escape($0.name))</th>" }.joined() + "</tr>"
        for k in keys { s += "<tr><th>\(HTML.escape(k))</th>" + columns.indices.map { "<td class=\"n\">\(HTML.escape(columns[$0][k] ?? "—"))</td>" }.joined() + "</tr>" }
        s += "</table>\n"
        if runs.contains(where: { $0.evaluation == nil }) {
            s += note("eval.json not available for: " + runs.filter { $0.evaluation == nil }.map(\.name).joined(separator: ", ") + " (run `conjure evaluate`)")
        }
        // Configuration differences.
        s += "<h2>Configuration differences</h2>\n"
        let configs: [[String: String]] = runs.map { r in
            guard let obj = try? JSONSerialization.jsonObject(with: Data(r.configText.utf8)) else { return [:] }
            return Dictionary(flattenJSON(obj), uniquingKeysWith: { a, _ in a })
        }
        let differing = Set(configs.flatMap(\.keys)).sorted().filter { k in Set(configs.map { $0[k] ?? "—" }).count > 1 }
        columns = configs
        if differing.isEmpty {
            s += note("the runs' config.json files agree")
        } else {
            s += "<table><tr><th>field</th>" + runs.map { "<th>\(HTML.escape($0.name))</th>" }.joined() + "</tr>"
            for k in differing { s += "<tr><th>\(HTML.escape(k))</th>" + columns.indices.map { "<td>\(HTML.escape(columns[$0][k] ?? "—"))</td>" }.joined() + "</tr>" }
            s += "</table>\n"
        }
        // Final grids.
        s += "<h2>Final samples</h2>\n<div class=\"strip\">"
        for r in runs {
            if let uri = dataURI(png: r.directory + "/samples/final.png") {
                s += "<figure class=\"big\"><img src=\"\(uri)\" alt=\"\(HTML.escape(r.name))\"><figcaption>\(HTML.escape(r.name))</figcaption></figure>"
            } else {
                s += "<figure><figcaption>\(HTML.escape(r.name)): samples/final.png not available</figcaption></figure>"
            }
        }
        s += "</div>\n"
        if !footer.isEmpty { s += "<p class=\"sub\">\(HTML.escape(footer))</p>\n" }
        return s + "</body></html>\n"
    }
}
