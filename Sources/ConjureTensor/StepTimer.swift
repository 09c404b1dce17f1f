import Foundation

/// The wall time a training step spends in its phases, for `conjure bench`'s split of a step:
/// while ``measure(_:)`` runs, every ``timed(_:_:)`` body counts towards its phase. A phase's
/// time is the wall time during which at least one of its bodies ran on any thread (their
/// union: two threads' overlapping products count once), so it never exceeds the wall time.
///
/// Off by default: then ``timed(_:_:)`` costs one Boolean test. While measuring, each timed
/// body takes a lock twice, so a measured step runs slightly slower than an unmeasured one.
public enum StepTimer {
    /// What a timed body is.
    public enum Phase: Int, CaseIterable, Sendable {
        /// A matrix product (`sgemm`, a strided batch) or a oneDNN convolution product.
        case products
        /// An optimiser's update of a parameter group, with its gradient clipping and its
        /// averaged (EMA) weights.
        case parameterUpdate
    }

    nonisolated(unsafe) static var measuring = false
    /// Per phase: bodies running now, when the first of them started, and the union so far.
    nonisolated(unsafe) static var running = [Int](repeating: 0, count: Phase.allCases.count)
    nonisolated(unsafe) static var since = [UInt64](repeating: 0, count: Phase.allCases.count)
    nonisolated(unsafe) static var busy = [UInt64](repeating: 0, count: Phase.allCases.count)
    static let lock = NSLock()

    /// Runs `body` and returns its wall time and each phase's time within it, in nanoseconds.
    public static func measure(_ body: () throws -> Void) rethrows -> (wall: UInt64, phases: [Phase: UInt64]) {
        lock.lock()
        for i in running.indices { (running[i], busy[i]) = (0, 0) }
        measuring = true
        lock.unlock()
        defer { lock.lock(); measuring = false; lock.unlock() }
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        let wall = DispatchTime.now().uptimeNanoseconds - t0
        lock.lock(); defer { lock.unlock() }
        return (wall, Dictionary(uniqueKeysWithValues: Phase.allCases.map { ($0, busy[$0.rawValue]) }))
    }

    /// `body`, counted towards `phase` while ``measure(_:)`` runs.
    @inline(__always)
    public static func timed<R>(_ phase: Phase, _ body: () throws -> R) rethrows -> R {
        guard measuring else { return try body() }
        let i = phase.rawValue
        lock.lock()
        if running[i] == 0 { since[i] = DispatchTime.now().uptimeNanoseconds }
        running[i] += 1
        lock.unlock()
        defer {
            lock.lock()
            running[i] -= 1
            if running[i] == 0 { busy[i] += DispatchTime.now().uptimeNanoseconds - since[i] }
            lock.unlock()
        }
        return try body()
    }
}
