import CConjureKernels

extension Tensor {
    /// Multi-head scaled dot-product self-attention (Vaswani et al. 2017) fused into one op on
    /// the stacked in-projection output: per (batch, head) slice
    /// `softmax(q kᵀ / sqrt(d) [+ causal mask]) v`, read straight from `qkv` and written
    /// straight into the heads-concatenated layout, so no permuted copies of q, k, v or of the
    /// context are made, and with `causal` only the kept (lower-triangle) scores are computed.
    /// The same values, up to float rounding, as slicing q, k, v out of `qkv`, two
    /// ``batchedMatmul(_:_:transposeA:transposeB:)`` and ``causalSoftmax()`` (or
    /// ``softmax(axis:)``).
    ///
    /// - Parameters:
    ///   - qkv: `[B·T, 3E]` with `E = heads · d`: row `b·T + t` holds `q`, then `k`, then `v`,
    ///     each `E` wide with head `h` at columns `h·d ..< (h + 1)·d` (PyTorch's
    ///     `nn.MultiheadAttention` in-projection layout, `x W_inᵀ + b_in`).
    ///   - batch: `B` (≥ 1); the sequence length is `T = qkv.shape[0] / B`.
    ///   - heads: `H` (≥ 1, divides `E`).
    ///   - causal: position `i` attends to keys `j ≤ i` only (the `-inf` upper-triangular mask).
    /// - Returns: `[B·T, E]`, the heads' contexts concatenated (the input of `out_proj`).
    /// - Gradient: with respect to `qkv`, by a fused kernel that recomputes the attention weights
    ///   `P` from each row's saved maximum and normaliser (`dv = Pᵀ dO`, `dS = P ⊙ (dO vᵀ - rowsum(P ⊙ dO vᵀ))`, `dq = dS k / sqrt(d)`,
    ///   `dk = dSᵀ q / sqrt(d)`); with `createGraph` through the unfused ops (second order).
    /// - Precondition: the shapes above.
    public static func multiheadSelfAttention(qkv: Tensor, batch: Int, heads: Int, causal: Bool) -> Tensor {
        precondition(qkv.rank == 2 && batch >= 1 && heads >= 1 && qkv.shape[0] % batch == 0
                        && qkv.shape[1] % (3 * heads) == 0 && qkv.shape[1] > 0,
                     "multiheadSelfAttention: qkv \(qkv.shape) is not [B·T, 3·E] for B = \(batch), \(heads) heads")
        let t = qkv.shape[0] / batch, e = qkv.shape[1] / 3, d = e / heads, slices = batch * heads
        let scale = 1 / Float(d).squareRoot()
        if t == 0 { return Tensor.zeros([0, e]) }
        let outCount = batch * t * e, statCount = slices * t * 2, work = slices * t * t * d
        var stats = [Float](unsafeUninitializedCapacity: statCount) { _, i in i = statCount }
        let out = [Float](unsafeUninitializedCapacity: outCount) { buf, initialised in
            qkv.withUnsafeScalars { px in
                stats.withUnsafeMutableBufferPointer { pp in
                    let (x0, o0, p0) = (px.baseAddress!, buf.baseAddress!, pp.baseAddress!)
                    attentionSlices(slices, work: work) { r in
                        conjure_attention_forward(x0, o0, p0, t, heads, d, scale, causal ? 1 : 0, r.lowerBound, r.upperBound)
                    }
                }
            }
            initialised = outCount
        }
        let saved = stats
        return record(shape: [batch * t, e], scalars: out, inputs: [qkv]) { g, x in
            if GradMode.enabled {
                let y = unfusedSelfAttention(qkv: x[0], batch: batch, heads: heads, causal: causal)
                return [Tensor.gradients(of: y, seed: g, wrt: [x[0]], createGraph: true)[0]]
            }
            let n = batch * t * 3 * e
            let dx = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
                x[0].withUnsafeScalars { px in g.withUnsafeScalars { pg in saved.withUnsafeBufferPointer { pp in
                    let (x0, g0, p0, d0) = (px.baseAddress!, pg.baseAddress!, pp.baseAddress!, buf.baseAddress!)
                    attentionSlices(slices, work: 2 * work) { r in
                        conjure_attention_backward(x0, p0, g0, d0, t, heads, d, scale, causal ? 1 : 0, r.lowerBound, r.upperBound)
                    }
                } } }
                initialised = n
            }
            return [Tensor(shape: [batch * t, 3 * e], scalars: dx)]
        }
    }

    /// The attention of ``multiheadSelfAttention(qkv:batch:heads:causal:)`` from unfused,
    /// differentiable ops (permutation, batched products, softmax), for gradients of gradients.
    ///
    /// - Shapes: `qkv` `[B·T, 3E]` → `[B·T, E]`.
    static func unfusedSelfAttention(qkv: Tensor, batch: Int, heads: Int, causal: Bool) -> Tensor {
        let t = qkv.shape[0] / batch, e = qkv.shape[1] / 3, d = e / heads
        let parts = qkv.reshaped([batch, t, 3, heads, d]).permuted([2, 0, 3, 1, 4])
        func part(_ i: Int) -> Tensor { parts.slice(axis: 0, i..<(i + 1)).reshaped([batch * heads, t, d]) }
        let scores = batchedMatmul(part(0) * (1 / Float(d).squareRoot()), part(1), transposeB: true)
        let weights = causal ? scores.causalSoftmax() : scores.softmax(axis: -1)
        return batchedMatmul(weights, part(2)).reshaped([batch, heads, t, d]).permuted([0, 2, 1, 3]).reshaped([batch * t, e])
    }

    /// Runs `body` over ranges of the `slices` (batch, head) attention slices, split across the
    /// pool when the pass does at least ``Parallel/gemmSplitFLOPs`` / 2 multiply-adds (each
    /// slice's result does not depend on the split).
    @inline(__always)
    static func attentionSlices(_ slices: Int, work: Int, _ body: (Range<Int>) -> Void) {
        if slices >= 2 && Parallel.threads > 1 && 2 * work >= Parallel.gemmSplitFLOPs {
            Parallel.forRanges(slices, minimum: 1, alignment: 1, body)
        } else {
            body(0..<slices)
        }
    }
}
