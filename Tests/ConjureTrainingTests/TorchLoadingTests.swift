import ConjureData
import ConjureTensor
import ConjureTestSupport
import ConjureTraining
import Foundation
import XCTest

/// `conjure sample --z/--save-z`, weights-only safetensors files, and docs/pytorch.md's PyTorch
/// code run by PyTorch (the machine's CPU wheel, `make torchenv`) against `conjure sample --z`
/// on tiny runs of every family trained on real data.
final class TorchLoadingTests: ConjureCLITestCase {
    override var temporaryPrefix: String { "torch" }

    let quick = ["--overwrite", "--quiet", "--no-tensorboard", "--held-out", "0"]

    /// Trains `args` as run `name` in ``tmp`` and returns the checkpoint's path.
    @discardableResult
    func train(_ name: String, _ args: [String]) throws -> String {
        try conjure(["train", "--name", name] + quick + args)
        return "runs/\(name)/checkpoints/latest.safetensors"
    }

    /// The tiny MLP GAN on the 8x8 digits (units 0..16), with averaged generator weights.
    func trainTinyGAN(_ name: String = "gan") throws -> String {
        try train(name, ["--model", "gan", "--data", try sharedPath("data/digits_8x8.csv.gz").path, "--g-hidden", "16,16", "--d-hidden", "16",
                         "--g-batchnorm", "0,1", "--noise-dim", "8", "--max-steps", "6", "--batch-size", "32"])
    }

    func npy(_ file: String) throws -> Tensor { try NPYReader.load(path: tmp.appendingPathComponent(file).path) }

    /// A .npy holding int32 values (NPYWriter writes float32 only).
    func writeInt32NPY(_ values: [Int32], shape: [Int], to file: String) throws {
        var header = "{'descr': '<i4', 'fortran_order': False, 'shape': (\(shape.map(String.init).joined(separator: ", ")),), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)] + Array(header.utf8)
        for v in values { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: tmp.appendingPathComponent(file))
    }

