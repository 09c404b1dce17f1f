import Foundation
import ConjureData
import ConjureModels
import ConjureNN

/// Writes a trained model's sampling network as an ONNX file (`conjure export --format onnx`):
/// IR version ``ONNXModel/irVersion`` (8), opset ``ONNXModel/opsetVersion`` (17), the network of
/// ``ONNXExportableModel/exportONNX(sampleShape:)`` and `metadata_props` describing the inputs,
/// the output and how to map it back to the data's units (see docs/onnx.md).
public enum ONNXFile {
    /// The metadata keys every export writes, in order: family, preset, network, weights,
    /// inputs, output, normalisation (JSON), the formula to data units, the data kind (JSON and
    /// its sample shape), the checkpoint's training step and Conjure's version.
    public static let commonKeys = ["conjure.family", "conjure.preset", "conjure.network", "conjure.weights", "conjure.inputs", "conjure.output",
                                    "conjure.normalization", "conjure.to_data_units", "conjure.data_spec", "conjure.sample_shape",
                                    "conjure.checkpoint_step", "conjure.producer"]

    /// The formula mapping normalised model values `x` back to the data's units (the inverse of
    /// the run's normalisation, as `NormalizationStats.inverse` computes it), with its numbers.
    public static func toDataUnitsFormula(_ n: NormalizationStats) -> String {
        switch n.kind {
        case .none: return "data = x"
        case .symmetric:
            let span = n.high - n.low
            return "data = (x + 1) * \(span > 0 ? span / 2 : 1) + \(n.low)"
        case .unit:
            let span = n.high - n.low
            return "data = x * \(span > 0 ? span : 1) + \(n.low)"
        case .zscore: return "data = x * \(n.std > 0 ? n.std : 1) + \(n.mean)"
        }
    }

    /// The ONNX model of `model`'s sampling network with the run's metadata.
    ///
    /// - Parameters: `run` the checkpoint's configuration (normalisation, data kind, preset);
    ///   `step` the checkpoint's training step (metadata only; nil for a weights-only file: `unknown`); `producerVersion` Conjure's version.
    /// - Throws: ``ConfigError`` naming `--checkpoint` when the model's family has no ONNX
    ///   export or its weights exceed protobuf's 2 GiB message limit, ``ONNXExportError`` naming a
    ///   layer without an ONNX form.
    public static func model(of model: any GenerativeModel, run: RunConfig, step: Int?, producerVersion: String) throws -> ONNXModel {
        guard let exportable = model as? any ONNXExportableModel else {
            throw ConfigError(option: "--checkpoint", problem: "the \(model.family) model (\(run.model.preset)) has no ONNX export")
        }
        let spec = run.spec
        let export = try exportable.exportONNX(sampleShape: spec.sampleShape)
        let weightBytes = export.graph.initializers.reduce(0) { $0 + $1.rawData.count }
        guard weightBytes < Int(Int32.max) - (1 << 20) else {
            throw ConfigError(option: "--checkpoint", problem: "the \(export.network) holds \(weightBytes) bytes of weights; one ONNX protobuf file holds less than 2 GiB (external data files are not written)")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ v: T) throws -> String { String(decoding: try encoder.encode(v), as: UTF8.self) }
        func describe(_ v: ONNXValueInfo) -> String {
            let dims = v.shape.map { d -> String in
                switch d { case .value(let x): return String(x); case .symbol(let s): return s }
            }
            return "\(v.name): \(v.elementType == .float ? "float32" : "int64") [\(dims.joined(separator: ", "))], \(v.doc)"
        }
        let units: String
        switch export.network {
        case "next-token": units = "the output is not data: logits over the vocabulary (conjure.tokens[i] is token i)"
        case "denoiser": units = toDataUnitsFormula(run.normalization) + " (applies to x_t and to the x_0 the reverse process ends in; eps/v stay in the normalised space)"
        default: units = toDataUnitsFormula(run.normalization)
        }
        var metadata: [(key: String, value: String)] = [
            ("conjure.family", model.family), ("conjure.preset", run.model.preset), ("conjure.network", export.network),
            ("conjure.weights", export.weights), ("conjure.inputs", export.graph.inputs.map(describe).joined(separator: "; ")),
            ("conjure.output", export.outputMeaning), ("conjure.normalization", try json(run.normalization)),
            ("conjure.to_data_units", units), ("conjure.data_spec", try json(spec)),
            ("conjure.sample_shape", try json(spec.sampleShape)), ("conjure.checkpoint_step", step.map(String.init) ?? "unknown"),
            ("conjure.producer", "conjure \(producerVersion)"),
        ]
        metadata += export.metadata
        return ONNXModel(graph: export.graph, producerVersion: producerVersion,
                         doc: "\(run.model.preset) \(export.network) exported by conjure (\(export.weights) weights): \(export.outputMeaning)", metadata: metadata)
    }

    /// Writes the ONNX model of the weights `conjure sample` would use (a checkpoint, or a
    /// weights-only file with its configuration: ``SamplingWeights``) to `path` atomically (a
    /// temporary file in the same folder, then renamed), creating missing folders.
    ///
    /// - Throws: as ``model(of:run:step:producerVersion:)``, and ``DataError`` naming `path`
    ///   when it cannot be written.
    @discardableResult
    public static func write(_ weights: SamplingWeights, to path: String, producerVersion: String) throws -> ONNXModel {
        let onnx = try model(of: weights.model, run: weights.run, step: weights.step, producerVersion: producerVersion)
        try AtomicFile.write(onnx.serialized(), to: path, createDirectories: true)
        return onnx
    }
}
