import Foundation

/// What to do with a character that is not in the vocabulary (at encoding, sampling with a
/// prompt, or evaluation time).
public enum UnknownCharacterPolicy: String, Sendable, Codable, CaseIterable {
    /// Throw a ``DataError`` naming the character (U+XXXX) and where it was found.
    case error
    /// Map it to the ``Vocabulary/unknownToken`` token, which the vocabulary then holds.
    case unknownToken
}

/// A character vocabulary: token index ↔ Unicode scalar, built from a training split only.
///
/// **Order (deterministic)**: the special tokens first, then the characters sorted by Unicode
/// scalar value (`sorted(set(text))` in Python, as makemore and nanoGPT do):
/// - index 0 is the end-of-sample token ``endOfSampleToken`` when ``hasEndOfSample`` (lines
///   mode; makemore's `.` at index 0 plays this role);
/// - then ``unknownToken`` when ``unknownPolicy`` is ``UnknownCharacterPolicy/unknownToken``;
/// - then the characters. A stream-mode vocabulary without `<unk>` is exactly nanoGPT's
///   (`\n` = 0, space = 1, ... for Shakespeare).
///
/// **Storage**: `Codable` (the JSON form below) and ``serialized`` / ``init(serialized:)``, a
/// stable string for a checkpoint's `__metadata__`:
///
///     {"characters":["\n"," ","!",...],"endOfSample":false,"format":"conjure-char-vocab-1","unknown":"error"}
///
/// (keys sorted, each character a one-scalar JSON string, so any scalar survives).
public struct Vocabulary: Sendable, Equatable, Codable {
    /// The format tag written in the serialised form.
    public static let formatTag = "conjure-char-vocab-1"
    /// The printed name of the end-of-sample token.
    public static let endOfSampleToken = "<eos>"
    /// The printed name of the unknown-character token.
    public static let unknownToken = "<unk>"

    /// The characters, in index order after the special tokens.
    public private(set) var characters: [Unicode.Scalar]
    /// Whether index 0 is the end-of-sample token (lines mode).
    public let hasEndOfSample: Bool
    /// The unknown-character policy; ``UnknownCharacterPolicy/unknownToken`` adds `<unk>`.
    public let unknownPolicy: UnknownCharacterPolicy
    private var index: [Unicode.Scalar: Int32]

    /// The number of special tokens before the characters (0, 1 or 2).
    public var specialCount: Int { (hasEndOfSample ? 1 : 0) + (unknownPolicy == .unknownToken ? 1 : 0) }
    /// The number of tokens (special tokens included): the model's output width.
    public var count: Int { specialCount + characters.count }
    /// Index of the end-of-sample token (0), or nil without one.
    public var endOfSample: Int32? { hasEndOfSample ? 0 : nil }
    /// Index of `<unk>`, or nil when unknown characters are errors.
    public var unknown: Int32? { unknownPolicy == .unknownToken ? Int32(hasEndOfSample ? 1 : 0) : nil }

    /// Creates a vocabulary with the given characters (deduplicated and sorted by scalar value).
    public init<S: Sequence>(characters: S, endOfSample: Bool, unknownPolicy: UnknownCharacterPolicy = .error)
    where S.Element == Unicode.Scalar {
        let sorted = Set(characters).sorted { $0.value < $1.value }
        self.characters = sorted
        self.hasEndOfSample = endOfSample
        self.unknownPolicy = unknownPolicy
        let base = (endOfSample ? 1 : 0) + (unknownPolicy == .unknownToken ? 1 : 0)
        var idx: [Unicode.Scalar: Int32] = [:]
        for (i, c) in sorted.enumerated() { idx[c] = Int32(base + i) }
        self.index = idx
    }

    /// Builds the vocabulary of a split's **training part only**: end-of-sample token in lines
    /// mode, none in stream mode.
    public init(training split: TextSplit, unknownPolicy: UnknownCharacterPolicy = .error) {
        var seen = Set<Unicode.Scalar>()
        for sample in split.train { for c in sample { seen.insert(c) } }
        self.init(characters: seen, endOfSample: split.mode == .lines, unknownPolicy: unknownPolicy)
    }

    /// The index of a character, or nil when it is not in the vocabulary (whatever the policy).
    public func index(of c: Unicode.Scalar) -> Int32? { index[c] }

    /// The printed form of token `i`: the character itself, or `<eos>` / `<unk>`.
    ///
    /// - Precondition: `0 <= i < count`.
    public func token(_ i: Int32) -> String {
        precondition(i >= 0 && Int(i) < count, "Vocabulary.token: index \(i) outside 0..<\(count)")
        if let e = endOfSample, i == e { return Self.endOfSampleToken }
        if let u = unknown, i == u { return Self.unknownToken }
        return String(Character(characters[Int(i) - specialCount]))
    }

    /// The character of token `i`, or nil for a special token.
    public func character(_ i: Int32) -> Unicode.Scalar? {
        let j = Int(i) - specialCount
        return j >= 0 && j < characters.count ? characters[j] : nil
    }

