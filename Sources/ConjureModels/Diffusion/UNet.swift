import ConjureNN

// The denoising U-Net of DDPM (Ho et al. 2020, appendix B; the PixelCNN++-style backbone):
// residual blocks with GroupNorm, SiLU, 3x3 convolutions and the time embedding added through a
// Linear, self-attention at the chosen levels, skip connections from every down-path block to
// the up path, strided 3x3 convolutions down and nearest upsampling + a 3x3 convolution up.
// The same code builds the 1-D U-Net of waveform diffusion (`ddpm-1d`): with `[C, T]` data every
// convolution is a `Conv1d` (kernel 3, or `2s - 1` for the stride-`s` downsampling), attention
// runs over the time steps, and the upsampling repeats samples along time.
// Modules with several inputs are plain `Module`s with methods; names follow the layout of
// diffusers' `UNet2DModel` closely enough that a PyTorch port maps one to one
// (`down.0.resnets.0.conv1.weight`).

/// A list of modules named by index (PyTorch's `nn.ModuleList`), for blocks that are not
/// applied in sequence.
public final class UNetList: Module {
    /// The modules in order.
    public let items: [any Module]
    /// Training mode (dropout on) or evaluation; containers pass it to their children.
    public var isTraining = true
    /// Modules named `0`, `1`, ...
    public init(_ items: [any Module]) { self.items = items }
    /// The named child modules, in `state_dict` order.
    public var children: [(String, any Module)] { items.enumerated().map { (String($0.offset), $0.element) } }
}

/// A convolution over `spatialDims` axes (1: `Conv1d` on `[N, C, L]`, 2: a square `Conv2d` on
/// `[N, C, H, W]`), PyTorch's default initialisation from `rng`; the U-Net's only place that
/// chooses between them.
///
/// - Precondition: `spatialDims` is 1 or 2; the sizes as ``Conv1d`` / ``Conv2d`` require.
public func unetConvolution(spatialDims: Int, _ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            rng: inout RandomGenerator) -> any WeightBiasLayer {
    switch spatialDims {
    case 1: return Conv1d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding, rng: &rng)
    case 2: return Conv2d(inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding, rng: &rng)
    default: preconditionFailure("unetConvolution: \(spatialDims) spatial axes (1 or 2 supported)")
    }
}

/// A residual block: `h = conv1(SiLU(norm1(x))) + time_emb_proj(SiLU(temb))[:, :, None, None]`,
/// `h = conv2(dropout(SiLU(norm2(h))))`, output `shortcut(x) + h` where the shortcut is a 1x1
/// convolution (`conv_shortcut`) when the widths differ and the identity otherwise. The
/// convolutions are 2-D (3x3) or 1-D (kernel 3) as built.
///
/// - Shapes: `x` `[N, inChannels, H, W]` (or `[N, inChannels, L]`), `temb` `[N, timeDim]` →
///   `[N, outChannels, H, W]` (or `[N, outChannels, L]`).
/// - Source: Ho et al. 2020, appendix B (Wide ResNet blocks with GroupNorm).
public final class ResidualBlock: Module {
    /// GroupNorm before the first convolution.
    public let norm1: GroupNorm
    /// 3x3 (1-D: width 3) convolution, input to output channels.
    public let conv1: any WeightBiasLayer
    /// Linear map of the time embedding to the block's channels, added after `conv1`.
    public let timeProjection: Linear
    /// GroupNorm before the second convolution.
    public let norm2: GroupNorm
    /// Dropout before the second convolution (training mode only).
    public let dropout: Dropout
    /// 3x3 (1-D: width 3) convolution, output channels to output channels.
    public let conv2: any WeightBiasLayer
    /// 1x1 (1-D: width 1) convolution on the skip path when the channel counts differ, nil otherwise.
    public let shortcut: (any WeightBiasLayer)?
    /// Training mode (dropout on) or evaluation; containers pass it to their children, and the
    /// block passes it to ``dropout`` (which has no parameters, so it is not a `state_dict` child).
    public var isTraining = true {
        didSet { dropout.isTraining = isTraining }
    }

