import CConjureKernels
/// Reverse-mode automatic differentiation.
///
/// Every differentiable op records a ``GradNode`` holding its inputs and a backward rule that
/// maps the gradient of the op's output to the gradients of its inputs. Backward rules are
/// written with `Tensor` ops themselves, so running them with recording switched on
/// (`createGraph: true`) builds the graph of the gradient, which can be differentiated again
/// (gradient penalties such as WGAN-GP and R1 need this).
final class GradNode {
    /// Inputs of the op, with their own history (empty for a leaf).
    let inputs: [Tensor]
    /// `(gradOfOutput, inputs) -> gradOfEachInput` (nil where an input needs none).
    let backward: ((Tensor, [Tensor]) -> [Tensor?])?
    let shape: [Int]

    init(leafShape: [Int]) {
        inputs = []
        backward = nil
        shape = leafShape
    }

    init(shape: [Int], inputs: [Tensor], backward: @escaping (Tensor, [Tensor]) -> [Tensor?]) {
        self.shape = shape
        self.inputs = inputs
        self.backward = backward
    }
}

/// Whether ops record autodiff history on the calling thread (switched off inside
/// ``withoutGrad(_:)``). The flag is thread-local (a C `__thread` variable), so two models can
/// train or sample on two threads of one process without seeing each other's setting.
public enum GradMode {
    /// The calling thread's flag (true unless inside ``withoutGrad(_:)``).
    public static var enabled: Bool {
        @inline(__always) get { conjure_grad_enabled() != 0 }
        @inline(__always) set { conjure_set_grad_enabled(newValue ? 1 : 0) }
    }
}

/// Runs `body` without recording autodiff history (PyTorch's `torch.no_grad()`).
@discardableResult
public func withoutGrad<R>(_ body: () throws -> R) rethrows -> R {
    let saved = GradMode.enabled
    GradMode.enabled = false
    defer { GradMode.enabled = saved }
    return try body()
}

extension Tensor {
    /// Creates an op result, recording a node when recording is on and an input needs gradients.
    @inline(__always)
    static func record(shape: [Int], scalars: [Float], inputs: [Tensor],
                       backward: @escaping (Tensor, [Tensor]) -> [Tensor?]) -> Tensor {
        if GradMode.enabled {
            for x in inputs where x.node != nil {
                return Tensor(shape: shape, scalars: scalars,
                              node: GradNode(shape: shape, inputs: inputs, backward: backward))
            }
        }
        return Tensor(shape: shape, scalars: scalars, node: nil)
    }

    /// Gradients of a scalar `output` with respect to each tensor in `wrt`
    /// (PyTorch's `torch.autograd.grad`).
    ///
    /// - Parameters:
    ///   - output: a tensor with one element (a loss).
    ///   - wrt: tensors from ``requiringGrad()`` (or intermediate results) on `output`'s graph.
    ///   - createGraph: when true the returned gradients carry their own history, so a function
    ///     of them (a gradient penalty) can be differentiated again.
    /// - Returns: one gradient per `wrt` tensor, of its shape; zeros where `output` does not
    ///   depend on it.
    public static func gradients(of output: Tensor, wrt: [Tensor], createGraph: Bool = false) -> [Tensor] {
        precondition(output.count == 1, "gradients(of:): output of shape \(output.shape) is not a scalar")
        return gradients(of: output, seed: Tensor(repeating: 1, shape: output.shape), wrt: wrt, createGraph: createGraph)
    }

    /// Vector-Jacobian product: gradients of `sum(output * seed)` with respect to `wrt`.
    ///
    /// - Precondition: `seed.shape == output.shape`.
    public static func gradients(of output: Tensor, seed: Tensor, wrt: [Tensor], createGraph: Bool = false) -> [Tensor] {
        precondition(seed.shape == output.shape, "gradients(of:seed:): seed \(seed.shape) vs output \(output.shape)")
        guard let root = output.node else { return wrt.map { Tensor.zeros($0.shape) } }
        let saved = GradMode.enabled
        GradMode.enabled = createGraph
        defer { GradMode.enabled = saved }

        // Iterative post-order DFS gives a topological order (inputs before users).
        var order: [GradNode] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(GradNode, Int)] = [(root, 0)]
        visited.insert(ObjectIdentifier(root))
        while let (node, next) = stack.last {
            if next < node.inputs.count {
                stack[stack.count - 1].1 = next + 1
                if let child = node.inputs[next].node, visited.insert(ObjectIdentifier(child)).inserted {
                    stack.append((child, 0))
                }
            } else {
                order.append(node)
                stack.removeLast()
            }
        }

        // Only nodes on a path to a requested tensor need gradients: inputs off those paths are
        // handed to the backward rules without history, so the rules skip them.
        let targets = Set(wrt.compactMap { $0.node.map(ObjectIdentifier.init) })
        var relevant = targets
        for node in order where !relevant.contains(ObjectIdentifier(node)) {
            if node.inputs.contains(where: { $0.node.map { relevant.contains(ObjectIdentifier($0)) } ?? false }) {
                relevant.insert(ObjectIdentifier(node))
            }
        }
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(root): seed]
        for node in order.reversed() {
            let id = ObjectIdentifier(node)
            guard relevant.contains(id), let g = grads[id], let rule = node.backward else { continue }
            if !targets.contains(id) { grads[id] = nil }  // free intermediate gradients early
            // With createGraph every input keeps its history: the gradient's own graph must reach
            // the parameters (d/dW of a gradient penalty) even off the paths to `wrt`.
            let inputs = createGraph ? node.inputs : node.inputs.map { x in
                x.node.map { relevant.contains(ObjectIdentifier($0)) } ?? false ? x : x.detached()
            }
            let inputGrads = rule(g, inputs)
            for (x, gx) in zip(inputs, inputGrads) {
                guard let xn = x.node, let gx else { continue }
                precondition(gx.shape == x.shape, "autodiff: gradient shape \(gx.shape) for input of shape \(x.shape)")
                let key = ObjectIdentifier(xn)
                if let existing = grads.removeValue(forKey: key) {
                    grads[key] = createGraph ? existing + gx : Tensor.accumulated(existing, gx)
                } else {
                    grads[key] = gx
                }
            }
        }
        return wrt.map { t in
            guard let n = t.node, let g = grads[ObjectIdentifier(n)] else { return Tensor.zeros(t.shape) }
            return createGraph ? g : g.detached()
        }
    }
}

extension Tensor {
    /// `sum + g` without history, adding into `sum`'s buffer when it is not shared (a gradient
    /// reaching a tensor by several paths); the same values as `sum + g`, split across the pool
    /// when large.
    static func accumulated(_ sum: Tensor, _ g: Tensor) -> Tensor {
        precondition(sum.count == g.count, "accumulated: gradient \(g.shape) added to gradient \(sum.shape)")
        var total = sum
        let n = total.count
        if n == 0 { return total }
        total.withMutableScalars { s in
            s.withUnsafeMutableBufferPointer { ps in
                g.withUnsafeScalars { pg in
                    let (s0, g0) = (ps.baseAddress!, pg.baseAddress!)
                    Tensor.splitKernel(n) { o, c in for i in o..<o + c { s0[i] += g0[i] } }
                }
            }
        }
        return total
    }
}
