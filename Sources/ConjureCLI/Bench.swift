import ArgumentParser
import ConjureData
import ConjureMetrics
import ConjureModels
import ConjureOptim
import ConjureTraining
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Time training steps on synthetic batches (median of repeated runs); diffusion models' sampling speed too.")
    @Option(help: "Model preset of any family (default seed).") var model: String = "seed"
    @Option(parsing: .unconditional, help: "Timed repeats (median reported).") var repeats: Int = 7
    @Option(parsing: .unconditional, help: "Steps per repeat.") var steps: Int = 200
    @Option(parsing: .unconditional, help: "Warm-up steps.") var warmup: Int = 50
    @Option(help: "Configurations as BATCHxTHREADS, e.g. 64x1,64x2,256x2.") var configs: String = "64x1,64x2,256x1,256x2"
    @Option(help: "Update order to time: simultaneous, alternating or alternating-fresh (default: alternating-fresh for seed, the reference scripts' step; the preset's own otherwise).") var update: String?
    @Option(parsing: .unconditional, help: "Diffusion models: reverse steps of each timed sampling run at every configuration's batch and threads (default 10; 0: do not time sampling); the images/s are stated for the preset's sampler (DDIM 50), whose per-step cost a shorter run measures.") var sampleSteps: Int?
    @Flag(help: "Print JSON lines.") var json = false
    @OptionGroup var matrixBackend: BackendOption
    @Flag(help: "Instead of timing steps: time every distinct matrix product of the model's step on every available backend (interleaved rounds, --repeats of them; medians), at each configuration's batch and threads.") var gemm = false

    func run() {
        runReporting {
            guard var config = ModelConfig.presets[model.lowercased()] else {
                throw ConfigError(option: "--model", problem: "unknown preset '\(model)'", hint: "choose one of \(ModelConfig.presetNames.joined(separator: ", "))")
            }
            guard repeats >= 1 else { throw ConfigError(option: "--repeats", problem: "must be at least 1, got \(repeats)") }
            guard steps >= 1 else { throw ConfigError(option: "--steps", problem: "must be at least 1, got \(steps)") }
            guard warmup >= 0 else { throw ConfigError(option: "--warmup", problem: "must be at least 0, got \(warmup)") }
            var runs: [(Int, Int)] = []
            for part in configs.split(separator: ",", omittingEmptySubsequences: false) {
                let bt = part.lowercased().split(separator: "x", omittingEmptySubsequences: false).map { Int($0) }
                guard bt.count == 2, let batch = bt[0], let threads = bt[1] else {
                    throw ConfigError(option: "--configs", problem: "'\(part)' is not BATCHxTHREADS (e.g. 64x2)")
                }
                // The same limits as train's --batch-size and --threads.
                guard batch >= 2 && batch <= 1 << 20 else {
                    throw ConfigError(option: "--configs", problem: "'\(part)': the batch must be 2 to 1048576")
                }
                guard threads >= 1 && threads <= 64 else {
                    throw ConfigError(option: "--configs", problem: "'\(part)': the thread count must be 1 to 64")
                }
                runs.append((batch, threads))
            }
            let isSeed = config.preset == "seed"
            // The update order is the one GAN-specific option here: the reference scripts time
            // the seed network with a fresh z for the generator step.
            if var g = config.config as? GANConfig {
                if let update { g.update = try parseUpdateOrder(update) } else if isSeed { g.update = .alternatingFresh }
                config.config = g
            } else if update != nil {
                throw ConfigError(option: "--update", problem: "applies to GAN presets only; '\(model)' is a \(config.family)")
            }
            try config.validate()
            try matrixBackend.apply()
            config = try Benchmark.benchConfiguration(config)
            if gemm {
                try benchProducts(config: config, runs: runs)
                return
            }
            let preset = ModelConfig.presets[config.preset]
            let unchanged = preset == config
            let updateName = (config.config as? GANConfig)?.update
            // bench_torch_dcgan.py times the unchanged dcgan preset (28x28, alternating).
            let isDCGAN28 = config.preset == "dcgan" && unchanged
            var rngProbe = RandomGenerator(seed: 0)
            let probe = config.makeModel(rng: &rngProbe)
            // Sampling speed: asked of the capability, not of a family.
            var sampleStepsTimed: Int? = nil
            if let sampler = probe as? any DiffusionSampling {
                let stated = sampler.samplerStepCount
                let k = sampleSteps ?? Swift.min(10, stated)
                guard k >= 0 && k <= stated else {
                    throw ConfigError(option: "--sample-steps", problem: "must be between 0 and the sampler's \(stated) steps, got \(k)")
                }
                if k > 0 { sampleStepsTimed = k }
            } else if sampleSteps != nil {
                throw ConfigError(option: "--sample-steps", problem: "applies to diffusion models only; '\(model)' is a \(config.family), which samples in one pass")
            }
            let startup = BenchStartup.measure(config: config, batch: runs[0].0)
            let mflop = (probe as? StepCostModel)?.matrixFLOPsPerStep(batch: 64).map { $0 / 1e6 } ?? .nan
            let stepName = (updateName?.rawValue ?? "the family's step") + (updateName == .alternatingFresh && isSeed ? " (the reference scripts' step)" : "")
            if !json {
                print("backend \(MatrixBackend.current)" + (matrixBackend.backend == nil && ProcessInfo.processInfo.environment["CONJURE_BACKEND"] == nil ? " (the default)" : ""))
                print("convolutions: \(ConvolutionLibrary.summary)")
                print("model \(config.preset), update \(stepName): " + (mflop.isNaN ? "" : String(format: "%.1f MFLOP/step at batch 64; ", mflop))
                      + String(format: "start-up to first step %.3f s (batch %d)", startup, runs[0].0))
                let cores = Parallel.availableCores
                if runs.contains(where: { $0.1 > cores }) { print("note: more threads than the \(cores) cores available only adds contention") }
            }
            for (b, t) in runs {
                let r = Benchmark.run(config: config, batch: b, threads: t, warmup: warmup, steps: steps, repeats: repeats, sampleSteps: sampleStepsTimed)
                if json {
                    let enc = JSONEncoder()
                    enc.outputFormatting = [.sortedKeys]  // keys in one order every run
                    print(String(decoding: try enc.encode(r), as: UTF8.self))
                } else {
                    // Two decimals for slow steps (diffusion U-Nets run about one step per second).
                    let f = r.stepsPerSecondMedian < 10 ? "%.2f" : "%.1f"
                    var line = String(format: "batch %4d  threads %d  %8\(f.dropFirst()) steps/s (min \(f), max \(f))  %9.0f samples/s",
                                      b, t, r.stepsPerSecondMedian, r.stepsPerSecondMin, r.stepsPerSecondMax, r.samplesPerSecond)
                    if let m = r.mflopPerStep { line += String(format: "  %6.1f GFLOP/s", r.stepsPerSecondMedian * m / 1000) }
                    if let tokens = r.tokensPerSecond { line += String(format: "  %9.0f tokens/s", tokens) }
                    let comparable = updateName == .alternatingFresh
                    if isSeed && comparable, let ref = Benchmark.referenceSeed[b]?[t] {
                        line += String(format: "  x%.2f PyTorch eager (%.0f), x%.2f JAX scan (%.0f)",
                                       r.stepsPerSecondMedian / ref.torch, ref.torch, r.stepsPerSecondMedian / ref.jaxScan, ref.jaxScan)
                    }
                    if config.preset == "gan" && unchanged, let ref = Benchmark.referenceGANTorch[b]?[t] {
                        line += String(format: "  x%.2f PyTorch eager (%.1f)", r.stepsPerSecondMedian / ref, ref)
                    }
                    if isDCGAN28, let ref = Benchmark.referenceDCGANTorch[b]?[t] {
                        line += String(format: "  x%.2f PyTorch eager (%.1f)", r.stepsPerSecondMedian / ref, ref)
                    }
                    print(line)
                    let work = MatrixWork.stepWork(config: config, batch: b)
                    if !work.products.isEmpty || !work.convolutions.isEmpty {
                        let w = MatrixWork.bound(products: work.products, convolutions: work.convolutions, threads: t)
                        let step = 1000 / r.stepsPerSecondMedian
                        let what = w.convolutions > 0 ? "matrix + convolution work" : "matrix work"
                        let counted = w.convolutions > 0 ? "\(w.products) products + \(w.convolutions) oneDNN convolutions" : "\(w.products) products"
                        print(String(format: "  %@ %.2f ms at %.1f GFLOP/s (%@, %.3f GFLOP, each timed alone; the largest, %@, at %.1f GFLOP/s), step %.2f ms, other share %.0f%%",
                                     what, w.boundMilliseconds, w.stepGFLOPs, counted, w.gflopPerStep, w.largest, w.largestGFLOPs, step,
                                     100 * (step - w.boundMilliseconds) / step))
                        print(String(format: "  the FMA peak of %d thread%@ (probed): %.1f GFLOP/s; the products reach %.0f%% of it (the largest %.0f%%), at the peak they would take %.2f ms",
                                     t, t == 1 ? "" : "s", w.peakGFLOPs, 100 * w.stepGFLOPs / w.peakGFLOPs,
                                     100 * w.largestGFLOPs / w.peakGFLOPs, w.gflopPerStep / w.peakGFLOPs * 1000))
                        // The other share split: products slower inside the step than alone,
                        // parameter updates, and the rest (measured in a separate, instrumented run).
                        // About a second of steps (at least 3, at most --steps).
                        let timedSteps = Swift.max(3, Swift.min(steps, Int(r.stepsPerSecondMedian.rounded())))
                        let s = MatrixWork.timeInStep(config: config, batch: b, warmup: Swift.min(5, timedSteps), steps: timedSteps)
                        let rest = s.step - s.products - s.parameterUpdate
                        print(String(format: "  in the step (timed there, %.2f ms): products %.2f ms (%.0f%%; %.0f%% of their alone rate), parameter updates %.2f ms (%.0f%%), the rest %.2f ms (%.0f%%)",
                                     s.step, s.products, 100 * s.products / s.step, 100 * w.boundMilliseconds / s.products,
                                     s.parameterUpdate, 100 * s.parameterUpdate / s.step, rest, 100 * rest / s.step))
                    }
                    if let ips = r.imagesPerSecondMedian, let sampler = r.sampler, let k = r.sampleStepsTimed {
                        print(String(format: "sampling batch %4d  threads %d  %8.2f images/s (min %.2f, max %.2f)  ", b, t, ips, r.imagesPerSecondMin ?? .nan, r.imagesPerSecondMax ?? .nan)
                              + "\(sampler); from the averaged weights, per-step time of runs of \(k) step\(k == 1 ? "" : "s")")
                    }
                }
            }
            if isSeed && updateName == .alternatingFresh && !json {
                print("reference figures: ../shared/bench/REFERENCE.md (PyTorch 2.15 eager CPU wheel, JAX 0.10 lax.scan, same machine kind); re-run them beside this for a same-session ratio")
            } else if config.preset == "gan" && unchanged && !json {
                print("reference figures: scripts/bench_torch_gan.py (PyTorch 2.13 eager CPU wheel, this machine kind, 2026-11-29); re-run it beside this for a same-session ratio")
            } else if config.preset == "wavegan" && !json {
                print("one step = one critic update with the gradient penalty, a generator update after every fifth (use --steps and --warmup that are multiples of 5); same-session PyTorch figure: /work/torchvenv/bin/python scripts/bench_torch_wavegan.py --threads T --steps 20 --warmup 5 --reps 3 (the same network, d and T)")
            } else if (config.preset == "ddpm" || config.preset == "ddpm-cond") && unchanged && !json {
                print("same-session PyTorch figures: /work/torchvenv/bin/python scripts/bench_torch_ddpm.py --model \(config.preset) --batch B --threads T --sample-steps \(sampleStepsTimed ?? 10) (the same U-Net, step and sampler); scripts/bench_compare.sh \(config.preset) interleaves both")
            } else if isDCGAN28 && !json {
                print("reference figures: ../shared/bench/REFERENCE.md (bench_torch_dcgan.py, PyTorch 2.15 eager CPU wheel, same machine kind); re-run it beside this for a same-session ratio")
            }
            if !json { print(String(format: "peak RSS %.1f MB", peakRSSMegabytes())) }
        }
    }
}

