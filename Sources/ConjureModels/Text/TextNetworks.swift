import Foundation
import ConjureData
import ConjureNN

/// A character network: next-token logits at chosen positions of a batch of token rows.
///
/// Causality: the logits at position `t` of a row depend on the row's tokens `0...t` only.
protocol CharNetwork: Module {
    /// Next-token logits at `positions`.
    ///
    /// - Parameters:
    ///   - tokens: `[B, T]` token indices, row-major.
    ///   - batch: `B`.
    ///   - length: `T`.
    ///   - positions: flat positions `b·T + t` to return logits for.
    ///   - noise: the step's dropout generator (unused in evaluation mode).
    /// - Returns: `[positions.count, V]` logits.
    func logits(tokens: [Int], batch: Int, length: Int, positions: [Int], noise: inout RandomGenerator) -> Tensor
}

/// Inverted dropout drawn from `rng` when `p > 0` and `training`; identity otherwise.
func textDropout(_ x: Tensor, p: Float, training: Bool, rng: inout RandomGenerator) -> Tensor {
    if !training || p == 0 { return x }
    let keep = 1 - p, scale = 1 / keep
    var mask = [Float](repeating: 0, count: x.count)
    for i in 0..<mask.count { mask[i] = rng.nextUniform() < keep ? scale : 0 }
    return x * Tensor(shape: x.shape, scalars: mask)
}

/// makemore's MLP (Bengio et al. 2003): the `k` previous tokens embedded (positions before a
/// row's start read an extra "blank" token, index `V`), concatenated, `tanh(W1 ·)`, `W2 ·`.
///
/// - State dict: `wte.weight` `[V + 1, E]`, `mlp.0.weight` `[H, k·E]`, `mlp.0.bias`,
///   `mlp.2.weight` `[V, H]`, `mlp.2.bias` (makemore's names).
final class CharMLP: CharNetwork {
    let wte: Embedding
    let mlp: Sequential
    let k: Int
    let vocab: Int
    var isTraining = true

    init(vocab: Int, context k: Int, embed: Int, hidden: Int, rng: inout RandomGenerator) {
        self.k = k
        self.vocab = vocab
        wte = Embedding(vocab + 1, embed, rng: &rng)
        mlp = Sequential([Linear(k * embed, hidden, rng: &rng), Activation(.tanh), Linear(hidden, vocab, rng: &rng)])
    }

    var children: [(String, any Module)] { [("wte", wte), ("mlp", mlp)] }

    func logits(tokens: [Int], batch: Int, length: Int, positions: [Int], noise: inout RandomGenerator) -> Tensor {
        var idx = [Int](repeating: vocab, count: positions.count * k)
        for (j, p) in positions.enumerated() {
            let b = p / length, t = p % length
            for q in 0..<k {
                let s = t - k + 1 + q
                if s >= 0 { idx[j * k + q] = tokens[b * length + s] }
            }
        }
        let e = wte.lookup(idx).reshaped([positions.count, k * wte.weight.shape[1]])
        return mlp(e)
    }
}

/// Embedding, one GRU layer from a zero state (backpropagation through time), linear head.
///
/// - State dict: `wte.weight` `[V, E]`, `rnn.weight_ih_l0` ... (PyTorch's `nn.GRU` names),
///   `lm_head.weight` `[V, H]`, `lm_head.bias`.
final class CharGRU: CharNetwork {
    let wte: Embedding
    let rnn: GRU
    let head: Linear
    var isTraining = true

    init(vocab: Int, embed: Int, hidden: Int, rng: inout RandomGenerator) {
        wte = Embedding(vocab, embed, rng: &rng)
        rnn = GRU(inputSize: embed, hiddenSize: hidden, rng: &rng)
        head = Linear(hidden, vocab, rng: &rng)
    }

    var children: [(String, any Module)] { [("wte", wte), ("rnn", rnn), ("lm_head", head)] }

    func logits(tokens: [Int], batch: Int, length: Int, positions: [Int], noise: inout RandomGenerator) -> Tensor {
        let e = wte.lookup(tokens).reshaped([batch, length, wte.weight.shape[1]])
        let h = rnn(e).reshaped([batch * length, rnn.hiddenSize])
        return head(positions.count == batch * length ? h : h.gathered(rows: positions))
    }
}

/// nanoGPT's MLP: `c_proj(gelu(c_fc(x)))`, width 4E.
final class TransformerMLP: Module {
    let fc: Linear
    let proj: Linear
    var isTraining = true
    init(width: Int, rng: inout RandomGenerator) {
        fc = Linear(width, 4 * width, rng: &rng)
        proj = Linear(4 * width, width, rng: &rng)
    }
    var children: [(String, any Module)] { [("c_fc", fc), ("c_proj", proj)] }
    /// `[B, T, E]` → `[B, T, E]`.
    func callAsFunction(_ x: Tensor) -> Tensor {
        let e = x.shape[x.rank - 1]
        return proj(fc(x.reshaped([x.count / e, e])).gelu()).reshaped(x.shape)
    }
}

