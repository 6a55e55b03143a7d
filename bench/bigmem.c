/*
 * bigmem.c - benchmark program for cohort: lots of written memory, several
 * threads, and a built-in measurement of the pauses the program observes.
 *
 * Usage:
 *   bigmem [SECONDS [MIB [THREADS]]] [options]
 *
 *   --seconds N      run for N seconds of *active* time (default 30; 0 = until
 *                    SIGTERM/SIGINT).  Time during which the whole program is
 *                    stopped (frozen for a checkpoint, or between a checkpoint
 *                    --kill and a restart) does not count, so a restarted
 *                    bigmem still runs for the rest of its duration.
 *   --mib N          memory size in MiB (default 1024), mmap'ed anonymous,
 *                    every page written with pseudo-random (incompressible,
 *                    non-zero) data before "ready" is printed.
 *   --threads N      worker threads (default 4); thread i owns slice i.
 *   --dirty-pct P    write only P percent of the pages per second (e.g. 1, or
 *                    0.5); the default is to write as fast as possible.  The
 *                    same environment variable: BIGMEM_DIRTY_PCT.  Pages are
 *                    written round-robin, so after T seconds min(100, P*T)
 *                    percent of the memory is dirty.
 *   --chunk-pages N  pages written per iteration at full speed (default 2048;
 *                    a few to a few hundred us of work).
 *   --alive-ms MS    print "alive" when an iteration sees a wall-clock gap
 *                    larger than MS (default 100), see below.
 *   --thp            madvise(MADV_HUGEPAGE) the memory.
 *   --compressible   keep one pseudo-random byte in each 8-byte word (the
 *                    others zero), so that images compress (--compress)
 *                    about as well as typical program memory does.
 *   --no-verify      skip the memory check at exit.
 *
 * Progress loop: each worker repeatedly writes one word in each of the next
 * chunk pages of its slice (round-robin), then reads CLOCK_MONOTONIC and
 * records the gap since the end of its previous iteration.  The largest gap
 * of any thread is what the application would perceive as a pause.
 *
 * Output (stdout, one line each, flushed):
 *   bigmem pid P mib M threads T dirty_pct D seconds S   (at start)
 *   ready                          memory written, workers running
 *   max_gap_ms X                   on SIGUSR1 and at exit: largest gap of any
 *                                  thread since the previous report (in ms,
 *                                  CLOCK_MONOTONIC); reset after each report
 *   alive gap_ms G rt S.US thread I
 *                                  the first thread that resumes after a
 *                                  stop: a wall-clock (CLOCK_REALTIME) gap >
 *                                  alive-ms (overlapping gaps of the threads
 *                                  are one stop); gap_ms is its length and
 *                                  rt = CLOCK_REALTIME (seconds) at that
 *                                  moment.  CLOCK_REALTIME is used because it
 *                                  is not virtualised by time namespaces, so
 *                                  the gap across a restart is always seen.
 *   alive_all gap_ms G rt S.US     the last thread has also resumed
 *   iterations N pages_written N   at exit: totals over all threads
 *   verify ok pages N | verify FAILED bad_pages N
 *                                  at exit: every word of every page checked
 *   done
 *
 * Signals: SIGUSR1 -> report (handler only sets a flag; main prints);
 *          SIGTERM/SIGINT -> stop cleanly (report, verify, exit).
 * Exit status: 0, or 1 if the memory check failed, 2 on bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL
#define NS_PER_SEC ((int64_t)1000000000)

struct worker {
    _Alignas(64) pthread_t th;
    int id;
    unsigned char *base;       /* start of the slice */
    size_t npages;             /* pages in the slice */
    size_t first_page;         /* global index of the slice's first page */
    _Atomic uint64_t max_gap_ns;
    _Atomic int64_t resumed_event; /* last stop event this thread resumed from */
    _Atomic uint64_t iterations;
    size_t cursor;             /* next page to write */
    uint64_t pass;             /* pages [0,cursor) have tag pass, the rest pass-1 */
    uint64_t bad_pages;        /* result of the final check */
    uint64_t pages_written;    /* by the progress loop */
};

static struct {
    double seconds;
    size_t mib;
    int threads;
    double dirty_pct; /* < 0: full speed */
    size_t chunk_pages;
    double alive_ms;
    int thp;
    int verify;
} opt = { 30, 1024, 4, -1, 2048, 100, 0, 1 };

