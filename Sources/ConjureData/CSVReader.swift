import Foundation

// Longer than 400 lines on purpose: one hand-tuned CSV parser (fast path, quoting, delimiters, line ends, header rules) whose states are shared by every branch; its error messages depend on that shared position tracking.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What to do with rows holding a missing or non-finite value.
public enum CleanPolicy: String, Sendable, Codable, CaseIterable {
    /// Refuse the file with an error naming the first bad value (the default).
    case error
    /// Remove every sample (CSV row, array sample) holding a bad value and report how many.
    case drop
}

/// Whether the first row of a CSV file names the columns.
public enum CSVHeaderPolicy: String, Sendable, Codable, CaseIterable {
    /// The first row is a header when any of its fields is not a number (the default).
    case auto
    /// The first row is always a header.
    case present
    /// There is no header; the first row is data.
    case absent
}

/// A column of a table, chosen by position or by header name.
public enum ColumnSelector: Sendable, Equatable, Hashable, CustomStringConvertible,
    ExpressibleByIntegerLiteral, ExpressibleByStringLiteral
{
    /// A 0-based column index; negative indices count from the end (`-1` is the last column),
    /// as in Python.
    case index(Int)
    /// The column whose header field equals this name (needs a header row).
    case name(String)

    /// The last column (`.index(-1)`), where MNIST CSV files keep the label.
    public static let last = ColumnSelector.index(-1)

    /// A column by index: `0`, `-1` (the last).
    public init(integerLiteral value: Int) { self = .index(value) }
    /// A column by header name: `"label"`.
    public init(stringLiteral value: String) { self = .name(value) }

    /// Parses a command-line spelling: an integer (`0`, `-1`), `last`, or a header name.
    public init(parsing text: String) {
        if let n = Int(text) { self = .index(n) } else if text == "last" { self = .last } else { self = .name(text) }
    }

    /// `index N` or `'NAME'`, as shown in error messages.
    public var description: String {
        switch self {
        case .index(let i): return "index \(i)"
        case .name(let n): return "'\(n)'"
        }
    }
}

/// Options for ``CSVReader``.
public struct CSVOptions: Sendable, Equatable {
    /// Header detection; `.auto` by default.
    public var header: CSVHeaderPolicy
    /// The field separator byte; `,` by default.
    public var delimiter: UInt8
    /// The column holding integer class labels, removed from the features; `nil` (no labels)
    /// by default. For the MNIST CSV files pass ``ColumnSelector/last``.
    public var labelColumn: ColumnSelector?
    /// What to do with empty, `nan`, `inf` or other missing-value cells; `.error` by default.
    public var clean: CleanPolicy
    /// When ``labelColumn`` is `nil`: take the first header column named as in
    /// ``CSVReader/labelColumnNames`` (`label`, `class`, `target`, `y`, any case) as the label
    /// column, as in Kaggle's `label,pixel0,...,pixel783`. `false` by default here (the reader
    /// does only what it is told); ``DatasetOptions`` turns it on.
    public var labelColumnFromHeader: Bool

    /// Options with the defaults listed on each property (detected header, `,`, no label column,
    /// missing values an error, no label column taken from the header).
    public init(header: CSVHeaderPolicy = .auto, delimiter: UInt8 = UInt8(ascii: ","),
                labelColumn: ColumnSelector? = nil, clean: CleanPolicy = .error,
                labelColumnFromHeader: Bool = false) {
        self.labelColumnFromHeader = labelColumnFromHeader
        self.header = header
        self.delimiter = delimiter
        self.labelColumn = labelColumn
        self.clean = clean
    }

    /// The delimiter a file's name implies: a tab for `.tsv` and `.tsv.gz`, else a comma.
    public static func delimiter(forPath path: String) -> UInt8 {
        let name = path.lowercased()
        return name.hasSuffix(".tsv") || name.hasSuffix(".tsv.gz") ? 9 : UInt8(ascii: ",")
    }
}

