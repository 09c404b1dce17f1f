import Foundation
import CConjureKernels

/// A seeded pseudo-random generator: xoshiro256** (Blackman & Vigna 2018) seeded through
/// SplitMix64. Its whole state is four 64-bit words (``state``) so that a checkpoint can store
/// and restore it exactly; independent streams come from ``init(seed:stream:)`` (for example
/// one per data-parallel rank).
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable {
    /// The four state words (never all zero).
    public var state: (UInt64, UInt64, UInt64, UInt64)

    /// Equal state words (the two generators produce the same sequence).
    public static func == (a: RandomGenerator, b: RandomGenerator) -> Bool {
        a.state.0 == b.state.0 && a.state.1 == b.state.1 && a.state.2 == b.state.2 && a.state.3 == b.state.3
    }

    /// A generator for `seed`; `stream` selects an independent sequence for the same seed.
    public init(seed: UInt64, stream: UInt64 = 0) {
        var x = seed &+ stream &* 0xD1B5_4A32_D192_ED03
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    /// Restores a generator from its saved ``state`` words.
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "RandomGenerator(state:): need 4 words, not all zero")
        self.state = (state[0], state[1], state[2], state[3])
    }

    /// The state as an array (for checkpoints).
    public var stateWords: [UInt64] { [state.0, state.1, state.2, state.3] }

    /// The next 64 random bits (xoshiro256**'s output function and state update).
    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((state.1 &* 5) << 7 | (state.1 &* 5) >> 57) &* 9
        let t = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= t
        state.3 = state.3 << 45 | state.3 >> 19
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    @inline(__always)
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with 53 random bits.
    @inline(__always)
    public mutating func nextUniformDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Standard normal pair by the Box–Muller transform, in Double.
    @inline(__always)
    public mutating func nextNormalPair() -> (Float, Float) {
        let a = next(), b = next()
        return RandomGenerator.boxMuller(a, b)
    }

    /// The Box–Muller transform of two raw draws (each taken as a Double uniform like
    /// ``nextUniformDouble()``): `u1 = 1 - U(a)` in (0, 1], `u2 = U(b)`,
    /// `(sqrt(-2 log u1) cos 2πu2, sqrt(-2 log u1) sin 2πu2)` in Double, rounded to Float
    /// (the C kernel `conjure_normal_pair`, the same bits on every CPU).
    @inline(__always)
    static func boxMuller(_ a: UInt64, _ b: UInt64) -> (Float, Float) {
        var pair: (Float, Float) = (0, 0)
        withUnsafeMutableBytes(of: &pair) { conjure_normal_pair(a, b, $0.baseAddress!.assumingMemoryBound(to: Float.self)) }
        return pair
    }

    /// A random permutation of `0..<n` (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) {
                let j = Int(next() % UInt64(i + 1))
                p.swapAt(i, j)
            }
        }
        return p
    }
}

extension Tensor {
    /// Samples from N(mean, std²), e.g. the latent `z` fed to a generator.
    public static func randomNormal(_ shape: [Int], mean: Float = 0, std: Float = 1,
                                    using rng: inout RandomGenerator) -> Tensor {
        let n = shape.reduce(1, *)
        // The raw draws in sequence, then the Box–Muller transform (vectorised C), split across
        // threads from 4096 values: the same values and generator state on any thread count.
        let pairs = (n + 1) / 2
        let raw = [UInt64](unsafeUninitializedCapacity: 2 * pairs) { b, count in
            for j in 0..<2 * pairs { b[j] = rng.next() }
            count = 2 * pairs
        }
        let out = [Float](unsafeUninitializedCapacity: n) { o, count in
            raw.withUnsafeBufferPointer { r in
                guard let r0 = r.baseAddress, let o0 = o.baseAddress else { return }
                Parallel.forRanges(pairs, minimum: n >= 4096 ? 1024 : pairs + 1, alignment: 1) { range in
                    let lo = 2 * range.lowerBound
                    conjure_box_muller(r0 + lo, min(n, 2 * range.upperBound) - lo, mean, std, o0 + lo)
                }
            }
            count = n
        }
        return Tensor(shape: shape, scalars: out)
    }

    /// Samples from U[low, high).
    public static func randomUniform(_ shape: [Int], low: Float = 0, high: Float = 1,
                                     using rng: inout RandomGenerator) -> Tensor {
        let n = shape.reduce(1, *)
        let out = [Float](unsafeUninitializedCapacity: n) { buf, initialised in
            for i in 0..<n { buf[i] = low + (high - low) * rng.nextUniform() }
            initialised = n
        }
        return Tensor(shape: shape, scalars: out)
    }
}

