import Foundation

// MARK: - Geometry

/// The geometry of one 2-D cross-correlation, seen from the convolution's side: an *image*
/// `[n, c, h, w]` is correlated with a kernel `[f, c, kh, kw]` to give *columns*
/// `[n, f, ho, wo]`, with `ho = (h + 2 ph - kh) / sh + 1` (likewise `wo`).
///
/// `conv2d` maps image → columns; `convTranspose2d` is its adjoint and maps columns → image
/// (its input is the convolution's output side, its output the image side).
struct ConvGeometry: Equatable {
    var n: Int, c: Int, h: Int, w: Int
    var f: Int, ho: Int, wo: Int
    var kh: Int, kw: Int
    var sh: Int, sw: Int, ph: Int, pw: Int

    /// Rows of the unfolded image: one per (channel, kernel row, kernel column).
    var k: Int { c * kh * kw }
    /// Output positions per image.
    var l: Int { ho * wo }
    var imageShape: [Int] { [n, c, h, w] }
    var columnShape: [Int] { [n, f, ho, wo] }
    var weightShape: [Int] { [f, c, kh, kw] }
}

// MARK: - Raw kernels (no autodiff)

/// im2col / col2im and the three GEMM-based convolution products, on raw buffers.
///
/// The unfolded image ("col") is `[k, n * l]`: row `(ci, i, j)`, column `(b, oh, ow)` holds
/// `image[b, ci, oh*sh - ph + i, ow*sw - pw + j]` (0 in the padding), so a whole batch takes
/// one GEMM. GEMM results in channel-major order `[f, n, l]` are transposed to `[n, f, l]`.
enum ConvKernels {
    /// Splits `0..<count` into at most ``Parallel/threads`` chunks run concurrently when
    /// `work` (elements touched) is large enough to pay for the hand-off.
    @inline(__always)
    static func parallelChunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        if work < 1 << 16 { body(0..<count); return }
        Parallel.forRanges(count, minimum: 1, alignment: 1, body)
    }

    /// The range of output columns `ow` whose input column `ow*s - p + j` lies in `0..<w`.
    @inline(__always)
    static func validRange(out: Int, size: Int, stride s: Int, pad p: Int, offset j: Int) -> Range<Int> {
        // ow*s - p + j >= 0  <=>  ow >= ceil((p - j) / s)
        let lo = p - j <= 0 ? 0 : (p - j + s - 1) / s
        // ow*s - p + j <= size - 1  <=>  ow <= floor((size - 1 + p - j) / s)
        let top = size - 1 + p - j
        let hi = top < 0 ? 0 : min(out, top / s + 1)
        return lo < hi ? lo..<hi : 0..<0
    }

    /// Unfolds `image` `[n, c, h, w]` into `col` `[k, n*l]`.
    static func im2col(_ image: UnsafePointer<Float>, _ g: ConvGeometry, _ col: UnsafeMutablePointer<Float>) {
        let nl = g.n * g.l, khw = g.kh * g.kw
        parallelChunks(g.k, work: g.k * nl) { rows in
            for r in rows {
                let ci = r / khw, i = (r / g.kw) % g.kh, j = r % g.kw
                let owRange = validRange(out: g.wo, size: g.w, stride: g.sw, pad: g.pw, offset: j)
                let dstRow = col + r * nl
                for b in 0..<g.n {
                    let src = image + (b * g.c + ci) * g.h * g.w
                    for oh in 0..<g.ho {
                        let d = dstRow + (b * g.ho + oh) * g.wo
                        let ih = oh * g.sh - g.ph + i
                        if ih < 0 || ih >= g.h || owRange.isEmpty {
                            d.update(repeating: 0, count: g.wo)
                            continue
                        }
                        let row = src + ih * g.w - g.pw + j
                        for ow in 0..<owRange.lowerBound { d[ow] = 0 }
                        if g.sw == 1 {
                            (d + owRange.lowerBound).update(from: row + owRange.lowerBound, count: owRange.count)
                        } else {
                            for ow in owRange { d[ow] = row[ow * g.sw] }
                        }
                        for ow in owRange.upperBound..<g.wo { d[ow] = 0 }
                    }
                }
            }
        }
    }

    /// Folds `col` `[k, n*l]` back into `image` `[n, c, h, w]`, summing overlaps
    /// (the adjoint of ``im2col(_:_:_:)``). `image` is overwritten.
    static func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry, _ image: UnsafeMutablePointer<Float>) {
        let nl = g.n * g.l, khw = g.kh * g.kw, hw = g.h * g.w
        // Channels are independent: each thread owns whole image channels.
        parallelChunks(g.c, work: g.k * nl) { channels in
            for ci in channels {
                for b in 0..<g.n { (image + (b * g.c + ci) * hw).update(repeating: 0, count: hw) }
                for r in (ci * khw)..<((ci + 1) * khw) {
                    let i = (r / g.kw) % g.kh, j = r % g.kw
                    let owRange = validRange(out: g.wo, size: g.w, stride: g.sw, pad: g.pw, offset: j)
                    if owRange.isEmpty { continue }
                    let srcRow = col + r * nl
                    for b in 0..<g.n {
                        let dstImage = image + (b * g.c + ci) * hw
                        for oh in 0..<g.ho {
                            let ih = oh * g.sh - g.ph + i
                            if ih < 0 || ih >= g.h { continue }
                            let s = srcRow + (b * g.ho + oh) * g.wo
                            let row = dstImage + ih * g.w - g.pw + j
                            if g.sw == 1 {
                                for ow in owRange { row[ow] += s[ow] }
                            } else {
                                for ow in owRange { row[ow * g.sw] += s[ow] }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `[n, f, l]` → `[f, n*l]`.
    static func toChannelMajor(_ src: UnsafePointer<Float>, n: Int, f: Int, l: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<n { for c in 0..<f { (dst + (c * n + b) * l).update(from: src + (b * f + c) * l, count: l) } }
    }

    /// `[f, n*l]` → `[n, f, l]`.
    static func fromChannelMajor(_ src: UnsafePointer<Float>, n: Int, f: Int, l: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<n { for c in 0..<f { (dst + (b * f + c) * l).update(from: src + (c * n + b) * l, count: l) } }
    }

    /// Unfolds an image tensor into a fresh `[k, n*l]` buffer.
    static func unfold(_ image: [Float], _ g: ConvGeometry) -> [Float] {
        let size = g.k * g.n * g.l
        return [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            image.withUnsafeBufferPointer { im2col($0.baseAddress!, g, buf.baseAddress!) }
            initialised = size
        }
    }

    /// Columns `[n, f, ho, wo]` = weight `[f, k]` · unfold(image) (+ bias per `f`).
    static func forward(col: [Float], weight: [Float], bias: [Float]?, _ g: ConvGeometry) -> [Float] {
        let nl = g.n * g.l, size = g.f * nl
        var cm = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            if let bias {
                for c in 0..<g.f { (buf.baseAddress! + c * nl).initialize(repeating: bias[c], count: nl) }
            } else {
                buf.initialize(repeating: 0)
            }
            initialised = size
        }
        if size > 0 && g.k > 0 {
            col.withUnsafeBufferPointer { pc in
                weight.withUnsafeBufferPointer { pw in
                    cm.withUnsafeMutableBufferPointer { pcm in
                        sgemm(transposeA: false, transposeB: false, m: g.f, n: nl, k: g.k,
                              a: pw.baseAddress!, b: pc.baseAddress!, beta: 1, c: pcm.baseAddress!)
                    }
                }
            }
        }
        if g.n == 1 || size == 0 { return cm }
        return [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            cm.withUnsafeBufferPointer { fromChannelMajor($0.baseAddress!, n: g.n, f: g.f, l: g.l, buf.baseAddress!) }
            initialised = size
        }
    }

    /// `columns` `[n, f, l]` in channel-major order `[f, n*l]` (no copy when n == 1).
    static func channelMajor(_ columns: [Float], _ g: ConvGeometry) -> [Float] {
        if g.n == 1 { return columns }
        let size = columns.count
        return [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            columns.withUnsafeBufferPointer { toChannelMajor($0.baseAddress!, n: g.n, f: g.f, l: g.l, buf.baseAddress!) }
            initialised = size
        }
    }

    /// Image `[n, c, h, w]` = fold(weightᵀ · columns) (+ bias per image channel `c`):
    /// the adjoint of ``forward(col:weight:bias:_:)`` in the image.
    static func adjoint(columns: [Float], weight: [Float], bias: [Float]?, _ g: ConvGeometry) -> [Float] {
        let nl = g.n * g.l, imageSize = g.n * g.c * g.h * g.w
        var out = [Float](repeating: 0, count: imageSize)
        if nl > 0 && g.k > 0 && g.f > 0 {
            let cm = channelMajor(columns, g)
            var col = [Float](unsafeUninitializedCapacity: g.k * nl) { _, initialised in initialised = g.k * nl }
            cm.withUnsafeBufferPointer { pg in
                weight.withUnsafeBufferPointer { pw in
                    col.withUnsafeMutableBufferPointer { pc in
                        sgemm(transposeA: true, transposeB: false, m: g.k, n: nl, k: g.f,
                              a: pw.baseAddress!, b: pg.baseAddress!, beta: 0, c: pc.baseAddress!)
                    }
                }
            }
            col.withUnsafeBufferPointer { pc in
                out.withUnsafeMutableBufferPointer { po in col2im(pc.baseAddress!, g, po.baseAddress!) }
            }
        }
        if let bias {
            let hw = g.h * g.w
            out.withUnsafeMutableBufferPointer { po in
                for b in 0..<g.n { for c in 0..<g.c {
                    let base = po.baseAddress! + (b * g.c + c) * hw, v = bias[c]
                    for i in 0..<hw { base[i] += v }
                } }
            }
        }
        return out
    }

    /// Weight `[f, k]` = columns `[f, n*l]` · unfold(image)ᵀ: the adjoint of
    /// ``forward(col:weight:bias:_:)`` in the weight.
    static func weightProduct(col: [Float], columns: [Float], _ g: ConvGeometry) -> [Float] {
        let nl = g.n * g.l, size = g.f * g.k
        var out = [Float](repeating: 0, count: size)
        if nl > 0 && size > 0 {
            let cm = channelMajor(columns, g)
            cm.withUnsafeBufferPointer { pg in
                col.withUnsafeBufferPointer { pc in
                    out.withUnsafeMutableBufferPointer { po in
                        sgemm(transposeA: false, transposeB: true, m: g.f, n: g.k, k: nl,
                              a: pg.baseAddress!, b: pc.baseAddress!, beta: 0, c: po.baseAddress!)
                    }
                }
            }
        }
        return out
    }
}

// MARK: - Differentiable convolution primitives

extension Tensor {
    /// Image → columns: `conv(image, weight) + bias`.
    ///
    /// Gradients: image ← ``convAdjoint`` of the upstream gradient, weight ← ``convWeight``
    /// (from the unfolded image kept from the forward pass when not building a graph),
    /// bias ← per-channel sums. All three are differentiable, so second order works.
    static func convForward(_ image: Tensor, _ weight: Tensor, bias: Tensor?, _ g: ConvGeometry) -> Tensor {
        let col = ConvKernels.unfold(image.scalars, g)
        let out = ConvKernels.forward(col: col, weight: weight.scalars, bias: bias?.scalars, g)
        let inputs = bias.map { [image, weight, $0] } ?? [image, weight]
        return record(shape: g.columnShape, scalars: out, inputs: inputs) { grad, t in
            var grads: [Tensor?] = [
                t[0].node == nil ? nil : convAdjoint(grad, t[1], bias: nil, g),
                t[1].node == nil ? nil
                    : GradMode.enabled ? convWeight(t[0], grad, g)
                    : Tensor(shape: g.weightShape, scalars: ConvKernels.weightProduct(col: col, columns: grad.scalars, g)),
            ]
            if t.count == 3 { grads.append(t[2].node == nil ? nil : grad.channelSums()) }
            return grads
        }
    }

    /// Columns → image: the adjoint of ``convForward`` in the image (a transposed
    /// convolution), `+ bias` per image channel.
    static func convAdjoint(_ columns: Tensor, _ weight: Tensor, bias: Tensor?, _ g: ConvGeometry) -> Tensor {
        let out = ConvKernels.adjoint(columns: columns.scalars, weight: weight.scalars, bias: bias?.scalars, g)
        let inputs = bias.map { [columns, weight, $0] } ?? [columns, weight]
        return record(shape: g.imageShape, scalars: out, inputs: inputs) { grad, t in
            // <adjoint(c, w), G> = <c, forward(G, w)> = <w, weight(G, c)>.
            var grads: [Tensor?] = [
                t[0].node == nil ? nil : convForward(grad, t[1], bias: nil, g),
                t[1].node == nil ? nil : convWeight(grad, t[0], g),
            ]
            if t.count == 3 { grads.append(t[2].node == nil ? nil : grad.channelSums()) }
            return grads
        }
    }

    /// `(image, columns)` → weight: the adjoint of ``convForward`` in the weight
    /// (the weight gradient of a convolution).
    static func convWeight(_ image: Tensor, _ columns: Tensor, _ g: ConvGeometry) -> Tensor {
        let col = ConvKernels.unfold(image.scalars, g)
        let out = ConvKernels.weightProduct(col: col, columns: columns.scalars, g)
        return record(shape: g.weightShape, scalars: out, inputs: [image, columns]) { grad, t in
            // <weight(x, c), G> = <forward(x, G), c> = <x, adjoint(c, G)>.
            [t[0].node == nil ? nil : convAdjoint(t[1], grad, bias: nil, g),
             t[1].node == nil ? nil : convForward(t[0], grad, bias: nil, g)]
        }
    }
}

// MARK: - Public convolution ops

extension Tensor {
    /// Output extent of a convolution along one axis: `(size + 2 padding - kernel) / stride + 1`.
    public static func conv2dOutputSize(_ size: Int, kernel: Int, stride: Int, padding: Int) -> Int {
        (size + 2 * padding - kernel) / stride + 1
    }

    /// Output extent of a transposed convolution along one axis:
    /// `(size - 1) stride - 2 padding + kernel + outputPadding`.
    public static func convTranspose2dOutputSize(_ size: Int, kernel: Int, stride: Int, padding: Int,
                                                 outputPadding: Int = 0) -> Int {
        (size - 1) * stride - 2 * padding + kernel + outputPadding
    }

    /// 2-D cross-correlation (PyTorch's `F.conv2d`, dilation 1, groups 1), computed as
    /// im2col + one batched SGEMM.
    ///
    /// - Parameters:
    ///   - x: input images.
    ///   - weight: kernels, PyTorch's layout.
    ///   - bias: one value per output channel, or nil.
    ///   - stride: step in both spatial axes (≥ 1).
    ///   - padding: zeros added on every side (≥ 0).
    /// - Shapes: `x` `[N, Cin, H, W]`, `weight` `[Cout, Cin, kH, kW]`, `bias` `[Cout]` →
    ///   `[N, Cout, Ho, Wo]` with `Ho = (H + 2 padding - kH) / stride + 1` (likewise `Wo`).
    /// - Gradient: input ← `convTranspose2d(g, weight)`, weight ← correlation of `x` with `g`,
    ///   bias ← `g` summed over N, H, W; each is itself differentiable (second order).
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[1],
                     "conv2d: input \(x.shape) ([N, Cin, H, W]) does not match weight \(weight.shape) ([Cout, Cin, kH, kW])")
        precondition(stride >= 1 && padding >= 0, "conv2d: stride \(stride) must be ≥ 1 and padding \(padding) ≥ 0 (input \(x.shape), weight \(weight.shape))")
        if let bias {
            precondition(bias.shape == [weight.shape[0]], "conv2d: bias \(bias.shape) for weight \(weight.shape)")
        }
        let kh = weight.shape[2], kw = weight.shape[3]
        let ho = conv2dOutputSize(x.shape[2], kernel: kh, stride: stride, padding: padding)
        let wo = conv2dOutputSize(x.shape[3], kernel: kw, stride: stride, padding: padding)
        precondition(x.shape[2] + 2 * padding >= kh && x.shape[3] + 2 * padding >= kw && ho >= 1 && wo >= 1,
                     "conv2d: kernel of weight \(weight.shape) is larger than the padded input \(x.shape) (padding \(padding))")
        let g = ConvGeometry(n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3],
                             f: weight.shape[0], ho: ho, wo: wo, kh: kh, kw: kw,
                             sh: stride, sw: stride, ph: padding, pw: padding)
        return convForward(x, weight, bias: bias, g)
    }

    /// 2-D transposed convolution (PyTorch's `F.conv_transpose2d`, dilation 1, groups 1): the
    /// gradient of `conv2d` with respect to its input, computed as SGEMM + col2im.
    ///
    /// - Parameters:
    ///   - x: input feature maps.
    ///   - weight: kernels, PyTorch's layout `[Cin, Cout, kH, kW]`.
    ///   - bias: one value per output channel, or nil.
    ///   - stride: step in both spatial axes (≥ 1).
    ///   - padding: rows/columns removed from every side of the full output (≥ 0).
    ///   - outputPadding: extra rows/columns on the bottom/right (`0 ≤ outputPadding < stride`).
    /// - Shapes: `x` `[N, Cin, H, W]`, `weight` `[Cin, Cout, kH, kW]`, `bias` `[Cout]` →
    ///   `[N, Cout, Ho, Wo]` with `Ho = (H - 1) stride - 2 padding + kH + outputPadding`.
    /// - Gradient: input ← `conv2d(g, weight)`, weight ← correlation of `g` with `x`,
    ///   bias ← `g` summed over N, H, W; each is itself differentiable (second order).
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1,
                                       padding: Int = 0, outputPadding: Int = 0) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[0],
                     "convTranspose2d: input \(x.shape) ([N, Cin, H, W]) does not match weight \(weight.shape) ([Cin, Cout, kH, kW])")
        precondition(stride >= 1 && padding >= 0 && outputPadding >= 0 && outputPadding < stride,
                     "convTranspose2d: need stride ≥ 1, padding ≥ 0, 0 ≤ outputPadding < stride; got stride \(stride), padding \(padding), outputPadding \(outputPadding) (input \(x.shape), weight \(weight.shape))")
        if let bias {
            precondition(bias.shape == [weight.shape[1]], "convTranspose2d: bias \(bias.shape) for weight \(weight.shape)")
        }
        let kh = weight.shape[2], kw = weight.shape[3]
        let hy = convTranspose2dOutputSize(x.shape[2], kernel: kh, stride: stride, padding: padding, outputPadding: outputPadding)
        let wy = convTranspose2dOutputSize(x.shape[3], kernel: kw, stride: stride, padding: padding, outputPadding: outputPadding)
        precondition(hy >= 1 && wy >= 1 && x.shape[2] >= 1 && x.shape[3] >= 1,
                     "convTranspose2d: empty output \([x.shape[0], weight.shape[1], hy, wy]) for input \(x.shape), weight \(weight.shape), padding \(padding)")
        let g = ConvGeometry(n: x.shape[0], c: weight.shape[1], h: hy, w: wy,
                             f: weight.shape[0], ho: x.shape[2], wo: x.shape[3], kh: kh, kw: kw,
                             sh: stride, sw: stride, ph: padding, pw: padding)
        // The conv geometry must map the output back onto the input exactly.
        precondition(conv2dOutputSize(hy, kernel: kh, stride: stride, padding: padding) == x.shape[2]
                     && conv2dOutputSize(wy, kernel: kw, stride: stride, padding: padding) == x.shape[3],
                     "convTranspose2d: inconsistent geometry for input \(x.shape), weight \(weight.shape)")
        return convAdjoint(x, weight, bias: bias, g)
    }
}

