import Foundation

// The ONNX messages Conjure writes, encoded by hand on ``ProtobufWriter``. Field numbers are
// those of onnx/onnx.proto (proto2 syntax): ModelProto ir_version 1, producer_name 2,
// producer_version 3, doc_string 6, graph 7, opset_import 8, metadata_props 14; GraphProto
// node 1, name 2, initializer 5, doc_string 10, input 11, output 12; NodeProto input 1, output 2,
// name 3, op_type 4, attribute 5, doc_string 6, domain 7; AttributeProto name 1, f 2, i 3, s 4,
// t 5, floats 7, ints 8, type 20; TensorProto dims 1, data_type 2, name 8, raw_data 9;
// ValueInfoProto name 1, type 2, doc_string 3; TypeProto tensor_type 1; TypeProto.Tensor
// elem_type 1, shape 2; TensorShapeProto dim 1; Dimension dim_value 1, dim_param 2;
// OperatorSetIdProto domain 1, version 2; StringStringEntryProto key 1, value 2.

/// The element types Conjure's ONNX graphs use (`TensorProto.DataType`: FLOAT = 1, INT64 = 7).
public enum ONNXElementType: Int, Sendable, Equatable {
    /// 32-bit IEEE float (`FLOAT`, 1).
    case float = 1
    /// 64-bit signed integer (`INT64`, 7), for indices, steps and labels.
    case int64 = 7
}

/// A constant tensor (`TensorProto`) stored as little-endian `raw_data`, row-major.
public struct ONNXTensor: Sendable, Equatable {
    /// The initializer's name, by which nodes refer to it (a PyTorch `state_dict` name where
    /// the tensor is one).
    public var name: String
    /// The shape (`dims`); empty for a scalar.
    public var dims: [Int]
    /// FLOAT or INT64.
    public var elementType: ONNXElementType
    /// The elements' bytes, little endian (4 bytes per float, 8 per int64).
    public var rawData: [UInt8]

    /// A float32 tensor of `dims` with `values` (row-major).
    ///
    /// - Precondition: `values.count` is the product of `dims`.
    public init(name: String, dims: [Int], floats values: [Float]) {
        precondition(values.count == dims.reduce(1, *), "ONNXTensor '\(name)': \(values.count) values for shape \(dims)")
        self.name = name
        self.dims = dims
        elementType = .float
        var bytes = [UInt8](repeating: 0, count: values.count * 4)
        bytes.withUnsafeMutableBytes { out in
            for (i, v) in values.enumerated() { out.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
        }
        rawData = bytes
    }

    /// An int64 tensor of `dims` with `values` (row-major).
    ///
    /// - Precondition: `values.count` is the product of `dims`.
    public init(name: String, dims: [Int], int64s values: [Int64]) {
        precondition(values.count == dims.reduce(1, *), "ONNXTensor '\(name)': \(values.count) values for shape \(dims)")
        self.name = name
        self.dims = dims
        elementType = .int64
        var bytes = [UInt8](repeating: 0, count: values.count * 8)
        bytes.withUnsafeMutableBytes { out in
            for (i, v) in values.enumerated() { out.storeBytes(of: v.littleEndian, toByteOffset: 8 * i, as: Int64.self) }
        }
        rawData = bytes
    }

    /// The `TensorProto` message: dims (1), data_type (2), name (8), raw_data (9).
    public var encoded: ProtobufWriter {
        var m = ProtobufWriter()
        for d in dims { m.int64(1, Int64(d)) }
        m.int64(2, Int64(elementType.rawValue))
        m.string(8, name)
        m.bytes(9, rawData)
        return m
    }
}

/// A node attribute (`AttributeProto`) of one of the kinds Conjure's operators need.
public struct ONNXAttribute: Sendable, Equatable {
    /// The value with its `AttributeType` (FLOAT 1, INT 2, STRING 3, TENSOR 4, FLOATS 6, INTS 7).
    public enum Value: Sendable, Equatable {
        /// A float (`f`, type FLOAT).
        case float(Float)
        /// An integer (`i`, type INT).
        case int(Int)
        /// A UTF-8 string (`s`, type STRING).
        case string(String)
        /// A tensor (`t`, type TENSOR), e.g. a `Constant` node's value.
        case tensor(ONNXTensor)
        /// A list of floats (`floats`, type FLOATS).
        case floats([Float])
        /// A list of integers (`ints`, type INTS).
        case ints([Int])
    }

