/// A bad option or configuration value.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public var option: String
    public var problem: String
    public var hint: String?
    public init(option: String, problem: String, hint: String? = nil) {
        self.option = option
        self.problem = problem
        self.hint = hint
    }
    public var description: String { "\(option): \(problem)" + (hint.map { " (\($0))" } ?? "") }
}