/// A numeric table read from a CSV file.
public struct CSVTable: Sendable {
    /// The feature values, shape `[rows, columns]` (the label column excluded).
    public var values: Tensor
    /// The labels from ``CSVOptions/labelColumn``, one per kept row, or `nil`.
    public var labels: [Int]?
    /// The header fields of all columns (the label column included), or `nil` when there is none.
    public var header: [String]?
    /// The 0-based index of the label column among all columns, or `nil`.
    public var labelColumnIndex: Int?
    /// How many data rows were removed under ``CleanPolicy/drop``.
    public var droppedRows: Int
    /// The 1-based file line numbers of the removed rows (at most the first 100).
    public var droppedLines: [Int]
    /// Whether every kept feature value is an integer (e.g. 0...255 pixels written as text).
    public var allIntegers: Bool
}

/// Reader for numeric CSV files (RFC 4180 subset), plain or gzipped.
///
/// Rules, in order:
/// - The content must be UTF-8 text: a NUL byte or bytes that are not well-formed UTF-8
///   anywhere, or a control character other than tab, line feed, vertical tab, form feed and
///   carriage return in the first 1024 bytes, make the file "not a text CSV file (binary
///   content at byte N)" (N 0-based). Text from the file quoted in any error is escaped
///   (`\x1b`) and cut to 40 characters (`...`).
/// - A UTF-8 byte-order mark is skipped; line ends may be `\n` or `\r\n`, or `\r` in a file
///   without any `\n`; blank lines (spaces and tabs only, unless the delimiter is one of them;
///   anywhere, including trailing ones) are skipped. Line numbers in errors are 1-based file lines.
/// - Header: with ``CSVHeaderPolicy/auto`` the first non-blank row is a header when any of its
///   fields is non-empty and not a number, or when it is `0, 1, ..., n - 1` with `n >= 3`
///   (pandas' default column names, as `to_csv(index=False)` writes them).
/// - Every row must have as many fields as the first row, else an error names the line.
/// - Fields may be surrounded by spaces and by double quotes (`""` inside quotes is one quote);
///   quoted fields may not span lines: a quote not closed on its line, or text after a closing
///   quote, is an error naming the line and column.
/// - Cells that are empty or hold a missing-value marker (`nan`, `na`, `n/a`, `null`, `none`, `?`,
///   any case) or an infinity (`inf`, `infinity`, any sign or case) are bad values: with
///   ``CleanPolicy/error`` the first one is an error naming the file, line and column (1-based
///   index and header name); with ``CleanPolicy/drop`` their rows are removed and counted.
///   Any other non-numeric text is always an error.
/// - Label column values must be non-negative integers (class indices).
///
/// Numbers are parsed from the bytes directly (Clinger's fast path for up to 19 significant
/// digits and powers of ten up to 22, `strtod` otherwise), then rounded to Float32.
public enum CSVReader {
    /// Reads a CSV file (gzip detected by content).
    ///
    /// - Returns: a table whose ``CSVTable/values`` has shape `[rows, columns]`; `[0, 0]` for
    ///   an empty file.
    /// - Throws: ``DataError`` naming the file and line (and column) for ragged rows, bad
    ///   cells, non-numeric text, a label column that does not exist or non-integer labels;
    ///   naming the byte offset for binary (non-text) content.
    public static func read(path: String, options: CSVOptions = CSVOptions()) throws -> CSVTable {
        try read(bytes: Gzip.readFile(atPath: path), file: path, options: options)
    }

    /// Parses CSV text held in memory.
    ///
    /// - Throws: as ``read(path:options:)``.
    public static func read(bytes: [UInt8], file: String, options: CSVOptions = CSVOptions()) throws -> CSVTable {
        try bytes.withUnsafeBufferPointer { buf in
            do {
                return try parse(buf, file: file, options: options)
            } catch let e as DataError where options.labelColumn == nil && options.labelColumnFromHeader && e.isLabelValueError {
                // A column merely named like a label (`y` of 2-d points, a real-valued `target`)
                // whose values are not class indices is a feature column: read the file unlabelled.
                var plain = options
                plain.labelColumnFromHeader = false
                return try parse(buf, file: file, options: plain)
            }
        }
    }

