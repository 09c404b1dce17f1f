import Foundation
import CConjureKernels

// MARK: - Smooth activations of diffusion and transformer models (SiLU, GELU)

/// How ``Tensor/gelu(approximation:)`` evaluates the Gaussian CDF (PyTorch's `approximate`).
public enum GELUApproximation: String, Sendable, Equatable {
    /// `x Φ(x) = 0.5 x (1 + erf(x / √2))` (PyTorch `approximate="none"`).
    case none
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))` (PyTorch `approximate="tanh"`).
    case tanh
}

extension Tensor {
    /// An element-wise function with its first and second derivatives: the first-order backward
    /// is `g · f'(x)` in one pass; with a graph being built (`createGraph`) it is
    /// `g · pointwise(x, f', f'')`, so gradients of gradients (a gradient penalty) are exact to
    /// second order. A third-order gradient stops with a precondition naming `op`.
    static func pointwise(_ x: Tensor, op: String, _ f: (Float) -> Float,
                          derivative: @escaping (Float) -> Float, second: ((Float) -> Float)?) -> Tensor {
        record(shape: x.shape, scalars: x.mapScalars(f), inputs: [x]) { g, t in
            if GradMode.enabled {
                guard let second else {
                    preconditionFailure("\(op): gradients of third order are not supported")
                }
                return [g * pointwise(t[0], op: op + "'", derivative, derivative: second, second: nil)]
            }
            let n = g.count
            let dx = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
                g.withUnsafeScalars { pg in
                    t[0].withUnsafeScalars { px in
                        let (o, gp, xp) = (buf.baseAddress!, pg.baseAddress!, px.baseAddress!)
                        Tensor.splitKernel(n) { s, c in for i in s..<s + c { o[i] = gp[i] * derivative(xp[i]) } }
                    }
                }
                initialised = n
            }
            return [Tensor(shape: g.shape, scalars: dx)]
        }
    }

    /// ``pointwise(_:op:_:derivative:second:)`` with vectorised C kernels for the forward pass
    /// (`forward(x, y, n)`) and the first-order backward (`backward(x, g, dx, n)`), split across
    /// the pool; higher orders (``GradMode`` on during the backward) use the scalar closures.
    static func pointwiseKernel(_ x: Tensor, op: String, forward: (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                                backward: @escaping (UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int) -> Void,
                                derivative: @escaping (Float) -> Float, second: ((Float) -> Float)?) -> Tensor {
        record(shape: x.shape, scalars: x.mapKernel(forward), inputs: [x]) { g, t in
            if GradMode.enabled {
                guard let second else { preconditionFailure("\(op): gradients of third order are not supported") }
                return [g * pointwise(t[0], op: op + "'", derivative, derivative: second, second: nil)]
            }
            let n = g.count
            if n == 0 { return [g] }
            let dx = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
                g.withUnsafeScalars { pg in
                    t[0].withUnsafeScalars { px in
                        let (o, gp, xp) = (buf.baseAddress!, pg.baseAddress!, px.baseAddress!)
                        Tensor.splitKernel(n) { s, c in backward(xp + s, gp + s, o + s, c) }
                    }
                }
                initialised = n
            }
            return [Tensor(shape: g.shape, scalars: dx)]
        }
    }

    /// SiLU / swish `x · sigmoid(x)` (Elfwing et al. 2018; Ramachandran et al. 2017; PyTorch's
    /// `nn.SiLU`), the activation of DDPM's U-Net.
    ///
    /// - Shapes: any; output like `self`.
    /// - Gradient: `σ(x) (1 + x (1 - σ(x)))`; differentiable again (second order).
    public func silu() -> Tensor {
        Tensor.pointwiseKernel(self, op: "silu", forward: { conjure_silu($0, $1, $2) }, backward: { conjure_silu_backward($0, $1, $2, $3) },
                               derivative: { x in let s = Tensor.stableSigmoid(x); return s * (1 + x * (1 - s)) },
                               second: { x in let s = Tensor.stableSigmoid(x); return s * (1 - s) * (2 + x * (1 - 2 * s)) })
    }

    /// GELU `x Φ(x)` (Hendrycks & Gimpel 2016; PyTorch's `nn.GELU`), exactly with `erf` or with
    /// the tanh approximation of GPT-2/BERT.
    ///
    /// - Shapes: any; output like `self`.
    /// - Gradient: exact: `Φ(x) + x φ(x)`; tanh: `0.5 (1 + t) + 0.5 x (1 - t²) u'` with
    ///   `t = tanh(u)`, `u = √(2/π)(x + 0.044715 x³)`; both differentiable again (second order).
    public func gelu(approximation: GELUApproximation = .none) -> Tensor {
        switch approximation {
        case .none:
            // φ(x) = exp(-x²/2) / √(2π); Φ(x) = 0.5 (1 + erf(x / √2)).
            let invSqrt2: Float = 0.70710678118654752, invSqrt2Pi: Float = 0.39894228040143268
            return Tensor.pointwiseKernel(self, op: "gelu", forward: { conjure_gelu($0, $1, $2) }, backward: { conjure_gelu_backward($0, $1, $2, $3) },
                                          derivative: { x in 0.5 * (1 + Foundation.erf(x * invSqrt2)) + x * invSqrt2Pi * Foundation.exp(-0.5 * x * x) },
                                          second: { x in invSqrt2Pi * Foundation.exp(-0.5 * x * x) * (2 - x * x) })
        case .tanh:
            let c: Float = 0.79788456080286536, a: Float = 0.044715
            return Tensor.pointwise(self, op: "gelu(tanh)", { x in 0.5 * x * (1 + Foundation.tanh(c * (x + a * x * x * x))) },
                                    derivative: { x in
                                        let t = Foundation.tanh(c * (x + a * x * x * x)), du = c * (1 + 3 * a * x * x)
                                        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du
                                    },
                                    second: { x in
                                        let t = Foundation.tanh(c * (x + a * x * x * x)), du = c * (1 + 3 * a * x * x)
                                        let d2u = 6 * c * a * x, s = 1 - t * t
                                        return s * du + 0.5 * x * (s * d2u - 2 * t * s * du * du)
                                    })
        }
    }
}