    /// Encodes text to token indices (no end-of-sample token added).
    ///
    /// - Parameters:
    ///   - text: the scalars.
    ///   - source: names the text in errors (a file, or `--prompt`).
    ///   - locate: maps a position in `text` to a location string for errors (default
    ///     `"character N"`, 1-based).
    /// - Throws: ``DataError`` for a character outside the vocabulary when the policy is
    ///   ``UnknownCharacterPolicy/error``: it names the character as `'x' (U+0078)` and where.
    public func encode(_ text: [Unicode.Scalar], source: String,
                       locate: ((Int) -> String)? = nil) throws -> [Int32] {
        var out = [Int32]()
        out.reserveCapacity(text.count)
        for (p, c) in text.enumerated() {
            if let i = index[c] { out.append(i); continue }
            if let u = unknown { out.append(u); continue }
            throw DataError(file: source, location: locate?(p) ?? "character \(p + 1)",
                            problem: "character \(Self.describe(c)) is not in the vocabulary (\(count) tokens, built from the training text)",
                            hint: "remove it, or train with --unknown token to map characters the training text lacks to \(Self.unknownToken)")
        }
        return out
    }

    /// Decodes token indices to a string; `<eos>` ends nothing here and is printed as nothing,
    /// `<unk>` is printed as U+FFFD (the replacement character).
    public func decode(_ tokens: [Int32]) -> String {
        var s = String.UnicodeScalarView()
        for t in tokens {
            if let c = character(t) { s.append(c) } else if let u = unknown, t == u { s.append("\u{FFFD}") }
        }
        return String(s)
    }

    /// A character as `'a' (U+0061)`; control characters and spaces shown escaped (`'\n'`).
    public static func describe(_ c: Unicode.Scalar) -> String {
        "'\(printable(c))' (U+\(String(format: "%04X", c.value)))"
    }

    /// A character escaped for display: `\n`, `\t`, `\r`; other control and format characters
    /// as `\u{XX}`; everything else (space included) as itself.
    public static func printable(_ c: Unicode.Scalar) -> String {
        switch c {
        case "\n": return "\\n"
        case "\t": return "\\t"
        case "\r": return "\\r"
        default:
            if c.properties.generalCategory == .control || c.properties.generalCategory == .format {
                return "\\u{\(String(c.value, radix: 16, uppercase: true))}"
            }
            return String(c)
        }
    }

    // MARK: - Serialisation

    private enum CodingKeys: String, CodingKey { case format, characters, endOfSample, unknown }

    /// Decodes the JSON form (`format`, `characters`, `endOfSample`, `unknown`).
    /// - Throws: `DecodingError` for an unknown `format` tag, an entry of `characters` that is not
    ///   one Unicode scalar, or characters not in strictly increasing scalar order.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let format = try c.decode(String.self, forKey: .format)
        guard format == Self.formatTag else {
            throw DecodingError.dataCorruptedError(forKey: .format, in: c, debugDescription: "unknown vocabulary format \(format)")
        }
        let strings = try c.decode([String].self, forKey: .characters)
        var chars: [Unicode.Scalar] = []
        for s in strings {
            guard s.unicodeScalars.count == 1, let u = s.unicodeScalars.first else {
                throw DecodingError.dataCorruptedError(forKey: .characters, in: c, debugDescription: "\"\(s)\" is not one character")
            }
            chars.append(u)
        }
        let sorted = zip(chars, chars.dropFirst()).allSatisfy { $0.value < $1.value }
        guard sorted else {
            throw DecodingError.dataCorruptedError(forKey: .characters, in: c, debugDescription: "characters are not in strictly increasing scalar order")
        }
        self.init(characters: chars, endOfSample: try c.decode(Bool.self, forKey: .endOfSample),
                  unknownPolicy: try c.decode(UnknownCharacterPolicy.self, forKey: .unknown))
    }

    /// Encodes the JSON form: the format tag ``formatTag``, the characters as one-scalar strings,
    /// `endOfSample` and the unknown-character policy.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.formatTag, forKey: .format)
        try c.encode(characters.map { String($0) }, forKey: .characters)
        try c.encode(hasEndOfSample, forKey: .endOfSample)
        try c.encode(unknownPolicy, forKey: .unknown)
    }

    /// The stable string form (sorted-key JSON, see the type's documentation).
    public var serialized: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding strings, bools and an enum cannot fail.
        return String(decoding: try! e.encode(self), as: UTF8.self)
    }

    /// Reads the form written by ``serialized``.
    ///
    /// - Parameter source: names the origin in errors (e.g. the checkpoint file).
    /// - Throws: ``DataError`` naming `source` when the text is not a valid vocabulary.
    public init(serialized text: String, source: String = "vocabulary") throws {
        do {
            self = try JSONDecoder().decode(Vocabulary.self, from: Data(text.utf8))
        } catch {
            throw DataError(file: source, problem: "not a valid character vocabulary: \(error)")
        }
    }

    /// Same characters in the same order, the same end-of-sample token and unknown policy.
    public static func == (a: Vocabulary, b: Vocabulary) -> Bool {
        a.characters == b.characters && a.hasEndOfSample == b.hasEndOfSample && a.unknownPolicy == b.unknownPolicy
    }
}
