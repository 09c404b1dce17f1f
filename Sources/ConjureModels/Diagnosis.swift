/// A model family's reading of its own training curves: the trainer hands it the logging
/// windows closed so far (each the means of the step statistics over `--log-every` steps) and
/// prints the first warning it returns, once per process. The rules belong to the family (a
/// discriminator that wins is a GAN matter); the trainer knows none of them.
public protocol TrainingDiagnosis {
    /// A one-line warning naming the symptom and the usual remedies when `windows` (oldest
    /// first, the latest last; at most a few) show a known failure, nil otherwise.
    ///
    /// - Parameter windows: each window's statistics by name, in ``GenerativeModel/stepStatisticNames`` order.
    func diagnose(windows: [[(name: String, value: Double)]]) -> String?
}
