@testable import ConjureData
import Foundation
import XCTest

/// Reads the yardstick numbers of a text file from ../shared/data/README.md (never copied here),
/// e.g. "32 033 lines" → 32033 for the section of `name`.
private func readmeSection(_ name: String) throws -> String {
    let readme = try String(contentsOfFile: dataPath("README.md"), encoding: .utf8)
    guard let start = readme.range(of: "## text/\(name)") else {
        XCTFail("../shared/data/README.md has no section for text/\(name)")
        return ""
    }
    let rest = readme[start.upperBound...]
    let end = rest.range(of: "\n## ")?.lowerBound ?? rest.endIndex
    return String(rest[..<end])
}

/// The integer written just before `word` in `text` ("1 115 394 characters" → 1115394).
private func number(before word: String, in text: String) -> Int? {
    guard let r = text.range(of: " " + word) else { return nil }
    var digits = ""
    var i = r.lowerBound
    while i > text.startIndex {
        let p = text.index(before: i)
        let c = text[p]
        if c.isNumber { digits.insert(c, at: digits.startIndex) } else if c == " " && text[text.index(before: p)].isNumber && !digits.isEmpty {
            // thin thousands separator written as a space
        } else { break }
        i = p
    }
    return Int(digits)
}

final class TextDataTests: XCTestCase {

    func testNamesCountsMatchTheDataREADME() throws {
        let section = try readmeSection("names.txt")
        let lines = try XCTUnwrap(number(before: "lines", in: section), "README: line count")
        let bytes = try XCTUnwrap(number(before: "bytes", in: section), "README: byte count")
        let letters = try XCTUnwrap(number(before: "letters)", in: section), "README: alphabet size")

        let d = try TextDataset.load(path: dataPath("text/names.txt"))
        XCTAssertEqual(d.mode, .lines, "short lines, no empty line: the default rule picks lines")
        XCTAssertTrue(d.modeIsDefault)
        XCTAssertEqual(d.corpus.byteCount, bytes)
        XCTAssertEqual(d.corpus.lines.count, lines)
        // makemore's held-out size: min(1000, 10%).
        XCTAssertEqual(d.split.heldOut.count, min(1000, lines / 10))
        XCTAssertEqual(d.split.train.count + d.split.heldOut.count, lines)
        // 26 letters + <eos>, <eos> first, then a...z.
        XCTAssertEqual(d.vocabulary.count, letters + 1)
        XCTAssertEqual(d.vocabulary.token(0), "<eos>")
        XCTAssertEqual(d.vocabulary.token(1), "a")
        XCTAssertEqual(d.vocabulary.token(Int32(letters)), "z")
        guard case .lines(let train, let held) = d.encoded else { return XCTFail("lines mode expected") }
        XCTAssertEqual(train.count, d.split.train.count)
        XCTAssertEqual(held.width, train.width)
        // Names of 2 to 15 letters (README): row width = longest + 2.
        let longest = d.corpus.lines.map(\.count).max()!
        XCTAssertEqual(train.width, longest + 2)
        XCTAssertTrue(section.contains("names of 2 to \(longest) letters"))
        // First training row decodes back to its name.
        let row0 = Array(train.tokens[0 ..< train.width])
        XCTAssertEqual(row0[0], 0)
        XCTAssertEqual(d.vocabulary.decode(Array(row0[1 ..< Int(train.lengths[0])])), String(String.UnicodeScalarView(d.split.train[0])))
        XCTAssertEqual(row0[Int(train.lengths[0])], 0, "final <eos>")

        // The same seed gives the same held-out lines; another seed other ones.
        let again = try TextSplit(corpus: d.corpus, mode: .lines, seed: 42)
        XCTAssertEqual(again.heldOutOrigins, d.split.heldOutOrigins)
        let other = try TextSplit(corpus: d.corpus, mode: .lines, seed: 43)
        XCTAssertNotEqual(other.heldOutOrigins, d.split.heldOutOrigins)

        let s = TextSummary(dataset: d)
        XCTAssertEqual(s.lines, lines)
        XCTAssertEqual(s.emptyLines, 0)
        XCTAssertEqual(s.distinctCharacters, letters + 1, "26 letters and the line end")
        XCTAssertEqual(s.characters, bytes, "ASCII: one character per byte")
        let unterminated = d.corpus.scalars.last != "\n" ? 1 : 0
        XCTAssertEqual(s.mostFrequent.first { $0.character == "\n" }.map { $0.count + unterminated }, lines,
                       "every name but an unterminated last one ends with a line end")
        XCTAssertEqual(s.mostFrequent.map(\.count), s.mostFrequent.map(\.count).sorted(by: >))
        XCTAssertEqual(s.leastFrequent.map(\.count), s.leastFrequent.map(\.count).sorted())
        XCTAssertTrue(s.description.contains("mode:       lines (default"))
        XCTAssertTrue(s.description.contains("vocabulary: \(letters + 1) tokens"))
        // `data inspect` (which loads with an <unk> token to count unknown held-out characters)
        // states the vocabulary a default run trains with, as a prompt error does.
        XCTAssertEqual(try inspectText(path: dataPath("text/names.txt")).vocabularySize, d.vocabulary.count)
    }

