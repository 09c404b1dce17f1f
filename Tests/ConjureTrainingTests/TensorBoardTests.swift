import Foundation
import XCTest
@testable import ConjureTraining
import ConjureData
import ConjureNN
import ConjureTestSupport
#if canImport(Glibc)
import Glibc
#endif

/// The TensorBoard event files' pieces against known bytes: CRC-32C check values, protobuf
/// wire encoding, `Event` messages and a TFRecord byte for byte as TensorBoard's own protobuf
/// classes and `RecordWriter` serialise them (the hex strings were printed by
/// tensorboard 2.21.0's `event_pb2`/`summary_pb2` and `record_writer.RecordWriter`).
final class TensorBoardEncodingTests: XCTestCase {
    func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

    func testCRC32CCheckValueAndKnownVectors() {
        XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283, "the standard check value")
        // RFC 3720 (iSCSI) appendix B.4 vectors.
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0, count: 32)), 0x8A91_36AA)
        XCTAssertEqual(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)), 0x62A8_AB43)
        XCTAssertEqual(CRC32C.checksum((0 ..< 32).map { UInt8($0) }), 0x46DD_794E)
        XCTAssertEqual(CRC32C.checksum((0 ..< 32).reversed().map { UInt8($0) }), 0x113F_DB5C)
        XCTAssertEqual(CRC32C.checksum([UInt8]()), 0)
        // TensorFlow's mask: rotate right by 15, add 0xa282ead8 (values from tensorboard's masked_crc32c).
        XCTAssertEqual(CRC32C.masked(CRC32C.checksum(Array("123456789".utf8))), 0xC78A_B0E5)
        XCTAssertEqual(CRC32C.masked(0), 0xA282_EAD8)
    }

    func testProtobufWireEncoding() {
        func enc(_ f: (inout ProtobufWriter) -> Void) -> String { var w = ProtobufWriter(); f(&w); return hex(w.bytes) }
        XCTAssertEqual(enc { $0.varint(0) }, "00")
        XCTAssertEqual(enc { $0.varint(1) }, "01")
        XCTAssertEqual(enc { $0.varint(127) }, "7f")
        XCTAssertEqual(enc { $0.varint(128) }, "8001")
        XCTAssertEqual(enc { $0.varint(300) }, "ac02")
        XCTAssertEqual(enc { $0.varint(UInt64.max) }, "ffffffffffffffffff01")
        XCTAssertEqual(enc { $0.int64(2, 300) }, "10ac02", "field 2, wire type 0")
        XCTAssertEqual(enc { $0.int64(1, -1) }, "08ffffffffffffffffff01", "negatives take ten bytes")
        XCTAssertEqual(enc { $0.float(2, 0.25) }, "150000803e", "field 2, wire type 5, little endian")
        XCTAssertEqual(enc { $0.double(1, 1.5) }, "09000000000000f83f", "field 1, wire type 1")
        XCTAssertEqual(enc { $0.string(3, "hi") }, "1a026869")
        XCTAssertEqual(enc { $0.bytes(16, [7]) }, "820101" + "07", "field 16 needs a two-byte key")
        var inner = ProtobufWriter()
        inner.int64(1, 1)
        XCTAssertEqual(enc { $0.message(7, inner) }, "3a020801")
        XCTAssertEqual(enc { $0.message(2, ProtobufWriter()) }, "1200", "an empty message is a zero length")
    }

    func testEventsMatchTensorBoardProtobufBytes() {
        func event(_ t: Double, _ s: Int64, _ c: TensorBoardEvent.Content) -> String { hex(TensorBoardEvent(wallTime: t, step: s, content: c).encoded) }
        XCTAssertEqual(event(1.5, 7, .fileVersion("brain.Event:2")), "09000000000000f83f10071a0d627261696e2e4576656e743a32")
        XCTAssertEqual(event(1.5, 7, .summary([.scalar(tag: "d_loss", value: 0.25)])), "09000000000000f83f10072a0f0a0d0a06645f6c6f7373150000803e")
        XCTAssertEqual(event(2, 300, .sessionStart), "09000000000000004010ac023a020801")
        XCTAssertEqual(event(2, 3, .summary([.image(tag: "samples", png: [0x89, 0x50, 0x4E, 0x47], height: 2, width: 3, colorspace: 1)])),
                       "09000000000000004010032a190a170a0773616d706c6573220c080210031801220489504e47")
        XCTAssertEqual(event(2, 3, .summary([.audio(tag: "audio/0", wav: Array("RIFF".utf8), sampleRate: 8000, channels: 1, frames: 1024)])),
                       "09000000000000004010032a280a260a07617564696f2f30321b0d0000fa4510011880082204524946462a09617564696f2f776176")
        XCTAssertEqual(event(2, 3, .summary([.text(tag: "samples", text: "    ann")])),
                       "09000000000000004010032a260a240a0773616d706c6573420d08071200420720202020616e6e4a0a0a060a04746578742002")
        XCTAssertEqual(event(2, 0, .sessionStart), "090000000000000040" + "3a020801", "a zero step is left out, as proto3 does")
    }

    func testTFRecordFramingMatchesRecordWriter() {
        let payload = TensorBoardEvent(wallTime: 1.5, step: 7, content: .fileVersion("brain.Event:2")).encoded
        XCTAssertEqual(hex(TFRecord.frame(payload)),
                       "1a00000000000000" + "129bd82d" + "09000000000000f83f10071a0d627261696e2e4576656e743a32" + "da446486")
        XCTAssertEqual(TFRecord.frame([]).count, 16)
    }

    func testPNGHeaderAndTextCodeBlock() throws {
        let dir = try makeTemporaryDirectory("tb-png")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("g.png").path
        try ImageGrid.writePNG(images: Tensor(shape: [2, 1, 5, 3], scalars: (0 ..< 30).map { Float($0) / 30 }), path: path, columns: 2, range: (0, 1))
        let grid = try PNGReader.decode(path: path)
        guard case .image(let tag, let png, let height, let width, let colorspace) = try TrainingEvents.image(tag: "samples", path: path) else {
            return XCTFail("not an image value")
        }
        XCTAssertEqual(tag, "samples")
        XCTAssertEqual([width, height], [grid.width, grid.height])
        XCTAssertEqual(colorspace, 1, "a grey grid")
        XCTAssertEqual(png, try Array(Data(contentsOf: URL(fileURLWithPath: path))), "the file's bytes as they are")
        XCTAssertNil(TrainingEvents.pngHeader(Array("GIF89a........................".utf8)))
        XCTAssertEqual(TrainingEvents.codeBlock("ann\nbo\n"), "    ann\n    bo")
        XCTAssertEqual(TrainingEvents.codeBlock("a\n\n==\n"), "    a\n    \n    ==")
    }

    /// A resume writes metrics.jsonl's kept lines again: numbers parsed exactly (this mean of
    /// float32s sits on a float32 tie, which a parser off by an ulp rounds the other way).
    func testMetricsLineNumbersAreParsedExactly() {
        let f = TrainingEvents.numericFields(#"{"eval_space":"classifier","g_loss":0.5676933825016022,"step":12,"t":true,"n":null}"#)
        XCTAssertEqual(f?.keys.sorted(), ["g_loss", "step"])
        XCTAssertEqual(f?["step"], 12)
        XCTAssertEqual(f?["g_loss"]?.bitPattern, 4_603_288_546_957_066_240)
        XCTAssertEqual(f.map { Float($0["g_loss"]!) }, 0.5676933526992798, "ties to even, as numpy's float32 does")
        XCTAssertEqual(TrainingEvents.numericFields(" { \"a\" : -1.5e-3 , \"b\":\"x\\\"y\" } "), ["a": -1.5e-3])
        XCTAssertEqual(TrainingEvents.numericFields("{}"), [:])
        XCTAssertNil(TrainingEvents.numericFields(#"{"a":{"b":1}}"#))
        XCTAssertNil(TrainingEvents.numericFields(#"{"a":1"#))
        XCTAssertNil(TrainingEvents.numericFields("[1]"))
    }

    func testEventFileNamesSortAfterEarlierOnesAndStartWithFileVersion() throws {
        let dir = try makeTemporaryDirectory("tb-names")
        defer { try? FileManager.default.removeItem(at: dir) }
        let now = Date(timeIntervalSince1970: 1_700_000_000.7)
        let a = try TensorBoardEventFile(folder: dir.path, now: now)
        let b = try TensorBoardEventFile(folder: dir.path, now: now)
        XCTAssert(a.fileName.hasPrefix("events.out.tfevents.1700000000."), a.fileName)
        XCTAssert(a.fileName.hasSuffix(".\(getpid())"), a.fileName)
        XCTAssert(b.fileName.hasPrefix("events.out.tfevents.1700000001."), "a second file in the same second sorts after the first: \(b.fileName)")
        XCTAssertEqual(TensorBoardEventFile.existing(in: dir.path), [a.fileName, b.fileName])
        let bytes = try Array(Data(contentsOf: URL(fileURLWithPath: a.path)))
        XCTAssertEqual(bytes, TFRecord.frame(TensorBoardEvent(wallTime: now.timeIntervalSince1970, step: 0, content: .fileVersion("brain.Event:2")).encoded))
        try a.write(TensorBoardEvent(wallTime: 3, step: 1, content: .summary([.scalar(tag: "x", value: 1)])))
        try a.flush()
        XCTAssertGreaterThan(try Data(contentsOf: URL(fileURLWithPath: a.path)).count, bytes.count)
    }

    /// A real I/O error: the file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes `write`
    /// fail with EFBIG; the error names the file and the file keeps only whole records.
    func testFailedWriteIsOneErrorAndLeavesWholeRecords() throws {
        let dir = try makeTemporaryDirectory("tb-full")
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try TensorBoardEventFile(folder: dir.path)
        let before = try Data(contentsOf: URL(fileURLWithPath: file.path)).count
        var old = rlimit()
        XCTAssertEqual(getrlimit(Int32(RLIMIT_FSIZE.rawValue), &old), 0)
        let oldHandler = signal(SIGXFSZ, SIG_IGN)
        var small = old
        small.rlim_cur = 4096
        XCTAssertEqual(setrlimit(Int32(RLIMIT_FSIZE.rawValue), &small), 0)
        var thrown: Error?
        do {
            try file.write(TensorBoardEvent(wallTime: 1, step: 1, content: .summary([.image(tag: "samples", png: [UInt8](repeating: 1, count: 10_000), height: 1, width: 1, colorspace: 1)])))
        } catch { thrown = error }
        _ = setrlimit(Int32(RLIMIT_FSIZE.rawValue), &old)
        signal(SIGXFSZ, oldHandler)
        let message = "\(thrown.map { "\($0)" } ?? "no error")"
        XCTAssert(thrown is DataError, message)
        XCTAssert(message.contains(file.path) && message.contains("cannot append a TensorBoard event") && message.contains("--resume"), message)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: file.path)).count, before, "cut back to the records before")
    }
}

/// `conjure train` runs read back by the `tensorboard` package (scripts/tensorboard-dump.py with
/// the interpreter of ``tensorboardPython()``): every scalar of metrics.jsonl at its step,
/// the grids (every `--sample-every` step and the final one) as decodable images equal to the
/// PNG files, clips as audio, texts as text; a run
/// stopped past its checkpoint and resumed shows what metrics.jsonl keeps.
final class TensorBoardCLITests: ConjureCLITestCase {
    override var temporaryPrefix: String { "tensorboard" }

    /// `$CONJURE_TEST_PYTHON`, else `.build/pyenv/bin/python` of the package (made by `make
    /// pyenv`). Missing: a failure when `CI` is set, else a skip saying how to get it.
    func tensorboardPython() throws -> URL { try pyenvPython(holding: "the tensorboard package") }

    /// What TensorBoard's readers see in `run` (the JSON of scripts/tensorboard-dump.py).
    func dump(_ run: String) throws -> [String: Any] {
        let python = try tensorboardPython()
        let r = try runProcess(python, [packageRoot.appendingPathComponent("scripts/tensorboard-dump.py").path, tmp.appendingPathComponent(run).path], in: tmp)
        guard r.status == 0, let json = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any] else {
            throw FixtureError(description: "tensorboard-dump.py failed (\(r.status)): \(r.err.suffix(2000))")
        }
        return json
    }

    /// Every numeric value of every metrics.jsonl line of `run` but `step`, per key: [step,
    /// the IEEE bits of the value rounded to float32 as TensorBoard's `simple_value` holds it],
    /// in file order. Numbers are parsed with `Double(String)` (correctly rounded; Foundation's
    /// JSON parser on Linux is not, and a mean of float32s often sits on a float32 tie).
    func metricsSeries(_ run: String) throws -> [String: [[Int]]] {
        let text = try String(contentsOf: tmp.appendingPathComponent(run + "/metrics.jsonl"), encoding: .utf8)
        let member = try NSRegularExpression(pattern: #""([a-z_0-9]+)":(-?[0-9][0-9.eE+-]*)"#)
        var series: [String: [[Int]]] = [:]
        for line in text.split(separator: "\n").map(String.init) {
            var values: [(String, Double)] = []
            for m in member.matches(in: line, range: NSRange(line.startIndex..., in: line)) {
                values.append((String(line[Range(m.range(at: 1), in: line)!]), Double(String(line[Range(m.range(at: 2), in: line)!]))!))
            }
            let step = Int(values.first { $0.0 == "step" }!.1)
            for (k, x) in values where k != "step" { series[k, default: []].append([step, Int(Float(x).bitPattern)]) }
        }
        return series
    }

    func sha256(_ path: String) throws -> String { DataFetch.sha256Hex(of: try Data(contentsOf: tmp.appendingPathComponent(path))) }

    func rows(_ json: [String: Any], _ kind: String, _ tag: String) -> [[String: Any]] {
        ((json[kind] as? [String: Any])?[tag] as? [[String: Any]]) ?? []
    }

    /// A GAN on the 8x8 digits with in-training FID/KID, stopped at step 6, resumed to 10, then
    /// put back to its step-6 checkpoint (a run killed after step 10 before checkpointing) and
    /// resumed to 14: three event files, and TensorBoard (which drops points at and after a
    /// START step) shows exactly what the truncated metrics.jsonl holds, and the grids on disk.
    func testImageRunWithEvaluationAndResumeReadsBackInTensorBoard() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        let common = ["train", "--data", digits, "--model", "gan", "--batch-size", "32", "--log-every", "4", "--sample-every", "3",
                      "--checkpoint-every", "100", "--eval-every", "5", "--eval-count", "100", "--threads", "1", "--quiet"]
        try conjure(common + ["--name", "a", "--max-steps", "6"])
        let run = tmp.appendingPathComponent("runs/a")
        let ckpt = run.appendingPathComponent("checkpoints/latest.safetensors")
        let saved = tmp.appendingPathComponent("step6.safetensors")
        try FileManager.default.copyItem(at: ckpt, to: saved)
        try conjure(["train", "--name", "a", "--resume", "--max-steps", "10", "--quiet"])
        XCTAssertEqual(try metricsSeries("runs/a")["d_loss"]?.map { Int($0[0]) }, [4, 8, 10])
        try FileManager.default.removeItem(at: ckpt)
        try FileManager.default.copyItem(at: saved, to: ckpt)
        let resumed = try conjure(["train", "--name", "a", "--resume", "--max-steps", "14", "--quiet"])
        XCTAssert(resumed.out.contains("events.out.tfevents."), resumed.out)

        let json = try dump("runs/a")
        let files = json["files"] as! [[String: Any]]
        XCTAssertEqual(files.count, 3, "one event file per session")
        XCTAssertEqual(files.map { $0["file_version"] as? String }, Array(repeating: "brain.Event:2", count: 3))
        XCTAssertEqual(files.map { $0["session_starts"] as? [Int] }, [[], [6], [6]], "resumed files start at the checkpoint's step")

        let expected = try metricsSeries("runs/a")
        XCTAssertEqual(expected["d_loss"]?.map { Int($0[0]) }, [4, 8, 12, 14], "metrics.jsonl lost the lines past step 6 of the killed session")
        XCTAssertEqual(expected["fid"]?.map { Int($0[0]) }, [5, 10, 14])
        XCTAssertNotNil(expected["kid"])
        XCTAssertNotNil(expected["samples_per_sec"])
        let scalars = json["scalars"] as! [String: [[Int]]]
        XCTAssertEqual(Set(scalars.keys), Set(expected.keys), "a tag for every numeric key of metrics.jsonl")
        for (tag, points) in expected { XCTAssertEqual(scalars[tag], points, tag) }

        let grids = rows(json, "images", "samples")
        XCTAssertEqual(grids.map { $0["step"] as? Int }, [3, 6, 9, 12, 14],
                       "every 3 steps and the final grid; the killed session's grids (9, final 10) are replaced, the final grid at 6 is the step's")
        for g in grids {
            let step = g["step"] as! Int
            let file = step == 14 ? "runs/a/samples/final.png" : String(format: "runs/a/samples/step-%06d.png", step)
            XCTAssertEqual(g["sha256"] as? String, try sha256(file), "the PNG file's bytes at step \(step)")
            let decoded = try PNGReader.decode(path: tmp.appendingPathComponent(file).path)
            XCTAssertEqual(g["decoded"] as? [Int], [decoded.width, decoded.height], "Pillow decodes it")
            XCTAssertEqual([g["width"] as? Int, g["height"] as? Int], [decoded.width, decoded.height])
        }
        let plugins = json["plugins"] as! [String: [String]]
        XCTAssertEqual(plugins["images"], ["samples"])
        XCTAssert(Set(plugins["scalars"] ?? []).isSuperset(of: ["d_loss", "g_loss", "fid", "kid", "epoch"]), "\(plugins)")

        // Without TensorBoard: no event file, and the same checkpoint as the stopped and resumed run.
        try conjure(common + ["--name", "b", "--max-steps", "14", "--no-tensorboard"])
        XCTAssertEqual(TensorBoardEventFile.existing(in: tmp.appendingPathComponent("runs/b").path), [])
        let a = try SafeTensors.read(path: ckpt.path), b = try SafeTensors.read(path: tmp.appendingPathComponent("runs/b/checkpoints/latest.safetensors").path)
        XCTAssertEqual(a.order, b.order)
        for name in a.order { XCTAssertEqual(a.tensors[name]?.tensor?.scalars, b.tensors[name]?.tensor?.scalars, "\(name): exact resume") }
    }

    /// char-mlp on names.txt: the samples files as the text plugin's strings (a Markdown code
    /// block of the file), and the held-out loss among the scalars.
    func testTextRunReadsBackInTensorBoard() throws {
        let names = try sharedPath("data/text/names.txt").path
        try conjure(["train", "--data", names, "--model", "char-mlp", "--name", "t", "--max-steps", "7", "--batch-size", "16",
                     "--log-every", "3", "--sample-every", "3", "--threads", "1", "--quiet"])
        let json = try dump("runs/t")
        let expected = try metricsSeries("runs/t")
        XCTAssertNotNil(expected["held_out_loss"])
        XCTAssertEqual(json["scalars"] as? [String: [[Int]]], expected)
        let texts = rows(json, "text", "samples")
        XCTAssertEqual(texts.map { $0["step"] as? Int }, [3, 6, 7], "every 3 steps and the final samples")
        for (row, file) in zip(texts, ["step-000003.txt", "step-000006.txt", "final.txt"]) {
            XCTAssertEqual(row["plugin"] as? String, "text")
            let content = try String(contentsOf: tmp.appendingPathComponent("runs/t/samples/" + file), encoding: .utf8)
            XCTAssertEqual(content.split(separator: "\n", omittingEmptySubsequences: false).count, 65, "64 names a file, each ending a line")
            XCTAssertEqual(row["text"] as? String, content.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { "    " + $0 }.joined(separator: "\n"), file)
        }
        XCTAssertEqual((json["plugins"] as? [String: [String]])?["text"], ["samples"])
    }

    /// WaveGAN (model size 2) on 20 FSDD recordings cut to 1024 samples, 3 steps: spectrogram
    /// grids as images and the four clips of step 2 and of the final step as 8 kHz mono WAV audio.
    func testAudioRunReadsBackInTensorBoard() throws {
        let src = try sharedPath("data/fsdd/recordings")
        let clips = tmp.appendingPathComponent("clips")
        try FileManager.default.createDirectory(at: clips, withIntermediateDirectories: true)
        for digit in 0 ... 1 { for i in 0 ..< 10 {
            let n = "\(digit)_jackson_\(i).wav"
            try FileManager.default.copyItem(at: src.appendingPathComponent(n), to: clips.appendingPathComponent(n))
        } }
        try conjure(["train", "--data", clips.path, "--model", "wavegan", "--model-size", "2", "--length", "1024", "--batch-size", "4",
                     "--max-steps", "3", "--log-every", "1", "--sample-every", "2", "--name", "w", "--threads", "1", "--quiet"])
        let json = try dump("runs/w")
        XCTAssertEqual(json["scalars"] as? [String: [[Int]]], try metricsSeries("runs/w"))
        let grids = rows(json, "images", "samples")
        XCTAssertEqual(grids.map { $0["step"] as? Int }, [2, 3], "step 2 and the final grid")
        XCTAssertEqual(grids.map { $0["sha256"] as? String }, [try sha256("runs/w/samples/step-000002.png"), try sha256("runs/w/samples/final.png")])
        for i in 0 ..< 4 {
            let a = rows(json, "audio", "audio/\(i)")
            XCTAssertEqual(a.map { $0["step"] as? Int }, [2, 3], "audio/\(i)")
            XCTAssertEqual(a.map { $0["sha256"] as? String }, [try sha256("runs/w/samples/step-000002/sample-000\(i).wav"), try sha256("runs/w/samples/final/sample-000\(i).wav")])
            for row in a {
                XCTAssertEqual(row["wav"] as? [Int], [1, 8000, 1024], "mono, 8 kHz, 1024 frames")
                XCTAssertEqual(row["sample_rate"] as? Double, 8000)
                XCTAssertEqual(row["length_frames"] as? Int, 1024)
                XCTAssertEqual(row["content_type"] as? String, "audio/wav")
            }
        }
        XCTAssertEqual((json["plugins"] as? [String: [String]])?["audio"], ["audio/0", "audio/1", "audio/2", "audio/3"])
    }
}
