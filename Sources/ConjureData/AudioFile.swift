import CSamplerate
import CSndfile
import Foundation

/// One decoded sound file: planar Float32 samples plus its rate and format.
public struct AudioClip: Sendable, Equatable {
    /// Samples, planar `[channels, frames]` row-major (channel 0's frames first).
    ///
    /// Units: PCM files are scaled by their format's full scale, so values lie in `[-1, 1)`
    /// (libsndfile's normalised float read: a 16-bit sample `s` becomes `s / 32768`, 8-bit
    /// `s / 128`, 24-bit `s / 2^23`, 32-bit `s / 2^31`); float files keep their stored values.
    public var samples: [Float]
    /// Channels (1 mono, 2 stereo, ...).
    public var channels: Int
    /// Frames (samples per channel).
    public var frames: Int
    /// Frames per second.
    public var sampleRate: Int
    /// The file's encoding, e.g. `"WAV PCM 16-bit"` (after resampling: still the file's).
    public var format: String

    /// Creates a clip from planar samples.
    ///
    /// - Precondition: `samples.count == channels * frames`, `channels >= 1`, `sampleRate >= 1`.
    public init(samples: [Float], channels: Int, sampleRate: Int, format: String = "") {
        precondition(channels >= 1 && samples.count % channels == 0,
                     "AudioClip: \(samples.count) samples do not divide into \(channels) channels")
        precondition(sampleRate >= 1, "AudioClip: sample rate must be positive, got \(sampleRate)")
        self.samples = samples
        self.channels = channels
        self.frames = samples.count / channels
        self.sampleRate = sampleRate
        self.format = format
    }

    /// The frames of one channel.
    public func channel(_ c: Int) -> ArraySlice<Float> { samples[c * frames ..< (c + 1) * frames] }

    /// The channel mean per frame (a mono mix-down), `[frames]`.
    public func mono() -> [Float] {
        if channels == 1 { return samples }
        var out = [Float](repeating: 0, count: frames)
        for c in 0 ..< channels { for t in 0 ..< frames { out[t] += samples[c * frames + t] } }
        let k = 1 / Float(channels)
        for t in 0 ..< frames { out[t] *= k }
        return out
    }

    /// Duration in seconds.
    public var duration: Double { Double(frames) / Double(sampleRate) }
}

/// The header of a sound file (no samples decoded).
public struct AudioFileInfo: Sendable, Equatable {
    /// Frames (samples per channel).
    public var frames: Int
    /// Frames per second.
    public var sampleRate: Int
    /// Channels.
    public var channels: Int
    /// The encoding, e.g. `"WAV PCM 16-bit"`.
    public var format: String
}

/// Reads and writes sound files through libsndfile, and resamples through libsamplerate.
///
/// Readable: WAV (RIFF and WAVE_FORMAT_EXTENSIBLE) in PCM unsigned 8-bit, signed 16, 24 and
/// 32-bit, float32 and float64; FLAC (8, 16, 24-bit); any channel count. Anything else that
/// libsndfile opens (AIFF, Ogg, µ-law, ADPCM, ...) is refused as unsupported, so the data
/// layer's promise stays small and tested. Writable: WAV as 16-bit PCM or 32-bit float.
public enum AudioFile {
    /// The sample encoding of a written WAV file.
    public enum WAVEncoding: String, Sendable, CaseIterable {
        /// Signed 16-bit PCM: `round(x * 32768)` clipped to `-32768...32767` (the inverse of the
        /// reader's `s / 32768`, so a read-write-read round trip is exact).
        case pcm16
        /// IEEE float32, values written as they are.
        case float32
    }

    /// The sample rates Conjure reads, writes and resamples to, in Hz: telephone-band 1 kHz to
    /// 768 kHz (the highest rate of common audio interfaces). A file's header outside it is
    /// refused as corrupt, so no buffer is sized by a nonsense rate.
    public static let sampleRates = 1_000 ... 768_000

    /// File name extensions read by ``AudioFolder`` (lower case).
    public static let extensions: Set<String> = ["wav", "wave", "flac"]

    /// Reads the header only.
    ///
    /// - Throws: ``DataError`` naming `path` when it is missing, not a sound file libsndfile
    ///   recognises, corrupt, or of an unsupported encoding.
    public static func info(path: String) throws -> AudioFileInfo {
        let (file, info, format) = try open(path)
        sf_close(file)
        return AudioFileInfo(frames: Int(info.frames), sampleRate: Int(info.samplerate), channels: Int(info.channels), format: format)
    }

