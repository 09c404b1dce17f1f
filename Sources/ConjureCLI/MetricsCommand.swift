import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

struct MetricsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics",
        abstract: "Compute one metric directly on two arrays [N, D] (features or images, .npy); prints JSON.")
    @Argument(help: "fid, kid, pr, dc, or score (score takes one array of class probabilities).") var name: String
    @Argument(help: "Real features/images (.npy), or probabilities for score.") var a: String
    @Argument(help: "Generated features/images (.npy).") var b: String?
    @Option(parsing: .unconditional, help: "KID subsets.") var kidSubsets: Int = 100
    @Option(parsing: .unconditional, help: "KID subset size.") var kidSubsetSize: Int = 1000
    @Option(parsing: .unconditional, help: "k for pr (default 3) or dc (default 5).") var k: Int?
    @Option(parsing: .unconditional, help: "Splits for score.") var splits: Int = 1
    @Option(parsing: .unconditional, help: "Seed for KID subsets.") var seed: UInt64 = 0

    func run() {
        runReporting {
            func load(_ p: String) throws -> Tensor {
                let t = try NPYReader.load(path: p)
                guard t.rank >= 2 else { throw DataError(file: p, problem: "expected an array [N, D] (or [N, C, H, W]), got shape \(t.shape)") }
                guard t.shape[0] >= 2 else { throw DataError(file: p, problem: "holds \(t.shape[0]) rows; metrics need at least 2") }
                guard t.count / t.shape[0] >= 1 else { throw DataError(file: p, problem: "rows have 0 values (shape \(t.shape))") }
                if let i = t.scalars.firstIndex(where: { !$0.isFinite }) {
                    throw DataError(file: p, location: "row \(i / (t.count / t.shape[0]))", problem: "contains NaN or infinite values")
                }
                return t.reshaped([t.shape[0], -1])
            }
            if splits < 1 || splits > 1000 { throw ConfigError(option: "--splits", problem: "must be between 1 and 1000, got \(splits)") }
            if kidSubsets < 1 || kidSubsets > 10_000 { throw ConfigError(option: "--kid-subsets", problem: "must be between 1 and 10000, got \(kidSubsets)") }
            if let k, k < 1 { throw ConfigError(option: "--k", problem: "must be at least 1, got \(k)") }
            let x = try load(a)
            let value: Data
            let enc = Evaluator.jsonEncoder(pretty: true)
            if name == "score" {
                if b != nil { throw ConfigError(option: "B", problem: "score takes one array of class probabilities") }
                value = try enc.encode(try Metrics.classifierScore(probabilities: x, splits: splits))
            } else {
                guard let b else { throw ConfigError(option: "B", problem: "\(name) needs two arrays") }
                let y = try load(b)
                try Metrics.checkComparableUnits(aPath: a, bPath: b)
                guard x.shape[1] == y.shape[1] else {
                    throw DataError(file: b, problem: "has \(y.shape[1]) values per row but \(a) has \(x.shape[1])")
                }
                switch name {
                case "fid": value = try enc.encode(try Metrics.fid(real: x, fake: y))
                case "kid": value = try enc.encode(try Metrics.kid(real: x, fake: y, subsets: kidSubsets, subsetSize: kidSubsetSize, seed: seed))
                case "pr": value = try enc.encode(try Metrics.precisionRecall(real: x, fake: y, k: k ?? 3))
                case "dc": value = try enc.encode(try Metrics.densityCoverage(real: x, fake: y, k: k ?? 5))
                default: throw ConfigError(option: "NAME", problem: "unknown metric '\(name)'", hint: "fid, kid, pr, dc or score")
                }
            }
            print(String(decoding: value, as: UTF8.self))
        }
    }
}
