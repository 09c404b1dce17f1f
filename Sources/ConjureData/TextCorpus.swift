import Foundation

/// How a text file becomes samples (`--text-mode`).
public enum TextMode: String, Sendable, Codable, CaseIterable {
    /// One sample per non-empty line (a list of names, words, short sentences); each sample ends
    /// with an end-of-sample token (``Vocabulary/endOfSample``), as in makemore.
    case lines
    /// The whole file is one character stream (line ends included) cut into blocks of
    /// `context` characters, as in nanoGPT's `shakespeare_char`.
    case stream
}

/// A UTF-8 text file decoded into Unicode scalars, ready to be split and encoded.
///
/// **Characters are Unicode scalars** (code points other than surrogates), not grapheme
/// clusters: "é" written as `e` + U+0301 (combining acute) is two characters, as precomposed
/// U+00E9 it is one. This matches Python's `str` indexing, which makemore and nanoGPT use, and
/// keeps the vocabulary small and closed under any split.
///
/// Line ends: in ``TextMode/lines`` a line ends at `\n`; a `\r` just before it (CRLF files) is
/// dropped, and empty lines are skipped (counted in ``emptyLineCount``). In
/// ``TextMode/stream`` every scalar is kept as it is, line ends included. A UTF-8 byte-order
/// mark at the start of the file is dropped in both modes.
public struct TextCorpus: Sendable {
    /// The file read (or a label for in-memory text).
    public var source: String
    /// Every scalar of the file, in order (a leading byte-order mark removed).
    public var scalars: [Unicode.Scalar]
    /// The size of the file in bytes.
    public var byteCount: Int

    /// Creates a corpus from already decoded text.
    public init(source: String, scalars: [Unicode.Scalar], byteCount: Int? = nil) {
        self.source = source
        self.scalars = scalars
        self.byteCount = byteCount ?? scalars.reduce(0) { $0 + UTF8.width($1) }
    }