    /// The attribute's name (`axis`, `kernel_shape`, ...).
    public var name: String
    /// Its value.
    public var value: Value

    /// An attribute `name` = `value`.
    public init(_ name: String, _ value: Value) { self.name = name; self.value = value }

    /// The `AttributeProto` message: name (1), the value field, type (20).
    public var encoded: ProtobufWriter {
        var m = ProtobufWriter()
        m.string(1, name)
        let type: Int
        switch value {
        case .float(let f): m.float(2, f); type = 1
        case .int(let i): m.int64(3, Int64(i)); type = 2
        case .string(let s): m.string(4, s); type = 3
        case .tensor(let t): m.message(5, t.encoded); type = 4
        case .floats(let fs): for f in fs { m.float(7, f) }; type = 6
        case .ints(let xs): for x in xs { m.int64(8, Int64(x)) }; type = 7
        }
        m.int64(20, Int64(type))
        return m
    }
}

/// One operator application (`NodeProto`) of the default (`ai.onnx`) domain.
public struct ONNXNode: Sendable, Equatable {
    /// The operator (`op_type`), e.g. `Conv`, `MatMul`.
    public var opType: String
    /// Input value names in the operator's order; "" leaves an optional input out.
    public var inputs: [String]
    /// Output value names.
    public var outputs: [String]
    /// The node's name (unique in the graph).
    public var name: String
    /// The attributes.
    public var attributes: [ONNXAttribute]

    /// A node applying `opType` to `inputs`, producing `outputs`.
    public init(opType: String, inputs: [String], outputs: [String], name: String, attributes: [ONNXAttribute] = []) {
        self.opType = opType; self.inputs = inputs; self.outputs = outputs; self.name = name; self.attributes = attributes
    }

    /// The `NodeProto` message: input (1), output (2), name (3), op_type (4), attribute (5).
    public var encoded: ProtobufWriter {
        var m = ProtobufWriter()
        for i in inputs { m.string(1, i) }
        for o in outputs { m.string(2, o) }
        m.string(3, name)
        m.string(4, opType)
        for a in attributes { m.message(5, a.encoded) }
        return m
    }
}

/// One axis of a graph input's or output's shape: a fixed size or a symbolic name (`N`).
public enum ONNXDimension: Sendable, Equatable {
    /// A fixed extent (`dim_value`).
    case value(Int)
    /// A symbolic extent (`dim_param`), e.g. `N` for the batch, `L` for a sequence length.
    case symbol(String)
}

/// A graph input or output (`ValueInfoProto`): name, tensor element type, shape, documentation.
public struct ONNXValueInfo: Sendable, Equatable {
    /// The value's name (`z`, `x`, `tokens`, ...).
    public var name: String
    /// The element type.
    public var elementType: ONNXElementType
    /// The shape, each axis fixed or symbolic.
    public var shape: [ONNXDimension]
    /// What the value means (the ValueInfoProto's `doc_string`).
    public var doc: String

    /// A tensor value `name` of `elementType` and `shape`, documented by `doc`.
    public init(name: String, elementType: ONNXElementType, shape: [ONNXDimension], doc: String) {
        self.name = name; self.elementType = elementType; self.shape = shape; self.doc = doc
    }

