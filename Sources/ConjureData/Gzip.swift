import CZlibSys
import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reading whole files into memory, transparently inflating gzip data.
///
/// Gzip is detected by its content — the two magic bytes `0x1f 0x8b` (RFC 1952, section 2.3.1) —
/// never by the file name alone, so `data.csv` that is really gzipped and `data.csv.gz` that is
/// really plain text both load. Multi-member gzip files (several gzip streams concatenated, as
/// `cat a.gz b.gz` produces) are inflated member after member, as `gzip -d` does.
public enum Gzip {
    /// Whether `bytes` starts with the gzip magic number `1f 8b` (RFC 1952).
    public static func isGzip<C: Collection>(_ bytes: C) -> Bool where C.Element == UInt8 {
        var it = bytes.makeIterator()
        return it.next() == 0x1f && it.next() == 0x8b
    }

    /// Inflates a complete gzip file held in memory.
    ///
    /// - Parameters:
    ///   - bytes: the compressed file, starting with the gzip header.
    ///   - file: the path used in error messages.
    /// - Returns: the uncompressed bytes of all members, concatenated.
    /// - Throws: ``DataError`` when the data is corrupt (bad header, bad deflate data, CRC
    ///   mismatch) or ends before the stream does (a truncated download).
    public static func decompress(_ bytes: [UInt8], file: String) throws -> [UInt8] {
        guard !bytes.isEmpty else {
            throw DataError(file: file, problem: "gzip data is empty", hint: "the file looks truncated; re-download it")
        }
        // The last 4 bytes (ISIZE) give the size of the last member mod 2^32: a good first guess.
        var capacity = max(bytes.count * 4, 1 << 16)
        if bytes.count >= 18 {
            let n = bytes.count
            let isize = Int(bytes[n - 4]) | Int(bytes[n - 3]) << 8 | Int(bytes[n - 2]) << 16 | Int(bytes[n - 1]) << 24
            // Deflate expands at most ~1032:1; a larger ISIZE is garbage (e.g. a truncated file).
            if isize >= bytes.count / 2 && isize <= bytes.count * 1032 { capacity = max(isize, 1 << 12) }
        }
        var out = [UInt8](repeating: 0, count: capacity)
        var produced = 0
        var stream = z_stream()
        // 15 + 16: a gzip wrapper only (not zlib), with the maximum window.
        var rc = inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        guard rc == Z_OK else {
            throw DataError(file: file, problem: "cannot initialise zlib (inflateInit2 returned \(rc))")
        }
        defer { inflateEnd(&stream) }

        try bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!)
            stream.avail_in = UInt32(input.count)
            while true {
                if produced == out.count { out.append(contentsOf: repeatElement(0, count: max(out.count, 1 << 16))) }
                rc = out.withUnsafeMutableBufferPointer { o -> Int32 in
                    stream.next_out = o.baseAddress! + produced
                    let room = min(o.count - produced, Int(UInt32.max))
                    stream.avail_out = UInt32(room)
                    let r = inflate(&stream, Z_NO_FLUSH)
                    produced += room - Int(stream.avail_out)
                    return r
                }
                if rc == Z_STREAM_END {
                    // Another member follows? Skip any zero padding some tools append.
                    let consumed = input.count - Int(stream.avail_in)
                    var next = consumed
                    while next < input.count && input[next] == 0 { next += 1 }
                    if next + 1 < input.count && input[next] == 0x1f && input[next + 1] == 0x8b {
                        inflateReset(&stream)
                        stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress! + next)
                        stream.avail_in = UInt32(input.count - next)
                        continue
                    }
                    if next < input.count {
                        throw DataError(file: file, location: "byte \(consumed)",
                                        problem: "unexpected \(input.count - consumed) bytes after the end of the gzip stream",
                                        hint: "the file may be damaged; re-download or re-compress it")
                    }
                    return
                }
                if rc == Z_OK { continue }
                if rc == Z_BUF_ERROR {
                    if stream.avail_in == 0 {
                        throw DataError(file: file, location: "byte \(input.count)",
                                        problem: "gzip data ends early (\(produced) bytes inflated so far)",
                                        hint: "the file looks truncated; re-download it")
                    }
                    continue  // no room in the output; the loop grows it
                }
                let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(rc)"
                let at = input.count - Int(stream.avail_in)
                throw DataError(file: file, location: "byte \(at)", problem: "corrupt gzip data: \(message)",
                                hint: "the file may be damaged; re-download it")
            }
        }
        out.removeSubrange(produced...)
        return out
    }

    /// The first `limit` uncompressed bytes of a file, gzipped (by its magic) or not, for probing
    /// a header without inflating the whole file. Corruption past what is inflated is not
    /// noticed here (the full read reports it).
    ///
    /// - Throws: ``DataError`` when the file cannot be read or its start is not valid gzip data.
    public static func readPrefix(atPath path: String, limit: Int) throws -> [UInt8] {
        let raw = try readRawFile(atPath: path)
        guard isGzip(raw) else { return Array(raw.prefix(limit)) }
        var out = [UInt8](repeating: 0, count: max(limit, 1))
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError(file: path, problem: "cannot initialise zlib")
        }
        defer { inflateEnd(&stream) }
        let produced: Int = try raw.withUnsafeBufferPointer { input in
            try out.withUnsafeMutableBufferPointer { o in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress!)
                stream.avail_in = UInt32(input.count)
                stream.next_out = o.baseAddress!
                stream.avail_out = UInt32(o.count)
                let rc = inflate(&stream, Z_NO_FLUSH)
                guard rc == Z_OK || rc == Z_STREAM_END || rc == Z_BUF_ERROR else {
                    throw DataError(file: path, problem: "corrupt gzip data at its start", hint: "the file may be damaged; re-download it")
                }
                return o.count - Int(stream.avail_out)
            }
        }
        return Array(out.prefix(produced))
    }

    /// Compresses bytes into a single-member gzip file (RFC 1952) with zlib's deflate.
    ///
    /// - Parameters:
    ///   - bytes: the data.
    ///   - level: zlib compression level 0...9 (default 6, as `gzip`).
    /// - Returns: the complete `.gz` file contents.
    public static func compress(_ bytes: [UInt8], level: Int32 = 6) -> [UInt8] {
        var stream = z_stream()
        let rc = deflateInit2_(&stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY,
                               ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size))
        precondition(rc == Z_OK, "Gzip.compress: deflateInit2 returned \(rc)")
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(bytes.count))) + 64)
        var produced = 0
        bytes.withUnsafeBufferPointer { input in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress ?? UnsafePointer(bitPattern: 1)!)
            stream.avail_in = UInt32(input.count)
            while true {
                if produced == out.count { out.append(contentsOf: repeatElement(0, count: max(out.count, 1 << 12))) }
                let r = out.withUnsafeMutableBufferPointer { o -> Int32 in
                    stream.next_out = o.baseAddress! + produced
                    let room = o.count - produced
                    stream.avail_out = UInt32(room)
                    let r = deflate(&stream, Z_FINISH)
                    produced += room - Int(stream.avail_out)
                    return r
                }
                if r == Z_STREAM_END { break }
                precondition(r == Z_OK || r == Z_BUF_ERROR, "Gzip.compress: deflate returned \(r)")
            }
        }
        out.removeSubrange(produced...)
        return out
    }

    /// Reads a whole file, inflating it when its content starts with the gzip magic bytes.
    ///
    /// - Throws: ``DataError`` when the file cannot be opened or read, or its gzip data is bad.
    public static func readFile(atPath path: String) throws -> [UInt8] {
        let raw = try readRawFile(atPath: path)
        return isGzip(raw) ? try decompress(raw, file: path) : raw
    }

    /// Reads a whole file as is (no decompression).
    ///
    /// - Throws: ``DataError`` naming the file and the system's reason (no such file,
    ///   permission denied, is a directory, ...).
    public static func readRawFile(atPath path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw DataError(file: path, problem: "cannot open file: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw DataError(file: path, problem: "cannot stat file: \(String(cString: strerror(errno)))")
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw DataError(file: path, problem: "is a directory, not a file")
        }
        var out = [UInt8](repeating: 0, count: max(Int(st.st_size), 0))
        var filled = 0
        while true {
            if filled == out.count { out.append(contentsOf: repeatElement(0, count: max(out.count, 1 << 16))) }
            let n = out.withUnsafeMutableBufferPointer { b in read(fd, b.baseAddress! + filled, b.count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                throw DataError(file: path, problem: "read failed: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            filled += n
        }
        out.removeSubrange(filled...)
        return out
    }
}
