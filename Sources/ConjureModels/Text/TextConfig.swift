import Foundation
import ConjureData
import ConjureNN
import ConjureOptim

/// The network of a character-level language model.
public enum TextArchitecture: String, Codable, Sendable, CaseIterable {
    /// The previous `context` characters embedded, concatenated, a tanh hidden layer and a
    /// softmax over the vocabulary (Bengio et al. 2003; Karpathy's makemore `MLP`).
    case mlp
    /// Embedding, one GRU layer (PyTorch's gate layout), linear head (Cho et al. 2014).
    case gru
    /// A decoder-only transformer of nanoGPT's shape (Radford et al. 2018/2019): token and
    /// learned position embeddings, pre-LayerNorm blocks of causal self-attention and a GELU MLP,
    /// a final LayerNorm and a head tied to the token embedding.
    case transformer
}

/// What the data preparation needs of a token model's configuration before the data is read
/// (mode and block length), and how the vocabulary built from the training split gets back into
/// the configuration (so that it is saved in `config.json` and checkpoints).
public protocol TokenDataConfig: FamilyConfig {
    /// The text mode asked for (`--text-mode`), nil for the file's default
    /// (``TextCorpus/defaultMode``); after ``adopt(vocabulary:mode:)``, the mode used.
    var textMode: TextMode? { get }
    /// Stream mode: characters of context per training block (rows hold `context + 1` tokens).
    var context: Int { get }
    /// The vocabulary of the training split, nil until ``adopt(vocabulary:mode:)``.
    var vocabulary: Vocabulary? { get }
    /// What a held-out or prompt character missing from the training split does (`--unknown`).
    var unknownCharacters: UnknownCharacterPolicy { get }
    /// Records the training split's vocabulary and the mode used.
    mutating func adopt(vocabulary: Vocabulary, mode: TextMode)
}

extension ModelConfig {
    /// The configuration as a token model's, nil for other families.
    public var tokenData: (any TokenDataConfig)? { config as? any TokenDataConfig }

    /// Records a text data set's vocabulary and mode in a token model's configuration; no
    /// effect for other families.
    /// Takes the data's vocabulary (built from the training split) and text mode.
    public mutating func adopt(vocabulary: Vocabulary, mode: TextMode) {
        guard var c = config as? any TokenDataConfig else { return }
        c.adopt(vocabulary: vocabulary, mode: mode)
        config = c
    }
}

/// The configuration of a character-level language model (`char-mlp`, `char-gru`,
/// `char-transformer`).
///
/// Sizes: ``width`` is the MLP's hidden layer, the GRU's state and the transformer's model
/// width; ``embedDim`` the MLP's and GRU's character embedding (the transformer embeds at
/// ``width``). ``context`` is the MLP's window of previous characters and, in stream mode, the
/// block length of the GRU and the transformer; in lines mode those two read a whole line.
public struct TextConfig: TokenDataConfig, OptimizationFields, Equatable {
    /// `text`.
    public static let family = "text"
    /// The preset this configuration started from (`char-mlp`, `char-gru`, `char-transformer`).
    public var preset: String
    /// The network.
    public var architecture: TextArchitecture
    /// `--text-mode` (nil: the file's default until the data is read).
    public var textMode: TextMode?
    /// `--unknown`: what a held-out (or prompt) character that the training split lacks does:
    /// an error naming it (default), or the `<unk>` token, which the vocabulary then holds.
    public var unknownCharacters: UnknownCharacterPolicy = .error
    /// See the type's documentation.
    public var context: Int
    /// Transformer blocks (transformer only).
    public var layers: Int
    /// Hidden / model width.
    public var width: Int
    /// Attention heads (transformer only).
    public var heads: Int
    /// Character embedding size of the MLP and the GRU.
    public var embedDim: Int
    /// Dropout probability (transformer: after the embeddings, attention and MLP outputs).
    public var dropout: Float
    /// The vocabulary of the training split (set from the data).
    public var vocabulary: Vocabulary?
    /// Tokens per data row: lines mode the longest line + 2, stream mode `context + 1`
    /// (set from the data).
    public var rowLength: Int
    /// Rows (lines or blocks) per training step.
    public var batchSize: Int
    /// Passes over the training rows.
    public var epochs: Int
    /// The run's seed (weights, batch order, dropout, generation).
    public var seed: UInt64
    /// Base learning rate.
    public var lr: Float
    /// AdamW's β1.
    public var beta1: Float
    /// AdamW's β2 (0.99, nanoGPT's choice for small character models).
    public var beta2: Float
    /// The optimiser's ε.
    public var eps: Float
    /// Decoupled weight decay (AdamW), applied to every parameter.
    public var weightDecay: Float
    /// The optimiser (AdamW by default).
    public var optimizer: OptimizerKind
    /// The learning-rate schedule (cosine with warm-up by default).
    public var lrSchedule: LRSchedule
    /// Gradient-norm clipping (1 by default); nil: none.
    public var clipGradNorm: Float?
    /// Weight averaging for sampling; nil (off) by default.
    public var emaDecay: Float?

