/// What one sample of a data set is: the data kind travels from the reader to the run (and is
/// saved with it), and decides the model's input layout, the sample writers and the metrics.
///
/// Readers set it from what the file says (an `.npy` of rank 4 is `[N, C, H, W]` images, IDX
/// and PNG folders are images, a CSV row is a vector) or a flag sets it (`--shape C,H,W`);
/// nothing infers it from a length that happens to be a perfect square.
public enum DataSpec: Codable, Sendable, Equatable, CustomStringConvertible {
    /// A flat vector of `D` values.
    case vector(Int)
    /// An image `[C, H, W]` (NCHW batches).
    case image(channels: Int, height: Int, width: Int)
    /// A signal of `C` channels and `T` time steps (audio), `[C, T]` (NCL batches).
    case sequence(channels: Int, length: Int)
    /// A sequence of `length` token indices into a vocabulary of `vocabulary` entries (text).
    case tokens(vocabulary: Int, length: Int)

    /// The number of values of one sample (`D`, `C·H·W`, `C·T`, or `length`).
    public var flatCount: Int {
        switch self {
        case .vector(let d): return d
        case .image(let c, let h, let w): return c * h * w
        case .sequence(let c, let t): return c * t
        case .tokens(_, let l): return l
        }
    }

    /// The shape of one sample: `[D]`, `[C, H, W]`, `[C, T]` or `[length]`.
    public var sampleShape: [Int] {
        switch self {
        case .vector(let d): return [d]
        case .image(let c, let h, let w): return [c, h, w]
        case .sequence(let c, let t): return [c, t]
        case .tokens(_, let l): return [l]
        }
    }

    /// `[C, H, W]` for images, nil for every other kind.
    public var imageShape: [Int]? {
        if case .image(let c, let h, let w) = self { return [c, h, w] }
        return nil
    }

    /// The kind's name as saved and shown (`vector`, `image`, `sequence`, `tokens`).
    public var kind: String {
        switch self {
        case .vector: return "vector"
        case .image: return "image"
        case .sequence: return "sequence"
        case .tokens: return "tokens"
        }
    }

    /// `vector(784)`, `image(1, 28, 28)`, ...
    public var description: String {
        switch self {
        case .vector(let d): return "vector(\(d))"
        case .image(let c, let h, let w): return "image(\(c), \(h), \(w))"
        case .sequence(let c, let t): return "sequence(\(c), \(t))"
        case .tokens(let v, let l): return "tokens(\(v), \(l))"
        }
    }

    /// The spec of a sample shape as a reader sees it: `[D]` a vector, `[H, W]` a one-channel
    /// image, `[C, H, W]` an image.
    ///
    /// - Returns: nil for other ranks.
    public static func fromSampleShape(_ shape: [Int]) -> DataSpec? {
        switch shape.count {
        case 1: return .vector(shape[0])
        case 2: return .image(channels: 1, height: shape[0], width: shape[1])
        case 3: return .image(channels: shape[0], height: shape[1], width: shape[2])
        default: return nil
        }
    }

    /// Parses `--shape`: `D` (a vector), `C,H,W` (an image) or `C,T` (a sequence), positive
    /// integers whose product must be the data's values per sample.
    ///
    /// - Throws: ``ConfigError`` naming `--shape` when the text is malformed or its product is
    ///   not `count`.
    public static func parse(shape text: String, count: Int) throws -> DataSpec {
        let parts = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !parts.isEmpty, parts.allSatisfy({ ($0 ?? 0) > 0 && $0! <= 1 << 24 }) else {
            throw ConfigError(option: "--shape", problem: "expected positive integers separated by commas (D, C,T or C,H,W), got '\(text)'")
        }
        let dims = parts.map { $0! }
        let product = dims.reduce(1.0) { $0 * Double($1) }
        guard product == Double(count) else {
            throw ConfigError(option: "--shape", problem: "\(dims.map(String.init).joined(separator: "x")) holds \(Int(product)) values but a sample of the data has \(count)")
        }
        switch dims.count {
        case 1: return .vector(dims[0])
        case 2: return .sequence(channels: dims[0], length: dims[1])
        case 3: return .image(channels: dims[0], height: dims[1], width: dims[2])
        default: throw ConfigError(option: "--shape", problem: "takes 1 (D), 2 (C,T) or 3 (C,H,W) numbers, got \(dims.count)")
        }
    }
}
