import Foundation
import ConjureData
import ConjureModels
import ConjureOptim
import ConjureMetrics

/// FID and KID of generator samples against the held-out split during training, in the
/// domain classifier's feature space when the data has labels, else in pixel space.
final class InTrainingEvaluator {
    let realFeatures: Tensor
    let features: (Tensor) -> Tensor
    let z: Tensor
    let space: String
    let seed: UInt64

    /// Whether this evaluator trained (and saved) the run's domain classifier.
    let trainedClassifier: Bool

    init(run: RunConfig, heldOut: [Int], runDirectory: String, shownDirectory: String, count: Int, seed: UInt64, log: (String) -> Void) throws {
        let runData = try Evaluator.loadRunData(run)
        let stats = run.normalization
        let real = stats.apply(runData.all.subset(runData.heldOut).samples)
        if runData.all.labels != nil {
            trainedClassifier = !FileManager.default.fileExists(atPath: Evaluator.classifierPath(runDirectory: runDirectory))
            let c = try Evaluator.domainClassifier(runDirectory: runDirectory, shownDirectory: shownDirectory, runData: runData, run: run, log: log)
            features = { c.classifier.features(c.normalization.apply(stats.inverse($0))) }
            space = "classifier"
        } else {
            guard run.model.dataDim <= Evaluator.maxPixelFeatures else {
                throw ConfigError(option: "--eval-every", problem: "the data has no labels for a domain classifier, and pixel-space FID of \(run.model.dataDim) values per sample is too costly (limit \(Evaluator.maxPixelFeatures))",
                                  hint: "use labelled data, or evaluate afterwards with `conjure evaluate --classifier FILE`")
            }
            features = { $0 }
            space = "pixels"
            trainedClassifier = false
        }
        realFeatures = features(real)
        var rng = RandomStream.inTrainingEvaluation.generator(seed: seed)
        z = Tensor.randomNormal([count, run.model.latentDim], using: &rng)
        self.seed = seed
    }

    func measure(_ model: any GenerativeModel) throws -> [String: Any] {
        let fake = features(model.sample(z: z, labels: model.balancedLabels(z.shape[0], offset: 0)))
        let fid = try Metrics.fid(real: realFeatures, fake: fake)
        let kid = try Metrics.kid(real: realFeatures, fake: fake, subsets: 10, subsetSize: min(500, realFeatures.shape[0], fake.shape[0]), seed: seed)
        return ["fid": fid.value, "kid": kid.mean, "kid_std": kid.std, "eval_samples": fake.shape[0], "eval_space": space]
    }

    /// The console line of a measurement: `eval step 200: FID 41.2, KID 0.03125 ± 0.00211
    /// (MMD², raw) on 2000 samples (classifier features)`. KID is printed and logged in one
    /// unit everywhere: the raw unbiased MMD² estimate, not scaled by 1000.
    static func consoleLine(_ record: [String: Any]) -> String {
        let step = record["step"] as? Int ?? 0
        let fid = record["fid"] as? Double ?? .nan, kid = record["kid"] as? Double ?? .nan, kidStd = record["kid_std"] as? Double ?? .nan
        return "eval step \(step): " + String(format: "FID %.4f, KID %.5f ± %.5f (MMD², raw)", fid, kid, kidStd)
            + " on \(record["eval_samples"] as? Int ?? 0) samples (\(record["eval_space"] as? String ?? "") features)"
    }
}
