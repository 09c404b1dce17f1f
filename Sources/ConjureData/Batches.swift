import Foundation

/// Plans the mini-batches of each epoch: a seeded shuffle of `0..<count` cut into batches of a
/// fixed size.
///
/// The order for an epoch depends only on `(seed, epoch)` — it uses
/// `RandomGenerator(seed: seed, stream: BatchSampler.streamBase &+ epoch)` — so a resumed run
/// sees exactly the batches an uninterrupted one would, and no state needs checkpointing
/// beyond the epoch number and the position within it.
///
/// Data-parallel use: with `worldSize > 1` every rank computes the same permutation, cuts it
/// into global batches of `batchSize * worldSize` and takes its own contiguous `batchSize`
/// slice, so the ranks' batches never overlap. The partial last global batch is then always
/// dropped so every rank takes the same number of steps.
public struct BatchSampler: Sendable, Equatable {
    /// Number of samples.
    public var count: Int
    /// Samples per batch (per rank).
    public var batchSize: Int
    /// The shuffle seed.
    public var seed: UInt64
    /// Whether to drop the last, smaller batch (default `true`: every batch has `batchSize` samples).
    public var dropLast: Bool
    /// Whether to shuffle (default `true`); `false` gives `0, 1, 2, ...` every epoch.
    public var shuffle: Bool
    /// This process's rank in `0..<worldSize`.
    public var rank: Int
    /// The number of data-parallel processes.
    public var worldSize: Int

    /// The RNG stream offset for epoch orders, kept apart from streams used elsewhere.
    public static let streamBase: UInt64 = 0xBA7C_4E50_0000_0000

    /// - Precondition: `count >= 0`, `batchSize >= 1`, `0 <= rank < worldSize`.
    public init(count: Int, batchSize: Int, seed: UInt64, dropLast: Bool = true, shuffle: Bool = true,
                rank: Int = 0, worldSize: Int = 1) {
        precondition(count >= 0, "BatchSampler: count must be non-negative, got \(count)")
        precondition(batchSize >= 1, "BatchSampler: batchSize must be at least 1, got \(batchSize)")
        precondition(worldSize >= 1 && rank >= 0 && rank < worldSize,
                     "BatchSampler: rank \(rank) is outside 0..<\(worldSize)")
        self.count = count
        self.batchSize = batchSize
        self.seed = seed
        self.dropLast = dropLast
        self.shuffle = shuffle
        self.rank = rank
        self.worldSize = worldSize
    }

    /// Batches per epoch (for this rank): `count / batchSize` when dropping the partial batch,
    /// `ceil(count / batchSize)` otherwise. Zero when `count < batchSize` and `dropLast` —
    /// callers should treat that as a configuration error.
    public var batchesPerEpoch: Int {
        let global = batchSize * worldSize
        if dropLast || worldSize > 1 { return count / global }
        return (count + global - 1) / global
    }

    /// The full sample order of an epoch (a permutation of `0..<count`).
    public func order(epoch: Int) -> [Int] {
        guard shuffle else { return Array(0..<count) }
        var rng = RandomStream.batches.generator(seed: seed, counter: UInt64(truncatingIfNeeded: epoch))
        return rng.permutation(count)
    }

    /// The batches of an epoch, each a list of sample indices.
    ///
    /// - Returns: ``batchesPerEpoch`` batches of `batchSize` indices (the last may be smaller
    ///   when `dropLast` is false and `worldSize == 1`).
    public func batches(epoch: Int) -> [[Int]] {
        let order = order(epoch: epoch)
        let global = batchSize * worldSize
        var out: [[Int]] = []
        out.reserveCapacity(batchesPerEpoch)
        for b in 0..<batchesPerEpoch {
            let start = b * global + rank * batchSize
            let end = min(start + batchSize, count)
            out.append(Array(order[start..<end]))
        }
        return out
    }

