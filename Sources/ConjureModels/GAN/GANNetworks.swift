import ConjureNN

extension GAN {
    /// The generator and discriminator layers of `config`, built in one pass so that the
    /// initial weights are drawn from `rng` in the order of the original single constructor:
    /// every generator layer first, then every discriminator layer.
    static func makeNetworks(_ config: GANConfig, rng: inout RandomGenerator) -> (generator: Sequential, discriminator: Sequential) {
        var g: [any Layer] = []
        var d: [any Layer] = []
        func sn<L: SpectralNormalizable>(_ layer: L) -> any Layer {
            config.spectralNorm ? SpectralNorm(layer, rng: &rng) : layer
        }
        switch config.architecture {
        case .mlp:
            var width = config.noiseDim + config.conditionalClasses
            for (i, h) in config.generatorHidden.enumerated() {
                g.append(Linear(width, h, rng: &rng))
                if config.generatorBatchNorm[i] { g.append(BatchNorm1d(h)) }
                g.append(Activation(config.generatorActivation == .relu ? .relu : .leakyRelu(config.leakySlope)))
                width = h
            }
            g.append(Linear(width, config.dataDim, rng: &rng))
            width = config.dataDim * config.pack + config.conditionalClasses
            for h in config.discriminatorHidden {
                d.append(sn(Linear(width, h, rng: &rng)))
                d.append(Activation(.leakyRelu(config.leakySlope)))
                width = h
            }
            d.append(sn(Linear(width, 1, rng: &rng)))
        case .dcgan:
            let shape = config.imageShape ?? [1, 28, 28]
            // A conditional DCGAN takes z ++ one-hot label and judges image ++ K label maps.
            let c = shape[0], k = config.conditionalClasses, nz = config.noiseDim + k
            // No BatchNorm in a critic with a gradient penalty (Gulrajani et al. 2017) or with spectral norm.
            let criticBatchNorm = config.loss != .wgangp && !config.spectralNorm
            if shape[1] == 28 {
                g = [Linear(nz, 128 * 7 * 7, rng: &rng), BatchNorm1d(128 * 7 * 7), Activation(.relu), Reshape([128, 7, 7]),
                     ConvTranspose2d(128, 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng), BatchNorm2d(64), Activation(.relu),
                     ConvTranspose2d(64, c, kernelSize: 4, stride: 2, padding: 1, rng: &rng)]
                d.append(sn(Conv2d(c + k, 64, kernelSize: 4, stride: 2, padding: 1, rng: &rng)))
                d.append(Activation(.leakyRelu(config.leakySlope)))
                d.append(sn(Conv2d(64, 128, kernelSize: 4, stride: 2, padding: 1, rng: &rng)))
                if criticBatchNorm { d.append(BatchNorm2d(128)) }
                d.append(Activation(.leakyRelu(config.leakySlope)))
                d.append(Flatten())
                d.append(sn(Linear(128 * 7 * 7, 1, rng: &rng)))
            } else {
                // 32 or 64 px: the PyTorch DCGAN example (ngf = ndf = 64, 4x4 kernels, no conv
                // biases, conv weights N(0, 0.02), BatchNorm weights N(1, 0.02)); 4x4 maps double
                // per stage up to the image size. A critic without BatchNorm keeps its conv biases.
                let dcganInit = Initializer.normal(std: 0.02)
                func batchNorm(_ channels: Int) -> BatchNorm2d {
                    let bn = BatchNorm2d(channels)
                    bn.weight.assign(.randomNormal([channels], mean: 1, std: 0.02, using: &rng))
                    return bn
                }
                let stages = shape[1] == 64 ? 4 : 3
                var width = 64 << (stages - 1)
                g = [Reshape([nz, 1, 1]), ConvTranspose2d(nz, width, kernelSize: 4, stride: 1, padding: 0, bias: false, initializer: dcganInit, rng: &rng),
                     batchNorm(width), Activation(.relu)]
                for _ in 1..<stages {
                    g += [ConvTranspose2d(width, width / 2, kernelSize: 4, stride: 2, padding: 1, bias: false, initializer: dcganInit, rng: &rng),
                          batchNorm(width / 2), Activation(.relu)]
                    width /= 2
                }
                g.append(ConvTranspose2d(width, c, kernelSize: 4, stride: 2, padding: 1, bias: false, initializer: dcganInit, rng: &rng))
                d.append(sn(Conv2d(c + k, width, kernelSize: 4, stride: 2, padding: 1, bias: !criticBatchNorm, initializer: dcganInit, rng: &rng)))
                d.append(Activation(.leakyRelu(config.leakySlope)))
                for _ in 1..<stages {
                    d.append(sn(Conv2d(width, width * 2, kernelSize: 4, stride: 2, padding: 1, bias: !criticBatchNorm, initializer: dcganInit, rng: &rng)))
                    if criticBatchNorm { d.append(batchNorm(width * 2)) }
                    d.append(Activation(.leakyRelu(config.leakySlope)))
                    width *= 2
                }
                d.append(sn(Conv2d(width, 1, kernelSize: 4, stride: 1, padding: 0, bias: !criticBatchNorm, initializer: dcganInit, rng: &rng)))
                d.append(Flatten())  // [N, 1, 1, 1] logits -> [N, 1]
            }
        case .wavegan:
            (g, d) = makeWaveGAN(config, rng: &rng)
        }
        switch config.outputActivation {
        case .tanh: g.append(Activation(.tanh))
        case .sigmoid: g.append(Activation(.sigmoid))
        case .identity: break
        }
        return (Sequential(g), Sequential(d))
    }

