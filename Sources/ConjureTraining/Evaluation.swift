import Foundation
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureNN

// Longer than 400 lines on purpose: `conjure evaluate` is one report: each metric's applicability, computation and table row sit together so they cannot drift.

/// Options of `conjure evaluate`.
public struct EvaluateOptions: Sendable {
    /// Path of the checkpoint to evaluate (`runs/NAME/checkpoints/latest.safetensors`).
    public var checkpoint: String
    /// Samples drawn from the generator (ignored with `samplesFile`); nil: 10 000, or 2500
    /// for the 2-D mixtures (the VEEGAN/PacGAN protocol).
    public var count: Int? = nil
    /// Seed of the latent batches (and of KID's subsets).
    public var seed: UInt64 = 0
    /// Metric names: fid, kid, pr, dc, score, modes, memorization, mixture.
    public var metrics: [String] = Evaluator.defaultMetrics
    /// A classifier file; default `<run>/classifier.safetensors`, trained on the run's training
    /// split when missing and the data has labels.
    public var classifier: String?
    /// A data file to compare with instead of the run's held-out split.
    public var reference: String?
    /// Samples from anywhere (`.npy`, the data's own units) instead of the generator's.
    public var samplesFile: String?
    /// KID: number of random subsets averaged (default 100, as torch-fidelity; 1...10 000).
    public var kidSubsets: Int = 100
    /// KID: samples per subset (default 1000; clamped to the samples available).
    public var kidSubsetSize: Int = 1000
    /// Neighbourhood size k of improved precision/recall (default 3, Kynkäänniemi et al. 2019).
    public var prK: Int = 3
    /// Neighbourhood size k of density/coverage (default 5, Naeem et al. 2020).
    public var dcK: Int = 5
    /// Importance samples per image for the IWAE bound of a VAE (Burda et al. 2016 use 5000).
    public var iwaeK: Int = 1000
    /// Also evaluate training images against the reference (the metrics' floor).
    public var floor = false
    /// Where to write the report; default `eval.json` in the run directory.
    public var output: String?

    /// Called with the loaded model before any sample is drawn: sets a diffusion model's sampler
    /// (`conjure evaluate --sampler/--steps/--eta/--guidance`). May throw a ``ConfigError``.
    public var prepareModel: (@Sendable (any GenerativeModel) throws -> Void)? = nil
    /// Options for `checkpoint` with the defaults listed on each property.
    public init(checkpoint: String) { self.checkpoint = checkpoint }
}

/// `conjure evaluate`: generator samples (or a file of samples) against held-out real data.
public enum Evaluator {
    /// The largest sample size compared in pixel space (covariances are D x D in Double).
    public static let maxPixelFeatures = 4096
    /// Every metric name `--metrics` accepts.
    public static let allMetrics = ["fid", "kid", "pr", "dc", "score", "modes", "memorization", "mixture", "elbo"]
    /// The metrics computed when none are named (all of them); with this list, those a run cannot
    /// support are skipped and listed under `skipped_metrics` instead of being an error.
    public static let defaultMetrics = ["fid", "kid", "pr", "dc", "score", "modes", "memorization", "mixture", "elbo"]