    /// A configuration with the transformer preset's values unless given.
    public init(preset: String = "char-transformer", architecture: TextArchitecture = .transformer, context: Int = 32, layers: Int = 4,
                width: Int = 64, heads: Int = 4, embedDim: Int = 64, dropout: Float = 0, batchSize: Int = 32, epochs: Int = 10,
                lr: Float = 1e-3) {
        self.preset = preset; self.architecture = architecture; self.textMode = nil; self.context = context
        self.layers = layers; self.width = width; self.heads = heads; self.embedDim = embedDim; self.dropout = dropout
        self.vocabulary = nil; self.rowLength = 0; self.batchSize = batchSize; self.epochs = epochs; self.seed = 42
        self.lr = lr; self.beta1 = 0.9; self.beta2 = 0.99; self.eps = 1e-8; self.weightDecay = 0.01
        self.optimizer = .adamw
        self.lrSchedule = LRSchedule(.cosine, warmupSteps: 100, finalFactor: 0.1)
        self.clipGradNorm = 1
        self.emaDecay = nil
    }

    /// The presets: makemore's MLP (context 16, embedding 64, hidden 256), a GRU (embedding 64,
    /// state 256), and a 4-layer, 4-head, width-64 transformer (makemore's `Transformer`
    /// defaults; nanoGPT's shape). AdamW (β 0.9/0.99, weight decay 0.01), cosine schedule with
    /// 100 warm-up steps down to 0.1x, gradient norm clipped to 1.
    public static var presets: [String: TextConfig] {
        [
            "char-mlp": TextConfig(preset: "char-mlp", architecture: .mlp, context: 16, layers: 1, width: 256, heads: 1, embedDim: 64,
                                   batchSize: 64, epochs: 10, lr: 3e-3),
            "char-gru": TextConfig(preset: "char-gru", architecture: .gru, context: 64, layers: 1, width: 256, heads: 1, embedDim: 64,
                                   batchSize: 32, epochs: 10, lr: 3e-3),
            "char-transformer": TextConfig(preset: "char-transformer", architecture: .transformer, context: 64, layers: 4, width: 64,
                                           heads: 4, embedDim: 64, batchSize: 32, epochs: 10, lr: 1e-3),
        ]
    }

    /// No latent: generation draws tokens, not `z`.
    public var latentDim: Int { 0 }
    /// Always 0 (unconditional).
    public var conditionalClasses: Int { get { 0 } set {} }
    /// `tokens(vocabulary, rowLength)`.
    public var dataSpec: DataSpec { .tokens(vocabulary: vocabulary?.count ?? 0, length: rowLength) }
    /// Logits; the data is token indices (normalisation `none`).
    public var outputActivation: OutputActivation { .identity }

    /// Positions the network reads at once: lines mode a whole row less one, stream mode
    /// ``context`` (the transformer's position table and the generation window).
    public var blockSize: Int { rowLength > 1 ? rowLength - 1 : context }


    /// Takes the data's vocabulary (built from the training split) and its text mode.
    public mutating func adopt(vocabulary: Vocabulary, mode: TextMode) {
        self.vocabulary = vocabulary
        self.textMode = mode
    }

    /// Sets ``rowLength`` from token data.
    ///
    /// - Throws: ``ConfigError`` naming `--data` for data that is not text.
    public mutating func adapt(to data: DataSpec) throws {
        guard case .tokens(_, let length) = data else {
            throw ConfigError(option: "--data", problem: "--model \(preset) models text; the data is \(data)",
                              hint: "give a UTF-8 .txt file")
        }
        rowLength = length
    }