    /// A block from `inChannels` to `outChannels` with GroupNorm of `groups` groups and
    /// dropout probability `dropout` and convolutions over `spatialDims` axes (2: images, 1:
    /// signals); PyTorch's default initialisation from `rng`.
    ///
    /// - Precondition: `groups` divides both widths; `spatialDims` is 1 or 2.
    public init(_ inChannels: Int, _ outChannels: Int, timeDim: Int, groups: Int, dropout: Float, spatialDims: Int = 2,
                rng: inout RandomGenerator) {
        norm1 = GroupNorm(numGroups: groups, numChannels: inChannels)
        conv1 = unetConvolution(spatialDims: spatialDims, inChannels, outChannels, kernelSize: 3, padding: 1, rng: &rng)
        timeProjection = Linear(timeDim, outChannels, rng: &rng)
        norm2 = GroupNorm(numGroups: groups, numChannels: outChannels)
        self.dropout = Dropout(dropout, rng: &rng)
        conv2 = unetConvolution(spatialDims: spatialDims, outChannels, outChannels, kernelSize: 3, padding: 1, rng: &rng)
        shortcut = inChannels == outChannels ? nil : unetConvolution(spatialDims: spatialDims, inChannels, outChannels, kernelSize: 1, rng: &rng)
    }

    /// The named child modules, in `state_dict` order.
    public var children: [(String, any Module)] {
        [("norm1", norm1), ("conv1", conv1), ("time_emb_proj", timeProjection), ("norm2", norm2), ("conv2", conv2)]
            + (shortcut.map { [("conv_shortcut", $0 as any Module)] } ?? [])
    }

    /// Applies the block (see the type's documentation).
    public func callAsFunction(_ x: Tensor, _ temb: Tensor) -> Tensor {
        var h = conv1(norm1.silu(x))
        let t = timeProjection(temb.silu())
        h = h + t.reshaped([t.shape[0], t.shape[1]] + [Int](repeating: 1, count: x.rank - 2))
        h = conv2(dropout(norm2.silu(h)))
        return (shortcut?(x) ?? x) + h
    }
}

/// Self-attention over the positions of a feature map with a residual connection:
/// `x + attn(norm(x))` where the `H·W` pixels (or the `L` time steps of a signal) are the
/// sequence and the channels the embedding (one or more heads; PyTorch's
/// `nn.MultiheadAttention` names under `attn`).
///
/// - Shapes: `[N, C, H, W]` → `[N, C, H, W]`, or `[N, C, L]` → `[N, C, L]`.
public final class AttentionBlock: Module {
    /// GroupNorm before the attention.
    public let norm: GroupNorm
    /// Multi-head self-attention over the H·W (or L) positions (`[N, H·W, C]`).
    public let attention: MultiheadSelfAttention
    /// Training mode (dropout on) or evaluation; containers pass it to their children.
    public var isTraining = true

    /// A block over `channels` with `heads` heads.
    public init(_ channels: Int, heads: Int, groups: Int, rng: inout RandomGenerator) {
        norm = GroupNorm(numGroups: groups, numChannels: channels)
        attention = MultiheadSelfAttention(embedDim: channels, numHeads: heads, rng: &rng)
    }

    /// The named child modules, in `state_dict` order.
    public var children: [(String, any Module)] { [("norm", norm), ("attn", attention)] }

    /// Applies the block.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.rank >= 3, "AttentionBlock: input \(x.shape), expected [N, C, H, W] or [N, C, L]")
        let (n, c) = (x.shape[0], x.shape[1]), positions = x.shape.dropFirst(2).reduce(1, *)
        let seq = norm(x).reshaped([n, c, positions]).permuted([0, 2, 1])
        let out = attention(seq).permuted([0, 2, 1]).reshaped(x.shape)
        return x + out
    }
}