    /// Reads and strictly validates a UTF-8 text file.
    ///
    /// - Parameter path: the file.
    /// - Returns: the decoded corpus.
    /// - Throws: ``DataError`` naming `path` when it cannot be read, is empty, or holds a byte
    ///   sequence that is not valid UTF-8 (the error gives the byte offset and the line of the
    ///   first bad byte; see ``decodeUTF8(_:file:)``).
    public static func load(path: String) throws -> TextCorpus {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            var isDir: ObjCBool = false
            let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
            throw DataError(file: path, problem: !exists ? "no such file" : isDir.boolValue ? "is a directory" : "cannot read: \(error.localizedDescription)")
        }
        let bytes = [UInt8](data)
        let scalars = try decodeUTF8(bytes, file: path)
        if scalars.isEmpty {
            throw DataError(file: path, problem: "the file holds no text", hint: "give a non-empty UTF-8 text file")
        }
        return TextCorpus(source: path, scalars: scalars, byteCount: bytes.count)
    }

    /// Strict UTF-8 decoding (RFC 3629): rejects stray continuation bytes, truncated sequences,
    /// overlong forms, UTF-16 surrogates (U+D800...U+DFFF) and values above U+10FFFF. A leading
    /// byte-order mark (EF BB BF) is dropped.
    ///
    /// - Parameters:
    ///   - bytes: the file's bytes.
    ///   - file: the name used in errors.
    /// - Returns: the scalars.
    /// - Throws: one ``DataError`` for the first invalid sequence, located as
    ///   `"byte B (line L)"`: `B` is the 0-based offset of the offending lead byte, `L` the
    ///   1-based line (counting `\n`).
    public static func decodeUTF8(_ bytes: [UInt8], file: String) throws -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(bytes.count)
        let n = bytes.count
        var i = (n >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF) ? 3 : 0
        var line = 1
        func fail(_ at: Int, _ what: String) -> DataError {
            let shown = bytes[at ..< min(at + 4, n)].map { String(format: "%02X", $0) }.joined(separator: " ")
            return DataError(file: file, location: "byte \(at) (line \(line))",
                             problem: "invalid UTF-8: \(what) (bytes \(shown))",
                             hint: "convert the file to UTF-8, e.g. `iconv -f LATIN1 -t UTF-8`")
        }
        while i < n {
            let b0 = bytes[i]
            if b0 < 0x80 {
                if b0 == 0x0A { line += 1 }
                out.append(Unicode.Scalar(b0))
                i += 1
                continue
            }
            let width: Int, minimum: UInt32, initial: UInt32
            switch b0 {
            case 0xC2 ... 0xDF: width = 2; minimum = 0x80; initial = UInt32(b0 & 0x1F)
            case 0xE0 ... 0xEF: width = 3; minimum = 0x800; initial = UInt32(b0 & 0x0F)
            case 0xF0 ... 0xF4: width = 4; minimum = 0x10000; initial = UInt32(b0 & 0x07)
            case 0x80 ... 0xBF: throw fail(i, "continuation byte without a lead byte")
            default: throw fail(i, "byte 0x\(String(format: "%02X", b0)) never occurs in UTF-8")
            }
            if i + width > n { throw fail(i, "sequence truncated by the end of the file") }
            var v = initial
            for k in 1 ..< width {
                let b = bytes[i + k]
                guard b & 0xC0 == 0x80 else { throw fail(i, "lead byte not followed by enough continuation bytes") }
                v = (v << 6) | UInt32(b & 0x3F)
            }
            if v < minimum { throw fail(i, "overlong encoding of U+\(String(v, radix: 16, uppercase: true))") }
            if (0xD800 ... 0xDFFF).contains(v) { throw fail(i, "encoded UTF-16 surrogate U+\(String(v, radix: 16, uppercase: true))") }
            guard v <= 0x10FFFF, let s = Unicode.Scalar(v) else { throw fail(i, "value above U+10FFFF") }
            out.append(s)
            i += width
        }
        return out
    }

    /// The samples of ``TextMode/lines`` mode: each line without its `\n` (and a `\r` before
    /// it), empty lines skipped.
    public var lines: [[Unicode.Scalar]] { numberedLines.map(\.text) }

    /// The non-empty lines with their 1-based line numbers in the file.
    public var numberedLines: [(line: Int, text: [Unicode.Scalar])] {
        var result: [(line: Int, text: [Unicode.Scalar])] = []
        var current: [Unicode.Scalar] = []
        var number = 1
        func flush() {
            if current.last == "\r" { current.removeLast() }
            if !current.isEmpty { result.append((number, current)) }
            current.removeAll(keepingCapacity: true)
        }
        for s in scalars {
            if s == "\n" { flush(); number += 1 } else { current.append(s) }
        }
        flush()
        return result
    }

    /// Line statistics of the whole file: total lines (a last line without `\n` counts),
    /// empty lines (after dropping a `\r`), and the longest line in scalars.
    public var lineStatistics: (lines: Int, empty: Int, longest: Int) {
        var lines = 0, empty = 0, longest = 0, length = 0, lastWasCR = false
        for s in scalars {
            if s == "\n" {
                let l = lastWasCR ? length - 1 : length
                lines += 1
                if l == 0 { empty += 1 }
                longest = max(longest, l)
                length = 0
            } else {
                length += 1
            }
            lastWasCR = s == "\r"
        }
        if length > 0 {
            lines += 1
            longest = max(longest, length)
        }
        return (lines, empty, longest)
    }

    /// Longest line (in scalars) for which ``defaultMode`` still picks ``TextMode/lines``.
    public static let linesModeMaxLineLength = 48

    /// The mode used when none is given: ``TextMode/lines`` when **every line is at most
    /// ``linesModeMaxLineLength`` (48) characters and fewer than 1% of the lines are empty**
    /// (a list: names, words, short phrases); otherwise ``TextMode/stream`` (prose, plays,
    /// code: blank lines separate paragraphs and lines wrap). names.txt (longest 15, no empty
    /// line) is read as lines; tinyshakespeare.txt (18% empty lines) as a stream.
    public var defaultMode: TextMode {
        let s = lineStatistics
        guard s.lines > 0 else { return .stream }
        return s.longest <= Self.linesModeMaxLineLength && s.empty * 100 < s.lines ? .lines : .stream
    }

    /// The 1-based line and column (in scalars) of scalar `index`, for error messages.
    public func lineAndColumn(ofScalarAt index: Int) -> (line: Int, column: Int) {
        var line = 1, column = 1
        for s in scalars[..<min(index, scalars.count)] {
            if s == "\n" { line += 1; column = 1 } else { column += 1 }
        }
        return (line, column)
    }
}

