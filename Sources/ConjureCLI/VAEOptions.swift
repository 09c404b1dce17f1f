import ArgumentParser
import ConjureModels

/// `conjure train` options of the VAE presets.
struct VAEOptions: FamilyOptions {
    static let family = VAEFamily.name
    static let title = "VAE"
    @Option(parsing: .unconditional, help: "VAE: size of the latent z (default 50).") var latentDim: Int?
    @Option(help: "VAE: encoder hidden widths, e.g. 200,200 (MLP).") var encoderHidden: String?
    @Option(help: "VAE: decoder hidden widths, e.g. 200,200 (MLP).") var decoderHidden: String?
    @Option(help: "VAE: decoder likelihood, bernoulli (data in [0,1]) or gaussian.") var likelihood: String?
    @Option(parsing: .unconditional, help: "VAE: KL warm-up steps (the KL weight rises linearly to 1; default 0).") var klWarmup: Int?
    @Flag(help: "VAE: train on the data as is instead of dynamically binarised draws.") var noBinarize = false

    var given: [(String, Bool)] {
        [("--latent-dim", latentDim != nil), ("--encoder-hidden", encoderHidden != nil), ("--decoder-hidden", decoderHidden != nil),
         ("--likelihood", likelihood != nil), ("--kl-warmup", klWarmup != nil), ("--no-binarize", noBinarize)]
    }

    func hint(forForeignOption option: String) -> String? {
        option == "--noise-dim" ? "use --latent-dim" : (option.hasPrefix("--lr-") ? "use --lr" : nil)
    }

    static let sharedOptions = ["--lr"]

    func apply(_ shared: SharedModelOptions, to any: inout any FamilyConfig) throws {
        guard var config = any as? VAEConfig else { preconditionFailure("VAEOptions: not a VAE configuration") }
        if let v = shared.lr { config.lr = v }
        any = config
    }

    func apply(to any: inout any FamilyConfig) throws {
        guard var config = any as? VAEConfig else { preconditionFailure("VAEOptions: not a VAE configuration") }
        if let v = latentDim { config.latentDim = v }
        if let v = encoderHidden { config.encoderHidden = try parseIntList(v, option: "--encoder-hidden") }
        if let v = decoderHidden { config.decoderHidden = try parseIntList(v, option: "--decoder-hidden") }
        if let v = likelihood {
            guard let l = VAELikelihood(rawValue: v.lowercased()) else { throw ConfigError(option: "--likelihood", problem: "expected bernoulli or gaussian, got '\(v)'") }
            config.likelihood = l
            config.binarize = l == .bernoulli
        }
        if noBinarize { config.binarize = false }
        if let v = klWarmup { config.klWarmupSteps = v }
        any = config
    }
}