    func testTinyShakespeareMatchesNanoGPTSplitAndREADME() throws {
        let section = try readmeSection("tinyshakespeare.txt")
        let chars = try XCTUnwrap(number(before: "characters,", in: section), "README: character count")
        let distinct = try XCTUnwrap(number(before: "distinct", in: section), "README: distinct characters")

        let d = try TextDataset.load(path: dataPath("text/tinyshakespeare.txt"))
        XCTAssertEqual(d.mode, .stream, "blank lines between speeches: the default rule picks stream")
        XCTAssertEqual(d.corpus.scalars.count, chars)
        let cut = Int(Double(chars) * 0.9)
        XCTAssertEqual(d.split.train[0].count, cut)
        XCTAssertEqual(d.split.heldOut[0].count, chars - cut)
        XCTAssertEqual(Array(d.split.heldOut[0]), Array(d.corpus.scalars[cut...]), "held-out part is the last 10%")
        // nanoGPT's vocabulary: all 65 characters in sorted order, '\n' = 0, ' ' = 1.
        XCTAssertEqual(d.vocabulary.count, distinct)
        XCTAssertEqual(d.vocabulary.index(of: "\n"), 0)
        XCTAssertEqual(d.vocabulary.index(of: " "), 1)
        XCTAssertEqual(d.vocabulary.index(of: "a"), Int32(distinct - 26))
        guard case .stream(let train, let held) = d.encoded else { return XCTFail("stream mode expected") }
        XCTAssertEqual(train.tokens.count + held.tokens.count, chars)

        // Seeded random blocks of context + 1: targets are inputs shifted by one; same seed, same blocks.
        var rng1 = RandomGenerator(seed: 7), rng2 = RandomGenerator(seed: 7)
        let (x, y) = train.randomBlocks(count: 4, context: 16, using: &rng1)
        let (x2, _) = train.randomBlocks(count: 4, context: 16, using: &rng2)
        XCTAssertEqual(x.shape, [4, 16])
        XCTAssertEqual(x.scalars, x2.scalars)
        for b in 0 ..< 4 { XCTAssertEqual(Array(x.scalars[b * 16 + 1 ..< b * 16 + 16]), Array(y.scalars[b * 16 ..< b * 16 + 15])) }
        let (ex, ey) = held.evaluationBlocks(context: 256)
        XCTAssertEqual(ex.shape[0], (held.tokens.count - 1) / 256)
        XCTAssertEqual(ey.scalars[0], Float(held.tokens[1]))

        let s = TextSummary(dataset: d)
        XCTAssertEqual(s.distinctCharacters, distinct)
        XCTAssertEqual(s.mostFrequent.first?.character, " ")
        XCTAssertEqual(s.leastFrequent.count, 10)
        XCTAssertTrue(s.description.contains("mode:       stream (default"))
    }

    func testInvalidUTF8IsOneErrorWithOffsetAndLine() throws {
        let dir = makeTempDir()
        let path = dir + "/bad.txt"
        // "ab\ncd\nx" then a Latin-1 'é' (0xE9) followed by ASCII: a lead byte without continuation.
        writeBytes(Array("ab\ncd\nx".utf8) + [0xE9, 0x41, 0x0A], path)
        let e = expectDataError(try TextCorpus.load(path: path), contains: [path, "invalid UTF-8"])
        XCTAssertEqual(e?.location, "byte 7 (line 3)")
        // Stray continuation byte, overlong form, surrogate, truncated sequence.
        for (bytes, offset, what) in [([0x61, 0x80], 1, "continuation"), ([0xC0, 0xAF], 0, "never occurs"),
                                      ([0x0A, 0xE0, 0x80, 0xAF], 1, "overlong"), ([0xED, 0xA0, 0x80], 0, "surrogate"),
                                      ([0x61, 0x62, 0xF0, 0x9F], 2, "truncated")] as [([UInt8], Int, String)] {
            let err = expectDataError(try TextCorpus.decodeUTF8(bytes, file: "t.txt"), contains: ["t.txt", what])
            XCTAssertEqual(err?.location?.hasPrefix("byte \(offset) "), true, "\(bytes): \(err?.location ?? "nil")")
        }
        // Valid multi-byte text and a BOM decode.
        let ok = try TextCorpus.decodeUTF8([0xEF, 0xBB, 0xBF] + Array("é€😀".utf8), file: "ok.txt")
        XCTAssertEqual(ok, ["é", "€", "😀"])
    }

