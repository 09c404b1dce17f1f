import Foundation
import ConjureData
import ConjureModels

/// What a report shows of one run folder, read from its files: `config.json`, `metrics.jsonl`,
/// `eval.json` and the pictures, sounds and texts of `samples/`.
///
/// Error policy (the same for `conjure report` and the trainer): a file that is present but
/// cannot be read (a `config.json` that is not a run configuration, a `metrics.jsonl` line that
/// is not a JSON object with an integer `step`, an `eval.json` that is not a JSON object) is an
/// error naming the file (and line); a file that is absent (no metrics yet, no evaluation, no
/// sample grids) is a note "not available" in its section, saying which command makes it.
public struct RunRecord {
    /// The run folder as given.
    public var directory: String
    /// The name shown: the folder's last path component.
    public var name: String
    /// The run's configuration (`config.json`).
    public var config: RunConfig
    /// `config.json` as written (pretty JSON).
    public var configText: String
    /// The lines of `metrics.jsonl` in order (nil: the file does not exist).
    public var metrics: [[String: Any]]?
    /// `eval.json` (nil: the run was not evaluated).
    public var evaluation: [String: Any]?
    /// Files of the folder the report may show, relative to it (`samples/step-000010.png`,
    /// `samples/final/sample-0000.wav`, `memorization-closest.png`, `interpolation.png`, ...).
    public var files: Set<String>
    /// Why the interpolation grid is not shown (nil: shown when `interpolation.png` exists).
    public var interpolationNote: String?

    /// The run folder's `config.json`.
    public static func configPath(_ directory: String) -> String { directory + "/config.json" }