/// A corpus cut into a training and a held-out part.
///
/// - ``TextMode/stream``: the first 90% of the scalars train and the **last 10%** are held out
///   (`n = len(data); train = data[:int(n*0.9)]`, nanoGPT's `shakespeare_char/prepare.py`);
///   blocks are never mixed across the two parts.
/// - ``TextMode/lines``: makemore's protocol: `min(1000, count / 10)` lines, picked by a seeded
///   permutation, are held out and the rest train (makemore draws its permutation with
///   `torch.randperm`; this one uses ``RandomGenerator``, so the same seed gives another but
///   equally random set). Both parts keep the file's order.
public struct TextSplit: Sendable {
    /// The mode the split was made for.
    public var mode: TextMode
    /// Lines mode: training lines; stream mode: one element, the training text.
    public var train: [[Unicode.Scalar]]
    /// Lines mode: held-out lines; stream mode: one element, the held-out text.
    public var heldOut: [[Unicode.Scalar]]
    /// For each held-out sample, where it came from: its 1-based line number in the file (lines
    /// mode) or its scalar offset in the file (stream mode, one element).
    public var heldOutOrigins: [Int]

    /// The RNG stream used by the lines-mode held-out draw, kept apart from other streams.
    public static let streamID: UInt64 = 0x7E57_5B11_0000_0000

    /// Splits a corpus.
    ///
    /// - Parameters:
    ///   - corpus: the text.
    ///   - mode: lines or stream.
    ///   - seed: lines mode only: the seed of the held-out draw (default 42).
    ///   - heldOutFraction: the held-out share, default 0.1 (makemore additionally caps lines
    ///     mode at 1000 lines, `heldOutCap`).
    ///   - heldOutCap: lines mode: the most held-out lines (default 1000; nil for no cap).
    /// - Throws: ``DataError`` naming the corpus when a part would be empty (a file of one line,
    ///   or a stream of fewer than 10 characters).
    public init(corpus: TextCorpus, mode: TextMode, seed: UInt64 = 42, heldOutFraction: Double = 0.1,
                heldOutCap: Int? = 1000) throws {
        precondition(heldOutFraction > 0 && heldOutFraction < 1,
                     "TextSplit: heldOutFraction must be in (0, 1), got \(heldOutFraction)")
        self.mode = mode
        switch mode {
        case .stream:
            let n = corpus.scalars.count
            let cut = Int(Double(n) * (1 - heldOutFraction))
            guard cut > 0 && cut < n else {
                throw DataError(file: corpus.source, problem: "\(n) characters are too few to hold out \(Int(heldOutFraction * 100))%",
                                hint: "use a longer text")
            }
            train = [Array(corpus.scalars[..<cut])]
            heldOut = [Array(corpus.scalars[cut...])]
            heldOutOrigins = [cut]
        case .lines:
            let all = corpus.numberedLines
            var k = Int(Double(all.count) * heldOutFraction)
            if let heldOutCap { k = min(k, heldOutCap) }
            guard k >= 1 && k < all.count else {
                throw DataError(file: corpus.source, problem: "\(all.count) non-empty lines are too few for a held-out split",
                                hint: "lines mode needs at least 10 lines; use --text-mode stream for running text")
            }
            var rng = RandomGenerator(seed: seed, stream: Self.streamID)
            let picked = Set(rng.permutation(all.count).prefix(k))
            var tr: [[Unicode.Scalar]] = [], ho: [[Unicode.Scalar]] = [], origins: [Int] = []
            tr.reserveCapacity(all.count - k)
            for (i, line) in all.enumerated() {
                if picked.contains(i) { ho.append(line.text); origins.append(line.line) } else { tr.append(line.text) }
            }
            train = tr
            heldOut = ho
            heldOutOrigins = origins
        }
    }
}
