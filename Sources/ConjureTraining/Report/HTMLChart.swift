import Foundation

/// HTML text helpers of the run reports.
public enum HTML {
    /// `text` with the five characters that HTML gives a meaning escaped (`&` `<` `>` `"` `'`),
    /// safe in element content and in quoted attribute values.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for ch in text.unicodeScalars {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(ch)
            }
        }
        return out
    }

    /// A number for a table or an axis: integers as they are, others with `digits` significant
    /// digits (`%g`); non-finite values as `nan`, `inf`, `-inf`.
    public static func number(_ v: Double, digits: Int = 6) -> String {
        guard v.isFinite else { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return String(format: "%.\(digits)g", v)
    }
}

/// Smoothing of the report's curves.
public enum Smoothing {
    /// TensorBoard's smoothing: an exponential moving average with weight `weight` in [0, 1),
    /// debiased as TensorBoard's scalar dashboard does (`last = w·last + (1 − w)·v`, shown
    /// `last / (1 − w^k)` after k finite values). Non-finite values pass through unchanged and
    /// do not enter the average; weight 0 returns the values as they are.
    ///
    /// - Precondition: `0 <= weight < 1`.
    public static func ema(_ values: [Double], weight: Double) -> [Double] {
        precondition(weight >= 0 && weight < 1, "Smoothing.ema: weight must lie in [0, 1), got \(weight)")
        var last = 0.0, k = 0.0
        return values.map { v in
            guard v.isFinite else { return v }
            last = last * weight + (1 - weight) * v
            k += 1
            let debias = 1 - pow(weight, k)
            return debias > 0 ? last / debias : v
        }
    }
}

/// One line of a chart: points `(x, y)` in data units and an SVG colour.
public struct ChartSeries {
    /// Legend name.
    public var name: String
    /// The points, in increasing x; non-finite ones are left out when drawn.
    public var points: [(x: Double, y: Double)]
    /// An SVG colour (`#1f77b4`).
    public var color: String

    /// A series of `points` drawn in `color`.
    public init(name: String, points: [(x: Double, y: Double)], color: String) {
        self.name = name
        self.points = points
        self.color = color
    }
}

/// A small line chart as inline SVG: axes with round ticks, each series drawn raw (faint) and
/// smoothed with ``Smoothing/ema(_:weight:)`` (solid). No script, no external resource.
public struct SVGChart {
    /// Title above the plot.
    public var title: String
    /// The x axis' label (`step`, `wall time (s)`).
    public var xLabel: String
    /// The lines drawn.
    public var series: [ChartSeries]
    /// EMA weight of the smoothed line in [0, 1) (0: the raw line only).
    public var smoothing: Double
    /// Size in CSS pixels.
    public var width = 400.0, height = 230.0

    /// The plot area inside the margins: left, top, width, height (pixels).
    var plot: (x: Double, y: Double, w: Double, h: Double) { (58, 28, width - 58 - 14, height - 28 - 36) }

    /// A chart titled `title` of `series` over `xLabel`.
    public init(title: String, xLabel: String, series: [ChartSeries], smoothing: Double) {
        self.title = title
        self.xLabel = xLabel
        self.series = series
        self.smoothing = smoothing
    }

    /// Round tick values covering `lo...hi`: about `count` of them, spaced 1, 2 or 5 times a
    /// power of ten.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 4) -> [Double] {
        let span = hi - lo
        guard span > 0, span.isFinite else { return [lo] }
        let raw = span / Double(count)
        let mag = pow(10, floor(log10(raw)))
        let f = raw / mag
        let step = (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag
        var out: [Double] = []
        var t = ceil(lo / step) * step
        while t <= hi + step * 1e-9 && out.count < 20 {
            out.append(abs(t) < step * 1e-9 ? 0 : t)
            t += step
        }
        return out
    }

    /// The data ranges drawn: x over all points; y over the raw values, padded by 4% (a constant
    /// series gets ±5% of its value, or ±1 at 0). Nil when no point is finite.
    func ranges() -> (x: ClosedRange<Double>, y: ClosedRange<Double>)? {
        let pts = series.flatMap(\.points).filter { $0.x.isFinite && $0.y.isFinite }
        guard let first = pts.first else { return nil }
        var x0 = first.x, x1 = first.x, y0 = first.y, y1 = first.y
        for p in pts { x0 = min(x0, p.x); x1 = max(x1, p.x); y0 = min(y0, p.y); y1 = max(y1, p.y) }
        if x1 == x0 { x0 -= 1; x1 += 1 }
        if y1 == y0 {
            let pad = y0 == 0 ? 1 : abs(y0) * 0.05
            y0 -= pad; y1 += pad
        } else {
            let pad = (y1 - y0) * 0.04
            y0 -= pad; y1 += pad
        }
        return (x0...x1, y0...y1)
    }