    /// A JSON encoder that writes non-finite numbers as the strings "inf", "-inf", "nan".
    public static func jsonEncoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys] : [.sortedKeys]
        return e
    }

    /// The run directory of a checkpoint in `<run>/checkpoints/`, else the checkpoint's folder.
    public static func runDirectory(ofCheckpoint path: String) -> String {
        let dir = (path as NSString).deletingLastPathComponent
        if (dir as NSString).lastPathComponent == "checkpoints" { return (dir as NSString).deletingLastPathComponent }
        return dir.isEmpty ? "." : dir
    }

    /// The result of ``run(_:log:)``.
    public struct Outcome {
        /// The report as written to the JSON file (metric name to value or object).
        public var report: [String: Any]
        /// The human-readable table printed by `conjure evaluate`.
        public var table: String
        /// Where the JSON report was written.
        public var path: String
    }

    /// The data a run trained on, split as during training.
    struct RunData {
        var all: Dataset            // flattened, raw units
        var train: [Int]
        var heldOut: [Int]
    }

    static func loadRunData(_ run: RunConfig) throws -> RunData {
        var o = TrainOptions(runDirectory: "", model: run.model)
        o.data = run.data
        o.normalization = run.normalization.kind
        o.layout = run.layout
        if let a = run.audio { o.audio = a }
        if let n = run.syntheticCount { o.syntheticCount = n }
        let ds = try PreparedData.loadDataset(o).flattened()
        var train = Array(0..<ds.count), held: [Int] = []
        if run.heldOutFraction > 0 {
            (train, held) = ds.splitHeldOut(fraction: run.heldOutFraction, seed: run.model.seed)
            let hash = sha256Hex(held.map(String.init).joined(separator: ","))
            if let expected = run.heldOutIndicesSHA256, expected != hash {
                throw DataError(file: run.data, problem: "the held-out split differs from the one used in training (index hash mismatch)",
                                hint: "the data file changed since training; pass --reference to compare with another file")
            }
        }
        return RunData(all: ds, train: train, heldOut: held)
    }

    /// Evaluates a checkpoint: loads it and its data, draws or reads samples, computes each metric
    /// in `o.metrics`, writes the JSON report and returns it with a table. `log` receives progress.
    /// - Throws: ``ConfigError`` for an unknown metric, an out-of-range option or a metric this run
    ///   cannot support; ``DataError`` for an unreadable checkpoint, reference or samples file or a
    ///   changed held-out split; ``MetricError`` when a metric cannot be computed.
    public static func run(_ o: EvaluateOptions, log: (String) -> Void) throws -> Outcome {
        let unknown = o.metrics.filter { !allMetrics.contains($0) }
        if !unknown.isEmpty {
            throw ConfigError(option: "--metrics", problem: "unknown metric(s) \(unknown.joined(separator: ", "))", hint: "choose from \(allMetrics.joined(separator: ","))")
        }
        if o.metrics.isEmpty { throw ConfigError(option: "--metrics", problem: "no metric given", hint: "choose from \(allMetrics.joined(separator: ","))") }
        if let c = o.count, c < 2 || c > 200_000 { throw ConfigError(option: "--count", problem: "must be between 2 and 200000, got \(c)") }
        if o.kidSubsets < 1 || o.kidSubsets > 10_000 { throw ConfigError(option: "--kid-subsets", problem: "must be between 1 and 10000, got \(o.kidSubsets)") }
        if o.kidSubsetSize < 2 { throw ConfigError(option: "--kid-subset-size", problem: "must be at least 2, got \(o.kidSubsetSize)") }
        if o.prK < 1 { throw ConfigError(option: "--pr-k", problem: "must be at least 1, got \(o.prK)") }
        if o.dcK < 1 { throw ConfigError(option: "--dc-k", problem: "must be at least 1, got \(o.dcK)") }
        if o.iwaeK < 1 || o.iwaeK > 100_000 { throw ConfigError(option: "--iwae-k", problem: "must be between 1 and 100000, got \(o.iwaeK)") }
        if let out = o.output {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: out, isDirectory: &isDir), isDir.boolValue {
                throw ConfigError(option: "--out", problem: "\(out) is a directory", hint: "give a file name such as eval.json")
            }
        }

        let loaded = try Checkpoint.read(path: o.checkpoint)
        try o.prepareModel?(loaded.model)
        let run = loaded.run
        let stats = run.normalization
        var warnings: [String] = []
        let runData = try loadRunData(run)

        // Reference (real) data, normalised like the training data.
        var reference: Tensor
        var referenceLabels: [Int]?
        var referenceSource: String
        if let path = o.reference {
            let isCSV = (try? Dataset.detectFormat(path: path)) == .csv
            var ds = try Dataset.load(path: path, options: DatasetOptions(labelColumn: isCSV ? try PreparedData.defaultCSVLabelColumn(path: path) : nil))
            ds = ds.flattened()
            guard ds.featureCount == run.model.dataDim else {
                throw DataError(file: path, problem: "samples have \(ds.featureCount) values, the model's have \(run.model.dataDim)")
            }
            try checkScale(ds.samples, stats: stats, file: path)
            reference = stats.apply(ds.samples)
            referenceLabels = ds.labels
            referenceSource = path
        } else {
            guard !runData.heldOut.isEmpty else {
                throw ConfigError(option: "--reference", problem: "the run kept no held-out split (trained with --held-out 0)",
                                  hint: "pass --reference FILE with real data the model did not train on")
            }
            let sub = runData.all.subset(runData.heldOut)
            reference = stats.apply(sub.samples)
            referenceLabels = sub.labels
            referenceSource = runData.all.predefinedHeldOut != nil
                ? "held-out split of \(run.data) (the data set's own test split, \(runData.heldOut.count) samples)"
                : "held-out split of \(run.data) (\(Int(run.heldOutFraction * 100))%, seed \(run.model.seed))"
        }

        // Samples, normalised.
        var samples: Tensor
        var samplesSource: String
        var requestedLabels: [Int]? = nil  // the class asked of each sample (conditional models)
        if let path = o.samplesFile {
            let raw = try NPYReader.load(path: path)
            guard raw.rank >= 2, raw.shape[0] >= 1, raw.count / raw.shape[0] == run.model.dataDim else {
                throw DataError(file: path, problem: "samples of shape \(raw.shape) do not match the model's \(run.model.dataDim) values per sample")
            }
            guard raw.shape[0] >= 2 else { throw DataError(file: path, problem: "holds \(raw.shape[0]) sample; metrics need at least 2") }
            guard raw.scalars.allSatisfy({ $0.isFinite }) else { throw DataError(file: path, problem: "samples contain NaN or infinite values") }
            let flat = raw.reshaped([raw.shape[0], run.model.dataDim])
            try checkScale(flat, stats: stats, file: path)
            samples = stats.apply(flat)
            samplesSource = path
        } else {
            var rng = RandomStream.sampling.generator(seed: o.seed)
            var parts: [Tensor] = []
            var left = o.count ?? (Mixture2D(rawValue: run.data) != nil ? 2500 : 10_000)
            var asked: [Int] = []
            while left > 0 {
                let b = min(left, 1000)
                let labels = loaded.model.balancedLabels(b, offset: left)
                asked += labels ?? []
                parts.append(loaded.model.sample(z: Tensor.randomNormal([b, run.model.latentDim], using: &rng), labels: labels))
                left -= b
            }
            requestedLabels = asked.isEmpty ? nil : asked
            samples = Tensor.concat(parts, axis: 0)
            try checkFiniteSamples(samples, checkpoint: o.checkpoint)
            samplesSource = "generator at step \(loaded.progress.step), seed \(o.seed)" + ((loaded.model as? any DiffusionSampling).map { ", sampler \($0.samplerDescription)" } ?? "")
        }

        // Every requested metric must be computable here; say which cannot, before any work.
        let isMixture = Mixture2D(rawValue: run.data) != nil
        let willHaveClassifier = !isMixture && (o.classifier != nil || runData.all.labels != nil)
        var inapplicable: [String: String] = [:]
        for metric in o.metrics {
            let why: String?
            switch metric {
            case "fid", "kid", "pr", "dc":
                why = isMixture ? "2-D mixture runs are scored with 'mixture'"
                    : !willHaveClassifier && run.model.dataDim > Evaluator.maxPixelFeatures
                    ? "without labels it would work in pixel space, and \(run.model.dataDim) values per sample are more than \(Evaluator.maxPixelFeatures) (pass --classifier)" : nil
            case "score", "modes": why = willHaveClassifier ? nil : "needs a domain classifier (labelled data or --classifier)"
            case "memorization": why = isMixture || runData.heldOut.isEmpty || run.spec.imageShape == nil ? "needs image data with a held-out split" : nil
            case "mixture": why = isMixture ? nil : "only for the built-in 2-D mixtures (ring8, grid25, moons)"
            case "elbo": why = loaded.model is LikelihoodModel ? nil : "only for models with an encoder (VAE runs): a likelihood bound needs one"
            default: why = nil
            }
            if let why { inapplicable[metric] = why }
        }
        let requested = o.metrics.filter { inapplicable[$0] == nil }
        if o.metrics != defaultMetrics, let (m, why) = inapplicable.sorted(by: { $0.key < $1.key }).first {
            throw ConfigError(option: "--metrics", problem: "'\(m)' cannot be computed for this run: \(why)")
        }
        if o.floor && isMixture { throw ConfigError(option: "--floor", problem: "not available for 2-D mixture runs") }
        let needed = [("pr", o.prK), ("dc", o.dcK)].filter { requested.contains($0.0) }.map { $0.1 + 1 }.max() ?? 2
        if samples.shape[0] < needed || reference.shape[0] < needed {
            let (what, n) = samples.shape[0] < needed ? (o.samplesFile ?? "--count", samples.shape[0]) : (o.reference ?? "the held-out split", reference.shape[0])
            throw ConfigError(option: what, problem: "\(n) samples; the requested metrics need at least \(needed) (k + 1 for pr/dc)")
        }
        // Feature space: the domain classifier's penultimate layer when the data has labels.
        let runDir = runDirectory(ofCheckpoint: o.checkpoint)
        var featureInfo: [String: Any] = [:]
        var classifier: ClassifierTool.Loaded?
        let wantsFeatures = requested.contains { ["fid", "kid", "pr", "dc", "score", "modes"].contains($0) }
        if wantsFeatures && !isMixture {
            if let path = o.classifier {
                classifier = try ClassifierTool.load(path: path)
            } else if runData.all.labels != nil {
                classifier = try domainClassifier(runDirectory: runDir, runData: runData, run: run, log: log)
            }
        }
        let featuresOf: (Tensor) -> Tensor
        if let c = classifier {
            guard c.classifier.inputDim == run.model.dataDim else {
                throw DataError(file: o.classifier ?? "classifier", problem: "classifier takes \(c.classifier.inputDim) inputs, the model makes \(run.model.dataDim)")
            }
            // The classifier has its own normalisation: map back to data units, then into its range.
            featuresOf = { c.classifier.features(c.normalization.apply(stats.inverse($0))) }
            featureInfo = ["space": "classifier penultimate layer (\(c.classifier.net.layers.compactMap { ($0 as? Linear)?.weight.shape[0] }.dropLast().last ?? 0) features)",
                           "classifier": o.classifier ?? classifierPath(runDirectory: runDir), "classifier_sha256": c.sha256,
                           "classifier_held_out_accuracy": c.heldOutAccuracy as Any]
        } else {
            featuresOf = { $0 }
            // Without feature-based metrics, say why: none asked, or none applies (all skipped).
            let skipped = o.metrics.filter { ["fid", "kid", "pr", "dc", "score", "modes"].contains($0) && inapplicable[$0] != nil }
            let none = skipped.first.map { "none (\(skipped.joined(separator: ", ")) do not apply: \(inapplicable[$0]!))" } ?? "none (no feature-based metric requested)"
            featureInfo = ["space": wantsFeatures ? "pixels (normalised data values; no labelled data for a domain classifier)" : none]
            if wantsFeatures && !isMixture {
                warnings.append("metrics computed in pixel space: the data has no labels to train a domain classifier; values are not comparable with feature-based FID")
            }
        }

        var pendingImages: [() throws -> Void] = []

        var results: [String: Any] = [:]
        var table: [(String, String)] = []
        let fakeFeatures = featuresOf(samples), realFeatures = featuresOf(reference)
        let trainSubset: Tensor? = o.floor ? {
            var rng = RandomStream.evaluation.generator(seed: o.seed)
            let idx = Array(rng.permutation(runData.train.count).prefix(min(samples.shape[0], runData.train.count))).map { runData.train[$0] }
            return stats.apply(runData.all.subset(idx).samples)
        }() : nil

        func encode<T: Encodable>(_ v: T) throws -> Any {
            try JSONSerialization.jsonObject(with: Evaluator.jsonEncoder().encode(v))
        }
        func featureMetrics(_ fake: Tensor, _ real: Tensor, into out: inout [String: Any], label: String) throws {
            if requested.contains("fid") {
                let r = try Metrics.fid(real: real, fake: fake)
                out["fid"] = try encode(r)
                warnings += r.warnings
                table.append(("FID" + label, String(format: "%.4f", r.value)))
            }
            if requested.contains("kid") {
                let r = try Metrics.kid(real: real, fake: fake, subsets: o.kidSubsets, subsetSize: o.kidSubsetSize, seed: o.seed)
                out["kid"] = try encode(r)
                warnings += r.warnings
                table.append(("KID (MMD², raw)" + label, String(format: "%.5f ± %.5f", r.mean, r.std)))
            }
            if requested.contains("pr") {
                let r = try Metrics.precisionRecall(real: real, fake: fake, k: o.prK)
                out["precision_recall"] = try encode(r)
                table.append(("precision / recall (k=\(o.prK))" + label, String(format: "%.4f / %.4f", r.precision, r.recall)))
                // Collapse: samples far less spread than the real data, or all samples on the
                // real manifold while they cover none of it (precision 1, recall 0).
                let d = try Metrics.diversity(real: real, fake: fake)
                out["diversity"] = try encode(d)
                table.append(("diversity: samples / real" + label, String(format: "%.4g / %.4g (ratio %.3f)", d.samples, d.reference, d.ratio)))
                if label.isEmpty && (d.collapsed || (r.precision >= 0.99 && r.recall <= 0.01)) {
                    warnings.append("mode collapse: the samples' mean pairwise distance is \(String(format: "%.3f", d.ratio)) of the real data's"
                                    + String(format: " (precision %.3f, recall %.3f)", r.precision, r.recall)
                                    + "; the generator produces a few kinds of sample (or one)")
                }
            }
            if requested.contains("dc") {
                let r = try Metrics.densityCoverage(real: real, fake: fake, k: o.dcK)
                out["density_coverage"] = try encode(r)
                table.append(("density / coverage (k=\(o.dcK))" + label, String(format: "%.4f / %.4f", r.density, r.coverage)))
            }
        }
        if !isMixture {
            try featureMetrics(fakeFeatures, realFeatures, into: &results, label: "")
            if let t = trainSubset {
                var floorResults: [String: Any] = [:]
                try featureMetrics(featuresOf(t), realFeatures, into: &floorResults, label: " [floor: train vs reference]")
                results["floor_train_vs_reference"] = floorResults
            }
        }
        if let c = classifier {
            let probs = c.classifier.probabilities(c.normalization.apply(stats.inverse(samples)))
            if requested.contains("score") {
                let r = try Metrics.classifierScore(probabilities: probs, splits: 1)
                results["classifier_score"] = try encode(r)
                table.append(("classifier score (IS)", String(format: "%.4f", r.mean)))
            }
            if requested.contains("modes") {
                var refDist: [Double]? = nil
                if let labels = referenceLabels, let k = Optional(c.classifier.classes) {
                    refDist = Metrics.labelDistribution(labels: labels, classCount: k)
                }
                let r = try Metrics.modeCoverage(probabilities: probs, reference: refDist)
                results["modes"] = try encode(r)
                table.append(("classes >= 2% / KL to reference", "\(r.classesCovered) / " + String(format: "%.4f", r.klToReference)))
                if let cf = r.confidentFraction { table.append(("confident (p >= 0.9)", String(format: "%.3f", cf))) }
            }
            // Conditional models: how often the classifier hears (or sees) the class asked for.
            if let asked = requestedLabels, asked.count == samples.shape[0], asked.allSatisfy({ $0 < c.classifier.classes }) {
                let fraction = argmaxAgreement(probs, asked)
                results["label_agreement"] = ["fraction": fraction, "samples": asked.count]
                table.append(("label agreement (classifier = asked class)", String(format: "%.4f", fraction)))
            }
            // The same judge on real clips the model never saw: the values to read the above against.
            if requested.contains("score") || requested.contains("modes") {
                let realProbs = c.classifier.probabilities(c.normalization.apply(stats.inverse(reference)))
                var real: [String: Any] = [:]
                if requested.contains("score") {
                    let r = try Metrics.classifierScore(probabilities: realProbs, splits: 1)
                    real["classifier_score"] = try encode(r)
                    table.append(("classifier score (IS) [real reference]", String(format: "%.4f", r.mean)))
                }
                if requested.contains("modes") {
                    let r = try Metrics.modeCoverage(probabilities: realProbs, reference: nil)
                    real["modes"] = try encode(r)
                    table.append(("classes >= 2% [real reference]", "\(r.classesCovered)"))
                }
                if let labels = referenceLabels, labels.count == reference.shape[0] {
                    real["classifier_accuracy"] = argmaxAgreement(realProbs, labels)
                }
                results["real_reference"] = real
            }
        }
        if requested.contains("memorization") {
            let trainImages = stats.apply(runData.all.subset(runData.train).samples)
            let held = stats.apply(runData.all.subset(runData.heldOut).samples)
            let m = try Memorization.measure(samples: samples, train: trainImages, heldOut: held)
            var r = try encode(m) as! [String: Any]
            if let shape = run.imageShape {
                let path = runDir + "/memorization-closest.png"
                pendingImages.append { try m.writeClosestPairs(samples: samples, train: trainImages, shape: shape, stats: stats, to: path) }
                r["closest_pairs_png"] = path
            }
            results["memorization"] = r
            table.append(("memorised (NN < \(String(format: "%.3f", m.threshold)))", String(format: "%.4f", m.fraction)))
        }
        if requested.contains("elbo"), let vae = loaded.model as? LikelihoodModel {
            let r = try likelihoodBounds(vae, reference: reference, k: o.iwaeK, seed: o.seed)
            results["elbo"] = r.report
            table.append(("negative ELBO (nats)", String(format: "%.2f", r.negativeELBO)))
            table.append(("IWAE bound, k=\(o.iwaeK) (nats)", String(format: "%.2f", r.iwae)))
        }
        if requested.contains("mixture"), let mix = Mixture2D(rawValue: run.data) {
            let raw = stats.inverse(samples)
            var e: [String: Any] = [:]
            if mix != .moons {
                let r = try mix.evaluate(samples: raw)
                e = try encode(r) as! [String: Any]
                table.append(("modes captured", "\(r.modesCaptured) / \(r.modeCount)"))
                table.append(("high quality", String(format: "%.1f%%", 100 * r.highQualityFraction)))
                e["mode_shares"] = r.modeShares
                e["weak_modes"] = r.weakModes
                table.append(("modes with >= 1/4 of a uniform share", "\(r.modeCount - r.weakModes.count) / \(r.modeCount)"))
                if !r.weakModes.isEmpty {
                    warnings.append("\(r.weakModes.count) of \(r.modeCount) modes hold under a quarter of their uniform share (1/\(r.modeCount)) of high-quality samples"
                                    + " (shares " + r.modeShares.map { String(format: "%.3f", $0) }.joined(separator: ", ") + "): they are barely captured")
                }
            }
            let path = runDir + "/samples/scatter.png"
            pendingImages.append { try Scatter.write(points: raw, modes: mix, to: path) }
            e["scatter_png"] = path
            results["mixture"] = e
        }

        let report: [String: Any] = [
            "checkpoint": o.checkpoint, "step": loaded.progress.step, "seed": o.seed,
            "samples": ["source": samplesSource, "count": samples.shape[0]],
            "reference": ["source": referenceSource, "count": reference.shape[0]],
            "features": featureInfo, "metrics": results, "warnings": warnings,
            "skipped_metrics": inapplicable.mapValues { $0 },
        ]
        let out = o.output ?? runDir + "/eval.json"
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(data, to: out, createDirectories: true)
        for write in pendingImages { try write() }
        let width = table.map(\.0.count).max() ?? 0
        var text = "samples: \(samples.shape[0]) (\(samplesSource)); reference: \(reference.shape[0]) (\(referenceSource))\n"
        text += "features: \(featureInfo["space"] ?? "")\n"
        for (k, v) in table { text += k.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + v + "\n" }
        for w in Set(warnings) { text += "warning: \(w)\n" }
        return Outcome(report: report, table: text, path: out)
    }

    /// Negative ELBO and the IWAE bound (Burda et al. 2016) of a VAE on reference data, nats per
    /// image. With dynamic binarisation in training, the reference is binarised once with
    /// Bernoulli draws from `seed` (the binarised-MNIST test protocol); the ELBO uses one
    /// reparameterisation sample per image with the closed-form KL.
    static func likelihoodBounds(_ vae: any LikelihoodModel, reference: Tensor, k: Int, seed: UInt64) throws -> (negativeELBO: Double, iwae: Double, report: [String: Any]) {
        var rng = RandomStream.evaluationSubsets.generator(seed: seed)
        let (x, binarized) = try vae.likelihoodReference(reference, rng: &rng)
        var elbo = 0.0
        let n = x.shape[0]
        for start in stride(from: 0, to: n, by: 500) {
            let rows = Array(start..<min(n, start + 500))
            let part = x.gathered(rows: rows)
            let eps = Tensor.randomNormal([rows.count, vae.latentDim], using: &rng)
            elbo += vae.negativeELBO(x: part, eps: eps).scalars.reduce(0.0) { $0 + Double($1) }
        }
        elbo /= Double(n)
        let iw = vae.iwaeBound(x: x, k: k, rng: &rng, maxRows: 1024)
        let iwae = iw.reduce(0, +) / Double(n)
        let report: [String: Any] = [
            "negative_elbo_nats": elbo, "iwae_nats": iwae, "iwae_k": k, "images": n,
            "data": binarized ? "reference binarised once (Bernoulli draws, seed \(seed))" : "reference as is",
            "likelihood": vae.likelihoodName,
        ]
        return (elbo, iwae, report)
    }

    /// Where a run keeps its domain classifier: `<run>/classifier.safetensors`.
    static func classifierPath(runDirectory: String) -> String { runDirectory + "/classifier.safetensors" }

    /// The run's domain classifier, `<run>/classifier.safetensors`, trained on the run's training
    /// split (30 epochs) and saved there when missing. `shownDirectory` is the run's name in
    /// messages when `runDirectory` is a staging folder that will be moved there.
    /// The fraction of rows of `probabilities` `[N, K]` whose most probable class (the first on
    /// ties) is `labels[i]`; 0 for N = 0.
    static func argmaxAgreement(_ probabilities: Tensor, _ labels: [Int]) -> Double {
        let k = probabilities.shape[1]
        var agree = 0
        probabilities.withUnsafeScalars { p in
            for (i, l) in labels.enumerated() {
                var best = 0
                for j in 1 ..< k where p[i * k + j] > p[i * k + best] { best = j }
                if best == l { agree += 1 }
            }
        }
        return Double(agree) / Double(max(labels.count, 1))
    }

    static func domainClassifier(runDirectory: String, shownDirectory: String? = nil, runData: RunData, run: RunConfig,
                                 log: (String) -> Void) throws -> ClassifierTool.Loaded {
        let path = classifierPath(runDirectory: runDirectory)
        if !FileManager.default.fileExists(atPath: path) {
            log("training the domain classifier on the run's training split (saved to \(classifierPath(runDirectory: shownDirectory ?? runDirectory)))")
            let t = try ClassifierTool.train(dataset: runData.all, train: runData.train, heldOut: runData.heldOut,
                                             normalization: run.normalization, epochs: 30, seed: run.model.seed, spec: run.spec)
            try ClassifierTool.save(t, to: path)
            log(String(format: "domain classifier: held-out accuracy %.4f", t.heldOutAccuracy))
        }
        return try ClassifierTool.load(path: path)
    }

    /// Samples given in the data's units must lie in the data's range (a [0, 1] file for 0..255
    /// data is an error, not a silently bad score).
    public static func checkScale(_ x: Tensor, stats: NormalizationStats, file: String) throws {
        guard stats.kind == .symmetric || stats.kind == .unit else { return }
        let span = stats.high - stats.low
        let lo = Double(x.minValue), hi = Double(x.maxValue)
        // A constant file (a collapsed generator) is legitimate; values spread over a small
        // fraction of the range ([0, 1] floats for 0..255 data) are not.
        let narrow = hi > lo && hi - lo < 0.1 * span
        if lo < stats.low - 0.05 * span || hi > stats.high + 0.05 * span || narrow {
            throw DataError(file: file, problem: String(format: "values span [%g, %g] but the model's data are in [%g, %g]: samples on the wrong scale", lo, hi, stats.low, stats.high),
                            hint: "give samples in the data's own units (e.g. 0..255 pixels), as `conjure sample --out X.npy` writes them")
        }
    }
}

func sha256Hex(_ text: String) -> String { DataFetch.sha256Hex(of: Data(text.utf8)) }
