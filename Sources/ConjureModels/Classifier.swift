import ConjureNN
import ConjureOptim
import ConjureData

/// The fixed (untrained) input transform of the sound classifier: each clip's log-magnitude
/// spectrogram (``Spectrogram``: periodic Hann window of `size` samples, `hop` samples apart,
/// KissFFT; dB re amplitude 1, floored at −100 dB), standardised by one mean and standard
/// deviation fitted on the training clips.
///
/// - Shapes: clips `[N, T]` (one channel, values in `[-1, 1]`) → features `[N, bins · frames]`,
///   row-major `[bins, frames]` per clip, `bins = size/2 + 1`, `frames = 1 + (T − size) / hop`.
public struct SpectrogramFrontEnd: Codable, Sendable, Equatable {
    /// FFT size (window length), samples.
    public var size: Int
    /// Hop between frames, samples.
    public var hop: Int
    /// Clip length `T` the front end takes.
    public var length: Int
    /// Mean of the training clips' dB values (subtracted).
    public var mean: Float
    /// Standard deviation of the training clips' dB values (divided by).
    public var std: Float

    /// Frequency bins per frame (`size / 2 + 1`).
    public var bins: Int { size / 2 + 1 }
    /// Frames per clip.
    public var frames: Int { length >= size ? 1 + (length - size) / hop : 1 }

    /// A front end for clips of `length` samples with the given window, standardisation 0/1.
    /// Precondition: `size` even and ≥ 4, `hop ≥ 1`, `length ≥ 1`.
    public init(size: Int = 256, hop: Int = 128, length: Int, mean: Float = 0, std: Float = 1) {
        precondition(size >= 4 && size % 2 == 0 && hop >= 1 && length >= 1, "SpectrogramFrontEnd: bad size \(size), hop \(hop) or length \(length)")
        self.size = size
        self.hop = hop
        self.length = length
        self.mean = mean
        self.std = std
    }

    /// The standardised log-magnitude features of each row of `clips` `[N, T]`.
    /// Precondition: `clips` is `[N, length]`.
    public func features(_ clips: Tensor) -> Tensor {
        precondition(clips.rank == 2 && clips.shape[1] == length, "SpectrogramFrontEnd: clips must be [N, \(length)], got \(clips.shape)")
        let n = clips.shape[0], per = bins * frames
        var out = [Float](repeating: 0, count: n * per)
        let all = clips.scalars
        let scale = 1 / max(std, 1e-6)
        for i in 0 ..< n {
            let s = Spectrogram(signal: Array(all[i * length ..< (i + 1) * length]), size: size, hop: hop)
            precondition(s.values.count == per, "SpectrogramFrontEnd: \(s.values.count) values, expected \(per)")
            for j in 0 ..< per { out[i * per + j] = (s.values[j] - mean) * scale }
        }
        return Tensor(shape: [n, per], scalars: out)
    }

    /// This front end with `mean` and `std` fitted on `clips` `[N, T]` (all dB values pooled).
    public func fitted(on clips: Tensor) -> SpectrogramFrontEnd {
        let raw = SpectrogramFrontEnd(size: size, hop: hop, length: length).features(clips).scalars
        let m = raw.reduce(0, +) / Float(max(raw.count, 1))
        let v = raw.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(max(raw.count, 1))
        return SpectrogramFrontEnd(size: size, hop: hop, length: length, mean: m, std: max(v.squareRoot(), 1e-3))
    }
}

