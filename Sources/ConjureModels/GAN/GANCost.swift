import ConjureNN

extension GAN: StepCostModel {
    /// Matrix-product FLOPs of one step: every Linear's forward (2·N·in·out) and its backward
    /// (input and weight gradients where needed), for G once, D on real and fake, D again for G.
    public func matrixFLOPsPerStep(batch n: Int) -> Double? {
        let c = config
        // Counted for the plain MLP step only: not for convolutions, labels, packing, several
        // critic steps per generator step or a gradient penalty's double backward.
        guard c.architecture == .mlp, c.conditionalClasses == 0, c.pack == 1, c.nCritic == 1, c.loss != .wgangp else { return nil }
        func layers(_ sizes: [Int]) -> [(Int, Int)] { zip(sizes, sizes.dropFirst()).map { ($0, $1) } }
        let g = layers([c.noiseDim] + c.generatorHidden + [c.dataDim])
        let d = layers([c.dataDim] + c.discriminatorHidden + [1])
        let gf = g.reduce(0.0) { $0 + 2.0 * Double(n * $1.0 * $1.1) }
        let df = d.reduce(0.0) { $0 + 2.0 * Double(n * $1.0 * $1.1) }
        // G forward + G backward (weights + inputs, first layer has no input gradient).
        let gFirst = 2.0 * Double(n * g[0].0 * g[0].1)
        let gTotal = gf + 2 * gf - gFirst
        // D: forward real + fake, backward weights for both, inputs except the first layer.
        let dFirst = 2.0 * Double(n * d[0].0 * d[0].1)
        let dStep = 2 * df + 2 * (2 * df - dFirst)
        // G step: D backward to its input (no weight gradients), after a D forward on the
        // fakes unless the D step's forward serves (simultaneous), and after a second G forward
        // on a fresh z (alternating-fresh, the reference scripts' step).
        let dForG: Double
        switch c.update {
        case .simultaneous: dForG = df
        case .alternating: dForG = df + df
        case .alternatingFresh: dForG = df + df + gf
        }
        return gTotal + dStep + dForG
    }
}
