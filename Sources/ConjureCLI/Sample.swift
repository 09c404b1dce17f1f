import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

struct Sample: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Draw samples from a trained generator.")
    @Option(help: "A checkpoint written by `conjure train`, or a weights-only safetensors file (e.g. PyTorch's save_file(model.state_dict()); then --config, see docs/pytorch.md).") var checkpoint: String
    @Option(help: "For a weights-only --checkpoint: the run configuration, RUN/config.json or a checkpoint of the same run (default: the file's own 'config' metadata).") var config: String?
    @Option(parsing: .unconditional, help: "Number of samples (default 64; with --z, the file's rows).") var count: Int?
    @Option(parsing: .unconditional, help: "Seed of the latent z (and of the noise stochastic diffusion samplers add).") var seed: UInt64 = 0
    @Option(help: "Read the latent z from this .npy (float32 or float64) instead of drawing it: [N, latentDim] (GANs, VAEs), or for diffusion models x_T as [N, latentDim], [N, C, H, W] or [N, C, T]. N replaces --count. Without it z is drawn as N(0, 1): xoshiro256** seeded by SplitMix64 from --seed (stream 3), values in row-major order, each pair from two 64-bit draws by Box-Muller (cos, then sin); see docs/pytorch.md. Diffusion: only DDIM with eta 0 is a function of z alone; DDPM and eta > 0 also add per-step noise seeded by --seed.") var z: String?
    @Option(help: "Write the latent z used (drawn or read) to this .npy, float32 [N, latentDim]; written last, only when sampling succeeded, and never the --out or --z file.") var saveZ: String?
    @Option(help: "Output: X.png (a grid; spectrograms for sound), X.npy (float32 [N, C, H, W], [N, C, T] or [N, D] in the data's own units), X.txt for text models (one sample a line in lines mode, blocks in stream mode); for sound also X.wav (all samples in one file, --gap seconds apart) or a folder DIR/ (one WAV file per sample).") var out: String
    @Option(parsing: .unconditional, help: "Sound into one .wav: seconds of silence between samples (default 0.25).") var gap: Double?
    @Option(parsing: .unconditional, help: "Grid columns (PNG; default ceil(sqrt(count))).") var columns: Int?
    @Option(parsing: .unconditional, help: "Class to generate (conditional models; default: classes in turn).") var label: Int?
    @OptionGroup var text: TextSampleOptions
    @OptionGroup var sampler: DiffusionSamplerOptions
    @OptionGroup var trajectory: TrajectoryOption
    @OptionGroup var pool: ThreadsOption
    @OptionGroup var matrixBackend: BackendOption

    func run() {
        runReporting {
            try pool.apply()
            try matrixBackend.apply()
            if let count = self.count, !(count >= 1 && count <= 1_000_000) { throw ConfigError(option: "--count", problem: "must be between 1 and 1000000, got \(count)") }
            if let path = saveZ, !path.lowercased().hasSuffix(".npy") { throw ConfigError(option: "--save-z", problem: "'\(path)' must end in .npy") }
            if let path = saveZ, Sample.samePath(path, out) {
                throw ConfigError(option: "--save-z", problem: "'\(path)' is also --out; the samples would replace the latent", hint: "write z to another file")
            }
            if let path = saveZ, let zPath = self.z, Sample.samePath(path, zPath) {
                throw ConfigError(option: "--save-z", problem: "'\(path)' is also --z, the file being read", hint: "--z's file already holds the latent; leave --save-z out or name another file")
            }
            let ext = (out as NSString).pathExtension.lowercased()
            if ext == "txt" || text.anyGiven {
                // A text model (a capability, not a family): tokens drawn one at a time.
                if ext != "txt" { throw ConfigError(option: "--out", problem: "'\(out)' must end in .txt for text sampling options") }
                let loaded = try SamplingWeights.read(path: checkpoint, config: config)
                for note in loaded.notes { writeStandardError(note + "\n") }
                if let option = self.z != nil ? "--z" : saveZ != nil ? "--save-z" : nil {
                    throw ConfigError(option: option, problem: "a text model has no latent z (it draws characters from its own stream, seeded by --seed)")
                }
                if let label { throw ConfigError(option: "--label", problem: "a text model is not conditioned on a class (label \(label) given); start its samples with --prompt") }
                let count = self.count ?? 64
                guard let model = loaded.model as? any TokenSequenceModel else {
                    throw ConfigError(option: "--out", problem: "the checkpoint's model (\(loaded.run.model.preset)) does not generate text", hint: "write .png or .npy")
                }
                try trajectory.check(for: model)
                try sampler.apply(to: model, seed: seed)
                var rng = RandomStream.textGeneration.generator(seed: seed)
                let texts = try model.generate(count: count, options: try text.options(), rng: &rng)
                try TextSampleWriter.write(texts, to: out, layout: model.textMode == .lines ? .lines : .defaultBlocks, createDirectories: true)
                print("wrote \(count) samples to \(out)")
                return
            }
            let folderOut = out.hasSuffix("/")
            guard ext == "png" || ext == "npy" || ext == "wav" || folderOut else {
                throw ConfigError(option: "--out", problem: "'\(out)' must end in .png or .npy (.txt for text models; .wav or a folder ending in / for sound models)")
            }
            if let g = gap, !(g >= 0 && g <= 60) { throw ConfigError(option: "--gap", problem: "must be between 0 and 60 seconds, got \(g)") }
            if gap != nil && ext != "wav" { throw ConfigError(option: "--gap", problem: "applies to a .wav output only") }
            if let c = columns, c < 1 { throw ConfigError(option: "--columns", problem: "must be at least 1, got \(c)") }
            let loaded = try SamplingWeights.read(path: checkpoint, config: config)
            for note in loaded.notes { writeStandardError(note + "\n") }
            if loaded.model is any TokenSequenceModel {
                if let option = self.z != nil ? "--z" : saveZ != nil ? "--save-z" : nil {
                    throw ConfigError(option: option, problem: "a text model has no latent z (it draws characters from its own stream, seeded by --seed)")
                }
                if let label { throw ConfigError(option: "--label", problem: "a text model is not conditioned on a class (label \(label) given); start its samples with --prompt") }
                throw ConfigError(option: "--out", problem: "a text model's samples are text", hint: "write X.txt")
            }
            let sampleRate: Int? = { if case .sequence = loaded.run.spec { return loaded.run.audio?.sampleRate }; return nil }()
            if (ext == "wav" || folderOut) && sampleRate == nil {
                throw ConfigError(option: "--out", problem: "the model's samples are not sound (the data is \(loaded.run.spec)\(loaded.run.audio == nil ? ", not read from an audio folder" : ""))", hint: "write .png or .npy")
            }
            let z: Tensor
            if let path = self.z {
                z = try Sample.readLatent(path: path, latentDim: loaded.run.model.latentDim,
                                          sampleShape: loaded.model is any DiffusionSampling ? loaded.run.spec.sampleShape : nil)
                if let count = self.count, count != z.shape[0] {
                    throw ConfigError(option: "--count", problem: "is \(count) but --z '\(path)' holds \(z.shape[0]) latents", hint: "leave --count out with --z")
                }
            } else {
                var rng = RandomStream.sampling.generator(seed: seed)
                z = Tensor.randomNormal([self.count ?? 64, loaded.run.model.latentDim], using: &rng)
            }
            let count = z.shape[0]
            if ext == "png" && count > 4096 { throw ConfigError(option: "--count", problem: "a PNG grid holds at most 4096 samples; write .npy for more") }
            let k = loaded.run.model.conditionalClasses
            if let label, k == 0 { throw ConfigError(option: "--label", problem: "the model is not conditional (label \(label) given)") }
            if let label, label < 0 || label >= k { throw ConfigError(option: "--label", problem: "must be in 0..<\(k), got \(label)") }
            try trajectory.check(for: loaded.model)
            try sampler.apply(to: loaded.model, seed: seed)
            if let columns = trajectory.trajectory {
                guard ext == "png", let shape = loaded.run.spec.imageShape, let diffusion = loaded.model as? any DiffusionSampling else {
                    throw ConfigError(option: "--trajectory", problem: "draws a diffusion model's images as a PNG grid (the output is '\(out)', the data is \(loaded.run.spec))")
                }
                let grid = DiffusionSamplerOptions.trajectoryGrid(diffusion, z: z, labels: label.map { [Int](repeating: $0, count: count) } ?? loaded.model.balancedLabels(count, offset: 0), columns: columns)
                try checkFiniteSamples(grid, checkpoint: checkpoint, latents: self.z)
                try writeGrid(grid, shape: shape, stats: loaded.run.normalization, to: out, columns: columns)
                if let path = saveZ { try NPYWriter.write(z, to: path, createDirectories: true) }
                print("wrote the reverse process of \(count) samples (\(columns) states each, x_T to x_0) to \(out)")
                return
            }
            let samples = loaded.model.sample(z: z, labels: label.map { [Int](repeating: $0, count: count) } ?? loaded.model.balancedLabels(count, offset: 0))
            try checkFiniteSamples(samples, checkpoint: checkpoint, latents: self.z)
            if let rate = sampleRate, ext == "wav" || folderOut || ext == "png" {
                let clips = AudioSampleOutput.clips(samples, spec: loaded.run.spec, stats: loaded.run.normalization)
                var clipped = 0
                if ext == "png" {
                    try Spectrogram.writeGridPNG(clips: clips, path: out, columns: columns, createDirectories: true)
                } else if ext == "wav" {
                    clipped = try AudioSampleOutput.writeConcatenated(clips, sampleRate: rate, gap: gap ?? 0.25, to: out)
                } else {
                    clipped = try AudioSampleOutput.writeFolder(clips, sampleRate: rate, folder: String(out.dropLast())).clipped
                }
                if clipped > 0 { writeStandardError("note: \(clipped) sample values beyond full scale were clipped to 16-bit PCM\n") }
            } else if ext == "npy" {
                let units = loaded.run.normalization.inverse(samples)
                let shaped = units.reshaped([count] + loaded.run.spec.sampleShape)
                try NPYWriter.write(shaped, to: out, createDirectories: true)
            } else {
                guard let shape = loaded.run.spec.imageShape else {
                    throw ConfigError(option: "--out", problem: "the model's samples are not images (the data is \(loaded.run.spec))", hint: "write .npy instead")
                }
                try writeGrid(samples, shape: shape, stats: loaded.run.normalization, to: out, columns: columns)
            }
            // The latent is written last, once every option has been checked and the samples are
            // written, so a failing run leaves no --save-z file behind.
            if let path = saveZ { try NPYWriter.write(z, to: path, createDirectories: true) }
            print("wrote \(count) samples to \(out)")
        }
    }
}