    /// Reads a whole sound file.
    ///
    /// - Parameters:
    ///   - path: a WAV or FLAC file.
    ///   - sampleRate: the wanted rate; when it differs from the file's, the clip is converted
    ///     with libsamplerate (`SRC_SINC_MEDIUM_QUALITY`, band-limited sinc; output length
    ///     `round(frames * rate / fileRate)`). nil keeps the file's rate.
    /// - Returns: planar samples (see ``AudioClip/samples`` for units).
    /// - Throws: ``DataError`` naming `path` for a missing, corrupt, truncated (fewer sample
    ///   bytes than the header declares) or unsupported file.
    public static func read(path: String, sampleRate: Int? = nil) throws -> AudioClip {
        let (file, info, format) = try open(path)
        defer { sf_close(file) }
        let channels = Int(info.channels), frames = Int(info.frames)
        // A WAV whose data chunk is shorter than its header says: libsndfile shortens the
        // length silently and notes "data : N (should be M)" in its log.
        var log = [CChar](repeating: 0, count: 8192)
        _ = sf_command(file, Int32(SFC_GET_LOG_INFO), &log, Int32(log.count))
        let logText = String(cString: log)
        if let declared = truncatedDataChunk(logText) {
            throw DataError(file: path, problem: "truncated: the header declares \(declared.declared) bytes of samples, the file holds \(declared.present)",
                            hint: "the file was cut short (an interrupted copy or download?)")
        }
        var interleaved = [Float](repeating: 0, count: frames * channels)
        let got = interleaved.withUnsafeMutableBufferPointer { sf_readf_float(file, $0.baseAddress, sf_count_t(frames)) }
        if Int(got) != frames {
            let reason = String(cString: sf_strerror(file))
            throw DataError(file: path, problem: "truncated or corrupt: read \(got) of \(frames) frames (\(reason))")
        }
        if sf_error(file) != 0 {
            throw DataError(file: path, problem: "corrupt: \(String(cString: sf_strerror(file)))")
        }
        var planar = [Float](repeating: 0, count: frames * channels)
        for t in 0 ..< frames { for c in 0 ..< channels { planar[c * frames + t] = interleaved[t * channels + c] } }
        var clip = AudioClip(samples: planar, channels: channels, sampleRate: Int(info.samplerate), format: format)
        if let sampleRate, sampleRate != clip.sampleRate {
            clip = try resample(clip, to: sampleRate, source: path)
        }
        return clip
    }

    /// Converts a clip's sample rate with libsamplerate's `src_simple`
    /// (`SRC_SINC_MEDIUM_QUALITY`). Output frames: `round(frames * rate / clip.sampleRate)`.
    ///
    /// - Throws: ``DataError`` naming `source` when the ratio is outside libsamplerate's range
    ///   (1/256 ... 256) or the conversion fails.
    public static func resample(_ clip: AudioClip, to rate: Int, source: String = "audio") throws -> AudioClip {
        precondition(rate >= 1, "AudioFile.resample: rate must be positive, got \(rate)")
        if rate == clip.sampleRate || clip.frames == 0 {
            return AudioClip(samples: clip.samples, channels: clip.channels, sampleRate: rate, format: clip.format)
        }
        let ratio = Double(rate) / Double(clip.sampleRate)
        guard src_is_valid_ratio(ratio) != 0 else {
            throw DataError(file: source, problem: "cannot resample from \(clip.sampleRate) Hz to \(rate) Hz (ratio \(ratio) is outside 1/256...256)")
        }
        let c = clip.channels
        var input = [Float](repeating: 0, count: clip.frames * c)
        for t in 0 ..< clip.frames { for ch in 0 ..< c { input[t * c + ch] = clip.samples[ch * clip.frames + t] } }
        let wanted = Int((Double(clip.frames) * ratio).rounded())
        let capacity = wanted + 64
        var output = [Float](repeating: 0, count: capacity * c)
        var generated = 0
        let err: Int32 = input.withUnsafeBufferPointer { inp in
            output.withUnsafeMutableBufferPointer { out in
                var d = SRC_DATA()
                d.data_in = inp.baseAddress
                d.data_out = out.baseAddress
                d.input_frames = Int(clip.frames)
                d.output_frames = Int(capacity)
                d.src_ratio = ratio
                d.end_of_input = 1
                let e = src_simple(&d, Int32(SRC_SINC_MEDIUM_QUALITY), Int32(c))
                generated = Int(d.output_frames_gen)
                return e
            }
        }
        if err != 0 {
            throw DataError(file: source, problem: "resampling from \(clip.sampleRate) Hz to \(rate) Hz failed: \(String(cString: src_strerror(err)))")
        }
        let n = wanted
        var planar = [Float](repeating: 0, count: n * c)
        for t in 0 ..< min(n, generated) { for ch in 0 ..< c { planar[ch * n + t] = output[t * c + ch] } }
        return AudioClip(samples: planar, channels: c, sampleRate: rate, format: clip.format)
    }

