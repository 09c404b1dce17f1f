import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Crash-safe file output: a reader of the destination sees either the old file or the complete
/// new one, never a half-written file.
///
/// The protocol is the usual POSIX one:
/// 1. create a temporary file with a unique name in the destination's directory
///    (`.NAME.tmp-PID-RANDOM`, so that the final `rename` does not cross file systems);
/// 2. write all bytes and `fsync` the temporary file;
/// 3. `rename(2)` it over the destination (atomic on POSIX file systems);
/// 4. `fsync` the directory so that the rename itself is durable.
///
/// On any failure before the rename, the temporary file is removed, the destination is left
/// untouched and a ``DataError`` naming the destination is thrown. A temporary file of the same
/// destination left by a writer that was killed (its PID no longer exists) is removed by the next
/// write.
public enum AtomicFile {

    /// A sink for the bytes of a file being written by ``AtomicFile/write(to:createDirectories:_:)``.
    ///
    /// Writes go straight to the temporary file (no buffering), so pass reasonably large chunks.
    public struct Writer {
        fileprivate let fd: Int32
        fileprivate let destination: String
        /// Number of bytes written so far.
        public private(set) var bytesWritten: Int = 0

        fileprivate init(fd: Int32, destination: String) {
            self.fd = fd
            self.destination = destination
        }

        /// Appends raw bytes.
        ///
        /// - Throws: ``DataError`` naming the destination when the write fails (disk full, I/O error).
        public mutating func write(_ buffer: UnsafeRawBufferPointer) throws {
            guard var p = buffer.baseAddress, buffer.count > 0 else { return }
            var remaining = buffer.count
            while remaining > 0 {
                let n = posixWrite(fd, p, remaining)
                if n < 0 {
                    let e = errno
                    if e == EINTR { continue }
                    throw DataError(file: destination, location: "byte \(bytesWritten)",
                                    problem: "cannot write: \(errnoText(e))",
                                    hint: e == ENOSPC ? "free some disk space" : nil)
                }
                if n == 0 {
                    throw DataError(file: destination, location: "byte \(bytesWritten)",
                                    problem: "cannot write: the system wrote 0 bytes")
                }
                p += n
                remaining -= n
                bytesWritten += n
            }
        }

        /// Appends the bytes of an array.
        public mutating func write(_ bytes: [UInt8]) throws {
            try bytes.withUnsafeBytes { try write($0) }
        }

        /// Appends the bytes of a `Data` value.
        public mutating func write(_ data: Data) throws {
            try data.withUnsafeBytes { try write($0) }
        }
    }

    /// Writes `data` to `path` atomically (temporary file, fsync, rename, directory fsync).
    ///
    /// - Parameters:
    ///   - data: the complete new contents of the file.
    ///   - path: the destination; an existing file there is replaced.
    ///   - createDirectories: create missing parent directories first (default `false`).
    /// - Throws: ``DataError`` naming `path` when the directory does not exist or is not
    ///   writable, the disk is full, or the rename fails (for example because `path` is a
    ///   directory). No temporary file is left behind.
    public static func write(_ data: Data, to path: String, createDirectories: Bool = false) throws {
        try write(to: path, createDirectories: createDirectories) { w in try w.write(data) }
    }

    /// Writes `bytes` to `path` atomically. Same contract as the `Data` overload.
    public static func write(_ bytes: [UInt8], to path: String, createDirectories: Bool = false) throws {
        try write(to: path, createDirectories: createDirectories) { w in try w.write(bytes) }
    }

