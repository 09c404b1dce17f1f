import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a checkpoint (or a file of samples) against held-out real data; writes eval.json.")
    @Option(help: "A checkpoint written by `conjure train`.") var checkpoint: String
    @Option(parsing: .unconditional, help: "Generator samples to draw (default 10000; 2500 for the 2-D mixtures).") var count: Int?
    @Option(parsing: .unconditional, help: "Seed of the latent batches and KID subsets.") var seed: UInt64 = 0
    @Option(help: "Comma-separated metrics: \(Evaluator.allMetrics.joined(separator: ",")).") var metrics: String = Evaluator.defaultMetrics.joined(separator: ",")
    @Option(help: "Domain classifier file (default: <run>/classifier.safetensors, trained when missing).") var classifier: String?
    @Option(help: "Real data to compare with instead of the run's held-out split.") var reference: String?
    @Option(help: "Samples (.npy, data units) to evaluate instead of the generator's.") var samples: String?
    @Option(parsing: .unconditional, help: "KID subsets.") var kidSubsets: Int = 100
    @Option(parsing: .unconditional, help: "KID subset size (clamped to the sample counts).") var kidSubsetSize: Int = 1000
    @Option(parsing: .unconditional, help: "k for precision/recall.") var prK: Int = 3
    @Option(parsing: .unconditional, help: "k for density/coverage.") var dcK: Int = 5
    @Option(parsing: .unconditional, help: "Importance samples per image for a VAE's IWAE bound.") var iwaeK: Int = 1000
    @Flag(help: "Also score training images against the reference (the metrics' floor).") var floor = false
    @Option(help: "Report path (default: eval.json in the run directory).") var out: String?
    @OptionGroup var sampler: DiffusionSamplerOptions
    @OptionGroup var pool: ThreadsOption

    func run() {
        runReporting {
            try pool.apply()
            // Text models (the TokenSequenceModel capability): held-out likelihood and sample
            // statistics; the options of the other families' metrics are refused for them.
            let metricOptions = [("--metrics", metrics != Evaluator.defaultMetrics.joined(separator: ",")), ("--classifier", classifier != nil),
                                 ("--reference", reference != nil), ("--samples", samples != nil), ("--floor", floor)].filter(\.1).map(\.0)
            if let outcome = try TextEvaluator.runIfText(checkpoint: checkpoint, count: count, seed: seed, output: out,
                                                         prepareModel: { model in
                                                             try sampler.apply(to: model, seed: seed)
                                                             if let option = metricOptions.first {
                                                                 throw ConfigError(option: option, problem: "applies to image, sound and vector models; a text model is scored by its held-out nats per character and its samples' statistics")
                                                             }
                                                         },
                                                         log: { writeStandardError(($0 + "\n")) }) {
                print(outcome.table + "wrote \(outcome.path)")
                refreshReport(evalPath: outcome.path)
                return
            }
            var o = EvaluateOptions(checkpoint: checkpoint)
            o.count = count; o.seed = seed
            o.metrics = metrics.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            o.classifier = classifier; o.reference = reference; o.samplesFile = samples
            o.prepareModel = { [sampler, seed] in try sampler.apply(to: $0, seed: seed) }
            o.kidSubsets = kidSubsets; o.kidSubsetSize = kidSubsetSize; o.prK = prK; o.dcK = dcK; o.iwaeK = iwaeK; o.floor = floor; o.output = out
            let outcome = try Evaluator.run(o) { writeStandardError(($0 + "\n")) }
            print(outcome.table + "wrote \(outcome.path)")
            refreshReport(evalPath: outcome.path)
        }
    }

    /// Rewrites the run's report.html to show the eval.json just written (a failure is a
    /// warning: eval.json stands, and `conjure report RUN` rebuilds the page).
    private func refreshReport(evalPath: String) {
        do {
            if let page = try RunReport.refreshAfterEvaluation(checkpoint: checkpoint, evalPath: evalPath) { print("updated \(page)") }
        } catch {
            writeStandardError("warning: eval.json was written but report.html was not updated: \(error)\n")
        }
    }
}