    /// The `ValueInfoProto` message: name (1), type (2: TypeProto.tensor_type (1) with elem_type (1)
    /// and shape (2) of dims (1) holding dim_value (1) or dim_param (2)), doc_string (3).
    public var encoded: ProtobufWriter {
        var shapeMessage = ProtobufWriter()
        for d in shape {
            var dim = ProtobufWriter()
            switch d {
            case .value(let v): dim.int64(1, Int64(v))
            case .symbol(let s): dim.string(2, s)
            }
            shapeMessage.message(1, dim)
        }
        var tensorType = ProtobufWriter()
        tensorType.int64(1, Int64(elementType.rawValue))
        tensorType.message(2, shapeMessage)
        var type = ProtobufWriter()
        type.message(1, tensorType)
        var m = ProtobufWriter()
        m.string(1, name)
        m.message(2, type)
        if !doc.isEmpty { m.string(3, doc) }
        return m
    }
}

/// A computation graph (`GraphProto`): nodes in topological order, constant initializers,
/// inputs and outputs.
public struct ONNXGraph: Sendable {
    /// The graph's name.
    public var name: String
    /// The nodes, sorted topologically.
    public var nodes: [ONNXNode]
    /// The constants (weights, buffers, shapes).
    public var initializers: [ONNXTensor]
    /// The inputs the caller feeds.
    public var inputs: [ONNXValueInfo]
    /// The outputs the graph computes.
    public var outputs: [ONNXValueInfo]
    /// What the graph computes (`doc_string`).
    public var doc: String

    /// A graph of `nodes` over `initializers`, from `inputs` to `outputs`.
    public init(name: String, nodes: [ONNXNode], initializers: [ONNXTensor], inputs: [ONNXValueInfo], outputs: [ONNXValueInfo], doc: String) {
        self.name = name; self.nodes = nodes; self.initializers = initializers; self.inputs = inputs; self.outputs = outputs; self.doc = doc
    }

    /// The `GraphProto` message: node (1), name (2), initializer (5), doc_string (10), input (11), output (12).
    public var encoded: ProtobufWriter {
        var m = ProtobufWriter()
        for n in nodes { m.message(1, n.encoded) }
        m.string(2, name)
        for t in initializers { m.message(5, t.encoded) }
        if !doc.isEmpty { m.string(10, doc) }
        for i in inputs { m.message(11, i.encoded) }
        for o in outputs { m.message(12, o.encoded) }
        return m
    }
}

/// A whole ONNX model file (`ModelProto`): IR version ``irVersion`` (8), operator set
/// ``opsetVersion`` (17) of the default domain, the producer, the graph and string metadata.
public struct ONNXModel: Sendable {
    /// The IR version written: 8 (`IR_VERSION_2021_7_30`, the IR of ONNX 1.10-1.12, read by
    /// every onnxruntime since 1.10).
    public static let irVersion = 8
    /// The operator set of the default `ai.onnx` domain every node binds to: 17.
    public static let opsetVersion = 17

    /// The graph.
    public var graph: ONNXGraph
    /// `producer_name` (`conjure`).
    public var producerName: String
    /// `producer_version` (Conjure's version).
    public var producerVersion: String
    /// `doc_string` of the model.
    public var doc: String
    /// `metadata_props` key-value pairs in order (keys distinct).
    public var metadata: [(key: String, value: String)]

    /// A model holding `graph` with `metadata`.
    ///
    /// - Precondition: the metadata keys are distinct.
    public init(graph: ONNXGraph, producerName: String = "conjure", producerVersion: String, doc: String = "", metadata: [(key: String, value: String)] = []) {
        precondition(Set(metadata.map(\.key)).count == metadata.count, "ONNXModel: metadata keys must be distinct: \(metadata.map(\.key))")
        self.graph = graph; self.producerName = producerName; self.producerVersion = producerVersion; self.doc = doc; self.metadata = metadata
    }

    /// The serialised `ModelProto`: ir_version (1), producer_name (2), producer_version (3),
    /// doc_string (6), graph (7), opset_import (8: domain "" omitted, version (2)),
    /// metadata_props (14: key (1), value (2)).
    public func serialized() -> [UInt8] {
        var m = ProtobufWriter()
        m.int64(1, Int64(Self.irVersion))
        m.string(2, producerName)
        m.string(3, producerVersion)
        if !doc.isEmpty { m.string(6, doc) }
        m.message(7, graph.encoded)
        var opset = ProtobufWriter()
        opset.int64(2, Int64(Self.opsetVersion))
        m.message(8, opset)
        for (k, v) in metadata {
            var entry = ProtobufWriter()
            entry.string(1, k)
            entry.string(2, v)
            m.message(14, entry)
        }
        return m.bytes
    }
}
