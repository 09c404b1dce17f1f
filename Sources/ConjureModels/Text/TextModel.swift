import Foundation
import ConjureData
import ConjureNN
import ConjureOptim

/// How `conjure sample` draws text: softmax temperature, top-k and nucleus (top-p) truncation,
/// a prompt and a length limit.
public struct GenerationOptions: Sendable, Equatable {
    /// Divides the logits; 0 picks the most likely token (greedy), 1 samples the model as is.
    public var temperature: Float = 1
    /// Keep only the `k` most likely tokens (nil: all).
    public var topK: Int?
    /// Keep the smallest set of most likely tokens whose probability reaches `p` (Holtzman et al.
    /// 2020; nil: all).
    public var topP: Float?
    /// Text every sample starts with (included in the output).
    public var prompt: String = ""
    /// Characters per sample, prompt included: lines mode an upper limit (a sample ends at
    /// `<eos>`; default the longest training line), stream mode the length (default 256).
    public var maxLength: Int?

    /// Sampling with the given settings.
    public init(temperature: Float = 1, topK: Int? = nil, topP: Float? = nil, prompt: String = "", maxLength: Int? = nil) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.prompt = prompt; self.maxLength = maxLength
    }

    /// Checks the ranges.
    ///
    /// - Throws: ``ConfigError`` naming the option.
    public func validate() throws {
        if !(temperature >= 0 && temperature.isFinite) { throw ConfigError(option: "--temperature", problem: "must be a finite value >= 0, got \(temperature)") }
        if let k = topK, k < 1 { throw ConfigError(option: "--top-k", problem: "must be at least 1, got \(k)") }
        if let p = topP, !(p > 0 && p <= 1) { throw ConfigError(option: "--top-p", problem: "must be in (0, 1], got \(p)") }
        if let l = maxLength, l < 1 || l > 1_000_000 { throw ConfigError(option: "--max-length", problem: "must be between 1 and 1000000, got \(l)") }
    }
}

/// A model of token sequences (a character-level language model): `conjure sample` writes its
/// text and `conjure evaluate` measures its held-out likelihood through this capability, never
/// by family.
public protocol TokenSequenceModel: GenerativeModel {
    /// The training split's vocabulary.
    var vocabulary: Vocabulary { get }
    /// Lines (one sample a line, `<eos>`-terminated) or stream.
    var textMode: TextMode { get }
    /// Tokens per data row (lines: longest line + 2; stream: context + 1).
    var rowLength: Int { get }
    /// Generates `count` texts, deterministic for the generator's state.
    ///
    /// - Throws: ``DataError`` for a prompt character outside the vocabulary, ``ConfigError``
    ///   for a bad option (a line end in a lines-mode prompt).
    func generate(count: Int, options: GenerationOptions, rng: inout RandomGenerator) throws -> [String]
    /// The summed negative log-likelihood (nats) of every prediction in `rows` and the number of
    /// predictions, in evaluation mode. Rows are laid out as the training data's: lines mode
    /// `<eos> c1 ... cL <eos>` padded (the final `<eos>` counted), stream mode `context + 1`
    /// tokens (`context` predictions).
    ///
    /// - Shapes: `rows` `[N, rowLength]` token indices.
    func negativeLogLikelihood(rows: Tensor) -> (nats: Double, predictions: Int)
}

/// The character-level language model family: `char-mlp`, `char-gru`, `char-transformer`.
public enum TextFamily: ModelFamily {
    /// `text`.
    public static let name = TextConfig.family
    /// `char-mlp`, `char-gru`, `char-transformer`.
    public static var presets: [String: TextConfig] { TextConfig.presets }
    /// A model initialised from `rng`.
    public static func make(_ config: TextConfig, rng: inout RandomGenerator) -> any GenerativeModel { TextModel(config: config, rng: &rng) }

    /// Token data is read as indices: normalisation `none` only.
    ///
    /// - Throws: ``ConfigError`` naming `--normalize`.
    public static func checkNormalization(_ kind: Normalization, config: TextConfig) throws {
        if kind != .none {
            throw ConfigError(option: "--normalize", problem: "text is read as token indices; \(kind.rawValue) does not apply to --model \(config.preset)",
                              hint: "drop --normalize")
        }
    }

    /// The transformer's positions must cover a lines-mode row.
    ///
    /// - Throws: ``ConfigError`` naming `--text-mode` when the data is not tokens.
    public static func validate(_ config: TextConfig, data: DataSummary) throws {
        guard case .tokens = data.spec, config.vocabulary != nil else {
            throw ConfigError(option: "--data", problem: "--model \(config.preset) needs a text file; \(data.source) is \(data.spec)", hint: "give a UTF-8 .txt file")
        }
    }
}

