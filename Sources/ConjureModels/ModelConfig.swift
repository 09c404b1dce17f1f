import Foundation
import ConjureData
import ConjureNN
import ConjureOptim

/// The configuration every model family's own configuration type provides: the fields the
/// trainer, checkpoints and commands use without knowing the family.
public protocol FamilyConfig: Codable, Sendable {
    /// The registry name of the family this configuration belongs to.
    static var family: String { get }
    /// The preset this configuration started from (`gan`, `vae`, ...).
    var preset: String { get set }
    /// Samples per training step.
    var batchSize: Int { get set }
    /// Passes over the training split.
    var epochs: Int { get set }
    /// The run's seed (weights, batches, latent draws).
    var seed: UInt64 { get set }
    /// Size of the latent `z` drawn for each sample.
    var latentDim: Int { get }
    /// Class count of a conditional model (0: unconditional). The trainer sets it from the
    /// data's labels when ``isConditional``.
    var conditionalClasses: Int { get set }
    /// Whether the model is conditioned on class labels.
    var isConditional: Bool { get }
    /// The data kind the model was built for (set by ``adapt(to:)``).
    var dataSpec: DataSpec { get }
    /// The range of the model's samples, which decides the default data normalisation.
    var outputActivation: OutputActivation { get }
    /// The optimiser settings of every parameter group.
    var optimization: OptimizationSettings { get set }
    /// Fits the configuration to the data (sizes, image shape).
    ///
    /// - Throws: ``ConfigError`` when the family cannot model data of this kind.
    mutating func adapt(to data: DataSpec) throws
    /// Checks every option, naming the first bad one.
    ///
    /// - Throws: ``ConfigError`` naming the option and the problem.
    func validate() throws
}

extension FamilyConfig {
    /// Conditional exactly when a class count is set.
    public var isConditional: Bool { conditionalClasses > 0 }
}

/// What the trainer knows of the prepared training data when it checks a configuration against
/// it (``ModelFamily/validate(_:data:)``).
public struct DataSummary: Sendable {
    /// The data kind.
    public var spec: DataSpec
    /// The data file (for messages).
    public var source: String
    /// The normalisation applied.
    public var normalization: Normalization
    /// The smallest and largest normalised training value.
    public var valueRange: ClosedRange<Float>
    /// The number of classes when the data has labels.
    public var classes: Int?

    /// A summary of prepared data.
    public init(spec: DataSpec, source: String, normalization: Normalization, valueRange: ClosedRange<Float>, classes: Int?) {
        self.spec = spec; self.source = source; self.normalization = normalization; self.valueRange = valueRange; self.classes = classes
    }
}

/// A model family: its configuration type, presets, checks and constructor. A new family is one
/// file (or folder) conforming to this protocol plus one line in ``ModelFamilies/all``.
public protocol ModelFamily {
    /// The family's configuration.
    associatedtype Config: FamilyConfig
    /// The registry name saved as `family` in configurations (`gan`, `vae`).
    static var name: String { get }
    /// Named presets (`--model NAME`).
    static var presets: [String: Config] { get }
    /// Checks a configuration (already adapted to the data) against the prepared data, beyond
    /// ``FamilyConfig/validate()``.
    ///
    /// - Throws: ``ConfigError`` or ``DataError`` naming the option or file.
    static func validate(_ config: Config, data: DataSummary) throws
    /// Checks that the normalisation `kind` suits the model's outputs.
    ///
    /// - Throws: ``ConfigError`` naming `--normalize` with a hint.
    static func checkNormalization(_ kind: Normalization, config: Config) throws
    /// A freshly initialised model drawing its initial weights from `rng`.
    ///
    /// - Precondition: `config` is valid.
    static func make(_ config: Config, rng: inout RandomGenerator) -> any GenerativeModel
}

extension ModelFamily {
    /// No further checks.
    public static func validate(_ config: Config, data: DataSummary) throws {}

    /// Symmetric data for tanh, unit data for sigmoid, z-scored or raw data for identity.
    public static func checkNormalization(_ kind: Normalization, config: Config) throws {
        switch (kind, config.outputActivation) {
        case (.symmetric, .sigmoid), (.zscore, .sigmoid), (.zscore, .tanh), (.none, .tanh), (.none, .sigmoid):
            throw ConfigError(option: "--normalize", problem: "\(kind.rawValue) data cannot be matched by a \(config.outputActivation.rawValue) model output",
                              hint: "use symmetric with tanh, unit with sigmoid, zscore or none with identity")
        default: break
        }
    }
}

