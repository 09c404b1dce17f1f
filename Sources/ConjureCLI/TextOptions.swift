import ArgumentParser
import ConjureData
import ConjureModels

/// `conjure train` options of the character-level language models (`char-mlp`, `char-gru`,
/// `char-transformer`).
struct TextOptions: FamilyOptions {
    static let family = TextFamily.name
    static let title = "text"
    @Option(help: "Text: lines (one sample a line, default for files of short lines) or stream (blocks of --context characters).") var textMode: String?
    @Option(parsing: .unconditional, help: "Text: characters of context (the MLP's window; stream-mode block length).") var context: Int?
    @Option(parsing: .unconditional, help: "Text: transformer blocks.") var layers: Int?
    @Option(parsing: .unconditional, help: "Text: hidden width (MLP hidden layer, GRU state, transformer width).") var width: Int?
    @Option(parsing: .unconditional, help: "Text: attention heads (transformer).") var heads: Int?
    @Option(parsing: .unconditional, help: "Text: character embedding size (MLP, GRU).") var embedDim: Int?
    @Option(parsing: .unconditional, help: "Text: learning rate (char-mlp 3e-3, char-gru 3e-3, char-transformer 1e-3).") var learningRate: Float?
    @Option(help: "Text: a held-out or prompt character missing from the training split: error (default) or token (mapped to <unk>).") var unknown: String?

    var given: [(String, Bool)] {
        [("--text-mode", textMode != nil), ("--context", context != nil), ("--layers", layers != nil), ("--width", width != nil),
         ("--heads", heads != nil), ("--embed-dim", embedDim != nil), ("--learning-rate", learningRate != nil),
         ("--unknown", unknown != nil)]
    }

    func hint(forForeignOption option: String) -> String? {
        option == "--lr" || option.hasPrefix("--lr-") && option != "--lr-schedule" ? "use --learning-rate" : nil
    }

    static let sharedOptions = ["--dropout"]

    func apply(_ shared: SharedModelOptions, to any: inout any FamilyConfig) throws {
        guard var config = any as? TextConfig else { preconditionFailure("TextOptions: not a text configuration") }
        if let v = shared.dropout { config.dropout = v }
        any = config
    }

    func apply(to any: inout any FamilyConfig) throws {
        guard var config = any as? TextConfig else { preconditionFailure("TextOptions: not a text configuration") }
        if let v = textMode {
            guard let m = TextMode(rawValue: v.lowercased()) else { throw ConfigError(option: "--text-mode", problem: "expected lines or stream, got '\(v)'") }
            config.textMode = m
        }
        if let v = context { config.context = v }
        if let v = layers { config.layers = v }
        if let v = width { config.width = v }
        if let v = heads { config.heads = v }
        if let v = embedDim { config.embedDim = v }
        if let v = learningRate { config.lr = v }
        if let v = unknown {
            switch v.lowercased() {
            case "error": config.unknownCharacters = .error
            case "token", "unk": config.unknownCharacters = .unknownToken
            default: throw ConfigError(option: "--unknown", problem: "expected error or token, got '\(v)'")
            }
        }
        any = config
    }
}
