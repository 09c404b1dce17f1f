import CConjureKernels

extension Tensor {
    /// One GRU step in PyTorch's gate layout (Cho et al. 2014; `torch.nn.GRUCell`), fused:
    ///
    ///     r = σ(gi_r + gh_r), z = σ(gi_z + gh_z), n = tanh(gi_n + r ⊙ gh_n), h' = (1 - z) ⊙ n + z ⊙ h
    ///
    /// where `gi = x W_ihᵀ + b_ih` and `gh = h W_hhᵀ + b_hh` are the input and hidden projections
    /// (their `3H` columns ordered r, z, n). One vectorised C pass per step instead of a dozen ops;
    /// rows are split across the pool (each row's result does not depend on the split).
    ///
    /// - Shapes: `gi`, `gh` `[B, 3H]`, `h` `[B, H]` → `[B, H]`.
    /// - Gradient: closed form through the gates (`dn = dh' (1 - z)(1 - n²)`,
    ///   `dz = dh' (h - n) z (1 - z)`, `dr = dn gh_n r (1 - r)`; `d gh_n = dn r`, `dh = dh' z`).
    ///   With `createGraph` the backward is built from differentiable ops (second order).
    public static func gruCell(gi: Tensor, gh: Tensor, h: Tensor) -> Tensor {
        precondition(h.rank == 2 && gi.shape == [h.shape[0], 3 * h.shape[1]] && gh.shape == gi.shape,
                     "gruCell: gi \(gi.shape), gh \(gh.shape) must be [B, 3H] for h \(h.shape) = [B, H]")
        let b = h.shape[0], hs = h.shape[1], n = b * hs
        if n == 0 { return h }
        var r = [Float](unsafeUninitializedCapacity: n) { _, i in i = n }
        var z = r, cand = r
        let out = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            gi.withUnsafeScalars { pi in gh.withUnsafeScalars { pg in h.withUnsafeScalars { ph in
                r.withUnsafeMutableBufferPointer { pr in z.withUnsafeMutableBufferPointer { pz in cand.withUnsafeMutableBufferPointer { pn in
                    let (i0, g0, h0, o0, r0, z0, n0) = (pi.baseAddress!, pg.baseAddress!, ph.baseAddress!, buf.baseAddress!,
                                                        pr.baseAddress!, pz.baseAddress!, pn.baseAddress!)
                    Tensor.forRowRanges(rows: b, rowLength: 3 * hs, work: 3 * n, body: { rg in
                        conjure_gru_cell(i0, g0, h0, o0, r0, z0, n0, rg.lowerBound, rg.upperBound, hs)
                    })
                } } }
            } } }
            initialised = n
        }
        return record(shape: [b, hs], scalars: out, inputs: [gi, gh, h]) { g, t in
            if GradMode.enabled {
                // Differentiable recomputation for higher-order gradients.
                let (gi, gh, h) = (t[0], t[1], t[2])
                let rr = (gi.slice(axis: 1, 0..<hs) + gh.slice(axis: 1, 0..<hs)).sigmoid()
                let zz = (gi.slice(axis: 1, hs..<(2 * hs)) + gh.slice(axis: 1, hs..<(2 * hs))).sigmoid()
                let nn = (gi.slice(axis: 1, (2 * hs)..<(3 * hs)) + rr * gh.slice(axis: 1, (2 * hs)..<(3 * hs))).tanh()
                let dn = g * (1 - zz) * (1 - nn * nn)
                let dz = g * (h - nn) * zz * (1 - zz)
                let dr = dn * gh.slice(axis: 1, (2 * hs)..<(3 * hs)) * rr * (1 - rr)
                return [Tensor.concat([dr, dz, dn], axis: 1), Tensor.concat([dr, dz, dn * rr], axis: 1), g * zz]
            }
            var dgi = [Float](unsafeUninitializedCapacity: 3 * n) { _, i in i = 3 * n }
            var dgh = dgi
            var dh = [Float](unsafeUninitializedCapacity: n) { _, i in i = n }
            g.withUnsafeScalars { pd in t[2].withUnsafeScalars { ph in t[1].withUnsafeScalars { pg in
                r.withUnsafeBufferPointer { pr in z.withUnsafeBufferPointer { pz in cand.withUnsafeBufferPointer { pn in
                    dgi.withUnsafeMutableBufferPointer { qi in dgh.withUnsafeMutableBufferPointer { qg in dh.withUnsafeMutableBufferPointer { qh in
                        let (d0, h0, g0, r0, z0, n0) = (pd.baseAddress!, ph.baseAddress!, pg.baseAddress!, pr.baseAddress!, pz.baseAddress!, pn.baseAddress!)
                        let (i1, g1, h1) = (qi.baseAddress!, qg.baseAddress!, qh.baseAddress!)
                        Tensor.forRowRanges(rows: b, rowLength: 3 * hs, work: 3 * n, body: { rg in
                            conjure_gru_cell_backward(d0, h0, g0, r0, z0, n0, i1, g1, h1, rg.lowerBound, rg.upperBound, hs)
                        })
                    } } }
                } } }
            } } }
            return [t[0].node == nil ? nil : Tensor(shape: [b, 3 * hs], scalars: dgi),
                    t[1].node == nil ? nil : Tensor(shape: [b, 3 * hs], scalars: dgh),
                    t[2].node == nil ? nil : Tensor(shape: [b, hs], scalars: dh)]
        }
    }
}

