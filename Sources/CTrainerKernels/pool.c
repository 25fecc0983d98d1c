// A team of threads for one model's passes (Sources/EMCTrainer/Threads.swift has the rules): the caller and T − 1 workers.
// A job is a function called once per part. The caller runs part 0, then, like the workers, claims the parts no thread
// has taken yet (one atomic counter), and waits only for parts that are running: a worker the system has not scheduled
// (a busy machine, a virtual CPU the host has paused) delays nothing, and which thread runs a part never changes what
// the part computes. Workers spin for half a millisecond after a job (a training step hands out tens to hundreds of
// jobs, most less than that apart), then sleep on a futex.
#define _GNU_SOURCE
#include "emc_trainer_kernels.h"
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct emc_pool {
    int threads;
    pthread_t *ids;
    _Atomic unsigned generation;   // bumped to hand out a job (and to stop)
    _Atomic int remaining;         // parts after part 0 that have not finished
    // The current job's claims: its generation (high 32 bits), its part count (16 bits) and the next part to claim (16
    // bits), in one word, so that a claim can only take a part of the job it was made for.
    _Atomic unsigned long long claims;
    _Atomic int sleeping;          // workers waiting on the futex
    _Atomic int stop;
    unsigned long jobs;            // jobs handed to the workers so far (read by tests)
    emc_part_fn fn;
    void *context;
};

// The team the calling thread's passes split their work over (NULL: none, work runs on the caller alone).
static _Thread_local emc_pool *current_pool;

