import Foundation

/// What `conjure data inspect FILE.txt` reports about a text file.
public struct TextSummary: Sendable, Codable, Equatable, CustomStringConvertible {
    /// One character and how often it occurs in the whole file.
    public struct CharacterCount: Sendable, Codable, Equatable {
        /// The character (one Unicode scalar).
        public var character: String
        /// Its count in the whole file.
        public var count: Int
    }

    /// The file.
    public var source: String
    /// The mode used.
    public var mode: TextMode
    /// Whether the mode was picked by ``TextCorpus/defaultMode`` (not given by option).
    public var modeIsDefault: Bool
    /// Bytes in the file.
    public var bytes: Int
    /// Lines in the file (a last line without `\n` counts).
    public var lines: Int
    /// Empty lines in the file (skipped in lines mode).
    public var emptyLines: Int
    /// The longest line, in characters.
    public var longestLine: Int
    /// Characters (Unicode scalars) in the file, line ends included.
    public var characters: Int
    /// Distinct characters in the whole file.
    public var distinctCharacters: Int
    /// Tokens in the training vocabulary of a default run (its characters, and `<eos>` in lines
    /// mode; `<unk>` only with `--unknown token`, which this count leaves out).
    public var vocabularySize: Int
    /// Training samples: lines (lines mode) or characters (stream mode).
    public var trainCount: Int
    /// Held-out samples: lines (lines mode) or characters (stream mode).
    public var heldOutCount: Int
    /// Held-out characters that are not in the training vocabulary.
    public var heldOutUnknown: Int
    /// Up to 10 most frequent characters, most frequent first (ties by scalar value).
    public var mostFrequent: [CharacterCount]
    /// Up to 10 least frequent characters, least frequent first (ties by scalar value).
    public var leastFrequent: [CharacterCount]

    /// Summarises a text data set.
    public init(dataset d: TextDataset) {
        source = d.corpus.source
        mode = d.mode
        modeIsDefault = d.modeIsDefault
        bytes = d.corpus.byteCount
        let st = d.corpus.lineStatistics
        lines = st.lines
        emptyLines = st.empty
        longestLine = st.longest
        characters = d.corpus.scalars.count
        var counts: [Unicode.Scalar: Int] = [:]
        for c in d.corpus.scalars { counts[c, default: 0] += 1 }
        distinctCharacters = counts.count
        // Loaded with an <unk> token to count unknown held-out characters; a default run has none.
        vocabularySize = d.vocabulary.characters.count + (d.vocabulary.hasEndOfSample ? 1 : 0)
        trainCount = d.mode == .lines ? d.split.train.count : d.split.train[0].count
        heldOutCount = d.mode == .lines ? d.split.heldOut.count : d.split.heldOut[0].count
        heldOutUnknown = d.split.heldOut.reduce(0) { n, s in n + s.filter { d.vocabulary.index(of: $0) == nil }.count }
        let byCount = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.value < $1.key.value }
        mostFrequent = byCount.prefix(10).map { CharacterCount(character: String($0.key), count: $0.value) }
        let rarest = counts.sorted { $0.value != $1.value ? $0.value < $1.value : $0.key.value < $1.key.value }
        leastFrequent = rarest.prefix(10).map { CharacterCount(character: String($0.key), count: $0.value) }
    }

    /// The report, one fact per line.
    public var description: String {
        func show(_ list: [CharacterCount]) -> String {
            list.map { c in
                let s = c.character.unicodeScalars.first.map { Vocabulary.printable($0) } ?? c.character
                return "'\(s)' \(c.count)"
            }.joined(separator: ", ")
        }
        let unit = mode == .lines ? "lines" : "characters"
        var out: [String] = []
        out.append("source:     \(source)")
        out.append("format:     text (UTF-8; characters are Unicode scalars)")
        out.append("mode:       \(mode.rawValue)" + (modeIsDefault
            ? " (default: \(mode == .lines ? "every line <= \(TextCorpus.linesModeMaxLineLength) characters and < 1% empty lines" : "lines longer than \(TextCorpus.linesModeMaxLineLength) characters or >= 1% empty lines"))"
            : " (by option)"))
        out.append("bytes:      \(bytes)")
        out.append("lines:      \(lines) (\(emptyLines) empty, longest \(longestLine) characters)")
        out.append("characters: \(characters) (\(distinctCharacters) distinct)")
        out.append("vocabulary: \(vocabularySize) tokens from the training split"
                   + (mode == .lines ? " (<eos> included)" : ""))
        out.append("split:      \(trainCount) training \(unit), \(heldOutCount) held-out \(unit)"
                   + (mode == .lines ? " (min(1000, 10%) seeded lines)" : " (last 10%)")
                   + (heldOutUnknown > 0 ? "; \(heldOutUnknown) held-out characters not in the vocabulary" : ""))
        out.append("most frequent:  \(show(mostFrequent))")
        out.append("least frequent: \(show(leastFrequent))")
        return out.joined(separator: "\n")
    }
}

/// Reads a text file as ``TextDataset/load(path:mode:unknownPolicy:seed:)`` does (with unknown
/// held-out characters counted, not rejected) and summarises it (`conjure data inspect FILE.txt`).
///
/// - Parameters:
///   - path: a UTF-8 text file.
///   - mode: nil for the default rule.
/// - Throws: ``DataError`` for unreadable or invalid UTF-8 text, or too little text.
public func inspectText(path: String, mode: TextMode? = nil) throws -> TextSummary {
    TextSummary(dataset: try TextDataset.load(path: path, mode: mode, unknownPolicy: .unknownToken))
}