static size_t page_size;
static struct worker *W;
static pthread_barrier_t ready_barrier;
static atomic_int stop_flag;
static _Atomic int64_t last_alive_rt, last_alive_all_rt;
static volatile sig_atomic_t report_req, term_req;

static int64_t clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (int64_t)ts.tv_sec * NS_PER_SEC + ts.tv_nsec;
}

static uint64_t xorshift64(uint64_t x)
{
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
}

static inline uint64_t tag(size_t gpage, uint64_t pass)
{
    return ((uint64_t)gpage * GOLDEN) ^ pass;
}

/* the bits of each pseudo-random word kept (--compressible: its low byte) */
static uint64_t word_mask = ~0ull;

/* word 0 is the tag, the other words are pseudo-random from the page index */
static void fill_page(uint64_t *p, size_t gpage)
{
    uint64_t x = (uint64_t)gpage * GOLDEN + 1;
    p[0] = tag(gpage, 0);
    for (size_t w = 1; w < page_size / 8; w++) {
        x = xorshift64(x);
        p[w] = x & word_mask;
    }
}

static int check_page(const uint64_t *p, size_t gpage, uint64_t pass)
{
    uint64_t x = (uint64_t)gpage * GOLDEN + 1;
    if (p[0] != tag(gpage, pass))
        return 0;
    for (size_t w = 1; w < page_size / 8; w++) {
        x = xorshift64(x);
        if (p[w] != (x & word_mask))
            return 0;
    }
    return 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    /* format into a buffer and write(2) it in one go: safe to call from any
     * thread, and lines from different threads never interleave */
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    for (const char *s = buf; n > 0;) {
        ssize_t k = write(STDOUT_FILENO, s, (size_t)n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        s += k;
        n -= (int)k;
    }
}

static void write_pages(struct worker *w, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint64_t *p = (uint64_t *)(w->base + w->cursor * page_size);
        p[0] = tag(w->first_page + w->cursor, w->pass);
        if (++w->cursor == w->npages) {
            w->cursor = 0;
            w->pass++;
        }
    }
    w->pages_written += n;
}

static void atomic_max(_Atomic uint64_t *a, uint64_t v)
{
    uint64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v > cur &&
           !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                  memory_order_relaxed))
        ;
}

/*
 * Called by a worker whose iteration saw a wall-clock gap > alive-ms, i.e. it
 * was not running during [gap_start, now_rt].  One stop of the whole program
 * (a checkpoint freeze, or kill + restore) is seen by every thread; they are
 * grouped into one "event": a gap that started before the current event's
 * "alive" line was printed overlaps that event's stop and belongs to it, a gap
 * that started later is a new event.  The first thread of an event prints
 * "alive", the last one to resume prints "alive_all".
 */