static void futex_wait(_Atomic unsigned *address, unsigned value) {
    syscall(SYS_futex, (unsigned *)address, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake_all(_Atomic unsigned *address) {
    syscall(SYS_futex, (unsigned *)address, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

static inline void relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Seconds on the monotonic clock: a worker spins this long after a job before it sleeps (a step's serial stretches
// between jobs are mostly shorter, and waking a sleeping worker costs a futex call and a reschedule).
static inline double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
#define SPIN_SECONDS 0.0005

typedef struct { emc_pool *pool; int index; } worker_start;

// Runs the parts of job `job` (its generation) that no thread has claimed yet, one claim at a time; nothing when a newer
// job has replaced it (a worker that wakes late leaves that job to the wake-up it will see next). A successful claim's
// acquire pairs with emc_pool_run's release of `claims`, so the part reads its own job's function and context, which stay
// put until every part has finished.
static void run_claimed_parts(emc_pool *pool, unsigned job) {
    unsigned long long word = atomic_load_explicit(&pool->claims, memory_order_acquire);
    for (;;) {
        unsigned parts = (unsigned)(word >> 16) & 0xffff, part = (unsigned)word & 0xffff;
        if ((unsigned)(word >> 32) != job || part >= parts) return;
        if (!atomic_compare_exchange_weak_explicit(&pool->claims, &word, word + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        pool->fn(pool->context, (int)part);
        atomic_fetch_sub_explicit(&pool->remaining, 1, memory_order_release);
        word = atomic_load_explicit(&pool->claims, memory_order_acquire);
    }
}

static void *worker_main(void *argument) {
    worker_start start = *(worker_start *)argument;
    free(argument);
    emc_pool *pool = start.pool;
    unsigned seen = 0;
    for (;;) {
        unsigned now;
        int spins = 0;
        double since = now_seconds();
        while ((now = atomic_load_explicit(&pool->generation, memory_order_acquire)) == seen) {
            relax();
            // The clock every 256 spins: it costs more than a pause.
            if ((++spins & 255) != 0 || now_seconds() - since < SPIN_SECONDS) continue;
            atomic_fetch_add(&pool->sleeping, 1);
            if (atomic_load(&pool->generation) == seen) futex_wait(&pool->generation, seen);
            atomic_fetch_sub(&pool->sleeping, 1);
            since = now_seconds();
        }
        seen = now;
        if (atomic_load_explicit(&pool->stop, memory_order_acquire)) return NULL;
        run_claimed_parts(pool, now);
    }
}

emc_pool *emc_pool_create(int threads) {
    if (threads < 2) return NULL;
    emc_pool *pool = calloc(1, sizeof *pool);
    if (!pool) return NULL;
    pool->threads = threads;
    pool->ids = calloc((size_t)threads, sizeof(pthread_t));
    if (!pool->ids) { free(pool); return NULL; }
    for (int i = 1; i < threads; i++) {
        worker_start *start = malloc(sizeof *start);
        pthread_attr_t attributes;
        pthread_attr_init(&attributes);
        pthread_attr_setstacksize(&attributes, 8u << 20);
        int failed = !start;
        if (start) {
            *start = (worker_start){pool, i};
            failed = pthread_create(&pool->ids[i], &attributes, worker_main, start) != 0;
            if (failed) free(start);
        }
        pthread_attr_destroy(&attributes);
        if (failed) {
            pool->threads = i;  // the workers started so far are stopped and joined
            emc_pool_destroy(pool);
            return NULL;
        }
    }
    return pool;
}

void emc_pool_destroy(emc_pool *pool) {
    if (!pool) return;
    atomic_store(&pool->stop, 1);
    atomic_fetch_add(&pool->generation, 1);
    futex_wake_all(&pool->generation);
    for (int i = 1; i < pool->threads; i++) pthread_join(pool->ids[i], NULL);
    free(pool->ids);
    free(pool);
}

int emc_pool_threads(const emc_pool *pool) { return pool ? pool->threads : 1; }

unsigned long emc_pool_jobs(const emc_pool *pool) { return pool ? pool->jobs : 0; }

void emc_pool_run(emc_pool *pool, int parts, emc_part_fn fn, void *context) {
    if (!pool || parts <= 1) {
        for (int p = 0; p < parts; p++) fn(context, p);
        return;
    }
    if (parts > pool->threads) parts = pool->threads;
    pool->jobs++;
    pool->fn = fn;
    pool->context = context;
    unsigned job = atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;  // only this thread bumps it
    atomic_store_explicit(&pool->remaining, parts - 1, memory_order_relaxed);
    atomic_store_explicit(&pool->claims, (unsigned long long)job << 32 | (unsigned long long)parts << 16 | 1, memory_order_release);
    atomic_fetch_add(&pool->generation, 1);  // sequentially consistent: ordered before the read of `sleeping`
    if (atomic_load(&pool->sleeping) > 0) futex_wake_all(&pool->generation);
    // Part 0 on this thread, with no team (work it splits again runs here), then any part no worker has claimed.
    emc_pool *saved = current_pool;
    current_pool = NULL;
    fn(context, 0);
    run_claimed_parts(pool, job);
    current_pool = saved;
    int spins = 0;
    while (atomic_load_explicit(&pool->remaining, memory_order_acquire) > 0) {
        if (++spins < (1 << 16)) relax(); else sched_yield();
    }
}

emc_pool *emc_pool_current(void) { return current_pool; }

emc_pool *emc_pool_set_current(emc_pool *pool) {
    emc_pool *previous = current_pool;
    current_pool = pool;
    return previous;
}

// emc_pool_round_trip's job: part 0 (the caller) and part 1 (a worker: the caller cannot claim it while it runs part 0)
// pass a counter back and forth on one cache line, `rounds` times once both have arrived, part 0 timing each batch of
// ROUND_TRIP_BATCH. The median batch gives the round trip: a worker just woken from the futex may share the caller's
// core for a scheduler tick, or be preempted, and that costs a batch, not the result.
#define ROUND_TRIP_BATCH 100
#define ROUND_TRIP_BATCHES_MAX 1024
typedef struct {
    _Alignas(128) _Atomic long ball;
    _Alignas(128) _Atomic int arrived;
    long rounds;
    double seconds;
} round_trip;

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void round_trip_part(void *context, int part) {
    round_trip *r = context;
    if (part == 1) {
        atomic_store_explicit(&r->arrived, 1, memory_order_release);
        for (long i = 0; i < r->rounds; i++) {
            while (atomic_load_explicit(&r->ball, memory_order_acquire) != 2 * i + 1) relax();
            atomic_store_explicit(&r->ball, 2 * i + 2, memory_order_release);
        }
        return;
    }
    while (!atomic_load_explicit(&r->arrived, memory_order_acquire)) relax();
    double batches[ROUND_TRIP_BATCHES_MAX];
    long count = 0;
    for (long i = 0; i < r->rounds; count++) {
        long n = r->rounds - i < ROUND_TRIP_BATCH ? r->rounds - i : ROUND_TRIP_BATCH;
        double start = now_seconds();
        for (long end = i + n; i < end; i++) {
            atomic_store_explicit(&r->ball, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&r->ball, memory_order_acquire) != 2 * i + 2) relax();
        }
        batches[count] = (now_seconds() - start) / (double)n;
    }
    qsort(batches, (size_t)count, sizeof batches[0], compare_doubles);
    r->seconds = batches[count / 2];
}

double emc_pool_round_trip(emc_pool *pool, long rounds) {
    if (!pool || pool->threads < 2 || rounds < 1) return 0;
    if (rounds > (long)ROUND_TRIP_BATCH * ROUND_TRIP_BATCHES_MAX) rounds = (long)ROUND_TRIP_BATCH * ROUND_TRIP_BATCHES_MAX;
    round_trip *r = aligned_alloc(128, sizeof *r);
    if (!r) return 0;
    atomic_init(&r->ball, 0);
    atomic_init(&r->arrived, 0);
    r->rounds = rounds;
    r->seconds = 0;
    emc_pool_run(pool, 2, round_trip_part, r);
    double seconds = r->seconds;
    free(r);
    return seconds;
}
