import ArgumentParser
import ConjureModels

/// The command-line options of one model family, as an option group of `conjure train`. A new
/// family adds one such group (one file) and lists it in ``Train/familyOptions``; an option that
/// several families take (`--dropout`, `--lr`) is declared once, in ``SharedModelOptions``.
protocol FamilyOptions: ParsableArguments {
    /// The registry name of the family whose presets these options apply to.
    static var family: String { get }
    /// The family's name in messages (`GAN`, `VAE`).
    static var title: String { get }
    /// Each option's flag and whether it was given.
    var given: [(String, Bool)] { get }
    /// Applies the given options to a configuration of this family.
    ///
    /// - Throws: ``ConfigError`` naming the option.
    func apply(to config: inout any FamilyConfig) throws
    /// A hint when an option of another family was given for a preset of this one (`use
    /// --latent-dim` for `--noise-dim` on a VAE).
    func hint(forForeignOption option: String) -> String?
    /// The flags of ``SharedModelOptions`` this family takes (`--dropout`); the others are
    /// refused for its presets.
    static var sharedOptions: [String] { get }
    /// Applies the given options of ``SharedModelOptions`` that this family takes.
    ///
    /// - Throws: ``ConfigError`` naming the option.
    func apply(_ shared: SharedModelOptions, to config: inout any FamilyConfig) throws
}

extension FamilyOptions {
    /// None.
    static var sharedOptions: [String] { [] }
    /// Nothing to apply.
    func apply(_ shared: SharedModelOptions, to config: inout any FamilyConfig) throws {}
}

/// Comma-separated positive integers (`none` or empty: no entries).
///
/// - Throws: ``ConfigError`` naming `option`.
func parseIntList(_ text: String, option: String) throws -> [Int] {
    if text.isEmpty || text == "none" { return [] }
    // Empty items ("1,,2", "1,") are errors, not skipped.
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard parts.allSatisfy({ $0 != nil && $0! > 0 }) else {
        throw ConfigError(option: option, problem: "expected comma-separated positive integers, got '\(text)'")
    }
    return parts.map { $0! }
}
