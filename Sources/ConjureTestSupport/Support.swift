import Foundation
import XCTest
import ConjureTensor

/// The package root (the folder holding Package.swift).
public let packageRoot: URL = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }  // Sources/ConjureTestSupport/Support.swift -> root
    return url
}()

/// The shared folder: `$CONJURE_SHARED` when set (a folder of the same layout, for example with
/// fixture folders of other seeds and shapes written by scripts/make_gan_step_fixture.py), else
/// `../shared` next to the package root; nil when absent. No other place is tried.
public let sharedDir: URL? = {
    let env = ProcessInfo.processInfo.environment["CONJURE_SHARED"].flatMap { $0.isEmpty ? nil : $0 }
    let candidate = env.map { URL(fileURLWithPath: $0) } ?? packageRoot.deletingLastPathComponent().appendingPathComponent("shared")
    return FileManager.default.fileExists(atPath: candidate.path) ? candidate : nil
}()

/// A test's need of ../shared that is not met: a failure, never a skip, so that a missing
/// fixture cannot pass unseen (in CI or anywhere).
public struct MissingSharedFile: Error, CustomStringConvertible {
    /// The path asked for, relative to ../shared.
    public var path: String
    /// A missing `path`.
    public init(path: String) { self.path = path }
    /// What is missing.
    public var description: String { "../shared/\(path) is missing (expected at \(packageRoot.deletingLastPathComponent().path)/shared): the fixture tests need it" }
}

/// `../shared/rel`.
///
/// - Throws: ``MissingSharedFile`` when ../shared or the file is absent.
public func sharedPath(_ rel: String) throws -> URL {
    guard let dir = sharedDir else { throw MissingSharedFile(path: rel) }
    let url = dir.appendingPathComponent(rel)
    guard FileManager.default.fileExists(atPath: url.path) else { throw MissingSharedFile(path: rel) }
    return url
}

/// NaN-aware closeness: |a - b| <= atol + rtol * |b| element-wise; reports the worst element.
public func assertClose(_ a: [Float], _ b: [Float], rtol: Float = 1e-4, atol: Float = 1e-6, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(message): counts differ", file: file, line: line)
    var worst: (Int, Float) = (-1, 0)
    for i in 0..<min(a.count, b.count) {
        if a[i].isNaN && b[i].isNaN { continue }
        let err = abs(a[i] - b[i])
        let excess = err - (atol + rtol * abs(b[i]))
        if !(excess <= 0) && (worst.0 < 0 || excess > worst.1 || excess.isNaN) { worst = (i, excess) }
    }
    if worst.0 >= 0 {
        XCTFail("\(message): element \(worst.0): \(a[worst.0]) vs expected \(b[worst.0])", file: file, line: line)
    }
}

/// Tensor form of the array `assertClose` above: the shapes must be equal, then each element
/// satisfies `|a - b| <= atol + rtol * |b|` (NaN matches NaN).
public func assertClose(_ a: Tensor, _ b: Tensor, rtol: Float = 1e-4, atol: Float = 1e-6, _ message: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, "\(message): shapes differ", file: file, line: line)
    assertClose(a.scalars, b.scalars, rtol: rtol, atol: atol, message, file: file, line: line)
}

/// Central finite-difference check of `f` (a scalar function of the inputs) against the
/// autodiff gradients. The loss is a random projection of the output so every output element
/// matters; differences are taken on Double sums of Float32 evaluations with step `h`.
public func checkGradients(_ inputs: [Tensor], h: Float = 1e-2, rtol: Double = 2e-2, atol: Double = 2e-3,
                    file: StaticString = #filePath, line: UInt = #line, _ f: ([Tensor]) -> Tensor) {
    var rng = RandomGenerator(seed: 1234)
    let leaves = inputs.map { $0.requiringGrad() }
    let out0 = f(leaves)
    let proj = Tensor.randomNormal(out0.shape, using: &rng)
    func loss(_ xs: [Tensor]) -> Double {
        let y = f(xs)  // inputs are constants; f may differentiate internally
        var s = 0.0
        for (a, b) in zip(y.scalars, proj.scalars) { s += Double(a) * Double(b) }
        return s
    }
    let grads = Tensor.gradients(of: out0, seed: proj, wrt: leaves)
    for (k, x) in inputs.enumerated() {
        for i in 0..<x.count {
            var plus = inputs, minus = inputs
            plus[k].withMutableScalars { $0[i] += h }
            minus[k].withMutableScalars { $0[i] -= h }
            let numeric = (loss(plus) - loss(minus)) / (2 * Double(h))
            let analytic = Double(grads[k].scalars[i])
            if abs(numeric - analytic) > atol + rtol * abs(numeric) {
                XCTFail("gradient of input \(k) element \(i): autodiff \(analytic), finite difference \(numeric)", file: file, line: line)
                return
            }
        }
    }
}

