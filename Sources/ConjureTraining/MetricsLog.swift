import Foundation
import ConjureData
import ConjureModels
#if canImport(Glibc)
import Glibc
#endif

/// `metrics.jsonl` of a run: one JSON object per line, appended with `write(2)`.
///
/// Every append is one `write` of a whole line; when it fails (ENOSPC, EIO, ...) the file is cut
/// back to its length before the line, so it never holds half a line, and a ``DataError``
/// naming the file is thrown (Foundation's `FileHandle.write` would stop the process instead).
final class MetricsLog {
    let path: String
    private var fd: Int32

    /// Opens (creating it when missing) `path` for appending.
    ///
    /// - Throws: ``DataError`` naming the file when it cannot be opened.
    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw DataError(file: path, problem: "cannot open for writing: \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Appends one record as a line of sorted-key JSON.
    ///
    /// - Throws: ``DataError`` naming the file when the line cannot be written whole.
    func append(_ record: [String: Any]) throws {
        let line = try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) + Data("\n".utf8)
        try append(line)
    }

    /// Appends raw bytes (a whole line) or nothing.
    func append(_ line: Data) throws {
        let failure = appendWholeOrNothing(fd, line)
        if failure != 0 {
            throw DataError(file: path, problem: "cannot append a line: \(String(cString: strerror(failure)))",
                            hint: failure == ENOSPC ? "free some disk space, then continue with --resume (the last checkpoint is intact)"
                                : "the last checkpoint is intact; continue with --resume")
        }
    }

    /// Keeps only the lines of `path` with `step <= step`, less the training line (the one
    /// with `samples_per_sec`) at `step` itself when `dropTrainingLineAtStep`, and the
    /// measurement line (the one with `wall_seconds`) there when `dropEvalLineAtStep`. The file
    /// is replaced atomically, and only when a line goes.
    ///
    /// Used on resume: a run stopped between checkpoints logged lines past its checkpoint,
    /// and a run stopped off the `--log-every` grid logged the window its checkpoint carries
    /// on (the resumed run logs that window whole, as a run that never stopped).
    ///
    /// - Throws: ``DataError`` when the file cannot be rewritten.
    static func truncate(_ path: String, after step: Int, dropTrainingLineAtStep: Bool, dropEvalLineAtStep: Bool) throws {
        guard let data = FileManager.default.contents(atPath: path) else { return }
        let text = String(decoding: data, as: UTF8.self)
        var kept = ""
        var changed = false
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.isEmpty {
            if let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let s = obj["step"] as? Int, s <= step,
               !(dropTrainingLineAtStep && s == step && obj["samples_per_sec"] != nil),
               !(dropEvalLineAtStep && s == step && obj["wall_seconds"] != nil) {
                kept += line + "\n"
            } else {
                changed = true
            }
        }
        if changed || (!text.isEmpty && !text.hasSuffix("\n")) { try AtomicFile.write(Data(kept.utf8), to: path) }
    }
}

/// The logging window of the trainer: sums of each step statistic since the last
/// `metrics.jsonl` line, in the model's order, and the steps this process timed.
struct MetricsWindow {
    var sums: [(name: String, sum: Double)] = []
    var steps = 0
    /// Steps of the window run by this process (its throughput).
    var timedSteps = 0
    var start = DispatchTime.now().uptimeNanoseconds

    /// The window a checkpoint carried on, or an empty one.
    init(carried: LogWindow?) {
        if let c = carried {
            sums = zip(c.names, c.sums).map { ($0, $1) }
            steps = c.steps
        }
    }

    /// Adds one step's statistics.
    mutating func add(_ stats: StepMetrics) {
        if sums.isEmpty { sums = stats.values.map { ($0.name, 0) } }
        for (i, v) in stats.values.enumerated() { sums[i].sum += Double(v.value) }
        steps += 1
        timedSteps += 1
    }

    /// The open window as saved in checkpoints (nil when empty).
    var saved: LogWindow? {
        steps == 0 ? nil : LogWindow(steps: steps, names: sums.map(\.name), sums: sums.map(\.sum))
    }

    /// Closes the window: its means and throughput (samples per second over the timed steps);
    /// the window starts again empty.
    mutating func close(batchSize: Int) -> (means: [(name: String, value: Double)], samplesPerSec: Double) {
        let now = DispatchTime.now().uptimeNanoseconds
        let secs = max(Double(now - start) / 1e9, 1e-9)
        let n = Double(max(steps, 1))
        let means = sums.map { (name: $0.name, value: $0.sum / n) }
        let rate = Double(timedSteps) * Double(batchSize) / secs
        sums = []
        steps = 0
        timedSteps = 0
        start = now
        return (means, rate)
    }
}

/// Appends `bytes` to the end of `fd` whole (retrying short writes and EINTR) or, on failure,
/// cuts the file back to its length before the call, so a reader never sees half a record.
/// Shared by metrics.jsonl and the TensorBoard event file.
///
/// - Returns: 0, or the `errno` of the failed write (`EIO` for a write of 0 bytes).
func appendWholeOrNothing<Bytes: ContiguousBytes>(_ fd: Int32, _ bytes: Bytes) -> Int32 {
    let before = lseek(fd, 0, SEEK_END)
    var failure: Int32 = 0
    bytes.withUnsafeBytes { raw in
        guard var p = raw.baseAddress else { return }
        var left = raw.count
        while left > 0 {
            let n = Glibc.write(fd, p, left)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { failure = n < 0 ? errno : EIO; return }
            p += n
            left -= n
        }
    }
    if failure != 0 && before >= 0 { _ = ftruncate(fd, before) }
    return failure
}
