// MARK: - 1-D convolutions (audio) on the 2-D im2col machinery

extension Tensor {
    /// 1-D cross-correlation (PyTorch's `F.conv1d`, dilation 1, groups 1): the 2-D im2col +
    /// SGEMM convolution run on one-row images (height 1, kernel height 1, stride and padding
    /// along the length only).
    ///
    /// - Parameters:
    ///   - x: input signals.
    ///   - weight: kernels, PyTorch's layout.
    ///   - bias: one value per output channel, or nil.
    ///   - stride: step along the length (≥ 1).
    ///   - padding: zeros added at both ends (≥ 0).
    /// - Shapes: `x` `[N, Cin, L]`, `weight` `[Cout, Cin, k]`, `bias` `[Cout]` →
    ///   `[N, Cout, Lo]` with `Lo = (L + 2 padding - k) / stride + 1`.
    /// - Gradient: input ← ``convTranspose1d(_:weight:bias:stride:padding:outputPadding:)``-like
    ///   adjoint, weight ← correlation of `x` with `g`, bias ← `g` summed over N and L; each is
    ///   itself differentiable (second order).
    public static func conv1d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.rank == 3 && weight.rank == 3 && x.shape[1] == weight.shape[1],
                     "conv1d: input \(x.shape) ([N, Cin, L]) does not match weight \(weight.shape) ([Cout, Cin, k])")
        precondition(stride >= 1 && padding >= 0, "conv1d: stride \(stride) must be ≥ 1 and padding \(padding) ≥ 0 (input \(x.shape), weight \(weight.shape))")
        if let bias { precondition(bias.shape == [weight.shape[0]], "conv1d: bias \(bias.shape) for weight \(weight.shape)") }
        let k = weight.shape[2], length = x.shape[2]
        let lo = conv2dOutputSize(length, kernel: k, stride: stride, padding: padding)
        precondition(length + 2 * padding >= k && lo >= 1,
                     "conv1d: kernel of weight \(weight.shape) is longer than the padded input \(x.shape) (padding \(padding))")
        let g = ConvGeometry(n: x.shape[0], c: x.shape[1], h: 1, w: length, f: weight.shape[0], ho: 1, wo: lo,
                             kh: 1, kw: k, sh: 1, sw: stride, ph: 0, pw: padding)
        let y = convForward(x.reshaped(g.imageShape), weight.reshaped(g.weightShape), bias: bias, g)
        return y.reshaped([g.n, g.f, lo])
    }

    /// 1-D transposed convolution (PyTorch's `F.conv_transpose1d`, dilation 1, groups 1): the
    /// adjoint of ``conv1d(_:weight:bias:stride:padding:)`` in its input, as SGEMM + col2im on
    /// one-row images. WaveGAN's generator uses kernel 25, stride 4, padding 11, output padding 1
    /// (length × 4).
    ///
    /// - Parameters:
    ///   - x: input signals.
    ///   - weight: kernels, PyTorch's layout `[Cin, Cout, k]`.
    ///   - bias: one value per output channel, or nil.
    ///   - stride: step along the length (≥ 1).
    ///   - padding: positions removed from both ends of the full output (≥ 0).
    ///   - outputPadding: extra positions at the end (`0 ≤ outputPadding < stride`).
    /// - Shapes: `x` `[N, Cin, L]`, `weight` `[Cin, Cout, k]`, `bias` `[Cout]` → `[N, Cout, Lo]`
    ///   with `Lo = (L - 1) stride - 2 padding + k + outputPadding`.
    /// - Gradient: input ← `conv1d(g, weight)`, weight ← correlation of `g` with `x`, bias ← `g`
    ///   summed over N and L; each is itself differentiable (second order).
    public static func convTranspose1d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1,
                                       padding: Int = 0, outputPadding: Int = 0) -> Tensor {
        precondition(x.rank == 3 && weight.rank == 3 && x.shape[1] == weight.shape[0],
                     "convTranspose1d: input \(x.shape) ([N, Cin, L]) does not match weight \(weight.shape) ([Cin, Cout, k])")
        precondition(stride >= 1 && padding >= 0 && outputPadding >= 0 && outputPadding < stride,
                     "convTranspose1d: need stride ≥ 1, padding ≥ 0, 0 ≤ outputPadding < stride; got stride \(stride), padding \(padding), outputPadding \(outputPadding) (input \(x.shape), weight \(weight.shape))")
        if let bias { precondition(bias.shape == [weight.shape[1]], "convTranspose1d: bias \(bias.shape) for weight \(weight.shape)") }
        let k = weight.shape[2], length = x.shape[2]
        let lo = convTranspose2dOutputSize(length, kernel: k, stride: stride, padding: padding, outputPadding: outputPadding)
        precondition(lo >= 1 && length >= 1,
                     "convTranspose1d: empty output \([x.shape[0], weight.shape[1], lo]) for input \(x.shape), weight \(weight.shape), padding \(padding)")
        let g = ConvGeometry(n: x.shape[0], c: weight.shape[1], h: 1, w: lo, f: weight.shape[0], ho: 1, wo: length,
                             kh: 1, kw: k, sh: 1, sw: stride, ph: 0, pw: padding)
        precondition(conv2dOutputSize(lo, kernel: k, stride: stride, padding: padding) == length,
                     "convTranspose1d: inconsistent geometry for input \(x.shape), weight \(weight.shape)")
        let y = convAdjoint(x.reshaped(g.columnShape), weight.reshaped(g.weightShape), bias: bias, g)
        return y.reshaped([g.n, g.c, lo])
    }
}