/// Minimal reader for the fixtures' `<f4` C-order .npy files (format 1.0/2.0).
public func loadFixtureNPY(_ url: URL) throws -> Tensor {
    let data = try Data(contentsOf: url)
    let bytes = [UInt8](data)
    let major = bytes[6]
    let headerLen = major == 1 ? Int(bytes[8]) | Int(bytes[9]) << 8
        : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
    let start = major == 1 ? 10 : 12
    let header = String(decoding: bytes[start..<(start + headerLen)], as: UTF8.self)
    precondition(header.contains("'<f4'") && header.contains("'fortran_order': False"), "unsupported fixture \(url.path): \(header)")
    let shapeText = header.components(separatedBy: "'shape': (")[1].components(separatedBy: ")")[0]
    let shape = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    let n = shape.reduce(1, *)
    var scalars = [Float](repeating: 0, count: n)
    let off = start + headerLen
    _ = scalars.withUnsafeMutableBytes { data.copyBytes(to: $0, from: off..<(off + 4 * n)) }
    return Tensor(shape: shape, scalars: scalars)
}

/// The built `conjure` executable of this build: next to the test bundle (SwiftPM puts products
/// and the test bundle in one folder), else `.build/release/conjure` under the package root.
public let conjureBinary: URL = {
    let main = Bundle.main.bundleURL
    let candidates = [main, main.deletingLastPathComponent(),
                      URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                      packageRoot.appendingPathComponent(".build/release")]
    for dir in candidates where FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("conjure").path) {
        return dir.appendingPathComponent("conjure")
    }
    return packageRoot.appendingPathComponent(".build/release/conjure")
}()

/// What a finished child process left: exit status, how it ended, and its standard output and
/// error as UTF-8 text.
public struct ProcessOutcome {
    /// The exit status (or the signal number when ``reason`` is `.uncaughtSignal`).
    public var status: Int32
    /// Whether the process exited or was killed by a signal.
    public var reason: Process.TerminationReason
    /// Everything written to standard output.
    public var out: String
    /// Everything written to standard error.
    public var err: String
}