extension Sample {
    /// Whether the paths `a` and `b` name the same file (after making them absolute, removing
    /// `.`/`..` components and resolving symbolic links of existing parts); case-sensitive, as
    /// Linux file systems are.
    static func samePath(_ a: String, _ b: String) -> Bool {
        func canonical(_ p: String) -> String {
            URL(fileURLWithPath: p).standardizedFileURL.resolvingSymlinksInPath().path
        }
        return canonical(a) == canonical(b)
    }

    /// The latent `z` of `--z`: a float32 or float64 `.npy` of shape `[N, latentDim]` or, for a
    /// diffusion model (`sampleShape` given), `[N] + sampleShape` (`x_T`), returned as
    /// `[N, latentDim]` Float32.
    ///
    /// - Throws: ``ConfigError`` naming `--z` and the file for another dtype, a wrong shape, no
    ///   rows or a non-finite value; ``DataError`` when the file cannot be read.
    static func readLatent(path: String, latentDim: Int, sampleShape: [Int]?) throws -> Tensor {
        let array = try NPYReader.read(path: path)
        func bad(_ problem: String) -> ConfigError { ConfigError(option: "--z", problem: "'\(path)' \(problem)") }
        guard array.dtype == .float32 || array.dtype == .float64 else {
            throw bad("holds \(array.dtype.rawValue) values; a latent is float32 or float64")
        }
        let t = array.tensor, shape = t.shape
        let accepted = [[latentDim]] + (sampleShape.map { [$0] } ?? [])
        guard shape.count >= 2, shape[0] >= 1, accepted.contains(Array(shape.dropFirst())) else {
            throw bad("has shape \(shape); expected [N, \(latentDim)]\(sampleShape.map { " or [N, \($0.map(String.init).joined(separator: ", "))] (x_T)" } ?? "") with N >= 1")
        }
        guard shape[0] <= 1_000_000 else { throw bad("holds \(shape[0]) latents; at most 1000000") }
        if let i = t.scalars.firstIndex(where: { !$0.isFinite }) {
            throw bad("element \(i) (row \(i / latentDim)) is \(t.scalars[i]); a latent must be finite")
        }
        return t.reshaped([shape[0], latentDim])
    }
}

/// `conjure sample` options of text models.
struct TextSampleOptions: ParsableArguments {
    @Option(parsing: .unconditional, help: "Text: softmax temperature (0: greedy; default 1).") var temperature: Float?
    @Option(parsing: .unconditional, help: "Text: sample from the k most likely characters.") var topK: Int?
    @Option(parsing: .unconditional, help: "Text: nucleus sampling, the most likely characters up to probability p.") var topP: Float?
    @Option(help: "Text: every sample starts with this text.") var prompt: String?
    @Option(parsing: .unconditional, help: "Text: characters per sample, prompt included (lines mode: at most; stream mode default 256).") var maxLength: Int?

    /// Whether any text option was given.
    var anyGiven: Bool { temperature != nil || topK != nil || topP != nil || prompt != nil || maxLength != nil }

    /// The generation settings.
    ///
    /// - Throws: ``ConfigError`` naming a value out of range.
    func options() throws -> GenerationOptions {
        let o = GenerationOptions(temperature: temperature ?? 1, topK: topK, topP: topP, prompt: prompt ?? "", maxLength: maxLength)
        try o.validate()
        return o
    }
}
