import Foundation

// MARK: - Group normalisation over [N, C, ...]

extension Tensor {
    /// Group normalisation (Wu & He 2018; PyTorch's `F.group_norm`): the `C` channels of each
    /// sample are split into `groups` consecutive groups and each group (its channels and every
    /// trailing position) is normalised with its own mean and biased variance, then scaled and
    /// shifted per channel: `y = (x - mean_g) / sqrt(var_g + eps) * weight_c + bias_c`.
    /// Statistics are accumulated in Double.
    ///
    /// - Parameters:
    ///   - x: `[N, C, ...]` (e.g. `[N, C, H, W]`).
    ///   - groups: number of groups; must divide `C`.
    ///   - weight, bias: `[C]` per-channel affine parameters, or nil for 1 and 0.
    ///   - eps: added to the variance (PyTorch's default 1e-5).
    /// - Shapes: output like `x`.
    /// - Gradient: closed form per group `dx = invStd (g' - mean(g') - x̂ mean(g' x̂))` with
    ///   `g' = g · weight_c`; weight ← `Σ g x̂`, bias ← `Σ g` over N and the trailing axes. With
    ///   `createGraph` the backward is built from differentiable ops (second order).
    public static func groupNorm(_ x: Tensor, groups: Int, weight: Tensor?, bias: Tensor?, eps: Float = 1e-5) -> Tensor {
        precondition(x.rank >= 2 && groups >= 1 && x.shape[1] % groups == 0,
                     "groupNorm: input \(x.shape) ([N, C, ...]) with \(groups) groups: C must be a multiple of the group count")
        let n = x.shape[0], c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
        if let weight { precondition(weight.shape == [c], "groupNorm: weight \(weight.shape) for input \(x.shape)") }
        if let bias { precondition(bias.shape == [c], "groupNorm: bias \(bias.shape) for input \(x.shape)") }
        let perGroup = c / groups * inner  // elements in one (sample, group)
        let count = x.count
        var invStd = [Double](repeating: 0, count: n * groups)
        var xhat = [Float](unsafeUninitializedCapacity: count) { _, i in i = count }
        var y = [Float](unsafeUninitializedCapacity: count) { _, i in i = count }
        let w = weight?.scalars, b = bias?.scalars
        x.scalars.withUnsafeBufferPointer { px in
            xhat.withUnsafeMutableBufferPointer { ph in
                y.withUnsafeMutableBufferPointer { py in
                    for q in 0..<(n * groups) where perGroup > 0 {
                        let base = q * perGroup
                        var s = 0.0
                        for i in base..<base + perGroup { s += Double(px[i]) }
                        let mean = s / Double(perGroup)
                        var v = 0.0
                        for i in base..<base + perGroup { let d = Double(px[i]) - mean; v += d * d }
                        let inv = 1 / (v / Double(perGroup) + Double(eps)).squareRoot()
                        invStd[q] = inv
                        let c0 = (q % groups) * (c / groups)
                        for ch in 0..<(c / groups) {
                            let sc = w.map { $0[c0 + ch] } ?? 1, sh = b.map { $0[c0 + ch] } ?? 0
                            let o = base + ch * inner
                            for i in o..<o + inner {
                                let h = Float((Double(px[i]) - mean) * inv)
                                ph[i] = h
                                py[i] = h * sc + sh
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
            var dw = [Double](repeating: 0, count: c), db = [Double](repeating: 0, count: c)
            var dx: [Float]? = t[0].node == nil ? nil : [Float](unsafeUninitializedCapacity: count) { _, i in i = count }
            g.scalars.withUnsafeBufferPointer { pg in
                xhat.withUnsafeBufferPointer { ph in
                    // Per-channel sums of g and g x̂.
                    for b0 in 0..<n { for ch in 0..<c {
                        let o = (b0 * c + ch) * inner
                        var sg = 0.0, sgh = 0.0
                        for i in o..<o + inner { sg += Double(pg[i]); sgh += Double(pg[i]) * Double(ph[i]) }
                        db[ch] += sg; dw[ch] += sgh
                    } }
                    guard dx != nil else { return }
                    let ws = wT?.scalars
                    dx!.withUnsafeMutableBufferPointer { pd in
                        for q in 0..<(n * groups) where perGroup > 0 {
                            let base = q * perGroup, c0 = (q % groups) * (c / groups)
                            var m1 = 0.0, m2 = 0.0
                            for ch in 0..<(c / groups) {
                                let sc = Double(ws.map { $0[c0 + ch] } ?? 1), o = base + ch * inner
                                for i in o..<o + inner { let gv = Double(pg[i]) * sc; m1 += gv; m2 += gv * Double(ph[i]) }
                            }
                            m1 /= Double(perGroup); m2 /= Double(perGroup)
                            let inv = invStd[q]
                            for ch in 0..<(c / groups) {
                                let sc = Double(ws.map { $0[c0 + ch] } ?? 1), o = base + ch * inner
                                for i in o..<o + inner {
                                    pd[i] = Float((Double(pg[i]) * sc - m1 - Double(ph[i]) * m2) * inv)
                                }
                            }
                        }
                    }
                }
            }
            var grads: [Tensor?] = [dx.map { Tensor(shape: shape, scalars: $0) }]
            if hasWeight { grads.append(t[1].node == nil ? nil : Tensor(shape: [c], scalars: dw.map { Float($0) })) }
            if hasBias { grads.append(t[t.count - 1].node == nil ? nil : Tensor(shape: [c], scalars: db.map { Float($0) })) }
            return grads
        }
    }
}