    /// The header names taken for a label column when none is given (compared ignoring case
    /// and surrounding spaces): `label`, `class`, `target`, `y`, in that order of preference.
    public static let labelColumnNames = ["label", "class", "target", "y"]

    /// The index of the label column a header names: the first column named by the earliest
    /// entry of ``labelColumnNames`` (ignoring case and surrounding spaces), or `nil`. A `y`
    /// column beside an `x` column is a coordinate, not a label.
    ///
    /// Kaggle's MNIST `label,pixel0,...,pixel783` gives 0.
    public static func labelColumnIndex(header: [String]) -> Int? {
        let names = header.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        for wanted in labelColumnNames {
            // `x,y` are the coordinates of 2-d points, not a feature and a label.
            if wanted == "y" && names.contains("x") { continue }
            if let j = names.firstIndex(of: wanted) { return j }
        }
        return nil
    }

    /// The label column a CSV file's header names (see ``labelColumnIndex(header:)``), as a
    /// selector, or `nil` when the file has no header, a single column, no such name, or when
    /// that column's values are not all non-negative integers (the `y` of 2-d points is a
    /// feature, not a label).
    ///
    /// The first line is looked at first; only when it names a label column is the whole file
    /// parsed (rows with missing values skipped) to check the values.
    ///
    /// - Throws: ``DataError`` when the file cannot be read.
    public static func namedLabelColumn(path: String, delimiter: UInt8? = nil) throws -> ColumnSelector? {
        // The first non-blank line (blank lines before a header are skipped, as the parser does),
        // from the file's first 256 KiB: a header longer than that is read whole below.
        var bytes = try Gzip.readPrefix(atPath: path, limit: 1 << 18)
        var start = bytes.firstIndex(where: { $0 != 10 && $0 != 13 && $0 != 32 }) ?? bytes.count
        if bytes.count == 1 << 18, bytes[start...].firstIndex(where: { $0 == 10 || $0 == 13 }) == nil {
            bytes = try Gzip.readFile(atPath: path)
            start = bytes.firstIndex(where: { $0 != 10 && $0 != 13 && $0 != 32 }) ?? bytes.count
        }
        let end = bytes[start...].firstIndex(where: { $0 == 10 || $0 == 13 }) ?? bytes.count
        let head = Array(bytes[start..<end]) + [10]
        let options = CSVOptions(header: .auto, delimiter: delimiter ?? CSVOptions.delimiter(forPath: path), labelColumn: nil, clean: .drop)
        guard let table = try? head.withUnsafeBufferPointer({ try parse($0, file: path, options: options) }) else { return nil }
        guard let header = table.header, header.count >= 2, labelColumnIndex(header: header) != nil else { return nil }
        var all = options
        all.labelColumnFromHeader = true
        guard let full = try? read(bytes: Gzip.readFile(atPath: path), file: path, options: all), let j = full.labelColumnIndex else { return nil }
        return .index(j)
    }

    // MARK: - Implementation

    /// The outcome of parsing one cell.
    enum Cell {
        case number(Double)
        case missing       // empty or a missing-value marker
        case nonFinite     // nan/inf spelled out (an overflow is a `.number` infinity)
        case text          // anything else
    }

    struct Bad {
        var line: Int
        var column: Int  // 0-based
        var problem: String
    }

