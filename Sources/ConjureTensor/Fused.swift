import Foundation
import CConjureKernels

extension Tensor {
    /// Mean binary cross-entropy between `logits` and `targets`, computed on logits in the
    /// numerically stable form `max(x, 0) - x*y + log1p(exp(-|x|))` (accumulated in Double), so
    /// it is exact for |x| up to 1e4 and beyond where `log(sigmoid(x))` would overflow.
    ///
    /// - Shapes: `logits` any shape; `targets` the same shape (or one element, broadcast).
    /// - Returns: a scalar, the mean over all elements.
    /// - Precondition: every target lies in [0, 1] (probabilities, not discriminator outputs).
    /// - Gradient: `(sigmoid(x) - y) / N` with respect to the logits (the targets are constants).
    /// - Source: PyTorch `BCEWithLogitsLoss`; TensorFlow `sigmoid_cross_entropy_with_logits`.
    public static func binaryCrossEntropyWithLogits(_ logits: Tensor, targets: Tensor) -> Tensor {
        let t = targets.count == 1 && logits.count != 1 ? Tensor(repeating: targets.scalars[0], shape: logits.shape) : targets
        precondition(t.shape == logits.shape,
                     "binaryCrossEntropyWithLogits: targets \(targets.shape) do not match logits \(logits.shape)")
        for y in t.scalars {
            precondition(y >= 0 && y <= 1, "binaryCrossEntropyWithLogits: target \(y) outside [0, 1]; targets are labels, not logits")
        }
        var s = 0.0
        for (xf, yf) in zip(logits.scalars, t.scalars) {
            let x = Double(xf), y = Double(yf)
            s += Swift.max(x, 0) - x * y + Foundation.log1p(Foundation.exp(-Swift.abs(x)))
        }
        let n = Float(Swift.max(logits.count, 1))
        let value = Float(s / Double(Swift.max(logits.count, 1)))
        let targetConst = t.detached()
        return record(shape: [], scalars: [value], inputs: [logits]) { g, x in
            if GradMode.enabled { return [(x[0].sigmoid() - targetConst) * (g / n)] }
            let scale = g.scalars[0] / n
            let out = zip(x[0].scalars, targetConst.scalars).map { (stableSigmoid($0) - $1) * scale }
            return [Tensor(shape: x[0].shape, scalars: out)]
        }
    }
}

extension Tensor {
    /// Batch normalisation in training mode over axis 0 (Ioffe & Szegedy 2015):
    /// `y = (x - mean) / sqrt(var + eps) * weight + bias` with the batch mean and biased batch
    /// variance, computed per feature in Double.
    ///
    /// - Shapes: `x` `[N, F]`, `weight` and `bias` `[F]` → `y` `[N, F]`; also returns the batch
    ///   `mean` and biased `variance` `[F]` (constants) for running statistics.
    /// - Gradient: the closed form `dx = inv/N (N g' - Σg' - x̂ Σ(g' x̂))` with `g' = g·weight`;
    ///   with `createGraph` the backward is rebuilt from differentiable ops.
    public static func batchNormTraining(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float)
        -> (y: Tensor, mean: [Float], variance: [Float]) {
        precondition(x.rank == 2 && weight.shape == [x.shape[1]] && bias.shape == [x.shape[1]],
                     "batchNormTraining: input \(x.shape), weight \(weight.shape), bias \(bias.shape)")
        let n = x.shape[0], f = x.shape[1]
        var mean = [Double](repeating: 0, count: f), variance = [Double](repeating: 0, count: f)
        var invStd = [Double](repeating: 0, count: f)
        var xhat = [Float](), y = [Float]()
        // conjure_bn1d_forward (sizes checked above and by construction: x, xhat, y hold n · f,
        // the rest f). Each feature's statistics and outputs come from its own column in row
        // order, so column ranges split across the pool give the same bits as one thread.
        x.withUnsafeScalars { p in
        weight.withUnsafeScalars { weight in
        bias.withUnsafeScalars { bias in
        mean.withUnsafeMutableBufferPointer { mean in
        variance.withUnsafeMutableBufferPointer { variance in
        invStd.withUnsafeMutableBufferPointer { invStd in
        xhat = [Float](unsafeUninitializedCapacity: n * f) { xhat, xhatCount in
        y = [Float](unsafeUninitializedCapacity: n * f) { y, yCount in
            Tensor.forFeatureColumns(n: n, f: f) { r in
                conjure_bn1d_forward(p.baseAddress, n, f, r.lowerBound, r.upperBound, eps, weight.baseAddress, bias.baseAddress,
                                     mean.baseAddress, variance.baseAddress, invStd.baseAddress, xhat.baseAddress, y.baseAddress)
            }
            (xhatCount, yCount) = (n * f, n * f)
        } } } } } } } }
        let xhatConst = Tensor(shape: [n, f], scalars: xhat)
        let out = record(shape: [n, f], scalars: y, inputs: [x, weight, bias]) { g, t in
            if GradMode.enabled {
                // Differentiable recomputation for higher-order gradients.
                let mu = t[0].mean(axes: [0])
                let c = t[0] - mu
                let v = (c * c).mean(axes: [0])
                let yy = c / (v + eps).sqrt()
                let gw = g * t[1]
                let dx = (gw - gw.mean(axes: [0]) - yy * (gw * yy).mean(axes: [0])) / (v + eps).sqrt()
                return [t[0].node == nil ? nil : dx, (g * yy).sum(axes: [0]), g.sum(axes: [0])]
            }
            let needsDx = t[0].node != nil
            var dx = [Float](repeating: 0, count: needsDx ? n * f : 0)
            var dw = [Double](repeating: 0, count: f), db = [Double](repeating: 0, count: f)
            precondition(g.shape == [n, f], "batchNormTraining backward: gradient \(g.shape) for output [\(n), \(f)]")
            g.withUnsafeScalars { gp in
            t[1].withUnsafeScalars { weight in
            xhat.withUnsafeBufferPointer { xhat in
            invStd.withUnsafeBufferPointer { invStd in
            dw.withUnsafeMutableBufferPointer { dw in
            db.withUnsafeMutableBufferPointer { db in
            dx.withUnsafeMutableBufferPointer { dx in
                Tensor.forFeatureColumns(n: n, f: f) { r in
                    conjure_bn1d_backward(gp.baseAddress, xhat.baseAddress, n, f, r.lowerBound, r.upperBound, weight.baseAddress,
                                          invStd.baseAddress, dw.baseAddress, db.baseAddress, needsDx ? dx.baseAddress : nil)
                }
            } } } } } } }
            _ = xhatConst
            return [needsDx ? Tensor(shape: [n, f], scalars: dx) : nil,
                    Tensor(shape: [f], scalars: dw.map { Float($0) }), Tensor(shape: [f], scalars: db.map { Float($0) })]
        }
        return (out, mean.map { Float($0) }, variance.map { Float($0) })
    }
}

