import ConjureTensor

/// The axis order of a 4-d image array.
///
/// Conjure works in `[N, C, H, W]` (PyTorch's layout). Keras, TensorFlow and PIL/NumPy image
/// stacks are channels-last, `[N, H, W, C]`; ``Dataset/load(path:options:)`` detects those (see
/// ``detect(shape:)``) and transposes them.
public enum ArrayLayout: String, Sendable, Codable, CaseIterable {
    /// Channels first: `[N, C, H, W]` (PyTorch, Conjure).
    case nchw
    /// Channels last: `[N, H, W, C]` (Keras, TensorFlow, PIL images stacked by NumPy).
    case nhwc

    /// The layout a 4-d shape most likely has: ``nhwc`` when the last axis has 1, 3 or 4 entries
    /// (gray, RGB, RGBA) and both middle axes more than 4 (`[N, 28, 28, 1]`, `[N, 32, 32, 3]`);
    /// ``nchw`` for any other 4-d shape; `nil` for shapes that are not 4-d.
    ///
    /// A real NCHW image has H > 4 in axis 1, so it is never taken for NHWC unless its width is
    /// 1, 3 or 4 pixels and its channel count exceeds 4 (`[N, 8, 8, 3]` with 8 channels of 8x3
    /// pixels); pass the layout explicitly for such data.
    public static func detect(shape: [Int]) -> ArrayLayout? {
        guard shape.count == 4 else { return nil }
        return [1, 3, 4].contains(shape[3]) && shape[1] > 4 && shape[2] > 4 ? .nhwc : .nchw
    }
}

/// Transposes channels-last images to channels-first.
///
/// - Shapes: `[N, H, W, C]` → `[N, C, H, W]`; `out[n, c, h, w] = x[n, h, w, c]`.
/// - Precondition: `x` is 4-d.
public func nhwcToNCHW(_ x: Tensor) -> Tensor {
    precondition(x.rank == 4, "nhwcToNCHW: expected a 4-d [N, H, W, C] tensor, got shape \(x.shape)")
    let (n, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    var out = [Float](repeating: 0, count: x.count)
    let plane = h * w
    x.withUnsafeScalars { src in
        out.withUnsafeMutableBufferPointer { dst in
            for i in 0..<n {
                let base = i * plane * c
                for p in 0..<plane {
                    for k in 0..<c { dst[base + k * plane + p] = src[base + p * c + k] }
                }
            }
        }
    }
    return Tensor(shape: [n, c, h, w], scalars: out)
}