/// One level of the down path: `blocks` residual blocks (each followed by attention when the
/// level has it), then a strided convolution (`downsample.conv`: 3x3 stride 2 for images; kernel
/// `2s - 1`, stride `s`, padding `s - 1` for signals) unless it is the last level.
public final class DownLevel: Module {
    /// The residual blocks of this level.
    public let resnets: UNetList
    /// Self-attention after each residual block at attention levels (empty elsewhere).
    public let attentions: UNetList?
    /// Strided convolution dividing the resolution by the downsampling stride; nil at the lowest level.
    public let downsample: (any WeightBiasLayer)?
    /// Training mode (dropout on) or evaluation; containers pass it to their children.
    public var isTraining = true

    init(resnets: [ResidualBlock], attentions: [AttentionBlock]?, downsample: (any WeightBiasLayer)?) {
        self.resnets = UNetList(resnets)
        self.attentions = attentions.map { UNetList($0) }
        self.downsample = downsample
    }

    /// The named child modules, in `state_dict` order.
    public var children: [(String, any Module)] {
        [("resnets", resnets as any Module)] + (attentions.map { [("attentions", $0 as any Module)] } ?? [])
            + (downsample.map { [("downsample.conv", $0 as any Module)] } ?? [])
    }
}

/// One level of the up path: `blocks + 1` residual blocks, each taking the previous output
/// concatenated with one skip along the channels (and followed by attention when the level has
/// it), then nearest upsampling by the downsampling stride and a 3x3 (1-D: width 3) convolution
/// (`upsample.conv`) unless it is level 0.
public final class UpLevel: Module {
    /// The residual blocks of this level.
    public let resnets: UNetList
    /// Self-attention after each residual block at attention levels (empty elsewhere).
    public let attentions: UNetList?
    /// The convolution after nearest-neighbour upsampling; nil at the top level.
    public let upsample: (any WeightBiasLayer)?
    /// Training mode (dropout on) or evaluation; containers pass it to their children.
    public var isTraining = true

    init(resnets: [ResidualBlock], attentions: [AttentionBlock]?, upsample: (any WeightBiasLayer)?) {
        self.resnets = UNetList(resnets)
        self.attentions = attentions.map { UNetList($0) }
        self.upsample = upsample
    }

    /// The named child modules, in `state_dict` order.
    public var children: [(String, any Module)] {
        [("resnets", resnets as any Module)] + (attentions.map { [("attentions", $0 as any Module)] } ?? [])
            + (upsample.map { [("upsample.conv", $0 as any Module)] } ?? [])
    }
}

/// The denoiser ε_θ(x_t, t[, y]) (or v_θ) of a diffusion model.
///
/// `temb = time_embed(sinusoid(t))` (`time_embed.0` Linear base→4·base, SiLU, `time_embed.2`
/// Linear 4·base→4·base); for a conditional net `temb += label_embed(y)` with class
/// `classes` as the null (unconditional) label. Then `conv_in` (C→base), the down levels,
/// the middle (`mid.resnet1`, `mid.attention`, `mid.resnet2`), the up levels, and
/// `norm_out`, SiLU, `conv_out` (base→C, zero-initialised so that training starts from a zero
/// prediction, as in Ho et al.'s code).
///
/// The network is 2-D for images (`DiffusionConfig/imageShape` `[C, H, W]`) and 1-D for
/// signals (`[C, T]`: Conv1d, attention over time steps, upsampling along time).
///
/// - Shapes: `x` `[N, C, H, W]` with `H`, `W` divisible by `s^(levels-1)` (or `[N, C, T]` with
///   `T` divisible by it; `s` the downsampling stride), `t` N steps, labels N classes in
///   `0...classes` → the shape of `x`.
public final class UNet: Module {
    /// The configuration the network was built from.
    public let config: DiffusionConfig
    /// MLP (Linear, SiLU, Linear) over the sinusoidal timestep embedding.
    public let timeEmbed: Sequential
    /// Class embedding added to the time embedding, with one extra null class for classifier-free guidance; nil for unconditional models.
    public let labelEmbed: Embedding?
    /// 3x3 (1-D: width 3) convolution from the data's channels to the base width.
    public let convIn: any WeightBiasLayer
    /// The levels of the down path, highest resolution first.
    public let down: UNetList
    /// The middle's first residual block (lowest resolution).
    public let midResnet1: ResidualBlock
    /// The middle's self-attention.
    public let midAttention: AttentionBlock
    /// The middle's second residual block.
    public let midResnet2: ResidualBlock
    /// The levels of the up path, with skip connections, lowest resolution first.
    public let up: UNetList
    /// GroupNorm before the output convolution.
    public let normOut: GroupNorm
    /// 3x3 (1-D: width 3) convolution to the data's channels, started at zero (as Ho et al.'s code).
    public let convOut: any WeightBiasLayer
    /// Training mode (dropout on) or evaluation; containers pass it to their children.
    public var isTraining = true