extension Tensor {
    /// `body` over ranges of the `f` feature columns of an `[n, f]` batch: split across the
    /// pool (ranges of at least 16 columns) from 2 · ``mapSplitCount`` elements and 32 columns,
    /// else one call over all. For per-feature work that reads each column in row order, so any
    /// split gives the same values (batch normalisation, a bias gradient's column sums).
    static func forFeatureColumns(n: Int, f: Int, _ body: (Range<Int>) -> Void) {
        if splitsAcrossPool(n * f) && f >= 32 {
            Parallel.forRanges(f, minimum: 16, body)
        } else if f > 0 {
            body(0..<f)
        }
    }
}

extension Tensor {
    /// Log-softmax over the last axis, `x - logsumexp(x)` with the maximum subtracted first.
    ///
    /// - Shapes: `[N, K]` → `[N, K]`.
    /// - Gradient: `g - softmax(x) * sum(g)` per row.
    public func logSoftmax() -> Tensor {
        precondition(rank == 2, "logSoftmax: expected [N, K], got \(shape)")
        let n = shape[0], k = shape[1]
        var out = [Float](repeating: 0, count: count)
        withUnsafeScalars { p in
            for i in 0..<n {
                var m = -Float.infinity
                for j in 0..<k { m = Swift.max(m, p[i * k + j]) }
                var s = 0.0
                for j in 0..<k { s += Foundation.exp(Double(p[i * k + j] - m)) }
                let lse = Double(m) + Foundation.log(s)
                for j in 0..<k { out[i * k + j] = Float(Double(p[i * k + j]) - lse) }
            }
        }
        let outConst = Tensor(shape: shape, scalars: out)
        return Tensor.record(shape: shape, scalars: out, inputs: [self]) { g, x in
            let sm = GradMode.enabled ? x[0].logSoftmax().exp() : outConst.exp()
            return [g - sm * g.sum(axes: [1], keepDims: true)]
        }
    }

    /// Mean softmax cross-entropy `mean_i(logsumexp(x_i) - x_i[y_i])` of logits and class
    /// indices (PyTorch's `F.cross_entropy`).
    ///
    /// - Shapes: `logits` `[N, K]`, `labels` N integers in `0..<K`.
    public static func softmaxCrossEntropy(logits: Tensor, labels: [Int]) -> Tensor {
        precondition(logits.rank == 2 && logits.shape[0] == labels.count,
                     "softmaxCrossEntropy: logits \(logits.shape) for \(labels.count) labels")
        let k = logits.shape[1]
        precondition(labels.allSatisfy { $0 >= 0 && $0 < k }, "softmaxCrossEntropy: labels must be in 0..<\(k)")
        let oneHot = Tensor(shape: logits.shape, scalars: (0..<logits.count).map { labels[$0 / k] == $0 % k ? 1 : 0 })
        return -(logits.logSoftmax() * oneHot).sum() * (1 / Float(Swift.max(labels.count, 1)))
    }
}
