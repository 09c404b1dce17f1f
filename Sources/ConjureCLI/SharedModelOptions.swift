import ArgumentParser
import ConjureModels
import Foundation

/// `conjure train` options that more than one family takes (one flag, one value): each is
/// applied by the family groups that list it in ``FamilyOptions/sharedOptions`` and refused
/// for the presets of the other families.
struct SharedModelOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Dropout probability. Text: char-transformer only, an error for the others (\(presetDefaults(TextConfig.presets) { formatSetting($0.dropout) })). Diffusion: in the U-Net's residual blocks (\(presetDefaults(DiffusionConfig.presets) { formatSetting($0.dropout) })).") var dropout: Float?
    @Option(parsing: .unconditional, help: "Learning rate. VAE (\(presetDefaults(VAEConfig.presets) { formatSetting($0.lr) })); diffusion (\(presetDefaults(DiffusionConfig.presets) { formatSetting($0.lr) })). Text presets take --learning-rate, GANs --lr-g and --lr-d.") var lr: Float?

    /// Each option's flag and whether it was given.
    var given: [(String, Bool)] { [("--dropout", dropout != nil), ("--lr", lr != nil)] }
}

/// A preset setting as help text: `default 1e-3` when every preset has it, else the value of
/// the group holding the first preset by name followed by the others' (`default linear;
/// ddpm-1d, ddpm-1d-cond: cosine`). `prefix` replaces `default `.
func presetDefaults<C>(_ presets: [String: C], prefix: String = "default ", _ value: (C) -> String) -> String {
    var groups: [String: [String]] = [:]
    for (name, config) in presets { groups[value(config), default: []].append(name) }
    let ordered = groups.map { (value: $0.key, presets: $0.value.sorted()) }.sorted { $0.presets[0] < $1.presets[0] }
    guard let first = ordered.first else { return "no default" }
    return (["\(prefix)\(first.value)"] + ordered.dropFirst().map { "\($0.presets.joined(separator: ", ")): \($0.value)" }).joined(separator: "; ")
}

/// A setting as the help texts write it: `0.001` as `1e-3`, `0.0002` as `2e-4`, `0.1` as
/// `0.1`, `16` as `16`.
func formatSetting(_ v: Float) -> String {
    if v == v.rounded() && abs(v) < 1e6 { return String(Int(v)) }
    if abs(v) >= 0.01 { return String(v) }
    let exponent = Int(log10(Double(abs(v))).rounded(.down))
    let mantissa = (Double(v) / pow(10, Double(exponent)) * 1e4).rounded() / 1e4
    return String(format: "%ge%d", mantissa, exponent)
}
