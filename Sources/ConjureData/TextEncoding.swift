import Foundation

/// Lines-mode samples as **padded index sequences plus lengths**.
///
/// Row `i` of ``tokens`` (shape `[N, maxLength + 2]`) is `<eos>, c1, ..., cL, <eos>` followed by
/// ``padding``; the model reads position `t` and predicts position `t + 1`, so a line of `L`
/// characters gives `L + 1` predictions (the final end-of-sample token counted, as makemore
/// counts it) and the next-character context always starts fresh at the line's start.
///
/// Why padded rows and not one flat stream with separators: each line is an independent sample
/// (a name does not condition on the previous name), so losses and held-out numbers match
/// makemore's per-name protocol exactly, and lines are short (names: at most 15 characters), so
/// padding wastes little.
public struct EncodedLines: Sendable {
    /// Padding value in ``tokens`` after a line's final `<eos>` (also `<eos>`, index 0, so that a
    /// padded row is still a valid input sequence; targets there are masked by ``lengths``).
    public static let padding: Int32 = 0
    /// Target value at padded positions in ``batch(_:)`` (PyTorch's `ignore_index=-1` idiom, as
    /// in makemore).
    public static let ignoreTarget: Float = -1

    /// Row-major `[count, width]` token indices.
    public var tokens: [Int32]
    /// Predictions per row: the line's length + 1.
    public var lengths: [Int32]
    /// Row width: the longest line + 2.
    public var width: Int
    /// Number of lines.
    public var count: Int { lengths.count }

    /// Encodes lines with a vocabulary that has an end-of-sample token.
    ///
    /// - Parameters:
    ///   - lines: the samples (no line ends).
    ///   - vocabulary: a lines-mode vocabulary (``Vocabulary/hasEndOfSample``).
    ///   - source: the file, for errors.
    ///   - lineNumbers: each line's 1-based number in the file, for errors (default 1, 2, ...).
    ///   - maxLength: rows are at least `maxLength + 2` wide (to share a width between splits).
    /// - Throws: ``DataError`` for a character outside the vocabulary (policy
    ///   ``UnknownCharacterPolicy/error``), located as `line L, column C`.
    public init(lines: [[Unicode.Scalar]], vocabulary: Vocabulary, source: String,
                lineNumbers: [Int]? = nil, maxLength: Int = 0) throws {
        precondition(vocabulary.hasEndOfSample, "EncodedLines: the vocabulary has no end-of-sample token (a stream-mode vocabulary)")
        let longest = max(lines.map(\.count).max() ?? 0, maxLength)
        width = longest + 2
        tokens = [Int32](repeating: Self.padding, count: lines.count * width)
        lengths = []
        lengths.reserveCapacity(lines.count)
        for (i, line) in lines.enumerated() {
            let number = lineNumbers?[i] ?? i + 1
            let ids = try vocabulary.encode(line, source: source) { "line \(number), column \($0 + 1)" }
            for (k, t) in ids.enumerated() { tokens[i * width + 1 + k] = t }
            lengths.append(Int32(line.count + 1))
        }
    }

    /// A batch of rows as model inputs and targets, both `[B, width - 1]` Float32 tensors of
    /// token indices: `inputs[b, t] = tokens[row, t]`, `targets[b, t] = tokens[row, t + 1]` for
    /// `t < lengths[row]`, ``ignoreTarget`` (-1) after.
    ///
    /// - Precondition: every index is in `0..<count`.
    public func batch(_ rows: [Int]) -> (inputs: Tensor, targets: Tensor) {
        let t = width - 1
        var x = [Float](repeating: 0, count: rows.count * t)
        var y = [Float](repeating: Self.ignoreTarget, count: rows.count * t)
        for (b, r) in rows.enumerated() {
            precondition(r >= 0 && r < count, "EncodedLines.batch: row \(r) outside 0..<\(count)")
            let n = Int(lengths[r])
            for k in 0 ..< t {
                x[b * t + k] = Float(tokens[r * width + k])
                if k < n { y[b * t + k] = Float(tokens[r * width + k + 1]) }
            }
        }
        return (Tensor(shape: [rows.count, t], scalars: x), Tensor(shape: [rows.count, t], scalars: y))
    }