static void resumed(struct worker *w, int64_t gap_start, int64_t now_rt)
{
    double gap_ms = (double)(now_rt - gap_start) / 1e6;

    int64_t ev = atomic_load(&last_alive_rt);
    while (gap_start >= ev) { /* a new event: try to open it */
        if (atomic_compare_exchange_strong(&last_alive_rt, &ev, now_rt)) {
            ev = now_rt;
            say("alive gap_ms %.3f rt %" PRId64 ".%06" PRId64 " thread %d\n", gap_ms,
                now_rt / NS_PER_SEC, (now_rt % NS_PER_SEC) / 1000, w->id);
            break;
        }
        /* someone else opened one meanwhile: ev reloaded, check again */
    }
    atomic_store(&w->resumed_event, ev);

    for (int i = 0; i < opt.threads; i++)
        if (atomic_load(&W[i].resumed_event) != ev)
            return;
    int64_t last = atomic_load(&last_alive_all_rt);
    if (last != ev && atomic_compare_exchange_strong(&last_alive_all_rt, &last, ev))
        say("alive_all gap_ms %.3f rt %" PRId64 ".%06" PRId64 "\n", gap_ms,
            now_rt / NS_PER_SEC, (now_rt % NS_PER_SEC) / 1000);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;

    for (size_t i = 0; i < w->npages; i++)
        fill_page((uint64_t *)(w->base + i * page_size), w->first_page + i);
    w->cursor = 0;
    w->pass = 1;
    pthread_barrier_wait(&ready_barrier);

    const int64_t alive_ns = (int64_t)(opt.alive_ms * 1e6);
    /* pages per second for --dirty-pct; credit accumulates fractional pages */
    const double rate = opt.dirty_pct < 0 ? 0 : opt.dirty_pct / 100.0 * (double)w->npages;
    double credit = 0;
    int64_t prev = clock_ns(CLOCK_MONOTONIC);
    int64_t prev_rt = clock_ns(CLOCK_REALTIME);

    while (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        if (opt.dirty_pct < 0) {
            write_pages(w, opt.chunk_pages);
        } else {
            size_t n = (size_t)credit;
            if (n > opt.chunk_pages)
                n = opt.chunk_pages;
            write_pages(w, n);
            credit -= (double)n;
            if (credit < (double)opt.chunk_pages) {
                struct timespec ts = { 0, 1000000 }; /* 1 ms */
                nanosleep(&ts, NULL);
            }
        }

        int64_t now = clock_ns(CLOCK_MONOTONIC);
        int64_t now_rt = clock_ns(CLOCK_REALTIME);
        int64_t gap = now - prev;
        int64_t gap_rt = now_rt - prev_rt;
        prev = now;
        prev_rt = now_rt;
        if (gap > 0)
            atomic_max(&w->max_gap_ns, (uint64_t)gap);
        if (gap_rt > alive_ns)
            resumed(w, now_rt - gap_rt, now_rt);
        if (rate > 0) {
            /* do not count long stops: no burst of writes after a restore */
            int64_t dt = gap < 100000000 ? gap : 100000000;
            credit += rate * (double)(dt > 0 ? dt : 0) / 1e9;
        }
        atomic_fetch_add_explicit(&w->iterations, 1, memory_order_relaxed);
    }

    if (opt.verify) {
        for (size_t i = 0; i < w->npages; i++) {
            uint64_t pass = i < w->cursor ? w->pass : w->pass - 1;
            if (!check_page((const uint64_t *)(w->base + i * page_size), w->first_page + i,
                            pass))
                w->bad_pages++;
        }
    }
    return NULL;
}

static void on_usr1(int sig)
{
    (void)sig;
    report_req = 1;
}

static void on_term(int sig)
{
    (void)sig;
    term_req = 1;
}

static void report(void)
{
    uint64_t m = 0;
    for (int i = 0; i < opt.threads; i++) {
        uint64_t g = atomic_exchange(&W[i].max_gap_ns, 0);
        if (g > m)
            m = g;
    }
    say("max_gap_ms %.3f\n", (double)m / 1e6);
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [SECONDS [MIB [THREADS]]] [--seconds N] [--mib N] [--threads N]\n"
            "       [--dirty-pct P] [--chunk-pages N] [--alive-ms MS] [--thp] [--no-verify]\n"
            "       [--compressible]\n",
            argv0);
    exit(2);
}

static double num_arg(const char *argv0, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < 0)
        usage(argv0);
    return v;
}

