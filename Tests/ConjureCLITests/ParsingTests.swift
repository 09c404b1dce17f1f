import XCTest
import ConjureModels
import ConjureOptim
import ConjureTraining
@testable import ConjureCLI

/// Command-line parsing in-process: every family gets the optimisation options, a family's
/// options are refused for another family's presets with that family's hint, and `--resume`
/// refuses model options.
final class ParsingTests: XCTestCase {
    func options(_ args: [String]) throws -> TrainOptions { try Train.parse(args).makeOptions() }

    func testEveryFamilyTakesTheOptimisationOptions() throws {
        for model in ["vae", "gan", "conv-vae", "dcgan"] {
            let o = try options(["--model", model, "--optimizer", "adamw", "--lr-schedule", "cosine", "--lr-warmup-steps", "10",
                                 "--clip-grad-norm", "1", "--ema", "0.999", "--weight-decay", "0.01"])
            let s = o.model.optimization
            XCTAssertEqual(o.model.family, model.hasSuffix("vae") ? "vae" : "gan", model)
            XCTAssertEqual(s.optimizer, .adamw, model)
            XCTAssertEqual(s.lrSchedule.kind, .cosine, model)
            XCTAssertEqual(s.lrSchedule.warmupSteps, 10, model)
            XCTAssertEqual(s.clipGradNorm, 1, model)
            XCTAssertEqual(s.emaDecay, 0.999, model)
            XCTAssertEqual(s.weightDecay, 0.01, model)
        }
        XCTAssertNil(try options(["--model", "gan", "--ema", "0"]).model.optimization.emaDecay, "--ema 0 turns averaging off")
    }

    func testFamilyOptionsApplyToTheirFamilyOnly() throws {
        let v = try options(["--model", "vae", "--latent-dim", "7", "--lr", "0.002", "--encoder-hidden", "20,10"])
        XCTAssertEqual(v.model.vae?.latentDim, 7)
        XCTAssertEqual(v.model.vae?.lr, 0.002)
        XCTAssertEqual(v.model.vae?.encoderHidden, [20, 10])
        let g = try options(["--model", "gan", "--noise-dim", "12", "--lr-g", "0.001", "--loss", "hinge"])
        XCTAssertEqual(g.model.gan?.noiseDim, 12)
        XCTAssertEqual(g.model.gan?.loss, .hinge)
        for (args, option, hint) in [(["--model", "vae", "--noise-dim", "3"], "--noise-dim", "use --latent-dim"),
                                     (["--model", "vae", "--lr-g", "0.1"], "--lr-g", "use --lr"),
                                     (["--model", "gan", "--latent-dim", "3"], "--latent-dim", "use --noise-dim"),
                                     (["--model", "gan", "--lr", "0.1"], "--lr", "use --lr-g and --lr-d")] {
            XCTAssertThrowsError(try options(args)) { e in
                let c = e as? ConfigError
                XCTAssertEqual(c?.option, option, "\(args)")
                XCTAssertEqual(c?.hint, hint, "\(args)")
            }
        }
    }

    /// Width lists: empty or `none` is no hidden layer; an empty item is an error, not skipped.
    func testWidthListsRefuseEmptyItems() throws {
        XCTAssertEqual(try options(["--model", "gan", "--g-hidden", "32, 64"]).model.gan?.generatorHidden, [32, 64])
        XCTAssertEqual(try options(["--model", "gan", "--g-hidden", "none"]).model.gan?.generatorHidden, [])
        for list in ["1,,2", "1,", ",1", "0", "1,x"] {
            XCTAssertThrowsError(try options(["--model", "gan", "--g-hidden", list])) { e in
                XCTAssertEqual((e as? ConfigError)?.option, "--g-hidden", list)
                XCTAssertEqual((e as? ConfigError)?.problem, "expected comma-separated positive integers, got '\(list)'", list)
            }
        }
    }

    func testResumeRefusesModelOptions() throws {
        for args in [["--resume", "--optimizer", "adamw"], ["--resume", "--noise-dim", "4"], ["--resume", "--shape", "1,28,28"]] {
            XCTAssertThrowsError(try options(args)) { e in
                XCTAssertEqual((e as? ConfigError)?.option, args[1], "\(args)")
            }
        }
        XCTAssertTrue(try options(["--resume", "--max-steps", "5"]).resume)
    }

    func testUnknownPresetNamesTheRegistry() throws {
        XCTAssertThrowsError(try options(["--model", "nope"])) { e in
            let c = e as? ConfigError
            XCTAssertEqual(c?.option, "--model")
            for name in ModelConfig.presetNames { XCTAssertTrue(c?.hint?.contains(name) ?? false, name) }
        }
    }
}

