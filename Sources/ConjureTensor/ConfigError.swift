/// A bad option or configuration value.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    /// The option at fault, as the user writes it (`--lr-warmup-steps`, `--model`).
    public var option: String
    /// What is wrong with its value, e.g. "must be non-negative, got -1".
    public var problem: String
    /// How to fix it (accepted values, an example), or `nil`; shown in parentheses.
    public var hint: String?
    /// An error for `option` with `problem` and an optional `hint`.
    public init(option: String, problem: String, hint: String? = nil) {
        self.option = option
        self.problem = problem
        self.hint = hint
    }
    /// `OPTION: PROBLEM (HINT)`, the message the CLI prints.
    public var description: String { "\(option): \(problem)" + (hint.map { " (\($0))" } ?? "") }
}
