import Foundation

/// An error reading, checking or writing user data: it names the file, where in it (byte offset,
/// line, column or field) when known, what is wrong and, when useful, what to do.
public struct DataError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The file (or option) concerned.
    public var file: String
    /// Where in the file: "byte 128", "line 3, column 2 (x2)", "header", or nil.
    public var location: String?
    /// What is wrong.
    public var problem: String
    /// What the user can do about it, or nil.
    public var hint: String?

    /// An error about `file`, at `location` when known, with `problem` and an optional `hint`.
    public init(file: String, location: String? = nil, problem: String, hint: String? = nil) {
        self.file = file
        self.location = location
        self.problem = problem
        self.hint = hint
    }

    /// `FILE: LOCATION: PROBLEM (HINT)`, the location and hint only when present.
    public var description: String {
        var s = file
        if let location { s += ": \(location)" }
        s += ": \(problem)"
        if let hint { s += " (\(hint))" }
        return s
    }
}