/// A small classifier trained with Conjure itself, used as the domain feature extractor for
/// evaluation. Two kinds:
/// - images and vectors: an MLP, 784 (or D) -> 512 ReLU -> 256 ReLU -> K logits; state-dict
///   names `classifier.0.weight` `[512, D]`, ..., `classifier.4.bias` `[K]`; its penultimate
///   layer (256 features) serves feature-based metrics;
/// - sound (with a ``SpectrogramFrontEnd``): a CNN on the `[1, bins, frames]` spectrogram, three
///   3x3 stride-2 convolutions (16, 32, 64 channels, ReLU), flatten, Linear → 128 ReLU (the
///   features), Linear → K logits; state-dict names `classifier.1.weight` (the first conv) ...
///   `classifier.10.bias`.
public final class Classifier {
    /// The layers: Linear, ReLU per hidden width, then the final Linear to `classes` logits
    /// (`state_dict` prefix `classifier.` where saved).
    public let net: Sequential
    /// Flattened input size D (784 for 28x28 MNIST).
    public let inputDim: Int
    /// Number of classes K, the width of the logits.
    public let classes: Int
    /// The spectrogram transform of a sound classifier (applied to inputs before ``net``); nil
    /// for the MLP on raw values.
    public let frontEnd: SpectrogramFrontEnd?

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
        frontEnd = nil
    }

    /// The sound classifier: `frontEnd` then the spectrogram CNN of the type's description,
    /// weights drawn from `rng` in PyTorch's default initialisation. `inputDim` is the clip
    /// length. Precondition: `classes ≥ 2`, at least 8 bins and 8 frames.
    public init(frontEnd: SpectrogramFrontEnd, classes: Int, rng: inout RandomGenerator) {
        precondition(classes > 1 && frontEnd.bins >= 8 && frontEnd.frames >= 8, "Classifier: need 2+ classes and a spectrogram of 8+ bins and frames")
        func down(_ n: Int) -> Int { (n - 1) / 2 + 1 }  // 3x3, stride 2, padding 1
        let h = down(down(down(frontEnd.bins))), w = down(down(down(frontEnd.frames)))
        net = Sequential([Reshape([1, frontEnd.bins, frontEnd.frames]),
                          Conv2d(1, 16, kernelSize: 3, stride: 2, padding: 1, rng: &rng), Activation(.relu),
                          Conv2d(16, 32, kernelSize: 3, stride: 2, padding: 1, rng: &rng), Activation(.relu),
                          Conv2d(32, 64, kernelSize: 3, stride: 2, padding: 1, rng: &rng), Activation(.relu),
                          Flatten(), Linear(64 * h * w, 128, rng: &rng), Activation(.relu), Linear(128, classes, rng: &rng)])
        inputDim = frontEnd.length
        self.classes = classes
        self.frontEnd = frontEnd
    }

    /// The network's input for raw inputs: the front end's features, or `x` itself.
    func prepared(_ x: Tensor) -> Tensor { frontEnd.map { $0.features(x) } ?? x }

    /// Logits for inputs in the normalised range.
    ///
    /// - Shapes: `x` `[N, inputDim]` → `[N, classes]`.
    public func logits(_ x: Tensor) -> Tensor { net(prepared(x)) }

    /// Softmax probabilities, evaluated in batches without history.
    public func probabilities(_ x: Tensor, batch: Int = 1000) -> Tensor {
        withoutGrad {
            var parts: [Tensor] = []
            var i = 0
            while i < x.shape[0] {
                let j = min(i + batch, x.shape[0])
                parts.append(net(prepared(x.slice(axis: 0, i..<j))).logSoftmax().exp())
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
            var parts: [Tensor] = []
            var i = 0
            while i < x.shape[0] {
                let j = min(i + 1000, x.shape[0])
                var h = prepared(x.slice(axis: 0, i..<j))
                for l in net.layers.dropLast() { h = l(h) }
                parts.append(h)
                i = j
            }
            return Tensor.concat(parts, axis: 0)
        }
    }

    /// Trains with Adam on mini-batches of softmax cross-entropy; returns the last epoch's mean loss.
    /// Gaussian noise of standard deviation `noise` is added to the network's inputs (the
    /// front end's features for a sound classifier).
    ///
    /// - Shapes: `x` `[N, inputDim]` (normalised), `labels` N integers in `0..<classes`.
    /// - Parameter onEpoch: called after each epoch with the epoch (1-based) and its mean loss
    ///   (nats), for progress lines; it does not change the training.
    @discardableResult
    public func train(x raw: Tensor, labels: [Int], epochs: Int, batchSize: Int = 64, lr: Float = 1e-3,
                      rng: inout RandomGenerator, noise: Float = 0.1, onEpoch: ((Int, Float) -> Void)? = nil) -> Float {
        let x = prepared(raw)  // the front end is fixed: computed once
        let opt = Adam(parameters: net.parameters, lr: lr)
        let params = net.parameters
        var lastLoss: Float = .nan
        for epoch in 0..<epochs {
            let perm = rng.permutation(x.shape[0])
            var total: Float = 0
            var count = 0
            var start = 0
            let batch = min(batchSize, perm.count)  // fewer samples than a batch: one batch of all
            while start + batch <= perm.count {
                let idx = Array(perm[start..<(start + batch)])
                start += batch
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