    /// Writes a WAV file atomically: libsndfile encodes into memory, then ``AtomicFile`` writes
    /// a temporary file, fsyncs and renames it over `path`.
    ///
    /// - Parameters:
    ///   - samples: planar `[channels, frames]` values; with ``WAVEncoding/pcm16`` values
    ///     outside `[-1, 32767/32768]` are clipped.
    ///   - channels: channel count (>= 1).
    ///   - sampleRate: frames per second (>= 1).
    ///   - path: destination (replaced if it exists).
    ///   - encoding: 16-bit PCM (default) or float32.
    ///   - createDirectories: create missing parent directories.
    /// - Returns: the number of samples clipped (always 0 for float32).
    /// - Throws: ``DataError`` naming `path` for a NaN or infinite sample (its index given), a
    ///   bad channel count or rate, or any encoding / I/O failure; nothing is written then.
    @discardableResult
    public static func writeWAV(samples: [Float], channels: Int, sampleRate: Int, to path: String,
                                encoding: WAVEncoding = .pcm16, createDirectories: Bool = false) throws -> Int {
        guard channels >= 1, samples.count % channels == 0 else {
            throw DataError(file: path, problem: "cannot write \(samples.count) samples as \(channels) channels")
        }
        guard sampleRate >= 1 else { throw DataError(file: path, problem: "sample rate must be positive, got \(sampleRate)") }
        if let bad = samples.firstIndex(where: { !$0.isFinite }) {
            throw DataError(file: path, location: "channel \(bad / max(samples.count / channels, 1)), frame \(bad % max(samples.count / channels, 1))",
                            problem: "sample is \(samples[bad]); a sound file holds only finite values")
        }
        let frames = samples.count / channels
        var info = SF_INFO()
        info.samplerate = Int32(sampleRate)
        info.channels = Int32(channels)
        info.format = Int32(SF_FORMAT_WAV) | Int32(encoding == .pcm16 ? SF_FORMAT_PCM_16 : SF_FORMAT_FLOAT)
        guard sf_format_check(&info) != 0 else {
            throw DataError(file: path, problem: "libsndfile cannot write WAV \(encoding.rawValue) at \(sampleRate) Hz with \(channels) channels")
        }
        let memory = MemoryFile()
        var io = MemoryFile.virtualIO
        let unmanaged = Unmanaged.passRetained(memory)
        defer { unmanaged.release() }
        guard let file = sf_open_virtual(&io, Int32(SFM_WRITE), &info, unmanaged.toOpaque()) else {
            throw DataError(file: path, problem: "cannot encode WAV: \(String(cString: sf_strerror(nil)))")
        }
        var clipped = 0
        var written: sf_count_t
        switch encoding {
        case .pcm16:
            var ints = [Int16](repeating: 0, count: samples.count)
            for t in 0 ..< frames {
                for c in 0 ..< channels {
                    let v = (samples[c * frames + t] * 32768).rounded()
                    if v > 32767 || v < -32768 { clipped += 1 }
                    ints[t * channels + c] = Int16(min(max(v, -32768), 32767))
                }
            }
            written = ints.withUnsafeBufferPointer { sf_writef_short(file, $0.baseAddress, sf_count_t(frames)) }
        case .float32:
            var inter = [Float](repeating: 0, count: samples.count)
            for t in 0 ..< frames { for c in 0 ..< channels { inter[t * channels + c] = samples[c * frames + t] } }
            written = inter.withUnsafeBufferPointer { sf_writef_float(file, $0.baseAddress, sf_count_t(frames)) }
        }
        let message = String(cString: sf_strerror(file))
        let closed = sf_close(file)
        guard Int(written) == frames, closed == 0 else {
            throw DataError(file: path, problem: "cannot encode WAV: wrote \(written) of \(frames) frames (\(message))")
        }
        try AtomicFile.write(memory.bytes, to: path, createDirectories: createDirectories)
        return clipped
    }

