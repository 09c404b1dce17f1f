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
}