/// A model family with its configuration type erased, as the registry holds it.
public struct RegisteredFamily: Sendable {
    /// The family's registry name.
    public let name: String
    /// Its presets as ``ModelConfig``s.
    public let presets: @Sendable () -> [String: ModelConfig]
    let decode: @Sendable (Decoder) throws -> any FamilyConfig
    let validateData: @Sendable (any FamilyConfig, DataSummary) throws -> Void
    let normalization: @Sendable (Normalization, any FamilyConfig) throws -> Void
    let make: @Sendable (any FamilyConfig, inout RandomGenerator) -> any GenerativeModel

    /// Erases `family`.
    public init<F: ModelFamily>(_ family: F.Type) {
        name = F.name
        presets = { F.presets.mapValues { ModelConfig(family: F.name, config: $0) } }
        decode = { try F.Config(from: $0) }
        validateData = { try F.validate($0 as! F.Config, data: $1) }
        normalization = { try F.checkNormalization($0, config: $1 as! F.Config) }
        make = { F.make($0 as! F.Config, rng: &$1) }
    }
}

/// The registry of model families. The trainer, checkpoints, `sample`, `evaluate`, `bench` and
/// the command line ask it; none of them switches on a family.
public enum ModelFamilies {
    /// Every registered family. Adding a family is one line here.
    public static let all: [RegisteredFamily] = [
        RegisteredFamily(GANFamily.self),
        RegisteredFamily(VAEFamily.self),
        RegisteredFamily(TextFamily.self),
        RegisteredFamily(DiffusionFamily.self),
    ]

    /// The family named `name`, nil when none is registered under it.
    public static func family(named name: String) -> RegisteredFamily? { all.first { $0.name == name } }

    /// Every named preset of every family, for `conjure train --model NAME`.
    public static var presets: [String: ModelConfig] {
        var out: [String: ModelConfig] = [:]
        for f in all { out.merge(f.presets()) { a, _ in a } }
        return out
    }

    /// Preset names, sorted, for help texts and errors.
    public static var presetNames: [String] { presets.keys.sorted() }
}

/// The configuration of any model family, as saved in `config.json` and in checkpoints: the
/// family's own configuration with a `family` key (`gan` when absent, so runs written before
/// other families existed still load), decoded through ``ModelFamilies``.
public struct ModelConfig: Codable, Sendable, Equatable {
    /// The family's registry name.
    public let family: String
    /// The family's configuration.
    public var config: any FamilyConfig

    /// Wraps a family's configuration.
    public init(family: String, config: any FamilyConfig) {
        self.family = family
        self.config = config
    }

    /// Wraps a family's configuration under its family's name.
    public init(_ config: some FamilyConfig) {
        self.init(family: type(of: config).family, config: config)
    }

    /// Every named preset of every family (see ``ModelFamilies/presets``).
    public static var presets: [String: ModelConfig] { ModelFamilies.presets }
    /// Preset names, sorted.
    public static var presetNames: [String] { ModelFamilies.presetNames }

    /// The registered family.
    public var registered: RegisteredFamily {
        guard let f = ModelFamilies.family(named: family) else { preconditionFailure("ModelConfig: family '\(family)' is not registered") }
        return f
    }

    /// The preset this configuration started from.
    public var preset: String { config.preset }
    /// Size of the latent `z`.
    public var latentDim: Int { config.latentDim }
    /// Flattened size of one sample.
    public var dataDim: Int { config.dataSpec.flatCount }
    /// The data kind the model is built for.
    public var dataSpec: DataSpec { config.dataSpec }
    /// Whether the configuration is built for images (its data kind is an image).
    public var needsImages: Bool { dataSpec.imageShape != nil }
    /// Samples per step.
    public var batchSize: Int { get { config.batchSize } set { config.batchSize = newValue } }
    /// Passes over the training split.
    public var epochs: Int { get { config.epochs } set { config.epochs = newValue } }
    /// The run's seed.
    public var seed: UInt64 { get { config.seed } set { config.seed = newValue } }
    /// Class count of a conditional model (0: unconditional).
    public var conditionalClasses: Int { get { config.conditionalClasses } set { config.conditionalClasses = newValue } }
    /// The range the model's samples live in, which decides the default normalisation.
    public var outputActivation: OutputActivation { config.outputActivation }
    /// The optimiser settings.
    public var optimization: OptimizationSettings { get { config.optimization } set { config.optimization = newValue } }
    /// The learning-rate schedule over the run's steps.
    public var lrSchedule: LRSchedule { config.optimization.lrSchedule }

