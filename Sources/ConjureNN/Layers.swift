/// Weight initialisers.
public enum Initializer {
    /// PyTorch's default for `nn.Linear`: weight and bias ~ U(-1/sqrt(fanIn), 1/sqrt(fanIn))
    /// (kaiming_uniform with a = sqrt(5), He et al. 2015).
    case pytorchDefault
    /// N(0, std²), DCGAN's N(0, 0.02) (Radford et al. 2016); biases zero.
    case normal(std: Float)
    /// Xavier/Glorot uniform U(-a, a), a = sqrt(6 / (fanIn + fanOut)) (Glorot & Bengio 2010); biases zero.
    case xavierUniform
    /// Kaiming/He normal N(0, 2/fanIn) for ReLU (He et al. 2015); biases zero.
    case kaimingNormal
}

/// Fully connected layer `y = x Wᵀ + b` (PyTorch's `nn.Linear`).
///
/// - Shapes: input `[N, inFeatures]`, output `[N, outFeatures]`; `weight` `[out, in]`,
///   `bias` `[out]`.
public final class Linear: WeightBiasLayer {
    /// The weight matrix `[outFeatures, inFeatures]` (`state_dict` name `weight`).
    public let weight: Parameter
    /// The bias `[outFeatures]`, or `nil` when built with `bias: false`.
    public let bias: Parameter?
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true

    /// A layer from `inFeatures` to `outFeatures`, parameters drawn from `rng` as `initializer` says
    /// (weight first, then bias). Precondition: both sizes positive.
    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true,
                initializer: Initializer = .pytorchDefault, rng: inout RandomGenerator) {
        precondition(inFeatures > 0 && outFeatures > 0, "Linear: sizes must be positive, got \(inFeatures) -> \(outFeatures)")
        let wShape = [outFeatures, inFeatures]
        switch initializer {
        case .pytorchDefault:
            let bound = 1 / Float(inFeatures).squareRoot()
            weight = Parameter(.randomUniform(wShape, low: -bound, high: bound, using: &rng))
            self.bias = bias ? Parameter(.randomUniform([outFeatures], low: -bound, high: bound, using: &rng)) : nil
        case .normal(let std):
            weight = Parameter(.randomNormal(wShape, std: std, using: &rng))
            self.bias = bias ? Parameter(.zeros([outFeatures])) : nil
        case .xavierUniform:
            let a = (6 / Float(inFeatures + outFeatures)).squareRoot()
            weight = Parameter(.randomUniform(wShape, low: -a, high: a, using: &rng))
            self.bias = bias ? Parameter(.zeros([outFeatures])) : nil
        case .kaimingNormal:
            weight = Parameter(.randomNormal(wShape, std: (2 / Float(inFeatures)).squareRoot(), using: &rng))
            self.bias = bias ? Parameter(.zeros([outFeatures])) : nil
        }
    }

    /// `x Wᵀ + b`: `[N, inFeatures]` → `[N, outFeatures]`.
    public func callAsFunction(_ x: Tensor) -> Tensor { Tensor.linear(x, weight: weight.value, bias: bias?.value) }

}

/// An element-wise activation function: an open set of named functions of a tensor. Add one
/// with ``init(name:_:)``; the common ones are static members (`.relu`, `.leakyRelu(0.2)`,
/// `.tanh`, `.sigmoid`, `.identity`).
public struct ActivationFunction: Sendable, Equatable, CustomStringConvertible {
    /// The function's name with its parameters (`leaky_relu(0.2)`); two functions are equal
    /// when their names are.
    public let name: String
    let apply: @Sendable (Tensor) -> Tensor

    /// A named activation.
    public init(name: String, _ apply: @escaping @Sendable (Tensor) -> Tensor) {
        self.name = name
        self.apply = apply
    }

    /// Applies the function.
    public func callAsFunction(_ x: Tensor) -> Tensor { apply(x) }

    /// Equal names.
    public static func == (a: ActivationFunction, b: ActivationFunction) -> Bool { a.name == b.name }

    /// The name.
    public var description: String { name }

    /// `max(x, 0)`.
    public static let relu = ActivationFunction(name: "relu") { $0.relu() }
    /// `x` for `x > 0`, `slope · x` otherwise.
    public static func leakyRelu(_ slope: Float) -> ActivationFunction {
        ActivationFunction(name: "leaky_relu(\(slope))") { $0.leakyRelu(slope) }
    }
    /// `tanh(x)`.
    public static let tanh = ActivationFunction(name: "tanh") { $0.tanh() }
    /// `1 / (1 + e^-x)`.
    public static let sigmoid = ActivationFunction(name: "sigmoid") { $0.sigmoid() }
    /// `x`.
    public static let identity = ActivationFunction(name: "identity") { $0 }
}

/// An activation function as a layer (no parameters).
public final class Activation: Layer {
    /// The function kinds (an open set: see ``ActivationFunction``).
    public typealias Kind = ActivationFunction
    /// The function applied.
    public let kind: ActivationFunction
    /// Unused (no mode-dependent behaviour).
    public var isTraining = true
    /// A layer applying `kind`.
    public init(_ kind: ActivationFunction) { self.kind = kind }

