import Foundation
import ConjureData
import ConjureNN
#if canImport(Glibc)
import Glibc
#endif

/// One value of a TensorBoard `Summary` (`tensorboard/compat/proto/summary.proto`,
/// `Summary.Value`): a tag and what is shown under it.
public enum TensorBoardValue: Sendable, Equatable {
    /// `simple_value` (field 2): a point of the scalars dashboard.
    case scalar(tag: String, value: Float)
    /// `image` (field 4, `Summary.Image`): encoded image bytes (PNG) with their height and
    /// width in pixels and colour space (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA).
    case image(tag: String, png: [UInt8], height: Int, width: Int, colorspace: Int)
    /// `audio` (field 6, `Summary.Audio`): a WAV file's bytes with its sample rate in Hz,
    /// channel count and length in frames (`content_type` `audio/wav`).
    case audio(tag: String, wav: [UInt8], sampleRate: Float, channels: Int, frames: Int)
    /// `tensor` (field 8): a scalar string tensor (`DT_STRING`) with `metadata` (field 9)
    /// naming the text plugin (`plugin_name: "text"`, `data_class: DATA_CLASS_TENSOR`); the
    /// dashboard renders the string as Markdown.
    case text(tag: String, text: String)

    /// The tag the value is shown under.
    public var tag: String {
        switch self {
        case .scalar(let t, _), .image(let t, _, _, _, _), .audio(let t, _, _, _, _), .text(let t, _): return t
        }
    }

    /// The `Summary.Value` message, fields in increasing number (tag 1, the value's field,
    /// metadata 9).
    public var encoded: ProtobufWriter {
        var v = ProtobufWriter()
        v.string(1, tag)
        switch self {
        case .scalar(_, let value):
            v.float(2, value)
        case .image(_, let png, let height, let width, let colorspace):
            var m = ProtobufWriter()
            m.int64(1, Int64(height))
            m.int64(2, Int64(width))
            m.int64(3, Int64(colorspace))
            m.bytes(4, png)
            v.message(4, m)
        case .audio(_, let wav, let sampleRate, let channels, let frames):
            var m = ProtobufWriter()
            m.float(1, sampleRate)
            m.int64(2, Int64(channels))
            m.int64(3, Int64(frames))
            m.bytes(4, wav)
            m.string(5, "audio/wav")
            v.message(6, m)
        case .text(_, let text):
            var tensor = ProtobufWriter()
            tensor.int64(1, 7)                   // dtype: DT_STRING
            tensor.message(2, ProtobufWriter())  // tensor_shape: no dims, a scalar
            tensor.string(8, text)               // string_val
            v.message(8, tensor)
            var plugin = ProtobufWriter()
            plugin.string(1, "text")             // PluginData.plugin_name
            var metadata = ProtobufWriter()
            metadata.message(1, plugin)          // SummaryMetadata.plugin_data
            metadata.int64(4, 2)                 // data_class: DATA_CLASS_TENSOR
            v.message(9, metadata)
        }
        return v
    }
}

/// A TensorBoard `Event` (`tensorboard/compat/proto/event.proto`): `wall_time` (field 1,
/// seconds since 1970), `step` (field 2) and one of the contents below.
public struct TensorBoardEvent: Sendable, Equatable {
    /// What an event carries.
    public enum Content: Sendable, Equatable {
        /// `file_version` (field 3): the first event of a file, `brain.Event:2`.
        case fileVersion(String)
        /// `summary` (field 5): values logged at the step.
        case summary([TensorBoardValue])
        /// `session_log` (field 7) with `status: START` (1): the writer (re)started at `step`;
        /// TensorBoard drops the points it holds at this step and later (a resumed run's stale
        /// points past its checkpoint).
        case sessionStart
    }

    /// Seconds since 1970-01-01 UTC.
    public var wallTime: Double
    /// The training step.
    public var step: Int64
    /// The content.
    public var content: Content

    /// An event at `step` and `wallTime` (seconds since 1970).
    public init(wallTime: Double, step: Int64, content: Content) {
        self.wallTime = wallTime
        self.step = step
        self.content = content
    }

