import Foundation
import ConjureData
import ConjureModels

extension PreparedData {
    /// Whether `path` names a text file (`.txt`, any case), read by ``loadText(_:path:)``.
    public static func isText(path: String) -> Bool { (path as NSString).pathExtension.lowercased() == "txt" }

    /// Loads a UTF-8 text file for a token model (``TokenDataConfig``): split as
    /// ``TextSplit`` says (lines mode: `min(1000, 10%)` seeded lines held out, with the run's
    /// seed; stream mode: the last 10% of the characters), vocabulary from the training part,
    /// and the training rows the trainer batches:
    ///
    /// - lines mode: one row per line, `<eos> c1 ... cL <eos>` padded with `<eos>` to the longest
    ///   line + 2 (``EncodedLines``);
    /// - stream mode: the training text cut into non-overlapping blocks of `context + 1` tokens
    ///   (a block's first `context` tokens predict its last `context`); the tail shorter than a
    ///   block is dropped.
    ///
    /// Normalisation is `none` (rows hold token indices as Float32). The data set rides along in
    /// ``text`` for the vocabulary and the held-out part.
    ///
    /// - Throws: ``ConfigError`` for a model that does not read text or an option that does not
    ///   apply (`--normalize`, `--label-column`, a `--context` longer than the text), ``DataError``
    ///   for invalid text or a vocabulary that differs from the one the configuration holds
    ///   (the file changed since the checkpoint).
    public static func loadText(_ o: TrainOptions, path: String) throws -> PreparedData {
        guard let cfg = o.model.tokenData else {
            throw ConfigError(option: "--model", problem: "\(path) is text; --model \(o.model.preset) does not model text",
                              hint: "use one of \(TextFamily.presets.keys.sorted().joined(separator: ", "))")
        }
        if let n = o.normalization, n != .none {
            throw ConfigError(option: "--normalize", problem: "text is read as token indices; \(n.rawValue) does not apply", hint: "drop --normalize")
        }
        if (o.evalEvery ?? 0) > 0 {
            throw ConfigError(option: "--eval-every", problem: "measures FID/KID of images and vectors; it does not apply to text",
                              hint: "run `conjure evaluate --checkpoint F` for the held-out NLL")
        }
        if o.labelColumn != nil { throw ConfigError(option: "--label-column", problem: "applies to CSV files only; \(path) is text") }
        let ds = try TextDataset.load(path: path, mode: cfg.textMode, unknownPolicy: cfg.unknownCharacters, seed: o.model.seed)
        if let v = cfg.vocabulary, v != ds.vocabulary {
            throw DataError(file: path, problem: "the vocabulary built from the training split (\(ds.vocabulary.count) tokens) differs from the configuration's (\(v.count) tokens)",
                            hint: "the file changed since the checkpoint was written; use the same file")
        }
        let rows: Tensor
        switch ds.encoded {
        case .lines(let train, _):
            rows = Tensor(shape: [train.count, train.width], scalars: train.tokens.map(Float.init))
        case .stream(let train, _):
            let r = cfg.context + 1
            let n = train.tokens.count / r
            guard n >= 1 else {
                throw ConfigError(option: "--context", problem: "\(cfg.context) characters of context need more than the \(train.tokens.count) training characters of \(path)",
                                  hint: "use a smaller --context")
            }
            rows = Tensor(shape: [n, r], scalars: train.tokens.prefix(n * r).map(Float.init))
        }
        if rows.shape[0] < o.model.batchSize {
            throw ConfigError(option: "--batch-size", problem: "\(o.model.batchSize) is larger than the \(rows.shape[0]) training rows of \(path)",
                              hint: "use a smaller batch size")
        }
        var data = PreparedData(train: TrainingRows(normalized: rows), labels: nil, normalization: .identity,
                                spec: .tokens(vocabulary: ds.vocabulary.count, length: rows.shape[1]), source: path, heldOut: [],
                                dropped: 0, contentSHA256: KnownDataSets.contentSHA256(path: path))
        data.text = ds
        return data
    }
}

/// The held-out rows of a text data set laid out as the training rows: lines mode every held-out
/// line (`<eos> c1 ... cL <eos>` padded), stream mode consecutive blocks of `rowLength` tokens
/// overlapping by one (each held-out character after the first is predicted once).
///
/// - Throws: ``DataError`` naming `source` when the held-out part is shorter than one block.
public func heldOutTextRows(_ ds: TextDataset, rowLength: Int, source: String) throws -> Tensor {
    switch ds.encoded {
    case .lines(_, let held):
        return Tensor(shape: [held.count, held.width], scalars: held.tokens.map(Float.init))
    case .stream(_, let held):
        let c = rowLength - 1
        guard held.tokens.count > c else {
            throw DataError(file: source, problem: "the held-out last 10% (\(held.tokens.count) characters) is shorter than one block of \(c + 1)")
        }
        let starts = Array(stride(from: 0, through: held.tokens.count - c - 1, by: c))
        var s = [Float](); s.reserveCapacity(starts.count * (c + 1))
        for st in starts { s += held.tokens[st...(st + c)].map(Float.init) }
        return Tensor(shape: [starts.count, c + 1], scalars: s)
    }
}

extension SampleWriter {
    /// The writer of in-training samples of a run: for token data (a text model) a UTF-8 file
    /// `samples/step-NNNNNN.txt` (one sample a line in lines mode, blocks in stream mode) decoded
    /// with the run's vocabulary; for sound read from an audio folder ``audio(sampleRate:)``
    /// (spectrogram PNG and WAV files); otherwise ``training(for:)-swift.type.method`` of the
    /// run's data kind.
    public static func training(for run: RunConfig) -> SampleWriter? {
        if case .sequence = run.spec, let rate = run.audio?.sampleRate { return audio(sampleRate: rate) }
        guard case .tokens = run.spec, let cfg = run.model.tokenData, let vocabulary = cfg.vocabulary else {
            return training(for: run.spec)
        }
        let mode = cfg.textMode ?? .lines
        return SampleWriter(fileExtension: "txt") { samples, _, _, path in
            try TextSampleWriter.write(decodeTokenRows(samples, vocabulary: vocabulary, mode: mode), to: path,
                                       layout: mode == .lines ? .lines : .defaultBlocks, createDirectories: true)
        }
    }
}

/// Decodes token rows `[N, L]` to texts: lines mode up to a row's first `<eos>`, stream mode the
/// whole row.
public func decodeTokenRows(_ rows: Tensor, vocabulary: Vocabulary, mode: TextMode) -> [String] {
    let n = rows.shape[0], l = rows.count / max(n, 1)
    return (0..<n).map { i in
        var t = rows.scalars[(i * l)..<((i + 1) * l)].map { Int32($0) }
        if mode == .lines, let e = vocabulary.endOfSample, let k = t.firstIndex(of: e) { t = Array(t[..<k]) }
        return vocabulary.decode(t)
    }
}
