import Foundation
import XCTest
@testable import ConjureTraining
@testable import ConjureModels
import ConjureData
import ConjureNN
import ConjureOptim
import ConjureTestSupport

/// `conjure export --format onnx` checked by its real consumer: every family's exported network
/// is run by onnxruntime (scripts/onnx-run.py, which also runs `onnx.checker.check_model`) on
/// the inputs Conjure evaluates, and the outputs must agree within 1e-4 (absolute, scaled by the
/// largest reference magnitude when that exceeds 1). Weights and BatchNorm statistics are
/// perturbed away from their initial values, so an export that drops a layer, misorders gates
/// or uses the wrong weights cannot pass; the EMA cases also check that the averaged weights
/// differ from the live ones by far more than the tolerance.
final class ONNXExportTests: ConjureCLITestCase {
    override var temporaryPrefix: String { "onnx" }

    /// `$CONJURE_TEST_PYTHON`, else `.build/pyenv/bin/python` (made by `make pyenv`, which
    /// installs onnxruntime and onnx). Missing: a failure when `CI` is set, else a skip.
    func onnxPython() throws -> URL { try pyenvPython(holding: "onnxruntime and onnx") }

    /// An int64 `.npy` (format 1.0, little endian, C order) of `values` with `shape`.
    func writeInt64NPY(_ values: [Int], shape: [Int], to url: URL) throws {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '<i8', 'fortran_order': False, 'shape': \(shapeText), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xff), UInt8(header.utf8.count >> 8)] + Array(header.utf8)
        for v in values { withUnsafeBytes(of: Int64(v).littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: url)
    }

    /// One exported network with its inputs and Conjure's output on them.
    struct Job {
        var name: String
        var model: ONNXModel
        var floatInputs: [String: Tensor] = [:]
        var intInputs: [String: (values: [Int], shape: [Int])] = [:]
        var outputName: String
        var reference: Tensor
    }

    /// Every parameter and buffer perturbed (seeded): weights scaled by U(0.5, 1.5) plus
    /// N(0, 0.05²) noise (so zero-initialised layers are not zero), running means N(0, 0.2²),
    /// running variances U(0.5, 2); `num_batches_tracked` kept.
    func perturb(_ model: any GenerativeModel, seed: UInt64) throws {
        var rng = RandomGenerator(seed: seed)
        var values: [String: Tensor] = [:]
        for (name, t) in model.stateDict() {
            if name.hasSuffix("num_batches_tracked") { values[name] = t; continue }
            let n = t.count
            let scalars: [Float]
            if name.hasSuffix("running_var") {
                scalars = (0..<n).map { _ in 0.5 + 1.5 * rng.nextUniform() }
            } else if name.hasSuffix("running_mean") {
                scalars = Tensor.randomNormal([n], std: 0.2, using: &rng).scalars
            } else {
                let noise = Tensor.randomNormal([n], std: 0.05, using: &rng).scalars
                scalars = (0..<n).map { t.scalars[$0] * (0.5 + rng.nextUniform()) + noise[$0] }
            }
            values[name] = Tensor(shape: t.shape, scalars: scalars)
        }
        try model.loadStateDict(values)
    }

    /// The model of `config` adapted to `spec`, perturbed; with `ema`, an optimisation holding
    /// averages of the first perturbation, after which the live weights are perturbed again.
    func makeModel(_ family: some FamilyConfig, spec: DataSpec, ema: Bool, seed: UInt64) throws -> (any GenerativeModel, RunConfig, Optimization?) {
        var mc = ModelConfig(family)
        try mc.adapt(to: spec)
        var settings = mc.optimization
        settings.emaDecay = ema ? 0.99 : nil
        mc.optimization = settings
        try mc.validate()
        let model = mc.makeModel()
        try perturb(model, seed: seed)
        var optimization: Optimization?
        if ema {
            optimization = Optimization(model: model, settings: mc.optimization, seed: 0)
            try perturb(model, seed: seed + 1000)
        }
        let run = RunConfig(model: mc, data: "synthetic", normalization: NormalizationStats(kind: .symmetric, low: 0, high: 255), imageShape: spec.imageShape,
                            dataSpec: spec, trainSamples: 10, heldOutFraction: 0, heldOutIndicesSHA256: nil, logEvery: 1, sampleEvery: 0, checkpointEvery: 1)
        return (model, run, optimization)
    }

    func export(_ model: any GenerativeModel, _ run: RunConfig) throws -> ONNXModel {
        try ONNXFile.model(of: model, run: run, step: 7, producerVersion: "test")
    }

    /// A GAN job: `z` (and labels) through `sample`, the reference in `[N] + sampleShape`.
    func ganJob(_ name: String, _ config: GANConfig, spec: DataSpec, ema: Bool = false, seed: UInt64) throws -> Job {
        let (model, run, _) = try makeModel(config, spec: spec, ema: ema, seed: seed)
        let gan = model as! GAN
        let n = 3
        var rng = RandomGenerator(seed: seed + 1)
        let z = Tensor.randomNormal([n, gan.latentDim], using: &rng)
        let labels = gan.config.conditionalClasses > 0 ? (0..<n).map { ($0 * 2 + 1) % gan.config.conditionalClasses } : nil
        let reference = gan.sample(z: z, labels: labels)
        if ema {
            // The live generator's output differs from the averaged one by far more than the tolerance.
            gan.generator.isTraining = false
            let live = withoutGrad { gan.generator(z) }.reshaped(reference.shape)
            XCTAssertGreaterThan(maxAbsDiff(live, reference), 1e-2, "\(name): the EMA and live generators should differ")
        }
        var job = Job(name: name, model: try export(model, run), floatInputs: ["z": z], outputName: "x", reference: reference.reshaped([n] + spec.sampleShape))
        if let labels { job.intInputs["label"] = (labels, [n]) }
        return job
    }

    func vaeJob(_ name: String, _ config: VAEConfig, spec: DataSpec, ema: Bool = false, seed: UInt64) throws -> Job {
        let (model, run, _) = try makeModel(config, spec: spec, ema: ema, seed: seed)
        let vae = model as! VAE
        var rng = RandomGenerator(seed: seed + 1)
        let z = Tensor.randomNormal([3, vae.latentDim], using: &rng)
        let reference = vae.sample(z: z)
        if ema {
            let live = vae.evaluating { () -> Tensor in
                let y = vae.decodeRaw(z)
                return vae.config.likelihood == .bernoulli ? y.sigmoid() : y
            }
            XCTAssertGreaterThan(maxAbsDiff(live, reference), 1e-2, "\(name): the EMA and live decoders should differ")
        }
        return Job(name: name, model: try export(model, run), floatInputs: ["z": z], outputName: "x", reference: reference.reshaped([3] + spec.sampleShape))
    }

    func diffusionJob(_ name: String, _ config: DiffusionConfig, spec: DataSpec, ema: Bool = false, seed: UInt64) throws -> Job {
        let (model, run, _) = try makeModel(config, spec: spec, ema: ema, seed: seed)
        let diffusion = model as! DiffusionModel
        let n = 3, k = diffusion.config.conditionalClasses
        var rng = RandomGenerator(seed: seed + 1)
        let x = Tensor.randomNormal([n] + diffusion.config.imageShape, using: &rng)
        let t = [0, diffusion.config.timesteps / 2 + 1, diffusion.config.timesteps - 1]
        let labels = k > 0 ? [1, k, 0] : nil  // k: the null class
        let reference = diffusion.denoiserOutput(x: x, t: t, labels: labels)
        if ema {
            diffusion.unet.setTraining(false)
            let live = withoutGrad { diffusion.unet(x, t: t, labels: labels) }
            XCTAssertGreaterThan(maxAbsDiff(live, reference), 1e-2, "\(name): the EMA and live U-Nets should differ")
        }
        var job = Job(name: name, model: try export(model, run), floatInputs: ["x_t": x], outputName: diffusion.config.prediction == .epsilon ? "eps" : "v",
                      reference: reference)
        job.intInputs["t"] = (t, [n])
        if let labels { job.intInputs["label"] = (labels, [n]) }
        return job
    }

    func textJob(_ name: String, _ config: TextConfig, length: Int, ema: Bool = false, seed: UInt64) throws -> Job {
        var c = config
        c.vocabulary = Vocabulary(characters: "abcdefg".unicodeScalars, endOfSample: true)
        c.textMode = .lines
        let v = c.vocabulary!.count
        let (model, run, _) = try makeModel(c, spec: .tokens(vocabulary: v, length: 9), ema: ema, seed: seed)
        let text = model as! TextModel
        var rng = RandomGenerator(seed: seed + 1)
        let n = 2
        let isMLP = text.config.architecture == .mlp
        let l = isMLP ? text.config.context : length
        // The MLP's contexts may hold V, "before the start".
        var tokens = (0..<(n * l)).map { _ in Int(rng.next() % UInt64(v)) }
        if isMLP { tokens[0] = v; tokens[1] = v }
        let reference = text.evaluationLogits(tokens: tokens, batch: n, length: l)
        if ema {
            var noise = RandomGenerator(seed: 0)
            let live = text.evaluating(text.net) {
                text.net.logits(tokens: tokens, batch: n, length: l, positions: Array(0..<(n * l)), noise: &noise)
            }.reshaped(reference.shape)
            XCTAssertGreaterThan(maxAbsDiff(live, reference), 1e-2, "\(name): the EMA and live networks should differ")
        }
        var job = Job(name: name, model: try export(model, run), outputName: "logits", reference: reference)
        job.intInputs[isMLP ? "context" : "tokens"] = (tokens, [n, l])
        return job
    }

    func maxAbsDiff(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0
    }

    /// The families' jobs: small configurations of every preset's architecture.
    func allJobs() throws -> [Job] {
        var jobs: [Job] = []
        var gan = GANConfig.ganPreset
        gan.noiseDim = 8; gan.generatorHidden = [16, 12]; gan.generatorBatchNorm = [false, true]; gan.emaDecay = nil
        jobs.append(try ganJob("gan-mlp-ema", gan, spec: .image(channels: 1, height: 4, width: 4), ema: true, seed: 1))
        var cgan = gan
        cgan.preset = "cgan"; cgan.conditionalClasses = 3; cgan.generatorActivation = .relu
        jobs.append(try ganJob("cgan-mlp", cgan, spec: .vector(6), seed: 2))
        var dcgan = GANConfig.dcganPreset
        dcgan.noiseDim = 6; dcgan.emaDecay = nil
        jobs.append(try ganJob("dcgan-28", dcgan, spec: .image(channels: 1, height: 28, width: 28), seed: 3))
        var cdcgan = GANConfig.cdcganPreset
        cdcgan.noiseDim = 5; cdcgan.conditionalClasses = 2; cdcgan.emaDecay = nil
        jobs.append(try ganJob("cdcgan-32", cdcgan, spec: .image(channels: 3, height: 32, width: 32), seed: 4))
        var wavegan = GANConfig.waveganPreset
        wavegan.noiseDim = 4; wavegan.modelSize = 2
        jobs.append(try ganJob("wavegan", wavegan, spec: .sequence(channels: 1, length: 1024), seed: 5))
        var cwavegan = wavegan
        cwavegan.conditionalClasses = 2
        jobs.append(try ganJob("wavegan-cond", cwavegan, spec: .sequence(channels: 1, length: 1024), seed: 6))

        var vae = VAEConfig.mlpPreset
        vae.latentDim = 3; vae.encoderHidden = [10]; vae.decoderHidden = [12, 10]
        jobs.append(try vaeJob("vae-bernoulli-ema", vae, spec: .vector(9), ema: true, seed: 7))
        var convVAE = VAEConfig.convPreset
        convVAE.latentDim = 4; convVAE.likelihood = .gaussian; convVAE.binarize = false
        jobs.append(try vaeJob("conv-vae-gaussian", convVAE, spec: .image(channels: 1, height: 28, width: 28), seed: 8))

        var ddpm = DiffusionConfig.ddpmPreset
        ddpm.baseWidth = 8; ddpm.channelMultipliers = [1, 2]; ddpm.blocksPerLevel = 1; ddpm.attentionLevels = [1]; ddpm.attentionHeads = 2
        ddpm.groups = 4; ddpm.timesteps = 40; ddpm.dropout = 0.1; ddpm.sampler.steps = 10
        jobs.append(try diffusionJob("ddpm", ddpm, spec: .image(channels: 1, height: 8, width: 8), seed: 9))
        var ddpmCond = ddpm
        ddpmCond.preset = "ddpm-cond"; ddpmCond.conditionalClasses = 3
        jobs.append(try diffusionJob("ddpm-cond-ema", ddpmCond, spec: .image(channels: 2, height: 8, width: 8), ema: true, seed: 10))
        var ddpm1d = DiffusionConfig.waveformPreset
        ddpm1d.baseWidth = 8; ddpm1d.channelMultipliers = [1, 2, 2]; ddpm1d.attentionLevels = [2]; ddpm1d.attentionHeads = 2; ddpm1d.groups = 4
        ddpm1d.timesteps = 30; ddpm1d.sampler.steps = 10
        jobs.append(try diffusionJob("ddpm-1d", ddpm1d, spec: .sequence(channels: 1, length: 64), seed: 11))
        var ddpm1dCond = ddpm1d
        ddpm1dCond.preset = "ddpm-1d-cond"; ddpm1dCond.conditionalClasses = 2
        jobs.append(try diffusionJob("ddpm-1d-cond", ddpm1dCond, spec: .sequence(channels: 1, length: 64), seed: 12))

        var mlp = TextConfig.presets["char-mlp"]!
        mlp.context = 3; mlp.embedDim = 4; mlp.width = 8
        jobs.append(try textJob("char-mlp", mlp, length: 3, seed: 13))
        var gru = TextConfig.presets["char-gru"]!
        gru.embedDim = 4; gru.width = 6
        jobs.append(try textJob("char-gru", gru, length: 6, seed: 14))
        var gpt = TextConfig.presets["char-transformer"]!
        gpt.width = 8; gpt.heads = 2; gpt.layers = 2; gpt.embedDim = 8
        jobs.append(try textJob("char-transformer-ema", gpt, length: 5, ema: true, seed: 15))
        return jobs
    }

    /// Writes each job's model and inputs, runs scripts/onnx-run.py once over all of them and
    /// returns each job's onnxruntime output and info.json.
    func runInOnnxruntime(_ jobs: [Job]) throws -> [(output: Tensor, info: [String: Any])] {
        let python = try onnxPython()
        var dirs: [String] = []
        for job in jobs {
            let dir = tmp.appendingPathComponent(job.name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try Data(job.model.serialized()).write(to: dir.appendingPathComponent("model.onnx"))
            for (name, t) in job.floatInputs { try NPYWriter.write(t, to: dir.appendingPathComponent("input_\(name).npy").path) }
            for (name, v) in job.intInputs { try writeInt64NPY(v.values, shape: v.shape, to: dir.appendingPathComponent("input_\(name).npy")) }
            dirs.append(dir.path)
        }
        let r = try runProcess(python, [packageRoot.appendingPathComponent("scripts/onnx-run.py").path] + dirs, in: tmp)
        guard r.status == 0 else { throw FixtureError(description: "onnx-run.py failed (\(r.status)): \(r.err.suffix(3000))") }
        return try jobs.map { job in
            let dir = tmp.appendingPathComponent(job.name)
            let output = try loadFixtureNPY(dir.appendingPathComponent("output_\(job.outputName).npy"))
            let info = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("info.json"))) as! [String: Any]
            return (output, info)
        }
    }

    /// Every family (GAN mlp / DCGAN 28 and 32 px / WaveGAN, conditional and EMA variants; VAE
    /// MLP and conv; DDPM 2-D and 1-D, conditional with the null class, EMA; char-mlp, char-gru,
    /// char-transformer) agrees with onnxruntime within 1e-4, the models pass the full ONNX
    /// checker, and the metadata and declared IR / opset are as documented.
    func testEveryFamilyAgreesWithOnnxruntime() throws {
        let jobs = try allJobs()
        let results = try runInOnnxruntime(jobs)
        var report: [String] = []
        for (job, result) in zip(jobs, results) {
            XCTAssertEqual(result.output.shape, job.reference.shape, "\(job.name): output shape")
            let scale = max(1, job.reference.scalars.map(abs).max() ?? 0)
            let diff = maxAbsDiff(result.output, job.reference)
            XCTAssertLessThanOrEqual(diff, 1e-4 * scale, "\(job.name): onnxruntime and Conjure differ by \(diff) (largest |value| \(scale))")
            XCTAssertGreaterThan(job.reference.scalars.map(abs).max() ?? 0, 1e-3, "\(job.name): the reference must not be all zeros")
            report.append("\(job.name) \(diff)")
            XCTAssertEqual(result.info["ir_version"] as? Int, 8, job.name)
            XCTAssertEqual((result.info["opsets"] as? [String: Int])?[""], 17, job.name)
            let metadata = result.info["metadata"] as? [String: String] ?? [:]
            for key in ONNXFile.commonKeys { XCTAssertNotNil(metadata[key], "\(job.name): metadata \(key)") }
            XCTAssertEqual(metadata["conjure.weights"], job.name.hasSuffix("-ema") ? "ema" : "live", job.name)
            XCTAssertEqual(result.info["outputs"] as? [String], [job.outputName], job.name)
        }
        print("ONNX max abs differences: " + report.joined(separator: ", "))
        let meta = { (name: String) in (results[jobs.firstIndex { $0.name == name }!].info["metadata"] as? [String: String]) ?? [:] }
        XCTAssertEqual(meta("gan-mlp-ema")["conjure.to_data_units"], "data = (x + 1) * 127.5 + 0.0")
        XCTAssertEqual(meta("ddpm-cond-ema")["conjure.null_class"], "3")
        XCTAssertEqual(meta("ddpm-cond-ema")["conjure.data_scale"], "1.0")
        XCTAssertEqual(meta("ddpm-1d")["conjure.data_scale"], "12.0")
        // Parsed with Double(String) (correctly rounded; Foundation's JSON parser on Linux is not): the exact values.
        let alphaBar = (meta("ddpm-cond-ema")["conjure.alphas_cumprod"] ?? "").trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            .split(separator: ",").map { Double(String($0)) }
        XCTAssertEqual(alphaBar, NoiseSchedule(.linear, steps: 40).alphasCumprod)
        XCTAssertEqual(meta("char-gru")["conjure.tokens"], #"["<eos>","a","b","c","d","e","f","g"]"#)
        XCTAssertEqual(results[jobs.firstIndex { $0.name == "cgan-mlp" }!].info["inputs"] as? [String], ["z", "label"])
    }

    /// Single layers (each with perturbed weights) on their own: the forms the family tests
    /// reach only inside whole networks, plus those no preset's sampling network uses (spectral
    /// norm, the tanh GELU, a causal attention on a shorter sequence, Flatten, SiLU, LayerNorm).
    func testLayersAgreeWithOnnxruntime() throws {
        var rng = RandomGenerator(seed: 21)
        let bn = BatchNorm2d(3)
        bn.runningMean.value = Tensor.randomNormal([3], std: 0.3, using: &rng)
        bn.runningVar.value = Tensor(shape: [3], scalars: [0.5, 1.7, 2.2])
        bn.weight.assign(Tensor.randomNormal([3], mean: 1, std: 0.2, using: &rng))
        let gn = GroupNorm(numGroups: 2, numChannels: 4)
        gn.weight!.assign(Tensor.randomNormal([4], mean: 1, std: 0.3, using: &rng))
        gn.bias!.assign(Tensor.randomNormal([4], std: 0.3, using: &rng))
        let ln = LayerNorm([6])
        ln.weight!.assign(Tensor.randomNormal([6], mean: 1, std: 0.3, using: &rng))
        let sn = SpectralNorm(Linear(6, 5, rng: &rng), rng: &rng)
        for _ in 0..<3 { _ = sn(Tensor.randomNormal([2, 6], using: &rng)) }  // power iterations move u, v
        let cases: [(String, any Layer, [Int])] = [
            ("conv2d-s1", Conv2d(4, 3, kernelSize: 3, padding: 1, rng: &rng), [2, 4, 6, 6]),
            ("conv2d-s2", Conv2d(4, 3, kernelSize: 3, stride: 2, padding: 1, rng: &rng), [2, 4, 6, 6]),
            ("upsample2d", UpsampleNearest2d(scale: 2), [2, 3, 3, 4]),
            ("groupnorm2d", gn, [2, 4, 3, 5]),
            ("batchnorm2d", bn, [2, 3, 4, 4]),
            ("attention-causal", MultiheadSelfAttention(embedDim: 6, numHeads: 3, causal: true, rng: &rng), [2, 5, 6]),
            ("attention", MultiheadSelfAttention(embedDim: 6, numHeads: 2, rng: &rng), [2, 4, 6]),
            ("layernorm-gelu-tanh-silu", Sequential([ln, GELU(approximation: .tanh), SiLU(), Flatten()]), [2, 3, 6]),
            ("spectral-norm", sn, [3, 6]),
        ]
        var jobs: [Job] = []
        for (name, layer, shape) in cases {
            layer.isTraining = false
            let b = ONNXGraphBuilder()
            let x = b.addInput(ONNXValueInfo(name: "x", elementType: .float, shape: shape.map { .value($0) }, doc: ""))
            b.addOutput(try exportONNXLayer(layer, input: x, to: b, scope: "layer"), as: ONNXValueInfo(name: "y", elementType: .float, shape: [], doc: ""))
            let input = Tensor.randomNormal(shape, using: &rng)
            let y = withoutGrad { layer(input) }
            // An output of unknown shape: a symbolic dimension per axis.
            var model = ONNXModel(graph: b.graph(name: name, doc: ""), producerVersion: "test")
            model.graph.outputs[0].shape = y.shape.indices.map { .symbol("d\($0)") }
            jobs.append(Job(name: name, model: model, floatInputs: ["x": input], outputName: "y", reference: y))
        }
        let results = try runInOnnxruntime(jobs)
        for (job, result) in zip(jobs, results) {
            XCTAssertEqual(result.output.shape, job.reference.shape, job.name)
            XCTAssertLessThanOrEqual(maxAbsDiff(result.output, job.reference), 1e-5, job.name)
        }
    }

    /// A layer without an ONNX form is refused with its type and place named.
    func testUnsupportedLayerIsNamed() {
        final class Mystery: Layer {
            var isTraining = true
            func callAsFunction(_ x: Tensor) -> Tensor { x }
        }
        let graph = ONNXGraphBuilder()
        let x = graph.addInput(ONNXValueInfo(name: "x", elementType: .float, shape: [.symbol("N"), .value(2)], doc: ""))
        XCTAssertThrowsError(try Sequential([Activation(.relu), Mystery()]).exportONNX(x, to: graph, scope: "generator")) { error in
            let text = "\(error)"
            XCTAssert(text.contains("Mystery") && text.contains("'generator.1'"), text)
        }
        XCTAssertThrowsError(try Activation(ActivationFunction(name: "swish2") { $0 }).exportONNX(x, to: graph, scope: "g.0")) { error in
            XCTAssert("\(error)".contains("swish2"), "\(error)")
        }
    }

    /// The protobuf bytes of a small model: a float tensor's raw data little endian, the
    /// opset and IR version fields where onnx.proto puts them.
    func testModelBytes() {
        let t = ONNXTensor(name: "w", dims: [2], floats: [1, -2])
        XCTAssertEqual(t.encoded.bytes, [0x08, 2, 0x10, 1, 0x42, 1, 0x77, 0x4a, 8, 0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0])
        let graph = ONNXGraph(name: "g", nodes: [], initializers: [], inputs: [], outputs: [], doc: "")
        let bytes = ONNXModel(graph: graph, producerVersion: "v", metadata: [("k", "x")]).serialized()
        // ir_version 8 (field 1), producer "conjure" (2), version "v" (3), graph (7), opset {version 17} (8), metadata (14).
        XCTAssertEqual(Array(bytes.prefix(2)), [0x08, 8])
        let tail = Array(bytes.suffix(17))
        XCTAssertEqual(tail, [0x3a, 3, 0x12, 1, 0x67, 0x42, 2, 0x10, 17, 0x72, 6, 0x0a, 1, 0x6b, 0x12, 1, 0x78])
    }

    /// `conjure export` on a checkpoint trained by `conjure train` (cgan with --ema on the 8x8
    /// digits, a few steps): the file runs in onnxruntime and matches what `sample` evaluates;
    /// bad options give one error naming the option or file.
    func testExportCommand() throws {
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        try conjure(["train", "--data", digits, "--model", "cgan", "--name", "c", "--max-steps", "3", "--batch-size", "16", "--quiet"])
        let checkpoint = "runs/c/checkpoints/latest.safetensors"
        let out = try conjure(["export", "--checkpoint", checkpoint, "--format", "onnx", "--out", "job/model.onnx"]).out
        XCTAssert(out.contains("generator") && out.contains("ema weights") && out.contains("x [N, 1, 8, 8]"), out)
        let loaded = try Checkpoint.read(path: tmp.appendingPathComponent(checkpoint).path)
        var rng = RandomGenerator(seed: 5)
        let z = Tensor.randomNormal([4, loaded.model.latentDim], using: &rng)
        let reference = loaded.model.sample(z: z, labels: [0, 3, 9, 4])
        try NPYWriter.write(z, to: tmp.appendingPathComponent("job/input_z.npy").path)
        try writeInt64NPY([0, 3, 9, 4], shape: [4], to: tmp.appendingPathComponent("job/input_label.npy"))
        let python = try onnxPython()
        let r = try runProcess(python, [packageRoot.appendingPathComponent("scripts/onnx-run.py").path, tmp.appendingPathComponent("job").path], in: tmp)
        XCTAssertEqual(r.status, 0, r.err)
        let output = try loadFixtureNPY(tmp.appendingPathComponent("job/output_x.npy"))
        XCTAssertEqual(output.shape, [4, 1, 8, 8])
        XCTAssertLessThanOrEqual(maxAbsDiff(output, reference), 1e-4)

        // A weights-only file (no metadata, no optimiser state: what PyTorch's save_file writes)
        // exports with --config to the same network as its checkpoint.
        let file = try SafeTensors.read(path: tmp.appendingPathComponent(checkpoint).path)
        let weights = file.order.filter { !$0.hasPrefix("optimizer.") }.compactMap { name in file.tensors[name]?.tensor.map { (name, $0) } }
        XCTAssert(weights.contains { $0.0.hasPrefix("generator_ema.") })
        try SafeTensors.write(tensors: weights, metadata: [:], to: tmp.appendingPathComponent("weights.safetensors").path, createDirectories: false)
        let noConfig = try conjure(["export", "--checkpoint", "weights.safetensors", "--out", "w.onnx"], expectFailure: true).err
        XCTAssert(noConfig.contains("--config"), noConfig)
        try FileManager.default.createDirectory(at: tmp.appendingPathComponent("job2"), withIntermediateDirectories: true)
        try conjure(["export", "--checkpoint", "weights.safetensors", "--config", "runs/c/config.json", "--out", "job2/model.onnx"])
        try NPYWriter.write(z, to: tmp.appendingPathComponent("job2/input_z.npy").path)
        try writeInt64NPY([0, 3, 9, 4], shape: [4], to: tmp.appendingPathComponent("job2/input_label.npy"))
        let r2 = try runProcess(python, [packageRoot.appendingPathComponent("scripts/onnx-run.py").path, tmp.appendingPathComponent("job2").path], in: tmp)
        XCTAssertEqual(r2.status, 0, r2.err)
        XCTAssertLessThanOrEqual(maxAbsDiff(try loadFixtureNPY(tmp.appendingPathComponent("job2/output_x.npy")), reference), 1e-4)

        for (args, expected) in [
            (["--format", "tflite", "--out", "m.onnx"], "--format"),
            (["--out", "m.pt"], "--out"),
        ] {
            let e = try conjure(["export", "--checkpoint", checkpoint] + args, expectFailure: true).err
            XCTAssert(e.contains(expected), e)
        }
        let missing = try conjure(["export", "--checkpoint", "nope.safetensors", "--out", "m.onnx"], expectFailure: true).err
        XCTAssert(missing.contains("nope.safetensors"), missing)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("m.onnx").path))
    }
}
