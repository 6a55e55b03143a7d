/*
 * filler.c - the page filler of a lazy restart (`cohort restart --lazy`).
 *
 * A child of the coordinator, outside the group, that holds the
 * userfaultfd of one restored process (src/restore/lazy.c made it and
 * registered the lazy regions with it, MISSING mode).  It answers the
 * program's faults first, each with the page from the image
 * (UFFDIO_COPY), and between them copies every other page in the
 * background, record after record; once every page is in place (or no
 * longer wanted) it exits, which closes the userfaultfd: the process is
 * then an ordinary one.
 *
 * What the program does to its memory meanwhile comes as events
 * (CRIU's lazy pages, criu/uffd.c, handles the same ones):
 *   REMOVE (MADV_DONTNEED, MADV_REMOVE)  the pages are dropped: they read
 *                                        as zeros from now on, never the image's
 *   UNMAP (munmap, mmap over)             forgotten
 *   REMAP (mremap that moves)             the pages still to come move too
 *   FORK                                  the child's new userfaultfd gets a copy
 *                                         of what is still to come at the fork
 * A fault where nothing is to come (dropped, never in the image) is
 * answered with a zero page.  While an event is on its way the kernel
 * refuses copies (EAGAIN): the events are read, then the copy is tried
 * again against what they changed.
 *
 * The index (filler_index.c, over pindex.c): every page of the lazy
 * regions that the image holds, in the order of the image's files (entry
 * e: stream and offset of its data).  An incremental image restarted from
 * its chain (chain.c) leaves pages to its parent (parent map records):
 * those come from the newest older image that holds them, down to the
 * full image; the chain below the restored image is indexed first (on a
 * migration's target, while the rounds came in), the restored image's own
 * pages last.  Every
 * record's checksum is checked as the fill reads it: a page the program got from a record
 * that turns out damaged ends the group, as any failure here does (the
 * coordinator kills the group when the filler exits non-zero: the
 * program must never run on with a page that is not its own).
 *
 * With images read from disk, a record is checked before a page of it
 * goes in: the fill checks each before it fills from it, and a fault
 * waits for the check of its record (8 MiB at most in a snapshot's image,
 * ~2 ms here), the pages written eagerly for theirs.  A larger record (a
 * whole region, in an image taken with --stop) would make a fault wait for
 * all of it: its pages go out first, and the records that pages went out
 * from unchecked are checked once the group runs, before the fill goes on
 * in file order, and, should the group end before the fill does (the
 * program may have found the damaged page itself and exited), at its end:
 * the coordinator waits for that (coord/lazy.c, lazy_end), and a damaged
 * one still fails the restart, saying so.  (A migration's target has
 * checked every byte of its files as they arrived, against what the
 * source sent: cfg->checked.)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "boost.h"
#include "cli/cli.h"
#include "cli/filler_int.h"
#include "image.h"
#include "proto.h"
#include "res.h"
#include "util.h"
#include "xxh64.h"

#define PAGE 4096ULL
#define CLUSTER 16		/* pages a fault brings at most (cluster) */
#define CHUNK (256ULL << 10) /* background reads, per record: a fault waits for one at most */
#define AHEAD (2ULL << 20)	/* after a fault, the background fill brings the next 2 MiB first (fill_ahead) */
#define AHEAD_MAX (64ULL << 20)	/* ... up to 64 MiB for a program that goes on walking its memory */
#define AHEAD_RUN 64		/* pages per copy there */
#define MAX_SPACES 64		/* the process and the children it forks while the fill runs */
#define CHECK_AT_FAULT (16ULL << 20) /* a fault waits for the check of a record up to this long */

/* One address space: the process's, or a child's forked while the fill runs. */
struct space {
	int fd;			/* its userfaultfd */
	uint64_t *at;		/* entry -> where its page is now */
	uint8_t *pend;		/* entry -> still to come */
	/*
	 * Entries by address (of at[]), in one list or two (the process's own
	 * space: the index below, as it came, and the restored image's own,
	 * whose page wins where both have one); those no longer pending may
	 * linger.
	 */
	uint32_t *ord, *ord2;
	uint32_t nord, nord2;
	uint64_t left;		/* pending entries */
	int dead;		/* its memory is gone (exit, exec) */
	uint64_t q[64];		/* faults waiting for an event to be read (EAGAIN) */
	int nq;
};

static const struct co_filler_cfg *cfg;
static struct co_page_source src;
static uint64_t nused;		/* records in fx.rec_used not checked yet */
static int ended;		/* the group has ended: only fx.rec_used is still to be checked (read_release) */
static struct space sp[MAX_SPACES];
static int nsp;
static char *buf;		/* CHUNK of page data */
struct fill_index fx;