extension Tensor {
    /// A whole GRU recurrence over precomputed input projections, fused into one op with its
    /// own backpropagation through time (as cuDNN's and PyTorch's `nn.GRU` do): per step one
    /// GEMM `gh = h W_hhᵀ + b_hh` and one ``gruCell(gi:gh:h:)`` pass; the backward runs the steps
    /// in reverse with one GEMM per step for `dh` and a single GEMM over all steps for `dW_hh`.
    /// Unrolling the steps through the autodiff instead costs a full-size gradient per step
    /// (each step's slice of the projections), O(T²) memory traffic.
    ///
    /// - Parameters:
    ///   - gi: `[T, B, 3H]`, the input projections `x W_ihᵀ + b_ih` of every step (gates r, z, n).
    ///   - weightHH: `[3H, H]`; biasHH: `[3H]`.
    ///   - initial: `[B, H]`, the state before the first step.
    /// - Returns: `[T, B, H]`, the state after each step.
    /// - Gradient: with respect to all four inputs; with `createGraph` the backward is built from
    ///   differentiable ops (second order).
    public static func gruSequence(_ gi: Tensor, weightHH: Tensor, biasHH: Tensor, initial h0: Tensor) -> Tensor {
        precondition(gi.rank == 3 && h0.rank == 2 && gi.shape[1] == h0.shape[0] && gi.shape[2] == 3 * h0.shape[1]
                        && weightHH.shape == [3 * h0.shape[1], h0.shape[1]] && biasHH.shape == [3 * h0.shape[1]] && gi.shape[0] >= 1,
                     "gruSequence: gi \(gi.shape) must be [T ≥ 1, B, 3H], weightHH \(weightHH.shape) [3H, H], biasHH \(biasHH.shape) [3H] for h0 \(h0.shape) = [B, H]")
        let steps = gi.shape[0], b = h0.shape[0], hs = h0.shape[1], cell = b * hs
        // Per step: gh_s = h_{s-1} W_hhᵀ + b_hh written straight into its slot of ghAll (the
        // bias as the product's initial value), then the fused cell into its slot of out.
        func uninitialised(_ n: Int) -> [Float] { [Float](unsafeUninitializedCapacity: n) { _, i in i = n } }
        var out = uninitialised(steps * cell), r = uninitialised(steps * cell), z = uninitialised(steps * cell)
        var cand = uninitialised(steps * cell), ghAll = uninitialised(steps * 3 * cell)
        gi.withUnsafeScalars { pi in weightHH.withUnsafeScalars { pw in biasHH.withUnsafeScalars { pb in h0.withUnsafeScalars { ph0 in
            out.withUnsafeMutableBufferPointer { po in r.withUnsafeMutableBufferPointer { pr in
                z.withUnsafeMutableBufferPointer { pz in cand.withUnsafeMutableBufferPointer { pn in
                    ghAll.withUnsafeMutableBufferPointer { pgh in
                        let (o0, r0, z0, n0, g0) = (po.baseAddress!, pr.baseAddress!, pz.baseAddress!, pn.baseAddress!, pgh.baseAddress!)
                        for s in 0..<steps {
                            let hPrev = s == 0 ? ph0.baseAddress! : UnsafePointer(o0 + (s - 1) * cell)
                            let gh = g0 + s * 3 * cell, o = s * cell
                            sgemm(transposeA: false, transposeB: true, m: b, n: 3 * hs, k: hs, a: hPrev, lda: hs,
                                  b: pw.baseAddress!, ldb: hs, beta: 1, c: gh, ldc: 3 * hs, broadcasting: pb.baseAddress!)
                            conjure_gru_cell(pi.baseAddress! + s * 3 * cell, gh, hPrev, o0 + o, r0 + o, z0 + o, n0 + o, 0, b, hs)
                        }
                    }
                } }
            } }
        } } } }
        let outConst = out
        return record(shape: [steps, b, hs], scalars: out, inputs: [gi, weightHH, biasHH, h0]) { g, t in
            if GradMode.enabled { return gruSequenceBackwardGraph(g, t) }
            var dGI = uninitialised(steps * 3 * cell), dGH = uninitialised(steps * 3 * cell)
            // dh: the gradient reaching h_s from later steps; dcur adds the output's own.
            var dh = [Float](repeating: 0, count: cell), dcur = uninitialised(cell), dhz = uninitialised(cell)
            let needH0 = t[3].node != nil
            g.withUnsafeScalars { pgOut in t[1].withUnsafeScalars { pw in t[3].withUnsafeScalars { ph0 in
                outConst.withUnsafeBufferPointer { po in ghAll.withUnsafeBufferPointer { pgh in
                    r.withUnsafeBufferPointer { pr in z.withUnsafeBufferPointer { pz in cand.withUnsafeBufferPointer { pn in
                        dGI.withUnsafeMutableBufferPointer { qi in dGH.withUnsafeMutableBufferPointer { qg in
                            dh.withUnsafeMutableBufferPointer { qd in dcur.withUnsafeMutableBufferPointer { qc in
                                dhz.withUnsafeMutableBufferPointer { qh in
                                    let (d0, c0, hz0, go) = (qd.baseAddress!, qc.baseAddress!, qh.baseAddress!, pgOut.baseAddress!)
                                    for s in (0..<steps).reversed() {
                                        for j in 0..<cell { c0[j] = d0[j] + go[s * cell + j] }
                                        let hPrev = s == 0 ? ph0.baseAddress! : po.baseAddress! + (s - 1) * cell
                                        let o = s * cell, o3 = s * 3 * cell
                                        conjure_gru_cell_backward(c0, hPrev, pgh.baseAddress! + o3, pr.baseAddress! + o,
                                                                  pz.baseAddress! + o, pn.baseAddress! + o, qi.baseAddress! + o3,
                                                                  qg.baseAddress! + o3, hz0, 0, b, hs)
                                        // dh_{s-1} = dhz + dgh_s W_hh (the product added onto dhz).
                                        if s == 0 && !needH0 { break }
                                        d0.update(from: hz0, count: cell)
                                        sgemm(transposeA: false, transposeB: false, m: b, n: hs, k: 3 * hs,
                                              a: qg.baseAddress! + o3, lda: 3 * hs, b: pw.baseAddress!, ldb: hs,
                                              beta: 1, c: d0, ldc: hs)
                                    }
                                }
                            } }
                        } }
                    } } }
                } }
            } } }
            let h0v = t[3].scalars
            // dW_hh = Σ_s dghᵀ h_{s-1} as one product over all steps; db_hh = Σ dgh.
            let hPrevAll = Tensor(shape: [steps * b, hs], scalars: h0v + outConst[0..<((steps - 1) * cell)])
            let dGHAll = Tensor(shape: [steps * b, 3 * hs], scalars: dGH)
            return [t[0].node == nil ? nil : Tensor(shape: [steps, b, 3 * hs], scalars: dGI),
                    t[1].node == nil ? nil : Tensor.matmul(dGHAll, hPrevAll, transposeA: true),
                    t[2].node == nil ? nil : dGHAll.sum(axes: [0]),
                    t[3].node == nil ? nil : Tensor(shape: [b, hs], scalars: dh)]
        }
    }