    /// Builds the network of `config` with PyTorch's default initialisation from `rng` (in
    /// `state_dict` order), `conv_out` zeroed.
    public init(config: DiffusionConfig, rng: inout RandomGenerator) {
        self.config = config
        let base = config.baseWidth, tdim = 4 * base, g = config.groups, c = config.imageShape[0]
        let heads = config.attentionHeads, p = config.dropout, dims = config.spatialDims, s = config.downsampling
        timeEmbed = Sequential([Linear(base, tdim, rng: &rng), SiLU(), Linear(tdim, tdim, rng: &rng)])
        labelEmbed = config.conditionalClasses > 0 ? Embedding(config.conditionalClasses + 1, tdim, rng: &rng) : nil
        convIn = unetConvolution(spatialDims: dims, c, base, kernelSize: 3, padding: 1, rng: &rng)
        let widths = config.channelMultipliers.map { $0 * base }
        let levels = widths.count
        var skips = [base]
        var ch = base
        var downs: [DownLevel] = []
        for (l, w) in widths.enumerated() {
            var res: [ResidualBlock] = [], att: [AttentionBlock] = []
            let hasAttention = config.attentionLevels.contains(l)
            for _ in 0..<config.blocksPerLevel {
                res.append(ResidualBlock(ch, w, timeDim: tdim, groups: g, dropout: p, spatialDims: dims, rng: &rng))
                ch = w
                if hasAttention { att.append(AttentionBlock(ch, heads: heads, groups: g, rng: &rng)) }
                skips.append(ch)
            }
            var ds: (any WeightBiasLayer)? = nil
            if l < levels - 1 {
                ds = unetConvolution(spatialDims: dims, ch, ch, kernelSize: 2 * s - 1, stride: s, padding: s - 1, rng: &rng)
                skips.append(ch)
            }
            downs.append(DownLevel(resnets: res, attentions: hasAttention ? att : nil, downsample: ds))
        }
        down = UNetList(downs)
        midResnet1 = ResidualBlock(ch, ch, timeDim: tdim, groups: g, dropout: p, spatialDims: dims, rng: &rng)
        midAttention = AttentionBlock(ch, heads: heads, groups: g, rng: &rng)
        midResnet2 = ResidualBlock(ch, ch, timeDim: tdim, groups: g, dropout: p, spatialDims: dims, rng: &rng)
        var ups: [UpLevel] = []
        for l in stride(from: levels - 1, through: 0, by: -1) {
            let w = widths[l]
            var res: [ResidualBlock] = [], att: [AttentionBlock] = []
            let hasAttention = config.attentionLevels.contains(l)
            for _ in 0...config.blocksPerLevel {
                res.append(ResidualBlock(ch + skips.removeLast(), w, timeDim: tdim, groups: g, dropout: p, spatialDims: dims, rng: &rng))
                ch = w
                if hasAttention { att.append(AttentionBlock(ch, heads: heads, groups: g, rng: &rng)) }
            }
            let us = l > 0 ? unetConvolution(spatialDims: dims, ch, ch, kernelSize: 3, padding: 1, rng: &rng) : nil
            ups.append(UpLevel(resnets: res, attentions: hasAttention ? att : nil, upsample: us))
        }
        up = UNetList(ups)
        normOut = GroupNorm(numGroups: g, numChannels: ch)
        convOut = unetConvolution(spatialDims: dims, ch, c, kernelSize: 3, padding: 1, rng: &rng)
        convOut.weight.assign(.zeros(convOut.weight.shape))
        convOut.bias?.assign(.zeros([c]))
    }

