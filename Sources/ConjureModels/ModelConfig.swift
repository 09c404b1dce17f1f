import Foundation
import ConjureNN
import ConjureOptim

/// The configuration of any model family Conjure trains, as saved in `config.json` and in
/// checkpoints: the family's own configuration plus a `family` key (`gan` when absent, so runs
/// written before other families existed still load).
public enum ModelConfig: Codable, Sendable, Equatable {
    case gan(GANConfig)
    case vae(VAEConfig)

    /// Every named preset of every family, for `conjure train --model NAME`.
    public static var presets: [String: ModelConfig] {
        var all: [String: ModelConfig] = [:]
        for (k, v) in GANConfig.presets { all[k] = .gan(v) }
        for (k, v) in VAEConfig.presets { all[k] = .vae(v) }
        return all
    }

    /// Preset names, sorted, for help texts and errors.
    public static var presetNames: [String] { presets.keys.sorted() }

    public var family: String {
        switch self {
        case .gan: return "gan"
        case .vae: return "vae"
        }
    }

    /// The GAN configuration, nil for other families.
    public var gan: GANConfig? {
        if case .gan(let c) = self { return c }
        return nil
    }

    /// The VAE configuration, nil for other families.
    public var vae: VAEConfig? {
        if case .vae(let c) = self { return c }
        return nil
    }

    /// A field both families have, read from or written to the configuration held.
    subscript<T>(gan g: WritableKeyPath<GANConfig, T>, vae v: WritableKeyPath<VAEConfig, T>) -> T {
        get {
            switch self {
            case .gan(let c): return c[keyPath: g]
            case .vae(let c): return c[keyPath: v]
            }
        }
        set {
            switch self {
            case .gan(var c): c[keyPath: g] = newValue; self = .gan(c)
            case .vae(var c): c[keyPath: v] = newValue; self = .vae(c)
            }
        }
    }

    public var preset: String {
        self[gan: \.preset, vae: \.preset]
    }

    /// Size of the latent `z`.
    public var latentDim: Int {
        self[gan: \.noiseDim, vae: \.latentDim]
    }

    /// Flattened size of one sample.
    public var dataDim: Int {
        get { self[gan: \.dataDim, vae: \.dataDim] }
        set { self[gan: \.dataDim, vae: \.dataDim] = newValue }
    }

    public var batchSize: Int {
        get { self[gan: \.batchSize, vae: \.batchSize] }
        set { self[gan: \.batchSize, vae: \.batchSize] = newValue }
    }

    public var epochs: Int {
        get { self[gan: \.epochs, vae: \.epochs] }
        set { self[gan: \.epochs, vae: \.epochs] = newValue }
    }

    public var seed: UInt64 {
        get { self[gan: \.seed, vae: \.seed] }
        set { self[gan: \.seed, vae: \.seed] = newValue }
    }

    /// Class count of a conditional model (0: unconditional).
    public var conditionalClasses: Int {
        get { switch self { case .gan(let c): return c.conditionalClasses; case .vae: return 0 } }
        set {
            switch self {
            case .gan(var c): c.conditionalClasses = newValue; self = .gan(c)
            case .vae: precondition(newValue == 0, "ModelConfig: VAEs are not conditional")
            }
        }
    }

    /// True when the model needs `[C, H, W]` images (convolutional networks).
    public var needsImages: Bool {
        switch self { case .gan(let c): return c.architecture != .mlp; case .vae(let c): return c.architecture != .mlp }
    }

    /// `[C, H, W]` of samples for convolutional networks.
    public var imageShape: [Int]? {
        get { self[gan: \.imageShape, vae: \.imageShape] }
        set { self[gan: \.imageShape, vae: \.imageShape] = newValue }
    }

    /// The range the model's samples live in, which decides the data normalisation.
    public var outputActivation: OutputActivation {
        switch self { case .gan(let c): return c.outputActivation; case .vae(let c): return c.outputActivation }
    }

    /// The learning-rate schedule over the run's steps.
    public var lrSchedule: LRSchedule {
        self[gan: \.lrSchedule, vae: \.lrSchedule]
    }

    /// Checks the options, naming the first bad one.
    public func validate() throws {
        switch self { case .gan(let c): try c.validate(); case .vae(let c): try c.validate() }
    }

    /// A freshly initialised model from `rng`.
    public func makeModel(rng: inout RandomGenerator) -> any GenerativeModel {
        switch self { case .gan(let c): return GAN(config: c, rng: &rng); case .vae(let c): return VAE(config: c, rng: &rng) }
    }

    enum FamilyKey: String, CodingKey { case family }

    public init(from decoder: Decoder) throws {
        let family = try decoder.container(keyedBy: FamilyKey.self).decodeIfPresent(String.self, forKey: .family) ?? "gan"
        switch family {
        case "gan": self = .gan(try GANConfig(from: decoder))
        case "vae": self = .vae(try VAEConfig(from: decoder))
        default:
            throw DecodingError.dataCorruptedError(forKey: .family, in: try decoder.container(keyedBy: FamilyKey.self),
                                                   debugDescription: "unknown model family '\(family)'")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: FamilyKey.self)
        try c.encode(family, forKey: .family)
        switch self { case .gan(let g): try g.encode(to: encoder); case .vae(let v): try v.encode(to: encoder) }
    }
}
