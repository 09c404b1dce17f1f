import Foundation

/// A discriminator that wins completely (the failure "D wins, G gets no gradient" of
/// Goodfellow 2016, NIPS tutorial, section 3.2 and Arjovsky & Bottou 2017): the GAN's rule of
/// ``TrainingDiagnosis``.
extension GAN: TrainingDiagnosis {
    /// Windows in a row with `d_loss` below ``winningLoss`` that count as a win.
    public static let winningWindows = 2
    /// `d_loss` under this (BCE and least squares, whose losses are non-negative) is a
    /// discriminator that separates real from fake almost perfectly.
    public static let winningLoss = 0.01
    /// Mean `D(G(z))` (BCE's probability of "real" for fakes) under this is the same symptom.
    public static let winningFakeProbability = 0.01

    /// Warns when `d_loss < 0.01` for ``winningWindows`` windows in a row (BCE and least
    /// squares) or the latest window's mean `D(G(z))` (`d_fake`) is under 0.01 (BCE). Critics
    /// (WGAN-GP, hinge) have unbounded losses and are not judged by these thresholds.
    public func diagnose(windows: [[(name: String, value: Double)]]) -> String? {
        guard config.loss == .bce || config.loss == .lsgan, let latest = windows.last else { return nil }
        func value(_ w: [(name: String, value: Double)], _ name: String) -> Double? { w.first { $0.name == name }?.value }
        var symptom: String?
        let recent = windows.suffix(GAN.winningWindows)
        if recent.count == GAN.winningWindows, recent.allSatisfy({ (value($0, "d_loss") ?? 1) < GAN.winningLoss }) {
            let v = value(latest, "d_loss") ?? 0
            symptom = "d_loss \(format(v)) under \(GAN.winningLoss) for \(GAN.winningWindows) logging windows in a row"
        } else if config.loss == .bce, let fake = value(latest, "d_fake"), fake < GAN.winningFakeProbability {
            symptom = "mean D(G(z)) \(format(fake)) under \(GAN.winningFakeProbability)"
        }
        guard let symptom else { return nil }
        return "warning: the discriminator wins completely (\(symptom)): the generator gets almost no gradient and stops learning. "
            + "Usual remedies: a lower discriminator learning rate (--lr-d) or a higher generator one (--lr-g), a smaller discriminator (--d-hidden), "
            + "--spectral-norm, or a critic objective (--loss hinge or wgangp)"
    }

    private func format(_ v: Double) -> String { String(format: "%.3g", v) }
}
