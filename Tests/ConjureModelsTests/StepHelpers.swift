import ConjureModels
import ConjureNN
import Foundation

/// The trainer-owned optimisation of each model a test trains step by step (the models hold no
/// optimiser). Tests run on one thread; each model gets an ``Optimization`` on first use.
nonisolated(unsafe) private var optimizations: [ObjectIdentifier: Optimization] = [:]

/// The optimisation of `model` with its configuration's settings (created on first use).
func optimization(of model: any GenerativeModel, settings: OptimizationSettings, seed: UInt64) -> Optimization {
    if let o = optimizations[ObjectIdentifier(model)], o.model === model { return o }
    let o = Optimization(model: model, settings: settings, seed: seed)
    optimizations[ObjectIdentifier(model)] = o
    return o
}

/// Statistics of one GAN step, named as the tests read them.
struct GANStepStats {
    var dLoss: Float, gLoss: Float, meanDReal: Float, meanDFake: Float
}

extension GAN {
    /// The model's optimisation (the trainer's, built from the configuration).
    var optimization: Optimization { ConjureModelsTests.optimization(of: self, settings: config.optimization, seed: config.seed) }

    /// One step through the trainer's ``Optimization``.
    @discardableResult
    func trainStep(real: Tensor, z: Tensor, labels: [Int]? = nil) -> GANStepStats {
        let m = optimization.step(TrainingBatch(x: real, z: z, labels: labels))
        return GANStepStats(dLoss: m["d_loss"]!, gLoss: m["g_loss"]!, meanDReal: m["d_real"]!, meanDFake: m["d_fake"]!)
    }
}

extension VAE {
    /// The model's optimisation (the trainer's, built from the configuration).
    var optimization: Optimization { ConjureModelsTests.optimization(of: self, settings: config.optimization, seed: config.seed) }

    /// One step through the trainer's ``Optimization``.
    @discardableResult
    func trainStep(x: Tensor, eps: Tensor) -> VAEStepStats {
        let w = klWeight(atStep: optimization.updates(of: "model") + 1)
        let m = optimization.step(TrainingBatch(x: x, z: eps, labels: nil))
        return VAEStepStats(loss: m["loss"]!, reconstruction: m["reconstruction"]!, kl: m["kl"]!, klWeight: w)
    }
}
