import Foundation
import XCTest
import ConjureData
import ConjureModels
import ConjureTensor
import ConjureTestSupport
@testable import ConjureTraining

/// Run folders under concurrency and faults (issue 15, items 1-7): one writer per run, a run
/// appears only with a durable checkpoint, stale files of dead writers are removed, full disks
/// and closed outputs give one clear error or none, and a changed data file is noticed.
final class RunFolderTests: XCTestCase {
    var tmp: URL!
    var mounted: String?

    override func setUpWithError() throws {
        tmp = try makeTemporaryDirectory("runs")
    }

    override func tearDownWithError() throws {
        if let m = mounted { _ = run("/bin/umount", [m]) }
        try? FileManager.default.removeItem(at: tmp)
    }

    @discardableResult
    func run(_ exe: String, _ args: [String]) -> (status: Int32, out: String, err: String) {
        guard let r = try? runProcess(URL(fileURLWithPath: exe), args, in: tmp) else { return (-1, "", "cannot run \(exe)") }
        return (r.status, r.out, r.err)
    }

    func conjure(_ args: [String]) -> (status: Int32, out: String, err: String) { run(conjureBinary.path, args) }

    func start(_ args: [String]) throws -> Process {
        let p = Process()
        p.executableURL = conjureBinary
        p.arguments = args
        p.currentDirectoryURL = tmp
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    /// Waits until `path` exists (a run's lock file or checkpoint), at most `seconds`.
    func waitFor(_ path: String, seconds: Double = 60) -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if FileManager.default.fileExists(atPath: path) { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return false
    }

    var digits: String { get throws { try sharedPath("data/digits_8x8.csv.gz").path } }
    let small = ["--g-hidden", "16,16", "--d-hidden", "16,16", "--noise-dim", "8", "--batch-size", "32", "--quiet"]

    /// Mounts a tmpfs of `megabytes` at tmp/mnt (needs root: a full disk cannot be faked
    /// faithfully otherwise). Throws XCTSkip, saying so, when mounting is not permitted.
    func smallDisk(megabytes: Int) throws -> String {
        let m = tmp.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: m, withIntermediateDirectories: true)
        let r = run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", m])
        guard r.status == 0 else { throw XCTSkip("cannot mount a tmpfs here (needs root): \(r.err)") }
        mounted = m
        return m
    }

