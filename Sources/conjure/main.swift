import Foundation
import ConjureTraining
import ConjureModels

let model = CommandLine.arguments.count > 1 ? CommandLine.arguments[1] : "seed"
let quick = CommandLine.arguments.count > 2
for (b, t) in quick ? [(64, 1)] : [(64, 1), (64, 2), (256, 2)] {
    let r = quick ? Benchmark.run(config: GANConfig.presets[model]!, batch: b, threads: t, warmup: 5, steps: 20, repeats: 1)
        : Benchmark.run(config: GANConfig.presets[model]!, batch: b, threads: t, repeats: 5)
    print(model, b, t, r.stepsPerSecondMedian, r.mflopPerStep)
}
