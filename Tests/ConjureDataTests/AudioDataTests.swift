@testable import ConjureData
import Foundation
import XCTest

/// The FSDD folder of ../shared/data (a missing folder fails the tests that read it).
private var fsddDir: String { dataPath("fsdd/recordings") }

/// The FSDD facts of ../shared/data/README.md's fsdd section, read from the README, not copied.
private struct FSDDFacts {
    var files: Int
    var rate: Int
    var minFrames: Int
    var maxFrames: Int
    var medianFrames: Int
    var longerThan8000: Int
    var testFiles: Int

    init() throws {
        let readme = try String(contentsOfFile: dataPath("README.md"), encoding: .utf8)
        guard let start = readme.range(of: "## fsdd/") else { throw DataError(file: "README.md", problem: "no fsdd section") }
        let s = String(readme[start.upperBound...])
        func int(_ pattern: String, _ group: Int = 1) throws -> Int {
            let re = try NSRegularExpression(pattern: pattern)
            guard let m = re.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)), let r = Range(m.range(at: group), in: s),
                  let v = Int(s[r].replacingOccurrences(of: " ", with: "")) else {
                throw DataError(file: "README.md", problem: "fsdd section lacks /\(pattern)/")
            }
            return v
        }
        files = try int(#"Sizes\*\*:\s+(\d[\d ]*) files"#)
        rate = try int(#"mono,\s+(\d[\d ]*) Hz"#)
        minFrames = try int(#"Lengths\s+(\d[\d ]*) to"#)
        maxFrames = try int(#"Lengths\s+[\d ]+ to\s+(\d[\d ]*) samples"#)
        medianFrames = try int(#"median\s+(\d[\d ]*)"#)
        longerThan8000 = try int(#"(\d+)\s+files\s+are\s+longer\s+than\s+8000"#)
        testFiles = try int(#"test\s+set\s+\((\d+)\s+files\)"#)
    }
}

final class AudioDataTests: XCTestCase {

    func testReadsFSDDFilesAsFullScaleMono() throws {
        let facts = try FSDDFacts()
        let clip = try AudioFile.read(path: fsddDir + "/7_jackson_32.wav")
        XCTAssertEqual(clip.sampleRate, facts.rate)
        XCTAssertEqual(clip.channels, 1)
        XCTAssertEqual(clip.format, "WAV PCM 16-bit")
        // 16-bit PCM: header + 2 bytes a frame, values k / 32768.
        let size = try FileManager.default.attributesOfItem(atPath: fsddDir + "/7_jackson_32.wav")[.size] as! Int
        XCTAssertEqual(clip.frames, (size - 44) / 2, "a plain 44-byte WAV header")
        XCTAssertTrue(clip.samples.allSatisfy { $0 >= -1 && $0 < 1 && ($0 * 32768).rounded() == $0 * 32768 })
        XCTAssertGreaterThan(clip.samples.map(abs).max()!, 0.01, "not silence")
        let info = try AudioFile.info(path: fsddDir + "/7_jackson_32.wav")
        XCTAssertEqual(info.frames, clip.frames)

        // Resampling to twice the rate doubles the length and keeps the level.
        let up = try AudioFile.read(path: fsddDir + "/7_jackson_32.wav", sampleRate: 2 * facts.rate)
        XCTAssertEqual(up.frames, 2 * clip.frames)
        XCTAssertEqual(up.sampleRate, 2 * facts.rate)
        let rms = { (x: [Float]) in (x.reduce(0) { $0 + Double($1) * Double($1) } / Double(x.count)).squareRoot() }
        XCTAssertEqual(rms(up.samples), rms(clip.samples), accuracy: 0.05 * rms(clip.samples))
    }

    func testFolderDatasetWithLabelPatternCropPadAndSplit() throws {
        let facts = try FSDDFacts()
        // A small folder of real FSDD files (links), nested, with a hidden file to skip.
        let dir = makeTempDir()
        let names = ["0_george_0.wav", "3_theo_7.wav", "7_jackson_32.wav", "9_lucas_4.wav"]
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        for (i, n) in names.enumerated() {
            try FileManager.default.createSymbolicLink(atPath: dir + (i % 2 == 0 ? "/" : "/sub/") + n, withDestinationPath: fsddDir + "/" + n)
        }
        writeBytes([1, 2, 3], dir + "/.hidden.wav")
        let length = 3000
        let ds = try AudioFolder.load(path: dir, options: AudioFolderOptions(labels: .pattern(#"^(\d)_"#), length: length))
        XCTAssertEqual(ds.files, ["0_george_0.wav", "7_jackson_32.wav", "sub/3_theo_7.wav", "sub/9_lucas_4.wav"])
        XCTAssertEqual(ds.samples.shape, [4, 1, length])
        XCTAssertEqual(ds.labels, [0, 7, 3, 9])
        XCTAssertEqual(ds.sampleRate, facts.rate)
        let originals = try ds.files.map { try AudioFile.read(path: dir + "/" + $0) }
        XCTAssertEqual(ds.originalLengths, originals.map(\.frames))
        XCTAssertEqual(ds.croppedCount, originals.filter { $0.frames > length }.count)
        XCTAssertEqual(ds.paddedCount, originals.filter { $0.frames < length }.count)
        for (i, o) in originals.enumerated() {
            let row = Array(ds.samples.scalars[i * length ..< (i + 1) * length])
            if o.frames > length {
                let start = (o.frames - length) / 2
                XCTAssertEqual(row, Array(o.samples[start ..< start + length]), "centred crop of \(ds.files[i])")
            } else {
                XCTAssertEqual(Array(row[..<o.frames]), o.samples)
                XCTAssertTrue(row[o.frames...].allSatisfy { $0 == 0 }, "zero padding at the end")
            }
        }
        let (train, test) = try ds.fsddSplit()
        XCTAssertEqual(test, [0, 3])  // indices 0 and 4 are below 5
        XCTAssertEqual(train, [1, 2])

        let peak = try AudioFolder.load(path: dir, options: AudioFolderOptions(length: length, normalization: .peak))
        for i in 0 ..< 4 {
            XCTAssertEqual(peak.samples.scalars[i * length ..< (i + 1) * length].map(abs).max()!, 1, accuracy: 1e-6)
        }
        // Subfolder labels: a file at the top level has none.
        expectDataError(try AudioFolder.load(path: dir, options: AudioFolderOptions(labels: .subfolders)),
                        contains: ["0_george_0.wav", "not in a subfolder"])
        expectDataError(try AudioFolder.load(path: dir, options: AudioFolderOptions(labels: .pattern(#"^x(\d)"#))),
                        contains: ["0_george_0.wav", "does not match"])
    }

    func testWholeFSDDInspectMatchesREADME() throws {
        let facts = try FSDDFacts()
        let s = try AudioFolderSummary(path: fsddDir, labels: .pattern(#"^(\d)_"#), length: 8000)
        XCTAssertEqual(s.count, facts.files)
        XCTAssertEqual(s.sampleRates, [facts.rate: facts.files])
        XCTAssertEqual(s.channelCounts, [1: facts.files])
        XCTAssertEqual(s.formats, ["WAV PCM 16-bit": facts.files])
        XCTAssertEqual(s.minFrames, facts.minFrames)
        XCTAssertEqual(s.maxFrames, facts.maxFrames)
        XCTAssertEqual(s.medianFrames, facts.medianFrames)
        XCTAssertEqual(s.longerThanLength, facts.longerThan8000)
        XCTAssertEqual(s.labelCounts?.count, 10)
        XCTAssertEqual(Set(s.labelCounts!.values), [facts.files / 10])
        XCTAssertTrue(s.description.contains("rates:    \(facts.rate) Hz: \(facts.files)"))
        let split = try AudioFolder.fsddSplit(files: AudioFolder.listFiles(path: fsddDir), folder: fsddDir)
        XCTAssertEqual(split.test.count, facts.testFiles)
        XCTAssertEqual(split.train.count, facts.files - facts.testFiles)
    }

    func testWAVRoundTripWithin16BitQuantisation() throws {
        let dir = makeTempDir()
        var rng = RandomGenerator(seed: 3)
        let frames = 1000
        let samples = (0 ..< 2 * frames).map { _ in rng.nextUniform() * 1.8 - 0.9 }
        let p16 = dir + "/s16.wav"
        let clipped = try AudioFile.writeWAV(samples: samples, channels: 2, sampleRate: 22050, to: p16)
        XCTAssertEqual(clipped, 0)
        let back = try AudioFile.read(path: p16)
        XCTAssertEqual(back.channels, 2)
        XCTAssertEqual(back.frames, frames)
        XCTAssertEqual(back.sampleRate, 22050)
        XCTAssertEqual(back.format, "WAV PCM 16-bit")
        let worst = zip(back.samples, samples).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 0.5 / 32768 + 1e-7, "16-bit quantisation is half a step")
        // Reading and writing again is exact.
        try AudioFile.writeWAV(back, to: p16)
        XCTAssertEqual(try AudioFile.read(path: p16).samples, back.samples)

        let pf = dir + "/f.wav"
        try AudioFile.writeWAV(samples: samples + [1.5, -1.5], channels: 2, sampleRate: 8000, to: pf, encoding: .float32)
        let fb = try AudioFile.read(path: pf)
        XCTAssertEqual(fb.format, "WAV float32")
        XCTAssertEqual(fb.samples, samples + [1.5, -1.5], "float32 keeps every value, planar in and out")
        XCTAssertEqual(fb.frames, frames + 1)
        XCTAssertEqual(fb.channel(1).last, -1.5)
        XCTAssertEqual(fb.channel(0).first, samples[0])

        // Clipping is counted; NaN refused and nothing written.
        XCTAssertEqual(try AudioFile.writeWAV(samples: [1.0, -1.2, 0.5], channels: 1, sampleRate: 8000, to: dir + "/c.wav"), 2)
        expectDataError(try AudioFile.writeWAV(samples: [0, .nan], channels: 1, sampleRate: 8000, to: dir + "/n.wav"),
                        contains: ["n.wav", "frame 1", "nan"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/n.wav"))
        XCTAssertFalse(try FileManager.default.contentsOfDirectory(atPath: dir).contains { $0.hasPrefix(".") }, "no temporary file left")
    }

    func testReadsEveryWAVEncodingAndFLACMonoAndStereo() throws {
        let dir = makeTempDir()
        var rng = RandomGenerator(seed: 11)
        // (container, subtype, expected format name, quantisation step of the encoding)
        let kinds: [(String, String, String, Float)] = [
            ("wav", "u8", "WAV PCM 8-bit unsigned", 1 / 128), ("wav", "16", "WAV PCM 16-bit", 1 / 32768),
            ("wav", "24", "WAV PCM 24-bit", 1 / 8_388_608), ("wav", "32", "WAV PCM 32-bit", 1 / 2_147_483_648),
            ("wav", "float", "WAV float32", 0), ("wav", "double", "WAV float64", 0),
            ("flac", "s8", "FLAC PCM 8-bit", 1 / 128), ("flac", "16", "FLAC PCM 16-bit", 1 / 32768),
            ("flac", "24", "FLAC PCM 24-bit", 1 / 8_388_608),
        ]
        for channels in [1, 2] {
            let frames = 500
            let x = (0 ..< channels * frames).map { _ in rng.nextUniform() * 1.6 - 0.8 }
            for (container, subtype, name, step) in kinds {
                let path = dir + "/\(subtype)-\(channels).\(container)"
                writeBytes(try AudioFile.encodeForTesting(samples: x, channels: channels, sampleRate: 16000,
                                                          container: container, subtype: subtype), path)
                let clip = try AudioFile.read(path: path)
                XCTAssertEqual(clip.format, name)
                XCTAssertEqual(clip.channels, channels)
                XCTAssertEqual(clip.frames, frames)
                XCTAssertEqual(clip.sampleRate, 16000)
                // libsndfile's float write is round(x * (2^(b-1) - 1)) and its read s / 2^(b-1):
                // half a step of rounding plus |x| (<= 0.8) steps of scale mismatch.
                let worst = zip(clip.samples, x).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(worst, step * (0.5 + 0.8) + 1e-6, "\(name), \(channels) channels")
            }
        }
    }

    func testCorruptTruncatedAndUnsupportedFilesAreOneError() throws {
        let dir = makeTempDir()
        let good = dir + "/good.wav"
        var rng = RandomGenerator(seed: 5)
        try AudioFile.writeWAV(samples: (0 ..< 4000).map { _ in rng.nextUniform() - 0.5 }, channels: 1, sampleRate: 8000, to: good)
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: good)))

        let truncated = dir + "/truncated.wav"
        writeBytes(Array(bytes.prefix(3000)), truncated)
        expectDataError(try AudioFile.read(path: truncated), contains: [truncated, "truncated"])

        let headerOnly = dir + "/header.wav"
        writeBytes(Array(bytes.prefix(30)), headerOnly)
        expectDataError(try AudioFile.read(path: headerOnly), contains: [headerOnly, "not a readable sound file"])

        let garbage = dir + "/garbage.wav"
        writeBytes((0 ..< 2000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, garbage)
        expectDataError(try AudioFile.read(path: garbage), contains: [garbage, "not a readable sound file"])

        var badFormat = bytes
        badFormat[20] = 0x02  // WAVE_FORMAT_ADPCM in the fmt chunk with PCM sizes: libsndfile refuses it
        let adpcm = dir + "/adpcm.wav"
        writeBytes(badFormat, adpcm)
        expectDataError(try AudioFile.read(path: adpcm), contains: [adpcm])

        expectDataError(try AudioFile.read(path: dir + "/missing.wav"), contains: ["missing.wav", "no such file"])

        // A header's sample rate outside 1-768 kHz (bytes 24-27, and the byte rate at 28-31 to
        // match): refused by read and info alike, before any buffer is sized by it.
        for rate in [UInt32(Int32.max), 999, 768_001] {
            var header = bytes
            for (offset, value) in [(24, rate), (28, rate &* 2)] {
                for b in 0..<4 { header[offset + b] = UInt8(truncatingIfNeeded: value >> (8 * UInt32(b))) }
            }
            let path = dir + "/rate\(rate).wav"
            writeBytes(header, path)
            expectDataError(try AudioFile.read(path: path), contains: [path, "sample rate of \(rate) Hz", "1000-768000"])
            expectDataError(try AudioFile.info(path: path), contains: [path, "sample rate of \(rate) Hz"])
        }
        XCTAssertEqual(try AudioFile.info(path: good).sampleRate, 8000)

        // In a folder: the error names the bad file.
        let folder = dir + "/folder"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: good, toPath: folder + "/a.wav")
        try FileManager.default.copyItem(atPath: truncated, toPath: folder + "/b.wav")
        expectDataError(try AudioFolder.load(path: folder), contains: [folder + "/b.wav", "truncated"])
    }

    func testSpectrogramOfASinePeaksAtItsBin() throws {
        let rate = 8000, size = 256, hop = 64
        for bin in [5, 32, 100] {
            let f = Double(bin) * Double(rate) / Double(size)
            let x = (0 ..< 4096).map { Float(0.5 * sin(2 * Double.pi * f * Double($0) / Double(rate))) }
            let s = Spectrogram(signal: x, size: size, hop: hop)
            XCTAssertEqual(s.bins, size / 2 + 1)
            XCTAssertEqual(s.frames, 1 + (4096 - size) / hop)
            XCTAssertEqual(s.peakBin, bin)
            // Hann-windowed sine of amplitude A at an exact bin: |X| = A * size / 4.
            XCTAssertEqual(s.values[bin * s.frames], Float(20 * log10(0.5 * Double(size) / 4)), accuracy: 0.01)
        }
        let w = Spectrogram.hann(8)
        XCTAssertEqual(w[0], 0)
        XCTAssertEqual(w[4], 1, accuracy: 1e-7)

        let dir = makeTempDir()
        let clips = Tensor(shape: [3, 1, 2048], scalars: (0 ..< 3 * 2048).map { Float(sin(Double($0) * 0.3)) * 0.5 })
        let pictures = Spectrogram.images(clips: clips)
        XCTAssertEqual(pictures.shape, [3, 1, 129, 1 + (2048 - 256) / 64])
        try Spectrogram.writeGridPNG(clips: clips, path: dir + "/spec.png")
        let png = try PNGReader.decode(path: dir + "/spec.png")
        XCTAssertEqual([png.height, png.width], [2 * 129 + 3 * 2, 2 * 29 + 3 * 2], "2 x 2 grid, padding 2")
        XCTAssertTrue(png.isGrayscale)
    }
}
