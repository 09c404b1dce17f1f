import Foundation
import ConjureData
import ConjureModels
import ConjureTensor

/// Spherical interpolation grids between fixed latents (images only).
///
/// Row `r` of the 8x8 grid runs from latent `z[2r]` to `z[2r+1]` of the run's fixed latent batch
/// (the `z` of the in-training sample grids: ``RandomStream/fixedLatent`` with the run's seed) in
/// 8 steps `t = 0, 1/7, ..., 1` of slerp (Shoemake 1985; White 2016, "Sampling Generative
/// Networks"). For a diffusion model the latent is the initial noise x_T.
public enum LatentInterpolation {
    /// Rows (pairs of end points) and columns (steps) of the grid.
    public static let rows = 8, columns = 8

    /// `slerp(a, b, t) = sin((1−t)Ω)/sin Ω · a + sin(tΩ)/sin Ω · b` with `cos Ω` the cosine of
    /// the angle between `a` and `b`; linear interpolation when the angle is below 1e-6 rad.
    ///
    /// - Precondition: `a` and `b` have the same length.
    public static func slerp(_ a: [Float], _ b: [Float], _ t: Double) -> [Float] {
        precondition(a.count == b.count, "LatentInterpolation.slerp: lengths \(a.count) and \(b.count) differ")
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in a.indices { dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i]) }
        let cosine = max(-1, min(1, dot / max((na * nb).squareRoot(), 1e-30)))
        let omega = acos(cosine)
        let (wa, wb): (Double, Double) = omega < 1e-6 ? (1 - t, t) : (sin((1 - t) * omega) / sin(omega), sin(t * omega) / sin(omega))
        return a.indices.map { Float(wa * Double(a[$0]) + wb * Double(b[$0])) }
    }

    /// The grid's latents `[64, latentDim]`, row-major (row r, column c at `8r + c`), from the
    /// fixed latent batch of `seed`.
    public static func latents(latentDim: Int, seed: UInt64) -> Tensor {
        var rng = RandomStream.fixedLatent.generator(seed: seed)
        let fixed = Tensor.randomNormal([64, latentDim], using: &rng)  // the sample grids' z
        var out: [Float] = []
        out.reserveCapacity(rows * columns * latentDim)
        for r in 0..<rows {
            let a = Array(fixed.scalars[(2 * r * latentDim)..<((2 * r + 1) * latentDim)])
            let b = Array(fixed.scalars[((2 * r + 1) * latentDim)..<((2 * r + 2) * latentDim)])
            for c in 0..<columns { out += slerp(a, b, Double(c) / Double(columns - 1)) }
        }
        return Tensor(shape: [rows * columns, latentDim], scalars: out)
    }

    /// Samples the grid from `model` and writes it as a PNG (8 columns) in the data's units to
    /// `path`. A conditional model draws row r with class `r mod K`. A diffusion model samples
    /// with DDIM, η = 0 (deterministic in x_T), at most 50 steps; its sampler is restored after.
    ///
    /// - Precondition: the run's data are images.
    /// - Throws: ``DataError`` naming `path` when the PNG cannot be written.
    public static func write(model: any GenerativeModel, run: RunConfig, to path: String) throws {
        guard let shape = run.spec.imageShape else { preconditionFailure("LatentInterpolation.write: the run's data are not images") }
        let z = latents(latentDim: run.model.latentDim, seed: run.model.seed)
        let k = run.model.conditionalClasses
        let labels = k > 0 ? (0..<(rows * columns)).map { ($0 / columns) % k } : nil
        let samples: Tensor
        if let d = model as? any DiffusionSampling {
            let saved = d.samplerSettings
            let steps = saved.kind == .ddim ? min(saved.steps, 50) : 50
            try d.setSampler(DiffusionSamplerSettings(kind: .ddim, steps: steps, eta: 0, guidance: saved.guidance, clipDenoised: saved.clipDenoised))
            samples = d.sample(z: z, labels: labels)
            try d.setSampler(saved)
        } else {
            samples = model.sample(z: z, labels: labels)
        }
        try writeGrid(samples, shape: shape, stats: run.normalization, to: path, columns: columns)
    }
}

/// Writing `report.html` of a run (see ``ReportPage``, ``RunRecord``).
public enum RunReport {
    /// The report's file name in a run folder.
    public static let fileName = "report.html"
    /// The smoothing of the training-time report (TensorBoard's default 0.6).
    public static let defaultSmoothing = 0.6

    /// Whether the interpolation grid of a model is made in the training-time report: not for
    /// models that sample by a reverse diffusion process (``DiffusionSampling``), whose 64
    /// samples would cost more than a checkpoint; `conjure report` makes theirs.
    public static func interpolatesDuringTraining(_ model: any GenerativeModel) -> Bool { !(model is any DiffusionSampling) }