    /// Checks sizes and rates.
    ///
    /// - Throws: ``ConfigError`` naming the option.
    public func validate() throws {
        if context < 1 || context > 4096 { throw ConfigError(option: "--context", problem: "must be between 1 and 4096, got \(context)") }
        if width < 1 || width > 8192 { throw ConfigError(option: "--width", problem: "must be between 1 and 8192, got \(width)") }
        if embedDim < 1 || embedDim > 8192 { throw ConfigError(option: "--embed-dim", problem: "must be between 1 and 8192, got \(embedDim)") }
        if layers < 1 || layers > 64 { throw ConfigError(option: "--layers", problem: "must be between 1 and 64, got \(layers)") }
        if architecture == .transformer && (heads < 1 || width % heads != 0) {
            throw ConfigError(option: "--heads", problem: "must be a positive divisor of --width \(width), got \(heads)")
        }
        if !(dropout >= 0 && dropout < 1) { throw ConfigError(option: "--dropout", problem: "must be in [0, 1), got \(dropout)") }
        if dropout != 0 && architecture != .transformer {
            throw ConfigError(option: "--dropout", problem: "the \(architecture.rawValue) architecture has no dropout (only char-transformer's does), got \(dropout)")
        }
        if !(lr > 0 && lr.isFinite) { throw ConfigError(option: "--learning-rate", problem: "must be positive, got \(lr)") }
        if batchSize < 1 { throw ConfigError(option: "--batch-size", problem: "must be at least 1, got \(batchSize)") }
        if epochs < 1 { throw ConfigError(option: "--epochs", problem: "must be at least 1, got \(epochs)") }
    }

    enum CodingKeys: String, CodingKey {
        case preset, architecture, textMode = "text_mode", unknownCharacters = "unknown_characters", context, layers, width, heads, embedDim = "embed_dim", dropout, vocabulary
        case rowLength = "row_length", batchSize = "batch_size", epochs, seed, lr, beta1, beta2, eps, weightDecay = "weight_decay"
        case optimizer, lrSchedule = "lr_schedule", clipGradNorm = "clip_grad_norm", emaDecay = "ema_decay"
    }

    /// Decodes a configuration; optional keys fall back to the preset's defaults.
    ///
    /// - Throws: `DecodingError` for a malformed configuration.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(preset: try c.decode(String.self, forKey: .preset), architecture: try c.decode(TextArchitecture.self, forKey: .architecture))
        textMode = try c.decodeIfPresent(TextMode.self, forKey: .textMode)
        unknownCharacters = try c.decodeIfPresent(UnknownCharacterPolicy.self, forKey: .unknownCharacters) ?? .error
        context = try c.decode(Int.self, forKey: .context)
        layers = try c.decode(Int.self, forKey: .layers)
        width = try c.decode(Int.self, forKey: .width)
        heads = try c.decode(Int.self, forKey: .heads)
        embedDim = try c.decode(Int.self, forKey: .embedDim)
        dropout = try c.decode(Float.self, forKey: .dropout)
        vocabulary = try c.decodeIfPresent(String.self, forKey: .vocabulary).map { try Vocabulary(serialized: $0, source: "config vocabulary") }
        rowLength = try c.decode(Int.self, forKey: .rowLength)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        epochs = try c.decode(Int.self, forKey: .epochs)
        seed = try c.decode(UInt64.self, forKey: .seed)
        lr = try c.decode(Float.self, forKey: .lr)
        beta1 = try c.decode(Float.self, forKey: .beta1)
        beta2 = try c.decode(Float.self, forKey: .beta2)
        eps = try c.decode(Float.self, forKey: .eps)
        weightDecay = try c.decode(Float.self, forKey: .weightDecay)
        optimizer = try c.decode(OptimizerKind.self, forKey: .optimizer)
        lrSchedule = try c.decode(LRSchedule.self, forKey: .lrSchedule)
        clipGradNorm = try c.decodeIfPresent(Float.self, forKey: .clipGradNorm)
        emaDecay = try c.decodeIfPresent(Float.self, forKey: .emaDecay)
    }

    /// Every field; the vocabulary as its stable string (``Vocabulary/serialized``).
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(preset, forKey: .preset); try c.encode(architecture, forKey: .architecture)
        try c.encodeIfPresent(textMode, forKey: .textMode); try c.encode(context, forKey: .context)
        if unknownCharacters != .error { try c.encode(unknownCharacters, forKey: .unknownCharacters) }
        try c.encode(layers, forKey: .layers); try c.encode(width, forKey: .width); try c.encode(heads, forKey: .heads)
        try c.encode(embedDim, forKey: .embedDim); try c.encode(dropout, forKey: .dropout)
        try c.encodeIfPresent(vocabulary?.serialized, forKey: .vocabulary); try c.encode(rowLength, forKey: .rowLength)
        try c.encode(batchSize, forKey: .batchSize); try c.encode(epochs, forKey: .epochs); try c.encode(seed, forKey: .seed)
        try c.encode(lr, forKey: .lr); try c.encode(beta1, forKey: .beta1); try c.encode(beta2, forKey: .beta2); try c.encode(eps, forKey: .eps)
        try c.encode(weightDecay, forKey: .weightDecay); try c.encode(optimizer, forKey: .optimizer); try c.encode(lrSchedule, forKey: .lrSchedule)
        try c.encodeIfPresent(clipGradNorm, forKey: .clipGradNorm); try c.encodeIfPresent(emaDecay, forKey: .emaDecay)
    }
}
