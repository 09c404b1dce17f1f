import Foundation
import CConjureKernels

extension Parallel {
    /// The Float32 fused multiply-add rate of the pool's ``threads`` threads at once, in
    /// GFLOP/s: each runs `conjure_fma_probe` (12 independent chains on the widest vectors the
    /// CPU has, nothing read from memory) for about `seconds / 3`; the best of three timings, each
    /// the FLOPs of all threads over the wall time. What the cores give a product whose operands
    /// are all in registers, so no library's matrix product or convolution runs faster.
    ///
    /// - Precondition: `seconds` > 0.
    public static func fmaPeak(seconds: Double = 0.06) -> Double {
        precondition(seconds > 0, "Parallel.fmaPeak: \(seconds) s")
        let threads = self.threads
        let flopsPerRound = 384.0
        func rate(_ rounds: Int) -> Double {
            let sums = UnsafeMutableBufferPointer<Float>.allocate(capacity: threads)
            defer { sums.deallocate() }
            let t0 = DispatchTime.now().uptimeNanoseconds
            forEach(threads) { i in sums[i] = conjure_fma_probe(rounds) }
            let dt = max(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9, 1e-9)
            precondition(sums.allSatisfy(\.isFinite), "Parallel.fmaPeak: the probe's chains did not stay finite")
            return flopsPerRound * Double(rounds) * Double(threads) / dt / 1e9
        }
        let probeRounds = 100_000
        let once = flopsPerRound * Double(probeRounds) * Double(threads) / (rate(probeRounds) * 1e9)
        let rounds = max(probeRounds, Int(Double(probeRounds) * seconds / 3 / once))
        return (0..<3).map { _ in rate(rounds) }.max()!
    }
}