    /// SVG path data (`M x,y L x,y ...`, one decimal) of `points` mapped from the data ranges
    /// `xr`, `yr` onto the plot rectangle `plot` (y grows downwards); non-finite points are
    /// skipped and break the line.
    static func pathData(_ points: [(x: Double, y: Double)], xr: ClosedRange<Double>, yr: ClosedRange<Double>,
                         plot: (x: Double, y: Double, w: Double, h: Double)) -> String {
        var d = ""
        var pen = false
        for p in points {
            guard p.x.isFinite && p.y.isFinite else { pen = false; continue }
            let px = plot.x + (p.x - xr.lowerBound) / (xr.upperBound - xr.lowerBound) * plot.w
            let py = plot.y + plot.h - (p.y - yr.lowerBound) / (yr.upperBound - yr.lowerBound) * plot.h
            d += (pen ? "L" : (d.isEmpty ? "M" : " M")) + String(format: "%.1f,%.1f", px, py)
            pen = true
        }
        return d
    }

    /// The chart as an `<svg>` element (with a `<title>` for screen readers).
    public func render() -> String {
        let w = HTML.number(width), h = HTML.number(height)
        var s = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 \(w) \(h)\" role=\"img\">"
        s += "<title>\(HTML.escape(title))</title>"
        s += "<text x=\"\(HTML.number(width / 2))\" y=\"17\" text-anchor=\"middle\" class=\"ct\">\(HTML.escape(title))</text>"
        let p = plot
        guard let (xr, yr) = ranges() else {
            s += "<text x=\"\(HTML.number(width / 2))\" y=\"\(HTML.number(height / 2))\" text-anchor=\"middle\" class=\"cn\">no finite values</text></svg>"
            return s
        }
        s += String(format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"cf\"/>", p.x, p.y, p.w, p.h)
        for t in SVGChart.ticks(yr.lowerBound, yr.upperBound) {
            let y = p.y + p.h - (t - yr.lowerBound) / (yr.upperBound - yr.lowerBound) * p.h
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"cg\"/>", p.x, p.x + p.w, y, y)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" class=\"ck\">", p.x - 4, y + 4) + HTML.escape(HTML.number(t, digits: 4)) + "</text>"
        }
        for t in SVGChart.ticks(xr.lowerBound, xr.upperBound) {
            let x = p.x + (t - xr.lowerBound) / (xr.upperBound - xr.lowerBound) * p.w
            s += String(format: "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"cg\"/>", x, x, p.y, p.y + p.h)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"ck\">", x, p.y + p.h + 14) + HTML.escape(HTML.number(t, digits: 4)) + "</text>"
        }
        s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" class=\"ck\">", p.x + p.w / 2, height - 4) + HTML.escape(xLabel) + "</text>"
        for line in series {
            let finite = line.points.filter { $0.x.isFinite && $0.y.isFinite }
            if finite.count == 1 {
                let d = SVGChart.pathData(finite, xr: xr, yr: yr, plot: p).dropFirst().split(separator: ",")
                s += "<circle cx=\"\(d[0])\" cy=\"\(d[1])\" r=\"3\" fill=\"\(line.color)\"/>"
                continue
            }
            // Long runs: at most about maxPoints drawn per line (every k-th point and the last),
            // the smoothing computed on all of them first.
            let keep = SVGChart.drawnIndices(line.points.count)
            let raw = SVGChart.pathData(keep.map { line.points[$0] }, xr: xr, yr: yr, plot: p)
            if smoothing > 0 {
                s += "<path d=\"\(raw)\" fill=\"none\" stroke=\"\(line.color)\" stroke-opacity=\"0.35\" stroke-width=\"1\"/>"
                let ys = Smoothing.ema(line.points.map(\.y), weight: smoothing)
                let sm = SVGChart.pathData(keep.map { (x: line.points[$0].x, y: ys[$0]) }, xr: xr, yr: yr, plot: p)
                s += "<path d=\"\(sm)\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.6\"><title>\(HTML.escape(line.name))</title></path>"
            } else {
                s += "<path d=\"\(raw)\" fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"1.4\"><title>\(HTML.escape(line.name))</title></path>"
            }
        }
        return s + "</svg>"
    }

    /// The most points drawn per line; longer series are thinned to every k-th point.
    static let maxPoints = 1000

    /// The indices of a series of `n` points that are drawn: all of them up to ``maxPoints``,
    /// else every `ceil(n / maxPoints)`-th and the last.
    static func drawnIndices(_ n: Int) -> [Int] {
        guard n > maxPoints else { return Array(0..<n) }
        let k = (n + maxPoints - 1) / maxPoints
        var idx = Array(stride(from: 0, to: n, by: k))
        if idx.last != n - 1 { idx.append(n - 1) }
        return idx
    }

    /// The colours of overlaid runs, in order (the Tableau 10 palette), repeating after ten.
    public static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
}
