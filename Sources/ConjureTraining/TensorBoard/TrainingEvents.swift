import Foundation
import ConjureData
import ConjureModels

/// The TensorBoard event file of a training run (`conjure train`, on unless
/// `--no-tensorboard`): what the trainer logs, as TensorBoard shows it.
///
/// - Scalars: every numeric value of every `metrics.jsonl` record (training lines and
///   in-training FID/KID lines), tag = the JSON key, step = the record's `step`.
/// - Samples, read back from the files the sample writer just wrote, at each `--sample-every`
///   step and the step where training stopped (the final grid; left out when that step is on
///   the `--sample-every` grid, as the step's grid, from the same latent batch, is there):
///   image runs' grids as images (tag `samples`); sound runs' spectrogram grids the same way
///   and their clips as audio (`audio/0`...`audio/3`); text runs' samples as text (`samples`),
///   a Markdown code block of the samples file. The final grid shares the tags so that a later
///   point of the same tag (a resumed run) replaces it, in TensorBoard's fast loader too.
/// - Resume (`--resume` at step P): a new file whose events after `file_version` are a
///   `SessionLog` START at step P (TensorBoard drops every point at P and later: the stale ones
///   of a run stopped past its checkpoint), then the records and grids at step P that survive
///   in `metrics.jsonl` and `samples/step-*`, written again. A run without an event file yet
///   gets its whole kept history this way.
///
/// Writing is appended at once and fsynced at each checkpoint and at the end; a write that
/// fails throws a ``DataError`` naming the file. A sample file that cannot be read back is
/// skipped with one note.
final class TrainingEvents {
    /// What a run's sample files are.
    enum Kind {
        /// A PNG grid.
        case image
        /// A PNG grid of spectrograms and a folder of WAV clips (`C` channels, `T` frames).
        case audio(sampleRate: Int, channels: Int, frames: Int)
        /// A UTF-8 samples file.
        case text
    }

    let file: TensorBoardEventFile
    let kind: Kind?
    /// The run's `--sample-every` (0: final grid only).
    let sampleEvery: Int
    let log: (String) -> Void
    private var warned = false

    /// The name of the event file written (in the run folder).
    var fileName: String { file.fileName }

