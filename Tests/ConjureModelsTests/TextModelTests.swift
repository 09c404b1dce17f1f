import XCTest
import Foundation
import ConjureNN
import ConjureData
@testable import ConjureModels
@testable import ConjureTensor
import ConjureTestSupport

/// The character-level language models: training steps lower the loss, the transformer's loss
/// gradient matches finite differences, every network is causal, generation is deterministic.
final class TextModelTests: XCTestCase {
    /// A tiny lines corpus (invented names) and its data set.
    func corpus(_ mode: TextMode = .lines) throws -> TextDataset {
        let names = ["anna", "bob", "carla", "dan", "emma", "finn", "gina", "hank", "ida", "jon", "kara", "leo",
                     "mia", "ned", "olga", "pia", "quinn", "rosa", "sam", "tina", "uma", "vera", "will", "xena"]
        // Twice, so that stream mode's held-out last 10% holds only characters seen in training.
        let text = String(repeating: names.joined(separator: "\n") + "\n", count: 2)
        return try TextDataset(corpus: TextCorpus(source: "tiny", scalars: Array(text.unicodeScalars)), mode: mode, seed: 1)
    }

    /// A small configuration of `preset`'s architecture adopted to `ds`.
    func config(_ preset: String, _ ds: TextDataset, context: Int = 8, dropout: Float = 0) throws -> TextConfig {
        var c = TextConfig.presets[preset]!
        c.width = 16; c.embedDim = 8; c.layers = 2; c.heads = 2; c.context = context; c.dropout = dropout
        c.lrSchedule = .constant; c.lr = 1e-2; c.seed = 7
        c.adopt(vocabulary: ds.vocabulary, mode: ds.mode)
        let rows = rows(ds)
        try c.adapt(to: .tokens(vocabulary: ds.vocabulary.count, length: rows.shape[1]))
        try c.validate()
        return c
    }

    /// The training rows as the trainer gets them (lines: padded rows; stream: blocks).
    func rows(_ ds: TextDataset, context: Int = 8) -> Tensor {
        switch ds.encoded {
        case .lines(let t, _): return Tensor(shape: [t.count, t.width], scalars: t.tokens.map(Float.init))
        case .stream(let t, _):
            let r = context + 1, n = t.tokens.count / r
            return Tensor(shape: [n, r], scalars: t.tokens.prefix(n * r).map(Float.init))
        }
    }

    /// Dropout is the transformer's only: asked of char-mlp or char-gru it is an error, not
    /// silently ignored.
    func testDropoutIsRefusedForArchitecturesWithoutIt() throws {
        for (name, preset) in TextConfig.presets.sorted(by: { $0.key < $1.key }) {
            var c = preset
            c.dropout = 0.1
            if c.architecture == .transformer {
                XCTAssertNoThrow(try c.validate(), name)
            } else {
                XCTAssertThrowsError(try c.validate(), name) { e in
                    XCTAssertEqual((e as? ConfigError)?.option, "--dropout", name)
                    XCTAssertEqual((e as? ConfigError)?.problem, "the \(c.architecture.rawValue) architecture has no dropout (only char-transformer's does), got 0.1", name)
                }
            }
            c.dropout = 0
            XCTAssertNoThrow(try c.validate(), name)
        }
    }

    func testEachPresetsStepLowersTheLossOnATinyCorpus() throws {
        for mode in [TextMode.lines, .stream] {
            let ds = try corpus(mode)
            for preset in ["char-mlp", "char-gru", "char-transformer"] {
                let c = try config(preset, ds)
                var rng = RandomGenerator(seed: 3)
                let model = TextModel(config: c, rng: &rng)
                let opt = Optimization(model: model, settings: c.optimization, seed: c.seed)
                let x = rows(ds)
                let batch = TrainingBatch(x: x, z: .zeros([x.shape[0], 0]), labels: nil)
                let first = opt.step(batch)["loss"]!
                // The first loss is about log V (uniform predictions at initialisation).
                XCTAssertEqual(Double(first), log(Double(ds.vocabulary.count)), accuracy: 0.6, "\(preset) \(mode) initial loss")
                var last = first
                let copies = TensorView.copiesForOtherHolders.current
                for _ in 0..<60 { last = opt.step(batch)["loss"]! }
                XCTAssertEqual(TensorView.copiesForOtherHolders.current, copies, "\(preset): the flat in-place updates copied weights for other holders")
                XCTAssert(last.isFinite && last < 0.75 * first, "\(preset) \(mode): loss \(first) -> \(last)")
            }
        }
    }

