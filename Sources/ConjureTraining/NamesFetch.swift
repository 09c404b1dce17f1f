import Foundation
import ConjureData

/// Obtaining a real list of given names for the text models (`conjure data fetch names`).
///
/// The list is built from the US Census Bureau's 1990 frequency lists of first names
/// (`dist.female.first`, 4275 names, and `dist.male.first`, 1219 names; public domain as a work
/// of the US government), as shipped in the source distribution of the PyPI package
/// **names 0.3.0** (MIT licence, Trey Hunner) under `names-0.3.0/names/`. ``fetchNames(into:log:)``
/// asks pip for that archive, checks the archive's pinned sha256, reads the two members in
/// memory, and writes `names.txt`: every distinct name lower-cased, one a line, sorted (5163
/// names of 2 to 11 letters `a`-`z`), whose own sha256 is pinned too. makemore's names.txt (the
/// file in ../shared/data/text) is a larger list of the same kind (Social Security records).
extension DataFetch {
    /// The pip requirement whose source archive holds the census lists.
    public static let namesPackage = "names==0.3.0"
    /// sha256 (lowercase hex) of `names-0.3.0.tar.gz` as published on PyPI.
    public static let namesArchiveSHA256 = "726e46254f2ed03f1ffb5d941dae3bc67c35123941c29becd02d48d0caa2a671"
    /// The members of the archive the list is built from.
    public static let namesMembers = ["names-0.3.0/names/dist.female.first", "names-0.3.0/names/dist.male.first"]
    /// sha256 of the `names.txt` built from them (see ``namesList(fromArchive:source:)``).
    public static let namesSHA256 = "cba14f452b7768bd7fe093035a67491d4a334061634ccfd51522fb796910e75e"
    /// The file name under the data directory.
    public static let namesFileName = "names.txt"

    /// Makes sure `dataDir/names.txt` exists and is the verified census names list; returns its path.
    ///
    /// Nothing is downloaded when the file is already there with ``namesSHA256``. Otherwise runs
    /// `python3 -m pip download --no-deps --no-binary=:all: names==0.3.0 -d TMP` (the package has
    /// no wheel), checks the archive's sha256, builds the list and writes it atomically. The
    /// temporary download folder is removed in every case.
    ///
    /// - Parameters:
    ///   - dataDir: the data directory (for example `data`), created if needed.
    ///   - log: receives one line per step.
    /// - Returns: the path `dataDir/names.txt`.
    /// - Throws: ``DataError`` when pip is missing or fails, when the archive's sha256 differs
    ///   (naming both hashes; nothing is written), when a member is missing or malformed, or when
    ///   the file cannot be written.
    public static func fetchNames(into dataDir: String, log: (String) -> Void) throws -> String {
        try fetchNames(into: dataDir, log: log, download: { directory in
            _ = try pipDownload(requirement: namesPackage, into: directory, log: log, binaryOnly: false)
        })
    }

