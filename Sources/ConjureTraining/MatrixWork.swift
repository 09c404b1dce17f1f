import Foundation
import ConjureModels
import ConjureData

/// The matrix products of a training step and their cost on the current matrix backend
/// (``MatrixBackend/current``): what `conjure bench` prints beside the step time, and what
/// `conjure bench --gemm` times per backend.
public enum MatrixWork {
    /// One step's matrix and convolution work against its measured step time.
    public struct Bound: Codable, Sendable {
        /// The backend's name (`openblas`, `onednn`, ...).
        public var backend: String
        /// Matrix products per step (a strided batch counts each slice; an im2col convolution
        /// counts as its products).
        public var products: Int
        /// Convolution products per step that oneDNN's primitives computed (forward, backward
        /// data, backward weights each count one).
        public var convolutions: Int
        /// GFLOP per step of both (2·m·n·k per matrix product, 2·n·f·ho·wo·c·kh·kw per convolution).
        public var gflopPerStep: Double
        /// The step's largest product (most FLOPs), a matrix product or a convolution, in words.
        public var largest: String
        /// GFLOP/s the library reaches on ``largest`` alone, at the step's thread count.
        public var largestGFLOPs: Double
        /// The time the step's products take at the rates the library reaches on each of them
        /// alone (Σ FLOPs / rate over the step's products), in milliseconds: the step time if
        /// nothing but this work took time.
        public var boundMilliseconds: Double
        /// ``gflopPerStep`` / ``boundMilliseconds``: the rate over the whole step's products.
        public var stepGFLOPs: Double { gflopPerStep / boundMilliseconds * 1000 }
        /// The Float32 fused multiply-add peak of the step's threads, probed
        /// (``Parallel/fmaPeak(seconds:)``), in GFLOP/s: no library's products run faster.
        public var peakGFLOPs: Double
    }

    /// The products of one training step of `config` at `batch` (the model built from seed 0,
    /// one untimed step first, then the recorded one), in the order computed.
    public static func stepProducts(config: ModelConfig, batch: Int) -> [ProductShape] {
        stepWork(config: config, batch: batch).products
    }

    /// The matrix products and oneDNN convolution products of one training step of `config` at
    /// `batch`, recorded as ``stepProducts(config:batch:)`` records the products.
    public static func stepWork(config: ModelConfig, batch: Int) -> (products: [ProductShape], convolutions: [ConvolutionShape]) {
        let (optimization, data) = stepSetup(config: config, batch: batch)
        optimization.step(data)
        return ProductRecorder.recordWork { optimization.step(data) }
    }

    /// The training of `config` built from seed 0 and one synthetic batch of `batch` for it.
    static func stepSetup(config: ModelConfig, batch: Int) -> (Optimization, TrainingBatch) {
        var rng = RandomGenerator(seed: 0)
        let model = config.makeModel(rng: &rng)
        let optimization = Optimization(model: model, settings: config.optimization, seed: 0)
        let real = Benchmark.syntheticRows(model: model, config: config, batch: batch, rng: &rng)
        let z = Tensor.randomNormal([batch, config.latentDim], using: &rng)
        return (optimization, TrainingBatch(x: real, z: z, labels: model.balancedLabels(batch, offset: 0)))
    }

    /// One step's time and the parts of it its products and its parameter updates took, in
    /// milliseconds per step: the model of `config` built from seed 0 at `batch`, `warmup`
    /// untimed steps, then `steps` steps under ``StepTimer/measure(_:)`` at the current thread
    /// count (see there: the wall time during which a product, or an update, ran).
    ///
    /// - Precondition: `batch` ≥ 1, `steps` ≥ 1, `warmup` ≥ 0.
    public static func timeInStep(config: ModelConfig, batch: Int, warmup: Int = 10, steps: Int)
        -> (step: Double, products: Double, parameterUpdate: Double) {
        precondition(batch >= 1 && steps >= 1 && warmup >= 0, "MatrixWork.timeInStep: batch \(batch), \(steps) steps, \(warmup) warm-up")
        let (optimization, data) = stepSetup(config: config, batch: batch)
        for _ in 0..<warmup { optimization.step(data) }
        let t = StepTimer.measure {
            for _ in 0..<steps { optimization.step(data) }
        }
        func ms(_ ns: UInt64) -> Double { Double(ns) / 1e6 / Double(steps) }
        return (ms(t.wall), ms(t.phases[.products] ?? 0), ms(t.phases[.parameterUpdate] ?? 0))
    }