    /// Fits the configuration to the data kind.
    ///
    /// - Throws: ``ConfigError`` when the family cannot model such data.
    public mutating func adapt(to data: DataSpec) throws { try config.adapt(to: data) }

    /// Checks the options, naming the first bad one.
    ///
    /// - Throws: ``ConfigError``.
    public func validate() throws { try config.validate() }

    /// Checks the configuration against the prepared data (the family's own rules).
    ///
    /// - Throws: ``ConfigError`` or ``DataError``.
    public func validate(data: DataSummary) throws { try registered.validateData(config, data) }

    /// Checks that a normalisation suits the model's outputs.
    ///
    /// - Throws: ``ConfigError`` naming `--normalize`.
    public func checkNormalization(_ kind: Normalization) throws { try registered.normalization(kind, config) }

    /// A freshly initialised model from `rng`.
    public func makeModel(rng: inout RandomGenerator) -> any GenerativeModel { registered.make(config, &rng) }

    /// A model initialised from the run's seed (``RandomStream/initialization``).
    public func makeModel() -> any GenerativeModel {
        var rng = RandomStream.initialization.generator(seed: seed)
        return makeModel(rng: &rng)
    }

    enum FamilyKey: String, CodingKey { case family }

    /// Decodes the `family` key (default `gan`) and the family's configuration from the same
    /// object.
    ///
    /// - Throws: `DecodingError` for an unknown family or a malformed configuration.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: FamilyKey.self)
        let name = try c.decodeIfPresent(String.self, forKey: .family) ?? "gan"
        guard let f = ModelFamilies.family(named: name) else {
            throw DecodingError.dataCorruptedError(forKey: .family, in: c,
                                                   debugDescription: "unknown model family '\(name)' (known: \(ModelFamilies.all.map(\.name).joined(separator: ", ")))")
        }
        family = name
        config = try f.decode(decoder)
    }

    /// Encodes the `family` key and the family's configuration into one object.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: FamilyKey.self)
        try c.encode(family, forKey: .family)
        try config.encode(to: encoder)
    }

    /// Equal when the families and the encoded configurations are equal.
    public static func == (a: ModelConfig, b: ModelConfig) -> Bool {
        guard a.family == b.family else { return false }
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return (try? e.encode(a)) == (try? e.encode(b))
    }
}

/// A configuration whose data is either flat vectors or, for its convolutional architecture,
/// images (the GAN and VAE families): conforming gives it ``dataSpec`` and ``adapt(to:)``.
public protocol VectorOrImageConfig {
    /// The preset name, used in errors.
    var preset: String { get }
    /// Values per sample.
    var dataDim: Int { get set }
    /// `[C, H, W]` when the data is images, else nil.
    var imageShape: [Int]? { get set }
    /// Whether the architecture needs images (DCGAN, the convolutional VAE).
    var needsImageData: Bool { get }
}

extension VectorOrImageConfig {
    /// `image(C, H, W)` when ``imageShape`` is set, else `vector(dataDim)`.
    public var dataSpec: DataSpec {
        if let s = imageShape, s.count == 3 { return .image(channels: s[0], height: s[1], width: s[2]) }
        return .vector(dataDim)
    }

    /// Sets ``dataDim`` from the data and, for an architecture that needs images, ``imageShape``.
    ///
    /// - Throws: ``ConfigError`` naming `--model` when that architecture is given data that is
    ///   not an image.
    public mutating func adapt(to data: DataSpec) throws {
        dataDim = data.flatCount
        guard needsImageData else { return }
        guard let shape = data.imageShape else {
            throw ConfigError(option: "--model \(preset)", problem: "needs images, but the data is \(data)",
                              hint: "pass --shape C,H,W when each row holds an image (e.g. --shape 1,28,28)")
        }
        imageShape = shape
    }
}
