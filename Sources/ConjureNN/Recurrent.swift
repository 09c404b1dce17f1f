/// One-layer gated recurrent unit (Cho et al. 2014) with the layout and state-dict names of
/// PyTorch's `nn.GRU(inputSize, hiddenSize, batch_first=True)`:
///
///     r = σ(W_ir x + b_ir + W_hr h + b_hr)
///     z = σ(W_iz x + b_iz + W_hz h + b_hz)
///     n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))
///     h' = (1 - z) ⊙ n + z ⊙ h
///
/// The input projections of all steps are one GEMM; the recurrence is one GEMM per step and
/// one fused gate pass (``Tensor/gruSequence(_:weightHH:biasHH:initial:)``), whose backward is
/// its own backpropagation through time.
///
/// - Shapes: input `[B, T, inputSize]`, output `[B, T, hiddenSize]`, hidden state
///   `[B, hiddenSize]`; `weight_ih_l0` `[3 hiddenSize, inputSize]` and `weight_hh_l0`
///   `[3 hiddenSize, hiddenSize]` with gate rows `[r; z; n]`, `bias_ih_l0`, `bias_hh_l0`
///   `[3 hiddenSize]`.
/// - Initialisation (PyTorch's): every weight and bias `U(-1/sqrt(hiddenSize), 1/sqrt(hiddenSize))`.
public final class GRU: Layer {
    /// Features per input step (`input_size`).
    public let inputSize: Int
    /// Features of the hidden state and of each output step (`hidden_size`).
    public let hiddenSize: Int
    /// Input-to-hidden weights `[3 hiddenSize, inputSize]`, gate rows `[r; z; n]` (`weight_ih_l0`).
    public let weightIH: Parameter
    /// Hidden-to-hidden weights `[3 hiddenSize, hiddenSize]`, gate rows `[r; z; n]` (`weight_hh_l0`).
    public let weightHH: Parameter
    /// Input-side biases `[3 hiddenSize]` (`bias_ih_l0`).
    public let biasIH: Parameter
    /// Hidden-side biases `[3 hiddenSize]` (`bias_hh_l0`); `b_hn` sits inside the reset gate's product.
    public let biasHH: Parameter
    /// Unused (no dropout, so no mode-dependent behaviour).
    public var isTraining = true

    /// A GRU from `inputSize` to `hiddenSize` features; weights then biases drawn from `rng` in
    /// `state_dict` order. Precondition: both sizes positive.
    public init(inputSize: Int, hiddenSize: Int, rng: inout RandomGenerator) {
        precondition(inputSize > 0 && hiddenSize > 0, "GRU: sizes must be positive, got \(inputSize) -> \(hiddenSize)")
        self.inputSize = inputSize
        self.hiddenSize = hiddenSize
        let k = 1 / Float(hiddenSize).squareRoot()
        weightIH = Parameter(.randomUniform([3 * hiddenSize, inputSize], low: -k, high: k, using: &rng))
        weightHH = Parameter(.randomUniform([3 * hiddenSize, hiddenSize], low: -k, high: k, using: &rng))
        biasIH = Parameter(.randomUniform([3 * hiddenSize], low: -k, high: k, using: &rng))
        biasHH = Parameter(.randomUniform([3 * hiddenSize], low: -k, high: k, using: &rng))
    }

    /// The output sequence from a zero initial state.
    public func callAsFunction(_ x: Tensor) -> Tensor { run(x, initialState: nil).output }

    /// Runs the recurrence over the sequence.
    ///
    /// - Parameters:
    ///   - x: `[B, T, inputSize]`.
    ///   - initialState: `[B, hiddenSize]`, or nil for zeros.
    /// - Returns: `output` `[B, T, hiddenSize]` (the state after each step) and `finalState`
    ///   `[B, hiddenSize]` (PyTorch's `h_n` without its layer axis).
    public func run(_ x: Tensor, initialState: Tensor?) -> (output: Tensor, finalState: Tensor) {
        precondition(x.rank == 3 && x.shape[2] == inputSize && x.shape[1] >= 1,
                     "GRU: input \(x.shape) is not [B, T ≥ 1, \(inputSize)]")
        let b = x.shape[0], steps = x.shape[1], hs = hiddenSize
        if let initialState {
            precondition(initialState.shape == [b, hs], "GRU: initial state \(initialState.shape) is not [\(b), \(hs)]")
        }
        // Input projections of every step at once, time-major: [T, B, 3H]; then the fused
        // recurrence (Tensor.gruSequence, its own backpropagation through time).
        let projected = Tensor.linear(x.permuted([1, 0, 2]).reshaped([steps * b, inputSize]),
                                      weight: weightIH.value, bias: biasIH.value).reshaped([steps, b, 3 * hs])
        let states = Tensor.gruSequence(projected, weightHH: weightHH.value, biasHH: biasHH.value,
                                        initial: initialState ?? Tensor.zeros([b, hs]))  // [T, B, H]
        return (states.permuted([1, 0, 2]), states.slice(axis: 0, (steps - 1)..<steps).reshaped([b, hs]))
    }

    /// `weight_ih_l0`, `weight_hh_l0`, `bias_ih_l0`, `bias_hh_l0` (PyTorch's order).
    public var namedParameters: [(String, Parameter)] {
        [("weight_ih_l0", weightIH), ("weight_hh_l0", weightHH), ("bias_ih_l0", biasIH), ("bias_hh_l0", biasHH)]
    }
}