    /// Reads the run folder `directory`.
    ///
    /// - Throws: ``DataError`` naming the folder when it is not a run (no `config.json`), naming
    ///   `config.json` when it is not a run configuration, `metrics.jsonl` and the line when a
    ///   line is not a JSON object with an integer `step`, `eval.json` when it is not a JSON object.
    public static func load(directory: String) throws -> RunRecord {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw DataError(file: directory, problem: "is not a folder", hint: "give a run folder written by `conjure train`, such as runs/NAME")
        }
        let configPath = configPath(directory)
        guard let configData = FileManager.default.contents(atPath: configPath) else {
            throw DataError(file: directory, problem: "is not a run folder: it has no config.json", hint: "give a run folder written by `conjure train`, such as runs/NAME")
        }
        let config: RunConfig
        do { config = try JSONDecoder().decode(RunConfig.self, from: configData) } catch {
            throw DataError(file: configPath, problem: "is not a run configuration (\(error))", hint: "the file was edited or truncated; `conjure train` writes it")
        }
        return try load(directory: directory, config: config, configText: String(decoding: configData, as: UTF8.self))
    }

    /// Reads the run folder `directory` of the configuration `config` (the trainer's own).
    ///
    /// - Throws: ``DataError`` as ``load(directory:)`` for `metrics.jsonl` and `eval.json`.
    public static func load(directory: String, config: RunConfig, configText: String) throws -> RunRecord {
        let name = URL(fileURLWithPath: directory).standardizedFileURL.lastPathComponent
        let metrics = try readMetrics(directory + "/metrics.jsonl")
        var evaluation: [String: Any]?
        let evalPath = directory + "/eval.json"
        if let data = FileManager.default.contents(atPath: evalPath) {
            guard let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw DataError(file: evalPath, problem: "is not a JSON object", hint: "run `conjure evaluate` again to rewrite it")
            }
            evaluation = obj
        }
        return RunRecord(directory: directory, name: name, config: config, configText: configText, metrics: metrics,
                         evaluation: evaluation, files: listFiles(directory), interpolationNote: nil)
    }

    /// The lines of a `metrics.jsonl` file; nil when it does not exist. Empty lines are skipped.
    ///
    /// - Throws: ``DataError`` naming the file and line (from 1) of a line that is not a JSON
    ///   object with an integer `step`.
    public static func readMetrics(_ path: String) throws -> [[String: Any]]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var out: [[String: Any]] = []
        for (i, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw DataError(file: path, location: "line \(i + 1)", problem: "is not a JSON object: \(line.prefix(60))",
                                hint: "the file was edited or cut short; delete the line to build the report")
            }
            guard obj["step"] is Int else {
                throw DataError(file: path, location: "line \(i + 1)", problem: "has no integer \"step\"",
                                hint: "the file was edited; delete the line to build the report")
            }
            out.append(obj)
        }
        return out
    }

    /// Relative paths of the files a report may show: everything under `samples/` (two levels)
    /// and the known files at the top (`interpolation.png`, `memorization-closest.png`).
    static func listFiles(_ directory: String) -> Set<String> {
        let fm = FileManager.default
        var out: Set<String> = []
        for top in ["interpolation.png", "memorization-closest.png", "memorization.png"] where fm.fileExists(atPath: directory + "/" + top) {
            out.insert(top)
        }
        for entry in (try? fm.contentsOfDirectory(atPath: directory + "/samples")) ?? [] where !entry.hasPrefix(".") {
            var isDir: ObjCBool = false
            _ = fm.fileExists(atPath: directory + "/samples/" + entry, isDirectory: &isDir)
            if isDir.boolValue {
                for f in (try? fm.contentsOfDirectory(atPath: directory + "/samples/" + entry)) ?? [] where f.hasSuffix(".wav") && !f.hasPrefix(".") {
                    out.insert("samples/\(entry)/\(f)")
                }
            } else {
                out.insert("samples/" + entry)
            }
        }
        return out
    }

    /// The training lines of the log (those with `samples_per_sec`).
    public var trainingLines: [[String: Any]] { (metrics ?? []).filter { $0["samples_per_sec"] != nil } }
    /// The in-training measurements of the log (those with `wall_seconds`).
    public var evaluationLines: [[String: Any]] { (metrics ?? []).filter { $0["wall_seconds"] != nil } }
    /// The last step logged (0 when nothing was logged).
    public var lastStep: Int { (metrics ?? []).compactMap { $0["step"] as? Int }.max() ?? 0 }

    /// Numeric statistics of `lines` other than the bookkeeping keys `except`, sorted by name.
    static func statistics(_ lines: [[String: Any]], except: Set<String>) -> [String] {
        var names: Set<String> = []
        for l in lines { for (k, v) in l where !except.contains(k) && number(v) != nil { names.insert(k) } }
        return names.sorted()
    }

    /// `(x, y)` of every line holding both keys as numbers.
    static func series(_ lines: [[String: Any]], x: String, y: String) -> [(x: Double, y: Double)] {
        lines.compactMap { l in
            guard let a = number(l[x]), let b = number(l[y]) else { return nil }
            return (a, b)
        }
    }

    /// A JSON number (not a boolean) as Double; the strings `nan`, `inf`, `-inf` as such.
    static func number(_ v: Any?) -> Double? {
        if let n = v as? NSNumber, !isBoolean(n) { return n.doubleValue }
        if let s = v as? String { return ["nan": .nan, "inf": .infinity, "-inf": -.infinity][s] }
        return nil
    }

    /// Whether a number from JSONSerialization is a JSON `true`/`false` (type code `c`).
    static func isBoolean(_ n: NSNumber) -> Bool { String(cString: n.objCType) == "c" }

    /// Sample files `samples/step-NNNNNN.EXT` in step order, with their steps.
    func stepFiles(ext: String) -> [(step: Int, path: String)] {
        files.compactMap { f -> (Int, String)? in
            guard f.hasPrefix("samples/step-"), f.hasSuffix("." + ext), !f.dropFirst(8).contains("/") else { return nil }
            guard let s = Int(f.dropFirst("samples/step-".count).dropLast(ext.count + 1)) else { return nil }
            return (s, f)
        }.sorted { $0.0 < $1.0 }
    }

    /// The WAV files of a sample folder (`samples/final`), sorted.
    func wavs(in folder: String) -> [String] {
        files.filter { $0.hasPrefix(folder + "/") && $0.hasSuffix(".wav") }.sorted()
    }
}

/// Flattens a JSON value into `(path, text)` rows: objects by `a.b` paths (sorted), arrays of up
/// to 16 numbers or strings joined with commas, longer or nested arrays as `[N entries]`, empty
/// arrays left out.
func flattenJSON(_ value: Any, prefix: String = "") -> [(String, String)] {
    if let d = value as? [String: Any] {
        return d.keys.sorted().flatMap { flattenJSON(d[$0]!, prefix: prefix.isEmpty ? $0 : prefix + "." + $0) }
    }
    if let a = value as? [Any] {
        if a.isEmpty { return [] }
        let scalars = a.compactMap { v -> String? in
            if let n = RunRecord.number(v) { return HTML.number(n) }
            return v as? String
        }
        if scalars.count == a.count && a.count <= 16 { return [(prefix, scalars.joined(separator: ", "))] }
        return [(prefix, "[\(a.count) entries]")]
    }
    if let n = value as? NSNumber, RunRecord.isBoolean(n) { return [(prefix, n.boolValue ? "true" : "false")] }
    if let n = RunRecord.number(value) { return [(prefix, HTML.number(n))] }
    if value is NSNull { return [(prefix, "null")] }
    return [(prefix, "\(value)")]
}
