/*
 * lazy_mem: memory that a lazy restart (`cohort restart --lazy`) brings in
 * while the program already runs, and what the program does to it then.
 *
 *   lazy_mem [MIB [PROCS [STEPS [held]]]]   (defaults 256, 1, 40)
 *
 * Each process (PROCS: the first forks the others before anything is
 * written) keeps five private anonymous regions of MIB/PROCS MiB in all,
 * each page in a pattern of its region and its place.  Every step, first
 * (right after a restart: while pages are still to come):
 *   - drops 64 pages of one region (MADV_DONTNEED): they must read zeros,
 *     never the image's page;
 *   - writes 32 pages of another again (a write fault on a missing page);
 *   - moves region 1 to a new address (mremap);
 *   - at step 3, unmaps the second half of region 4;
 *   - forks a child that checks every page of its own copy and exits;
 * then checks every page itself, and prints "step N ok" (the first
 * process; the others only say at the end whether they failed).
 *
 * With "held", each process once its regions are filled keeps a holder:
 * a child that writes nothing and, when told to end, checks its copy of
 * the pages as they were at its fork (the parent fails if it fails).
 * The processes but the first take no steps: until the first ends they
 * fork a new holder every 5 ms, then end the one before, as a shell forks
 * its commands.  A checkpoint then finds such a process sharing pages
 * copy-on-write with a holder just forked in most of its regions, which
 * come back eagerly (src/restore/lazy.c), while its incremental image
 * leaves almost every page to the first generation.  (Not all: the
 * thread's TLS, written in the checkpoint's pause, is its own again.)
 */
#include "common.h"
#include <poll.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define PG 4096UL
#define NREG 5

static struct reg {
	unsigned char *base;
	unsigned long pages;
	unsigned char *zero;	/* page dropped: reads zeros */
} R[NREG];
static int me;			/* which process: its patterns are its own */
static int hold_fd = -1;	/* held: closed to end the holder (it checks its copy) */

static void pattern(int r, unsigned long p, unsigned char *out)
{
	memset(out, (int)((r * 37 + p * 13 + (unsigned long)me * 101) & 0xff), PG);
	uint64_t tag = 0xc0ffee0000000000ULL ^ ((uint64_t)me << 48) ^ ((uint64_t)r << 40) ^ p;
	memcpy(out, &tag, 8);
	tag = ~tag;
	memcpy(out + PG - 8, &tag, 8);
}

static void fill(int r, unsigned long from, unsigned long n)
{
	for (unsigned long p = from; p < from + n; p++) {
		pattern(r, p, R[r].base + p * PG);
		R[r].zero[p] = 0;
	}
}

/* Every page as it must be: 0 when all are, else 1 with what differs on stderr. */
static int check(const char *who, int step)
{
	static unsigned char want[PG], zeros[PG];
	for (int r = 0; r < NREG; r++)
		for (unsigned long p = 0; p < R[r].pages; p++) {
			const unsigned char *w = zeros;
			if (!R[r].zero[p]) {
				pattern(r, p, want);
				w = want;
			}
			if (memcmp(R[r].base + p * PG, w, PG)) {
				/* what is there instead: zeros, or another page's pattern (its tag says whose) */
				const unsigned char *got = R[r].base + p * PG;
				uint64_t tag;
				memcpy(&tag, got, 8);
				fprintf(stderr, "lazy_mem: %s, step %d: region %d page %lu is not what it must be (%s); "
					"it holds %s (tag %016llx)\n", who, step, r, p,
					R[r].zero[p] ? "dropped: zeros" : "the pattern",
					memcmp(got, zeros, PG) ? "something else" : "zeros", (unsigned long long)tag);
				return 1;
			}
		}
	return 0;
}

static void step(int k)
{
	/* drop 64 pages of one region */
	int r = k % NREG;
	if (R[r].pages > 64) {
		unsigned long at = ((unsigned long)k * 97) % (R[r].pages - 64);
		CHECK(madvise(R[r].base + at * PG, 64 * PG, MADV_DONTNEED) == 0, "madvise: %s", strerror(errno));
		memset(R[r].zero + at, 1, 64);
	}
	/* write 32 pages of another again */
	r = (k + 2) % NREG;
	if (R[r].pages > 32)
		fill(r, ((unsigned long)k * 131) % (R[r].pages - 32), 32);
	/* move region 1 */
	size_t len = R[1].pages * PG;
	void *to = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(to != MAP_FAILED, "mmap: %s", strerror(errno));
	void *moved = mremap(R[1].base, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to);
	CHECK(moved == to, "mremap: %s", strerror(errno));
	R[1].base = moved;
	/* unmap half of region 4, once */
	if (k == 3) {
		unsigned long half = R[4].pages / 2;
		CHECK(munmap(R[4].base + half * PG, (R[4].pages - half) * PG) == 0, "munmap: %s", strerror(errno));
		R[4].pages = half;
	}
	/* a child checks its own copy */
	pid_t c = fork();
	CHECK(c >= 0, "fork: %s", strerror(errno));
	if (c == 0)
		_exit(check("a child", k) ? 3 : 0);
	int st;
	CHECK(waitpid(c, &st, 0) == c, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "step %d: the child found its memory wrong (status %#x)", k, st);
	CHECK(check("the process", k) == 0, "step %d: its memory is wrong", k);
}

