import Foundation
import ConjureData
import CConjureKernels
#if canImport(Glibc)
import Glibc
#endif

/// Signals during training. SIGINT, SIGTERM and SIGHUP (a closed terminal) finish the current
/// step, write a checkpoint and stop. SIGPIPE is ignored: a closed stdout or stderr (`conjure
/// train ... | head`) must not stop training, and writes to it fail with EPIPE, which
/// ``Console`` drops.
///
/// The signals never interrupt a step: the training thread blocks them and polls them between
/// steps (`conjure_stop_signals_install`, `conjure_stop_signal`), and the pool's workers block
/// them. A handler running on a thread inside oneDNN 2.6's JIT sgemm corrupts the heap (the
/// kernels point the stack pointer into it; oneDNN issue #4845), and a Swift closure as handler
/// called into the Swift runtime, which is not async-signal-safe either.
enum Interrupt {
    /// The signal that asked training to stop (0 when none).
    static var signalNumber: Int32 { conjure_stop_signal() }
    static var requested: Bool { signalNumber != 0 }

    static func install() {
        conjure_stop_signals_install()
        signal(SIGPIPE, SIG_IGN)
    }

    static func uninstall() {
        conjure_stop_signals_uninstall()
        // SIGPIPE stays ignored: output written after training (the summary) may still meet
        // a closed pipe, and an ignored SIGPIPE turns that into a harmless EPIPE.
    }
}

/// Console output that never stops the process: lines go to standard error with `write(2)`;
/// a closed stream (EPIPE, EIO of a hung-up terminal) loses the line, not the run.
public enum Console {
    /// Writes `line` and a newline to standard error, ignoring failures.
    public static func error(_ line: String) { write(line + "\n") }

    /// Writes `text` as it is to standard error, ignoring failures.
    public static func write(_ text: String) {
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { raw in
            var p = raw.baseAddress!
            var left = raw.count
            while left > 0 {
                let n = Glibc.write(STDERR_FILENO, p, left)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                p += n
                left -= n
            }
        }
    }
}

/// An advisory lock (`flock(2)`, exclusive, non-blocking) that one process holds on a run for
/// its whole life, so a run folder has one writer.
///
/// The lock is a hidden file beside the run folder, `PARENT/.NAME.lock`, holding the holder's
/// PID: beside, not inside, because a new run's folder does not exist until it is promoted,
/// and `--overwrite` replaces the folder. The file is removed on release; a file left by a
/// killed process is free (the kernel drops a dead process's locks) and is taken over.
final class RunLock {
    let path: String
    let run: String
    private var fd: Int32
    /// The runs folder when this lock created it: removed again on release if still empty, so a
    /// run refused before it wrote anything leaves no trace.
    private let createdParent: String?

    /// Takes the lock of the run folder `runDirectory`.
    ///
    /// - Throws: ``ConfigError`` naming the run and the holder's PID when another process holds
    ///   it; ``DataError`` when the lock file cannot be created.
    init(runDirectory: String) throws {
        run = runDirectory
        let parent = (runDirectory as NSString).deletingLastPathComponent
        let name = (runDirectory as NSString).lastPathComponent
        path = (parent.isEmpty ? "." : parent) + "/.\(name).lock"
        createdParent = parent.isEmpty || FileManager.default.fileExists(atPath: parent) ? nil : parent
        try AtomicFile.createParentDirectories(of: path)
        while true {
            let f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            if f < 0 {
                throw DataError(file: path, problem: "cannot create the run's lock file: \(String(cString: strerror(errno)))")
            }
            if flock(f, LOCK_EX | LOCK_NB) != 0 {
                let e = errno
                let holder = RunLock.readPID(f)
                close(f)
                if e == EWOULDBLOCK {
                    throw ConfigError(option: "--name", problem: "the run \(runDirectory) is in use by another conjure process"
                                      + (holder.map { " (PID \($0))" } ?? ""),
                                      hint: "wait for it to finish, or stop it (it writes a checkpoint on SIGINT)")
                }
                throw DataError(file: path, problem: "cannot lock: \(String(cString: strerror(e)))")
            }
            // A releasing holder unlinks the file after we opened it: then our lock is on a
            // file nobody else will open; start again with the path's current file.
            var mine = stat(), current = stat()
            if fstat(f, &mine) == 0 && stat(path, &current) == 0 && mine.st_ino == current.st_ino && mine.st_dev == current.st_dev {
                fd = f
                break
            }
            close(f)
        }
        let text = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
    }

