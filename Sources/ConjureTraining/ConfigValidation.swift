import Foundation
import ConjureData
import ConjureModels

/// Bounds on a run's counts and fractions: one validation used by `conjure train` (on the
/// options given) and by ``Checkpoint/read(path:)`` (on the configuration saved in a
/// checkpoint), so an edited or corrupt checkpoint gets the same clear error as a bad option
/// instead of a crash (a `logEvery` of 0 divides by zero, a huge `evalCount` allocates without
/// bound).
public enum RunLimits {
    /// Most samples drawn for one in-training FID/KID measurement.
    public static let maxEvalCount = 100_000
    /// Most epochs of a run (steps per epoch times epochs must fit comfortably in an Int).
    public static let maxEpochs = 10_000_000
    /// Most samples generated for a built-in synthetic data set.
    public static let maxSyntheticCount = 10_000_000

    /// Checks the run-control settings; each name is the option that sets it.
    ///
    /// - Throws: ``ConfigError`` naming the option and the allowed range.
    public static func validate(logEvery: Int?, sampleEvery: Int?, checkpointEvery: Int?, evalEvery: Int?, evalCount: Int?,
                                heldOutFraction: Double, epochs: Int?, syntheticCount: Int?) throws {
        if let v = logEvery, v < 1 { throw ConfigError(option: "--log-every", problem: "must be at least 1, got \(v)") }
        if let v = sampleEvery, v < 0 { throw ConfigError(option: "--sample-every", problem: "must be non-negative, got \(v)") }
        if let v = checkpointEvery, v < 0 { throw ConfigError(option: "--checkpoint-every", problem: "must be non-negative, got \(v)") }
        if let v = evalEvery, v < 0 { throw ConfigError(option: "--eval-every", problem: "must be non-negative, got \(v)") }
        if let v = evalCount, v < 2 || v > maxEvalCount {
            throw ConfigError(option: "--eval-count", problem: "must be between 2 and \(maxEvalCount), got \(v)")
        }
        if !(heldOutFraction >= 0 && heldOutFraction < 1) {
            throw ConfigError(option: "--held-out", problem: "must be in [0, 1), got \(heldOutFraction)")
        }
        if let e = epochs, e < 1 || e > maxEpochs { throw ConfigError(option: "--epochs", problem: "must be between 1 and \(maxEpochs), got \(e)") }
        if let n = syntheticCount, n < 1 || n > maxSyntheticCount {
            throw ConfigError(option: "--synthetic-count", problem: "must be between 1 and \(maxSyntheticCount), got \(n)")
        }
    }
}

extension RunConfig {
    /// The model's own validation and ``RunLimits`` on the saved cadences, fractions and counts.
    ///
    /// - Throws: ``ConfigError`` naming the option that sets the bad value.
    public func validate() throws {
        try model.validate()
        try RunLimits.validate(logEvery: logEvery, sampleEvery: sampleEvery, checkpointEvery: checkpointEvery, evalEvery: evalEvery,
                               evalCount: evalCount, heldOutFraction: heldOutFraction, epochs: model.epochs, syntheticCount: syntheticCount)
        if trainSamples < 1 { throw ConfigError(option: "data", problem: "the run has \(trainSamples) training samples") }
        if !normalization.isUsable {
            throw ConfigError(option: "--normalize", problem: "the run's normalisation (\(normalization)) is degenerate: no value maps back to data units")
        }
        if let rate = audio?.sampleRate, !AudioFile.sampleRates.contains(rate) {
            let r = AudioFile.sampleRates
            throw ConfigError(option: "--sample-rate", problem: "the run's sound is at \(rate) Hz, outside \(r.lowerBound)-\(r.upperBound) Hz")
        }
    }
}