// MARK: - Per-channel helpers

extension Tensor {
    /// Sums over every axis except axis 1: `[N, C, ...]` → `[C]` (accumulated in Double).
    ///
    /// - Gradient: the upstream `[C]` broadcast back over N and the trailing axes.
    public func channelSums() -> Tensor {
        precondition(rank >= 2, "channelSums: expected [N, C, ...], got \(shape)")
        let n = shape[0], c = shape[1], inner = shape.dropFirst(2).reduce(1, *)
        var acc = [Double](repeating: 0, count: c)
        scalars.withUnsafeBufferPointer { p in
            for b in 0..<n { for ch in 0..<c {
                let base = (b * c + ch) * inner
                var s: Double = 0
                for i in 0..<inner { s += Double(p[base + i]) }
                acc[ch] += s
            } }
        }
        let full = shape
        return Tensor.record(shape: [c], scalars: acc.map { Float($0) }, inputs: [self]) { g, _ in
            [g.broadcastChannels(to: full)]
        }
    }

    /// A `[C]` tensor repeated over `[N, C, ...]` (value `self[c]` at channel `c`).
    ///
    /// - Gradient: ``channelSums()`` of the upstream gradient.
    public func broadcastChannels(to target: [Int]) -> Tensor {
        precondition(rank == 1 && target.count >= 2 && target[1] == shape[0],
                     "broadcastChannels: \(shape) cannot broadcast over channel axis 1 of \(target)")
        let n = target[0], c = target[1], inner = target.dropFirst(2).reduce(1, *)
        let size = n * c * inner
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            for b in 0..<n { for ch in 0..<c {
                (buf.baseAddress! + (b * c + ch) * inner).initialize(repeating: scalars[ch], count: inner)
            } }
            initialised = size
        }
        return Tensor.record(shape: target, scalars: out, inputs: [self]) { g, _ in [g.channelSums()] }
    }

    /// Per-channel affine map `y[n, c, ...] = x[n, c, ...] * scale[c] + shift[c]` (either may be
    /// nil, meaning 1 and 0).
    ///
    /// - Shapes: `x` `[N, C, ...]`, `scale` and `shift` `[C]` → `[N, C, ...]`.
    /// - Gradient: x ← `channelAffine(g, scale)`, scale ← `channelSums(g * x)`,
    ///   shift ← `channelSums(g)`; differentiable again.
    public static func channelAffine(_ x: Tensor, scale: Tensor?, shift: Tensor?) -> Tensor {
        precondition(x.rank >= 2, "channelAffine: expected [N, C, ...], got \(x.shape)")
        let n = x.shape[0], c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
        if let scale { precondition(scale.shape == [c], "channelAffine: scale \(scale.shape) for input \(x.shape)") }
        if let shift { precondition(shift.shape == [c], "channelAffine: shift \(shift.shape) for input \(x.shape)") }
        let size = x.count
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            x.scalars.withUnsafeBufferPointer { px in
                for b in 0..<n { for ch in 0..<c {
                    let base = (b * c + ch) * inner
                    let s = scale?.scalars[ch] ?? 1, t = shift?.scalars[ch] ?? 0
                    for i in 0..<inner { buf[base + i] = px[base + i] * s + t }
                } }
            }
            initialised = size
        }
        var inputs = [x]
        if let scale { inputs.append(scale) }
        if let shift { inputs.append(shift) }
        let hasScale = scale != nil
        return record(shape: x.shape, scalars: out, inputs: inputs) { g, t in
            let s: Tensor? = hasScale ? t[1] : nil
            var grads: [Tensor?] = [t[0].node == nil ? nil : (s == nil ? g : channelAffine(g, scale: s, shift: nil))]
            if hasScale { grads.append(t[1].node == nil ? nil : (g * t[0]).channelSums()) }
            if t.count > (hasScale ? 2 : 1) { grads.append(t[t.count - 1].node == nil ? nil : g.channelSums()) }
            return grads
        }
    }
}