    /// GFLOP/s of Conjure's `sgemm` (blocks over the pool, the current backend) on `shape` with
    /// contiguous operands of uniform values in [-1, 1]: two untimed calls, then the median of
    /// `samples` timings, each of enough calls to last `seconds / samples`.
    ///
    /// - Precondition: `shape`'s extents ≥ 1, `samples` ≥ 1.
    public static func rate(_ shape: ProductShape, seconds: Double = 0.1, samples: Int = 5) -> Double {
        precondition(shape.m >= 1 && shape.n >= 1 && shape.k >= 1 && samples >= 1, "MatrixWork.rate: \(shape), \(samples) samples")
        var rng = RandomGenerator(seed: 1)
        let a = Tensor.randomUniform([shape.m * shape.k], low: -1, high: 1, using: &rng)
        let b = Tensor.randomUniform([shape.k * shape.n], low: -1, high: 1, using: &rng)
        var c = [Float](repeating: 0, count: shape.m * shape.n)
        return a.withUnsafeScalars { pa in
            b.withUnsafeScalars { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    func call() {
                        sgemm(transposeA: shape.transposeA, transposeB: shape.transposeB, m: shape.m, n: shape.n, k: shape.k,
                              a: pa.baseAddress!, b: pb.baseAddress!, c: pc.baseAddress!)
                    }
                    call(); call()
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    call()
                    let once = max(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, 1e-7)
                    let calls = max(1, Int(seconds / Double(samples) / once))
                    var rates: [Double] = []
                    for _ in 0..<samples {
                        let s0 = DispatchTime.now().uptimeNanoseconds
                        for _ in 0..<calls { call() }
                        let dt = max(Double(DispatchTime.now().uptimeNanoseconds - s0) / 1e9, 1e-9)
                        rates.append(shape.flops * Double(calls) / dt / 1e9)
                    }
                    return rates.sorted()[rates.count / 2]
                }
            }
        }
    }

    /// The bound of `products` and `convolutions` (one step's) on the current libraries at
    /// `threads` threads: each distinct product timed alone (``rate(_:seconds:samples:)`` and
    /// ``ConvolutionShape/rate(seconds:samples:)``, 3 timings over 50 ms), the step's FLOPs over
    /// those rates, the largest product's rate, and the threads' probed FMA peak
    /// (``Parallel/fmaPeak(seconds:)``, about 60 ms).
    ///
    /// - Precondition: `products` and `convolutions` are not both empty; `threads` in 1...64.
    public static func bound(products: [ProductShape], convolutions: [ConvolutionShape] = [], threads: Int) -> Bound {
        precondition(!(products.isEmpty && convolutions.isEmpty) && (1...64).contains(threads),
                     "MatrixWork.bound: \(products.count) products, \(convolutions.count) convolutions, \(threads) threads")
        Parallel.setThreads(threads)
        var seconds = 0.0, largest = "", largestFLOPs = -1.0, largestRate = 0.0
        for (shape, count) in distinct(products) {
            let r = rate(shape, seconds: 0.05, samples: 3)
            seconds += shape.flops * Double(count) / (r * 1e9)
            if shape.flops > largestFLOPs { (largest, largestFLOPs, largestRate) = (shape.description, shape.flops, r) }
        }
        var counts: [ConvolutionShape: Int] = [:]
        for c in convolutions { counts[c, default: 0] += 1 }
        for (shape, count) in counts.sorted(by: { $0.key.description < $1.key.description }) {
            guard let r = shape.rate(seconds: 0.05, samples: 3) else { continue }
            seconds += shape.flops * Double(count) / (r * 1e9)
            if shape.flops > largestFLOPs { (largest, largestFLOPs, largestRate) = (shape.description, shape.flops, r) }
        }
        let flops = products.reduce(0) { $0 + $1.flops } + convolutions.reduce(0) { $0 + $1.flops }
        return Bound(backend: MatrixBackend.current.name, products: products.count, convolutions: convolutions.count,
                     gflopPerStep: flops / 1e9, largest: largest, largestGFLOPs: largestRate, boundMilliseconds: seconds * 1000,
                     peakGFLOPs: Parallel.fmaPeak())
    }

    /// The distinct shapes of `products` with how many times each occurs, most total FLOPs first.
    public static func distinct(_ products: [ProductShape]) -> [(shape: ProductShape, count: Int)] {
        var counts: [ProductShape: Int] = [:]
        var order: [ProductShape] = []
        for p in products {
            if counts[p] == nil { order.append(p) }
            counts[p, default: 0] += 1
        }
        return order.map { ($0, counts[$0]!) }.sorted { $0.shape.flops * Double($0.count) > $1.shape.flops * Double($1.count) }
    }
}