    /// The named child modules, in `state_dict` order.
    public var children: [(String, any Module)] {
        [("time_embed", timeEmbed as any Module)] + (labelEmbed.map { [("label_embed", $0 as any Module)] } ?? [])
            + [("conv_in", convIn), ("down", down), ("mid.resnet1", midResnet1), ("mid.attention", midAttention),
               ("mid.resnet2", midResnet2), ("up", up), ("norm_out", normOut), ("conv_out", convOut)]
    }

    /// Every dropout layer, in `state_dict` order of their blocks.
    var dropouts: [Dropout] {
        func collect(_ m: any Module) -> [Dropout] {
            if let r = m as? ResidualBlock { return [r.dropout] }
            return m.children.flatMap { collect($0.1) }
        }
        return collect(self)
    }

    /// The time (plus label) embedding `[N, 4·base]`.
    func embedding(_ t: [Int], labels: [Int]?) -> Tensor {
        var temb = timeEmbed(timestepEmbedding(t.map(Double.init), dim: config.baseWidth))
        if let labelEmbed {
            guard let labels else { preconditionFailure("UNet: a conditional network needs labels (\(config.conditionalClasses) is the null class)") }
            precondition(labels.count == t.count && labels.allSatisfy { $0 >= 0 && $0 <= config.conditionalClasses },
                         "UNet: \(labels.count) labels for \(t.count) samples, each in 0...\(config.conditionalClasses)")
            temb = temb + labelEmbed.lookup(labels)
        } else {
            precondition(labels == nil, "UNet: labels given to an unconditional network")
        }
        return temb
    }

    /// The network's prediction (ε or v per ``DiffusionConfig/prediction``).
    ///
    /// - Shapes: `x` `[N, C, H, W]` (or `[N, C, T]` for a 1-D net), `t` N steps in `0..<T`,
    ///   `labels` N classes (the null class ``DiffusionConfig/conditionalClasses`` for the
    ///   unconditional prediction) or nil for an unconditional net → the shape of `x`.
    public func callAsFunction(_ x: Tensor, t: [Int], labels: [Int]?) -> Tensor {
        precondition(x.rank == config.imageShape.count + 1 && Array(x.shape.dropFirst()) == config.imageShape && t.count == x.shape[0],
                     "UNet: input \(x.shape) with \(t.count) steps, expected [N] + \(config.imageShape)")
        let temb = embedding(t, labels: labels)
        var h = convIn(x)
        var skips = [h]
        for case let level as DownLevel in down.items {
            for (i, r) in level.resnets.items.enumerated() {
                h = (r as! ResidualBlock)(h, temb)
                if let a = level.attentions { h = (a.items[i] as! AttentionBlock)(h) }
                skips.append(h)
            }
            if let d = level.downsample { h = d(h); skips.append(h) }
        }
        h = midResnet2(midAttention(midResnet1(h, temb)), temb)
        for case let level as UpLevel in up.items {
            for (i, r) in level.resnets.items.enumerated() {
                h = (r as! ResidualBlock)(Tensor.concat([h, skips.removeLast()], axis: 1), temb)
                if let a = level.attentions { h = (a.items[i] as! AttentionBlock)(h) }
            }
            if let u = level.upsample {
                let s = config.downsampling
                h = u(config.spatialDims == 1 ? h.upsampleNearest1d(scale: s) : h.upsampleNearest2d(scale: s))
            }
        }
        return convOut(normOut.silu(h))
    }
}
