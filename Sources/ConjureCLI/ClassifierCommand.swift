import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

struct ClassifierCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "classifier", abstract: "Train or apply the domain classifier used to judge samples.",
                                                    subcommands: [TrainClassifier.self, Score.self])

    struct TrainClassifier: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "train", abstract: "Train the domain classifier on a labelled data set and save it (safetensors): an MLP for images and vectors, a CNN on log-magnitude spectrograms for a folder of sound files (FSDD: held out by its own test split).")
        @Option(help: "Labelled data (e.g. data/mnist_5k.csv.gz).") var data: String
        @Option(help: "Output .safetensors file.") var out: String = "classifier.safetensors"
        @Option(parsing: .unconditional, help: "Epochs.") var epochs: Int = 30
        @Option(parsing: .unconditional, help: "Held-out fraction for the reported accuracy (stratified; a data set with its own split, FSDD, uses that when > 0).") var heldOut: Double = 0.1
        @Option(parsing: .unconditional, help: "Seed.") var seed: UInt64 = 0
        @Option(parsing: .unconditional, help: "CSV label column.") var labelColumn: String?
        @OptionGroup(title: "Audio folder options") var audio: AudioDataOptions
        @OptionGroup var pool: ThreadsOption

        func run() {
            runReporting {
                try pool.apply()
                guard epochs >= 1 else { throw ConfigError(option: "--epochs", problem: "must be at least 1") }
                guard (0..<1).contains(heldOut) else { throw ConfigError(option: "--held-out", problem: "must be in [0, 1)") }
                let start = Date()
                let t = try ClassifierTool.train(data: data, epochs: epochs, heldOut: heldOut, seed: seed,
                                                 labelColumn: labelColumn.map { ColumnSelector(parsing: $0) },
                                                 audio: try audio.apply(to: TrainOptions(runDirectory: "", model: GANConfig.ganPreset).audio)) { epoch, total, loss in
                    // One progress line per epoch on stderr (stdout keeps the result line).
                    writeStandardError(String(format: "classifier epoch %d/%d  loss %.4f  %.1fs\n",
                                              epoch, total, loss, Date().timeIntervalSince(start)))
                }
                try ClassifierTool.save(t, to: out)
                print(String(format: "held-out accuracy %.4f (train %.4f); saved %@", t.heldOutAccuracy, t.trainAccuracy, out))
            }
        }
    }

    struct Score: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Score samples (.npy in the data's units): fraction classified with confidence >= threshold, and the class histogram.")
        @Option(help: "Classifier file.") var classifier: String
        @Option(help: "Samples .npy [N, ...].") var samples: String
        @Option(help: "Confidence threshold.") var threshold: Double = 0.9

        func run() {
            runReporting {
                let loaded = try ClassifierTool.load(path: classifier)
                let x = try NPYReader.load(path: samples)
                guard x.rank >= 2, x.count / max(x.shape[0], 1) == loaded.classifier.inputDim else {
                    throw DataError(file: samples, problem: "samples of shape \(x.shape) do not match the classifier's \(loaded.classifier.inputDim) inputs")
                }
                guard threshold > 0 && threshold <= 1 else { throw ConfigError(option: "--threshold", problem: "must be in (0, 1], got \(threshold)") }
                if let i = x.scalars.firstIndex(where: { !$0.isFinite }) {
                    throw DataError(file: samples, location: "element \(i)", problem: "contains NaN or infinite values")
                }
                try Evaluator.checkScale(x, stats: loaded.normalization, file: samples)
                let s = ClassifierTool.score(loaded, samples: x, threshold: threshold)
                let enc = JSONEncoder()
                enc.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try enc.encode(s), as: UTF8.self))
            }
        }
    }
}