// MARK: - Batch normalisation over [N, C, ...]

extension Tensor {
    /// Batch normalisation in training mode per channel (axis 1) over the batch and every
    /// trailing axis (Ioffe & Szegedy 2015; PyTorch's `BatchNorm2d` in training):
    /// `y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c` with the batch mean and the
    /// biased batch variance, computed in Double.
    ///
    /// - Shapes: `x` `[N, C, ...]` (e.g. `[N, C, H, W]`), `weight`, `bias` `[C]` → `y` like `x`;
    ///   also the batch `mean` and biased `variance` `[C]` (constants) for running statistics.
    /// - Gradient: closed form `dx = invStd (g' - mean(g') - x̂ mean(g' x̂))`, `g' = g·weight`,
    ///   means over the `M = N·H·W` elements of a channel; with `createGraph` the backward is
    ///   built from differentiable ops.
    public static func batchNorm2dTraining(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float)
        -> (y: Tensor, mean: [Float], variance: [Float]) {
        precondition(x.rank >= 2 && weight.shape == [x.shape[1]] && bias.shape == [x.shape[1]],
                     "batchNorm2dTraining: input \(x.shape) ([N, C, ...]), weight \(weight.shape), bias \(bias.shape)")
        let n = x.shape[0], c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
        let m = n * inner
        precondition(m > 0, "batchNorm2dTraining: empty batch \(x.shape)")
        var mean = [Double](repeating: 0, count: c), variance = [Double](repeating: 0, count: c)
        var invStd = [Double](repeating: 0, count: c)
        var xhat = [Float](repeating: 0, count: x.count), y = [Float](repeating: 0, count: x.count)
        x.scalars.withUnsafeBufferPointer { p in
            for b in 0..<n { for ch in 0..<c {
                let base = (b * c + ch) * inner
                var s = 0.0
                for i in 0..<inner { s += Double(p[base + i]) }
                mean[ch] += s
            } }
            for ch in 0..<c { mean[ch] /= Double(m) }
            for b in 0..<n { for ch in 0..<c {
                let base = (b * c + ch) * inner, mu = mean[ch]
                var s = 0.0
                for i in 0..<inner { let d = Double(p[base + i]) - mu; s += d * d }
                variance[ch] += s
            } }
            for ch in 0..<c { variance[ch] /= Double(m); invStd[ch] = 1 / (variance[ch] + Double(eps)).squareRoot() }
            for b in 0..<n { for ch in 0..<c {
                let base = (b * c + ch) * inner, mu = mean[ch], inv = invStd[ch]
                let wv = Double(weight.scalars[ch]), bv = Double(bias.scalars[ch])
                for i in 0..<inner {
                    let h = (Double(p[base + i]) - mu) * inv
                    xhat[base + i] = Float(h)
                    y[base + i] = Float(h * wv + bv)
                }
            } }
        }
        let shape = x.shape
        let out = record(shape: shape, scalars: y, inputs: [x, weight, bias]) { g, t in
            if GradMode.enabled {
                // Differentiable recomputation for higher-order gradients.
                let inv = Float(1) / Float(m)
                let mu = t[0].channelSums() * inv
                let centred = channelAffine(t[0], scale: nil, shift: -mu)
                let v = (centred * centred).channelSums() * inv
                let istd = Tensor.ones([c]) / (v + eps).sqrt()
                let xh = channelAffine(centred, scale: istd, shift: nil)
                let gw = channelAffine(g, scale: t[1], shift: nil)
                let m1 = gw.channelSums() * inv, m2 = (gw * xh).channelSums() * inv
                let dx = channelAffine(channelAffine(gw, scale: nil, shift: -m1) - channelAffine(xh, scale: m2, shift: nil),
                                       scale: istd, shift: nil)
                return [t[0].node == nil ? nil : dx,
                        t[1].node == nil ? nil : (g * xh).channelSums(),
                        t[2].node == nil ? nil : g.channelSums()]
            }
            var dw = [Double](repeating: 0, count: c), db = [Double](repeating: 0, count: c)
            g.scalars.withUnsafeBufferPointer { gp in
                for b in 0..<n { for ch in 0..<c {
                    let base = (b * c + ch) * inner
                    var s0 = 0.0, s1 = 0.0
                    for i in 0..<inner { let gv = Double(gp[base + i]); s0 += gv; s1 += gv * Double(xhat[base + i]) }
                    db[ch] += s0; dw[ch] += s1
                } }
            }
            var dx: Tensor? = nil
            if t[0].node != nil {
                var out = [Float](repeating: 0, count: g.count)
                g.scalars.withUnsafeBufferPointer { gp in
                    for b in 0..<n { for ch in 0..<c {
                        let base = (b * c + ch) * inner
                        let wv = Double(t[1].scalars[ch]), inv = invStd[ch]
                        let a = db[ch] / Double(m), bb = dw[ch] / Double(m)
                        for i in 0..<inner {
                            out[base + i] = Float(wv * inv * (Double(gp[base + i]) - a - Double(xhat[base + i]) * bb))
                        }
                    } }
                }
                dx = Tensor(shape: shape, scalars: out)
            }
            return [dx,
                    t[1].node == nil ? nil : Tensor(shape: [c], scalars: dw.map { Float($0) }),
                    t[2].node == nil ? nil : Tensor(shape: [c], scalars: db.map { Float($0) })]
        }
        return (out, mean.map { Float($0) }, variance.map { Float($0) })
    }
}