    /// Every prediction of every line as fixed windows of the `k` previous tokens (the makemore
    /// MLP's dataset): `contexts` `[M, k]`, `targets` `[M]`, where `M` is the sum of
    /// ``lengths``; positions before a line's start hold `<eos>` (index 0), as makemore pads.
    ///
    /// - Precondition: `k >= 1`.
    public func contextWindows(k: Int) -> (contexts: Tensor, targets: Tensor) {
        precondition(k >= 1, "EncodedLines.contextWindows: k must be at least 1, got \(k)")
        let m = lengths.reduce(0) { $0 + Int($1) }
        var ctx = [Float](repeating: 0, count: m * k)
        var tgt = [Float](repeating: 0, count: m)
        var j = 0
        for r in 0 ..< count {
            let row = r * width
            for p in 0 ..< Int(lengths[r]) {
                // Predict tokens[row + p + 1] from tokens[row + p - k + 1 ... row + p].
                for q in 0 ..< k {
                    let pos = p - k + 1 + q
                    ctx[j * k + q] = pos >= 0 ? Float(tokens[row + pos]) : Float(Self.padding)
                }
                tgt[j] = Float(tokens[row + p + 1])
                j += 1
            }
        }
        return (Tensor(shape: [m, k], scalars: ctx), Tensor(shape: [m], scalars: tgt))
    }
}

/// Stream-mode text as one index buffer, from which blocks of `context + 1` tokens are drawn.
public struct EncodedStream: Sendable {
    /// The token indices, in text order.
    public var tokens: [Int32]

    /// Encodes a stream.
    ///
    /// - Parameters:
    ///   - text: the scalars.
    ///   - vocabulary: the vocabulary (a stream-mode one, without end-of-sample token, normally).
    ///   - source: the file, for errors.
    ///   - locate: maps a position in `text` to a location for errors.
    /// - Throws: ``DataError`` for a character outside the vocabulary (policy
    ///   ``UnknownCharacterPolicy/error``).
    public init(text: [Unicode.Scalar], vocabulary: Vocabulary, source: String,
                locate: ((Int) -> String)? = nil) throws {
        tokens = try vocabulary.encode(text, source: source, locate: locate)
    }

    /// Random blocks for training (nanoGPT's `get_batch`): `count` start offsets drawn uniformly
    /// from `0 ... tokens.count - context - 1` with `rng`; block `b` is
    /// `tokens[s ..< s + context + 1]`, returned as `inputs` = its first `context` tokens and
    /// `targets` = its last `context`, both `[count, context]` Float32 index tensors.
    /// The same generator state gives the same blocks.
    ///
    /// - Precondition: `tokens.count > context >= 1`.
    public func randomBlocks(count: Int, context: Int, using rng: inout RandomGenerator) -> (inputs: Tensor, targets: Tensor) {
        precondition(context >= 1 && tokens.count > context,
                     "EncodedStream.randomBlocks: context \(context) needs more than \(context) tokens, have \(tokens.count)")
        let range = UInt64(tokens.count - context)
        let starts = (0 ..< count).map { _ in Int(rng.next() % range) }
        return blocks(starts: starts, context: context)
    }

    /// Consecutive non-overlapping blocks for evaluation: starts `0, context, 2 context, ...`
    /// while a full block of `context + 1` tokens fits, so every token but the first and the
    /// tail shorter than a block is predicted exactly once. `[B, context]` inputs and targets.
    ///
    /// - Precondition: `tokens.count > context >= 1`.
    public func evaluationBlocks(context: Int) -> (inputs: Tensor, targets: Tensor) {
        precondition(context >= 1 && tokens.count > context,
                     "EncodedStream.evaluationBlocks: context \(context) needs more than \(context) tokens, have \(tokens.count)")
        let starts = Array(stride(from: 0, through: tokens.count - context - 1, by: context))
        return blocks(starts: starts, context: context)
    }

