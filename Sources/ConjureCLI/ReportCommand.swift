import ArgumentParser
import ConjureData
import ConjureModels
import ConjureTraining
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write a run's report.html again (curves, samples, evaluation, data, configuration), or one page comparing several runs.")
    @Argument(help: "Run folders (runs/NAME). One: its report.html is rebuilt (with the interpolation grid sampled from its checkpoint). Several: one comparison page.") var runs: [String]
    @Option(help: "Output page (default: RUN/report.html for one run, report.html in the current folder for several).") var out: String?
    @Option(parsing: .unconditional, help: "Curve smoothing: TensorBoard's debiased EMA weight in [0, 1) (default 0.6; 0: raw).") var smoothing: Double = RunReport.defaultSmoothing
    @OptionGroup var pool: ThreadsOption

    func run() {
        runReporting {
            try pool.apply()
            guard !runs.isEmpty else { throw ConfigError(option: "RUN", problem: "give at least one run folder") }
            guard smoothing >= 0 && smoothing < 1 else { throw ConfigError(option: "--smoothing", problem: "must be in [0, 1), got \(smoothing)") }
            if let o = out {
                var isDir: ObjCBool = false
                if o.hasSuffix("/") || (FileManager.default.fileExists(atPath: o, isDirectory: &isDir) && isDir.boolValue) {
                    throw ConfigError(option: "--out", problem: "\(o) is a folder", hint: "give a file name such as report.html")
                }
            }
            let start = Date()
            if runs.count == 1 {
                let dir = runs[0]
                let record = try RunRecord.load(directory: dir)
                let checkpoint = dir + "/checkpoints/latest.safetensors"
                var model: (any GenerativeModel)?
                var note: String?
                if FileManager.default.fileExists(atPath: checkpoint) {
                    model = try Checkpoint.read(path: checkpoint).model
                } else {
                    note = "not available: no checkpoint at \(checkpoint)"
                }
                let written = try RunReport.write(directory: dir, model: model, config: record.config, interpolationNote: note, smoothing: smoothing, out: out)
                print("wrote \(written.path) (\(String(format: "%.0f", written.seconds * 1000)) ms)")
            } else {
                let records = try runs.map { try RunRecord.load(directory: $0) }
                let path = out ?? "report.html"
                let page = ReportPage.renderComparison(records, smoothing: smoothing,
                                                       footer: "Written by Conjure in \(String(format: "%.0f", Date().timeIntervalSince(start) * 1000)) ms.")
                try AtomicFile.write(Data(page.utf8), to: path, createDirectories: true)
                print("wrote \(path) comparing \(records.count) runs (\(String(format: "%.0f", Date().timeIntervalSince(start) * 1000)) ms)")
            }
        }
    }
}