/// A character-level language model (see ``TextArchitecture``) with one parameter group,
/// `model`, trained on the mean next-token cross-entropy.
public final class TextModel: TokenSequenceModel {
    /// The configuration (with the vocabulary and row length from the data).
    public let config: TextConfig
    let net: any CharNetwork
    /// One group, `model` (state under `optimizer.`, averages under `ema.`).
    public let parameterGroups: [ParameterGroup]
    private var averagedCopy: TextModel?

    /// The vocabulary of a configuration built without data (`bench`): `a`-`z` and `<eos>`.
    static let placeholderVocabulary = Vocabulary(characters: "abcdefghijklmnopqrstuvwxyz".unicodeScalars, endOfSample: true)

    /// A freshly initialised model.
    public init(config: TextConfig, rng: inout RandomGenerator) {
        var c = config
        if c.vocabulary == nil { c.vocabulary = Self.placeholderVocabulary; c.textMode = c.textMode ?? .lines }
        if c.rowLength < 2 { c.rowLength = (c.textMode ?? .lines) == .lines ? 17 : c.context + 1 }
        self.config = c
        let v = c.vocabulary!.count
        switch c.architecture {
        case .mlp: net = CharMLP(vocab: v, context: c.context, embed: c.embedDim, hidden: c.width, rng: &rng)
        case .gru: net = CharGRU(vocab: v, embed: c.embedDim, hidden: c.width, rng: &rng)
        case .transformer:
            net = CharTransformer(vocab: v, blockSize: c.blockSize, width: c.width, layers: c.layers, heads: c.heads, dropout: c.dropout, rng: &rng)
        }
        parameterGroups = [ParameterGroup(name: "model", prefix: "", namedParameters: net.allNamedParameters(), learningRate: c.lr,
                                          stateKeyPrefix: "optimizer.", averaged: true, averagePrefix: "ema.")]
    }

    /// `text`.
    public var family: String { TextFamily.name }
    /// 0: a character model draws no latent; generation draws tokens from its own stream.
    public var latentDim: Int { 0 }
    /// The vocabulary built from the training split (saved in the configuration).
    public var vocabulary: Vocabulary { config.vocabulary! }
    /// Lines (one sample a line with an end token) or stream (blocks of a corpus).
    public var textMode: TextMode { config.textMode ?? .lines }
    /// Tokens per training row (the padded line or the block of context + 1).
    public var rowLength: Int { config.rowLength }
    /// `loss`: mean token cross-entropy, nats per character.
    public var stepStatisticNames: [String] { ["loss"] }
    /// One loss.
    public var lossStatisticCount: Int { 1 }
    /// Nil: the text models are unconditional.
    public func balancedLabels(_ n: Int, offset: Int) -> [Int]? { nil }

    /// Inputs, prediction positions and targets of data rows `[B, R]`: the inputs are each
    /// row's first `R - 1` tokens; lines mode predicts up to and including the row's second
    /// `<eos>`, stream mode every position.
    func predictions(_ rows: Tensor) -> (tokens: [Int], batch: Int, length: Int, positions: [Int], targets: [Int]) {
        precondition(rows.rank == 2 && rows.shape[1] >= 2, "TextModel: rows \(rows.shape) are not [B, R >= 2]")
        let b = rows.shape[0], r = rows.shape[1], t = r - 1
        let s = rows.scalars
        var tokens = [Int](repeating: 0, count: b * t), positions: [Int] = [], targets: [Int] = []
        positions.reserveCapacity(b * t); targets.reserveCapacity(b * t)
        let eos = vocabulary.endOfSample.map(Int.init)
        for i in 0..<b {
            var n = t
            if textMode == .lines, let eos {
                n = (1..<r).first { Int(s[i * r + $0]) == eos } ?? t
            }
            for k in 0..<t { tokens[i * t + k] = Int(s[i * r + k]) }
            for k in 0..<n {
                positions.append(i * t + k)
                targets.append(Int(s[i * r + k + 1]))
            }
        }
        return (tokens, b, t, positions, targets)
    }

    /// The mean cross-entropy (nats per predicted token) of data rows, a graph over the weights.
    ///
    /// - Shapes: `rows` `[B, rowLength]`.
    public func loss(rows: Tensor, noise: inout RandomGenerator) -> Tensor {
        let p = predictions(rows)
        let logits = net.logits(tokens: p.tokens, batch: p.batch, length: p.length, positions: p.positions, noise: &noise)
        return Loss.tokenCrossEntropy(logits: logits, targets: p.targets)
    }

