import ConjureNN
import ConjureOptim
import ConjureData

/// A small MLP image classifier trained with Conjure itself, used as the domain feature
/// extractor for evaluation: 784 (or D) -> 512 ReLU -> 256 ReLU -> K logits. Its penultimate
/// layer (256 features) serves feature-based metrics.
///
/// State-dict names: `classifier.0.weight` `[512, D]`, ..., `classifier.4.bias` `[K]`.
public final class Classifier {
    /// The layers: Linear, ReLU per hidden width, then the final Linear to `classes` logits
    /// (`state_dict` prefix `classifier.` where saved).
    public let net: Sequential
    /// Flattened input size D (784 for 28x28 MNIST).
    public let inputDim: Int
    /// Number of classes K, the width of the logits.
    public let classes: Int

    /// A classifier `inputDim -> hidden... -> classes` with ReLU between layers, weights drawn from
    /// `rng` in PyTorch's default initialisation. Precondition: `inputDim > 0`, `classes ≥ 2`.
    public init(inputDim: Int, classes: Int, hidden: [Int] = [512, 256], rng: inout RandomGenerator) {
        precondition(inputDim > 0 && classes > 1, "Classifier: need inputDim > 0 and at least 2 classes")
        var layers: [any Layer] = []
        var w = inputDim
        for h in hidden {
            layers.append(Linear(w, h, rng: &rng))
            layers.append(Activation(.relu))
            w = h
        }
        layers.append(Linear(w, classes, rng: &rng))
        net = Sequential(layers)
        self.inputDim = inputDim
        self.classes = classes
    }

    /// Logits for inputs in the normalised range.
    ///
    /// - Shapes: `x` `[N, inputDim]` → `[N, classes]`.
    public func logits(_ x: Tensor) -> Tensor { net(x) }

    /// Softmax probabilities, evaluated in batches without history.
    public func probabilities(_ x: Tensor, batch: Int = 1000) -> Tensor {
        withoutGrad {
            var parts: [Tensor] = []
            var i = 0
            while i < x.shape[0] {
                let j = min(i + batch, x.shape[0])
                parts.append(net(x.slice(axis: 0, i..<j)).logSoftmax().exp())
                i = j
            }
            return Tensor.concat(parts, axis: 0)
        }
    }

    /// Penultimate-layer activations.
    ///
    /// - Shapes: `x` `[N, inputDim]` → `[N, lastHidden]`.
    public func features(_ x: Tensor) -> Tensor {
        withoutGrad {
            var h = x
            for l in net.layers.dropLast() { h = l(h) }
            return h
        }
    }

    /// Trains with Adam on mini-batches of softmax cross-entropy; returns the last epoch's mean loss.
    ///
    /// - Shapes: `x` `[N, inputDim]` (normalised), `labels` N integers in `0..<classes`.
    /// - Parameter onEpoch: called after each epoch with the epoch (1-based) and its mean loss
    ///   (nats), for progress lines; it does not change the training.
    @discardableResult
    public func train(x: Tensor, labels: [Int], epochs: Int, batchSize: Int = 64, lr: Float = 1e-3,
                      rng: inout RandomGenerator, noise: Float = 0.1, onEpoch: ((Int, Float) -> Void)? = nil) -> Float {
        let opt = Adam(parameters: net.parameters, lr: lr)
        let params = net.parameters
        var lastLoss: Float = .nan
        for epoch in 0..<epochs {
            let perm = rng.permutation(x.shape[0])
            var total: Float = 0
            var count = 0
            var start = 0
            while start + batchSize <= perm.count {
                let idx = Array(perm[start..<(start + batchSize)])
                start += batchSize
                var xb = x.gathered(rows: idx)
                // Light Gaussian input noise: the classifier must also judge imperfect samples.
                if noise > 0 { xb = xb + Tensor.randomNormal(xb.shape, std: noise, using: &rng) }
                let loss = Tensor.softmaxCrossEntropy(logits: net(xb), labels: idx.map { labels[$0] })
                opt.step(gradients: Tensor.gradients(of: loss, wrt: params.map(\.value)))
                total += loss.item
                count += 1
            }
            lastLoss = total / Float(max(count, 1))
            onEpoch?(epoch + 1, lastLoss)
        }
        return lastLoss
    }

    /// Fraction of correctly classified samples.
    public func accuracy(x: Tensor, labels: [Int]) -> Double {
        let p = probabilities(x)
        var correct = 0
        for i in 0..<labels.count {
            let row = p.scalars[(i * classes)..<((i + 1) * classes)]
            if row.firstIndex(of: row.max()!)! - i * classes == labels[i] { correct += 1 }
        }
        return Double(correct) / Double(max(labels.count, 1))
    }
}
