import Foundation
import XCTest
import ConjureData
import ConjureTestSupport

/// Sound through the real `conjure` executable on real FSDD recordings (a 60-file subset of
/// ../shared/data/fsdd, so the test stays fast): a folder is data of kind sequence(1, T) with
/// the digit labels and FSDD's own test split; training writes spectrogram PNGs and WAV files;
/// `sample` writes one WAV, a folder of WAVs, a spectrogram grid and `[N, 1, T]` npy; resume
/// reads the folder the same way; bad options get one error naming them.
final class AudioCLITests: ConjureCLITestCase {
    override var temporaryPrefix: String { "audio" }

    /// Copies the recordings of two speakers for digits 0-2 (indices 0-9: 0-4 are FSDD's test
    /// split) into `clips/`.
    func makeSubset() throws -> (folder: String, files: [String]) {
        let src = try sharedPath("data/fsdd/recordings")
        let dst = tmp.appendingPathComponent("clips")
        try FileManager.default.createDirectory(at: dst, withIntermediateDirectories: true)
        var names: [String] = []
        for digit in 0 ... 2 { for speaker in ["jackson", "theo"] { for i in 0 ..< 10 { names.append("\(digit)_\(speaker)_\(i).wav") } } }
        for n in names { try FileManager.default.copyItem(at: src.appendingPathComponent(n), to: dst.appendingPathComponent(n)) }
        return (dst.path, names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    }

    /// The bytes of a mono 8 kHz WAV file of IEEE float32 samples (format tag 3), written by hand
    /// so it can hold a NaN.
    func floatWAV(_ values: [Float]) -> Data {
        func u32(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt32(v).littleEndian, Array.init) }
        func u16(_ v: Int) -> [UInt8] { withUnsafeBytes(of: UInt16(v).littleEndian, Array.init) }
        let data = values.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian, Array.init) }
        let fmt = u16(3) + u16(1) + u32(8000) + u32(32000) + u16(4) + u16(32)
        let body = Array("WAVEfmt ".utf8) + u32(fmt.count) + fmt + Array("data".utf8) + u32(data.count) + data
        return Data(Array("RIFF".utf8) + u32(body.count) + body)
    }

    func testFolderTrainsSamplesAsWAVAndResumes() throws {
        let (folder, files) = try makeSubset()
        let inspect = try conjure(["data", "inspect", folder])
        XCTAssert(inspect.out.contains("files:    60"), inspect.out)
        XCTAssert(inspect.out.contains("8000 Hz: 60"), inspect.out)
        XCTAssert(inspect.out.contains("3 classes {0: 20, 1: 20, 2: 20}"), inspect.out)
        try conjure(["data", "inspect", folder, "--length", "2048", "--spectrograms", "real.png"])
        let real = try PNGReader.decode(path: tmp.appendingPathComponent("real.png").path)
        XCTAssertEqual(real.height, 4 * 129 + 5 * 2, "16 clips in 4 rows of 129-bin spectrograms (2 px borders)")

        let common = ["train", "--data", folder, "--model", "gan", "--length", "1024", "--batch-size", "8", "--quiet", "--checkpoint-every", "3"]
        let run = try conjure(common + ["--name", "a", "--max-steps", "6", "--sample-every", "3"])
        XCTAssert(run.err.contains("labels: the digit of the FSDD file names"), run.err)
        XCTAssert(run.err.contains("held out: the data set's own test split") && run.err.contains("30 clips"), run.err)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: tmp.appendingPathComponent("runs/a/config.json"))) as! [String: Any]
        XCTAssertEqual(config["trainSamples"] as? Int, 30, "recordings 5-9 train")
        let audio = config["audio"] as? [String: Any]
        XCTAssertEqual(audio?["sampleRate"] as? Int, 8000)
        XCTAssertEqual(audio?["length"] as? Int, 1024)
        // The listing names the final spectrograms and the folder of the final clips.
        XCTAssert(run.out.contains("\n  samples/final.png\n") && run.out.contains("\n  samples/final/\n"), run.out)
        XCTAssert(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/a/samples/final/sample-0000.wav").path))

        // In-training output: a spectrogram grid and playable clips of the step.
        let png = try PNGReader.decode(path: tmp.appendingPathComponent("runs/a/samples/step-000003.png").path)
        XCTAssertGreaterThan(png.height, 129, "spectrograms of 129 bins, more than one row of them")
        let clip = try AudioFile.read(path: tmp.appendingPathComponent("runs/a/samples/step-000003/sample-0000.wav").path)
        XCTAssertEqual(clip.sampleRate, 8000)
        XCTAssertEqual(clip.frames, 1024)

        // An interrupted run resumed from the saved folder options ends with the same weights.
        try conjure(common + ["--name", "b", "--max-steps", "3", "--sample-every", "0"])
        try conjure(["train", "--name", "b", "--resume", "--max-steps", "6", "--quiet"])
        let a = try SafeTensors.read(path: tmp.appendingPathComponent("runs/a/checkpoints/latest.safetensors").path)
        let b = try SafeTensors.read(path: tmp.appendingPathComponent("runs/b/checkpoints/latest.safetensors").path)
        for name in a.order { XCTAssertEqual(a.tensors[name]?.tensor?.scalars, b.tensors[name]?.tensor?.scalars, name) }

        let ckpt = "runs/a/checkpoints/latest.safetensors"
        try conjure(["sample", "--checkpoint", ckpt, "--count", "3", "--gap", "0.5", "--out", "all.wav"])
        let all = try AudioFile.read(path: tmp.appendingPathComponent("all.wav").path)
        XCTAssertEqual(all.frames, 3 * 1024 + 2 * 4000, "three clips and two 0.5 s gaps at 8 kHz")
        XCTAssert(all.samples[1024 ..< 5024].allSatisfy { $0 == 0 }, "the gap is silence")
        try conjure(["sample", "--checkpoint", ckpt, "--count", "2", "--seed", "3", "--out", "each/"])
        try conjure(["sample", "--checkpoint", ckpt, "--count", "2", "--seed", "3", "--out", "each.npy"])
        let npy = try NPYReader.load(path: tmp.appendingPathComponent("each.npy").path)
        XCTAssertEqual(npy.shape, [2, 1, 1024])
        let second = try AudioFile.read(path: tmp.appendingPathComponent("each/sample-0001.wav").path)
        XCTAssertEqual(second.frames, 1024)
        for k in 0 ..< 1024 {  // 16-bit PCM of the same values
            XCTAssertEqual(second.samples[k], npy.scalars[1024 + k], accuracy: 1 / 32768 + 1e-6, "frame \(k)")
        }
        try conjure(["sample", "--checkpoint", ckpt, "--count", "4", "--out", "spec.png"])
        let grid = try PNGReader.decode(path: tmp.appendingPathComponent("spec.png").path)
        XCTAssertGreaterThanOrEqual(grid.height, 2 * 129, "a 2x2 grid of 129-bin spectrograms")
        XCTAssertGreaterThanOrEqual(grid.width, 2 * 13, "13 frames of hop 64 in 1024 samples")

        // Bad input: one error naming the option or file.
        let gap = try conjure(["sample", "--checkpoint", ckpt, "--out", "x.npy", "--gap", "1"], expectFailure: true)
        XCTAssert(gap.err.contains("--gap: applies to a .wav output only"), gap.err)
        let pattern = try conjure(common + ["--name", "c", "--label-pattern", "[0-9]"], expectFailure: true)
        XCTAssert(pattern.err.contains("--label-pattern: '[0-9]' has no capture group"), pattern.err)
        let length = try conjure(common.filter { $0 != "1024" && $0 != "--length" } + ["--name", "c", "--length", "0"], expectFailure: true)
        XCTAssert(length.err.contains("--length: must be between 1"), length.err)
        let single = try conjure(["train", "--data", folder + "/" + files[0], "--name", "c"], expectFailure: true)
        XCTAssert(single.err.contains("a single sound file is not a dataset"), single.err)
        try Data("RIFF\u{0}\u{0}".utf8).write(to: URL(fileURLWithPath: folder + "/9_broken_0.wav"))
        let broken = try conjure(common + ["--name", "c"], expectFailure: true)
        XCTAssert(broken.err.contains("9_broken_0.wav"), "the corrupt file is named: \(broken.err)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/c").path), "nothing half-written")
        try FileManager.default.removeItem(atPath: folder + "/9_broken_0.wav")
        try floatWAV([0.5, .nan, 0.25]).write(to: URL(fileURLWithPath: folder + "/9_nan_7.wav"))
        let nan = try conjure(common + ["--name", "c"], expectFailure: true)
        XCTAssert(nan.err.contains("9_nan_7.wav: channel 0, frame 1: sample is nan"), "a NaN sample is named by file and frame: \(nan.err)")
        let testOnly = tmp.appendingPathComponent("test-only")
        try FileManager.default.createDirectory(at: testOnly, withIntermediateDirectories: true)
        for i in 0 ..< 4 { try floatWAV([0.1, -0.1]).write(to: testOnly.appendingPathComponent("\(i % 2)_x_\(i).wav")) }
        let none = try conjure(["train", "--data", testOnly.path, "--name", "c", "--length", "1024"], expectFailure: true)
        XCTAssert(none.err.contains("holds all 4 samples, so none is left to train on"), none.err)
        let empty = tmp.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        let nothing = try conjure(["train", "--data", empty.path, "--name", "c"], expectFailure: true)
        XCTAssert(nothing.err.contains("holds no .png files (nor .wav or .flac files)"), nothing.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: tmp.appendingPathComponent("runs/c").path), "nothing half-written")
        let image = try conjure(["sample", "--checkpoint", ckpt, "--out", "x.txt"], expectFailure: true)
        XCTAssertFalse(image.err.isEmpty)
    }

    func testSpectrogramClassifierAndEvaluationOfAConditionalRun() throws {
        let (folder, _) = try makeSubset()
        let clf = try conjure(["classifier", "train", "--data", folder, "--length", "2048", "--epochs", "20", "--out", "clf.safetensors"])
        // "held-out accuracy A (train B); saved ..." on FSDD's own test split (30 of the 60 clips).
        let accuracy = Double(clf.out.split(separator: " ")[2]) ?? -1
        XCTAssert(accuracy > 0.6 && accuracy <= 1, "three spoken digits of two speakers, 30 training clips: well above chance (1/3): \(clf.out)")
        let file = try SafeTensors.read(path: tmp.appendingPathComponent("clf.safetensors").path)
        XCTAssertNotNil(file.metadata["front_end"], "a sound classifier saves its spectrogram front end")
        XCTAssertEqual(file.tensors["classifier.1.weight"]?.shape, [16, 1, 3, 3], "the first conv of the spectrogram CNN")

        try conjure(["train", "--data", folder, "--model", "cgan", "--length", "2048", "--batch-size", "8", "--max-steps", "3", "--name", "c", "--quiet"])
        try conjure(["evaluate", "--checkpoint", "runs/c/checkpoints/latest.safetensors", "--classifier", "clf.safetensors", "--count", "30",
                     "--metrics", "fid,score,modes"])
        let eval = try JSONSerialization.jsonObject(with: Data(contentsOf: tmp.appendingPathComponent("runs/c/eval.json"))) as! [String: Any]
        let metrics = eval["metrics"] as? [String: Any] ?? eval
        let agreement = (metrics["label_agreement"] as? [String: Any])?["fraction"] as? Double
        XCTAssertNotNil(agreement, "a conditional run reports label agreement: \(metrics.keys.sorted())")
        XCTAssertEqual((metrics["label_agreement"] as? [String: Any])?["samples"] as? Int, 30)
        let real = metrics["real_reference"] as? [String: Any]
        let realScore = (real?["classifier_score"] as? [String: Any])?["mean"] as? Double
        XCTAssertNotNil(realScore, "the judge's score of real held-out clips: \(String(describing: real))")
        XCTAssertEqual(real?["classifier_accuracy"] as? Double ?? -1, accuracy, accuracy: 1e-4, "the same 30 held-out clips the classifier reported on")

        let stereo = try conjure(["classifier", "train", "--data", folder, "--length", "512", "--epochs", "1"], expectFailure: true)
        XCTAssert(stereo.err.contains("--length: 512 samples give 3 spectrogram frames"), stereo.err)
    }
}