    /// One stage: the mean token cross-entropy of the batch's rows (dropout from
    /// ``RandomStream/forwardNoise`` at the group's update count).
    public func trainingStep(_ batch: TrainingBatch, context: StepContext) -> TrainingStep {
        var noise = context.random(.forwardNoise, counter: context.updates(of: "model"))
        var value = Float.nan
        let stage = StepStage(group: "model") { [self] in
            net.setTraining(true)
            let l = loss(rows: batch.x, noise: &noise)
            value = l.item
            return l
        }
        return TrainingStep(stages: [stage]) { StepMetrics([("loss", value)]) }
    }

    /// The network to sample with: a copy holding the averages under `--ema`, else the live one.
    var samplingNetwork: any CharNetwork {
        parameterGroups[0].averagedCopy(&averagedCopy, make: { [config] in
            var scratch = RandomStream.initialization.generator(seed: config.seed)
            return TextModel(config: config, rng: &scratch)
        }, parameters: { $0.parameterGroups[0].parameters })?.net ?? net
    }

    func evaluating<R>(_ network: any CharNetwork, _ body: () throws -> R) rethrows -> R {
        let was = network.isTraining
        network.setTraining(false)
        defer { network.setTraining(was) }
        return try withoutGrad(body)
    }

    /// The summed negative log-likelihood of the rows' next-token predictions (padding
    /// excluded, the end token included), in nats, with the number of predictions.
    ///
    /// - Shapes: `rows` `[N, L]` token indices.
    public func negativeLogLikelihood(rows: Tensor) -> (nats: Double, predictions: Int) {
        var total = 0.0, count = 0
        var noise = RandomGenerator(seed: 0)
        evaluating(net) {
            let chunk = 256
            var start = 0
            while start < rows.shape[0] {
                let end = min(start + chunk, rows.shape[0])
                let p = predictions(rows.slice(axis: 0, start..<end))
                let logp = net.logits(tokens: p.tokens, batch: p.batch, length: p.length, positions: p.positions, noise: &noise).logSoftmax()
                let v = logp.shape[1]
                logp.withUnsafeScalars { l in
                    for (j, y) in p.targets.enumerated() { total -= Double(l[j * v + y]) }
                }
                count += p.targets.count
                start = end
            }
        }
        return (total, count)
    }

    /// Draws one token from a row of logits with the options' temperature, top-k and top-p;
    /// tokens in `banned` are never drawn.
    static func draw(_ logits: UnsafeBufferPointer<Float>, options o: GenerationOptions, banned: Int?, rng: inout RandomGenerator) -> Int {
        let v = logits.count
        var l = (0..<v).map { Double(logits[$0]) }
        if let banned { l[banned] = -.infinity }
        if o.temperature == 0 {
            return l.indices.max { l[$0] < l[$1] || (l[$0] == l[$1] && $0 > $1) }!
        }
        for i in 0..<v { l[i] /= Double(o.temperature) }
        var order = Array(0..<v).sorted { l[$0] != l[$1] ? l[$0] > l[$1] : $0 < $1 }
        if let k = o.topK, k < v { order = Array(order.prefix(k)) }
        let top = l[order[0]]
        var probs = order.map { exp(l[$0] - top) }
        let z = probs.reduce(0, +)
        for i in probs.indices { probs[i] /= z }
        if let p = o.topP {
            var cum = 0.0, keep = 0
            while keep < probs.count { cum += probs[keep]; keep += 1; if cum >= Double(p) { break } }
            order = Array(order.prefix(keep)); probs = Array(probs.prefix(keep))
            let s = probs.reduce(0, +)
            for i in probs.indices { probs[i] /= s }
        }
        let u = rng.nextUniformDouble()
        var cum = 0.0
        for (i, q) in probs.enumerated() {
            cum += q
            if u < cum { return order[i] }
        }
        return order[probs.count - 1]
    }

    /// Token sequences generated in lock step: each sample starts from `start`, and lines-mode
    /// samples stop at `<eos>`. Returns each sample's generated tokens (without `start`).
    func generateTokens(count: Int, start: [Int], steps: Int, options o: GenerationOptions, rng: inout RandomGenerator) -> [[Int]] {
        let network = samplingNetwork
        let eos = textMode == .lines ? vocabulary.endOfSample.map(Int.init) : nil
        let block = config.blockSize
        var seqs = [[Int]](repeating: start, count: count)
        var done = [Bool](repeating: false, count: count)
        var noise = RandomGenerator(seed: 0)
        evaluating(network) {
            for _ in 0..<steps {
                if done.allSatisfy({ $0 }) { break }
                let len = seqs[0].count, t = min(len, block)
                var tokens = [Int](); tokens.reserveCapacity(count * t)
                for s in seqs { tokens += s[(len - t)...] }
                let positions = (0..<count).map { $0 * t + t - 1 }
                let logits = network.logits(tokens: tokens, batch: count, length: t, positions: positions, noise: &noise)
                let v = logits.shape[1]
                logits.withUnsafeScalars { l in
                    for i in 0..<count {
                        if done[i] { seqs[i].append(eos ?? 0); continue }
                        let next = Self.draw(UnsafeBufferPointer(rebasing: l[(i * v)..<((i + 1) * v)]), options: o,
                                             banned: vocabulary.unknown.map(Int.init), rng: &rng)
                        seqs[i].append(next)
                        if next == eos { done[i] = true }
                    }
                }
            }
        }
        return seqs.map { s in
            var g = Array(s.dropFirst(start.count))
            if let eos, let e = g.firstIndex(of: eos) { g = Array(g[..<e]) }
            return g
        }
    }

