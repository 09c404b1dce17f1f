import Foundation

/// A learning-rate schedule: a dimensionless multiplier of the base learning rate as a function
/// of the 0-based step, with an optional linear warm-up.
///
/// With `W = warmupSteps`, `T = totalSteps`, `f = finalFactor` and `s` the 0-based index of the
/// update about to be taken, ``factor(step:totalSteps:)`` is
///
///     s < W:   (s + 1) / W                                 // warm-up: 1/W, 2/W, ..., 1
///     s >= W:  p = min(1, (s - W) / (T - W))               // decay progress (1 when T <= W)
///              constant: 1
///              linear:   1 + (f - 1) p                     // 1 -> f
///              cosine:   f + (1 - f) (1 + cos(π p)) / 2    // 1 -> f
///
/// - The warm-up is the common `min(1, (s + 1) / W)`, the same as PyTorch's
///   `LinearLR(start_factor: 1/W, end_factor: 1, total_iters: W - 1)`: the first update uses
///   `lr / W` (never 0) and update `W - 1` the full rate.
/// - The decay runs over the `T - W` updates after the warm-up and, as in PyTorch's
///   `LinearLR(start_factor: 1, end_factor: f, total_iters: T - W)` and
///   `CosineAnnealingLR(T_max: T - W, eta_min: f * lr)` (cosine: Loshchilov & Hutter 2017,
///   "SGDR", eq. 5 without restarts), reaches `f` at `s = T`, the value after the last update;
///   so with `f = 0` no update is wasted at a zero rate. Steps past `T` keep `f`.
///
/// Apply it before each update: `opt.lr = baseLR * schedule.factor(step: s, totalSteps: T)`.
public struct LRSchedule: Codable, Sendable, Equatable, CustomStringConvertible {
    /// The shape of the decay after the warm-up.
    public enum Kind: String, Codable, Sendable, CaseIterable {
        /// Multiplier 1 after the warm-up.
        case constant
        /// Straight line from 1 to `finalFactor`.
        case linear
        /// Half a cosine period from 1 to `finalFactor` (SGDR without restarts).
        case cosine
    }

    /// The shape of the decay after the warm-up (default `constant`).
    public var kind: Kind
    /// Number of warm-up updates `W` (0: none).
    public var warmupSteps: Int
    /// The multiplier reached at the end of the decay, in `[0, 1]` (PyTorch's `eta_min / lr`
    /// for cosine, `end_factor` for linear). Ignored by `constant`.
    public var finalFactor: Float

    /// - Precondition: `warmupSteps >= 0` and `finalFactor` in `[0, 1]`; use
    ///   ``parse(_:warmupSteps:finalFactor:)`` for user input.
    public init(_ kind: Kind = .constant, warmupSteps: Int = 0, finalFactor: Float = 0) {
        precondition(warmupSteps >= 0, "LRSchedule: warmupSteps must be non-negative, got \(warmupSteps)")
        precondition(finalFactor >= 0 && finalFactor <= 1, "LRSchedule: finalFactor must be in [0, 1], got \(finalFactor)")
        self.kind = kind
        self.warmupSteps = warmupSteps
        self.finalFactor = finalFactor
    }

    /// A constant learning rate (multiplier 1 at every step).
    public static let constant = LRSchedule()

    /// A schedule from command-line values: `name` is `constant`, `linear` or `cosine`
    /// (case-insensitive, surrounding spaces ignored).
    ///
    /// - Throws: ``ConfigError`` naming the option: `--lr-schedule` for an unknown name,
    ///   `--lr-warmup-steps` for a negative warm-up, `--lr-final-factor` for a factor outside
    ///   `[0, 1]`.
    public static func parse(_ name: String, warmupSteps: Int = 0, finalFactor: Float = 0) throws -> LRSchedule {
        let names = Kind.allCases.map(\.rawValue).joined(separator: ", ")
        guard let kind = Kind(rawValue: name.trimmingCharacters(in: .whitespaces).lowercased()) else {
            throw ConfigError(option: "--lr-schedule", problem: "unknown schedule '\(name)'", hint: "expected one of \(names)")
        }
        guard warmupSteps >= 0 else {
            throw ConfigError(option: "--lr-warmup-steps", problem: "must be non-negative, got \(warmupSteps)")
        }
        guard finalFactor >= 0 && finalFactor <= 1 else {
            throw ConfigError(option: "--lr-final-factor", problem: "must be in [0, 1], got \(finalFactor)")
        }
        return LRSchedule(kind, warmupSteps: warmupSteps, finalFactor: finalFactor)
    }

    /// The multiplier of the base learning rate for the update with 0-based index `step` in a
    /// run of `totalSteps` updates (formula in the type's documentation). Dimensionless, in
    /// `(0, 1]` during warm-up and in `[finalFactor, 1]` afterwards.
    ///
    /// - Precondition: `step >= 0`.
    public func factor(step: Int, totalSteps: Int) -> Float {
        precondition(step >= 0, "LRSchedule.factor: step must be non-negative, got \(step)")
        if step < warmupSteps { return Float(Double(step + 1) / Double(warmupSteps)) }
        let decaySteps = totalSteps - warmupSteps
        let p = decaySteps > 0 ? min(1, Double(step - warmupSteps) / Double(decaySteps)) : 1
        let f = Double(finalFactor)
        switch kind {
        case .constant: return 1
        case .linear: return Float(1 + (f - 1) * p)
        case .cosine: return Float(f + (1 - f) * (1 + cos(Double.pi * p)) / 2)
        }
    }

    /// For logs: `cosine (warm-up 100, final factor 0.1)`.
    public var description: String {
        var parts: [String] = []
        if warmupSteps > 0 { parts.append("warm-up \(warmupSteps)") }
        if kind != .constant { parts.append("final factor \(finalFactor)") }
        return kind.rawValue + (parts.isEmpty ? "" : " (" + parts.joined(separator: ", ") + ")")
    }

    enum CodingKeys: String, CodingKey { case kind, warmupSteps, finalFactor }

    /// Decodes and validates (a config file is user input).
    /// - Throws: `DecodingError.dataCorrupted` for a negative warm-up or a factor outside `[0, 1]`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let kind = try c.decode(Kind.self, forKey: .kind)
        let warmup = try c.decode(Int.self, forKey: .warmupSteps)
        let final = try c.decode(Float.self, forKey: .finalFactor)
        guard warmup >= 0 else {
            throw DecodingError.dataCorruptedError(forKey: .warmupSteps, in: c, debugDescription: "must be non-negative, got \(warmup)")
        }
        guard final >= 0 && final <= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .finalFactor, in: c, debugDescription: "must be in [0, 1], got \(final)")
        }
        self.init(kind, warmupSteps: warmup, finalFactor: final)
    }
}