    /// The serialised `Event` message (the payload of one TFRecord), byte for byte as
    /// protobuf's canonical serialisation (fields by number, a zero step left out).
    public var encoded: [UInt8] {
        var e = ProtobufWriter()
        e.double(1, wallTime)
        if step != 0 { e.int64(2, step) }  // proto3 leaves a default value out
        switch content {
        case .fileVersion(let v):
            e.string(3, v)
        case .summary(let values):
            var s = ProtobufWriter()
            for v in values { s.message(1, v.encoded) }
            e.message(5, s)
        case .sessionStart:
            var log = ProtobufWriter()
            log.int64(1, 1)  // SessionLog.status: START
            e.message(7, log)
        }
        return e.bytes
    }
}

/// An `events.out.tfevents.SECONDS.HOST.PID` file: TFRecord-framed ``TensorBoardEvent``s,
/// the first one `file_version: "brain.Event:2"`.
///
/// Each event is appended with one `write(2)`, so TensorBoard sees it at once; when a write
/// fails (ENOSPC, EIO, ...) the file is cut back to its length before the event, so it never
/// holds half a record, and a ``DataError`` naming the file is thrown. ``flush()`` fsyncs.
public final class TensorBoardEventFile {
    /// The file's path.
    public let path: String
    /// The file's name, `events.out.tfevents.SECONDS.HOST.PID`.
    public let fileName: String
    private var fd: Int32

    /// The prefix of every event file name.
    public static let prefix = "events.out.tfevents."

    /// `events.out.tfevents.SECONDS.HOST.PID`, seconds zero-padded to 10 digits.
    public static func fileName(seconds: Int, host: String, pid: Int32) -> String {
        prefix + String(format: "%010d", seconds) + ".\(host).\(pid)"
    }

    /// Creates a new event file in `folder` and writes its `file_version` event.
    ///
    /// The name's seconds are `now`'s, raised when needed past every event file already in
    /// `folder`: TensorBoard reads a folder's files in name order, so a resumed run's file
    /// comes after the run's earlier ones even within one second.
    ///
    /// - Throws: ``DataError`` naming the file when it cannot be created or written (the file
    ///   is then removed).
    public init(folder: String, now: Date = Date()) throws {
        var seconds = Int(now.timeIntervalSince1970)
        for name in TensorBoardEventFile.existing(in: folder) {
            let rest = name.dropFirst(TensorBoardEventFile.prefix.count)
            if let s = Int(rest.prefix { $0.isNumber }) { seconds = max(seconds, s + 1) }
        }
        var host = [CChar](repeating: 0, count: 256)
        let hostName = gethostname(&host, host.count - 1) == 0 ? String(cString: host) : "localhost"
        fileName = TensorBoardEventFile.fileName(seconds: seconds, host: hostName.isEmpty ? "localhost" : hostName, pid: getpid())
        path = folder + "/" + fileName
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
        if fd < 0 { throw DataError(file: path, problem: "cannot create the TensorBoard event file: \(String(cString: strerror(errno)))") }
        do {
            try write(TensorBoardEvent(wallTime: now.timeIntervalSince1970, step: 0, content: .fileVersion("brain.Event:2")))
        } catch {
            unlink(path)  // no empty file left behind
            throw error
        }
    }

    deinit { close(fd) }

    /// The names of the event files in `folder` (`events.out.tfevents.*`), sorted.
    public static func existing(in folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasPrefix(prefix) }.sorted()
    }

    /// Appends `event` as one TFRecord.
    ///
    /// - Throws: ``DataError`` naming the file when the record cannot be written whole (the
    ///   file is then as it was before).
    public func write(_ event: TensorBoardEvent) throws {
        let record = TFRecord.frame(event.encoded)
        let failure = appendWholeOrNothing(fd, record)
        if failure != 0 {
            throw DataError(file: path, problem: "cannot append a TensorBoard event: \(String(cString: strerror(failure)))",
                            hint: failure == ENOSPC ? "free some disk space, then continue with --resume (the last checkpoint is intact)"
                                : "the last checkpoint is intact; continue with --resume (or train with --no-tensorboard)")
        }
    }

    /// fsyncs the file (file systems that cannot are ignored).
    ///
    /// - Throws: ``DataError`` naming the file when the flush fails.
    public func flush() throws {
        if fsync(fd) != 0 {
            let e = errno
            if e != EINVAL && e != ENOTSUP && e != EROFS {
                throw DataError(file: path, problem: "cannot flush to disk (fsync): \(String(cString: strerror(e)))",
                                hint: "the last checkpoint is intact; continue with --resume")
            }
        }
    }
}