    /// The backward of ``gruSequence(_:weightHH:biasHH:initial:)`` built from differentiable ops
    /// (the forward recomputed from the inputs `t`), for gradients of gradients.
    static func gruSequenceBackwardGraph(_ g: Tensor, _ t: [Tensor]) -> [Tensor?] {
        let (gi, w, bias, h0) = (t[0], t[1], t[2], t[3])
        let steps = gi.shape[0], hs = h0.shape[1]
        var hPrev: [Tensor] = [], rs: [Tensor] = [], zs: [Tensor] = [], ns: [Tensor] = [], ghn: [Tensor] = []
        var h = h0
        for s in 0..<steps {
            let gis = gi.slice(axis: 0, s..<(s + 1)).reshaped([h0.shape[0], 3 * hs])
            let gh = Tensor.linear(h, weight: w, bias: bias)
            let r = (gis.slice(axis: 1, 0..<hs) + gh.slice(axis: 1, 0..<hs)).sigmoid()
            let z = (gis.slice(axis: 1, hs..<(2 * hs)) + gh.slice(axis: 1, hs..<(2 * hs))).sigmoid()
            let nGate = gh.slice(axis: 1, (2 * hs)..<(3 * hs))
            let n = (gis.slice(axis: 1, (2 * hs)..<(3 * hs)) + r * nGate).tanh()
            hPrev.append(h); rs.append(r); zs.append(z); ns.append(n); ghn.append(nGate)
            h = n + z * (h - n)
        }
        var dh = Tensor.zeros(h0.shape)
        var dgi = [Tensor](repeating: dh, count: steps)
        var dw: Tensor? = nil, db: Tensor? = nil
        for s in (0..<steps).reversed() {
            let d = dh + g.slice(axis: 0, s..<(s + 1)).reshaped(h0.shape)
            let (r, z, n) = (rs[s], zs[s], ns[s])
            let dn = d * (1 - z) * (1 - n * n)
            let dz = d * (hPrev[s] - n) * z * (1 - z)
            let dr = dn * ghn[s] * r * (1 - r)
            dgi[s] = Tensor.concat([dr, dz, dn], axis: 1).reshaped([1, h0.shape[0], 3 * hs])
            let dgh = Tensor.concat([dr, dz, dn * r], axis: 1)
            dw = dw.map { $0 + Tensor.matmul(dgh, hPrev[s], transposeA: true) } ?? Tensor.matmul(dgh, hPrev[s], transposeA: true)
            db = db.map { $0 + dgh.sum(axes: [0]) } ?? dgh.sum(axes: [0])
            dh = d * z + Tensor.matmul(dgh, w)
        }
        return [Tensor.concat(dgi, axis: 0), dw, db, dh]
    }
}