/* A holder of the pages as they are now (held): waits for hold_fd's end, then checks them. */
static pid_t holder(void)
{
	int p[2];
	CHECK(pipe(p) == 0, "pipe: %s", strerror(errno));
	pid_t h = fork();
	CHECK(h >= 0, "fork: %s", strerror(errno));
	if (h == 0) {
		char c;
		close(p[1]);
		if (hold_fd >= 0) /* the holder before's: it must see its end */
			close(hold_fd);
		while (read(p[0], &c, 1) < 0 && errno == EINTR)
			;
		_exit(check("a holder", -1) ? 3 : 0);
	}
	close(p[0]);
	hold_fd = p[1];
	return h;
}

/* End holder h (its pipe's end fd): it must have found its copy right. */
static void holder_end(pid_t h, int fd)
{
	int st;
	close(fd);
	CHECK(waitpid(h, &st, 0) == h, "waitpid: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "a holder found its copy wrong (status %#x)", st);
}

/* held, a process but the first: a new holder every 5 ms, until the first ends (end readable). */
static pid_t hold_on(pid_t h, int end)
{
	for (;;) {
		struct pollfd p = { end, POLLIN, 0 };
		int r = poll(&p, 1, 5);
		CHECK(r >= 0 || errno == EINTR, "poll: %s", strerror(errno));
		if (r > 0)
			return h;
		int old = hold_fd;
		pid_t nh = holder();
		holder_end(h, old);
		h = nh;
	}
}

int main(int argc, char **argv)
{
	t_prog = "lazy_mem";
	unsigned long mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
	int procs = argc > 2 ? atoi(argv[2]) : 1, steps = argc > 3 ? atoi(argv[3]) : 40;
	int held = argc > 4 && !strcmp(argv[4], "held");
	pid_t kids[8];
	int nkids = 0, endp[2] = { -1, -1 }; /* held: the processes but the first wait for its end */
	CHECK(argc <= 4 || pipe(endp) == 0, "pipe: %s", strerror(errno));
	for (int i = 1; i < procs && i < 9; i++) {
		pid_t p = fork();
		CHECK(p >= 0, "fork: %s", strerror(errno));
		if (p == 0) {
			me = i;
			nkids = 0;
			if (endp[1] >= 0)
				close(endp[1]);
			break;
		}
		kids[nkids++] = p;
	}
	/* sizes: 1/2, 1/4, 1/8, 1/16, 1/16 of this process's share */
	unsigned long pages = mib * 256 / (unsigned long)procs;
	unsigned long part[NREG] = { pages / 2, pages / 4, pages / 8, pages / 16, pages / 16 };
	for (int r = 0; r < NREG; r++) {
		R[r].pages = part[r];
		R[r].base = mmap(NULL, part[r] * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		R[r].zero = calloc(part[r], 1);
		CHECK(R[r].base != MAP_FAILED && R[r].zero, "mmap: %s", strerror(errno));
		fill(r, 0, part[r]);
	}
	pid_t h = held ? holder() : 0;
	if (me == 0) {
		printf("filled\n");
		fflush(stdout);
	}
	for (int k = 0; k < steps; k++) {
		if (held && me) {
			h = hold_on(h, endp[0]);
			break;
		}
		step(k);
		if (me == 0) {
			printf("step %d ok\n", k);
			fflush(stdout);
		}
		usleep(60000);
	}
	CHECK(check("the process", steps) == 0, "its memory is wrong at the end");
	if (h)
		holder_end(h, hold_fd);
	if (me)
		return 0;
	if (endp[1] >= 0)
		close(endp[1]);
	int bad = 0;
	for (int i = 0; i < nkids; i++) {
		int st;
		CHECK(waitpid(kids[i], &st, 0) == kids[i], "waitpid: %s", strerror(errno));
		bad += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	printf("RESULT %s procs=%d steps=%d\n", bad ? "BAD" : "ok", procs, steps);
	return bad ? 1 : 0;
}