    /// The generator of `config` (drawing its weights from `rng` as ``makeNetworks(_:rng:)``
    /// does first).
    static func makeGenerator(_ config: GANConfig, rng: inout RandomGenerator) -> Sequential {
        makeNetworks(config, rng: &rng).generator
    }

    /// WaveGAN's generator (without its output activation) and critic (Donahue et al. 2019,
    /// appendix table; see ``GANConfig/waveganPreset``), Glorot-uniform weights and zero biases
    /// as in the authors' TensorFlow code (PyTorch's default initialisation shrinks the signal
    /// through the five ReLU stages until, at small d, whole channels are dead), generator
    /// layers drawn first.
    ///
    /// State-dict names: `generator.0` Linear, `generator.3/5/7/9/11` the ConvTranspose1d
    /// layers; `discriminator.0/3/6/9/12` the Conv1d layers (LeakyReLU and PhaseShuffle
    /// between them), `discriminator.15` the final Linear.
    static func makeWaveGAN(_ config: GANConfig, rng: inout RandomGenerator) -> (generator: [any Layer], discriminator: [any Layer]) {
        let shape = config.signalShape ?? [1, 8192]
        let c = shape[0], l0 = shape[1] / 1024, d = config.modelSize, k = config.conditionalClasses
        let widths = [16 * d, 8 * d, 4 * d, 2 * d, d, c]
        let glorot = Initializer.xavierUniform
        var g: [any Layer] = [Linear(config.noiseDim + k, 16 * d * l0, initializer: glorot, rng: &rng), Reshape([16 * d, l0]), Activation(.relu)]
        for i in 0..<5 {
            g.append(ConvTranspose1d(widths[i], widths[i + 1], kernelSize: 25, stride: 4, padding: 11, outputPadding: 1,
                                     initializer: glorot, rng: &rng))
            if i < 4 { g.append(Activation(.relu)) }
        }
        var dl: [any Layer] = []
        var width = c + k
        for i in 0..<5 {
            dl.append(Conv1d(width, d << i, kernelSize: 25, stride: 4, padding: 11, initializer: glorot, rng: &rng))
            dl.append(Activation(.leakyRelu(config.leakySlope)))
            // Phase shuffle after the first four activations; an identity placeholder with n = 0
            // keeps the state-dict indices the same for every n.
            if i < 4 { dl.append(PhaseShuffle(n: config.phaseShuffle, rng: &rng)) }
            width = d << i
        }
        dl += [Flatten(), Linear(16 * d * l0, 1, initializer: glorot, rng: &rng)]
        return (g, dl)
    }
}