/// Options that several families take (`--dropout`, `--lr`), the help's preset defaults, and
/// the sampler options of `evaluate`.
extension ParsingTests {
    func testSharedOptionsApplyToEveryFamilyThatTakesThem() throws {
        let d = try options(["--model", "ddpm", "--dropout", "0.1", "--lr", "5e-4"])
        XCTAssertEqual(d.model.diffusion?.dropout, 0.1)
        XCTAssertEqual(d.model.diffusion?.lr, 5e-4)
        XCTAssertEqual(try options(["--model", "ddpm-1d-cond", "--dropout", "0.2"]).model.diffusion?.dropout, 0.2)
        XCTAssertEqual((try options(["--model", "char-transformer", "--dropout", "0.3"]).model.config as? TextConfig)?.dropout, 0.3)
        XCTAssertEqual(try options(["--model", "conv-vae", "--lr", "0.002"]).model.vae?.lr, 0.002)
        // Without the options, the presets' own values.
        XCTAssertEqual(try options(["--model", "ddpm"]).model.diffusion?.lr, DiffusionConfig.ddpmPreset.lr)
        XCTAssertEqual(try options(["--model", "ddpm"]).model.diffusion?.dropout, 0)
        for (args, option, problem, hint) in [
            (["--model", "gan", "--dropout", "0.1"], "--dropout", "applies to text and diffusion presets only; --model gan is a GAN", nil),
            (["--model", "vae", "--dropout", "0.1"], "--dropout", "applies to text and diffusion presets only; --model vae is a VAE", nil),
            (["--model", "char-mlp", "--lr", "0.1"], "--lr", "applies to VAE and diffusion presets only; --model char-mlp is a text", "use --learning-rate"),
            (["--model", "dcgan", "--lr", "0.1"], "--lr", "applies to VAE and diffusion presets only; --model dcgan is a GAN", "use --lr-g and --lr-d"),
            (["--model", "ddpm", "--lr-g", "0.1"], "--lr-g", "applies to GAN presets only; --model ddpm is a diffusion", "use --lr, default 1e-3"),
            (["--model", "ddpm", "--learning-rate", "0.1"], "--learning-rate", "applies to text presets only; --model ddpm is a diffusion", "use --lr, default 1e-3"),
            (["--resume", "--dropout", "0.1"], "--dropout", "is not accepted with --resume (even with its saved value): the run continues with the configuration in its checkpoint",
             "only --epochs, --max-steps, --threads and the logging options apply with --resume"),
        ] as [([String], String, String, String?)] {
            XCTAssertThrowsError(try options(args)) { e in
                XCTAssertEqual(e as? ConfigError, ConfigError(option: option, problem: problem, hint: hint), "\(args)")
            }
        }
    }

    func testTrainHelpStatesThePresetDefaults() throws {
        let help = Train.helpMessage(columns: 10_000)
        XCTAssertEqual(DiffusionConfig.presets.values.map(\.baseWidth), [16, 16, 16, 16])
        for line in ["Diffusion: U-Net base width (default 16).",
                     "Diffusion: channel multiplier per level, full resolution first (default 1,2,2; ddpm-1d, ddpm-1d-cond: 1,2,4,4,8).",
                     "Diffusion: noise schedule, linear or cosine (default linear; ddpm-1d, ddpm-1d-cond: cosine).",
                     "Diffusion: what the U-Net predicts, epsilon or v (default epsilon; ddpm-1d, ddpm-1d-cond: v).",
                     "Default: the lowest level (2; ddpm-1d, ddpm-1d-cond: 4)",
                     "Dropout probability. Text: char-transformer only, an error for the others (default 0). Diffusion: in the U-Net's residual blocks (default 0).",
                     "Learning rate. VAE (default 1e-3); diffusion (default 1e-3)."] {
            XCTAssert(help.contains(line), "train --help: \(line)")
        }
        XCTAssertEqual(help.components(separatedBy: "--dropout <dropout>").count, 2, "one --dropout")
        XCTAssertEqual(formatSetting(2e-4), "2e-4")
        XCTAssertEqual(formatSetting(0.1), "0.1")
        XCTAssertEqual(formatSetting(12), "12")
    }

    func testTrajectoryIsASampleOptionOnly() throws {
        XCTAssertFalse(Evaluate.helpMessage().contains("--trajectory"))
        XCTAssertTrue(Sample.helpMessage().contains("--trajectory"))
        XCTAssertThrowsError(try Evaluate.parse(["--checkpoint", "c.safetensors", "--trajectory", "5"]))
        XCTAssertEqual(try Sample.parse(["--checkpoint", "c.safetensors", "--out", "t.png", "--trajectory", "5"]).trajectory.trajectory, 5)
    }
}
