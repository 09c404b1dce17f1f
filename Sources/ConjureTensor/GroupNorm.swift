import Foundation
import CConjureKernels

// MARK: - Group normalisation over [N, C, ...]

extension Tensor {
    /// Group normalisation (Wu & He 2018; PyTorch's `F.group_norm`): the `C` channels of each
    /// sample are split into `groups` consecutive groups and each group (its channels and every
    /// trailing position) is normalised with its own mean and biased variance, then scaled and
    /// shifted per channel: `y = (x - mean_g) / sqrt(var_g + eps) * weight_c + bias_c`.
    /// Statistics are accumulated in Double (the sum and the sum of squares in one pass; a
    /// float's square is exact in Double); the normalisation and affine map are one float FMA
    /// per element, `x · a_c + c_c` with `a_c = weight_c / sqrt(var + eps)` and
    /// `c_c = bias_c − mean · a_c` (the form of PyTorch's CPU kernel: as accurate as the float
    /// input, a few of its roundings at the data's offset over its spread).
    ///
    /// - Parameters:
    ///   - x: `[N, C, ...]` (e.g. `[N, C, H, W]`).
    ///   - groups: number of groups; must divide `C`.
    ///   - weight, bias: `[C]` per-channel affine parameters, or nil for 1 and 0.
    ///   - eps: added to the variance (PyTorch's default 1e-5).
    ///   - silu: follow the normalisation with SiLU (`y · sigmoid(y)`, as ``silu()``): one pass
    ///     over the data when no gradient is recorded (sampling), the two ops in sequence when
    ///     one is; the same values either way.
    /// - Shapes: output like `x`.
    /// - Gradient: closed form per group `dx = invStd (g' - mean(g') - x̂ mean(g' x̂))` with
    ///   `g' = g · weight_c`; weight ← `Σ g x̂`, bias ← `Σ g` over N and the trailing axes. With
    ///   `createGraph` the backward is built from differentiable ops (second order).
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5,
                                 silu: Bool = false) -> Tensor {
        precondition(x.rank >= 2 && groups >= 1 && x.shape[1] % groups == 0,
                     "groupNorm: input \(x.shape) ([N, C, ...]) with \(groups) groups: C must be a multiple of the group count")
        let n = x.shape[0], c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
        if let weight { precondition(weight.shape == [c], "groupNorm: weight \(weight.shape) for input \(x.shape)") }
        if let bias { precondition(bias.shape == [c], "groupNorm: bias \(bias.shape) for input \(x.shape)") }
        let perGroup = c / groups * inner  // elements in one (sample, group)
        let count = x.count, cpg = c / groups, q = n * groups
        var invStd = [Double](repeating: 0, count: q)
        // x̂ is kept for the backward only when this call is recorded.
        let recorded = GradMode.enabled && (x.node != nil || weight?.node != nil || bias?.node != nil)
        if silu && recorded { return groupNorm(x, groups: groups, weight: weight, bias: bias, eps: eps).silu() }
        var xhat = [Float](unsafeUninitializedCapacity: recorded ? count : 0) { _, i in i = recorded ? count : 0 }
        var y = [Float](unsafeUninitializedCapacity: count) { _, i in i = count }
        if perGroup > 0 {
            x.withUnsafeScalars { px in
                xhat.withUnsafeMutableBufferPointer { ph in
                    y.withUnsafeMutableBufferPointer { py in
                        invStd.withUnsafeMutableBufferPointer { pi in
                            withOptionalPointer(weight?.scalars) { wp in
                                withOptionalPointer(bias?.scalars) { bp in
                                    let (xp, hp, yp, ip) = (px.baseAddress!, recorded ? ph.baseAddress : nil, py.baseAddress!, pi.baseAddress!)
                                    Tensor.forRowRanges(rows: q, rowLength: perGroup, work: count) { r in
                                        conjure_groupnorm_forward(xp, wp, bp, yp, hp, ip, r.lowerBound, r.upperBound,
                                                                  groups, cpg, inner, eps, silu ? 1 : 0)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        let hasWeight = weight != nil, hasBias = bias != nil
        let shape = x.shape
        return record(shape: shape, scalars: y, inputs: inputs) { g, t in
            let wT: Tensor? = hasWeight ? t[1] : nil
            if GradMode.enabled {
                // Differentiable recomputation for higher-order gradients.
                let xr = t[0].reshaped([n, groups, perGroup])
                let centred = xr - xr.mean(axes: [2], keepDims: true)
                let sd = ((centred * centred).mean(axes: [2], keepDims: true) + eps).sqrt()
                let xh = centred / sd
                let gw = (wT == nil ? g : channelAffine(g, scale: wT, shift: nil)).reshaped([n, groups, perGroup])
                let dx = (gw - gw.mean(axes: [2], keepDims: true) - xh * (gw * xh).mean(axes: [2], keepDims: true)) / sd
                var grads: [Tensor?] = [t[0].node == nil ? nil : dx.reshaped(shape)]
                if hasWeight { grads.append(t[1].node == nil ? nil : (g * xh.reshaped(shape)).channelSums()) }
                if hasBias { grads.append(t[t.count - 1].node == nil ? nil : g.channelSums()) }
                return grads
            }
            // Per-(sample, channel) sums of g and g x̂ (8 double lanes each, split across the
            // pool), then per-channel sums over the samples in order: the bits do not depend on
            // the thread count.
            var sg = [Double](repeating: 0, count: n * c), sgh = sg
            var dx: [Float]? = t[0].node == nil ? nil : [Float](unsafeUninitializedCapacity: count) { _, i in i = count }
            var dw = [Double](repeating: 0, count: c), db = [Double](repeating: 0, count: c)
            if inner > 0 {
                g.withUnsafeScalars { pg in
                    xhat.withUnsafeBufferPointer { ph in
                        sg.withUnsafeMutableBufferPointer { ps in
                            sgh.withUnsafeMutableBufferPointer { pt in
                                let (gp, hp, sp, tp) = (pg.baseAddress!, ph.baseAddress!, ps.baseAddress!, pt.baseAddress!)
                                Tensor.forRowRanges(rows: n * c, rowLength: inner, work: count) { r in
                                    conjure_row_sums2(gp, hp, sp, tp, r.lowerBound, r.upperBound, inner)
                                }
                                if dx != nil {
                                    invStd.withUnsafeBufferPointer { pi in
                                        withOptionalPointer(wT?.scalars) { wp in
                                            dx!.withUnsafeMutableBufferPointer { pd in
                                                let (ip, dp) = (pi.baseAddress!, pd.baseAddress!)
                                                Tensor.forRowRanges(rows: n * groups, rowLength: perGroup, work: count) { r in
                                                    conjure_groupnorm_backward(gp, hp, wp, sp, tp, ip, dp, r.lowerBound, r.upperBound,
                                                                               groups, cpg, inner)
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                for b0 in 0..<n { for ch in 0..<c { db[ch] += sg[b0 * c + ch]; dw[ch] += sgh[b0 * c + ch] } }
            } else if dx != nil {
                dx = [Float](repeating: 0, count: count)
            }
            var grads: [Tensor?] = [dx.map { Tensor(shape: shape, scalars: $0) }]
            if hasWeight { grads.append(t[1].node == nil ? nil : Tensor(shape: [c], scalars: dw.map { Float($0) })) }
            if hasBias { grads.append(t[t.count - 1].node == nil ? nil : Tensor(shape: [c], scalars: db.map { Float($0) })) }
            return grads
        }
    }
}

// MARK: - Layer normalisation over the trailing axes

extension Tensor {
    /// Layer normalisation (Ba et al. 2016; PyTorch's `F.layer_norm`): each row of the last
    /// `featureCount` elements is normalised with its own mean and biased variance, then scaled
    /// and shifted per feature: `y = (x - mean) / sqrt(var + eps) * weight + bias`. Row sums are
    /// accumulated in Double; a vectorised C kernel runs the rows, split across the pool.
    ///
    /// - Parameters:
    ///   - x: `[..., D]` viewed as rows of `featureCount = D` elements (D may span several trailing axes).
    ///   - weight, bias: `featureCount` elements each (any shape), or both nil for 1 and 0.
    ///   - eps: added to the variance (PyTorch's default 1e-5).
    ///   - silu: follow the normalisation with SiLU (`y · sigmoid(y)`, as ``silu()``): one pass
    ///     over the data when no gradient is recorded (sampling), the two ops in sequence when
    ///     one is; the same values either way.
    /// - Shapes: output like `x`.
    /// - Gradient: per row `dx = rstd (g' - mean(g') - x̂ mean(g' x̂))` with `g' = g · weight`;
    ///   weight ← `Σ_rows g x̂`, bias ← `Σ_rows g`. With `createGraph` the backward is built from
    ///   differentiable ops (second order).
    public static func layerNorm(_ x: Tensor, featureCount d: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        precondition(d >= 1 && x.count % d == 0 && (weight == nil) == (bias == nil),
                     "layerNorm: input \(x.shape) is not rows of \(d) features, or only one of weight and bias is given")
        if let weight, let bias { precondition(weight.count == d && bias.count == d, "layerNorm: weight \(weight.shape) / bias \(bias.shape) for \(d) features") }
        let rows = x.count / d, n = x.count
        if n == 0 { return x }
        var xhat = [Float](unsafeUninitializedCapacity: n) { _, i in i = n }
        var rstd = [Float](unsafeUninitializedCapacity: rows) { _, i in i = rows }
        let y = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            x.withUnsafeScalars { px in
                xhat.withUnsafeMutableBufferPointer { ph in
                    rstd.withUnsafeMutableBufferPointer { pr in
                        let (xp, hp, rp, yp) = (px.baseAddress!, ph.baseAddress!, pr.baseAddress!, buf.baseAddress!)
                        let w = weight?.scalars, b = bias?.scalars
                        withOptionalPointer(w) { wp in
                            withOptionalPointer(b) { bp in
                                Tensor.forRowRanges(rows: rows, rowLength: d, work: n, body: { r in
                                    conjure_layernorm_rows(xp, wp, bp, yp, hp, rp, r.lowerBound, r.upperBound, d, eps)
                                })
                            }
                        }
                    }
                }
            }
            initialised = n
        }
        var inputs = [x]
        if let weight, let bias { inputs += [weight, bias] }
        let affine = weight != nil, shape = x.shape
        return record(shape: shape, scalars: y, inputs: inputs) { g, t in
            if GradMode.enabled {
                // Differentiable recomputation for higher-order gradients.
                let flat = t[0].reshaped([rows, d])
                let centred = flat - flat.mean(axes: [1], keepDims: true)
                let sd = ((centred * centred).mean(axes: [1], keepDims: true) + eps).sqrt()
                let xh = centred / sd
                let gf = g.reshaped([rows, d])
                let gw = affine ? gf * t[1].reshaped([d]) : gf
                let dx = (gw - gw.mean(axes: [1], keepDims: true) - xh * (gw * xh).mean(axes: [1], keepDims: true)) / sd
                var grads: [Tensor?] = [t[0].node == nil ? nil : dx.reshaped(shape)]
                if affine {
                    grads.append(t[1].node == nil ? nil : (gf * xh).sum(axes: [0]).reshaped(t[1].shape))
                    grads.append(t[2].node == nil ? nil : gf.sum(axes: [0]).reshaped(t[2].shape))
                }
                return grads
            }
            var grads: [Tensor?] = [nil]
            g.withUnsafeScalars { pg in
                xhat.withUnsafeBufferPointer { ph in
                    let (gp, hp) = (pg.baseAddress!, ph.baseAddress!)
                    if t[0].node != nil {
                        let dx = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
                            rstd.withUnsafeBufferPointer { pr in
                                withOptionalPointer(affine ? t[1].scalars : nil) { wp in
                                    Tensor.forRowRanges(rows: rows, rowLength: d, work: n, body: { r in
                                        conjure_layernorm_rows_backward(gp, hp, pr.baseAddress!, wp, buf.baseAddress!, r.lowerBound, r.upperBound, d)
                                    })
                                }
                            }
                            initialised = n
                        }
                        grads[0] = Tensor(shape: shape, scalars: dx)
                    }
                    if affine {
                        // Column sums over the rows, in Double, one thread (the same bits for any pool).
                        var dw = [Double](repeating: 0, count: d), db = [Double](repeating: 0, count: d)
                        dw.withUnsafeMutableBufferPointer { qw in db.withUnsafeMutableBufferPointer { qb in
                            let (w0, b0) = (qw.baseAddress!, qb.baseAddress!)
                            for r in 0..<rows {
                                let o = r * d
                                for j in 0..<d { let gv = Double(gp[o + j]); b0[j] += gv; w0[j] += gv * Double(hp[o + j]) }
                            }
                        } }
                        grads.append(t[1].node == nil ? nil : Tensor(shape: t[1].shape, scalars: dw.map { Float($0) }))
                        grads.append(t[2].node == nil ? nil : Tensor(shape: t[2].shape, scalars: db.map { Float($0) }))
                    }
                }
            }
            return grads
        }
    }
}

/// Calls `body` with a pointer to `array`'s elements, or nil when `array` is nil.
@inline(__always)
func withOptionalPointer<R>(_ array: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}