    /// Central differences (step 1e-2, Double sums of Float32 losses) of the transformer's
    /// mean token cross-entropy against autodiff, for a few elements of every parameter.
    func testTransformerLossGradientMatchesFiniteDifferences() throws {
        let ds = try corpus()
        var c = try config("char-transformer", ds)
        c.width = 8; c.heads = 2; c.layers = 1
        var rng = RandomGenerator(seed: 5)
        let model = TextModel(config: c, rng: &rng)
        // Larger weights than nanoGPT's 0.02 init so that every path carries gradient.
        for (_, p) in model.net.allNamedParameters() { p.assign(.randomNormal(p.shape, std: 0.3, using: &rng)) }
        let x = rows(ds).slice(axis: 0, 0..<6)
        var noise = RandomGenerator(seed: 0)
        let params = model.net.allNamedParameters()
        let loss = model.loss(rows: x, noise: &noise)
        let grads = Tensor.gradients(of: loss, wrt: params.map { $0.1.value })
        var pick = RandomGenerator(seed: 11)
        var checked = 0
        for ((name, p), g) in zip(params, grads) {
            for _ in 0..<3 {
                let i = Int(pick.next() % UInt64(p.value.count))
                let base = p.value
                func lossAt(_ delta: Float) -> Double {
                    var v = base.detached()
                    v.withMutableScalars { $0[i] += delta }
                    p.assign(v)
                    var n = RandomGenerator(seed: 0)
                    return Double(withoutGrad { model.loss(rows: x, noise: &n) }.item)
                }
                let h: Float = 1e-2
                let numeric = (lossAt(h) - lossAt(-h)) / (2 * Double(h))
                p.assign(base)
                let analytic = Double(g.scalars[i])
                XCTAssertEqual(analytic, numeric, accuracy: 2e-3 + 2e-2 * abs(numeric), "\(name)[\(i)]")
                checked += 1
            }
        }
        XCTAssertGreaterThan(checked, 30)
    }

    /// Changing the token at position j leaves the logits at positions before j unchanged
    /// (exactly) and changes the logits at j, for each network.
    func testEveryNetworkIsCausal() throws {
        let ds = try corpus(.stream)
        for preset in ["char-mlp", "char-gru", "char-transformer"] {
            let c = try config(preset, ds)
            var rng = RandomGenerator(seed: 9)
            let model = TextModel(config: c, rng: &rng)
            model.net.setTraining(false)
            let t = 8, v = ds.vocabulary.count
            var tokens = (0..<t).map { ($0 * 5 + 1) % v }
            var noise = RandomGenerator(seed: 0)
            let all = Array(0..<t)
            let before = withoutGrad { model.net.logits(tokens: tokens, batch: 1, length: t, positions: all, noise: &noise) }
            let j = 5
            tokens[j] = (tokens[j] + 3) % v
            let after = withoutGrad { model.net.logits(tokens: tokens, batch: 1, length: t, positions: all, noise: &noise) }
            XCTAssertEqual(Array(before.scalars[..<(j * v)]), Array(after.scalars[..<(j * v)]), "\(preset): logits before position \(j) changed")
            XCTAssertNotEqual(Array(before.scalars[(j * v)..<((j + 1) * v)]), Array(after.scalars[(j * v)..<((j + 1) * v)]), "\(preset): position \(j) ignores its own token")
        }
    }

    func testGenerationIsDeterministicAndHonoursItsOptions() throws {
        let ds = try corpus()
        let c = try config("char-transformer", ds)
        var rng = RandomGenerator(seed: 2)
        let model = TextModel(config: c, rng: &rng)
        func draw(_ o: GenerationOptions, seed: UInt64 = 4) throws -> [String] {
            var r = RandomStream.textGeneration.generator(seed: seed)
            return try model.generate(count: 12, options: o, rng: &r)
        }
        XCTAssertEqual(try draw(GenerationOptions()), try draw(GenerationOptions()))
        XCTAssertNotEqual(try draw(GenerationOptions()), try draw(GenerationOptions(), seed: 5))
        // top-k 1 is greedy decoding: the same as temperature 0, whatever the seed.
        XCTAssertEqual(try draw(GenerationOptions(topK: 1)), try draw(GenerationOptions(temperature: 0), seed: 9))
        let prompted = try draw(GenerationOptions(prompt: "ka", maxLength: 4))
        XCTAssert(prompted.allSatisfy { $0.hasPrefix("ka") && $0.unicodeScalars.count <= 4 }, "\(prompted)")
        XCTAssertThrowsError(try draw(GenerationOptions(prompt: "Z")), "a prompt character outside the vocabulary")
        XCTAssertThrowsError(try draw(GenerationOptions(topP: 0)))
        // Every drawn character is in the vocabulary (decode never prints U+FFFD).
        XCTAssert(try draw(GenerationOptions(temperature: 2)).allSatisfy { !$0.contains("\u{FFFD}") && !$0.contains("\n") })
    }

    func testDrawKeepsOnlyTheNucleus() {
        let logits: [Float] = [log(0.5), log(0.3), log(0.15), log(0.05)]
        var rng = RandomGenerator(seed: 1)
        var seen = Set<Int>()
        logits.withUnsafeBufferPointer { l in
            for _ in 0..<400 { seen.insert(TextModel.draw(l, options: GenerationOptions(topP: 0.75), banned: nil, rng: &rng)) }
        }
        XCTAssertEqual(seen, [0, 1], "top-p 0.75 keeps the two tokens whose mass first reaches 0.75")
    }
}