    /// Samples `count` texts one character at a time with temperature, top-k, top-p, an
    /// optional prompt and a maximum length, from `rng` (deterministic for a seed).
    ///
    /// - Throws: ``ConfigError`` for invalid options or a prompt character outside the vocabulary.
    public func generate(count: Int, options o: GenerationOptions, rng: inout RandomGenerator) throws -> [String] {
        try o.validate()
        let promptScalars = Array(o.prompt.unicodeScalars)
        if textMode == .lines && promptScalars.contains(where: { $0 == "\n" || $0 == "\r" }) {
            throw ConfigError(option: "--prompt", problem: "holds a line end; a lines-mode model writes one line per sample")
        }
        let prompt = try vocabulary.encode(promptScalars, source: "--prompt").map(Int.init)
        let maxLength = o.maxLength ?? (textMode == .lines ? max(config.rowLength - 2, 1) : 256)
        let start: [Int]
        switch textMode {
        case .lines: start = [Int(vocabulary.endOfSample ?? 0)] + prompt
        case .stream: start = prompt.isEmpty ? [Int(vocabulary.index(of: "\n") ?? 0)] : prompt
        }
        // Lines mode: room for maxLength characters and the closing <eos>.
        let steps = textMode == .lines ? max(maxLength - prompt.count, 0) + 1 : max(maxLength - prompt.count, 0)
        let generated = generateTokens(count: count, start: start, steps: steps, options: o, rng: &rng)
        return generated.map { g in
            let body = textMode == .lines ? Array(g.prefix(max(maxLength - prompt.count, 0))) : g
            return o.prompt + vocabulary.decode(body.map(Int32.init))
        }
    }

    /// `N = z.shape[0]` samples of the in-training writer as data rows `[N, rowLength]`: lines
    /// mode the characters followed by `<eos>` padding, stream mode `rowLength` tokens; drawn
    /// at temperature 1 from ``RandomStream/textGeneration`` with the run's seed.
    public func sample(z: Tensor, labels: [Int]?) -> Tensor {
        let n = z.shape[0], r = config.rowLength
        var rng = RandomStream.textGeneration.generator(seed: config.seed)
        let o = GenerationOptions()
        let start = textMode == .lines ? [Int(vocabulary.endOfSample ?? 0)] : [Int(vocabulary.index(of: "\n") ?? 0)]
        let rows = generateTokens(count: n, start: start, steps: textMode == .lines ? r - 1 : r, options: o, rng: &rng)
        var out = [Float](repeating: Float(vocabulary.endOfSample ?? 0), count: n * r)
        for (i, g) in rows.enumerated() { for (k, t) in g.prefix(r).enumerated() { out[i * r + k] = Float(t) } }
        return Tensor(shape: [n, r], scalars: out)
    }

    /// The network's parameters and buffers under PyTorch `state_dict` names.
    public func stateDict() -> [(String, Tensor)] { net.stateDict() }

    /// Loads the network by `state_dict` name.
    ///
    /// - Throws: ``StateDictError`` naming a missing key or a shape mismatch.
    public func loadStateDict(_ values: [String: Tensor]) throws { try net.loadStateDict(values) }
}

extension TextModel: SyntheticRowsModel {
    /// Uniformly drawn token indices `[batch, rowLength]`; in lines mode each row starts with
    /// `<eos>` and the rest are characters (rows as long as the longest line, no padding).
    public func syntheticRows(batch: Int, rng: inout RandomGenerator) -> Tensor {
        let r = config.rowLength, v = vocabulary.count
        let eos = textMode == .lines ? vocabulary.endOfSample.map(Int.init) : nil
        let low = eos.map { $0 + 1 } ?? 0
        var out = [Float](repeating: 0, count: batch * r)
        for i in 0..<batch {
            for k in 0..<r {
                if k == 0, let eos { out[i * r] = Float(eos); continue }
                out[i * r + k] = Float(low + Int(rng.next() % UInt64(max(v - low, 1))))
            }
        }
        return Tensor(shape: [batch, r], scalars: out)
    }
}
