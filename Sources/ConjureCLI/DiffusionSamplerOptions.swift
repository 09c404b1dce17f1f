import ArgumentParser
import ConjureModels
import Foundation

/// `conjure sample` and `conjure evaluate` options of models that sample by a reverse diffusion
/// process (the ``DiffusionSampling`` capability), and the progress line shown while they
/// sample.
struct DiffusionSamplerOptions: ParsableArguments {
    @Option(help: "Diffusion models: sampler, ddpm (ancestral, all T steps) or ddim (default: the run's, ddim).") var sampler: String?
    @Option(parsing: .unconditional, help: "Diffusion models: DDIM steps (default: the run's, 50).") var steps: Int?
    @Option(parsing: .unconditional, help: "Diffusion models: DDIM eta, 0 deterministic to 1 (default 0).") var eta: Double?
    @Option(parsing: .unconditional, help: "Conditional diffusion models: classifier-free guidance weight w, eps = (1+w) eps(x,y) - w eps(x) (default: the run's).") var guidance: Double?

    /// Sets the sampler of `model` from the options given and a progress line on standard
    /// error; the noise of stochastic samplers is seeded with `seed`.
    ///
    /// - Throws: ``ConfigError`` for a bad value, or for any of these options when `model` is
    ///   not a diffusion model (a GAN, a VAE, a text model).
    func apply(to model: any GenerativeModel, seed: UInt64) throws {
        guard let diffusion = model as? any DiffusionSampling else {
            let given = [("--sampler", sampler != nil), ("--steps", steps != nil), ("--eta", eta != nil), ("--guidance", guidance != nil)]
            if let g = given.first(where: { $0.1 }) { throw DiffusionSamplerOptions.notDiffusion(g.0, model) }
            return
        }
        var s = diffusion.samplerSettings
        if let v = sampler {
            guard let k = DiffusionSamplerKind(rawValue: v.lowercased()) else { throw ConfigError(option: "--sampler", problem: "expected ddpm or ddim, got '\(v)'") }
            s.kind = k
        }
        if let v = steps {
            if s.kind == .ddpm { throw ConfigError(option: "--steps", problem: "DDPM ancestral sampling runs all T steps", hint: "use --sampler ddim for fewer steps") }
            s.steps = v
        }
        if let v = eta {
            if s.kind == .ddpm { throw ConfigError(option: "--eta", problem: "is a DDIM setting", hint: "use --sampler ddim") }
            s.eta = v
        }
        if let v = guidance { s.guidance = v }
        try diffusion.setSampler(s)
        let d = diffusion
        d.samplingNoiseSeed = seed
        let start = Date()
        let terminal = isatty(2) != 0
        var lastShown = 0.0
        d.samplingProgress = { done, total in
            let elapsed = Date().timeIntervalSince(start)
            guard done == total || elapsed - lastShown >= (terminal ? 0.2 : 10) else { return }
            lastShown = elapsed
            let line = String(format: "sampling (%@): step %d/%d, %.1f s", diffusion.samplerDescription, done, total, elapsed)
            writeStandardError(((terminal ? "\r" : "") + line + (terminal && done < total ? "" : "\n")))
        }
    }
}

extension DiffusionSamplerOptions {
    /// The error for a diffusion option given for `model`, which is not a diffusion model.
    static func notDiffusion(_ option: String, _ model: any GenerativeModel) -> ConfigError {
        ConfigError(option: option, problem: "applies to diffusion models only; this checkpoint's model (\(model.family)) does not sample by reverse diffusion")
    }

    /// Samples `z` with `model`'s sampler and arranges `columns` states of each sample's reverse
    /// process, evenly spaced from `x_T` to `x_0` (the first and the last always included), as
    /// rows of a grid: row i is sample i.
    ///
    /// - Shapes: `z` `[N, D]` → `[N·columns, D]`, sample-major.
    static func trajectoryGrid(_ model: any DiffusionSampling, z: Tensor, labels: [Int]?, columns: Int) -> Tensor {
        var states: [Tensor] = []
        _ = model.sample(z: z, labels: labels) { _, x in states.append(x) }
        let n = z.shape[0], d = z.shape[1]
        let picked = (0..<columns).map { j in Int((Double(j) * Double(states.count - 1) / Double(columns - 1)).rounded()) }
        var out = [Float](repeating: 0, count: n * columns * d)
        for i in 0..<n {
            for (j, s) in picked.enumerated() {
                let row = states[s].scalars[(i * d)..<((i + 1) * d)]
                let o = (i * columns + j) * d
                out.replaceSubrange(o..<(o + d), with: row)
            }
        }
        return Tensor(shape: [n * columns, d], scalars: out)
    }
}

/// `conjure sample --trajectory`: a diffusion model's reverse process as a PNG grid.
struct TrajectoryOption: ParsableArguments {
    @Option(parsing: .unconditional, help: "Diffusion models: write the reverse process instead, one row per sample and this many columns from x_T (noise) to x_0, evenly spaced over the sampler's steps (PNG output, 2 to 1001).") var trajectory: Int?

    /// Checks the column count, and that `model` is a diffusion model when the option is given.
    ///
    /// - Throws: ``ConfigError`` naming `--trajectory`.
    func check(for model: any GenerativeModel) throws {
        guard let k = trajectory else { return }
        if !(2...1001).contains(k) { throw ConfigError(option: "--trajectory", problem: "must be between 2 and 1001 columns, got \(k)") }
        if !(model is any DiffusionSampling) { throw DiffusionSamplerOptions.notDiffusion("--trajectory", model) }
    }
}