// MARK: - Phase shuffle (WaveGAN)

extension Tensor {
    /// The source position of output position `t` of a length-`length` signal shifted by
    /// `shift` with reflection at the borders (TensorFlow's `REFLECT` padding: the edge sample
    /// is not repeated): `r(t - shift)` with `r(i) = -i` for `i < 0`, `2(L-1) - i` for `i ≥ L`.
    @inline(__always)
    static func reflectedSource(_ t: Int, shift: Int, length: Int) -> Int {
        let i = t - shift
        if i < 0 { return -i }
        if i >= length { return 2 * (length - 1) - i }
        return i
    }

    static func checkPhaseShuffle(_ x: Tensor, _ shifts: [Int], _ op: String) {
        precondition(x.rank == 3 && shifts.count == x.shape[0],
                     "\(op): input \(x.shape) ([N, C, L]) needs one shift per example, got \(shifts.count)")
        precondition(shifts.allSatisfy { abs($0) < x.shape[2] },
                     "\(op): shifts \(shifts) must be shorter than the length \(x.shape[2]) of \(x.shape)")
    }

    /// Phase shuffle (Donahue et al. 2019, "Adversarial Audio Synthesis", §3.3) with given
    /// shifts: example `i` of `x` is shifted along its length by `shifts[i]` samples, the
    /// vacated positions filled by reflection (`out[i, c, t] = x[i, c, r(t - shifts[i])]`,
    /// TensorFlow's `REFLECT` padding as in the authors' code).
    ///
    /// - Parameter shifts: one integer per example, `|shift| < L` (WaveGAN draws them from
    ///   `-n...n`, n = 2).
    /// - Shapes: `[N, C, L]` → `[N, C, L]`.
    /// - Gradient: the adjoint ``phaseShuffleAdjoint(shifts:)`` (scatter-add of the reflected
    ///   gather), itself differentiable, so gradient penalties can differentiate through it.
    public func phaseShuffled(shifts: [Int]) -> Tensor {
        Tensor.checkPhaseShuffle(self, shifts, "phaseShuffled")
        let (n, c, l) = (shape[0], shape[1], shape[2])
        let out = [Float](unsafeUninitializedCapacity: count) { buf, initialised in
            withUnsafeScalars { px in
                let (p, o) = (px.baseAddress!, buf.baseAddress!)
                for i in 0..<n {
                    let s = shifts[i]
                    for ch in 0..<c {
                        let src = p + (i * c + ch) * l, dst = o + (i * c + ch) * l
                        if s >= 0 {
                            for t in 0..<s { dst[t] = src[s - t] }
                            (dst + s).update(from: src, count: l - s)
                        } else {
                            (dst).update(from: src - s, count: l + s)
                            for t in (l + s)..<l { dst[t] = src[2 * (l - 1) - (t - s)] }
                        }
                    }
                }
            }
            initialised = count
        }
        return Tensor.record(shape: shape, scalars: out, inputs: [self]) { g, _ in
            [g.phaseShuffleAdjoint(shifts: shifts)]
        }
    }

    /// The adjoint of ``phaseShuffled(shifts:)``: `out[i, c, r(t - shifts[i])] += g[i, c, t]`
    /// (a scatter-add; positions reflected onto twice receive both values).
    ///
    /// - Shapes: `[N, C, L]` → `[N, C, L]`.
    /// - Gradient: ``phaseShuffled(shifts:)`` of the upstream gradient (differentiable).
    public func phaseShuffleAdjoint(shifts: [Int]) -> Tensor {
        Tensor.checkPhaseShuffle(self, shifts, "phaseShuffleAdjoint")
        let (n, c, l) = (shape[0], shape[1], shape[2])
        var out = [Float](repeating: 0, count: count)
        withUnsafeScalars { pg in
            out.withUnsafeMutableBufferPointer { po in
                let (g, o) = (pg.baseAddress!, po.baseAddress!)
                for i in 0..<n {
                    let s = shifts[i]
                    for ch in 0..<c {
                        let src = g + (i * c + ch) * l, dst = o + (i * c + ch) * l
                        for t in 0..<l { dst[Tensor.reflectedSource(t, shift: s, length: l)] += src[t] }
                    }
                }
            }
        }
        return Tensor.record(shape: shape, scalars: out, inputs: [self]) { g, _ in
            [g.phaseShuffled(shifts: shifts)]
        }
    }
}