    /// Fills the file system of `dir` up to `leave` free bytes.
    func fill(_ dir: String, leave: Int) throws {
        var st = statvfs()
        XCTAssertEqual(statvfs(dir, &st), 0)
        let free = Int(st.f_bavail) * Int(st.f_frsize)
        let fd = open(dir + "/filler", O_WRONLY | O_CREAT, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 1, count: 65536)
        var left = free - leave
        while left > 0 {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min(left, chunk.count)) }
            if n <= 0 { break }
            left -= n
        }
    }

    // MARK: item 1: one writer

    func testASecondWriterOfARunStopsAtOnceNamingTheRunAndTheHolder() throws {
        let holder = try start(["train", "--data", try digits, "--name", "busy", "--epochs", "2000", "--checkpoint-every", "20"] + small)
        defer { if holder.isRunning { holder.terminate(); holder.waitUntilExit() } }
        XCTAssert(waitFor(tmp.appendingPathComponent("runs/busy/checkpoints/latest.safetensors").path), "the holder writes its first checkpoint")
        for args in [["train", "--data", try digits, "--name", "busy"] + small,
                     ["train", "--data", try digits, "--name", "busy", "--overwrite"] + small,
                     ["train", "--name", "busy", "--resume", "--quiet"]] {
            let began = Date()
            let r = conjure(args)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssert(r.err.contains("runs/busy") && r.err.contains("PID \(holder.processIdentifier)"), "\(args): \(r.err)")
            XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
            XCTAssertLessThan(Date().timeIntervalSince(began), 10, "exits at once")
        }
        holder.interrupt()
        holder.waitUntilExit()
        XCTAssertEqual(holder.terminationStatus, 130)
        // The lock goes with its holder: the run can be resumed, and no lock file is left.
        let r = conjure(["train", "--name", "busy", "--resume", "--max-steps", "1", "--quiet"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: tmp.appendingPathComponent("runs").path), ["busy"])
    }

    // MARK: items 2, 3 and 5: nothing lost on a full disk

    /// A full disk at the new run's first checkpoint: with --overwrite the old run is kept
    /// whole (the old code moved the staging folder in, deleting the old run, before writing).
    func testOverwriteKeepsTheOldRunUntilTheNewOneHasADurableCheckpoint() throws {
        let disk = try smallDisk(megabytes: 8)
        let runs = disk + "/runs"
        let r0 = conjure(["train", "--data", try digits, "--runs-dir", runs, "--name", "keep", "--epochs", "1"] + small)
        XCTAssertEqual(r0.status, 0, r0.err)
        let ckpt = runs + "/keep/checkpoints/latest.safetensors"
        let before = try Data(contentsOf: URL(fileURLWithPath: ckpt))
        try fill(disk, leave: 48 * 1024)
        // A bigger model: config and metrics fit, the checkpoint does not.
        let r = conjure(["train", "--data", try digits, "--runs-dir", runs, "--name", "keep", "--overwrite", "--epochs", "1",
                         "--g-hidden", "256,256", "--d-hidden", "256,256", "--sample-every", "0", "--quiet"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssert(r.err.contains("No space left on device"), r.err)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        // The run's own path, not the staging folder that is gone by now.
        XCTAssert(r.err.contains(ckpt) && !r.err.contains(".tmp-") && r.err.contains("the new run was not created"), r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ckpt)), before, "the old run is intact")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: runs).sorted(), ["keep"], "no staging folder or lock file left")
        XCTAssertNoThrow(try Checkpoint.read(path: ckpt))
    }

    /// A full disk while appending to the TensorBoard event file, then (with
    /// `--no-tensorboard`) to metrics.jsonl: each one error line (no Swift fatal error) naming
    /// the file, a non-zero exit, the last checkpoint intact and loadable, no half-written line
    /// or record, no empty event file left.
    func testAFullDiskWhileLoggingIsOneErrorAndKeepsTheLastCheckpoint() throws {
        let disk = try smallDisk(megabytes: 4)
        let runs = disk + "/runs"
        let r0 = conjure(["train", "--data", try digits, "--runs-dir", runs, "--name", "full", "--max-steps", "40", "--log-every", "10"] + small)
        XCTAssertEqual(r0.status, 0, r0.err)
        let ckpt = runs + "/full/checkpoints/latest.safetensors"
        let before = try Data(contentsOf: URL(fileURLWithPath: ckpt))
        let events = TensorBoardEventFile.existing(in: runs + "/full")
        XCTAssertEqual(events.count, 1)
        let eventBytes = try Data(contentsOf: URL(fileURLWithPath: runs + "/full/" + events[0]))
        try fill(disk, leave: 0)
        let tb = conjure(["train", "--runs-dir", runs, "--name", "full", "--resume", "--max-steps", "2000", "--log-every", "1", "--checkpoint-every", "100000", "--quiet"])
        XCTAssertEqual(tb.status, 1, tb.err)
        XCTAssert(tb.err.hasPrefix("error: ") && tb.err.contains("events.out.tfevents.") && tb.err.contains("No space left on device"), tb.err)
        XCTAssertEqual(tb.err.split(separator: "\n").count, 1, tb.err)
        XCTAssertEqual(TensorBoardEventFile.existing(in: runs + "/full"), events, "no empty event file left")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: runs + "/full/" + events[0])), eventBytes)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ckpt)), before)
        let r = conjure(["train", "--runs-dir", runs, "--name", "full", "--resume", "--max-steps", "2000", "--log-every", "1", "--checkpoint-every", "100000", "--quiet", "--no-tensorboard"])
        XCTAssertEqual(r.status, 1, r.err)
        XCTAssert(r.err.hasPrefix("error: ") && r.err.contains("metrics.jsonl") && r.err.contains("No space left on device"), r.err)
        XCTAssertFalse(r.err.contains("Fatal error"), r.err)
        XCTAssertEqual(r.err.split(separator: "\n").count, 1, r.err)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: ckpt)), before)
        XCTAssertNoThrow(try Checkpoint.read(path: ckpt))
        let text = try String(contentsOfFile: runs + "/full/metrics.jsonl", encoding: .utf8)
        XCTAssert(text.hasSuffix("\n"))
        for line in text.split(separator: "\n") {
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)), String(line))
        }
        // Space again: the run resumes from its last checkpoint.
        try FileManager.default.removeItem(atPath: disk + "/filler")
        let again = conjure(["train", "--runs-dir", runs, "--name", "full", "--resume", "--max-steps", "60", "--quiet"])
        XCTAssertEqual(again.status, 0, again.err)
    }

    // MARK: item 4: stale files of dead writers

    func testStaleTemporaryFilesAndStagingFoldersAreRemovedAtTheNextStart() throws {
        var config = GANConfig.ganPreset
        config.generatorHidden = [16, 16]
        config.generatorBatchNorm = [false, true]
        config.discriminatorHidden = [16, 16]
        config.noiseDim = 8
        config.batchSize = 32
        config.epochs = 1
        var o = TrainOptions(runDirectory: tmp.appendingPathComponent("runs/s").path, model: config)
        o.data = try digits
        o.maxSteps = 10
        o.progress = .quiet
        _ = try Trainer(options: o, log: { _ in }).run()
        let fm = FileManager.default
        let runs = tmp.appendingPathComponent("runs").path
        let staleFile = runs + "/s/checkpoints/.latest.safetensors.tmp-99999-abc"
        try Data(count: 1000).write(to: URL(fileURLWithPath: staleFile))
        let staleStage = runs + "/.s.tmp-99999-1"
        try fm.createDirectory(atPath: staleStage + "/checkpoints", withIntermediateDirectories: true)
        try Data(count: 10).write(to: URL(fileURLWithPath: staleStage + "/config.json"))
        // A staging folder whose lock is held is someone's live work: kept.
        let liveStage = runs + "/.s.tmp-99998-2"
        try fm.createDirectory(atPath: liveStage, withIntermediateDirectories: true)
        let fd = open(liveStage, O_RDONLY | O_DIRECTORY)
        XCTAssertEqual(flock(fd, LOCK_EX | LOCK_NB), 0)
        defer { close(fd) }
        var resumed = o
        resumed.resume = true
        resumed.maxSteps = 20
        var lines: [String] = []
        _ = try Trainer(options: resumed, log: { lines.append($0) }).run()
        XCTAssertFalse(fm.fileExists(atPath: staleFile))
        XCTAssertFalse(fm.fileExists(atPath: staleStage))
        XCTAssert(fm.fileExists(atPath: liveStage))
        XCTAssert(lines.contains { $0.hasPrefix("removed \(staleFile) (1000 bytes)") }, "\(lines)")
        XCTAssert(lines.contains { $0.hasPrefix("removed \(staleStage)") }, "\(lines)")
    }

    // MARK: item 6: hang-ups and closed outputs

    func testSIGHUPWritesACheckpointAndStopsLikeSIGINT() throws {
        let p = try start(["train", "--data", try digits, "--name", "hup", "--epochs", "2000", "--checkpoint-every", "20"] + small)
        // Training is under way (its signal handlers installed) once the first checkpoint exists.
        XCTAssert(waitFor(tmp.appendingPathComponent("runs/hup/checkpoints/latest.safetensors").path))
        kill(p.processIdentifier, SIGHUP)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit, "not killed by the signal")
        XCTAssertEqual(p.terminationStatus, 130)
        let ckpt = tmp.appendingPathComponent("runs/hup/checkpoints/latest.safetensors").path
        XCTAssertGreaterThan(try Checkpoint.read(path: ckpt).progress.step, 0)
    }

    /// Stop signals never interrupt a product. oneDNN 2.6's JIT sgemm kernels point the stack
    /// pointer into the heap while they run (oneDNN issue #4845), so a handler running inside one
    /// wrote its signal frame over heap memory: a training stopped by SIGTERM in its first steps
    /// aborted in about 1 run in 10 (`free(): invalid size`). With the stop signals installed, a
    /// stream of SIGTERMs at the process while oneDNN products run on the training thread and the
    /// pool leaves every product's result as it was and the heap intact, and the first is reported.
    func testStopSignalsNeverInterruptAProduct() throws {
        var rng = RandomGenerator(seed: 17)
        let x = Tensor.randomUniform([64, 784], low: -1, high: 1, using: &rng)
        // An NN product at batch 64: oneDNN runs it on the kernel that moves the stack pointer.
        let w = Tensor.randomUniform([784, 1024], low: -1, high: 1, using: &rng)
        let backend = try XCTUnwrap(MatrixBackend.loaded("onednn"))
        defer { Parallel.setThreads(1) }
        for threads in [1, 2] {
            Parallel.setThreads(threads)
            MatrixBackend.with(backend) {
                let reference = Tensor.matmul(x, w).scalars
                Interrupt.install()
                XCTAssertFalse(Interrupt.requested)
                let sent = DispatchSemaphore(value: 0)
                Thread.detachNewThread {
                    for _ in 0..<300 { kill(getpid(), SIGTERM); usleep(300) }
                    sent.signal()
                }
                var products = 0, differing = 0
                while sent.wait(timeout: .now()) == .timedOut {
                    if Tensor.matmul(x, w).scalars != reference { differing += 1 }
                    products += 1
                }
                XCTAssertEqual(Interrupt.signalNumber, SIGTERM, "\(threads) threads")
                Interrupt.uninstall()
                XCTAssertGreaterThan(products, 10, "\(threads) threads")
                XCTAssertEqual(differing, 0, "\(threads) threads: \(differing) of \(products) products changed")
            }
        }
    }

    /// `conjure train ... | head`: stdout and stderr closed by the reader must not stop
    /// training (SIGPIPE is ignored and EPIPE on console writes is dropped).
    func testClosedStdoutAndStderrDoNotStopTraining() throws {
        let p = Process()
        p.executableURL = conjureBinary
        p.arguments = ["train", "--data", try digits, "--name", "pipe", "--max-steps", "300", "--log-every", "1", "--plain",
                       "--g-hidden", "16,16", "--d-hidden", "16,16", "--noise-dim", "8", "--batch-size", "32"]
        p.currentDirectoryURL = tmp
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try out.fileHandleForReading.close()
        try err.fileHandleForReading.close()
        try p.run()
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit, "not killed by SIGPIPE")
        XCTAssertEqual(p.terminationStatus, 0)
        let ckpt = tmp.appendingPathComponent("runs/pipe/checkpoints/latest.safetensors").path
        XCTAssertEqual(try Checkpoint.read(path: ckpt).progress.step, 300)
    }

    // MARK: item 7: the data file's contents

    func testResumeRefusesADataFileWhoseContentsChangedUnlessAllowed() throws {
        let file = tmp.appendingPathComponent("points.csv").path
        var rows = (0..<200).map { i in "\(Double(i % 17) / 4),\(Double(i % 5) - 2.5),\(Double(i % 7) / 3 + 0.1)" }
        try rows.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        var config = GANConfig.ganPreset
        config.generatorHidden = [8]
        config.generatorBatchNorm = [false]
        config.discriminatorHidden = [8]
        config.noiseDim = 2
        config.batchSize = 20
        config.epochs = 2
        var o = TrainOptions(runDirectory: tmp.appendingPathComponent("runs/d").path, model: config)
        o.data = file
        o.maxSteps = 5
        o.progress = .quiet
        _ = try Trainer(options: o, log: { _ in }).run()
        let saved = try Checkpoint.read(path: o.runDirectory + "/checkpoints/latest.safetensors").run
        XCTAssertEqual(saved.dataSHA256, KnownDataSets.contentSHA256(path: file))
        // Same count, same ranges, one value changed.
        rows[7] = "1.5,0.5,1.0"
        try rows.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        var resumed = TrainOptions(runDirectory: o.runDirectory, model: config)
        resumed.resume = true
        resumed.maxSteps = 10
        resumed.progress = .quiet
        XCTAssertThrowsError(try Trainer(options: resumed, log: { _ in }).run()) { error in
            let text = "\(error)"
            XCTAssert(text.contains(file) && text.contains("contents changed") && text.contains("--allow-data-change"), text)
        }
        resumed.allowDataChange = true
        var lines: [String] = []
        XCTAssertEqual(try Trainer(options: resumed, log: { lines.append($0) }).run().steps, 10)
        XCTAssert(lines.contains { $0.contains("changed since the run started") }, "\(lines)")
        // The new contents are now the run's own.
        XCTAssertEqual(try Checkpoint.read(path: o.runDirectory + "/checkpoints/latest.safetensors").run.dataSHA256,
                       KnownDataSets.contentSHA256(path: file))
    }
}