int main(int argc, char **argv)
{
    const char *env = getenv("BIGMEM_DIRTY_PCT");
    if (env && *env)
        opt.dirty_pct = num_arg(argv[0], env);

    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        if (strncmp(a, "--", 2) == 0) {
            /* accept --opt VALUE and --opt=VALUE */
            char name[32];
            const char *eq = strchr(a, '=');
            size_t len = eq ? (size_t)(eq - a) : strlen(a);
            if (len >= sizeof name)
                usage(argv[0]);
            memcpy(name, a, len);
            name[len] = 0;
            if (!strcmp(name, "--thp")) {
                opt.thp = 1;
                continue;
            }
            if (!strcmp(name, "--no-verify")) {
                opt.verify = 0;
                continue;
            }
            if (!strcmp(name, "--compressible")) {
                word_mask = 0xff;
                continue;
            }
            if (!strcmp(name, "--help"))
                usage(argv[0]);
            if (eq)
                val = eq + 1;
            else if (i + 1 < argc)
                val = argv[++i];
            else
                usage(argv[0]);
            double v = num_arg(argv[0], val);
            if (!strcmp(name, "--seconds"))
                opt.seconds = v;
            else if (!strcmp(name, "--mib"))
                opt.mib = (size_t)v;
            else if (!strcmp(name, "--threads"))
                opt.threads = (int)v;
            else if (!strcmp(name, "--dirty-pct"))
                opt.dirty_pct = v;
            else if (!strcmp(name, "--chunk-pages"))
                opt.chunk_pages = (size_t)v;
            else if (!strcmp(name, "--alive-ms"))
                opt.alive_ms = v;
            else
                usage(argv[0]);
        } else {
            double v = num_arg(argv[0], a);
            switch (npos++) {
            case 0: opt.seconds = v; break;
            case 1: opt.mib = (size_t)v; break;
            case 2: opt.threads = (int)v; break;
            default: usage(argv[0]);
            }
        }
    }
    if (opt.mib == 0 || opt.threads <= 0 || opt.threads > 1024 || opt.chunk_pages == 0)
        usage(argv[0]);

    page_size = (size_t)sysconf(_SC_PAGESIZE);
    size_t total_pages = opt.mib * 1024 * 1024 / page_size;
    if (total_pages < (size_t)opt.threads)
        usage(argv[0]);
    size_t len = total_pages * page_size;
    unsigned char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("bigmem: mmap");
        return 1;
    }
    if (opt.thp && madvise(mem, len, MADV_HUGEPAGE) != 0)
        perror("bigmem: madvise(MADV_HUGEPAGE)");

    W = aligned_alloc(64, sizeof(struct worker) * (size_t)opt.threads);
    if (!W) {
        perror("bigmem: malloc");
        return 1;
    }
    memset(W, 0, sizeof(struct worker) * (size_t)opt.threads);

    struct sigaction sa = { 0 };
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    /* the workers block our signals, so they are delivered to the main thread
     * and interrupt its nanosleep right away */
    sigset_t sigs, old;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGUSR1);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, &old);

    say("bigmem pid %d mib %zu threads %d dirty_pct %g seconds %g\n", (int)getpid(), opt.mib,
        opt.threads, opt.dirty_pct < 0 ? 100.0 : opt.dirty_pct, opt.seconds);

    pthread_barrier_init(&ready_barrier, NULL, (unsigned)opt.threads + 1);
    size_t per = total_pages / (size_t)opt.threads;
    for (int i = 0; i < opt.threads; i++) {
        struct worker *w = &W[i];
        w->id = i;
        w->first_page = (size_t)i * per;
        w->npages = i == opt.threads - 1 ? total_pages - w->first_page : per;
        w->base = mem + w->first_page * page_size;
        int rc = pthread_create(&w->th, NULL, worker_main, w);
        if (rc) {
            fprintf(stderr, "bigmem: pthread_create: %s\n", strerror(rc));
            return 1;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_barrier_wait(&ready_barrier);
    say("ready\n");

    /* Count active time in 10 ms ticks; a tick longer than 100 ms (the whole
     * process was stopped) counts as 100 ms. */
    const int64_t want = (int64_t)(opt.seconds * 1e9);
    int64_t active = 0, prev = clock_ns(CLOCK_MONOTONIC);
    while (!term_req && (want == 0 || active < want)) {
        struct timespec ts = { 0, 10000000 };
        nanosleep(&ts, NULL); /* EINTR on a signal: fine */
        if (report_req) {
            report_req = 0;
            report();
        }
        int64_t now = clock_ns(CLOCK_MONOTONIC), dt = now - prev;
        prev = now;
        if (dt > 0)
            active += dt < 100000000 ? dt : 100000000;
    }

    atomic_store(&stop_flag, 1);
    uint64_t iters = 0, bad = 0, written = 0;
    for (int i = 0; i < opt.threads; i++) {
        pthread_join(W[i].th, NULL);
        iters += atomic_load(&W[i].iterations);
        bad += W[i].bad_pages;
        written += W[i].pages_written;
    }
    report();
    say("iterations %" PRIu64 " pages_written %" PRIu64 "\n", iters, written);
    if (opt.verify) {
        if (bad) {
            say("verify FAILED bad_pages %" PRIu64 "\n", bad);
            return 1;
        }
        say("verify ok pages %zu\n", total_pages);
    }
    say("done\n");
    return 0;
}
