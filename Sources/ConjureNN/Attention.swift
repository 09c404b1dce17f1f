import Foundation

/// Multi-head self-attention with the layout and state-dict names of PyTorch's
/// `nn.MultiheadAttention(embed_dim, num_heads, batch_first=True)` called with
/// `query = key = value = x` (Vaswani et al. 2017), without dropout:
/// `[q; k; v] = x W_inᵀ + b_in`, per head `softmax(q kᵀ / sqrt(d) + mask) v` with
/// `d = embedDim / numHeads`, heads concatenated, then `out_proj`.
///
/// - Shapes: input and output `[B, T, embedDim]`; `in_proj_weight` `[3 embedDim, embedDim]`
///   (rows `[W_q; W_k; W_v]`), `in_proj_bias` `[3 embedDim]`, `out_proj.weight`
///   `[embedDim, embedDim]`, `out_proj.bias` `[embedDim]`.
/// - Initialisation (PyTorch's): `in_proj_weight` Xavier-uniform, `out_proj.weight`
///   `U(-1/sqrt(embedDim), 1/sqrt(embedDim))`, both biases zero.
public final class MultiheadSelfAttention: Layer {
    /// Width E of each position's vector, input and output (`embed_dim`).
    public let embedDim: Int
    /// Number of attention heads H; each head works on `embedDim / numHeads` features.
    public let numHeads: Int
    /// Whether ``callAsFunction(_:)`` applies the causal mask (position i attends to j ≤ i).
    public var causal: Bool
    /// The stacked query, key and value projections `[3 embedDim, embedDim]` (`in_proj_weight`).
    public let inProjWeight: Parameter
    /// The stacked q, k, v biases `[3 embedDim]` (`in_proj_bias`), starting at zeros.
    public let inProjBias: Parameter
    /// The output projection `[embedDim, embedDim]` (`out_proj.weight`).
    public let outProjWeight: Parameter
    /// The output projection's bias `[embedDim]` (`out_proj.bias`), starting at zeros.
    public let outProjBias: Parameter
    /// Unused (no dropout, so no mode-dependent behaviour).
    public var isTraining = true

    /// - Precondition: `numHeads` divides `embedDim`, both positive.
    public init(embedDim: Int, numHeads: Int, causal: Bool = false, rng: inout RandomGenerator) {
        precondition(embedDim > 0 && numHeads > 0 && embedDim % numHeads == 0,
                     "MultiheadSelfAttention: embedDim \(embedDim) must be a positive multiple of numHeads \(numHeads)")
        self.embedDim = embedDim
        self.numHeads = numHeads
        self.causal = causal
        let a = (6 / Float(embedDim + 3 * embedDim)).squareRoot()
        inProjWeight = Parameter(.randomUniform([3 * embedDim, embedDim], low: -a, high: a, using: &rng))
        inProjBias = Parameter(.zeros([3 * embedDim]))
        let bound = 1 / Float(embedDim).squareRoot()
        outProjWeight = Parameter(.randomUniform([embedDim, embedDim], low: -bound, high: bound, using: &rng))
        outProjBias = Parameter(.zeros([embedDim]))
    }

    /// Self-attention with the causal mask when ``causal`` is set.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        attention(x, mask: nil, causal: causal)
    }

    /// An additive `[T, T]` mask: 0 where query i may attend to key j (j ≤ i), `-inf` above the
    /// diagonal (PyTorch's float `attn_mask` convention).
    public static func causalMask(_ t: Int) -> Tensor {
        var m = [Float](repeating: 0, count: t * t)
        for i in 0..<t { for j in (i + 1)..<Swift.max(i + 1, t) { m[i * t + j] = -.infinity } }
        return Tensor(shape: [t, t], scalars: m)
    }

    /// Self-attention of `x` with an additive mask on the scores.
    ///
    /// - Parameters:
    ///   - x: `[B, T, embedDim]`.
    ///   - mask: `[T, T]` added to every head's scores before the softmax (0 to keep, `-inf` to
    ///     drop; each row must keep one key), or nil.
    /// - Returns: `[B, T, embedDim]`.
    public func attention(_ x: Tensor, mask: Tensor?) -> Tensor {
        attention(x, mask: mask, causal: false)
    }

    /// Self-attention with an optional additive mask and, with `causal`, the causal mask applied
    /// inside the softmax (``Tensor/causalSoftmax()``) rather than added as a `[T, T]` tensor.
    /// Without an additive mask the heads run as one fused op
    /// (``Tensor/multiheadSelfAttention(qkv:batch:heads:causal:)``).
    func attention(_ x: Tensor, mask: Tensor?, causal: Bool) -> Tensor {
        precondition(x.rank == 3 && x.shape[2] == embedDim,
                     "MultiheadSelfAttention: input \(x.shape) is not [B, T, \(embedDim)]")
        let b = x.shape[0], t = x.shape[1], e = embedDim, h = numHeads, d = e / h
        if let mask { precondition(mask.shape == [t, t], "MultiheadSelfAttention: mask \(mask.shape) for \(t) positions") }
        let qkv = Tensor.linear(x.reshaped([b * t, e]), weight: inProjWeight.value, bias: inProjBias.value)
        if mask == nil {
            // One fused op from the stacked projections to the concatenated heads.
            let merged = Tensor.multiheadSelfAttention(qkv: qkv, batch: b, heads: h, causal: causal)
            return Tensor.linear(merged, weight: outProjWeight.value, bias: outProjBias.value).reshaped([b, t, e])
        }
        // [B·T, 3E] -> [3, B, H, T, d] in one permutation, then q, k, v as [B·H, T, d].
        let heads = qkv.reshaped([b, t, 3, h, d]).permuted([2, 0, 3, 1, 4])
        func part(_ i: Int) -> Tensor { heads.slice(axis: 0, i..<(i + 1)).reshaped([b * h, t, d]) }
        let q = part(0), k = part(1), v = part(2)
        // q is scaled by 1/√d before the product (as PyTorch's MultiheadAttention), a T/d-times
        // smaller pass than scaling the scores.
        var scores = Tensor.batchedMatmul(q * (1 / Float(d).squareRoot()), k, transposeB: true)
        if let mask { scores = scores + mask }
        let weights = causal ? scores.causalSoftmax() : scores.softmax(axis: -1)
        let context = Tensor.batchedMatmul(weights, v)  // [B·H, T, d]
        let merged = context.reshaped([b, h, t, d]).permuted([0, 2, 1, 3]).reshaped([b * t, e])
        return Tensor.linear(merged, weight: outProjWeight.value, bias: outProjBias.value).reshaped([b, t, e])
    }

    /// `in_proj_weight`, `in_proj_bias`, `out_proj.weight`, `out_proj.bias` (PyTorch's order).
    public var namedParameters: [(String, Parameter)] {
        [("in_proj_weight", inProjWeight), ("in_proj_bias", inProjBias),
         ("out_proj.weight", outProjWeight), ("out_proj.bias", outProjBias)]
    }
}