    static func parse(_ buf: UnsafeBufferPointer<UInt8>, file: String, options: CSVOptions) throws -> CSVTable {
        let delim = options.delimiter
        let n = buf.count
        var pos = 0
        if n >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF { pos = 3 }
        // Lines end at `\n` (a `\r` before it is dropped); a file with no `\n` but a `\r`
        // (classic Mac OS) ends its lines at `\r`.
        let newline: UInt8 = n > 0 && memchr(buf.baseAddress!, 0x0A, n) == nil && memchr(buf.baseAddress!, 0x0D, n) != nil
            ? 0x0D : 0x0A
        if let (offset, what) = binaryContent(buf) {
            var line = 1
            for k in 0..<offset where buf[k] == newline { line += 1 }
            let utf16 = n >= 2 && ((buf[0] == 0xFF && buf[1] == 0xFE) || (buf[0] == 0xFE && buf[1] == 0xFF))
            throw DataError(file: file, location: "byte \(offset) (line \(line))",
                            problem: "not a text CSV file (binary content at byte \(offset))",
                            hint: utf16 ? "the file is UTF-16 text (it starts with a UTF-16 byte-order mark); re-save it as UTF-8"
                                        : "\(what); a CSV file must be UTF-8 text — check that this is the right file")
        }
        var lineNumber = 0

        /// Returns the next non-blank line as (start, end, lineNumber), end excluding `\r\n`.
        /// A line of only spaces and tabs is blank unless the delimiter is among them (a
        /// `.tsv` row of tabs is a row of empty cells).
        func nextLine() -> (Int, Int, Int)? {
            while pos < n {
                lineNumber += 1
                let start = pos
                var end: Int
                if let hit = memchr(buf.baseAddress! + start, Int32(newline), n - start) {
                    end = buf.baseAddress!.distance(to: hit.assumingMemoryBound(to: UInt8.self))
                    pos = end + 1
                } else {
                    end = n
                    pos = n
                }
                if end > start && buf[end - 1] == 0x0D { end -= 1 }
                var k = start
                while k < end && (buf[k] == 0x20 || buf[k] == 0x09) && buf[k] != delim { k += 1 }
                if k < end { return (start, end, lineNumber) }
            }
            return nil
        }

        @inline(__always)
        func field(_ p0: Int, _ end: Int) -> (Range<Int>, Int, Quoting) { CSVReader.field(buf, p0, end, delim) }

        func text(_ r: Range<Int>) -> String {
            var s = String(decoding: UnsafeBufferPointer(rebasing: buf[r]), as: UTF8.self)
            s = s.replacingOccurrences(of: "\"\"", with: "\"")
            return s
        }

        /// A cell's text as quoted in an error message: escaped and cut short (see
        /// `sanitizedForMessage`).
        func shown(_ r: Range<Int>) -> String { sanitizedForMessage(text(r)) }

        // --- First row: header or data.
        guard let (firstStart, firstEnd, firstLine) = nextLine() else {
            return CSVTable(values: Tensor(shape: [0, 0], scalars: []), labels: options.labelColumn == nil ? nil : [],
                            header: nil, labelColumnIndex: nil, droppedRows: 0, droppedLines: [], allIntegers: true)
        }
        let (firstFields, firstBad) = splitAll(buf, firstStart, firstEnd, delim)
        if let (c, quoting) = firstBad, let problem = quoting.problem {
            throw DataError(file: file, location: "line \(firstLine), column \(c + 1)", problem: problem, hint: Quoting.hint)
        }
        let columns = firstFields.count
        let isHeader: Bool
        switch options.header {
        case .present: isHeader = true
        case .absent: isHeader = false
        case .auto:
            isHeader = firstFields.contains { r in
                if r.isEmpty { return false }
                if case .text = parseCell(buf, r) { return true }
                return false
            } || isDefaultColumnNames(buf, firstFields)
        }
        let header: [String]? = isHeader ? firstFields.map(text) : nil

        // --- Label column.
        var labelIndex: Int? = nil
        if let sel = options.labelColumn {
            switch sel {
            case .index(let i):
                let j = i < 0 ? columns + i : i
                guard j >= 0 && j < columns else {
                    throw DataError(file: file, location: "line \(firstLine)",
                                    problem: "label column index \(i) is out of range: the file has \(columns) columns",
                                    hint: "use 0...\(columns - 1), or -1 for the last column")
                }
                labelIndex = j
            case .name(let name):
                guard let header else {
                    throw DataError(file: file, location: "line \(firstLine)",
                                    problem: "label column '\(sanitizedForMessage(name))' was given by name but the file has no header row",
                                    hint: "give the label column by index instead (e.g. -1 for the last column)")
                }
                guard let j = header.firstIndex(of: name) else {
                    let listed = header.prefix(10).map { "'\(sanitizedForMessage($0))'" }.joined(separator: ", ")
                    throw DataError(file: file, location: "line \(firstLine)",
                                    problem: "no column named '\(sanitizedForMessage(name))' in the header (\(listed)\(header.count > 10 ? ", ... \(header.count) columns in all" : ""))")
                }
                labelIndex = j
            }
        } else if options.labelColumnFromHeader, columns >= 2, let header {
            labelIndex = labelColumnIndex(header: header)
        }
        let features = columns - (labelIndex == nil ? 0 : 1)

        func columnName(_ c: Int) -> String {
            if let header, c < header.count, !header[c].isEmpty { return "column \(c + 1) (\(sanitizedForMessage(header[c])))" }
            return "column \(c + 1)"
        }

        // --- Data rows.
        let estimatedRows = max(1, n / max(1, firstEnd - firstStart + 1))
        var labels: [Int] = []
        if labelIndex != nil { labels.reserveCapacity(estimatedRows) }
        var rows = 0
        var dropped = 0
        var droppedLines: [Int] = []
        var allIntegers = true
        let lab = labelIndex ?? -1
        let delimiterName: String = switch delim {
        case UInt8(ascii: ","): "commas"
        case 9: "tabs"
        case UInt8(ascii: ";"): "semicolons"
        case 0x20: "spaces"
        default: "'\(sanitizedForMessage(String(decoding: [delim], as: UTF8.self)))'"
        }
        let fastCells = delim &- 48 > 9  // a digit as the delimiter (library callers only) splits numbers

        // Every value takes at least two bytes (a digit and a delimiter or line end), so
        // n / 2 + 1 bounds the count; rows are written in place, and pages past the last
        // value are never touched.
        var count = 0
        let values = try [Float](unsafeUninitializedCapacity: n / 2 + 1) { out, initialized in
            defer { initialized = count }
            var pendingFirst: (Int, Int, Int)? = isHeader ? nil : (firstStart, firstEnd, firstLine)
            while let (start, end, line) = pendingFirst ?? nextLine() {
                pendingFirst = nil
                let rowStart = count
                var bad: Bad? = nil
                var label = 0
                var col = 0
                var p = start
                while true {
                    // Fast path: an unquoted, untrimmed cell of at most 15 digits ending at the
                    // delimiter or the line end (every cell of an image CSV) is that integer
                    // exactly; anything else takes the general path from the same byte.
                    if fastCells, p < end, col < columns, col != lab {
                        var q = p
                        var v: UInt64 = 0
                        while q < end && q - p < 16 {
                            let d = buf[q] &- 48
                            if d > 9 { break }
                            v = v &* 10 &+ UInt64(d)
                            q += 1
                        }
                        if q > p && q - p <= 15 && (q == end || buf[q] == delim) {
                            out[count] = Float(Double(v)); count += 1
                            col += 1
                            if q == end { break }
                            p = q + 1
                            continue
                        }
                    }
                    let (r, next, quoting) = field(p, end)
                    if let problem = quoting.problem {
                        throw DataError(file: file, location: "line \(line), \(columnName(col))", problem: problem, hint: Quoting.hint)
                    }
                    if col < columns {
                        let cell = parseCell(buf, r)
                        switch cell {
                        case .number(let v):
                            if col == lab {
                                if !v.isFinite {
                                    if bad == nil { bad = Bad(line: line, column: col, problem: "value '\(shown(r))' is not a finite number") }
                                } else if v >= 0 && v == v.rounded() && v < 9.0e15 {
                                    label = Int(v)
                                } else {
                                    throw DataError(file: file, location: "line \(line), \(columnName(col))",
                                                    problem: DataError.labelValueProblemPrefix + "'\(shown(r))' is not a non-negative integer class index",
                                                    hint: "labels must be 0, 1, 2, ...")
                                }
                            } else {
                                if allIntegers && v != v.rounded() { allIntegers = false }
                                let f = Float(v)
                                if f.isFinite {
                                    out[count] = f; count += 1
                                } else if bad == nil {
                                    bad = Bad(line: line, column: col, problem: "value '\(shown(r))' overflows Float32 (not a finite number)")
                                }
                            }
                        case .missing:
                            if bad == nil {
                                bad = Bad(line: line, column: col,
                                          problem: r.isEmpty ? "empty cell (missing value)" : "missing value '\(shown(r))'")
                            }
                        case .nonFinite:
                            if bad == nil { bad = Bad(line: line, column: col, problem: "value '\(shown(r))' is not a finite number") }
                        case .text:
                            let other = [UInt8(ascii: ";"), 9, UInt8(ascii: ","), UInt8(ascii: "|")].first { d in
                                d != delim && columns == 1 && buf[r].contains(d)
                            }
                            throw DataError(file: file, location: "line \(line), \(columnName(col))",
                                            problem: "'\(shown(r))' is not a number",
                                            hint: other.map { d in
                                                "the file seems to separate fields by \(d == 9 ? "tabs" : "'\(Character(Unicode.Scalar(d)))'"), "
                                                    + "but only commas are read (tabs for .tsv files); re-save it comma-separated"
                                            } ?? (isHeader || line != firstLine ? "every cell after the header must be numeric"
                                                                                : "every cell must be numeric"))
                        }
                    }
                    col += 1
                    if next > end { break }
                    p = next  // p == end after a trailing delimiter: one more, empty field
                }
                if col != columns {
                    throw DataError(file: file, location: "line \(line)",
                                    problem: "\(col) \(col == 1 ? "field" : "fields") where \(columns) \(columns == 1 ? "is" : "are") expected (as on line \(firstLine)\(isHeader ? ", the header" : ""))",
                                    hint: "every row needs the same number of fields, separated by \(delimiterName)")
                }
                if let bad {
                    if options.clean == .error {
                        throw DataError(file: file, location: "line \(bad.line), \(columnName(bad.column))",
                                        problem: bad.problem,
                                        hint: "fill in or remove the value, or load with the 'drop' clean policy to remove rows with missing values")
                    }
                    count = rowStart
                    dropped += 1
                    if droppedLines.count < 100 { droppedLines.append(line) }
                    continue
                }
                if labelIndex != nil { labels.append(label) }
                rows += 1
            }
        }
        return CSVTable(values: Tensor(shape: [rows, features], scalars: values),
                        labels: labelIndex == nil ? nil : labels, header: header, labelColumnIndex: labelIndex,
                        droppedRows: dropped, droppedLines: droppedLines, allIntegers: allIntegers)
    }

