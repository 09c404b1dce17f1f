import Foundation

/// Rescales gradients in place so that their total L2 norm is at most `maxNorm`, as PyTorch's
/// `torch.nn.utils.clip_grad_norm_` with `norm_type=2` (Pascanu, Mikolov & Bengio 2013, "On the
/// difficulty of training recurrent neural networks", Algorithm 1).
///
///     total = sqrt(Σ_tensors Σ_elements g²)          // accumulated in Double
///     c     = maxNorm / (total + 1e-6)
///     if c < 1: every g *= c                          // all tensors by the same factor
///
/// The direction of the concatenated gradient is kept; only its length changes. Gradients of
/// any shapes may be mixed (typically one per parameter, in the optimiser's order).
///
/// One deviation from PyTorch: when the total is not finite (an element is NaN or ±inf) the
/// gradients are left unchanged (PyTorch would multiply them by 0 or NaN); the returned
/// non-finite norm lets the caller skip the step.
///
/// - Parameters:
///   - grads: the gradients, modified in place; any shapes.
///   - maxNorm: the largest allowed total norm, in gradient units; `>= 0`.
/// - Returns: the total norm before clipping (as Float; `+inf` if it exceeds Float's range).
@discardableResult
public func clipGradNorm(_ grads: inout [Tensor], maxNorm: Float) -> Float {
    precondition(maxNorm >= 0 && maxNorm.isFinite, "clipGradNorm: maxNorm must be finite and non-negative, got \(maxNorm)")
    var sumSquares = 0.0
    for g in grads {
        g.withUnsafeScalars { b in
            for x in b { let d = Double(x); sumSquares += d * d }
        }
    }
    let total = sumSquares.squareRoot()
    guard total.isFinite else { return Float(total) }
    let coefficient = Double(maxNorm) / (total + 1e-6)
    if coefficient < 1 {
        let c = Float(coefficient)
        for i in grads.indices {
            grads[i].withUnsafeMutableScalars { b in for j in 0..<b.count { b[j] *= c } }
        }
    }
    return Float(total)
}