    func testVocabularySerialisesAndUnknownPolicy() throws {
        let corpus = TextCorpus(source: "mem", scalars: Array("hello\nworld\nzebra\nabc\nhi\nyo\nok\nno\nme\nwe\nus\n".unicodeScalars))
        let split = try TextSplit(corpus: corpus, mode: .lines, seed: 1)
        for policy in UnknownCharacterPolicy.allCases {
            let v = Vocabulary(training: split, unknownPolicy: policy)
            let back = try Vocabulary(serialized: v.serialized)
            XCTAssertEqual(back, v)
            XCTAssertEqual((0 ..< Int32(v.count)).map(back.token), (0 ..< Int32(v.count)).map(v.token))
            let data = try JSONEncoder().encode(v)
            XCTAssertEqual(try JSONDecoder().decode(Vocabulary.self, from: data), v)
        }
        let v = Vocabulary(characters: "ba\n\t".unicodeScalars, endOfSample: true, unknownPolicy: .error)
        XCTAssertEqual(v.serialized, #"{"characters":["\t","\n","a","b"],"endOfSample":true,"format":"conjure-char-vocab-1","unknown":"error"}"#)
        XCTAssertEqual(try v.encode(Array("ab".unicodeScalars), source: "p"), [3, 4])
        expectDataError(try v.encode(Array("abé".unicodeScalars), source: "--prompt"),
                        contains: ["--prompt", "character 3", "'é' (U+00E9)", "not in the vocabulary"])
        let u = Vocabulary(characters: "ab".unicodeScalars, endOfSample: true, unknownPolicy: .unknownToken)
        XCTAssertEqual(u.token(1), "<unk>")
        XCTAssertEqual(try u.encode(Array("aéb".unicodeScalars), source: "p"), [2, 1, 3])
        expectDataError(try Vocabulary(serialized: #"{"characters":["b","a"],"endOfSample":true,"format":"conjure-char-vocab-1","unknown":"error"}"#,
                                       source: "ck.safetensors"), contains: ["ck.safetensors", "increasing"])

        // A held-out stream character missing from the training part: error with line and column.
        let text = String(repeating: "abcd\n", count: 20) + "abQd\n"
        let c2 = TextCorpus(source: "s.txt", scalars: Array(text.unicodeScalars))
        expectDataError(try TextDataset(corpus: c2, mode: .stream), contains: ["s.txt", "line 21, column 3", "'Q' (U+0051)"])
        let mapped = try TextDataset(corpus: c2, mode: .stream, unknownPolicy: .unknownToken)
        XCTAssertEqual(mapped.vocabulary.unknown, 0)
    }

    func testLinesBatchesAndContextWindows() throws {
        let v = Vocabulary(characters: "abc".unicodeScalars, endOfSample: true)
        let e = try EncodedLines(lines: [Array("ab".unicodeScalars), Array("c".unicodeScalars)], vocabulary: v, source: "m")
        XCTAssertEqual(e.width, 4)
        XCTAssertEqual(e.tokens, [0, 1, 2, 0, 0, 3, 0, 0])
        XCTAssertEqual(e.lengths, [3, 2])
        let (x, y) = e.batch([1, 0])
        XCTAssertEqual(x.scalars, [0, 3, 0, 0, 1, 2])
        XCTAssertEqual(y.scalars, [3, 0, -1, 1, 2, 0])
        let (ctx, tgt) = e.contextWindows(k: 2)
        XCTAssertEqual(ctx.shape, [5, 2])
        XCTAssertEqual(ctx.scalars, [0, 0, 0, 1, 1, 2, 0, 0, 0, 3])
        XCTAssertEqual(tgt.scalars, [1, 2, 0, 3, 0])
    }

    func testTextSampleWriter() throws {
        let dir = makeTempDir()
        let p = dir + "/s.txt"
        try TextSampleWriter.write(["emma", "olivia"], to: p)
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "emma\nolivia\n")
        expectDataError(try TextSampleWriter.write(["a\nb"], to: p), contains: [p, "sample 0"])
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "emma\nolivia\n", "old file untouched")
        try TextSampleWriter.write(["A:\nhi", "B:\nyo"], to: p, layout: .blocks(separator: "\n--\n"))
        XCTAssertEqual(try String(contentsOfFile: p, encoding: .utf8), "A:\nhi\n--\nB:\nyo\n")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["s.txt"], "no temporary file left")
    }
}