    /// Writes a clip as WAV (see ``writeWAV(samples:channels:sampleRate:to:encoding:createDirectories:)``).
    @discardableResult
    public static func writeWAV(_ clip: AudioClip, to path: String, encoding: WAVEncoding = .pcm16,
                                createDirectories: Bool = false) throws -> Int {
        try writeWAV(samples: clip.samples, channels: clip.channels, sampleRate: clip.sampleRate, to: path,
                     encoding: encoding, createDirectories: createDirectories)
    }

    // MARK: - Internals

    /// Encodes planar samples with libsndfile's own float conversion into the bytes of a file
    /// of another container/encoding (for tests: files of every readable kind are made here,
    /// by the library that reads them). `container` is "wav" or "flac"; `subtype` one of
    /// "u8", "s8", "16", "24", "32", "float", "double".
    static func encodeForTesting(samples: [Float], channels: Int, sampleRate: Int,
                                 container: String, subtype: String) throws -> [UInt8] {
        let frames = samples.count / channels
        var info = SF_INFO()
        info.samplerate = Int32(sampleRate)
        info.channels = Int32(channels)
        let major = container == "flac" ? SF_FORMAT_FLAC : SF_FORMAT_WAV
        let sub: Int
        switch subtype {
        case "u8": sub = SF_FORMAT_PCM_U8
        case "s8": sub = SF_FORMAT_PCM_S8
        case "24": sub = SF_FORMAT_PCM_24
        case "32": sub = SF_FORMAT_PCM_32
        case "float": sub = SF_FORMAT_FLOAT
        case "double": sub = SF_FORMAT_DOUBLE
        default: sub = SF_FORMAT_PCM_16
        }
        info.format = Int32(major | sub)
        guard sf_format_check(&info) != 0 else { throw DataError(file: container, problem: "libsndfile cannot write \(container) \(subtype)") }
        let memory = MemoryFile()
        var io = MemoryFile.virtualIO
        let unmanaged = Unmanaged.passRetained(memory)
        defer { unmanaged.release() }
        guard let file = sf_open_virtual(&io, Int32(SFM_WRITE), &info, unmanaged.toOpaque()) else {
            throw DataError(file: container, problem: String(cString: sf_strerror(nil)))
        }
        var inter = [Float](repeating: 0, count: samples.count)
        for t in 0 ..< frames { for c in 0 ..< channels { inter[t * channels + c] = samples[c * frames + t] } }
        let written = inter.withUnsafeBufferPointer { sf_writef_float(file, $0.baseAddress, sf_count_t(frames)) }
        sf_close(file)
        guard Int(written) == frames else { throw DataError(file: container, problem: "wrote \(written) of \(frames) frames") }
        return memory.bytes
    }

