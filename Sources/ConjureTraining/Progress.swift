import Foundation

/// Seconds since this process started (from `/proc/self/stat` and `/proc/uptime`; NaN where
/// they cannot be read).
public func processUptime() -> Double {
    // /proc/self/stat field 22 is the start time in clock ticks since boot.
    guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
          let uptimeText = try? String(contentsOfFile: "/proc/uptime", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return .nan }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 19, let ticks = Double(fields[19]), let up = Double(uptimeText.split(separator: " ")[0]) else { return .nan }
    return up - ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Prints progress: a live line (carriage return) on a terminal, plain lines otherwise.
final class ProgressReporter {
    let live: Bool
    let quiet: Bool
    let totalSteps: Int
    let startStep: Int
    let started = DispatchTime.now().uptimeNanoseconds
    let log: (String) -> Void

    init(style: TrainOptions.ProgressStyle, totalSteps: Int, startStep: Int, log: @escaping (String) -> Void) {
        switch style {
        case .automatic: live = isatty(STDERR_FILENO) == 1; quiet = false
        case .live: live = true; quiet = false
        case .lines: live = false; quiet = false
        case .quiet: live = false; quiet = true
        }
        self.totalSteps = totalSteps
        self.startStep = startStep
        self.log = log
    }

    /// - Parameter losses: the first statistics of the step (d_loss and g_loss for a GAN).
    func report(step: Int, epoch: Double, losses: [(name: String, value: Double)], samplesPerSec: Double) {
        if quiet { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let done = step - startStep
        let eta = done > 0 ? elapsed / Double(done) * Double(totalSteps - step) : 0
        let fields = Fields(step: "step \(step)/\(totalSteps)", epoch: String(format: "epoch %.2f", epoch),
                            losses: losses.map { String(format: "%@ %.4f", $0.name, $0.value) },
                            rate: String(format: "%.0f samples/s", samplesPerSec), eta: "ETA " + formatDuration(eta))
        if live {
            // A live line wider than the terminal would wrap, and `\r` would then redraw only
            // its last row: fit it to the width, asked each time so a resize is followed.
            Console.write("\r\u{1B}[K" + Self.fitted(fields, columns: Self.terminalColumns()))
        } else {
            log(fields.line)
        }
    }

    /// The parts of a progress line, in the order shown.
    struct Fields {
        var step: String, epoch: String, losses: [String], rate: String, eta: String
        /// Every part: the logged line.
        var line: String { ([step, epoch] + losses + [rate, eta]).joined(separator: "  ") }
    }

    /// The live line for a terminal `columns` wide: every part when it fits in `columns - 1`
    /// characters (the cursor keeps the last column), else without the epoch, then without the
    /// rate too, so the step, the losses and the ETA stay; cut only when even that is too wide.
    static func fitted(_ fields: Fields, columns: Int?) -> String {
        let shorter = [fields.line, ([fields.step] + fields.losses + [fields.rate, fields.eta]).joined(separator: "  "),
                       ([fields.step] + fields.losses + [fields.eta]).joined(separator: "  ")]
        guard let columns, columns > 1 else { return shorter[0] }
        return shorter.first { $0.count < columns } ?? fitted(shorter[2], columns: columns)
    }

    func finish() {
        if live && !quiet { Console.write("\n") }
    }

    /// `line` cut to `columns - 1` characters (the cursor keeps the last column), or whole when
    /// the width is unknown.
    static func fitted(_ line: String, columns: Int?) -> String {
        guard let columns, columns > 1, line.count >= columns else { return line }
        return String(line.prefix(columns - 1))
    }

    /// Standard error's terminal width in columns (`TIOCGWINSZ`); nil when it is not a
    /// terminal or reports 0.
    static func terminalColumns() -> Int? {
        var size = winsize()
        guard ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }
}

/// "1m05s" style durations.
public func formatDuration(_ seconds: Double) -> String {
    let s = Int(seconds.rounded())
    return s >= 60 ? String(format: "%dm%02ds", s / 60, s % 60) : "\(s)s"
}