    /// Streams a file to `path` atomically: `body` writes the contents through a ``Writer``;
    /// the file appears at `path` only if `body` returns normally and every step succeeds.
    ///
    /// - Parameters:
    ///   - path: the destination; an existing file there is replaced.
    ///   - createDirectories: create missing parent directories first (default `false`).
    ///   - body: writes the bytes. If it throws, the temporary file is removed, the
    ///     destination is left untouched and the error is rethrown unchanged.
    /// - Throws: ``DataError`` naming `path` for any file-system failure, or what `body` throws.
    public static func write(to path: String, createDirectories: Bool = false,
                             _ body: (inout Writer) throws -> Void) throws {
        guard !path.isEmpty else {
            throw DataError(file: path, problem: "cannot write: empty file name")
        }
        // Write through a symbolic link to its target (replacing the link itself would break
        // it), and refuse to replace anything that is not a regular file (a FIFO, a device).
        var path = path
        var st = stat()
        if lstat(path, &st) == 0 {
            if (st.st_mode & S_IFMT) == S_IFLNK {
                path = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
                if stat(path, &st) != 0 { st = stat() }
            }
            let kind = st.st_mode & S_IFMT
            if kind != 0 && kind != S_IFREG {
                throw DataError(file: path, problem: kind == S_IFDIR ? "is a directory" : "is not a regular file",
                                hint: "choose a file path to write to")
            }
        }
        if createDirectories { try createParentDirectories(of: path) }
        let (directory, name) = splitPath(path)
        removeStaleTemporaries(directory: directory, name: name)
        let tempPath = uniqueTemporaryPath(directory: directory, name: name)

        let fd = tempPath.withCString { open($0, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o666) }
        if fd < 0 {
            let e = errno
            throw DataError(file: path, problem: "cannot create a temporary file in \(directory): \(errnoText(e))",
                            hint: e == ENOENT ? "the directory does not exist; create it first" : nil)
        }
        var fdOpen = true
        func cleanUp() {
            if fdOpen { _ = close(fd); fdOpen = false }
            _ = tempPath.withCString { unlink($0) }
        }

        do {
            var writer = Writer(fd: fd, destination: path)
            try body(&writer)
            if fsync(fd) != 0 {
                let e = errno
                throw DataError(file: path, problem: "cannot flush to disk (fsync): \(errnoText(e))")
            }
            let rc = close(fd)
            fdOpen = false
            if rc != 0 {
                let e = errno
                throw DataError(file: path, problem: "cannot close the temporary file: \(errnoText(e))")
            }
            let renamed = tempPath.withCString { t in path.withCString { d in rename(t, d) } }
            if renamed != 0 {
                let e = errno
                throw DataError(file: path, problem: "cannot replace the file (rename): \(errnoText(e))",
                                hint: e == EISDIR ? "the destination is a directory" : nil)
            }
        } catch {
            cleanUp()
            throw error
        }

        // The data is in place; make the rename durable. Some file systems do not support
        // fsync on a directory (EINVAL/ENOTSUP); that is not an error of this write.
        let dfd = directory.withCString { open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        if dfd >= 0 {
            let rc = fsync(dfd)
            let e = errno
            _ = close(dfd)
            if rc != 0 && e != EINVAL && e != ENOTSUP && e != EROFS {
                throw DataError(file: path, problem: "file written, but the directory could not be flushed to disk (fsync): \(errnoText(e))")
            }
        }
    }

    /// Creates the directory that will hold `path` and any missing ancestors
    /// (like `mkdir -p "$(dirname path)"`). Does nothing if it already exists.
    ///
    /// - Throws: ``DataError`` naming `path` when a directory cannot be created (for example
    ///   because a component is an existing regular file, or permission is denied).
    public static func createParentDirectories(of path: String) throws {
        let (directory, _) = splitPath(path)
        try createDirectory(directory, for: path)
    }

    /// Creates the directory `path` and any missing ancestors (like `mkdir -p path`).
    ///
    /// - Throws: ``DataError`` naming `path` when it cannot be created or exists as a file.
    public static func createDirectory(_ path: String) throws {
        try createDirectory(path, for: path)
    }

    private static func createDirectory(_ directory: String, for path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDir) {
            if isDir.boolValue { return }
            throw DataError(file: path, problem: "cannot create directory \(directory): a file with that name exists")
        }
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw DataError(file: path, problem: "cannot create directory \(directory): \(error.localizedDescription)")
        }
    }

    /// Splits a path into (directory, file name); the directory is "." for a bare name.
    private static func splitPath(_ path: String) -> (String, String) {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return (".", String(p)) }
        let dir = p[..<slash]
        return (dir.isEmpty ? "/" : String(dir), String(p[p.index(after: slash)...]))
    }

    /// The destination's name as used in its temporary files' names (at most 200 bytes, so that
    /// `.NAME.tmp-PID-RANDOM` stays within NAME_MAX).
    private static func temporaryBase(_ name: String) -> String {
        name.utf8.count > 200 ? String(decoding: Array(name.utf8.prefix(200)), as: UTF8.self) : name
    }

    /// Removes the temporary files `.NAME.tmp-PID-RANDOM` of this destination that a writer
    /// killed before its rename left (Ctrl-C or SIGKILL during `conjure export` or `sample`):
    /// regular files only, and only when process PID no longer exists (`kill(PID, 0)` fails with
    /// `ESRCH`), so a live writer's file is never touched. Best effort: failures are ignored.
    private static func removeStaleTemporaries(directory: String, name: String) {
        let prefix = ".\(temporaryBase(name)).tmp-"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return }
        for entry in entries where entry.hasPrefix(prefix) {
            let rest = entry.dropFirst(prefix.count)
            guard let dash = rest.firstIndex(of: "-"), let pid = Int32(rest[..<dash]), pid > 0, pid != getpid(),
                  !rest[rest.index(after: dash)...].isEmpty, rest[rest.index(after: dash)...].allSatisfy(\.isHexDigit) else { continue }
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            let full = directory == "/" ? "/" + entry : directory + "/" + entry
            var st = stat()
            guard lstat(full, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            _ = unlink(full)
        }
    }

    private static func uniqueTemporaryPath(directory: String, name: String) -> String {
        // Keep the temporary name within NAME_MAX (255) even for long destination names.
        let base = temporaryBase(name)
        let random = String(UInt64.random(in: 0 ... UInt64.max), radix: 16)
        let file = ".\(base).tmp-\(getpid())-\(random)"
        return directory == "/" ? "/" + file : directory + "/" + file
    }
}

/// `write(2)`, reachable under a name that does not clash with `AtomicFile.Writer.write`.
private func posixWrite(_ fd: Int32, _ p: UnsafeRawPointer, _ n: Int) -> Int {
    write(fd, p, n)
}

private func errnoText(_ e: Int32) -> String {
    String(cString: strerror(e))
}