    /// Creates the run's new event file in `folder` (the run folder, or its staging folder) and,
    /// when resuming at step `resumeStep`, writes the START event and the records and sample
    /// files at `resumeStep` again (all of them when `folder` had no event file yet).
    /// `sampleExtension` is the sample writer's (nil: no sample files).
    ///
    /// - Throws: ``DataError`` naming the event file when it cannot be written.
    init(run: RunConfig, folder: String, sampleExtension: String?, resumeStep: Int?, log: @escaping (String) -> Void) throws {
        self.log = log
        sampleEvery = run.sampleEvery
        switch run.spec {
        case _ where sampleExtension == nil: kind = nil
        case .image: kind = .image
        case .sequence(let c, let t): kind = run.audio?.sampleRate.map { .audio(sampleRate: $0, channels: c, frames: t) }
        case .tokens: kind = .text
        case .vector: kind = nil
        }
        let earlier = TensorBoardEventFile.existing(in: folder)
        file = try TensorBoardEventFile(folder: folder)
        guard let p = resumeStep else { return }
        let from = earlier.isEmpty ? 0 : p
        if !earlier.isEmpty { try file.write(TensorBoardEvent(wallTime: Date().timeIntervalSince1970, step: Int64(p), content: .sessionStart)) }
        if let text = try? String(contentsOfFile: folder + "/metrics.jsonl", encoding: .utf8) {
            for line in text.split(separator: "\n") {
                guard let record = TrainingEvents.numericFields(line), let s = record["step"].flatMap({ Int(exactly: $0) }), s >= from, s <= p else { continue }
                try scalars(record)
            }
        }
        guard let ext = sampleExtension else { return }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder + "/samples")) ?? []
        let steps = names.compactMap { name -> Int? in
            guard name.hasPrefix("step-"), name.hasSuffix("." + ext) else { return nil }
            return Int(name.dropFirst(5).dropLast(ext.count + 1))
        }
        for s in steps.sorted() where s >= from && s <= p {
            try samples(at: folder + String(format: "/samples/step-%06d.", s) + ext, step: s)
        }
    }

    /// Writes every numeric value of a `metrics.jsonl` record but `step` as a scalar at the
    /// record's `step`, tags in key order. Strings (e.g. `eval_space`) are not scalars.
    ///
    /// - Throws: ``DataError`` naming the event file when it cannot be written.
    func scalars(_ record: [String: Any]) throws {
        guard let step = (record["step"] as? Int) ?? (record["step"] as? Double).flatMap({ Int(exactly: $0) }) else { return }
        var values: [TensorBoardValue] = []
        for key in record.keys.sorted() where key != "step" {
            let v = record[key]!
            let x: Double?
            if v is String { x = nil }
            else if let d = v as? Double { x = d }
            else if let i = v as? Int { x = Double(i) }
            else if let f = v as? Float { x = Double(f) }
            else { x = (v as? NSNumber)?.doubleValue }
            if let x { values.append(.scalar(tag: key, value: Float(x))) }
        }
        if values.isEmpty { return }
        try file.write(TensorBoardEvent(wallTime: Date().timeIntervalSince1970, step: Int64(step), content: .summary(values)))
    }

    /// Writes the sample file just written at `path` (and, for sound, its WAV folder) at
    /// `step`. `final` (the grid written when training stops) is left out when `step` is on
    /// the `--sample-every` grid (that step's grid is in the file already), and the file is
    /// fsynced afterwards, as it is the run's last event.
    ///
    /// - Throws: ``DataError`` naming the event file when it cannot be written; a sample file
    ///   that cannot be read is skipped with a note.
    func samples(at path: String, step: Int, final: Bool = false) throws {
        guard let kind else { return }
        if final && sampleEvery > 0 && step % sampleEvery == 0 { return try file.flush() }
        var values: [TensorBoardValue] = []
        do {
            switch kind {
            case .image:
                values.append(try TrainingEvents.image(tag: "samples", path: path))
            case .audio(let rate, let channels, let frames):
                values.append(try TrainingEvents.image(tag: "samples", path: path))
                let folder = (path as NSString).deletingPathExtension
                let clips = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasPrefix("sample-") && $0.hasSuffix(".wav") }.sorted()
                for (i, clip) in clips.enumerated() {
                    let wav = try Array(Data(contentsOf: URL(fileURLWithPath: folder + "/" + clip)))
                    values.append(.audio(tag: "audio/\(i)", wav: wav, sampleRate: Float(rate), channels: channels, frames: frames))
                }
            case .text:
                let text = try String(contentsOfFile: path, encoding: .utf8)
                values.append(.text(tag: "samples", text: TrainingEvents.codeBlock(text)))
            }
        } catch {
            if !warned { log("note: TensorBoard: cannot read back \(path) (\(error)); its samples are not in the event file") }
            warned = true
            return
        }
        try file.write(TensorBoardEvent(wallTime: Date().timeIntervalSince1970, step: Int64(step), content: .summary(values)))
        if final { try file.flush() }
    }

    /// fsyncs the event file (at each checkpoint).
    ///
    /// - Throws: ``DataError`` naming the event file when the flush fails.
    func flush() throws { try file.flush() }

    /// An image value of the PNG file at `path`, its size and colour space read from the IHDR chunk.
    ///
    /// - Throws: ``DataError`` naming `path` when it is not a PNG file.
    static func image(tag: String, path: String) throws -> TensorBoardValue {
        let png = try Array(Data(contentsOf: URL(fileURLWithPath: path)))
        guard let (width, height, colorspace) = pngHeader(png) else { throw DataError(file: path, problem: "not a PNG file") }
        return .image(tag: tag, png: png, height: height, width: width, colorspace: colorspace)
    }

    /// Width, height and TensorBoard colour space (1 grey, 2 grey+alpha, 3 RGB or palette,
    /// 4 RGBA) of PNG bytes, from the signature and IHDR chunk; nil when they are not PNG.
    static func pngHeader(_ png: [UInt8]) -> (width: Int, height: Int, colorspace: Int)? {
        guard png.count >= 26, png.prefix(8).elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]),
              png[12 ..< 16].elementsEqual(Array("IHDR".utf8)) else { return nil }
        func be32(_ i: Int) -> Int { png[i ..< i + 4].reduce(0) { $0 << 8 | Int($1) } }
        let colorspace: Int
        switch png[25] {
        case 0: colorspace = 1
        case 4: colorspace = 2
        case 2, 3: colorspace = 3
        case 6: colorspace = 4
        default: return nil
        }
        return (be32(16), be32(20), colorspace)
    }

    /// The numeric members of a flat JSON object (a `metrics.jsonl` line), each number parsed
    /// with `Double(String)` (correctly rounded: Foundation's `JSONSerialization` on Linux can
    /// be off by an ulp or two, enough to round a float32 tie the other way); string, `true`,
    /// `false` and `null` members are left out. Nil when the line is not a flat object.
    static func numericFields<S: StringProtocol>(_ line: S) -> [String: Double]? {
        let c = Array(line.utf8)
        var i = 0
        func skipSpace() { while i < c.count, [0x20, 0x09, 0x0D, 0x0A].contains(c[i]) { i += 1 } }
        /// A JSON string at `i` (its raw bytes, escapes kept); nil when there is none.
        func string() -> String? {
            guard i < c.count, c[i] == UInt8(ascii: "\"") else { return nil }
            let start = i + 1
            i += 1
            while i < c.count, c[i] != UInt8(ascii: "\"") { i += c[i] == UInt8(ascii: "\\") ? 2 : 1 }
            guard i < c.count else { return nil }
            defer { i += 1 }
            return String(decoding: c[start ..< i], as: UTF8.self)
        }
        var out: [String: Double] = [:]
        skipSpace()
        guard i < c.count, c[i] == UInt8(ascii: "{") else { return nil }
        i += 1
        skipSpace()
        if i < c.count, c[i] == UInt8(ascii: "}") { return out }
        while true {
            skipSpace()
            guard let key = string() else { return nil }
            skipSpace()
            guard i < c.count, c[i] == UInt8(ascii: ":") else { return nil }
            i += 1
            skipSpace()
            if string() == nil {
                let start = i
                while i < c.count, c[i] != UInt8(ascii: ","), c[i] != UInt8(ascii: "}"), ![0x20, 0x09, 0x0D, 0x0A].contains(c[i]) { i += 1 }
                let token = String(decoding: c[start ..< i], as: UTF8.self)
                if let x = Double(token) { out[key] = x } else if !["true", "false", "null"].contains(token) { return nil }
            }
            skipSpace()
            guard i < c.count else { return nil }
            if c[i] == UInt8(ascii: "}") { return out }
            guard c[i] == UInt8(ascii: ",") else { return nil }
            i += 1
        }
    }

    /// `text` as a Markdown indented code block (each line after four spaces; a final line end
    /// dropped), so TensorBoard's text dashboard shows the samples verbatim.
    static func codeBlock(_ text: String) -> String {
        let body = text.hasSuffix("\n") ? String(text.dropLast()) : text
        return body.split(separator: "\n", omittingEmptySubsequences: false).map { "    " + $0 }.joined(separator: "\n")
    }
}
