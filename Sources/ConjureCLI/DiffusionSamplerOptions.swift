import ArgumentParser
import ConjureModels
import Foundation

/// `conjure sample` options of models that sample by a reverse diffusion process (the
/// ``DiffusionSampling`` capability), and the progress line shown while they sample.
struct DiffusionSamplerOptions: ParsableArguments {
    @Option(help: "Diffusion models: sampler, ddpm (ancestral, all T steps) or ddim (default: the run's, ddim).") var sampler: String?
    @Option(parsing: .unconditional, help: "Diffusion models: DDIM steps (default: the run's, 50).") var steps: Int?
    @Option(parsing: .unconditional, help: "Diffusion models: DDIM eta, 0 deterministic to 1 (default 0).") var eta: Double?
    @Option(parsing: .unconditional, help: "Conditional diffusion models: classifier-free guidance weight w, eps = (1+w) eps(x,y) - w eps(x) (default: the run's).") var guidance: Double?

    /// Sets the sampler of `model` from the options given and a progress line on standard
    /// error; the noise of stochastic samplers is seeded with `seed`.
    ///
    /// - Throws: ``ConfigError`` for an option the model does not take or a bad value.
    func apply(to model: any GenerativeModel, seed: UInt64) throws {
        guard let diffusion = model as? any DiffusionSampling else {
            let given = [("--sampler", sampler != nil), ("--steps", steps != nil), ("--eta", eta != nil), ("--guidance", guidance != nil)]
            if let g = given.first(where: { $0.1 }) {
                throw ConfigError(option: g.0, problem: "applies to diffusion models only; this checkpoint's model (\(model.family)) samples in one pass")
            }
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