    /// ``fetchNames(into:log:)`` with the download step replaceable (tests pass a closure that
    /// writes an archive, or one that fails if called). `download(dir)` must leave a `.tar.gz` in `dir`.
    static func fetchNames(into dataDir: String, log: (String) -> Void, download: (String) throws -> Void) throws -> String {
        let destination = joinPath(dataDir, namesFileName)
        if let existing = try? Data(contentsOf: URL(fileURLWithPath: destination)) {
            if sha256Hex(of: existing) == namesSHA256 {
                log("\(destination): already present, sha256 verified")
                return destination
            }
            log("\(destination): sha256 differs from \(namesSHA256); fetching it again")
        }
        let tempDir = joinPath(FileManager.default.temporaryDirectory.path, "conjure-fetch-\(UUID().uuidString)")
        try AtomicFile.createDirectory(tempDir)
        defer { try? FileManager.default.removeItem(atPath: tempDir) }
        log("downloading \(namesPackage) with pip (source archive, about 0.8 MB)")
        try download(tempDir)
        let files = (try? FileManager.default.contentsOfDirectory(atPath: tempDir)) ?? []
        guard let archive = files.sorted().first(where: { $0.hasSuffix(".tar.gz") }) else {
            throw DataError(file: tempDir, problem: "pip left no .tar.gz archive (found: \(files.joined(separator: ", ")))", hint: manualHint)
        }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: joinPath(tempDir, archive)))
        let hash = sha256Hex(of: bytes)
        guard hash == namesArchiveSHA256 else {
            throw DataError(file: archive, problem: "sha256 is \(hash), expected \(namesArchiveSHA256); nothing was written",
                            hint: "the package index served other bytes for \(namesPackage)")
        }
        log("\(archive): sha256 verified")
        let list = try namesList(fromArchive: [UInt8](bytes), source: archive)
        try AtomicFile.createDirectory(dataDir)
        try installVerified(Data(list.utf8), expectedSHA256: namesSHA256, to: destination, source: archive)
        log("wrote \(destination) (\(list.split(separator: "\n").count) names)")
        return destination
    }

    /// The names list built from a gzipped tar archive holding ``namesMembers``: the first
    /// whitespace-separated field of every non-empty line of each member, lower-cased, distinct,
    /// sorted, one a line with a final newline.
    ///
    /// - Throws: ``DataError`` naming `source` when the archive is not gzip/tar, a member is
    ///   missing, or a line holds a name with characters other than ASCII letters.
    static func namesList(fromArchive gzipped: [UInt8], source: String) throws -> String {
        let tar = try Gzip.decompress(gzipped, file: source)
        var names = Set<String>()
        for member in namesMembers {
            let body = try tarMember(member, in: tar, source: source)
            for (i, line) in String(decoding: body, as: UTF8.self).split(separator: "\n").enumerated() {
                guard let field = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" }).first else { continue }
                guard field.allSatisfy({ $0.isASCII && $0.isLetter }) else {
                    throw DataError(file: source, location: "\(member) line \(i + 1)", problem: "'\(field)' is not a name of ASCII letters")
                }
                names.insert(field.lowercased())
            }
        }
        return names.sorted().joined(separator: "\n") + "\n"
    }

    /// The bytes of the regular-file member `name` of a tar archive (POSIX ustar or GNU headers:
    /// 512-byte header blocks, octal size at offset 124, type flag at 156, ustar prefix at 345).
    ///
    /// - Throws: ``DataError`` naming `source` when a header is malformed or the member is absent.
    static func tarMember(_ name: String, in tar: [UInt8], source: String) throws -> ArraySlice<UInt8> {
        func text(_ range: Range<Int>, at base: Int) -> String {
            let field = tar[(base + range.lowerBound)..<(base + range.upperBound)]
            return String(decoding: field.prefix { $0 != 0 }, as: UTF8.self)
        }
        var offset = 0
        var ended = false
        while offset + 512 <= tar.count {
            if tar[offset..<(offset + 512)].allSatisfy({ $0 == 0 }) { ended = true; break }  // end-of-archive blocks
            let sizeField = text(124..<136, at: offset).trimmingCharacters(in: .whitespaces)
            guard let size = Int(sizeField.isEmpty ? "0" : sizeField, radix: 8), size >= 0 else {
                throw DataError(file: source, location: "tar header at byte \(offset)", problem: "size field '\(sizeField)' is not octal")
            }
            let magic = text(257..<263, at: offset)
            let prefix = magic.hasPrefix("ustar") ? text(345..<500, at: offset) : ""
            let member = prefix.isEmpty ? text(0..<100, at: offset) : prefix + "/" + text(0..<100, at: offset)
            let type = tar[offset + 156]
            let start = offset + 512
            guard start + size <= tar.count else {
                throw DataError(file: source, location: "tar member \(member)", problem: "truncated: \(size) bytes declared, \(tar.count - start) left")
            }
            if member == name && (type == UInt8(ascii: "0") || type == 0) { return tar[start..<(start + size)] }
            offset = start + (size + 511) / 512 * 512
        }
        if !ended && offset != tar.count {
            throw DataError(file: source, location: "byte \(offset)", problem: "truncated: the archive ends inside a header, before \(name) was found")
        }
        throw DataError(file: source, problem: "the archive has no member \(name)")
    }
}