    /// How many leading bytes may not hold control characters other than tab, line feed,
    /// vertical tab, form feed and carriage return (a text file has none there).
    static let controlCheckBytes = 1024

    /// Where `buf` first shows it is not UTF-8 text, and what is there: a NUL byte or bytes that
    /// are not well-formed UTF-8 anywhere, or another control character (ESC, DEL, ...) among
    /// the first ``controlCheckBytes`` bytes. `nil` for text.
    static func binaryContent(_ buf: UnsafeBufferPointer<UInt8>) -> (offset: Int, what: String)? {
        let n = buf.count
        func describe(_ i: Int) -> String {
            buf[i] == 0 ? "byte \(i) is 0x00 (NUL), which text never holds"
                        : String(format: "byte %d is 0x%02x, ", i, buf[i])
                          + (buf[i] < 0x80 ? "a control character text does not hold" : "which is not valid UTF-8")
        }
        var i = 0
        let head = min(n, controlCheckBytes)
        while i < head {
            let b = buf[i]
            if b < 0x80 {
                if b < 0x20 && !(b >= 0x09 && b <= 0x0D) || b == 0x7F { return (i, describe(i)) }
                i += 1
            } else {
                let k = utf8SequenceLength(buf, at: i)
                if k == 0 { return (i, describe(i)) }
                i += k
            }
        }
        guard let base = buf.baseAddress else { return nil }
        while i < n {
            // Eight ASCII bytes without NUL at a time.
            if n - i >= 8 {
                let w = UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)
                let high: UInt64 = 0x8080_8080_8080_8080
                let hasZero = (w &- 0x0101_0101_0101_0101) & ~w & high
                if w & high == 0 && hasZero == 0 { i += 8; continue }
            }
            let b = buf[i]
            if b < 0x80 {
                if b == 0 { return (i, describe(i)) }
                i += 1
            } else {
                let k = utf8SequenceLength(buf, at: i)
                if k == 0 { return (i, describe(i)) }
                i += k
            }
        }
        return nil
    }

    /// Malformed quoting in a field (see ``field(_:_:_:_:)``).
    enum Quoting: UInt8 {
        case fine, unclosed, textAfterQuote

        /// The problem as an error message states it; nil when fine.
        var problem: String? {
            switch self {
            case .fine: return nil
            case .unclosed: return "a quoted cell is not closed on its line (line breaks inside quotes are not supported)"
            case .textAfterQuote: return "text follows the closing quote of a quoted cell"
            }
        }

        static let hint = "a quoted cell ends with a quote before the next delimiter; write a quote inside one as \"\""
    }

    /// One field starting at byte `p0` of a line ending at `end`: its content range (spaces
    /// and tabs trimmed, but never the delimiter itself; surrounding quotes stripped), where the
    /// next field starts — after the delimiter (`end` itself when the line ends with a
    /// delimiter, leaving an empty last field), or `end + 1` when this was the last field — and
    /// whether its quoting is malformed (a quote not closed on the line, or text after the
    /// closing quote).
    @inline(__always)
    static func field(_ buf: UnsafeBufferPointer<UInt8>, _ p0: Int, _ end: Int, _ delim: UInt8) -> (Range<Int>, Int, Quoting) {
        @inline(__always) func blank(_ b: UInt8) -> Bool { (b == 0x20 || b == 0x09) && b != delim }
        var p = p0
        while p < end && blank(buf[p]) { p += 1 }
        var q: Int
        var lo: Int, hi: Int
        var quoting = Quoting.fine
        if p < end && buf[p] == UInt8(ascii: "\"") {
            q = p + 1
            var closed = false
            while q < end {
                if buf[q] == UInt8(ascii: "\"") {
                    if q + 1 < end && buf[q + 1] == UInt8(ascii: "\"") { q += 2; continue }
                    closed = true
                    break
                }
                q += 1
            }
            lo = p + 1
            hi = min(q, end)
            if closed {
                q += 1
                while q < end && buf[q] != delim {
                    if !blank(buf[q]) { quoting = .textAfterQuote }
                    q += 1
                }
            } else {
                quoting = .unclosed
            }
        } else {
            q = p
            while q < end && buf[q] != delim { q += 1 }
            lo = p
            hi = q
        }
        while lo < hi && blank(buf[lo]) { lo += 1 }
        while hi > lo && blank(buf[hi - 1]) { hi -= 1 }
        return (lo..<hi, q < end ? q + 1 : end + 1, quoting)
    }

    /// Splits a whole line into field content ranges; used for the first row. The index of
    /// the first field with malformed quoting, and how, come with them.
    static func splitAll(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int, _ delim: UInt8) -> ([Range<Int>], bad: (Int, Quoting)?) {
        var out: [Range<Int>] = []
        var bad: (Int, Quoting)? = nil
        var p = start
        while true {
            let (r, next, quoting) = field(buf, p, end, delim)
            if quoting != .fine && bad == nil { bad = (out.count, quoting) }
            out.append(r)
            if next > end { break }
            p = next
        }
        return (out, bad)
    }

    /// Whether a first row is pandas' default column names, `0, 1, ..., n - 1` with `n >= 3`
    /// (what `DataFrame.to_csv(index=False)` writes for an unnamed frame): a header, though
    /// every cell is a number.
    static func isDefaultColumnNames(_ buf: UnsafeBufferPointer<UInt8>, _ fields: [Range<Int>]) -> Bool {
        guard fields.count >= 3 else { return false }
        for (i, r) in fields.enumerated() {
            guard !r.isEmpty, r.allSatisfy({ buf[$0] &- 48 <= 9 }), r.count == 1 || buf[r.lowerBound] != 48,
                  case .number(let v) = parseCell(buf, r), v == Double(i) else { return false }
        }
        return true
    }

    /// Exact powers of ten representable in Double (10^0 ... 10^22).
    static let powersOfTen: [Double] = (0...22).map { e in
        var v = 1.0
        for _ in 0..<e { v *= 10 }
        return v
    }

    /// Parses one trimmed cell.
    @inline(__always)
    static func parseCell(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Cell {
        var p = r.lowerBound
        let end = r.upperBound
        if p == end { return .missing }
        var negative = false
        if buf[p] == UInt8(ascii: "-") { negative = true; p += 1 } else if buf[p] == UInt8(ascii: "+") { p += 1 }
        var mantissa: UInt64 = 0
        var digits = 0          // significant digits accumulated into mantissa
        var dropped = 0         // integer digits beyond 19 (each multiplies by 10)
        var inexact = false     // a digit did not fit into the 19-digit mantissa
        var sawDigit = false
        while p < end {
            let d = buf[p] &- 48
            if d > 9 { break }
            sawDigit = true
            if digits < 19 {
                if mantissa != 0 || d != 0 { mantissa = mantissa * 10 + UInt64(d); digits += 1 }
            } else {
                dropped += 1
                inexact = true
            }
            p += 1
        }
        var exponent = dropped
        if p < end && buf[p] == UInt8(ascii: ".") {
            p += 1
            while p < end {
                let d = buf[p] &- 48
                if d > 9 { break }
                sawDigit = true
                if digits < 19 {
                    if mantissa != 0 || d != 0 { mantissa = mantissa * 10 + UInt64(d); digits += 1 }
                    exponent -= 1
                } else {
                    inexact = true
                }
                p += 1
            }
        }
        if !sawDigit { return word(buf, r) }
        if p < end && (buf[p] == UInt8(ascii: "e") || buf[p] == UInt8(ascii: "E")) {
            p += 1
            var eneg = false
            if p < end && buf[p] == UInt8(ascii: "-") { eneg = true; p += 1 } else if p < end && buf[p] == UInt8(ascii: "+") { p += 1 }
            var e = 0
            var eDigits = 0
            while p < end {
                let d = buf[p] &- 48
                if d > 9 { break }
                if e < 100_000 { e = e * 10 + Int(d) }
                eDigits += 1
                p += 1
            }
            if eDigits == 0 { return .text }
            exponent += eneg ? -e : e
        }
        if p != end { return .text }
        var value: Double
        if mantissa == 0 && !inexact {
            value = 0
        } else if !inexact && mantissa < (1 << 53) && exponent >= -22 && exponent <= 22 {
            // Clinger's fast path: both operands exact, one correctly rounded operation.
            value = Double(mantissa)
            if exponent < 0 { value /= powersOfTen[-exponent] } else { value *= powersOfTen[exponent] }
        } else {
            // Numeric text only reaches here, so an infinity is an overflow, which the caller
            // reports as one ("overflows Float32") like any value beyond Float's range.
            return .number(slowParse(buf, r))
        }
        return .number(negative ? -value : value)
    }

    /// Correctly rounded fallback through the C library.
    static func slowParse(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Double {
        var tmp = [CChar](repeating: 0, count: r.count + 1)
        for (k, i) in r.enumerated() { tmp[k] = CChar(bitPattern: buf[i]) }
        return strtod(tmp, nil)
    }

    /// Classifies a cell without digits: missing-value markers, infinities/NaN, or text.
    static func word(_ buf: UnsafeBufferPointer<UInt8>, _ r: Range<Int>) -> Cell {
        guard r.count <= 12 else { return .text }
        var s = ""
        for i in r { s.unicodeScalars.append(Unicode.Scalar(buf[i] | (buf[i] >= 65 && buf[i] <= 90 ? 0x20 : 0))) }
        var body = Substring(s)
        if body.first == "-" || body.first == "+" { body = body.dropFirst() }
        switch body {
        case "nan", "inf", "infinity": return .nonFinite
        default: break
        }
        switch s {
        case "na", "n/a", "null", "none", "?", "#n/a", "nil": return .missing
        default: return .text
        }
    }
}
