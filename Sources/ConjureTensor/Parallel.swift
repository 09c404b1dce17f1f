import CBLAS
import CConjureKernels

/// Conjure's per-operation parallelism: a fork-join pool of `threads` threads (the caller
/// included) that large matrix products, optimiser updates and other big element-wise passes
/// split their work across. Small operations stay on the calling thread, where a hand-off would
/// cost more than it saves.
///
/// OpenBLAS is kept at one thread while the pool has more: its own threads collapse on the
/// small GEMMs of a training step as soon as another process competes for a core, and two
/// threading layers would oversubscribe the cores. Work is divided by the data's shape, never
/// by the thread count (a matrix product into blocks of fixed bounds, each one OpenBLAS call; an
/// element-wise pass computes each element the same way wherever it is cut), so results are
/// bit-identical for any thread count.
public enum Parallel {
    /// Sets the calling thread's thread count (1...64), itself included; OpenBLAS is set to one
    /// thread. The count is thread-local: a second training on another thread of the same
    /// process keeps its own (the pool serves one caller at a time; a concurrent caller runs its
    /// loop serially).
    public static func setThreads(_ n: Int) {
        conjure_pool_set_threads(Int32(max(1, min(64, n))))
        openblas_set_num_threads(1)
    }

    /// CPUs this process may run on (its affinity mask: `taskset -c 0` gives 1).
    public static var availableCores: Int { Int(conjure_available_cores()) }

    /// The calling thread's count (1 unless ``setThreads(_:)`` was called on this thread).
    public static var threads: Int { Int(conjure_pool_threads()) }

    /// Products of at least this many FLOPs (2·m·n·k) are computed as blocks split across the
    /// pool (see `productBlocks(m:n:k:)`); the blocks depend on this value and the shape, so
    /// changing it may change a product's rounding, changing the thread count never does.
    public static var gemmSplitFLOPs = 1 << 20
    /// Element-wise passes over at least this many elements are split across the pool.
    public static var elementwiseSplitCount = 1 << 16

    /// Runs `body(i)` for every `i` in `0..<count`, concurrently across the pool; returns when
    /// all have run. Nested calls, and calls while another thread uses the pool, run serially.
    public static func forEach(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        if count == 1 || threads == 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            var f = escaping
            withUnsafeMutablePointer(to: &f) { p in conjure_parallel_for(count, parallelTrampoline, p) }
        }
    }

    /// Splits `0..<n` into at most ``threads`` contiguous ranges of at least `minimum` elements
    /// (aligned to `alignment`) and runs `body` on each, concurrently.
    @inline(__always)
    public static func forRanges(_ n: Int, minimum: Int = elementwiseSplitCount, alignment: Int = 16,
                                 _ body: (Range<Int>) -> Void) {
        let parts = min(threads, max(1, n / max(1, minimum)))
        if parts <= 1 { body(0..<n); return }
        let per = ((n + parts - 1) / parts + alignment - 1) / alignment * alignment
        let count = (n + per - 1) / per
        forEach(count) { i in body(i * per..<min(n, (i + 1) * per)) }
    }
}

extension Parallel {
    /// Runs `body(segment, range)` over the elements of consecutive segments of `counts`
    /// elements, as if they were one array split by ``forRanges(_:minimum:alignment:_:)``: the
    /// pool's ranges cross segment boundaries, so many small segments (an optimiser's
    /// parameters) are shared evenly in one hand-off. `range` is local to its segment; every
    /// element is visited once, and empty segments never.
    public static func forSegments(_ counts: [Int], minimum: Int = elementwiseSplitCount, _ body: (Int, Range<Int>) -> Void) {
        var starts = [Int](repeating: 0, count: counts.count + 1)
        for (i, c) in counts.enumerated() { starts[i + 1] = starts[i] + c }
        forRanges(starts[counts.count], minimum: minimum) { r in
            // The first segment whose end lies past the range's start.
            var lo = 0, hi = counts.count
            while lo < hi { let mid = (lo + hi) / 2; if starts[mid + 1] <= r.lowerBound { lo = mid + 1 } else { hi = mid } }
            var s = lo
            while s < counts.count && starts[s] < r.upperBound {
                let a = max(r.lowerBound, starts[s]), b = min(r.upperBound, starts[s + 1])
                if a < b { body(s, (a - starts[s])..<(b - starts[s])) }
                s += 1
            }
        }
    }
}

private func parallelTrampoline(_ context: UnsafeMutableRawPointer?, _ index: Int) {
    context!.assumingMemoryBound(to: ((Int) -> Void).self).pointee(index)
}

/// Process-wide memory settings for training loops.
public enum Allocator {
    /// Keeps freed tensor buffers in the heap for reuse instead of returning them to the kernel.
    ///
    /// glibc serves allocations above its `mmap` threshold (128 KiB at start) with fresh pages
    /// and trims the heap top on free, so every step of a training loop page-faults its large
    /// activations and gradients back in. Raising `M_MMAP_THRESHOLD` to 32 MiB and
    /// `M_TRIM_THRESHOLD` to 512 MiB lets a step reuse the previous step's memory; the peak
    /// resident size is unchanged. Calling it again has no further effect.
    public static func keepFreedBuffers() {
        conjure_keep_freed_buffers()
    }

    /// Returns the heap's free pages to the kernel once (glibc `malloc_trim(0)`): after
    /// loading, the parsed file and its intermediate copies are free but, kept by
    /// ``keepFreedBuffers()``, would stay resident for the whole run.
    public static func releaseFreePages() {
        conjure_release_free_pages()
    }
}