    private static func readPID(_ f: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(f, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Removes the lock file and releases the lock (also done on deinit).
    func release() {
        guard fd >= 0 else { return }
        unlink(path)
        close(fd)
        fd = -1
        if let p = createdParent { rmdir(p) }  // only succeeds when empty
    }

    deinit { release() }
}

/// The run folder of one training process: the lock, the staging folder of a new run, its
/// promotion once the first checkpoint is durable, and removal of what dead processes left.
///
/// A new run is built in `PARENT/.NAME.tmp-PID-RANDOM` (itself `flock`ed) and becomes
/// `PARENT/NAME` only after its first checkpoint is on disk (written, fsynced, renamed, the
/// directory fsynced): a run that fails or is killed before that leaves the folder it would
/// replace (`--overwrite`) as it was, and a stale staging folder that the next start removes.
final class RunDirectory {
    /// The run folder as the user named it (`runs/NAME`).
    let target: String
    /// Where files go now: the staging folder until ``promote()``, then ``target``.
    private(set) var current: String
    /// The staging folder while the run is not promoted.
    private(set) var staging: String?
    let lock: RunLock
    private var stagingFD: Int32 = -1

    /// Locks `target` and removes stale temporary files and staging folders of it (saying so
    /// through `log`).
    ///
    /// - Throws: ``ConfigError`` when another process holds the run.
    init(target: String, log: (String) -> Void) throws {
        self.target = target
        current = target
        lock = try RunLock(runDirectory: target)
        removeStale(log: log)
    }

    deinit { if stagingFD >= 0 { close(stagingFD) } }

    /// Creates (and locks) the staging folder of a new run; files go there until promotion.
    func stage() throws {
        let parent = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        let path = (parent.isEmpty ? "." : parent) + "/.\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try AtomicFile.createDirectory(path)
        stagingFD = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if stagingFD < 0 || flock(stagingFD, LOCK_EX | LOCK_NB) != 0 {
            throw DataError(file: path, problem: "cannot lock the staging folder: \(String(cString: strerror(errno)))")
        }
        staging = path
        current = path
    }

    /// Moves the staged run into place, replacing an old run (`--overwrite`) in one atomic
    /// exchange where the file system allows it; the old run is removed afterwards. Call only
    /// when the staging folder holds a durable checkpoint. Does nothing once promoted.
    ///
    /// - Throws: ``DataError`` naming the run when a rename or flush fails (the staging
    ///   folder and any old run are then left as they were).
    func promote() throws {
        guard let stage = staging else { return }
        try RunDirectory.syncTree(stage)
        let fm = FileManager.default
        var old: String?
        if fm.fileExists(atPath: target) {
            if RunDirectory.exchange(stage, target) {
                old = stage  // the old run now sits at the staging path
            } else {
                // No exchange: move the old run aside under a name the stale-file cleanup leaves alone.
                let aside = (target as NSString).deletingLastPathComponent + "/.\((target as NSString).lastPathComponent).old-\(getpid())"
                guard rename(target, aside) == 0 else {
                    throw DataError(file: target, problem: "cannot move the old run aside: \(String(cString: strerror(errno)))")
                }
                guard rename(stage, target) == 0 else {
                    let e = errno
                    _ = rename(aside, target)
                    throw DataError(file: target, problem: "cannot move the new run into place: \(String(cString: strerror(e)))")
                }
                old = aside
            }
        } else if rename(stage, target) != 0 {
            throw DataError(file: target, problem: "cannot move the staged run into place: \(String(cString: strerror(errno)))")
        }
        RunDirectory.syncDirectory((target as NSString).deletingLastPathComponent)
        staging = nil
        current = target
        if let old { try? fm.removeItem(atPath: old) }
    }

    /// Removes the staging folder (a run that failed before promotion) and returns `error` as
    /// the user should see it: a ``DataError`` about a file in the removed staging folder names
    /// the run's own path instead and says that the new run was not created.
    func discard(after error: Error) -> Error {
        guard let stage = staging else { return error }
        try? FileManager.default.removeItem(atPath: stage)
        staging = nil
        guard var e = error as? DataError, e.file.hasPrefix(stage + "/") else { return error }
        e.file = target + e.file.dropFirst(stage.count)
        e.hint = (e.hint.map { $0 + "; " } ?? "") + "the new run was not created"
        return e
    }

    /// `renameat2(RENAME_EXCHANGE)`: swaps two paths atomically (Linux 3.15+; looked up at run
    /// time as Swift's Glibc module does not declare it). False when not available.
    static func exchange(_ a: String, _ b: String) -> Bool {
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return false }
        let f = unsafeBitCast(sym, to: RenameAt2.self)
        return f(AT_FDCWD, a, AT_FDCWD, b, 1 << 1) == 0
    }

    /// fsyncs a directory (errors of file systems that cannot are ignored).
    static func syncDirectory(_ path: String) {
        let fd = open(path.isEmpty ? "." : path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { _ = fsync(fd); close(fd) }
    }

    /// fsyncs every file and folder under `root` (a staging folder is small: config, metrics,
    /// a few grids and the checkpoint), so the promoted run is durable as a whole.
    static func syncTree(_ root: String) throws {
        let fm = FileManager.default
        var paths = [root]
        for item in (fm.enumerator(atPath: root)?.allObjects as? [String]) ?? [] { paths.append(root + "/" + item) }
        for p in paths {
            let fd = open(p, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let rc = fsync(fd)
            let e = errno
            close(fd)
            if rc != 0 && e != EINVAL && e != ENOTSUP && e != EROFS && e != EBADF {
                throw DataError(file: p, problem: "cannot flush to disk (fsync): \(String(cString: strerror(e)))")
            }
        }
    }

    /// Removes what dead writers of this run left: staging folders `.NAME.tmp-*` whose lock is
    /// free, and temporary files `.*.tmp-*` inside the run folder (we hold the run's lock, so
    /// no live process is writing them).
    private func removeStale(log: (String) -> Void) {
        let fm = FileManager.default
        let parent = (target as NSString).deletingLastPathComponent
        let dir = parent.isEmpty ? "." : parent
        let name = (target as NSString).lastPathComponent
        for entry in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] where entry.hasPrefix(".\(name).tmp-") {
            let path = dir + "/" + entry
            let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else { continue }
            let free = flock(fd, LOCK_EX | LOCK_NB) == 0
            if free { try? fm.removeItem(atPath: path) }
            close(fd)
            if free { log("removed \(path): the staging folder of a run that did not finish (its process is gone)") }
        }
        for sub in ["", "/checkpoints", "/samples"] {
            let folder = target + sub
            for entry in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where entry.hasPrefix(".") && entry.contains(".tmp-") {
                let path = folder + "/" + entry
                let size = ((try? fm.attributesOfItem(atPath: path))?[.size] as? Int) ?? 0
                if (try? fm.removeItem(atPath: path)) != nil {
                    log("removed \(path) (\(size) bytes): a temporary file of a write that did not finish")
                }
            }
        }
    }
}