    /// `--save-z` writes the documented draw; `--z` of that file (float32 or float64) gives the
    /// same samples; bad files and options are one error naming `--z`, `--count` or `--save-z`.
    func testLatentFileRoundTripAndErrors() throws {
        let ckpt = try trainTinyGAN()
        try conjure(["sample", "--checkpoint", ckpt, "--count", "5", "--seed", "1", "--save-z", "z.npy", "--out", "a.npy"])
        let z = try npy("z.npy")
        XCTAssertEqual(z.shape, [5, 8])
        var rng = RandomStream.sampling.generator(seed: 1)
        XCTAssertEqual(z.scalars, Tensor.randomNormal([5, 8], using: &rng).scalars, "the file holds the documented draw")
        try conjure(["sample", "--checkpoint", ckpt, "--z", "z.npy", "--out", "b.npy"])
        XCTAssertEqual(try npy("a.npy").scalars, try npy("b.npy").scalars)
        XCTAssertEqual(try npy("b.npy").shape, [5, 1, 8, 8])
        // float64, and a different z gives different samples.
        var doubles = z.scalars.map(Double.init)
        doubles[0] += 0.5
        let header64 = "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 8), }"
        var h = header64
        while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
        h += "\n"
        var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count), 0] + Array(h.utf8)
        for v in doubles { withUnsafeBytes(of: v.bitPattern.littleEndian) { bytes += $0 } }
        try Data(bytes).write(to: tmp.appendingPathComponent("z64.npy"))
        try conjure(["sample", "--checkpoint", ckpt, "--z", "z64.npy", "--save-z", "z64-back.npy", "--out", "c.npy"])
        let c = try npy("c.npy"), a = try npy("a.npy")
        XCTAssertEqual(Array(c.scalars[64...]), Array(a.scalars[64...]), "rows 1-4 are the same latents")
        XCTAssertNotEqual(Array(c.scalars[..<64]), Array(a.scalars[..<64]), "row 0 moved")
        XCTAssertEqual(try npy("z64-back.npy").scalars, doubles.map(Float.init))
        // Errors.
        var r = try conjure(["sample", "--checkpoint", ckpt, "--z", "z.npy", "--count", "4", "--out", "d.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--count") && r.err.contains("5 latents"), r.err)
        try NPYWriter.write(Tensor(shape: [5, 7], scalars: [Float](repeating: 0, count: 35)), to: tmp.appendingPathComponent("bad.npy").path)
        r = try conjure(["sample", "--checkpoint", ckpt, "--z", "bad.npy", "--out", "d.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--z") && r.err.contains("bad.npy") && r.err.contains("[5, 7]") && r.err.contains("[N, 8]"), r.err)
        var withNaN = z.scalars
        withNaN[11] = .nan
        try NPYWriter.write(Tensor(shape: [5, 8], scalars: withNaN), to: tmp.appendingPathComponent("nan.npy").path)
        r = try conjure(["sample", "--checkpoint", ckpt, "--z", "nan.npy", "--out", "d.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--z") && r.err.contains("element 11 (row 1)"), r.err)
        try writeInt32NPY([Int32](repeating: 1, count: 16), shape: [2, 8], to: "int.npy")
        r = try conjure(["sample", "--checkpoint", ckpt, "--z", "int.npy", "--out", "d.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--z") && r.err.contains("int32"), r.err)
        r = try conjure(["sample", "--checkpoint", ckpt, "--save-z", "z.txt", "--out", "d.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--save-z"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("d.npy").path))
        // A text model has no latent.
        try "anna\nbob\ncarla\ndave\nemma\nfrank\ngina\nhal\nida\njon\nkim\nlea\n".write(to: tmp.appendingPathComponent("names.txt"), atomically: true, encoding: .utf8)
        let text = try train("text", ["--model", "char-mlp", "--data", "names.txt", "--width", "8", "--embed-dim", "4", "--max-steps", "2", "--batch-size", "4"])
        r = try conjure(["sample", "--checkpoint", text, "--z", "z.npy", "--out", "t.txt"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--z") && r.err.contains("text model has no latent"), r.err)
    }

    /// `--save-z` is written only by a run that succeeds (a bad `--label`, `--steps` or an
    /// unwritable `--out` leaves no latent file behind), and may not name the `--out` or `--z`
    /// file (the samples or the rewrite would silently replace the latent).
    func testSaveZOnlyAfterSuccessAndNeverOverOutOrZ() throws {
        let ckpt = try trainTinyGAN()
        func exists(_ f: String) -> Bool { FileManager.default.fileExists(atPath: tmp.appendingPathComponent(f).path) }
        var r = try conjure(["sample", "--checkpoint", ckpt, "--count", "3", "--save-z", "left1.npy", "--label", "3", "--out", "o.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--label"), r.err)
        XCTAssertFalse(exists("left1.npy"), "a run refused for --label wrote --save-z")
        r = try conjure(["sample", "--checkpoint", ckpt, "--count", "3", "--save-z", "left2.npy", "--steps", "0", "--out", "o.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--steps"), r.err)
        XCTAssertFalse(exists("left2.npy"), "a run refused for --steps wrote --save-z")
        try "x".write(to: tmp.appendingPathComponent("file"), atomically: true, encoding: .utf8)
        r = try conjure(["sample", "--checkpoint", ckpt, "--count", "3", "--save-z", "left3.npy", "--out", "file/o.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("file/o.npy"), r.err)
        XCTAssertFalse(exists("left3.npy"), "a run whose --out could not be written wrote --save-z")
        r = try conjure(["sample", "--checkpoint", ckpt, "--count", "3", "--save-z", "same.npy", "--out", "./same.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--save-z") && r.err.contains("--out"), r.err)
        XCTAssertFalse(exists("same.npy"))
        try conjure(["sample", "--checkpoint", ckpt, "--count", "3", "--save-z", "z.npy", "--out", "a.npy"])
        let before = try Data(contentsOf: tmp.appendingPathComponent("z.npy"))
        r = try conjure(["sample", "--checkpoint", ckpt, "--z", "z.npy", "--save-z", "sub/../z.npy", "--out", "b.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--save-z") && r.err.contains("--z"), r.err)
        XCTAssertEqual(try Data(contentsOf: tmp.appendingPathComponent("z.npy")), before)
        XCTAssertFalse(exists("b.npy"))
        XCTAssertEqual(try npy("z.npy").shape, [3, 8])
        XCTAssertEqual(try npy("a.npy").shape, [3, 1, 8, 8])
    }

    /// README's PyTorch snippet ("Loading a Conjure model into PyTorch"), run as written after
    /// docs/pytorch.md's module, gives `conjure sample --z z.npy --out x.npy` on a tiny `gan` run
    /// named `demo` within 1e-4 in data units.
    func testReadmePyTorchSnippetRunsAsWritten() throws {
        let python = try torchPython()
        try trainTinyGAN("demo")
        try conjure(["sample", "--checkpoint", "runs/demo/checkpoints/latest.safetensors", "--count", "4", "--save-z", "z.npy", "--out", "x.npy"])
        let readme = try String(contentsOf: packageRoot.appendingPathComponent("README.md"), encoding: .utf8)
        guard let section = readme.range(of: "## Loading a Conjure model into PyTorch"),
              let start = readme.range(of: "```python\n", range: section.upperBound..<readme.endIndex),
              let end = readme.range(of: "```", range: start.upperBound..<readme.endIndex) else {
            return XCTFail("README.md has no python block under 'Loading a Conjure model into PyTorch'")
        }
        let snippet = String(readme[start.upperBound..<end.lowerBound])
        try writeDocumentedModule()
        let script = "import sys\nsys.path.insert(0, '.')\nfrom conjure_torch import *\ntorch.set_num_threads(1)\n" + snippet + """

        import numpy as np
        print(float(np.abs(images.numpy() - np.load("x.npy").astype(np.float64)).max()))
        """
        try script.write(to: tmp.appendingPathComponent("readme_snippet.py"), atomically: true, encoding: .utf8)
        let r = try runProcess(python, ["readme_snippet.py"], in: tmp)
        XCTAssertEqual(r.status, 0, "README's snippet failed: \(r.err.suffix(2000))")
        let diff = Double(r.out.trimmingCharacters(in: .whitespacesAndNewlines))
        XCTAssertNotNil(diff, r.out)
        XCTAssertLessThan(diff ?? .infinity, 1e-4)
    }

    /// A weights-only file (no metadata, int64 `num_batches_tracked`, generator only) samples with
    /// `--config` and the plain weights; an integer weight and missing tensors are refused by
    /// name; without a configuration the error names `--config`; `--resume` lists what is missing.
    func testWeightsOnlyFileWrittenInSwift() throws {
        let ckpt = try trainTinyGAN()
        let file = try SafeTensors.read(path: tmp.appendingPathComponent(ckpt).path)
        var values: [(String, SafeTensorValue)] = []
        for name in file.order where name.hasPrefix("generator.") {
            let t = file.tensors[name]!.tensor!
            values.append((name, name.hasSuffix("num_batches_tracked") ? .i64(t.scalars.map { Int64($0) }, shape: t.shape) : .f32(t)))
        }
        XCTAssertTrue(values.contains { $0.0 == "generator.3.num_batches_tracked" }, "\(values.map(\.0))")
        try SafeTensors.write(values: values, to: tmp.appendingPathComponent("w.safetensors").path)
        try NPYWriter.write(Tensor(shape: [3, 8], scalars: (0..<24).map { Float($0 % 7) * 0.3 - 0.9 }), to: tmp.appendingPathComponent("z.npy").path)
        let ok = try conjure(["sample", "--checkpoint", "w.safetensors", "--config", "runs/gan/config.json", "--z", "z.npy", "--out", "w.npy"])
        XCTAssertTrue(ok.err.contains("no averaged weights (generator_ema.*)"), ok.err)
        XCTAssertFalse(ok.err.contains("not loaded"), ok.err)
        // A tensor the model has no place for is named in a note, and the samples are the same.
        try SafeTensors.write(values: values + [("generator.stray", .f32(Tensor(shape: [2], scalars: [1, 2])))], to: tmp.appendingPathComponent("extra.safetensors").path)
        let extra = try conjure(["sample", "--checkpoint", "extra.safetensors", "--config", "runs/gan/config.json", "--z", "z.npy", "--out", "e.npy"])
        XCTAssertTrue(extra.err.contains("1 tensor the gan model has no place for, not loaded: generator.stray"), extra.err)
        XCTAssertEqual(try npy("e.npy").scalars, try npy("w.npy").scalars)
        // The same numbers as the run's own checkpoint with its averages replaced by the plain weights.
        let plain = file.order.filter { !$0.hasPrefix("generator_ema.") }.map { ($0, file.tensors[$0]!) }
            + file.order.filter { $0.hasPrefix("generator_ema.") }.map { ($0, file.tensors["generator." + String($0.dropFirst("generator_ema.".count))]!) }
        try SafeTensors.write(values: plain, metadata: file.metadata, to: tmp.appendingPathComponent("plain.safetensors").path)
        try conjure(["sample", "--checkpoint", "plain.safetensors", "--z", "z.npy", "--out", "p.npy"])
        XCTAssertEqual(try npy("w.npy").scalars, try npy("p.npy").scalars)
        // A whole checkpoint whose counter PyTorch rewrote as int64 still resumes (Checkpoint.read).
        let int64Counter = file.order.map { name -> (String, SafeTensorValue) in
            let v = file.tensors[name]!
            return name.hasSuffix("num_batches_tracked") ? (name, .i64(v.tensor!.scalars.map { Int64($0) }, shape: v.shape)) : (name, v)
        }
        try SafeTensors.write(values: int64Counter, metadata: file.metadata, to: tmp.appendingPathComponent("i64.safetensors").path)
        let reread = try Checkpoint.read(path: tmp.appendingPathComponent("i64.safetensors").path)
        XCTAssertEqual(reread.model.stateDict().first { $0.0 == "generator.3.num_batches_tracked" }?.1.scalars, [6], "six training steps")
        // A Conjure checkpoint of the same run serves as --config too.
        try conjure(["sample", "--checkpoint", "w.safetensors", "--config", ckpt, "--z", "z.npy", "--out", "w2.npy"])
        XCTAssertEqual(try npy("w2.npy").scalars, try npy("p.npy").scalars)
        var r = try conjure(["sample", "--checkpoint", "w.safetensors", "--out", "x.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--config") && r.err.contains("weights only"), r.err)
        // A configuration whose normalisation maps nothing back to data units (an edited
        // config.json: low == high, or a zscore std of 0) is refused, naming the file.
        let configText = try String(contentsOf: tmp.appendingPathComponent("runs/gan/config.json"), encoding: .utf8)
        var config = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(configText.utf8)) as? [String: Any])
        let norm = try XCTUnwrap(config["normalization"] as? [String: Any])
        for (key, value) in [("high", norm["low"]!), ("std", 0 as Any)] {
            var edited = norm
            edited[key] = value
            if key == "std" { edited["kind"] = "zscore" }
            config["normalization"] = edited
            try JSONSerialization.data(withJSONObject: config).write(to: tmp.appendingPathComponent("degenerate.json"))
            r = try conjure(["sample", "--checkpoint", "w.safetensors", "--config", "degenerate.json", "--out", "x.npy"], expectFailure: true)
            XCTAssertTrue(r.err.contains("degenerate.json") && r.err.contains("normalisation") && r.err.contains("is degenerate"), r.err)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("x.npy").path))
        r = try conjure(["sample", "--checkpoint", ckpt, "--config", "runs/gan/config.json", "--out", "x.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("--config") && r.err.contains("Conjure checkpoint"), r.err)
        try SafeTensors.write(values: values.filter { $0.0 != "generator.5.weight" }, to: tmp.appendingPathComponent("short.safetensors").path)
        r = try conjure(["sample", "--checkpoint", "short.safetensors", "--config", "runs/gan/config.json", "--out", "x.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("1 are missing: generator.5.weight"), r.err)
        let intWeight = values.map { $0.0 == "generator.0.bias" ? ($0.0, SafeTensorValue.i64([Int64](repeating: 0, count: 16), shape: [16])) : $0 }
        try SafeTensors.write(values: intWeight, to: tmp.appendingPathComponent("int.safetensors").path)
        r = try conjure(["sample", "--checkpoint", "int.safetensors", "--config", "runs/gan/config.json", "--out", "x.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("generator.0.bias") && r.err.contains("I64 integers"), r.err)
        // A batch counter of another integer type is refused as a counter, not as "a weight".
        let u8Counter = values.map { $0.0 == "generator.3.num_batches_tracked" ? ($0.0, SafeTensorValue.u8([6], shape: [])) : $0 }
        try SafeTensors.write(values: u8Counter, to: tmp.appendingPathComponent("u8.safetensors").path)
        r = try conjure(["sample", "--checkpoint", "u8.safetensors", "--config", "runs/gan/config.json", "--out", "x.npy"], expectFailure: true)
        XCTAssertTrue(r.err.contains("generator.3.num_batches_tracked") && r.err.contains("U8 integers") && r.err.contains("batch counter is I64"), r.err)
        XCTAssertFalse(r.err.contains("only num_batches_tracked may be"), r.err)
        try FileManager.default.removeItem(at: tmp.appendingPathComponent(ckpt))
        try FileManager.default.copyItem(at: tmp.appendingPathComponent("w.safetensors"), to: tmp.appendingPathComponent(ckpt))
        r = try conjure(["train", "--resume", "--name", "gan", "--quiet"], expectFailure: true)
        for part in ["weights only", "optimiser state", "step, epoch, batch_in_epoch", "rng_state", "config metadata", "--config RUN/config.json"] {
            XCTAssertTrue(r.err.contains(part), "'\(part)' in: \(r.err)")
        }
    }

    // MARK: - PyTorch

    /// `$CONJURE_TEST_TORCH_PYTHON`, else `.build/torchenv/bin/python` (made by `make torchenv`
    /// from the machine's CPU wheel). No wheel on the machine: a skip saying so (the issue allows
    /// it, also in CI); a wheel but no environment: a failure under CI, else a skip.
    func torchPython() throws -> URL {
        let env = ProcessInfo.processInfo.environment
        let path = env["CONJURE_TEST_TORCH_PYTHON"].flatMap { $0.isEmpty ? nil : $0 } ?? packageRoot.appendingPathComponent(".build/torchenv/bin/python").path
        if FileManager.default.isExecutableFile(atPath: path) { return URL(fileURLWithPath: path) }
        let wheels = ((try? FileManager.default.contentsOfDirectory(atPath: "/opt/wheels")) ?? [])
            .filter { $0.hasPrefix("torch-") && $0.contains("+cpu-") && $0.hasSuffix(".whl") }
        guard let wheel = wheels.first else {
            throw XCTSkip("no PyTorch CPU wheel on this machine (/opt/wheels/torch-*+cpu-*.whl): docs/pytorch.md's code is not run here")
        }
        let message = "/opt/wheels/\(wheel) is here but \(path) is not: run `make torchenv` (or set CONJURE_TEST_TORCH_PYTHON)"
        if let ci = env["CI"], !ci.isEmpty { throw FixtureError(description: message) }
        throw XCTSkip(message)
    }

    /// Writes docs/pytorch.md's `python` blocks, joined in order, as `conjure_torch.py` in ``tmp``.
    func writeDocumentedModule() throws {
        let doc = try String(contentsOf: packageRoot.appendingPathComponent("docs/pytorch.md"), encoding: .utf8)
        var blocks: [String] = [], current: [String]? = nil
        for line in doc.components(separatedBy: "\n") {
            if current == nil, line == "```python" { current = [] } else if current != nil, line == "```" { blocks.append(current!.joined(separator: "\n")); current = nil } else { current?.append(line) }
        }
        XCTAssertGreaterThanOrEqual(blocks.count, 5, "docs/pytorch.md's python blocks")
        try blocks.joined(separator: "\n\n\n").write(to: tmp.appendingPathComponent("conjure_torch.py"), atomically: true, encoding: .utf8)
    }

    /// Runs `script` with the documented module importable and `jobs` as JSON; returns its JSON output.
    func runPython(_ python: URL, script: String, jobs: [[String: Any]]) throws -> [[String: Any]] {
        try writeDocumentedModule()
        try script.write(to: tmp.appendingPathComponent("driver.py"), atomically: true, encoding: .utf8)
        try JSONSerialization.data(withJSONObject: jobs).write(to: tmp.appendingPathComponent("jobs.json"))
        let r = try runProcess(python, ["driver.py", "jobs.json"], in: tmp)
        guard r.status == 0, let out = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]] else {
            throw FixtureError(description: "the PyTorch driver failed (\(r.status)): \(r.err.suffix(3000))")
        }
        return out
    }

    static let sampleDriver = """
    import json, sys
    import numpy as np
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, ".")
    import conjure_torch as ct

    results = []
    for job in json.load(open(sys.argv[1])):
        state, run = ct.read_checkpoint(job["checkpoint"], job.get("config"))
        if job["kind"] == "text":
            results.append({"text": ct.greedy_text(state, run, job["prompt"], job.get("max_length"))})
            continue
        z = torch.from_numpy(np.load(job["z"]).astype(np.float32))
        family = run["model"]["family"]
        if family == "gan":
            y = ct.gan_sample(state, run, z)
        elif family == "vae":
            y = ct.vae_sample(state, run, z)
        else:
            y = ct.diffusion_sample(state, run, z, steps=job["steps"])
        x = np.load(job["out"])
        drawn = np.load(job["drawn_z"]).ravel()
        same_draw = bool((ct.conjure_normal(job["seed"], drawn.size) == drawn).all())
        results.append({"shape": list(y.shape), "conjure_shape": list(x.shape), "same_draw": same_draw,
                        "max_abs_diff": float(np.abs(y.numpy() - x.astype(np.float64)).max()), "max_abs": float(np.abs(x).max())})
    print(json.dumps(results))
    """

    /// 64 MNIST digits (every 78th of ../shared's 5000) as float32 [64, 1, 28, 28] in [0, 1]:
    /// units near 1, so 1e-4 is a float32-sized tolerance for the deeper 28x28 networks.
    func writeMNISTSlice() throws {
        let bytes = try Gzip.readFile(atPath: try sharedPath("data/mnist_5k.csv.gz").path)
        let rows = String(decoding: bytes, as: UTF8.self).split(separator: "\n")
        var values: [Float] = []
        for i in stride(from: 0, to: 64 * 78, by: 78) {
            values += rows[i].split(separator: ",").prefix(784).map { Float(Int($0)!) / 255 }
        }
        try NPYWriter.write(Tensor(shape: [64, 1, 28, 28], scalars: values), to: tmp.appendingPathComponent("mnist.npy").path)
        // The same digits padded to 32x32 for the 32-px DCGAN (the PyTorch example's generator).
        var padded = [Float](repeating: 0, count: 64 * 32 * 32)
        for i in 0..<64 { for y in 0..<28 { for x in 0..<28 { padded[i * 1024 + (y + 2) * 32 + x + 2] = values[i * 784 + y * 28 + x] } } }
        try NPYWriter.write(Tensor(shape: [64, 1, 32, 32], scalars: padded), to: tmp.appendingPathComponent("mnist32.npy").path)
    }

    /// Eight FSDD recordings (digits 0 and 1, training indices 10-13) in `fsdd/`.
    func copyRecordings() throws {
        let src = try sharedPath("data/fsdd/recordings")
        let dst = tmp.appendingPathComponent("fsdd")
        try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
        for d in 0...1 { for i in 10...13 {
            try FileManager.default.copyItem(at: src.appendingPathComponent("\(d)_jackson_\(i).wav"), to: dst.appendingPathComponent("\(d)_jackson_\(i).wav"))
        } }
    }

    /// docs/pytorch.md's code, run by PyTorch on the latents `conjure sample --save-z` wrote,
    /// gives `conjure sample`'s samples within 1e-4 in data units for every family (GAN: MLP,
    /// conditional MLP, 28x28 and 32x32 DCGAN, conditional WaveGAN; VAE: MLP Bernoulli with
    /// averages, conv Gaussian on z-scored data; diffusion: conditional 2-D with guidance, and
    /// 1-D with v-prediction, DDIM eta 0, x_T given as [N, C, H, W] float64) and the same greedy
    /// text for the three character models (lines mode) and a stream-mode GRU; its `conjure_normal` reproduces the drawn latents bit for bit.
    func testDocumentedPyTorchCodeMatchesSampleForEveryFamily() throws {
        let python = try torchPython()
        let digits = try sharedPath("data/digits_8x8.csv.gz").path
        try writeMNISTSlice()
        try copyRecordings()
        let names = try String(contentsOf: try sharedPath("data/text/names.txt"), encoding: .utf8).split(separator: "\n").prefix(300)
        try (names.joined(separator: "\n") + "\n").write(to: tmp.appendingPathComponent("names.txt"), atomically: true, encoding: .utf8)
        let runs: [(String, [String])] = [
            ("gan", ["--model", "gan", "--data", digits, "--g-hidden", "16,16", "--d-hidden", "16", "--g-batchnorm", "0,1", "--noise-dim", "8", "--max-steps", "6", "--batch-size", "32"]),
            ("cgan", ["--model", "cgan", "--data", digits, "--g-hidden", "16", "--d-hidden", "16", "--g-batchnorm", "1", "--noise-dim", "8", "--max-steps", "6", "--batch-size", "32"]),
            ("dcgan", ["--model", "dcgan", "--data", "mnist.npy", "--max-steps", "3", "--batch-size", "16"]),
            ("dcgan32", ["--model", "dcgan", "--data", "mnist32.npy", "--max-steps", "2", "--batch-size", "8"]),
            ("wavegan", ["--model", "wavegan", "--conditional", "--data", "fsdd/", "--length", "1024", "--model-size", "2", "--max-steps", "3", "--batch-size", "4"]),
            ("vae", ["--model", "vae", "--data", digits, "--encoder-hidden", "16", "--decoder-hidden", "16", "--latent-dim", "4", "--ema", "0.9", "--max-steps", "6", "--batch-size", "32"]),
            ("conv-vae", ["--model", "conv-vae", "--data", "mnist.npy", "--likelihood", "gaussian", "--normalize", "zscore", "--latent-dim", "4", "--max-steps", "3", "--batch-size", "16"]),
            ("ddpm-cond", ["--model", "ddpm-cond", "--data", digits, "--base-width", "8", "--channel-mult", "1,2", "--timesteps", "10", "--max-steps", "3", "--batch-size", "16"]),
            ("ddpm-1d", ["--model", "ddpm-1d", "--data", "fsdd/", "--length", "1024", "--base-width", "8", "--channel-mult", "1,2", "--timesteps", "6", "--max-steps", "3", "--batch-size", "4"]),
        ]
        var jobs: [[String: Any]] = []
        for (name, args) in runs {
            let ckpt = try train(name, args)
            let diffusion = name.hasPrefix("ddpm")
            try conjure(["sample", "--checkpoint", ckpt, "--count", "6", "--seed", "3", "--save-z", "\(name)-z.npy", "--out", "\(name)-drawn.npy"] + (diffusion ? ["--steps", "3"] : []))
            var z = "\(name)-z.npy"
            if name == "ddpm-cond" {
                // x_T as images [N, C, H, W] in float64 (what --z also takes).
                let t = try npy(z)
                var h = "{'descr': '<f8', 'fortran_order': False, 'shape': (6, 1, 8, 8), }"
                while (10 + h.utf8.count + 1) % 64 != 0 { h += " " }
                h += "\n"
                var bytes: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(h.utf8.count), 0] + Array(h.utf8)
                for v in t.scalars { withUnsafeBytes(of: Double(v).bitPattern.littleEndian) { bytes += $0 } }
                try Data(bytes).write(to: tmp.appendingPathComponent("ddpm-x_T.npy"))
                z = "ddpm-x_T.npy"
            }
            try conjure(["sample", "--checkpoint", ckpt, "--z", z, "--out", "\(name).npy"] + (diffusion ? ["--steps", "3"] : []))
            XCTAssertEqual(try npy("\(name).npy").scalars, try npy("\(name)-drawn.npy").scalars, "\(name): --z of the saved draw")
            jobs.append(["kind": "samples", "name": name, "checkpoint": ckpt, "z": z, "out": "\(name).npy", "steps": 3, "seed": 3, "drawn_z": "\(name)-z.npy"])
        }
        let textRuns: [(String, [String])] = [
            ("char-mlp", ["--width", "16", "--embed-dim", "8", "--context", "3", "--max-steps", "40"]),
            ("char-gru", ["--width", "16", "--embed-dim", "8", "--max-steps", "40"]),
            ("char-transformer", ["--width", "16", "--layers", "2", "--heads", "2", "--lr-warmup-steps", "0", "--learning-rate", "1e-2", "--max-steps", "80"]),
        ]
        var expectedTexts: [String] = []
        func greedy(_ name: String, _ ckpt: String, _ prompt: String, maxLength: Int? = nil) throws {
            try conjure(["sample", "--checkpoint", ckpt, "--count", "1", "--temperature", "0", "--prompt", prompt, "--out", "t.txt"]
                        + (maxLength.map { ["--max-length", "\($0)"] } ?? []))
            expectedTexts.append(try String(contentsOf: tmp.appendingPathComponent("t.txt"), encoding: .utf8))
            var job: [String: Any] = ["kind": "text", "name": name, "checkpoint": ckpt, "prompt": prompt]
            if let maxLength { job["max_length"] = maxLength }
            jobs.append(job)
        }
        for (name, args) in textRuns {
            let ckpt = try train(name, ["--model", name, "--data", "names.txt", "--batch-size", "16"] + args)
            for prompt in ["", "ma"] { try greedy(name, ckpt, prompt) }
        }
        // Stream mode (blocks of running text): a GRU on 20 000 characters of Shakespeare.
        let shakespeare = try Data(contentsOf: try sharedPath("data/text/tinyshakespeare.txt")).prefix(20_000)
        try shakespeare.write(to: tmp.appendingPathComponent("shakespeare.txt"))
        let stream = try train("char-gru-stream", ["--model", "char-gru", "--data", "shakespeare.txt", "--text-mode", "stream", "--context", "16", "--width", "16",
                                                   "--embed-dim", "8", "--max-steps", "40", "--batch-size", "16"])
        try greedy("char-gru-stream", stream, "The ", maxLength: 40)
        let results = try runPython(python, script: Self.sampleDriver, jobs: jobs)
        XCTAssertEqual(results.count, jobs.count)
        var textIndex = 0
        for (job, result) in zip(jobs, results) {
            let name = job["name"] as! String
            if job["kind"] as! String == "text" {
                let expected = expectedTexts[textIndex]
                textIndex += 1
                XCTAssertEqual((result["text"] as? String).map { $0 + "\n" }, expected, "\(name), prompt '\(job["prompt"]!)'")
                XCTAssertGreaterThan(expected.count, 1 + (job["prompt"] as! String).count, "\(name): greedy decoding wrote characters")
                continue
            }
            let diff = result["max_abs_diff"] as! Double, scale = result["max_abs"] as! Double
            XCTAssertEqual(result["shape"] as? [Int], result["conjure_shape"] as? [Int], name)
            XCTAssertLessThanOrEqual(diff, 1e-4, "\(name): max |PyTorch - conjure| in data units")
            XCTAssertGreaterThan(scale, 1e-3, "\(name): the samples are not all zero")
            XCTAssertEqual(result["same_draw"] as? Bool, true, "\(name): docs/pytorch.md's conjure_normal gives the bits --save-z wrote")
            print("TorchLoadingTests: \(name) max abs diff \(diff) (max |x| \(scale))")
        }
    }

    static let saveDriver = """
    import json, sys
    import numpy as np
    import torch, torch.nn as nn
    from safetensors import safe_open
    from safetensors.torch import save_file
    torch.set_num_threads(1)
    sys.path.insert(0, ".")
    import conjure_torch as ct

    job = json.load(open(sys.argv[1]))[0]
    state, run = ct.read_checkpoint(job["checkpoint"])
    G = ct.load_weights(ct.gan_generator(run["model"]), state, "generator.")   # the plain weights
    wrapper = nn.Module()
    wrapper.generator = G
    save_file(wrapper.state_dict(), "torch.safetensors")
    with safe_open(job["checkpoint"], framework="pt") as f:
        save_file(wrapper.state_dict(), "torch-metadata.safetensors", metadata=f.metadata())   # the run's metadata passed along
    z = torch.from_numpy(np.load(job["z"]))
    with torch.no_grad():
        y = ct.to_data_units(G(z).reshape(len(z), *ct.sample_shape(run)), run["normalization"])
    np.save("torch-samples.npy", y.numpy().astype(np.float32))
    print(json.dumps([{k: str(v.dtype) for k, v in wrapper.state_dict().items() if k.endswith("num_batches_tracked")}]))
    """

    /// A generator saved by PyTorch (`save_file(module.state_dict())`: no metadata, int64
    /// `num_batches_tracked`, no discriminator, no averages) samples with `--config` and the plain
    /// weights, within 1e-4 of PyTorch's own output; `--resume` from it lists what is missing.
    func testPyTorchSavedWeightsSampleAndResumeNamesWhatIsMissing() throws {
        let python = try torchPython()
        let ckpt = try trainTinyGAN()
        try conjure(["sample", "--checkpoint", ckpt, "--count", "5", "--seed", "4", "--save-z", "z.npy", "--out", "ema.npy"])
        let dtypes = try runPython(python, script: Self.saveDriver, jobs: [["checkpoint": ckpt, "z": "z.npy"]])
        XCTAssertEqual(dtypes.first as? [String: String], ["generator.3.num_batches_tracked": "torch.int64"])
        let saved = try SafeTensors.read(path: tmp.appendingPathComponent("torch.safetensors").path)
        XCTAssertEqual(saved.storedDTypes["generator.3.num_batches_tracked"], .i64)
        XCTAssertNil(saved.metadata["config"])
        let r = try conjure(["sample", "--checkpoint", "torch.safetensors", "--config", "runs/gan/config.json", "--z", "z.npy", "--out", "back.npy"])
        XCTAssertTrue(r.err.contains("no averaged weights"), r.err)
        let back = try npy("back.npy"), reference = try npy("torch-samples.npy")
        XCTAssertEqual(back.shape, [5, 1, 8, 8])
        let diff = zip(back.scalars, reference.scalars).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(diff, 1e-4, "PyTorch's samples against conjure sample of the PyTorch file")
        XCTAssertNotEqual(back.scalars, try npy("ema.npy").scalars, "plain weights, not the run's averages")
        // With the run's metadata passed to save_file, no --config is needed.
        try conjure(["sample", "--checkpoint", "torch-metadata.safetensors", "--z", "z.npy", "--out", "meta.npy"])
        XCTAssertEqual(try npy("meta.npy").scalars, back.scalars)
        print("TorchLoadingTests: PyTorch-saved gan max abs diff \(diff)")
        try FileManager.default.removeItem(at: tmp.appendingPathComponent(ckpt))
        try FileManager.default.copyItem(at: tmp.appendingPathComponent("torch.safetensors"), to: tmp.appendingPathComponent(ckpt))
        let resume = try conjure(["train", "--resume", "--name", "gan", "--quiet"], expectFailure: true)
        for part in ["weights only", "optimiser state (optimizer.*", "step, epoch, batch_in_epoch", "rng_state"] {
            XCTAssertTrue(resume.err.contains(part), "'\(part)' in: \(resume.err)")
        }
    }
}
