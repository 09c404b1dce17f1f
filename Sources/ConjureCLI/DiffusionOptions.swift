import ArgumentParser
import ConjureModels

/// `conjure train` options of the diffusion presets (`ddpm`, `ddpm-cond`, `ddpm-1d`, `ddpm-1d-cond`).
struct DiffusionOptions: FamilyOptions {
    static let family = DiffusionFamily.name
    static let title = "diffusion"
    @Option(parsing: .unconditional, help: "Diffusion: U-Net base width (\(diffusionDefaults { String($0.baseWidth) })).") var baseWidth: Int?
    @Option(help: "Diffusion: channel multiplier per level, full resolution first (\(diffusionDefaults { $0.channelMultipliers.map(String.init).joined(separator: ",") })).") var channelMult: String?
    @Option(parsing: .unconditional, help: "Diffusion: residual blocks per level (\(diffusionDefaults { String($0.blocksPerLevel) })).") var blocksPerLevel: Int?
    @Option(parsing: .unconditional, help: "Diffusion: stride of the downsampling between levels, 2 or 4 (\(diffusionDefaults { String($0.downsampling) })).") var downsampleStride: Int?
    @Option(help: "Diffusion: levels (0 = full resolution) with self-attention, e.g. 2, or none. Default: the lowest level (\(diffusionDefaults(prefix: "") { $0.attentionLevels.map(String.init).joined(separator: ",") })); the middle block always has attention. Levels rather than pixel sizes, so one value fits 28x28 and 32x32 images.") var attentionLevels: String?
    @Option(help: "Diffusion: noise schedule, linear or cosine (\(diffusionDefaults { $0.schedule.rawValue })).") var schedule: String?
    @Option(help: "Diffusion: what the U-Net predicts, epsilon or v (\(diffusionDefaults { $0.prediction.rawValue })).") var prediction: String?
    @Option(parsing: .unconditional, help: "Diffusion: number of diffusion steps T (\(diffusionDefaults { String($0.timesteps) })).") var timesteps: Int?
    @Option(parsing: .unconditional, help: "Diffusion: input scaling factor b, the process runs on b·x0 (Chen 2023; \(diffusionDefaults { formatSetting($0.inputScale) })).") var dataScale: Float?

    var given: [(String, Bool)] {
        [("--base-width", baseWidth != nil), ("--channel-mult", channelMult != nil), ("--blocks-per-level", blocksPerLevel != nil),
         ("--downsample-stride", downsampleStride != nil),
         ("--attention-levels", attentionLevels != nil), ("--schedule", schedule != nil),
         ("--prediction", prediction != nil), ("--timesteps", timesteps != nil), ("--data-scale", dataScale != nil)]
    }

    func hint(forForeignOption option: String) -> String? {
        option == "--learning-rate" || option.hasPrefix("--lr-") && option != "--lr-schedule"
            ? "use --lr, \(diffusionDefaults { formatSetting($0.lr) })" : nil
    }

    static let sharedOptions = ["--dropout", "--lr"]

    func apply(_ shared: SharedModelOptions, to any: inout any FamilyConfig) throws {
        guard var config = any as? DiffusionConfig else { preconditionFailure("DiffusionOptions: not a diffusion configuration") }
        if let v = shared.dropout { config.dropout = v }
        if let v = shared.lr { config.lr = v }
        any = config
    }

    func apply(to any: inout any FamilyConfig) throws {
        guard var config = any as? DiffusionConfig else { preconditionFailure("DiffusionOptions: not a diffusion configuration") }
        if let v = baseWidth { config.baseWidth = v }
        if let v = channelMult {
            config.channelMultipliers = try parseIntList(v, option: "--channel-mult")
            // The default attention level is the lowest one; follow a changed level count.
            if attentionLevels == nil { config.attentionLevels = [config.channelMultipliers.count - 1] }
        }
        if let v = blocksPerLevel { config.blocksPerLevel = v }
        if let v = downsampleStride { config.downsampleStride = v }
        if let v = attentionLevels {
            if v == "none" || v.isEmpty { config.attentionLevels = [] } else {
                let parts = v.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard parts.allSatisfy({ $0 != nil && $0! >= 0 }) else {
                    throw ConfigError(option: "--attention-levels", problem: "expected comma-separated level numbers (0 = full resolution) or none, got '\(v)'")
                }
                config.attentionLevels = parts.map { $0! }
            }
        }
        if let v = schedule {
            guard let s = DiffusionScheduleKind(rawValue: v.lowercased()) else { throw ConfigError(option: "--schedule", problem: "expected linear or cosine, got '\(v)'") }
            config.schedule = s
        }
        if let v = prediction {
            guard let p = DiffusionPrediction(rawValue: v.lowercased()) else { throw ConfigError(option: "--prediction", problem: "expected epsilon or v, got '\(v)'") }
            config.prediction = p
        }
        if let v = dataScale { config.dataScale = v }
        if let v = timesteps {
            config.timesteps = v
            if config.sampler.steps > v { config.sampler.steps = v }
        }
        any = config
    }
}

/// A diffusion preset setting as help text (``presetDefaults(_:_:)``): `default 16`, or
/// `default linear; ddpm-1d, ddpm-1d-cond: cosine`.
func diffusionDefaults(prefix: String = "default ", _ value: (DiffusionConfig) -> String) -> String {
    presetDefaults(DiffusionConfig.presets, prefix: prefix, value)
}
