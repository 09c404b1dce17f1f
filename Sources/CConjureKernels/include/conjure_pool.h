#ifndef CONJURE_POOL_H
#define CONJURE_POOL_H

/// A task of a parallel loop: runs iteration `index` with the caller's context.
typedef void (*conjure_task_fn)(void *ctx, long index);

/// Sets how many threads (the calling thread included) `conjure_parallel_for` uses when called
/// from this thread, 1...64. The setting is thread-local: other threads keep their own.
void conjure_pool_set_threads(int n);
/// The calling thread's count set by `conjure_pool_set_threads` (1 by default).
int conjure_pool_threads(void);
/// Runs `fn(ctx, i)` for every `i` in 0..<count across the pool's threads and the calling
/// thread, returning when all have run. Iterations may run in any order and concurrently.
/// Not reentrant: call it from one thread at a time, and not from inside a task.
void conjure_parallel_for(long count, conjure_task_fn fn, void *ctx);

/// CPUs this process may run on (its affinity mask, so `taskset` is respected).
int conjure_available_cores(void);

/// glibc: serve allocations up to 32 MiB from the heap (`M_MMAP_THRESHOLD`) and trim the heap
/// only above 512 MiB free (`M_TRIM_THRESHOLD`), so freed buffers are reused without page faults.
void conjure_keep_freed_buffers(void);

/// glibc: return the heap's free pages to the kernel now (`malloc_trim(0)`), e.g. after loading
/// data whose temporaries will not be needed again.
void conjure_release_free_pages(void);

/// Stop signals for a training loop on the calling thread: blocks SIGINT, SIGTERM and SIGHUP on
/// it (the pool's workers always block them), so they never interrupt a library call (oneDNN
/// 2.6's JIT sgemm kernels corrupt the heap when a signal handler runs inside them, oneDNN issue
/// #4845), and installs a handler that only records the signal's number for any other thread.
/// Clears the record.
void conjure_stop_signals_install(void);
/// Takes a stop signal still pending, restores the calling thread's signal mask and the default
/// actions.
void conjure_stop_signals_uninstall(void);
/// The number of the first stop signal received since `conjure_stop_signals_install` (taken from
/// the pending set by this call when blocked), 0 if none. One `sigtimedwait` call (no wait) when none came.
int conjure_stop_signal(void);

/// Whether autodiff records history on the calling thread (1 by default); thread-local.
int conjure_grad_enabled(void);
/// Sets the calling thread's autodiff recording flag.
void conjure_set_grad_enabled(int on);

#endif