    /// Opens `path` for reading and checks that its encoding is supported.
    private static func open(_ path: String) throws -> (OpaquePointer, SF_INFO, String) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DataError(file: path, problem: "no such file")
        }
        if isDir.boolValue { throw DataError(file: path, problem: "is a directory", hint: "give a sound file, or use it as an audio folder") }
        var info = SF_INFO()
        guard let file = sf_open(path, Int32(SFM_READ), &info) else {
            let reason = String(cString: sf_strerror(nil))
            throw DataError(file: path, problem: "not a readable sound file: \(reason)",
                            hint: "WAV (PCM 8/16/24/32-bit, float) and FLAC are read; the file may be corrupt or truncated")
        }
        let major = Int(info.format) & Int(SF_FORMAT_TYPEMASK)
        let sub = Int(info.format) & Int(SF_FORMAT_SUBMASK)
        let subName: String? = {
            switch sub {
            case Int(SF_FORMAT_PCM_U8): return "PCM 8-bit unsigned"
            case Int(SF_FORMAT_PCM_S8): return "PCM 8-bit"
            case Int(SF_FORMAT_PCM_16): return "PCM 16-bit"
            case Int(SF_FORMAT_PCM_24): return "PCM 24-bit"
            case Int(SF_FORMAT_PCM_32): return "PCM 32-bit"
            case Int(SF_FORMAT_FLOAT): return "float32"
            case Int(SF_FORMAT_DOUBLE): return "float64"
            default: return nil
            }
        }()
        let majorName: String?
        switch major {
        case Int(SF_FORMAT_WAV), Int(SF_FORMAT_WAVEX): majorName = "WAV"
        case Int(SF_FORMAT_FLAC): majorName = "FLAC"
        default: majorName = nil
        }
        guard let majorName, let subName else {
            var fi = SF_FORMAT_INFO()
            fi.format = info.format & Int32(SF_FORMAT_TYPEMASK)
            _ = sf_command(file, Int32(SFC_GET_FORMAT_INFO), &fi, Int32(MemoryLayout<SF_FORMAT_INFO>.size))
            let majorText = fi.name.map { String(cString: $0) } ?? String(format: "0x%X", major)
            sf_close(file)
            throw DataError(file: path, problem: "unsupported audio encoding (\(majorText), subtype 0x\(String(sub, radix: 16)))",
                            hint: "convert it to WAV PCM or FLAC, e.g. `sox in out.wav`")
        }
        guard info.channels >= 1, info.samplerate >= 1, info.frames >= 0 else {
            sf_close(file)
            throw DataError(file: path, problem: "corrupt header: \(info.channels) channels at \(info.samplerate) Hz")
        }
        guard sampleRates.contains(Int(info.samplerate)) else {
            sf_close(file)
            throw DataError(file: path, problem: "its header gives a sample rate of \(info.samplerate) Hz, outside \(sampleRates.lowerBound)-\(sampleRates.upperBound) Hz",
                            hint: "the header is probably corrupt; resample a good copy with `sox in -r 8000 out.wav`")
        }
        return (file, info, "\(majorName) \(subName)")
    }

    /// Parses libsndfile's log line `data : N (should be M)` (N > M: the data chunk is cut
    /// short). Sizes 0 and 0xFFFFFFFF (streamed WAVs of unknown length) are not truncation.
    static func truncatedDataChunk(_ log: String) -> (declared: Int, present: Int)? {
        for line in log.split(separator: "\n") where line.hasPrefix("data :") && line.contains("(should be") {
            let numbers = line.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
            if numbers.count >= 2, numbers[0] > numbers[1], numbers[0] != 0xFFFF_FFFF { return (numbers[0], numbers[1]) }
        }
        return nil
    }
}

/// A growable in-memory file for libsndfile's virtual I/O (used to encode before an atomic write).
final class MemoryFile {
    var bytes: [UInt8] = []
    var position = 0

    static var virtualIO: SF_VIRTUAL_IO {
        var io = SF_VIRTUAL_IO()
        io.get_filelen = { user in
            sf_count_t(Unmanaged<MemoryFile>.fromOpaque(user!).takeUnretainedValue().bytes.count)
        }
        io.seek = { offset, whence, user in
            let m = Unmanaged<MemoryFile>.fromOpaque(user!).takeUnretainedValue()
            let base: Int
            switch whence {
            case SEEK_CUR: base = m.position
            case SEEK_END: base = m.bytes.count
            default: base = 0
            }
            let p = base + Int(offset)
            if p < 0 { return -1 }
            m.position = p
            return sf_count_t(p)
        }
        io.read = { ptr, count, user in
            let m = Unmanaged<MemoryFile>.fromOpaque(user!).takeUnretainedValue()
            let n = max(0, min(Int(count), m.bytes.count - m.position))
            if n > 0 {
                m.bytes.withUnsafeBytes { src in ptr!.copyMemory(from: src.baseAddress! + m.position, byteCount: n) }
                m.position += n
            }
            return sf_count_t(n)
        }
        io.write = { ptr, count, user in
            let m = Unmanaged<MemoryFile>.fromOpaque(user!).takeUnretainedValue()
            let n = Int(count)
            if m.position + n > m.bytes.count { m.bytes += [UInt8](repeating: 0, count: m.position + n - m.bytes.count) }
            m.bytes.withUnsafeMutableBytes { dst in (dst.baseAddress! + m.position).copyMemory(from: ptr!, byteCount: n) }
            m.position += n
            return count
        }
        io.tell = { user in
            sf_count_t(Unmanaged<MemoryFile>.fromOpaque(user!).takeUnretainedValue().position)
        }
        return io
    }
}
