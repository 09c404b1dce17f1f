import ArgumentParser
import ConjureData
import ConjureModels
import ConjureNN
import ConjureTraining
import Foundation

/// `conjure export`: a checkpoint's sampling network as an ONNX file (see docs/onnx.md).
struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a trained model's sampling network as an ONNX file (opset 17, IR version 8).",
        discussion: """
        Exports what sampling evaluates, with the averaged weights of an --ema run: a GAN's generator (z [, label] -> x), \
        a VAE's decoder (z -> x), a diffusion model's denoiser (x_t, t [, label] -> eps or v, one network evaluation) \
        or a text model's next-character network (tokens -> logits; char-mlp: context -> logits). \
        The metadata holds the normalisation and the formula mapping outputs back to the data's units; see docs/onnx.md.
        """)
    @Option(help: "A checkpoint written by `conjure train`, or a weights-only safetensors file (e.g. PyTorch's save_file(model.state_dict()); then --config, see docs/pytorch.md).") var checkpoint: String
    @Option(help: "For a weights-only --checkpoint: the run configuration, RUN/config.json or a checkpoint of the same run (default: the file's own 'config' metadata).") var config: String?
    @Option(help: "Output format: onnx.") var format: String = "onnx"
    @Option(help: "The output file, ending in .onnx.") var out: String

    func run() {
        runReporting {
            guard format == "onnx" else { throw ConfigError(option: "--format", problem: "unknown format '\(format)'", hint: "the only format is onnx") }
            guard (out as NSString).pathExtension.lowercased() == "onnx" else {
                throw ConfigError(option: "--out", problem: "'\(out)' must end in .onnx")
            }
            let loaded = try SamplingWeights.read(path: checkpoint, config: config)
            for note in loaded.notes { writeStandardError(note + "\n") }
            let model: ONNXModel
            do {
                model = try ONNXFile.write(loaded, to: out, producerVersion: conjureVersion)
            } catch let e as ONNXExportError {
                throw ConfigError(option: "--checkpoint", problem: e.description)
            }
            func describe(_ v: ONNXValueInfo) -> String {
                let dims = v.shape.map { d -> String in
                    switch d { case .value(let x): return String(x); case .symbol(let s): return s }
                }
                return "\(v.name) [\(dims.joined(separator: ", "))]"
            }
            let meta = Dictionary(model.metadata.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
            print("wrote the \(meta["conjure.network"] ?? "sampling") network of \(loaded.run.model.preset) (\(meta["conjure.weights"] ?? "live") weights) to \(out): "
                  + "inputs \(model.graph.inputs.map(describe).joined(separator: ", ")); output \(model.graph.outputs.map(describe).joined(separator: ", ")); "
                  + "opset \(ONNXModel.opsetVersion), IR version \(ONNXModel.irVersion)")
        }
    }
}