    /// An iterator over the batches of an epoch.
    public func makeIterator(epoch: Int) -> BatchIterator {
        BatchIterator(batches: batches(epoch: epoch))
    }
}

/// Iterates over the batches (index lists) of one epoch; see ``BatchSampler``.
public struct BatchIterator: IteratorProtocol, Sequence, Sendable {
    let batches: [[Int]]
    /// How many batches have been returned.
    public private(set) var position = 0

    init(batches: [[Int]]) { self.batches = batches }

    /// The number of batches in the epoch.
    public var count: Int { batches.count }

    /// The next batch's sample indices, or `nil` at the end of the epoch.
    public mutating func next() -> [Int]? {
        guard position < batches.count else { return nil }
        defer { position += 1 }
        return batches[position]
    }
}

/// Splits `0..<count` into training and held-out indices.
///
/// With `labels`, the split is stratified: each class gives `round(fraction * classCount)` of
/// its samples to the held-out set, so class proportions are kept (a class with one sample may
/// give none). Without labels, `round(fraction * count)` samples are held out. Which samples is
/// decided by a permutation from `RandomGenerator(seed: seed, stream: 0x5917_0000_0000_0000)`
/// (per class when stratified), so the split depends only on `(seed, count, labels, fraction)`.
///
/// - Parameters:
///   - count: the number of samples.
///   - fraction: the share to hold out, in `0...1`.
///   - seed: the split seed.
///   - labels: one class label per sample, or `nil`.
/// - Returns: both index lists in ascending order; together they are `0..<count`.
/// - Precondition: `0 <= fraction <= 1`; `labels`, when given, has `count` entries.
public func splitHeldOut(count: Int, fraction: Double, seed: UInt64, labels: [Int]? = nil) -> (train: [Int], heldOut: [Int]) {
    precondition(fraction >= 0 && fraction <= 1, "splitHeldOut: fraction must be in 0...1, got \(fraction)")
    precondition(labels == nil || labels!.count == count, "splitHeldOut: \(labels!.count) labels for \(count) samples")
    var rng = RandomStream.heldOutSplit.generator(seed: seed)
    var held: [Int] = []
    if let labels {
        var byClass: [Int: [Int]] = [:]
        for (i, l) in labels.enumerated() { byClass[l, default: []].append(i) }
        for cls in byClass.keys.sorted() {
            let members = byClass[cls]!
            let k = Int((Double(members.count) * fraction).rounded())
            let perm = rng.permutation(members.count)
            held.append(contentsOf: perm.prefix(k).map { members[$0] })
        }
    } else {
        let k = Int((Double(count) * fraction).rounded())
        held = Array(rng.permutation(count).prefix(k))
    }
    held.sort()
    var isHeld = [Bool](repeating: false, count: count)
    for i in held { isHeld[i] = true }
    let train = (0..<count).filter { !isHeld[$0] }
    return (train, held)
}

extension Dataset {
    /// Splits this dataset's sample indices into training and held-out sets, stratified by
    /// label when the dataset has labels; see ``splitHeldOut(count:fraction:seed:labels:)``.
    /// A data set with its own split (``predefinedHeldOut``, e.g. FSDD's) holds out exactly
    /// that split whenever `fraction > 0` (the fraction and seed then do not matter).
    public func splitHeldOut(fraction: Double, seed: UInt64) -> (train: [Int], heldOut: [Int]) {
        if fraction > 0, let held = predefinedHeldOut {
            let set = Set(held)
            return ((0 ..< count).filter { !set.contains($0) }, held.sorted())
        }
        return ConjureData.splitHeldOut(count: count, fraction: fraction, seed: seed, labels: labels)
    }

    /// A batch sampler over this dataset's samples.
    public func batchSampler(batchSize: Int, seed: UInt64, dropLast: Bool = true) -> BatchSampler {
        BatchSampler(count: count, batchSize: batchSize, seed: seed, dropLast: dropLast)
    }
}
