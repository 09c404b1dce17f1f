import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

/// Prints a user-facing error (no stack trace) and exits non-zero.
func fail(_ error: Error) -> Never {
    let text: String
    switch error {
    case let e as DataError: text = e.description
    case let e as ConfigError: text = e.description
    case let e as TrainingError: text = e.description
    case let e as ValidationError: text = e.message
    case let e as MetricError: text = e.description
    default: text = "\(error)"
    }
    Console.error("error: \(text)")  // write(2): a closed stderr must not turn the error into a crash
    exit(1)
}

/// Runs `body`, turning thrown errors into one clear line and exit code 1.
/// Threads used when `--threads` is not given: the cores this process may run on (its CPU
/// affinity), at most 8.
let defaultThreads = min(8, Parallel.availableCores)

/// `--threads`, shared by every command that computes (not saved with a run: results do not
/// depend on it).
struct ThreadsOption: ParsableArguments {
    @Option(parsing: .unconditional, help: "Threads for matrix products and large element-wise passes (default: the cores available, at most 8). Results are identical for any count.") var threads: Int?

    /// Sets the pool: the given count, capped at the cores available.
    func apply() throws {
        guard let t = threads else { return }
        guard (1...64).contains(t) else { throw ConfigError(option: "--threads", problem: "must be between 1 and 64, got \(t)") }
        Parallel.setThreads(min(t, Parallel.availableCores))
    }
}

/// `--backend`, shared by `train`, `sample` and `bench`: the library that computes matrix products (not
/// saved with a run: backends differ in rounding only).
struct BackendOption: ParsableArguments {
    @Option(help: "Matrix-product library: \(MatrixBackend.knownNames.joined(separator: ", ")) (default: CONJURE_BACKEND, else \(MatrixBackend.defaultName)). Backends differ in rounding only; `conjure bench --gemm` measures them.") var backend: String?

    /// Sets ``MatrixBackend/current`` from `--backend`, else from `CONJURE_BACKEND`.
    ///
    /// - Throws: one `ConfigError` for an unknown or unavailable backend, naming the available ones.
    func apply() throws {
        try MatrixBackend.select(backend)
        // No background warm-up of the library: a process exiting early (a bad option or file)
        // while a warm-up thread is inside oneDNN crashed in libdnnl at exit.
    }
}

func runReporting(_ body: () throws -> Void) {
    Parallel.setThreads(defaultThreads)  // commands without --threads (sample, evaluate) use every core
    Allocator.keepFreedBuffers()
    // An unknown or unavailable CONJURE_BACKEND is one clear error for every command.
    do { try MatrixBackend.select(nil); try body() } catch { fail(error) }
}

/// The `conjure` command: `train`, `sample`, `export`, `evaluate`, `report`, `metrics`, `data`, `classifier`,
/// `bench`. The executable's `main.swift` calls ``main()``.
public struct Conjure: ParsableCommand {
    /// Needed by ArgumentParser.
    public init() {}

    /// Parses and runs; usage errors become one line (`error: ...`) with exit code 64, help and
    /// version requests print in full.
    public static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                Foundation.exit(0)
            }
            if error is DataError || error is ConfigError || error is TrainingError || error is MetricError { fail(error) }
            let message = self.message(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
            let cleaned = message.hasPrefix("Error: ") ? String(message.dropFirst(7)) : message
            writeStandardError("error: \(cleaned) (see 'conjure help')\n")
            Foundation.exit(code.rawValue == 0 ? 1 : code.rawValue)
        }
    }

    /// The root command `conjure`: its one-line abstract and the verbs `train`, `sample`, `export`,
    /// `evaluate`, `report`, `metrics`, `data`, `classifier` and `bench`.
    public static let configuration = CommandConfiguration(
        commandName: "conjure",
        abstract: "Train, sample and evaluate generative models on your own data.",
        version: conjureVersion,
        subcommands: [Train.self, Sample.self, Evaluate.self, Export.self, ReportCommand.self, MetricsCommand.self, DataCommand.self, ClassifierCommand.self, Bench.self])
}

/// Writes `text` to standard error as it is (no newline added). A closed or full standard error
/// is ignored: C stdio reports the failure instead of trapping as `FileHandle.write` does, and
/// SIGPIPE is ignored by the trainer, so a closed terminal never stops a run.
func writeStandardError(_ text: String) {
    fputs(text, stderr)
    fflush(stderr)
}
