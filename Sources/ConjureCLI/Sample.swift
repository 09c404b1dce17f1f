import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw samples from a trained generator.")
    @Option(help: "A checkpoint written by `conjure train`.") var checkpoint: String
    @Option(parsing: .unconditional, help: "Number of samples.") var count: Int = 64
    @Option(parsing: .unconditional, help: "Seed of the latent z.") var seed: UInt64 = 0
    @Option(help: "Output: X.png (a grid) or X.npy (float32 [N, C, H, W] or [N, D] in the data's own units).") var out: String
    @Option(parsing: .unconditional, help: "Grid columns (PNG; default ceil(sqrt(count))).") var columns: Int?
    @Option(parsing: .unconditional, help: "Class to generate (conditional models; default: classes in turn).") var label: Int?
    @OptionGroup var sampler: DiffusionSamplerOptions
    @OptionGroup var pool: ThreadsOption

    func run() {
        runReporting {
            try pool.apply()
            guard count >= 1 && count <= 1_000_000 else { throw ConfigError(option: "--count", problem: "must be between 1 and 1000000, got \(count)") }
            let ext = (out as NSString).pathExtension.lowercased()
            guard ext == "png" || ext == "npy" else { throw ConfigError(option: "--out", problem: "'\(out)' must end in .png or .npy") }
            if ext == "png" && count > 4096 { throw ConfigError(option: "--count", problem: "a PNG grid holds at most 4096 samples; write .npy for more") }
            if let c = columns, c < 1 { throw ConfigError(option: "--columns", problem: "must be at least 1, got \(c)") }
            let loaded = try Checkpoint.read(path: checkpoint)
            var rng = RandomStream.sampling.generator(seed: seed)
            let z = Tensor.randomNormal([count, loaded.run.model.latentDim], using: &rng)
            let k = loaded.run.model.conditionalClasses
            if let label, k == 0 { throw ConfigError(option: "--label", problem: "the model is not conditional (label \(label) given)") }
            if let label, label < 0 || label >= k { throw ConfigError(option: "--label", problem: "must be in 0..<\(k), got \(label)") }
            try sampler.apply(to: loaded.model, seed: seed)
            let samples = loaded.model.sample(z: z, labels: label.map { [Int](repeating: $0, count: count) } ?? loaded.model.balancedLabels(count, offset: 0))
            if ext == "npy" {
                let units = loaded.run.normalization.inverse(samples)
                let shaped = units.reshaped([count] + loaded.run.spec.sampleShape)
                try NPYWriter.write(shaped, to: out, createDirectories: true)
            } else {
                guard let shape = loaded.run.spec.imageShape else {
                    throw ConfigError(option: "--out", problem: "the model's samples are not images (the data is \(loaded.run.spec))", hint: "write .npy instead")
                }
                try writeGrid(samples, shape: shape, stats: loaded.run.normalization, to: out, columns: columns)
            }
            print("wrote \(count) samples to \(out)")
        }
    }
}
