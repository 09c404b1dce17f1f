// A small fork-join thread pool for Conjure's per-operation parallelism.
//
// One job at a time (the caller is the training loop's thread): the caller publishes a task
// count and a function, then claims tasks itself alongside the workers, and returns when every
// task has run. Idle workers spin for a short while (jobs come every few microseconds during a
// training step) and then sleep on a futex, so an idle process costs no CPU.
#define _GNU_SOURCE
#include "include/conjure_pool.h"
#ifndef __linux__
#error "Conjure builds on Linux only: this thread pool sleeps on a Linux futex (see Package.swift)"
#endif
#include <linux/futex.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define SPIN_NS 200000L  // how long an idle worker spins before it sleeps

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
// Per calling thread (a thread-local setting, so two trainings in one process do not share it):
// how many threads, the caller included, its parallel loops use.
static __thread int threads_wanted = 1;
static int workers_started = 0;

// The current job. `gen` is odd while a job is open; workers enter a job by raising `refs` and
// re-reading `gen`, so the caller can wait until no worker still looks at the job's fields.
static _Atomic unsigned gen = 0;
static _Atomic int refs = 0;
static _Atomic int sleepers = 0;
static _Atomic long next_task = 0;
static _Atomic long done_tasks = 0;
static long task_count = 0;
static int job_width = 1;  // how many threads may take part (workers with index >= width - 1 skip)
static conjure_task_fn task_fn = 0;
static _Atomic int busy = 0;         // one caller at a time; others run their loops serially
static __thread int inside_task = 0;  // nested loops run serially
static void *task_ctx = 0;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void run_tasks(void) {
    long n = task_count;
    conjure_task_fn fn = task_fn;
    void *ctx = task_ctx;
    for (;;) {
        long i = atomic_fetch_add(&next_task, 1);
        if (i >= n) break;
        fn(ctx, i);
        atomic_fetch_add(&done_tasks, 1);
    }
}

// The signals that stop training (see conjure_stop_signals_install below).
static sigset_t stop_signal_set(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    return set;
}

static void *worker_main(void *arg) {
    int index = (int)(long)arg;
    // The stop signals go to the training thread, not to a worker inside a library call.
    sigset_t stop = stop_signal_set();
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    unsigned seen = atomic_load(&gen);
    for (;;) {
        unsigned g = atomic_load(&gen);
        if (g == seen || !(g & 1u)) {
            // Spin, then sleep until `gen` changes.
            long start = now_ns();
            int spins = 0;
            while ((g = atomic_load(&gen)) == seen || !(g & 1u)) {
                cpu_relax();
                if (++spins % 256 == 0 && now_ns() - start > SPIN_NS) {
                    atomic_fetch_add(&sleepers, 1);
                    unsigned cur = atomic_load(&gen);
                    if (cur == g) syscall(SYS_futex, (unsigned *)&gen, FUTEX_WAIT_PRIVATE, cur, NULL, NULL, 0);
                    atomic_fetch_sub(&sleepers, 1);
                    start = now_ns();
                }
            }
        }
        seen = g;
        atomic_fetch_add(&refs, 1);
        if (atomic_load(&gen) == g && index < job_width - 1) {
            inside_task = 1;
            run_tasks();
            inside_task = 0;
        }
        atomic_fetch_sub(&refs, 1);
    }
    return 0;
}

void conjure_pool_set_threads(int n) {
    if (n < 1) n = 1;
    if (n > MAX_THREADS) n = MAX_THREADS;
    threads_wanted = n;
}

static __thread int grad_enabled = 1;
int conjure_grad_enabled(void) { return grad_enabled; }
void conjure_set_grad_enabled(int on) { grad_enabled = on != 0; }

int conjure_pool_threads(void) { return threads_wanted; }

static void ensure_workers(int n) {
    if (workers_started >= n - 1) return;
    pthread_mutex_lock(&pool_lock);
    while (workers_started < n - 1) {
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &attr, worker_main, (void *)(long)workers_started) != 0) {
            pthread_attr_destroy(&attr);
            break;
        }
        pthread_attr_destroy(&attr);
        workers_started++;
    }
    pthread_mutex_unlock(&pool_lock);
}

void conjure_parallel_for(long count, conjure_task_fn fn, void *ctx) {
    int width = threads_wanted;
    if (width > count) width = (int)count;
    int expected = 0;
    if (width <= 1 || inside_task || !atomic_compare_exchange_strong(&busy, &expected, 1)) {
        for (long i = 0; i < count; i++) fn(ctx, i);
        return;
    }
    ensure_workers(width);
    if (workers_started < width - 1) width = workers_started + 1;
    task_fn = fn;
    task_ctx = ctx;
    task_count = count;
    job_width = width;
    atomic_store(&next_task, 0);
    atomic_store(&done_tasks, 0);
    atomic_fetch_add(&gen, 1);  // odd: open
    if (atomic_load(&sleepers) > 0) syscall(SYS_futex, (unsigned *)&gen, FUTEX_WAKE_PRIVATE, MAX_THREADS, NULL, NULL, 0);
    inside_task = 1;
    run_tasks();
    inside_task = 0;
    for (long spins = 0; atomic_load(&done_tasks) < count; spins++) {
        cpu_relax();
        if (spins > 4096) sched_yield();  // a worker was descheduled: let it run
    }
    atomic_fetch_add(&gen, 1);  // even: closed
    while (atomic_load(&refs) > 0) cpu_relax();
    atomic_store(&busy, 0);
}

void conjure_keep_freed_buffers(void) {
#ifdef M_MMAP_THRESHOLD
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
}

void conjure_release_free_pages(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

int conjure_available_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

// Stop signals (SIGINT, SIGTERM, SIGHUP) during training. oneDNN 2.6's JIT sgemm kernels point
// rsp into the heap while they run (oneDNN issue #4845, fixed in 3.11): a signal handler that runs
// on a thread inside one writes its signal frame there and corrupts the heap, whatever the handler
// does. So the training thread blocks the stop signals (the pool's workers always do, and threads
// created later inherit the mask) and polls them between steps; the handler is only for a thread
// outside the pool that does not block them, and does nothing but store the signal's number (a
// handler may interrupt malloc, so it must not allocate or call into the Swift runtime).
static volatile sig_atomic_t stop_signal = 0;
static sigset_t mask_before_stop_signals;

static void on_stop_signal(int signal_number) { stop_signal = signal_number; }

void conjure_stop_signals_install(void) {
    stop_signal = 0;
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
    sigset_t set = stop_signal_set();
    pthread_sigmask(SIG_BLOCK, &set, &mask_before_stop_signals);
}

int conjure_stop_signal(void) {
    if (stop_signal != 0) return stop_signal;
    // Takes a pending stop signal without waiting (-1 with EAGAIN when none is pending).
    sigset_t set = stop_signal_set();
    struct timespec now = {0, 0};
    int n = sigtimedwait(&set, NULL, &now);
    if (n > 0) stop_signal = n;
    return stop_signal;
}

void conjure_stop_signals_uninstall(void) {
    (void)conjure_stop_signal();  // takes a signal still pending, so unblocking does not deliver it
    pthread_sigmask(SIG_SETMASK, &mask_before_stop_signals, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
}
