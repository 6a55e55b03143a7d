/*
 * demo.c - the bundled example for `make demo`.
 *
 * A small multi-threaded program that is a fair test for a transparent
 * checkpoint/restart system: 4 worker threads plus main, a mutex-protected
 * shared state with two condition variables, and 64 MiB of heap memory that
 * the workers keep rewriting.
 *
 * The computation advances in fixed steps.  At each step boundary all threads
 * synchronize (main publishes the step, the workers do a fixed amount of work,
 * main waits until every worker has reported), so the output is a pure
 * function of the step number: no times, pids, addresses or scheduling order
 * leak into it.  An uninterrupted run and a run that was checkpointed, killed
 * and restarted half-way must therefore print exactly the same lines, and in
 * particular the same final "[demo] RESULT <hex>" line.
 *
 * The heap is split into two 32 MiB buffers used as a double buffer: at step
 * s every worker reads anywhere in buffer s%2 and writes only its own quarter
 * of buffer (s+1)%2.  Workers thus depend on each other's memory from the
 * previous step, so a restore that loses or mixes up any page changes the
 * result.
 *
 * Usage: demo [STEPS [STEP_MS]]      (defaults: 20 steps of 500 ms)
 * Exit status: 0 on success.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NWORKERS 4
#define HEAP_MIB 64
#define BUF_WORDS ((size_t)HEAP_MIB * 1024 * 1024 / 2 / sizeof(uint64_t))
#define SLICE_WORDS (BUF_WORDS / NWORKERS)
#define PRIME_SPAN 20000 /* numbers each worker tests for primality per step */

struct shared {
    pthread_mutex_t lock;
    pthread_cond_t step_cv; /* main -> workers: a new step (or stop) */
    pthread_cond_t done_cv; /* workers -> main: a worker finished the step */
    int step;               /* current step, 1-based; 0 = not started */
    int stop;
    int done;               /* workers that finished the current step */
    uint64_t units;         /* total work units computed so far */
    uint64_t sums[NWORKERS];/* per-worker checksum of the current step */
};

static struct shared S = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .step_cv = PTHREAD_COND_INITIALIZER,
    .done_cv = PTHREAD_COND_INITIALIZER,
};

static uint64_t *bufs[2];

static uint64_t mix64(uint64_t x)
{
    /* splitmix64 finalizer */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static int is_prime(uint64_t n)
{
    if (n < 2)
        return 0;
    if (n % 2 == 0)
        return n == 2;
    for (uint64_t d = 3; d * d <= n; d += 2)
        if (n % d == 0)
            return 0;
    return 1;
}

/* The fixed amount of work of worker `id` at step `step`. */
static void do_step(int id, int step, uint64_t *units_out, uint64_t *sum_out)
{
    const uint64_t *src = bufs[step % 2];
    uint64_t *dst = bufs[(step + 1) % 2];
    size_t lo = (size_t)id * SLICE_WORDS;
    uint64_t sum = 0;

    for (size_t i = lo; i < lo + SLICE_WORDS; i++) {
        /* read own word and a word from another worker's quarter */
        uint64_t a = src[i];
        uint64_t b = src[(i * 7 + (size_t)step * 4099 + BUF_WORDS / 2) % BUF_WORDS];
        uint64_t v = mix64(a ^ (b >> 1) ^ ((uint64_t)step << 40) ^ i);
        dst[i] = v;
        sum += v ^ (sum << 1);
    }

    /* primes-ish units: count primes in a window that moves with the step */
    uint64_t base = 1000000ULL + ((uint64_t)step * NWORKERS + (uint64_t)id) * PRIME_SPAN;
    uint64_t primes = 0;
    for (uint64_t n = base; n < base + PRIME_SPAN; n++)
        primes += (uint64_t)is_prime(n);
    sum = mix64(sum ^ primes);

    *units_out = primes + SLICE_WORDS / 1024;
    *sum_out = sum;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    int seen = 0;

    for (;;) {
        pthread_mutex_lock(&S.lock);
        while (!S.stop && S.step == seen)
            pthread_cond_wait(&S.step_cv, &S.lock);
        if (S.stop) {
            pthread_mutex_unlock(&S.lock);
            return NULL;
        }
        seen = S.step;
        pthread_mutex_unlock(&S.lock);

        uint64_t units, sum;
        do_step(id, seen, &units, &sum);

        pthread_mutex_lock(&S.lock);
        S.units += units;
        S.sums[id] = sum;
        S.done++;
        pthread_cond_signal(&S.done_cv);
        pthread_mutex_unlock(&S.lock);
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Sleep for ms milliseconds (relative, so clock jumps across a restore can
 * never make us sleep for long). */
static void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { .tv_sec = (time_t)(ms / 1e3),
                           .tv_nsec = (long)((ms - (double)(time_t)(ms / 1e3) * 1e3) * 1e6) };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int main(int argc, char **argv)
{
    int steps = argc > 1 ? atoi(argv[1]) : 20;
    double step_ms = argc > 2 ? atof(argv[2]) : 500.0;
    if (steps <= 0 || step_ms < 0) {
        fprintf(stderr, "usage: %s [STEPS [STEP_MS]]\n", argv[0]);
        return 2;
    }

    for (int b = 0; b < 2; b++) {
        bufs[b] = malloc(BUF_WORDS * sizeof(uint64_t));
        if (!bufs[b]) {
            perror("demo: malloc");
            return 1;
        }
    }
    for (size_t i = 0; i < BUF_WORDS; i++) {
        bufs[0][i] = mix64(i + 1);
        bufs[1][i] = 0;
    }

    printf("[demo] starting: %d worker threads, %d MiB heap, %d steps\n",
           NWORKERS, HEAP_MIB, steps);
    fflush(stdout);

    pthread_t th[NWORKERS];
    for (int i = 0; i < NWORKERS; i++) {
        int rc = pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
        if (rc) {
            fprintf(stderr, "demo: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }

    uint64_t checksum = 0xcbf29ce484222325ULL;
    for (int step = 1; step <= steps; step++) {
        double t0 = now_ms();

        pthread_mutex_lock(&S.lock);
        S.done = 0;
        S.step = step;
        pthread_cond_broadcast(&S.step_cv);
        while (S.done < NWORKERS)
            pthread_cond_wait(&S.done_cv, &S.lock);
        /* combine in worker order: independent of who finished first */
        for (int i = 0; i < NWORKERS; i++)
            checksum = mix64(checksum ^ S.sums[i]) + (uint64_t)step;
        uint64_t units = S.units;
        pthread_mutex_unlock(&S.lock);

        printf("[demo] step %d/%d: workers have computed %" PRIu64
               " primes-ish units, checksum %016" PRIx64 "\n",
               step, steps, units, checksum);
        fflush(stdout);

        double left = step_ms - (now_ms() - t0);
        sleep_ms(left > step_ms ? step_ms : left);
    }

    pthread_mutex_lock(&S.lock);
    S.stop = 1;
    pthread_cond_broadcast(&S.step_cv);
    pthread_mutex_unlock(&S.lock);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(th[i], NULL);

    printf("[demo] RESULT %016" PRIx64 "\n", checksum);
    fflush(stdout);
    free(bufs[0]);
    free(bufs[1]);
    return 0;
}
