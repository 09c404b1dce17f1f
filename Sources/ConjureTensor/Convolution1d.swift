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
