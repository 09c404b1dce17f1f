import Foundation
import ConjureData
import ConjureModels

/// `conjure evaluate` for text models (``TokenSequenceModel``): the held-out negative
/// log-likelihood and, in lines mode, what the samples look like next to the data.
public enum TextEvaluator {
    /// What is measured and written to `eval.json`:
    ///
    /// - `held_out_nll`: mean negative log-likelihood of the held-out split in **nats per
    ///   character**, every prediction counted once (lines mode: each held-out line from its
    ///   `<eos>` start, the closing `<eos>` included, as makemore counts; stream mode: the held-out
    ///   last 10% in consecutive blocks of `context` predictions, each block starting without
    ///   context before it, as nanoGPT's `estimate_loss` does over its blocks);
    /// - `held_out_bits_per_char` = nll / ln 2, `perplexity` = exp(nll);
    /// - lines mode: `count` samples at temperature 1 (stream ``RandomStream/textGeneration``,
    ///   `seed`): `novel_fraction` (not a training line), `unique_fraction` (distinct samples /
    ///   count), mean lengths and length histograms of the samples and the training lines.
    ///
    /// - Parameters:
    ///   - checkpoint: a text model's checkpoint.
    ///   - count: lines-mode samples (default 1000).
    ///   - seed: the samples' seed.
    ///   - output: the report path (default `eval.json` in the run directory).
    ///   - prepareModel: called with a text model before anything is measured, as
    ///     ``EvaluateOptions/prepareModel`` (`conjure evaluate` refuses the diffusion sampler
    ///     options there).
    /// - Returns: nil when the checkpoint's model is not a text model (the caller evaluates it
    ///   as images or vectors).
    /// - Throws: ``DataError`` when the data file changed since training (another vocabulary) or
    ///   cannot be read, ``ConfigError`` for a bad count or from `prepareModel`.
    public static func runIfText(checkpoint: String, count: Int?, seed: UInt64, output: String?,
                                 prepareModel: ((any GenerativeModel) throws -> Void)? = nil, log: (String) -> Void) throws -> Evaluator.Outcome? {
        let loaded = try Checkpoint.read(path: checkpoint)
        guard let model = loaded.model as? any TokenSequenceModel else { return nil }
        try prepareModel?(loaded.model)
        let run = loaded.run
        if let c = count, c < 2 || c > 200_000 { throw ConfigError(option: "--count", problem: "must be between 2 and 200000, got \(c)") }
        let ds = try TextDataset.load(path: run.data, mode: model.textMode, unknownPolicy: run.model.tokenData?.unknownCharacters ?? .error,
                                      seed: run.model.seed)
        guard ds.vocabulary == model.vocabulary else {
            throw DataError(file: run.data, problem: "the vocabulary of its training split differs from the checkpoint's (the file changed since training)",
                            hint: "evaluate with the file the run trained on")
        }
        let rows = try heldOutTextRows(ds, rowLength: model.rowLength, source: run.data)
        let start = Date()
        let (nats, n) = model.negativeLogLikelihood(rows: rows)
        let nll = nats / Double(max(n, 1))
        var report: [String: Any] = [
            "checkpoint": checkpoint, "family": run.model.family, "preset": run.model.preset, "data": run.data, "mode": model.textMode.rawValue,
            "held_out_nll": nll, "held_out_bits_per_char": nll / log2e_ln, "perplexity": exp(nll), "held_out_predictions": n,
            "vocabulary_size": model.vocabulary.count, "nll_seconds": Date().timeIntervalSince(start),
        ]
        var table = String(format: "held-out NLL     %.4f nats/char  (%.4f bits/char, perplexity %.3f) over %d predictions\n", nll, nll / log2e_ln, exp(nll), n)
        if model.textMode == .lines {
            let k = count ?? 1000
            var rng = RandomStream.textGeneration.generator(seed: seed)
            let samples = try model.generate(count: k, options: GenerationOptions(), rng: &rng)
            let train = ds.split.train.map { String(String.UnicodeScalarView($0)) }
            let known = Set(train)
            let novel = Double(samples.filter { !known.contains($0) }.count) / Double(k)
            let unique = Double(Set(samples).count) / Double(k)
            func lengths(_ s: [String]) -> [Int] { s.map { $0.unicodeScalars.count } }
            func histogram(_ l: [Int]) -> [String: Int] { Dictionary(l.map { (String($0), 1) }, uniquingKeysWith: +) }
            let sl = lengths(samples), dl = lengths(train)
            let sm = Double(sl.reduce(0, +)) / Double(max(sl.count, 1)), dm = Double(dl.reduce(0, +)) / Double(max(dl.count, 1))
            report["samples"] = k
            report["novel_fraction"] = novel
            report["unique_fraction"] = unique
            report["sample_length_mean"] = sm
            report["data_length_mean"] = dm
            report["sample_length_histogram"] = histogram(sl)
            report["data_length_histogram"] = histogram(dl)
            report["example_samples"] = Array(samples.prefix(20))
            table += String(format: "samples          %d: %.1f%% novel, %.1f%% unique, mean length %.2f (training lines %.2f)\n", k, novel * 100, unique * 100, sm, dm)
            let maxLen = max(sl.max() ?? 0, dl.max() ?? 0)
            table += "length  samples  data (fractions)\n"
            for len in 0...maxLen {
                let a = Double(sl.filter { $0 == len }.count) / Double(max(sl.count, 1)), b = Double(dl.filter { $0 == len }.count) / Double(max(dl.count, 1))
                if a > 0 || b > 0 { table += String(format: "%6d  %7.4f  %7.4f\n", len, a, b) }
            }
        }
        let path = output ?? Evaluator.runDirectory(ofCheckpoint: checkpoint) + "/eval.json"
        let json = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write(json, to: path, createDirectories: true)
        log("evaluated \(run.model.preset) on the held-out split of \(run.data)")
        return Evaluator.Outcome(report: report, table: table, path: path)
    }

    /// ln 2, the nats in a bit.
    static let log2e_ln = 0.6931471805599453
}