    /// `kind(x)`, any shape.
    public func callAsFunction(_ x: Tensor) -> Tensor { kind(x) }
}

/// Batch normalisation over the batch axis (Ioffe & Szegedy 2015; PyTorch's `nn.BatchNorm1d`).
///
/// Training mode normalises with the batch mean and biased variance and updates the running
/// statistics with `momentum` (running variance from the unbiased batch variance);
/// evaluation mode uses the running statistics, so an output does not depend on its batch.
///
/// - Shapes: input and output `[N, features]`; `weight`, `bias`, `running_mean`,
///   `running_var` `[features]`; `num_batches_tracked` a scalar.
public final class BatchNorm1d: BatchNormBase, Layer {
    /// Batch normalisation of `features` features: `weight` ones, `bias` zeros, running mean 0 and
    /// variance 1. `eps` is added to the variance; `momentum` is the running-statistics update factor.
    public init(_ features: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        super.init(features: features, eps: eps, momentum: momentum, layer: "BatchNorm1d")
    }

    /// Normalises `x` `[N, features]` per feature (batch statistics in training, running ones in
    /// evaluation); output `[N, features]`. Training needs `N > 1`.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let f = weight.shape[0]
        precondition(x.rank == 2 && x.shape[1] == f, "BatchNorm1d: input \(x.shape) for \(f) features")
        if !isTraining {
            let scale = Tensor(shape: [f], scalars: (0..<f).map { 1 / (runningVar.value.scalars[$0] + eps).squareRoot() })
            return (x - runningMean.value) * scale * weight.value + bias.value
        }
        let n = x.shape[0]
        precondition(n > 1, "BatchNorm1d: training mode needs more than one sample per batch, got \(x.shape)")
        let (y, mean, variance) = Tensor.batchNormTraining(x, weight: weight.value, bias: bias.value, eps: eps)
        foldRunningStatistics(mean: mean, variance: variance, count: n)
        return y
    }
}

/// State shared by the batch-norm layers: affine `weight`/`bias` and the running statistics,
/// in PyTorch's `state_dict` order (`weight`, `bias`, `running_mean`, `running_var`,
/// `num_batches_tracked`).
public class BatchNormBase {
    /// The per-feature scale `[features]`, starting at ones (γ in the paper).
    public let weight: Parameter
    /// The per-feature shift `[features]`, starting at zeros (β in the paper).
    public let bias: Parameter
    /// The running mean per feature `[features]` (`running_mean`), starting at 0, used in evaluation.
    public let runningMean: Buffer
    /// The running unbiased variance per feature `[features]` (`running_var`), starting at 1, used in
    /// evaluation.
    public let runningVar: Buffer
    /// The number of training batches folded into the running statistics, a scalar stored as Float32
    /// (`num_batches_tracked`; PyTorch stores it as int64).
    public let numBatchesTracked: Buffer
    /// Added to the variance before the square root (default 1e-5, as PyTorch).
    public let eps: Float
    /// Weight of the newest batch in the running statistics (default 0.1, as PyTorch).
    public let momentum: Float
    /// Training (batch statistics, running statistics updated) or evaluation (running statistics).
    public var isTraining = true

    init(features: Int, eps: Float, momentum: Float, layer: String) {
        precondition(features > 0, "\(layer): feature count must be positive, got \(features)")
        weight = Parameter(.ones([features]))
        bias = Parameter(.zeros([features]))
        runningMean = Buffer(.zeros([features]))
        runningVar = Buffer(.ones([features]))
        numBatchesTracked = Buffer(Tensor(0))
        self.eps = eps
        self.momentum = momentum
    }

    /// `weight`, then `bias`.
    public var namedParameters: [(String, Parameter)] { [("weight", weight), ("bias", bias)] }
    /// `running_mean`, `running_var`, then `num_batches_tracked` (PyTorch's order).
    public var namedBuffers: [(String, Buffer)] {
        [("running_mean", runningMean), ("running_var", runningVar), ("num_batches_tracked", numBatchesTracked)]
    }

    /// Running statistics after one training batch (PyTorch's rule):
    /// `running = (1 - momentum) running + momentum batch`, the variance term unbiased by
    /// `count / (count - 1)` where `count` is the number of values per feature.
    func foldRunningStatistics(mean: [Float], variance: [Float], count: Int) {
        let m = momentum
        let unbias = Float(count) / Float(count - 1)
        let f = mean.count
        runningMean.value = Tensor(shape: [f], scalars: zip(runningMean.value.scalars, mean).map { (1 - m) * $0 + m * $1 })
        runningVar.value = Tensor(shape: [f], scalars: zip(runningVar.value.scalars, variance).map { (1 - m) * $0 + m * $1 * unbias })
        numBatchesTracked.value = Tensor(numBatchesTracked.value.item + 1)
    }
}