    /// Writes `report.html` (atomically) into the run folder `directory`, after making
    /// `interpolation.png` with `model` when given and the data are images of 1 to 4 channels
    /// (with no model, an `interpolation.png` already in the folder is shown as it is).
    ///
    /// - Parameters:
    ///   - config: the run's configuration when known (the trainer's); else read from `config.json`.
    ///   - interpolationNote: shown instead of the interpolation grid (a model not sampled).
    ///   - out: where to write the page (default `directory/report.html`); links into the run
    ///     are made relative to its folder.
    /// - Returns: the path written and the seconds it took (interpolation included).
    /// - Throws: ``DataError`` as ``RunRecord/load(directory:)`` and when a file cannot be written.
    @discardableResult
    public static func write(directory: String, model: (any GenerativeModel)?, config: RunConfig? = nil, interpolationNote: String? = nil,
                             smoothing: Double = defaultSmoothing, out: String? = nil) throws -> (path: String, seconds: Double) {
        let start = DispatchTime.now().uptimeNanoseconds
        let config = try config ?? RunRecord.load(directory: directory).config
        var note = interpolationNote
        if let m = model, case .image(let c, _, _) = config.spec, (1...4).contains(c), note == nil {
            try LatentInterpolation.write(model: m, run: config, to: directory + "/interpolation.png")
        } else if model == nil && note == nil && !FileManager.default.fileExists(atPath: directory + "/interpolation.png") {
            note = "not available: no checkpoint to sample from"
        }
        var record = try RunRecord.load(directory: directory, config: config,
                                        configText: (try? String(contentsOfFile: RunRecord.configPath(directory), encoding: .utf8)) ?? String(decoding: (try? config.jsonData()) ?? Data(), as: UTF8.self))
        record.interpolationNote = note
        let path = out ?? directory + "/" + fileName
        let prefix = relativePath(from: (path as NSString).deletingLastPathComponent, to: directory)
        let page0 = ReportPage.render(record, smoothing: smoothing, linkPrefix: prefix, footer: "")
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let footer = "Written by Conjure at step \(record.lastStep) in \(String(format: "%.0f", seconds * 1000)) ms."
        let page = page0.replacingOccurrences(of: "</body></html>\n", with: "<p class=\"sub\">\(HTML.escape(footer))</p>\n</body></html>\n")
        try AtomicFile.write(Data(page.utf8), to: path, createDirectories: true)
        return (path, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }

    /// The path of `target` relative to the folder `base` (`../runs/a`), "" when they are the
    /// same folder. Both are resolved against the current directory first.
    public static func relativePath(from base: String, to target: String) -> String {
        let b = URL(fileURLWithPath: base.isEmpty ? "." : base).standardizedFileURL.pathComponents
        let t = URL(fileURLWithPath: target).standardizedFileURL.pathComponents
        var i = 0
        while i < b.count && i < t.count && b[i] == t[i] { i += 1 }
        return (Array(repeating: "..", count: b.count - i) + t[i...]).joined(separator: "/")
    }
}

extension RunReport {
    /// After `conjure evaluate` wrote `evalPath`: when that is the `eval.json` of the run folder
    /// holding `checkpoint` (`RUN/checkpoints/F`) and the run has a `report.html`, the page is
    /// written again so that it shows the new evaluation (the interpolation grid is kept as it is).
    ///
    /// - Returns: the page's path when it was rewritten, nil when the evaluation is not the run's
    ///   own or the run has no page.
    /// - Throws: ``DataError`` as ``write(directory:model:config:interpolationNote:smoothing:out:)``.
    public static func refreshAfterEvaluation(checkpoint: String, evalPath: String) throws -> String? {
        let run = ((checkpoint as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
        let directory = run.isEmpty ? "." : run
        let fm = FileManager.default
        guard fm.fileExists(atPath: directory + "/" + fileName), fm.fileExists(atPath: RunRecord.configPath(directory)),
              URL(fileURLWithPath: evalPath).standardizedFileURL.path == URL(fileURLWithPath: directory + "/eval.json").standardizedFileURL.path
        else { return nil }
        return try write(directory: directory, model: nil).path
    }
}

extension Trainer {
    /// The trainer's report at a checkpoint or at the end: written into `folder`, with the
    /// interpolation grid of `model` unless it samples by diffusion. A failure is a warning (the
    /// training goes on; `conjure report` rebuilds the page); returns the path when written.
    func writeReport(folder: String, model: any GenerativeModel, run: RunConfig) -> String? {
        let diffusion = !RunReport.interpolatesDuringTraining(model)
        do {
            return try RunReport.write(directory: folder, model: model, config: run,
                                       interpolationNote: diffusion ? "not made during training (diffusion sampling is slow): `conjure report RUN` makes it from the checkpoint" : nil).path
        } catch {
            log("warning: \(RunReport.fileName) not written: \(error); `conjure report` rebuilds it")
            return nil
        }
    }
}