extension Bench {
    /// `--gemm`: every distinct product of one step at each configuration's batch, timed on
    /// each available backend (or the one `--backend` names) in interleaved rounds; medians.
    func benchProducts(config: ModelConfig, runs: [(Int, Int)]) throws {
        let backends = matrixBackend.backend != nil ? [MatrixBackend.current] : MatrixBackend.availableNames.compactMap { MatrixBackend.loaded($0) }
        for b in backends { print("backend \(b)") }
        for (batch, threads) in runs {
            let shapes = MatrixWork.distinct(MatrixWork.stepProducts(config: config, batch: batch))
            Parallel.setThreads(threads)
            var rates = [[[Double]]](repeating: [[Double]](repeating: [], count: backends.count), count: shapes.count)
            for _ in 0..<repeats {
                for (j, backend) in backends.enumerated() {
                    MatrixBackend.with(backend) {
                        for (i, s) in shapes.enumerated() { rates[i][j].append(MatrixWork.rate(s.shape, seconds: 0.05, samples: 3)) }
                    }
                }
            }
            print("model \(config.preset), batch \(batch), threads \(threads): GFLOP/s per product (median of \(repeats) interleaved rounds)")
            /// `text` padded with spaces to `width` (on the left with `right`).
            func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
                let fill = String(repeating: " ", count: max(0, width - text.count))
                return right ? fill + text : text + fill
            }
            print(pad("product (MxNxK op)", 22) + pad("count", 6, right: true) + pad("MFLOP", 10, right: true)
                  + backends.map { " " + pad($0.name, 14, right: true) }.joined())
            var total = [Double](repeating: 0, count: backends.count)
            for (i, s) in shapes.enumerated() {
                let med = rates[i].map { r in r.sorted()[r.count / 2] }
                for j in backends.indices { total[j] += s.shape.flops * Double(s.count) / (med[j] * 1e9) }
                print(pad(s.shape.description, 22) + String(format: " %5d %9.2f", s.count, s.shape.flops / 1e6) + med.map { String(format: " %14.1f", $0) }.joined())
            }
            print(pad("step's matrix work (ms)", 38) + total.map { String(format: " %14.2f", $0 * 1000) }.joined())
        }
    }
}

/// Peak resident set size of this process (Linux `VmHWM`).
func peakRSSMegabytes() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return .nan }
    for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? .nan
        return kb / 1024
    }
    return .nan
}

/// Time from process start to the end of the first training step, at the first configuration's
/// batch (a large model's step at batch 64 would dominate the start-up and the peak RSS).
enum BenchStartup {
    static func measure(config: ModelConfig, batch: Int) -> Double {
        var rng = RandomGenerator(seed: 0)
        let model = config.makeModel(rng: &rng)
        let optimization = Optimization(model: model, settings: config.optimization, seed: 0)
        let real = Benchmark.syntheticRows(model: model, config: config, batch: batch, rng: &rng)
        optimization.step(TrainingBatch(x: real, z: Tensor.randomNormal([batch, config.latentDim], using: &rng), labels: model.balancedLabels(batch, offset: 0)))
        return processUptime()
    }
}