    /// The blocks at the given start offsets (`[B, context]` inputs, targets shifted by one).
    ///
    /// - Precondition: `0 <= s` and `s + context < tokens.count` for each start.
    public func blocks(starts: [Int], context: Int) -> (inputs: Tensor, targets: Tensor) {
        var x = [Float](repeating: 0, count: starts.count * context)
        var y = [Float](repeating: 0, count: starts.count * context)
        for (b, s) in starts.enumerated() {
            precondition(s >= 0 && s + context < tokens.count,
                         "EncodedStream.blocks: start \(s) + context \(context) is past \(tokens.count) tokens")
            for k in 0 ..< context {
                x[b * context + k] = Float(tokens[s + k])
                y[b * context + k] = Float(tokens[s + k + 1])
            }
        }
        return (Tensor(shape: [starts.count, context], scalars: x), Tensor(shape: [starts.count, context], scalars: y))
    }
}

/// A text data set ready for training: corpus, mode, split, training-only vocabulary and the
/// encoded training and held-out parts.
public struct TextDataset: Sendable {
    /// The encoded parts of one mode.
    public enum Encoded: Sendable {
        /// Lines mode: padded rows (training, held-out), sharing one row width.
        case lines(train: EncodedLines, heldOut: EncodedLines)
        /// Stream mode: index buffers (training = first 90%, held-out = last 10%).
        case stream(train: EncodedStream, heldOut: EncodedStream)
    }

    /// The corpus read.
    public var corpus: TextCorpus
    /// The mode used (given, or ``TextCorpus/defaultMode``).
    public var mode: TextMode
    /// Whether ``mode`` came from ``TextCorpus/defaultMode`` rather than an option.
    public var modeIsDefault: Bool
    /// The split.
    public var split: TextSplit
    /// The vocabulary of the training part.
    public var vocabulary: Vocabulary
    /// The encoded parts.
    public var encoded: Encoded

    /// Reads, splits and encodes a text file.
    ///
    /// - Parameters:
    ///   - path: a UTF-8 text file.
    ///   - mode: `lines` or `stream`; nil picks ``TextCorpus/defaultMode``.
    ///   - unknownPolicy: what a held-out character missing from the training vocabulary does.
    ///   - seed: the lines-mode held-out draw (see ``TextSplit``).
    /// - Throws: ``DataError`` for invalid UTF-8, too little text, or (policy `.error`) a held-out
    ///   character missing from the training vocabulary, located by line and column.
    public static func load(path: String, mode: TextMode? = nil,
                            unknownPolicy: UnknownCharacterPolicy = .error, seed: UInt64 = 42) throws -> TextDataset {
        let corpus = try TextCorpus.load(path: path)
        return try TextDataset(corpus: corpus, mode: mode, unknownPolicy: unknownPolicy, seed: seed)
    }

    /// Splits and encodes a corpus (see ``load(path:mode:unknownPolicy:seed:)``).
    public init(corpus: TextCorpus, mode: TextMode? = nil,
                unknownPolicy: UnknownCharacterPolicy = .error, seed: UInt64 = 42) throws {
        self.corpus = corpus
        self.mode = mode ?? corpus.defaultMode
        self.modeIsDefault = mode == nil
        split = try TextSplit(corpus: corpus, mode: self.mode, seed: seed)
        vocabulary = Vocabulary(training: split, unknownPolicy: unknownPolicy)
        switch self.mode {
        case .lines:
            let longest = max(split.train.map(\.count).max() ?? 0, split.heldOut.map(\.count).max() ?? 0)
            let train = try EncodedLines(lines: split.train, vocabulary: vocabulary, source: corpus.source, maxLength: longest)
            let held = try EncodedLines(lines: split.heldOut, vocabulary: vocabulary, source: corpus.source,
                                        lineNumbers: split.heldOutOrigins, maxLength: longest)
            encoded = .lines(train: train, heldOut: held)
        case .stream:
            let train = try EncodedStream(text: split.train[0], vocabulary: vocabulary, source: corpus.source)
            let offset = split.heldOutOrigins[0]
            let c = corpus
            let held = try EncodedStream(text: split.heldOut[0], vocabulary: vocabulary, source: corpus.source) { p in
                let (l, col) = c.lineAndColumn(ofScalarAt: offset + p)
                return "line \(l), column \(col) (in the held-out last 10%)"
            }
            encoded = .stream(train: train, heldOut: held)
        }
    }
}