/// A pre-LayerNorm transformer block: `x + drop(attn(ln_1 x))`, then `x + drop(mlp(ln_2 x))`.
final class TransformerBlock: Module {
    let ln1: LayerNorm
    let attn: MultiheadSelfAttention
    let ln2: LayerNorm
    let mlp: TransformerMLP
    var isTraining = true
    init(width: Int, heads: Int, rng: inout RandomGenerator) {
        ln1 = LayerNorm([width])
        attn = MultiheadSelfAttention(embedDim: width, numHeads: heads, causal: true, rng: &rng)
        ln2 = LayerNorm([width])
        mlp = TransformerMLP(width: width, rng: &rng)
    }
    var children: [(String, any Module)] { [("ln_1", ln1), ("attn", attn), ("ln_2", ln2), ("mlp", mlp)] }
}

/// A list of blocks named `0`, `1`, ... (PyTorch's `nn.ModuleList`).
final class BlockList: Module {
    let blocks: [TransformerBlock]
    var isTraining = true
    init(_ blocks: [TransformerBlock]) { self.blocks = blocks }
    var children: [(String, any Module)] { blocks.enumerated().map { (String($0.offset), $0.element as any Module) } }
}

/// nanoGPT's `GPT` (Radford et al. 2019): `wte` and `wpe` embeddings, dropout, `n_layer`
/// pre-LayerNorm blocks with causal multi-head self-attention and a GELU MLP, `ln_f`, and a
/// head tied to `wte` (`logits = x wteᵀ`, no bias).
///
/// - Initialisation (nanoGPT's): every linear and embedding weight N(0, 0.02²), biases 0, the
///   residual projections (`attn.out_proj`, `mlp.c_proj`) N(0, (0.02/√(2 n_layer))²).
/// - State dict: `transformer.wte.weight` `[V, E]`, `transformer.wpe.weight` `[T, E]`,
///   `transformer.h.i.{ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj}.*`, `transformer.ln_f.*`
///   (attention under `nn.MultiheadAttention`'s names; the tied head is not stored twice).
final class CharTransformer: CharNetwork {
    final class Body: Module {
        let wte: Embedding
        let wpe: Embedding
        let h: BlockList
        let lnF: LayerNorm
        var isTraining = true
        init(wte: Embedding, wpe: Embedding, h: BlockList, lnF: LayerNorm) { self.wte = wte; self.wpe = wpe; self.h = h; self.lnF = lnF }
        var children: [(String, any Module)] { [("wte", wte), ("wpe", wpe), ("h", h), ("ln_f", lnF)] }
    }
    let body: Body
    let dropout: Float
    let blockSize: Int
    var isTraining = true

    init(vocab: Int, blockSize: Int, width: Int, layers: Int, heads: Int, dropout: Float, rng: inout RandomGenerator) {
        self.dropout = dropout
        self.blockSize = blockSize
        let wte = Embedding(vocab, width, rng: &rng)
        let wpe = Embedding(blockSize, width, rng: &rng)
        let blocks = (0..<layers).map { _ in TransformerBlock(width: width, heads: heads, rng: &rng) }
        body = Body(wte: wte, wpe: wpe, h: BlockList(blocks), lnF: LayerNorm([width]))
        let std: Float = 0.02, projStd = 0.02 / Float(2 * layers).squareRoot()
        for p in [wte.weight, wpe.weight] { p.assign(.randomNormal(p.shape, std: std, using: &rng)) }
        for b in blocks {
            b.attn.inProjWeight.assign(.randomNormal(b.attn.inProjWeight.shape, std: std, using: &rng))
            b.attn.outProjWeight.assign(.randomNormal(b.attn.outProjWeight.shape, std: projStd, using: &rng))
            b.mlp.fc.weight.assign(.randomNormal(b.mlp.fc.weight.shape, std: std, using: &rng))
            b.mlp.proj.weight.assign(.randomNormal(b.mlp.proj.weight.shape, std: projStd, using: &rng))
            for l in [b.mlp.fc, b.mlp.proj] { l.bias?.assign(.zeros(l.bias!.shape)) }
        }
    }

    var children: [(String, any Module)] { [("transformer", body)] }

    func logits(tokens: [Int], batch: Int, length: Int, positions: [Int], noise: inout RandomGenerator) -> Tensor {
        precondition(length <= blockSize, "CharTransformer: \(length) positions exceed the block size \(blockSize)")
        let e = body.wte.weight.shape[1]
        let tok = body.wte.lookup(tokens).reshaped([batch, length, e])
        let pos = body.wpe.weight.value.slice(axis: 0, 0..<length).reshaped([1, length, e])
        var x = textDropout(tok + pos, p: dropout, training: isTraining, rng: &noise)
        for b in body.h.blocks {
            x = x + textDropout(b.attn(b.ln1(x)), p: dropout, training: isTraining, rng: &noise)
            x = x + textDropout(b.mlp(b.ln2(x)), p: dropout, training: isTraining, rng: &noise)
        }
        let flat = body.lnF(x).reshaped([batch * length, e])
        let picked = positions.count == batch * length ? flat : flat.gathered(rows: positions)
        return Tensor.linear(picked, weight: body.wte.weight.value, bias: nil)
    }
}