/// Every random stream Conjure draws from, in one place: each is derived from (seed, rank,
/// stream, counter) by ``generator(seed:rank:counter:)``, so no model or command salts its own
/// seed and two streams never coincide.
///
/// Rank 0 gives the streams of a single-process run (and of every run written before ranks
/// existed: the derivations keep their original values); a data-parallel rank `r > 0` mixes
/// `r` into the seed so that each rank draws its own latent batches.
public enum RandomStream: Sendable, Hashable, CaseIterable {
    /// Weight initialisation of a new model (stream 0).
    case initialization
    /// The latent `z` of every training step (stream 1; its state is saved in checkpoints).
    case latent
    /// The fixed latent batch of the in-training sample grids (stream 2).
    case fixedLatent
    /// `conjure sample`'s draws for a user seed (stream 3).
    case sampling
    /// The latent batch of in-training FID/KID measurements (stream 4).
    case inTrainingEvaluation
    /// The domain classifier's training batches (stream 7).
    case classifierBatches
    /// `conjure evaluate`'s sample draws (stream 9).
    case evaluation
    /// Memorisation checks and other evaluation subsets (stream 11).
    case evaluationSubsets
    /// Built-in synthetic data sets (ring8, grid25, moons; stream 0x5EED).
    case syntheticData
    /// The seeded held-out split (stream 0x5917 << 48).
    case heldOutSplit
    /// The batch order of each epoch (stream 0xBA7C4E50 << 32 plus the epoch).
    case batches
    /// The interpolation points of the WGAN-GP gradient penalty, one generator per
    /// discriminator step (seed salted with "gPenalty").
    case gradientPenalty
    /// The fresh latent batch of the `alternating-fresh` generator step, one generator per
    /// generator step (seed salted with "fresh_z").
    case freshLatent
    /// Dynamic binarisation of a VAE's training batch, one generator per step.
    case binarization
    /// Dropout masks and other per-step noise of a model's forward pass, one generator per step.
    case forwardNoise
    /// Diffusion timesteps and noise of a training step, one generator per step.
    case diffusion
    /// The token draws of text generation: `conjure sample --seed S` uses seed `S`, the
    /// in-training text samples the run's seed (seed salted with "textGen_").
    case textGeneration
    /// The noise a stochastic diffusion sampler (DDPM, DDIM with eta > 0) adds at each step,
    /// one generator per sampling call (seed salted with "dsampler").
    case diffusionSampling

    /// The generator of this stream for `seed`, data-parallel `rank` and `counter` (a step
    /// count for per-step streams, 0 otherwise).
    public func generator(seed: UInt64, rank: Int = 0, counter: UInt64 = 0) -> RandomGenerator {
        let s = rank == 0 ? seed : seed ^ (UInt64(truncatingIfNeeded: rank) &* 0x9E37_79B9_7F4A_7C15)
        switch self {
        case .initialization: return RandomGenerator(seed: s, stream: counter)
        case .latent: return RandomGenerator(seed: s, stream: 1 &+ counter)
        case .fixedLatent: return RandomGenerator(seed: s, stream: 2 &+ counter)
        case .sampling: return RandomGenerator(seed: s, stream: 3 &+ counter)
        case .inTrainingEvaluation: return RandomGenerator(seed: s, stream: 4 &+ counter)
        case .classifierBatches: return RandomGenerator(seed: s, stream: 7 &+ counter)
        case .evaluation: return RandomGenerator(seed: s, stream: 9 &+ counter)
        case .evaluationSubsets: return RandomGenerator(seed: s, stream: 11 &+ counter)
        case .syntheticData: return RandomGenerator(seed: s, stream: 0x5EED &+ counter)
        case .heldOutSplit: return RandomGenerator(seed: s, stream: 0x5917_0000_0000_0000 &+ counter)
        case .batches: return RandomGenerator(seed: s, stream: 0xBA7C_4E50_0000_0000 &+ counter)
        case .gradientPenalty: return RandomGenerator(seed: s ^ 0x6750_656E_616C_7479, stream: counter)
        case .freshLatent: return RandomGenerator(seed: s ^ 0x6672_6573_685F_7A00, stream: counter)
        case .binarization: return RandomGenerator(seed: s ^ 0x4269_6E61_7269_7A65, stream: counter)
        case .forwardNoise: return RandomGenerator(seed: s ^ 0x666F_7277_6172_644E, stream: counter)
        case .diffusion: return RandomGenerator(seed: s ^ 0x6469_6666_7573_696F, stream: counter)
        case .textGeneration: return RandomGenerator(seed: s ^ 0x7465_7874_4765_6E5F, stream: counter)
        case .diffusionSampling: return RandomGenerator(seed: s ^ 0x6473_616D_706C_6572, stream: counter)
        }
    }
}