void fill_fail(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "cohort: lazy restore of pid %d failed: %s; the group is ended\n", cfg->pid, line);
	_exit(1);
}

/* ---- the page source: the image's files, whose holes a post-copy may still be filling ---- */

static int file_read(int stream, uint64_t off, void *p, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = pread(fx.src_fd[stream], (char *)p + done, n - done, (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		done += (size_t)r;
	}
	return 0;
}

static void pump(int timeout_ms);

/*
 * n bytes of stream k at off, once they are in place: a fault's (demand)
 * are asked for and waited for; the background fill's are waited for
 * while faults are served.
 */
static int src_read(int stream, uint64_t off, void *p, size_t n, int demand)
{
	for (int r; src.ready && (r = src.ready(src.ctx, fx.src_fd[stream], off, n, demand)) != 1;) {
		if (r < 0) {
			const char *why = src.why(src.ctx);
			if (!why)
				_exit(1); /* another filler has said why */
			fill_fail("%s", why);
		}
		if (!demand)
			pump(1);
		src.wait(src.ctx, demand ? 100 : 0);
	}
	return file_read(stream, off, p, n);
}

/* Order the pending entries of s by address again, in one list (dropping the others). */
static void reorder(struct space *s)
{
	uint32_t n = 0, *ord = s->ord;
	if (s->ord2 && !(ord = malloc(((size_t)s->nord + s->nord2 + 1) * sizeof(*ord))))
		fill_fail("out of memory for the page index");
	for (uint32_t i = 0; i < s->nord; i++)
		if (s->pend[s->ord[i]])
			ord[n++] = s->ord[i];
	for (uint32_t i = 0; i < s->nord2; i++)
		if (s->pend[s->ord2[i]])
			ord[n++] = s->ord2[i];
	s->ord = ord;
	s->nord = n;
	s->ord2 = NULL; /* the process's own lists: the first is the index's (kept), the second a leftover */
	s->nord2 = 0;
	if (co_pindex_sort(s->ord, n, s->at))
		fill_fail("out of memory for the page index");
}

/* The first position of ord (n entries by address) whose address is >= a. */
static uint32_t lower(const struct space *s, const uint32_t *ord, uint32_t n, uint64_t a)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (s->at[ord[mid]] < a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The pending entry of ord whose page is at a, or -1. */
static long lookup_in(const struct space *s, const uint32_t *ord, uint32_t n, uint64_t a)
{
	for (uint32_t i = lower(s, ord, n, a); i < n && s->at[ord[i]] == a; i++)
		if (s->pend[ord[i]])
			return ord[i];
	return -1;
}

/* The pending entry whose page is at a, or -1. */
static long lookup(const struct space *s, uint64_t a)
{
	long e = lookup_in(s, s->ord2, s->nord2, a);
	return e >= 0 ? e : lookup_in(s, s->ord, s->nord, a);
}

static void done(struct space *s, uint32_t e)
{
	if (s->pend[e]) {
		s->pend[e] = 0;
		s->left--;
	}
}

/* A space for fd with the entries pending in parent (NULL: every entry, the process's own). */
static struct space *new_space(int fd, const struct space *parent)
{
	if (nsp == MAX_SPACES)
		fill_fail("more than %d processes forked while the memory was filled", MAX_SPACES - 1);
	struct space *s = &sp[nsp++];
	s->fd = fd;
	s->nord = s->nord2 = 0;
	s->ord2 = NULL;
	s->left = 0;
	if (!parent) {
		/*
		 * The process's own space takes what take_index made ready (fx.e_at
		 * then follows its moves): nothing copied or sorted on the
		 * program's way back.
		 */
		s->at = fx.e_at;
		s->pend = fx.pend0;
		s->ord = fx.ord_below;
		s->nord = fx.nbelow;
		s->ord2 = fx.ord_top;
		s->nord2 = fx.ntop;
		s->left = fx.left0;
		return s;
	}
	/* a child's: copies of what is still to come in its parent's */
	s->at = malloc((fx.nent ? fx.nent : 1) * sizeof(uint64_t));
	s->pend = malloc(fx.nent ? fx.nent : 1);
	s->ord = malloc((fx.nent ? fx.nent : 1) * sizeof(uint32_t));
	if (!s->at || !s->pend || !s->ord)
		fill_fail("out of memory for the page index");
	for (uint32_t e = 0; e < fx.nent; e++) {
		s->pend[e] = parent->pend[e];
		s->at[e] = parent->at[e];
		if (s->pend[e]) {
			s->ord[s->nord++] = e;
			s->left++;
		}
	}
	reorder(s);
	return s;
}

/* ---- the records' checksums ---- */

/* The record that holds entry e (fx.by_rec), or fx.nrecs. */
static uint32_t rec_of(uint32_t e)
{
	uint32_t lo = 0, hi = fx.nrecs;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (fx.recs[mid].e1 <= e)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < fx.nrecs && fx.recs[lo].e0 <= e ? lo : fx.nrecs;
}

/* A page of entry e went in: its record, unless checked already, is to be. */
static void note_used(uint32_t e)
{
	if (!fx.check_first)
		return;
	uint32_t r = fx.by_rec ? rec_of(e) : fx.nrecs;
	if (r == fx.nrecs) { /* (records not in order: every one is checked) */
		for (uint32_t i = 0; i < fx.nrecs; i++)
			if (!fx.rec_ok[i] && !fx.rec_used[i])
				fx.rec_used[i] = 1, nused++;
		return;
	}
	if (!fx.rec_ok[r] && !fx.rec_used[r])
		fx.rec_used[r] = 1, nused++;
}

/*
 * Record i's data hashed into h: its checksum (after the data) compared,
 * a mismatch ends the group saying whether pages of it reached the
 * program (those a fill copied while it hashed have: fx.rec_used), a match
 * marks it checked.  (demand: read without serving faults meanwhile.)
 */
static void record_checked(uint32_t i, struct co_xxh64 *h, int demand)
{
	const struct rec *rc = &fx.recs[i];
	uint64_t sum;
	if (src_read(rc->stream, rc->off + rc->len, &sum, sizeof(sum), demand))
		fill_fail("%s: byte %lu: image is truncated", fx.src_name[rc->stream], (unsigned long)(rc->off + rc->len));
	if (sum != co_xxh64_digest(h))
		fill_fail("%s: byte %lu: checksum mismatch in page data record %lu (%s %lx on%s)", fx.src_name[rc->stream],
		     (unsigned long)rc->off, (unsigned long)rc->seq,
		     fx.rec_used[i] ? "pages of it from" : "for the pages from", (unsigned long)fx.e_at[rc->e0],
		     fx.rec_used[i] ? " have reached the program" : "; none of them reached the program");
	fx.rec_ok[i] = 1;
	if (fx.rec_used[i]) {
		fx.rec_used[i] = 0;
		nused--;
	}
}

/*
 * Record i's checksum, read in chunks (faults served between them when
 * pumping): a mismatch ends the group.  Pumping (the background's), a
 * record of up to CHECK_AT_FAULT is read whole into a buffer of its own,
 * returned for the fill to copy from without reading it again (valid until
 * the next such check; the checks made while a fault waits, without
 * pumping, read chunk by chunk into another); else NULL.
 */
static const char *check_record(uint32_t i, int pumping)
{
	static char *cbuf, *kept;
	const struct rec *rc = &fx.recs[i];
	if (fx.rec_ok[i])
		return NULL;
	if (!cbuf && !(cbuf = aligned_alloc(PAGE, CHUNK)))
		fill_fail("out of memory");
	if (pumping && rc->len <= CHECK_AT_FAULT && !kept && !(kept = aligned_alloc(PAGE, CHECK_AT_FAULT)))
		fill_fail("out of memory");
	char *whole = pumping && rc->len <= CHECK_AT_FAULT ? kept : NULL;
	struct co_xxh64 h;
	co_rec_sum_init(&h, rc->seq, CO_R_PAGEDATA);
	for (uint64_t at = 0; at < rc->len; at += CHUNK) {
		uint64_t n = rc->len - at < CHUNK ? rc->len - at : CHUNK;
		char *to = whole ? whole + at : cbuf;
		if (src_read(rc->stream, rc->off + at, to, n, !pumping))
			fill_fail("%s: byte %lu: cannot read page data", fx.src_name[rc->stream], (unsigned long)(rc->off + at));
		co_xxh64_update(&h, to, n);
		if (pumping)
			pump(0);
	}
	record_checked(i, &h, !pumping);
	return whole;
}

/* Every record pages went out from unchecked, checked. */
static void check_used(void)
{
	for (uint32_t i = 0; i < fx.nrecs && nused; i++)
		if (fx.rec_used[i])
			check_record(i, 1);
}

/*
 * Before a page of entry e goes in: its record checked, when that is
 * short enough for a fault to wait for (all: any length).  Without
 * pumping: a fault waits meanwhile, and so do the others.
 */
static void check_before(uint32_t e, int all)
{
	uint32_t r;
	if (!fx.check_first || !fx.by_rec || (r = rec_of(e)) == fx.nrecs || fx.rec_ok[r])
		return;
	if (all || fx.recs[r].len <= CHECK_AT_FAULT)
		check_record(r, 0);
}

/* ---- userfaultfd operations: 0 done, 1 gone (nothing to do there any more), -EAGAIN, or -errno ---- */

static long copy_pages(struct space *s, uint64_t dst, const void *from, uint64_t len, uint64_t *copied)
{
	struct uffdio_copy c = { .dst = dst, .src = (uint64_t)from, .len = len, .mode = 0 };
	long r = ioctl(s->fd, UFFDIO_COPY, &c) < 0 ? -errno : 0;
	*copied = c.copy > 0 ? (uint64_t)c.copy : 0;
	/*
	 * The kernel copies within one mapping and refuses a range that runs
	 * past its end with ENOENT, copying nothing: pages side by side in two
	 * mappings (a lazy region split by mprotect during the fill).  The
	 * first page alone then, and only a page refused alone is gone; the
	 * caller goes on from the next.
	 */
	if (r == -ENOENT && len > PAGE && !*copied)
		return copy_pages(s, dst, from, PAGE, copied);
	if (r == -ESRCH) /* its memory is gone: it exited or exec'd */
		s->dead = 1;
	return r;
}

/* Answer a fault at a where nothing is to come: zeros. */
static long zero_page(struct space *s, uint64_t a)
{
	struct uffdio_zeropage z = { .range = { a, PAGE }, .mode = 0 };
	if (ioctl(s->fd, UFFDIO_ZEROPAGE, &z) == 0)
		return 0;
	long r = -errno;
	if (r == -EEXIST) { /* filled meanwhile: only wake whoever waits */
		struct uffdio_range w = { a, PAGE };
		ioctl(s->fd, UFFDIO_WAKE, &w);
		return 0;
	}
	if (r == -ESRCH)
		s->dead = 1;
	return r == -ENOENT || r == -ESRCH ? 1 : r;
}

/*
 * The pages after entry e (at address a) that one copy can bring with it:
 * pending, at the next addresses, their data next in the same file.  At
 * most max - 1: a program that walks its memory then waits on one fault
 * per CLUSTER pages instead of one per page.
 */
static uint32_t cluster(const struct space *s, long e, uint64_t a, uint32_t max)
{
	uint32_t n = 1;
	while (n < max) {
		long f = lookup(s, a + n * PAGE);
		if (f < 0 || fx.e_off[f] != fx.e_off[e] + n * PAGE)
			break;
		n++;
	}
	return n;
}

/*
 * Where the program last faulted: the background fill brings the pages
 * after it first (fill_ahead), since a program that walks its memory
 * would fault there next, each fault waiting for the fill's current read.
 */
static uint64_t nfaults, nahead; /* faults served, pages brought ahead of them: for COHORT_TRACE */

static struct {
	struct space *s;
	uint64_t at, end;
	uint64_t win;	/* its length: doubled while each fault comes where the last window ended */
} ahead;

/* A fault at a was served, the pages to a + got brought: the window after it. */
static void ahead_of(struct space *s, uint64_t a, uint64_t got)
{
	int walks = s == ahead.s && a >= ahead.end - ahead.win && a <= ahead.end + AHEAD;
	ahead.win = walks && ahead.win < AHEAD_MAX ? ahead.win * 2 : walks ? AHEAD_MAX : AHEAD;
	ahead.s = s;
	ahead.at = a + (got > PAGE ? got : PAGE);
	ahead.end = a + ahead.win;
}

/*
 * Copy the run of n pages at a (entry e, and the pending pages cluster()
 * found after it; pages: their data) and mark what went in done: 0 once
 * the first page is in, else copy_pages' error; the bytes in *copied.
 */
static long copy_run(struct space *s, long e, uint64_t a, const char *pages, uint32_t n, uint64_t *copied)
{
	long r = copy_pages(s, a, pages, n * PAGE, copied);
	for (uint32_t j = 1; j < n && (j + 1) * PAGE <= *copied; j++) /* the pages brought along */
		done(s, (uint32_t)lookup(s, a + j * PAGE));
	if (*copied >= PAGE) { /* the first page is in (a later one of the run may have failed) */
		done(s, (uint32_t)e);
		r = 0;
	}
	return r;
}

/* Serve the fault at page a (and the pages cluster() finds after it): 0 served, -EAGAIN to try again once the events are read. */
static long serve(struct space *s, uint64_t a)
{
	static char pages[CLUSTER * PAGE] __attribute__((aligned(4096)));
	long e = lookup(s, a);
	if (e < 0) {
		long r = zero_page(s, a);
		if (r < 0 && r != -EAGAIN)
			fill_fail("pid %d or a child: no zero page for the fault at %lx (errno %ld)", cfg->pid,
			     (unsigned long)a, -r);
		return r < 0 ? r : 0;
	}
	uint64_t off = fx.e_off[e] & ~(PAGE - 1);
	int k = (int)(fx.e_off[e] & (PAGE - 1));
	uint32_t n = cluster(s, e, a, CLUSTER);
	check_before((uint32_t)e, 0);
	if (src_read(k, off, pages, n * PAGE, 1))
		fill_fail("%s: byte %lu: cannot read the page for %lx", fx.src_name[k], (unsigned long)off, (unsigned long)a);
	uint64_t copied;
	long r = copy_run(s, e, a, pages, n, &copied);
	if (copied)
		note_used((uint32_t)e); /* (a run is one record's: its data lies side by side in the file) */
	if (r == -EAGAIN)
		return r;
	nfaults++;
	ahead_of(s, a, copied);
	if (r == -EEXIST) { /* there already: only wake whoever waits */
		struct uffdio_range w = { a, PAGE };
		ioctl(s->fd, UFFDIO_WAKE, &w);
	}
	if (r == 0 || r == -EEXIST || r == -ENOENT || r == -ESRCH) {
		done(s, (uint32_t)e);
		return 0;
	}
	fill_fail("page %lx: UFFDIO_COPY failed (errno %ld)", (unsigned long)a, -r);
}

/* ---- events ---- */

static void drop_in(struct space *s, const uint32_t *ord, uint32_t n, uint64_t lo, uint64_t hi)
{
	for (uint32_t i = lower(s, ord, n, lo); i < n && s->at[ord[i]] < hi; i++)
		done(s, ord[i]);
}

static void drop_range(struct space *s, uint64_t lo, uint64_t hi)
{
	drop_in(s, s->ord, s->nord, lo, hi);
	drop_in(s, s->ord2, s->nord2, lo, hi);
}

static void move_in(struct space *s, const uint32_t *ord, uint32_t n, uint64_t from, uint64_t to, uint64_t len)
{
	for (uint32_t i = lower(s, ord, n, from); i < n && s->at[ord[i]] < from + len; i++)
		if (s->pend[ord[i]])
			s->at[ord[i]] += to - from;
}

static void remap(struct space *s, uint64_t from, uint64_t to, uint64_t len)
{
	move_in(s, s->ord, s->nord, from, to, len);
	move_in(s, s->ord2, s->nord2, from, to, len);
	reorder(s);
}

static void queue_fault(struct space *s, uint64_t a)
{
	if (s->nq == (int)CO_ARRAY_LEN(s->q))
		fill_fail("more than %d faults waiting at once", (int)CO_ARRAY_LEN(s->q));
	s->q[s->nq++] = a;
}

/*
 * A copy of a child's userfaultfd to the coordinator (coord/lazy.c), which
 * holds it while we run: were we to die, the kernel would not release it
 * and answer the child's faults with zeros before the group is ended.
 */
static void hold(int fd)
{
	static struct co_msg m = { .type = CO_M_LAZY };
	struct iovec iov;
	struct msghdr mh;
	char cbuf[CO_FRAME_CBUF];
	co_frame(&mh, &iov, &m, sizeof(m), cbuf, &fd, 1);
	while (sendmsg(cfg->held_sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

/* Read every message of s: events change the index at once, faults are queued.  How many. */
static int read_events(struct space *s)
{
	struct uffd_msg m[64];
	int got = 0;
	for (;;) {
		ssize_t r = read(s->fd, m, sizeof(m));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return got;
		for (size_t i = 0; i < (size_t)r / sizeof(m[0]); i++, got++) {
			const struct uffd_msg *msg = &m[i];
			switch (msg->event) {
			case UFFD_EVENT_PAGEFAULT:
				queue_fault(s, msg->arg.pagefault.address & ~(PAGE - 1));
				break;
			case UFFD_EVENT_REMOVE:
			case UFFD_EVENT_UNMAP:
				drop_range(s, msg->arg.remove.start, msg->arg.remove.end);
				break;
			case UFFD_EVENT_REMAP:
				remap(s, msg->arg.remap.from, msg->arg.remap.to, msg->arg.remap.len);
				break;
			case UFFD_EVENT_FORK: /* the child's, with what is still to come here */
				new_space((int)msg->arg.fork.ufd, s);
				hold((int)msg->arg.fork.ufd);
				break;
			default:
				break;
			}
		}
	}
}

/*
 * The kernel refused a copy into s (EAGAIN): an event is on its way.  Read
 * what has come; when nothing has yet (a fork posts its event once it has
 * copied the address space), wait for it a moment rather than spin.
 */
static void await_event(struct space *s)
{
	if (read_events(s))
		return;
	struct pollfd p = { s->fd, POLLIN, 0 };
	poll(&p, 1, 1);
	read_events(s);
}

/* Serve the queued faults of s, once each; those the kernel wants retried stay queued. */
static void serve_queue(struct space *s)
{
	int n = s->nq, kept = 0;
	for (int i = 0; i < n && !s->dead; i++)
		if (serve(s, s->q[i]) == -EAGAIN)
			s->q[kept++] = s->q[i];
	s->nq = s->dead ? 0 : kept;
	if (s->nq)
		await_event(s);
}

static int released;	/* the group runs: the background fill may begin (await_release) */

/*
 * The coordinator's word on our socket: RELEASE, the group runs; RELEASE
 * with a = 1, the group has ended (or the coordinator is gone, and we
 * with it): what is left is to check the records its pages came from.
 */
static void read_release(void)
{
	struct co_msg m;
	ssize_t r = recv(cfg->held_sock, &m, sizeof(m), MSG_DONTWAIT);
	if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
		released = ended = 1;
	else if (r == sizeof(m) && m.type == CO_M_RELEASE)
		released = 1, ended |= m.a == 1;
}

/*
 * Faults and events of every space, and the coordinator's word until it
 * has come; wait up to timeout_ms for the first (none while faults wait).
 */
static void pump(int timeout_ms)
{
	struct pollfd p[MAX_SPACES + 1];
	int queued = 0;
	for (int i = 0; i < nsp; i++) {
		p[i] = (struct pollfd){ sp[i].dead ? -1 : sp[i].fd, POLLIN, 0 };
		queued |= sp[i].nq && !sp[i].dead;
	}
	p[nsp] = (struct pollfd){ ended ? -1 : cfg->held_sock, POLLIN, 0 };
	int n = poll(p, (nfds_t)nsp + 1, queued ? 0 : timeout_ms);
	if (n > 0 && p[nsp].revents)
		read_release();
	for (int i = 0; i < nsp; i++) {
		if (sp[i].dead)
			continue;
		if (n > 0 && p[i].revents)
			read_events(&sp[i]);
		if (sp[i].nq)
			serve_queue(&sp[i]);
	}
}

/* ---- the background fill ---- */

static int all_done(void)
{
	for (int i = 0; i < nsp; i++)
		if (!sp[i].dead && sp[i].left)
			return 0;
	return 1;
}

/*
 * Faults only, until the coordinator says the group runs (coord/lazy.c,
 * lazy_release): the background fill would take a CPU from the restore's
 * last steps and a migration's switch, which the program waits for.
 */
static void await_release(void)
{
	while (!released)
		pump(-1);
	co_unboost(); /* the background fill is not the stop's: it runs beside the program, not ahead of it */
	/*
	 * Tests: the fill held until the test has looked at its fillers, which
	 * a fill done first would have ended (while the program runs on its
	 * faults, or has ended).
	 */
	while (cfg->hold && access(cfg->hold, F_OK) != 0 && !all_done() && !ended)
		pump(20);
}

/* Copy the pending pages of entries [e0, e1) of s, whose data is in buf from stream offset base. */
static void fill_span(struct space *s, uint32_t e0, uint32_t e1, const char *data, uint64_t base)
{
	uint32_t e = e0;
	while (e < e1 && !s->dead) {
		if (!s->pend[e]) {
			e++;
			continue;
		}
		/* a run: pending, consecutive in the image and in memory */
		uint32_t n = 1;
		while (e + n < e1 && s->pend[e + n] && s->at[e + n] == s->at[e] + n * PAGE &&
		       (fx.e_off[e + n] & ~(PAGE - 1)) == (fx.e_off[e] & ~(PAGE - 1)) + n * PAGE)
			n++;
		uint64_t copied;
		long r = copy_pages(s, s->at[e], data + ((fx.e_off[e] & ~(PAGE - 1)) - base), n * PAGE, &copied);
		uint32_t got = (uint32_t)(copied / PAGE);
		for (uint32_t i = 0; i < got; i++)
			done(s, e + i);
		e += got;
		if (r == 0 || s->dead)
			continue;
		if (r == -EAGAIN) { /* an event is on its way: read it, then look at this page again */
			await_event(s);
			serve_queue(s);
			continue;
		}
		if (r == -EEXIST || r == -ENOENT) { /* there already, or no longer ours */
			done(s, e);
			e++;
			continue;
		}
		fill_fail("page %lx: UFFDIO_COPY failed (errno %ld)", (unsigned long)s->at[e], -r);
	}
}

/*
 * The background fill's first work: the pages after the last fault
 * (ahead), in runs, faults served between them (which move it on).  Only
 * pages already here: a post-copy's still on their way are left to the
 * fill's order and the faults.
 */
static void fill_ahead(void)
{
	static char run[AHEAD_RUN * PAGE] __attribute__((aligned(4096)));
	uint64_t passed = 0; /* pages in a row found in place: no faults are served while they are looked up */
	while (ahead.s && ahead.at < ahead.end) {
		struct space *s = ahead.s;
		uint64_t a = ahead.at;
		long e = s->dead ? -1 : lookup(s, a);
		if (s->dead)
			break;
		if (e < 0) { /* in place already, or not to come: the fill has been here, past AHEAD of them */
			ahead.at += PAGE;
			if (++passed * PAGE >= AHEAD)
				break;
			continue;
		}
		passed = 0;
		uint32_t n = cluster(s, e, a, AHEAD_RUN);
		uint64_t off = fx.e_off[e] & ~(PAGE - 1), copied;
		int k = (int)(fx.e_off[e] & (PAGE - 1));
		if (src.ready && src.ready(src.ctx, fx.src_fd[k], off, n * PAGE, 0) != 1)
			break;
		check_before((uint32_t)e, 0);
		if (file_read(k, off, run, n * PAGE))
			fill_fail("%s: byte %lu: cannot read the page for %lx", fx.src_name[k], (unsigned long)off,
			     (unsigned long)a);
		long r = copy_run(s, e, a, run, n, &copied);
		if (copied)
			note_used((uint32_t)e);
		if (r == -EAGAIN) { /* an event is on its way: read it, then look at this page again */
			await_event(s);
			serve_queue(s);
			continue;
		}
		if (r == -EEXIST || r == -ENOENT) /* there already, or no longer ours */
			done(s, (uint32_t)e);
		else if (r && r != -ESRCH)
			fill_fail("page %lx: UFFDIO_COPY failed (errno %ld)", (unsigned long)a, -r);
		ahead.at = a + (copied > PAGE ? copied : PAGE);
		nahead += copied / PAGE;
		pump(0);
	}
	ahead.at = ahead.end; /* done (its space and end are kept: the next fault may be where it ended) */
}

/* Is a page of entries [e0, e1) still to come in some space? */
static int pending_in(uint32_t e0, uint32_t e1)
{
	for (int i = 0; i < nsp; i++)
		if (!sp[i].dead && sp[i].left)
			for (uint32_t e = e0; e < e1; e++)
				if (sp[i].pend[e])
					return 1;
	return 0;
}

/*
 * Record r: read in chunks (faults served between them), filled, its
 * checksum checked; with images from disk checked first, so that the
 * fill itself never lets out a page it has not checked.
 */
static void fill_record(uint32_t r)
{
	const struct rec *rc = &fx.recs[r];
	const char *kept = fx.check_first ? check_record(r, 1) : NULL; /* (its data, read whole by the check) */
	struct co_xxh64 h;
	co_rec_sum_init(&h, rc->seq, CO_R_PAGEDATA);
	uint32_t e = rc->e0;
	for (uint64_t at = 0; at < rc->len && !ended; at += CHUNK) {
		uint64_t n = rc->len - at < CHUNK ? rc->len - at : CHUNK;
		pump(0);
		fill_ahead();
		uint32_t e1 = e;
		while (e1 < rc->e1 && (fx.e_off[e1] & ~(PAGE - 1)) < rc->off + at + n)
			e1++;
		/*
		 * A chunk already checked (a migration's target checked every
		 * byte as it came) and with no page still to come is not read:
		 * in a chain, the pages a newer image holds again (a
		 * migration's rounds: a quarter of the memory and more).
		 */
		if (kept || !fx.rec_ok[r] || pending_in(e, e1)) {
			const char *data = kept ? kept + at : buf;
			if (!kept && src_read(rc->stream, rc->off + at, buf, n, 0))
				fill_fail("%s: byte %lu: cannot read page data", fx.src_name[rc->stream],
					  (unsigned long)(rc->off + at));
			if (!fx.rec_ok[r])
				co_xxh64_update(&h, data, n);
			for (int i = 0; i < nsp; i++)
				fill_span(&sp[i], e, e1, data, rc->off + at);
		}
		e = e1;
		/* tests: a fill that takes its time, faults served meanwhile: after each MiB of a record, and its end */
		if (cfg->slow_ms && ((at + n) % (1ULL << 20) == 0 || at + n == rc->len))
			for (uint64_t now = co_now_ns(CLOCK_MONOTONIC), end = now + cfg->slow_ms * 1000000ULL; now < end;
			     now = co_now_ns(CLOCK_MONOTONIC))
				pump((int)((end - now) / 1000000) + 1);
	}
	if (ended || fx.rec_ok[r])
		return;
	fx.rec_used[r] = 1; /* (filled as it was hashed: for the message) */
	nused++;
	record_checked(r, &h, 0);
}

/*
 * The pages the chain holds for regions restored eagerly (an incremental
 * restarted from its chain): written into place through /proc/PID/mem
 * (which writes read-only private pages too, as a debugger does) while
 * the restorer waits, before the program runs.  Their records are checked
 * first, whatever their length: the program does not wait for them yet.
 */
static void write_eager(void)
{
	static char page[PAGE];
	char path[64];
	int fd = -1;
	for (uint32_t k = 0; k < fx.neager; k++) {
		uint32_t e = fx.e_eager[k];
		if (fd < 0) {
			snprintf(path, sizeof(path), "/proc/%d/mem", cfg->host_pid);
			if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0 && errno == ENOENT)
				_exit(CO_FILLER_GONE); /* not the cause: the restore's own failure is */
			if (fd < 0)
				fill_fail("cannot open %s: %s", path, strerror(errno));
		}
		uint64_t off = fx.e_off[e] & ~(PAGE - 1);
		int k = (int)(fx.e_off[e] & (PAGE - 1));
		check_before(e, 1); /* the program has not run yet: its records checked, whatever their length */
		if (src_read(k, off, page, PAGE, 0))
			fill_fail("%s: byte %lu: cannot read the page for %lx", fx.src_name[k], (unsigned long)off,
			     (unsigned long)fx.e_at[e]);
		if (pwrite(fd, page, PAGE, (off_t)fx.e_at[e]) != (ssize_t)PAGE)
			fill_fail("page %lx: cannot write it into place: %s", (unsigned long)fx.e_at[e], strerror(errno));
		note_used(e);
	}
	if (fd >= 0)
		close(fd);
}

/* Tell the coordinator the pages restored eagerly are in place: the restorer may let the program run. */
static void announce(void)
{
	struct co_msg m = { .type = CO_M_REPLY };
	while (send(cfg->held_sock, &m, sizeof(m), MSG_NOSIGNAL) < 0 && errno == EINTR)
		;
}

void co_filler_main(const struct co_filler_cfg *c)
{
	cfg = c;
	src = c->source;
	/* forked in a migration's stop (boost.h): its answer to the hand-over and the restore's faults are the stop's */
	if (co_boosted())
		co_boost();
	buf = aligned_alloc(PAGE, CHUNK);
	if (!buf)
		fill_fail("out of memory");
	co_trace("filler of pid %d: starts", c->pid);
	co_fill_index(c);
	co_trace("filler of pid %d: indexed %u pages of %d images", c->pid, fx.nent, c->nlayers);
	write_eager();
	if (c->announce)
		announce();
	co_trace("filler of pid %d: eager pages written", c->pid);
	new_space(c->uffd, NULL);
	co_trace("filler of pid %d: faults served from now on", c->pid);
	await_release();
	co_trace("filler of pid %d: the group runs, the rest filled from now on (%lu faults served)", c->pid,
		 (unsigned long)nfaults);
	/*
	 * Records in the order of the files: each read once, front to back;
	 * those whose pages went out unchecked first (the restore's faults,
	 * then the program's).
	 */
	for (uint32_t i = 0; i < fx.nrecs && !ended; i++) {
		check_used();
		fill_record(i);
	}
	/* every page is in place; a space with pages still to come would be a bug here: try again, then say so */
	for (int pass = 0; !all_done() && !ended && pass < 2; pass++)
		for (uint32_t i = 0; i < fx.nrecs && !ended; i++)
			fill_record(i);
	if (ended) { /* the group is gone: only what reached it counts */
		check_used();
		co_trace("filler of pid %d: the group ended, what reached it is checked", c->pid);
		_exit(0);
	}
	if (!all_done())
		fill_fail("pages still to come after every record was read twice (a bug in cohort: please report it)");
	for (int i = 0; i < nsp; i++)
		if (!sp[i].dead && read_events(&sp[i]) >= 0 && sp[i].nq)
			serve_queue(&sp[i]);
	co_trace("filler of pid %d: every page in place (%lu faults served, %lu pages brought ahead of them)", c->pid,
		 (unsigned long)nfaults, (unsigned long)nahead);
	_exit(0);
}
