import ArgumentParser
import ConjureModels

/// `conjure train` options of the GAN presets.
struct GANOptions: FamilyOptions {
    static let family = GANFamily.name
    static let title = "GAN"
    @Option(parsing: .unconditional, help: "Size of the latent z.") var noiseDim: Int?
    @Option(help: "Generator hidden widths, e.g. 128,256.") var gHidden: String?
    @Option(help: "Discriminator hidden widths, e.g. 512,256.") var dHidden: String?
    @Option(help: "Which generator hidden layers have BatchNorm1d, e.g. 0,1,1,1.") var gBatchnorm: String?
    @Option(help: "Generator hidden activation: relu or leakyrelu.") var gActivation: String?
    @Option(help: "Generator output: tanh, sigmoid or identity.") var output: String?
    @Option(parsing: .unconditional, help: "LeakyReLU negative slope.") var leakySlope: Float?
    @Option(parsing: .unconditional, help: "Generator learning rate.") var lrG: Float?
    @Option(parsing: .unconditional, help: "Discriminator learning rate.") var lrD: Float?
    @Option(help: "Update order: simultaneous, alternating, or alternating-fresh (G step on a fresh z).") var update: String?
    @Option(parsing: .unconditional, help: "PacGAN packing: the discriminator judges this many samples at once.") var pack: Int?
    @Option(help: "Adversarial loss: bce, lsgan, hinge or wgangp.") var loss: String?
    @Option(parsing: .unconditional, help: "Discriminator (critic) steps per generator step.") var nCritic: Int?
    @Option(parsing: .unconditional, help: "Gradient-penalty weight for wgangp.") var gpLambda: Float?
    @Flag(help: "Spectral normalisation on every discriminator weight.") var spectralNorm = false
    @Option(parsing: .unconditional, help: "WaveGAN model size d: generator channels 16d..d, critic d..16d (the paper's 64; wavegan's default 8).") var modelSize: Int?
    @Option(parsing: .unconditional, help: "WaveGAN phase-shuffle width n in samples (default 2; 0 turns it off).") var phaseShuffle: Int?
    @Flag(help: "Class-conditional GAN (one-hot label into G and D, as cgan); the class count comes from the data's labels.") var conditional = false

    var given: [(String, Bool)] {
        [("--noise-dim", noiseDim != nil), ("--g-hidden", gHidden != nil), ("--d-hidden", dHidden != nil), ("--g-batchnorm", gBatchnorm != nil),
         ("--g-activation", gActivation != nil), ("--output", output != nil), ("--leaky-slope", leakySlope != nil), ("--lr-g", lrG != nil),
         ("--lr-d", lrD != nil), ("--update", update != nil), ("--pack", pack != nil), ("--loss", loss != nil), ("--n-critic", nCritic != nil),
         ("--gp-lambda", gpLambda != nil), ("--spectral-norm", spectralNorm), ("--model-size", modelSize != nil),
         ("--phase-shuffle", phaseShuffle != nil), ("--conditional", conditional)]
    }

    func hint(forForeignOption option: String) -> String? {
        option == "--latent-dim" ? "use --noise-dim" : (option == "--lr" ? "use --lr-g and --lr-d" : nil)
    }

    func apply(to any: inout any FamilyConfig) throws {
        guard var config = any as? GANConfig else { preconditionFailure("GANOptions: not a GAN configuration") }
        if config.architecture != .wavegan, let given = [("--model-size", modelSize != nil), ("--phase-shuffle", phaseShuffle != nil)].first(where: { $0.1 }) {
            throw ConfigError(option: given.0, problem: "applies to --model wavegan only, not to --model \(config.preset)")
        }
        if config.architecture != .mlp, let given = [("--g-hidden", gHidden != nil), ("--d-hidden", dHidden != nil), ("--g-batchnorm", gBatchnorm != nil),
                                                       ("--g-activation", gActivation != nil)].first(where: { $0.1 }) {
            throw ConfigError(option: given.0, problem: "applies to the MLP presets; --model \(config.preset) has fixed convolutional networks")
        }
        if let v = noiseDim { config.noiseDim = v }
        if let v = gHidden {
            config.generatorHidden = try parseIntList(v, option: "--g-hidden")
            if gBatchnorm == nil { config.generatorBatchNorm = config.generatorHidden.indices.map { $0 > 0 && config.generatorBatchNorm.contains(true) } }
        }
        if let v = gBatchnorm {
            let flags = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            guard flags.allSatisfy({ $0 == "0" || $0 == "1" }) else {
                throw ConfigError(option: "--g-batchnorm", problem: "expected comma-separated 0/1 flags, got '\(v)'")
            }
            config.generatorBatchNorm = flags.map { $0 == "1" }
        }
        if let v = dHidden { config.discriminatorHidden = try parseIntList(v, option: "--d-hidden") }
        if let v = gActivation {
            guard let a = HiddenActivation(rawValue: v.lowercased()) else { throw ConfigError(option: "--g-activation", problem: "expected relu or leakyrelu, got '\(v)'") }
            config.generatorActivation = a
        }
        if let v = output {
            guard let a = OutputActivation(rawValue: v.lowercased()) else { throw ConfigError(option: "--output", problem: "expected tanh, sigmoid or identity, got '\(v)'") }
            config.outputActivation = a
        }
        if let v = leakySlope { config.leakySlope = v }
        if let v = lrG { config.generatorLR = v }
        if let v = lrD { config.discriminatorLR = v }
        if let v = update { config.update = try parseUpdateOrder(v) }
        if let v = pack { config.pack = v }
        if let v = loss {
            guard let l = GANLoss(rawValue: v.lowercased()) else { throw ConfigError(option: "--loss", problem: "expected bce, lsgan, hinge or wgangp, got '\(v)'") }
            config.loss = l
        }
        if let v = nCritic { config.nCritic = v }
        if let v = gpLambda { config.gpLambda = v }
        if spectralNorm { config.spectralNorm = true }
        if let v = modelSize { config.modelSize = v }
        if let v = phaseShuffle { config.phaseShuffle = v }
        // The class count is set from the data's labels by the trainer; 10 marks the request.
        if conditional && config.conditionalClasses == 0 { config.conditionalClasses = 10 }
        any = config
    }
}

/// `--update`: one of ``UpdateOrder``'s values, case-insensitive.
///
/// - Throws: ``ConfigError`` naming `--update`.
func parseUpdateOrder(_ text: String) throws -> UpdateOrder {
    guard let u = UpdateOrder(rawValue: text.lowercased()) else {
        throw ConfigError(option: "--update", problem: "expected " + UpdateOrder.allCases.map(\.rawValue).joined(separator: ", ") + ", got '\(text)'")
    }
    return u
}