/// Runs `executable` with `arguments` in `directory` and waits for it. Standard output and error
/// are read at the same time, so a child that writes much to both never blocks on a full pipe.
///
/// - Throws: the error of `Process.run()` when the executable cannot be started.
public func runProcess(_ executable: URL, _ arguments: [String], in directory: URL) throws -> ProcessOutcome {
    let p = Process()
    p.executableURL = executable
    p.arguments = arguments
    p.currentDirectoryURL = directory
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    final class Box: @unchecked Sendable { var data = Data() }
    let errBox = Box()
    let group = DispatchGroup()
    let errHandle = err.fileHandleForReading
    DispatchQueue.global().async(group: group) { errBox.data = errHandle.readDataToEndOfFile() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let errData = errBox.data
    p.waitUntilExit()
    return ProcessOutcome(status: p.terminationStatus, reason: p.terminationReason,
                          out: String(decoding: outData, as: UTF8.self), err: String(decoding: errData, as: UTF8.self))
}

/// Runs the built `conjure` (``conjureBinary``) with `arguments` in `directory` and asserts that
/// it succeeded (exit 0) or, with `expectFailure`, that it failed; returns its status and output.
///
/// - Throws: when the executable cannot be started.
@discardableResult
public func runConjure(_ arguments: [String], in directory: URL, expectFailure: Bool = false,
                       file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, out: String, err: String) {
    let r = try runProcess(conjureBinary, arguments, in: directory)
    if expectFailure {
        XCTAssertNotEqual(r.status, 0, "\(arguments) should fail", file: file, line: line)
    } else {
        XCTAssertEqual(r.status, 0, "\(arguments) failed: \(r.err)", file: file, line: line)
    }
    return (r.status, r.out, r.err)
}

/// A new empty folder `conjure-PREFIX-UUID` in the system's temporary folder, for one test.
///
/// - Throws: when the folder cannot be created.
public func makeTemporaryDirectory(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("conjure-\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// A problem with a fixture folder's contents (a missing file, a setting of the wrong type).
public struct FixtureError: Error, CustomStringConvertible {
    /// What is wrong, naming the case and file.
    public var description: String
    /// An error saying `description`.
    public init(description: String) { self.description = description }
}

/// The Python of the package's test virtual environment: `$CONJURE_TEST_PYTHON`, else
/// `.build/pyenv/bin/python` (made by `make pyenv`: tensorboard, onnxruntime, onnx).
///
/// - Parameter holding: what the tests need from it, for the message (`the tensorboard package`).
/// - Throws: when it is missing, ``FixtureError`` if `CI` is set, else `XCTSkip`, saying how to get it.
public func pyenvPython(holding what: String) throws -> URL {
    let env = ProcessInfo.processInfo.environment
    let path = env["CONJURE_TEST_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? packageRoot.appendingPathComponent(".build/pyenv/bin/python").path
    if FileManager.default.isExecutableFile(atPath: path) { return URL(fileURLWithPath: path) }
    let message = "no Python with \(what) at \(path): run `make pyenv` (or set CONJURE_TEST_PYTHON)"
    if let ci = env["CI"], !ci.isEmpty { throw FixtureError(description: message) }
    throw XCTSkip(message)
}

/// One case of a fixture folder laid out as ../shared/fixtures/layers and blocks: an entry of
/// `cases.json` (its settings) and the sub-folder of `.npy` files of the same name.
public struct FixtureCase {
    /// The case's name (its key in `cases.json` and its folder).
    public var name: String
    /// The case's settings from `cases.json`.
    public var settings: [String: Any]
    /// The case's folder of `.npy` files.
    public var dir: URL

    /// The tensor in `FILE.npy`. - Throws: ``FixtureError`` when the file is missing.
    public func tensor(_ file: String) throws -> Tensor {
        let url = dir.appendingPathComponent(file + ".npy")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw FixtureError(description: "case \(name): missing \(file).npy in \(dir.path)")
        }
        return try loadFixtureNPY(url)
    }
    /// Whether `FILE.npy` exists.
    public func has(_ file: String) -> Bool { FileManager.default.fileExists(atPath: dir.appendingPathComponent(file + ".npy").path) }
    /// An integer setting. - Throws: ``FixtureError`` when absent or not an integer.
    public func int(_ key: String) throws -> Int {
        guard let v = settings[key] as? Int else { throw FixtureError(description: "case \(name): no integer '\(key)'") }
        return v
    }
    /// A number setting (integers accepted). - Throws: ``FixtureError`` when absent or not a number.
    public func double(_ key: String) throws -> Double {
        guard let v = settings[key] as? Double ?? (settings[key] as? Int).map(Double.init) else {
            throw FixtureError(description: "case \(name): no number '\(key)'")
        }
        return v
    }
    /// A string setting. - Throws: ``FixtureError`` when absent or not a string.
    public func string(_ key: String) throws -> String {
        guard let v = settings[key] as? String else { throw FixtureError(description: "case \(name): no string '\(key)'") }
        return v
    }
    /// A boolean setting. - Throws: ``FixtureError`` when absent or not a boolean.
    public func bool(_ key: String) throws -> Bool {
        guard let v = settings[key] as? Bool else { throw FixtureError(description: "case \(name): no boolean '\(key)'") }
        return v
    }
    /// A shape setting, nil when absent.
    public func shape(_ key: String) -> [Int]? { settings[key] as? [Int] }
    /// The parameter files `param.K.npy` of the case, by state-dict name K.
    /// - Throws: when the folder or a file cannot be read.
    public func parameterFiles() throws -> [String: Tensor] {
        var out: [String: Tensor] = [:]
        for file in try FileManager.default.contentsOfDirectory(atPath: dir.path) where file.hasPrefix("param.") && file.hasSuffix(".npy") {
            let key = String(file.dropFirst(6).dropLast(4))
            out[key] = try tensor("param." + key)
        }
        return out
    }
}

/// Every case of the fixture folder `root` (its `cases.json`), sorted by name.
///
/// - Throws: ``FixtureError`` when `cases.json` is missing or not a JSON object.
public func loadFixtureCases(root: URL) throws -> [FixtureCase] {
    let url = root.appendingPathComponent("cases.json")
    guard FileManager.default.fileExists(atPath: url.path) else { throw FixtureError(description: "\(url.path) is missing") }
    guard let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] else {
        throw FixtureError(description: "\(url.path): not a JSON object")
    }
    return json.keys.sorted().map { FixtureCase(name: $0, settings: json[$0] as? [String: Any] ?? [:], dir: root.appendingPathComponent($0)) }
}

/// A test case that runs the real `conjure` executable in a fresh temporary folder per test
/// (``tmp``, removed afterwards); subclasses name the folder with ``temporaryPrefix``.
open class ConjureCLITestCase: XCTestCase {
    /// This test's working folder.
    public var tmp: URL!
    /// The temporary folder's name prefix (`conjure-PREFIX-UUID`).
    open var temporaryPrefix: String { "cli" }

    /// Makes ``tmp``.
    open override func setUpWithError() throws { tmp = try makeTemporaryDirectory(temporaryPrefix) }
    /// Removes ``tmp``.
    open override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }

    /// ``runConjure(_:in:expectFailure:file:line:)`` in ``tmp``.
    @discardableResult
    public func conjure(_ args: [String], expectFailure: Bool = false, file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, out: String, err: String) {
        try runConjure(args, in: tmp, expectFailure: expectFailure, file: file, line: line)
    }
}
