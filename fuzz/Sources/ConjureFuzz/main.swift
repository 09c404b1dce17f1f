// The libFuzzer entry point for Conjure's readers. One binary serves every reader; the
// environment variable CONJURE_FUZZ_READER (npy | idx | csv | png | safetensors | gzip | wav | text) picks
// the one whose parser gets the input. A reader passes when it returns a value or throws a
// DataError; a trap, a crash, an allocation failure, a hang or a sanitizer report is a finding.
import ConjureData
import Foundation

/// Which reader this process feeds, read once from `CONJURE_FUZZ_READER`.
let fuzzReader: String = {
    let name = ProcessInfo.processInfo.environment["CONJURE_FUZZ_READER"] ?? ""
    let known = ["npy", "idx", "csv", "png", "safetensors", "gzip", "wav", "text"]
    guard known.contains(name) else {
        FileHandle.standardError.write(Data("conjure-fuzz: set CONJURE_FUZZ_READER to one of \(known.joined(separator: ", "))\n".utf8))
        exit(2)
    }
    return name
}()

/// The scratch file of the `wav` reader (one per process).
let wavScratch = NSTemporaryDirectory() + "/conjure-fuzz-\(getpid()).wav"

/// Runs the chosen reader on one input; errors it throws are the expected outcome for bad input.
func fuzzOne(_ bytes: [UInt8]) {
    let file = "<fuzz>"
    do {
        switch fuzzReader {
        case "npy":
            _ = try NPYReader.read(bytes: bytes, file: file)
        case "idx":
            _ = try IDXReader.read(bytes: bytes, file: file)
        case "csv":
            // The first byte picks the options, so header, delimiter and label choices are explored.
            var options = CSVOptions()
            var body = bytes[...]
            if let first = body.first {
                body = body.dropFirst()
                options.header = CSVHeaderPolicy.allCases[Int(first & 3) % CSVHeaderPolicy.allCases.count]
                options.delimiter = [UInt8(ascii: ","), UInt8(ascii: ";"), UInt8(ascii: "\t"), UInt8(ascii: " ")][Int(first >> 2 & 3)]
                switch first >> 4 & 3 {
                case 0: options.labelColumn = nil
                case 1: options.labelColumn = .last
                case 2: options.labelColumn = .index(0)
                default: options.labelColumn = .name("label")
                }
                options.clean = CleanPolicy.allCases[Int(first >> 6) % CleanPolicy.allCases.count]
            }
            _ = try CSVReader.read(bytes: Array(body), file: file, options: options)
        case "png":
            _ = try PNGReader.decode(bytes: bytes, file: file)
        case "safetensors":
            _ = try SafeTensors.decode(bytes, file: file)
        case "wav":
            // libsndfile reads from a path: the input goes to this process's scratch file first.
            let written = bytes.withUnsafeBytes { raw in
                let fd = open(wavScratch, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
                defer { close(fd) }
                return fd >= 0 && write(fd, raw.baseAddress, raw.count) == raw.count
            }
            guard written else { return }
            _ = try AudioFile.read(path: wavScratch)
        case "text":
            // UTF-8 validation, then both text modes' split and encoding (the first byte picks the mode).
            let scalars = try TextCorpus.decodeUTF8(Array(bytes.dropFirst()), file: file)
            let corpus = TextCorpus(source: file, scalars: scalars, byteCount: bytes.count - 1)
            _ = try TextDataset(corpus: corpus, mode: (bytes.first ?? 0) & 1 == 0 ? .lines : .stream)
        default:
            _ = try Gzip.decompress(bytes, file: file)
        }
    } catch is DataError {
        // The expected outcome for a bad input.
    } catch {
        // Any other error type escaping a reader breaks its contract (it must be a DataError).
        FileHandle.standardError.write(Data("conjure-fuzz: non-DataError thrown: \(type(of: error)): \(error)\n".utf8))
        abort()
    }
}

/// libFuzzer's entry point: called once per input.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    fuzzOne(bytes)
    return 0
}

/// libFuzzer's driver (compiler-rt, `FuzzerInterface.h`): parses libFuzzer's flags from argv
/// and runs the loop. Called from here because SwiftPM links debug executables with their own
/// `main` (`--defsym main=conjure_fuzz_main`), which would otherwise hide libFuzzer's.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

_ = fuzzReader  // fail at once on a missing or unknown reader name
var fuzzArgc = CommandLine.argc
var fuzzArgv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&fuzzArgc, &fuzzArgv) { data, size in LLVMFuzzerTestOneInput(data, size) })
