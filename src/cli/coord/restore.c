/*
 * coord/restore.c - a restart while its processes come back: the progress
 * line, what init and the restorers report (report.h), and the end of a
 * restore that fails, stops moving or is interrupted.
 *
 * A restart that cannot finish ends within a bounded time with one line
 * ("cohort: restore failed: pid N, STAGE: why") and leaves nothing behind:
 * the coordinator kills init, which takes every process of the namespace
 * with it (the feeders of compressed images are killed when init has
 * ended, loop.c).  The line is the first failure a restorer reports (the
 * others, which the group's end makes fail too, are not printed), or the
 * coordinator's own finding: a process of the manifest that ended without
 * saying why, or a restore in which nothing moved for STALL_NS (but for
 * the test-only COHORT_FAULT=hold:..., report.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "report.h"
#include "res.h"
#include "coord.h"

struct co_progress restore_pr = { .fd = -1 };

/*
 * Nothing moved for this long (no report, no process back, no byte of an
 * image read): the restore is stuck.  Each stage is short or reads the
 * image as it goes (the bytes move), and a process waiting for another
 * (its thread, its parent's group) waits at most two seconds.
 */
#define STALL_NS (5 * 1000000000ULL)

static const struct co_mproc *procs;	/* the manifest's */
static int nprocs;
static int stage_of[CO_TABLE_SLOTS];	/* the last stage procs[k] reported, or -1 */
static int init_stage = -1;
static int ended;			/* 0, or the status the restart ends with: 70 failed, 128+N interrupted */
static uint64_t nreports;		/* records read: each one is progress */

static uint64_t total;			/* bytes of the images to read */
static int compressed;			/* they are read by the feeders (zimage.c) */
static uint64_t next_ns;		/* the progress line's next update */
static uint64_t watch_ns, moved_ns, seen_reports, seen_bytes;
static int seen_expect;

/* The restore of the processes of the manifest begins. */
void restore_begin(const struct co_mproc *p, int n)
{
	procs = p;
	nprocs = n;
	total = 0;
	for (int i = 0; i < n; i++) {
		stage_of[i] = -1;
		if (!(p[i].flags & CO_MP_ZOMBIE)) {
			total += p[i].bytes;
			compressed |= (p[i].flags & CO_MP_COMPRESSED) != 0;
		}
	}
	co_progress_set(&restore_pr, "restoring", 0, total);
	moved_ns = co_now_ns(CLOCK_MONOTONIC);
	seen_expect = G.expect;
	/*
	 * The first look at /proc (restored_bytes, check_ended: each a scan
	 * of every process here, until the restorers have registered) only
	 * once there can be something to see: on a migration's target one
	 * took ~2.5 ms of a core beside init and the restorers of the stop.
	 */
	watch_ns = next_ns = moved_ns + PROGRESS_NS;
}

/*
 * Bytes of the images read so far.  Each restorer reads its image with
 * read(2), once, front to back, so the `rchar` of its /proc/PID/io is how
 * far it got (the restorers it forks count their own; the few small reads
 * besides, its plan and /proc, do not matter).  But it reads a run of
 * pages straight to its place with one read(2) of up to 1 GiB, and rchar
 * (like the descriptor's position in fdinfo) moves only when that read
 * returns: meanwhile its resident memory (RssAnon), which the read fills
 * page by page, tells how far it got.  A process counts the larger of the
 * two.  Compressed images are read by the coordinator's feeder children
 * instead, the restorers reading decompressed bytes (which the manifest's
 * sizes do not count) from FIFOs: then it is what the feeders have read.
 */
static uint64_t restored_bytes(void)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	if (compressed)
		return co_fifos_bytes();
	uint64_t sum = 0;
	int n = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < n; i++) {
		char path[64], buf[4096];
		uint64_t got = co_proc_io(ps[i].host, "rchar");
		long rss = -1;
		snprintf(path, sizeof(path), "/proc/%d/status", ps[i].host);
		if (co_read_small(path, buf, sizeof(buf)) > 0)
			rss = co_status_field(buf, "RssAnon");
		sum += rss > 0 && (uint64_t)rss * 1024 > got ? (uint64_t)rss * 1024 : got;
	}
	return sum;
}

/* From the loop: while processes are being restored, the line is brought up to date; 1 while it goes on. */
int restore_progress(void)
{
	if (restore_pr.fd < 0 || G.expect <= 0)
		return 0;
	uint64_t now = co_now_ns(CLOCK_MONOTONIC);
	if (now >= next_ns) {
		next_ns = now + PROGRESS_NS;
		co_progress_set(&restore_pr, "restoring", restored_bytes(), total);
	}
	return 1;
}

/* The restart fails: its one line, and the group ends (init killed; loop.c sees it end). */
static void __attribute__((format(printf, 1, 2))) restore_fail(const char *fmt, ...)
{
	if (ended)
		return;
	ended = 70; /* as init ends when the restore of a process of its own fails */
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	co_progress_end(&restore_pr);
	fprintf(stderr, "cohort: restore failed: %s\n", line);
	kill(G.init_pid, SIGKILL);
}

static int slot_of(int pid)
{
	for (int k = 0; k < nprocs; k++)
		if (procs[k].pid == pid)
			return k;
	return -1;
}

/* What the restorers said since the last look: stages, and the first failure (the restart's line). */
static void read_reports(void)
{
	static char buf[2 * (sizeof(struct co_rpt) + CO_RPT_MAX)];
	static size_t have;
	while (G.report_fd >= 0) {
		ssize_t r = read(G.report_fd, buf + have, sizeof(buf) - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) { /* every restorer is done with it, back or gone */
			close(G.report_fd);
			G.report_fd = -1;
		}
		if (r <= 0)
			break;
		have += (size_t)r;
		struct co_rpt h;
		while (have >= sizeof(h)) {
			memcpy(&h, buf, sizeof(h));
			if (h.len > CO_RPT_MAX) { /* not ours: what follows cannot be framed */
				have = 0;
				break;
			}
			size_t len = sizeof(h) + h.len;
			if (have < len)
				break;
			nreports++;
			int k = slot_of(h.pid);
			if (h.kind == CO_RPT_STAGE && h.stage < CO_RS_COUNT && h.stage != CO_RS_THREAD) {
				co_trace_at(h.at_ns, "restore: pid %d %s", h.pid, co_rstage_text(h.stage));
				if (h.pid == 1)
					init_stage = h.stage;
				else if (k >= 0)
					stage_of[k] = h.stage;
			} else if (h.kind == CO_RPT_FAILED && h.len) {
				restore_fail("%.*s", (int)h.len, buf + sizeof(h));
			} else if (h.kind == CO_RPT_FAILED) { /* never an empty "restore failed: " */
				restore_fail("pid %d, %s: failed without saying why (a bug in cohort: please report it)",
					     h.pid, co_rstage_text(h.stage));
			}
			memmove(buf, buf + len, have - len);
			have -= len;
		}
	}
}

static const char *stage_text(int k)
{
	return stage_of[k] < 0 ? "before it started" : co_rstage_text((unsigned)stage_of[k]);
}

/*
 * A process of the manifest (not one that was a zombie) that ended before
 * it came back, unseen by init: the child of a restored process, which
 * waits for the release and never reaps it.  One that failed has said why
 * (on the pipe before it ended); one killed by a signal has not.
 */
static void check_ended(void)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int n = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < n; i++) {
		if (ps[i].ids.state != 'Z' || ps[i].member >= 0)
			continue;
		int k = slot_of(ps[i].ids.pid);
		if (k >= 0 && !(procs[k].flags & CO_MP_ZOMBIE)) {
			read_reports(); /* what it said before it ended, since the last look */
			restore_fail("pid %d, %s: ended before it was restored", procs[k].pid, stage_text(k));
			return;
		}
	}
}

/* Whether pid has come back: registered from its image, waiting for the release. */
static int is_back(int pid)
{
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].restored && G.c[i].pid == pid)
			return 1;
	return 0;
}

/* Nothing moved for STALL_NS: name the process that holds the restore up, and end it. */
static void stalled(void)
{
	int s = (int)(STALL_NS / 1000000000ULL), first = -1;
	for (int k = 0; k < nprocs; k++) {
		if ((procs[k].flags & CO_MP_ZOMBIE) || is_back(procs[k].pid))
			continue;
		if (stage_of[k] >= 0) {
			restore_fail("pid %d, %s: no progress for %d s", procs[k].pid, stage_text(k), s);
			return;
		}
		if (first < 0)
			first = k;
	}
	if (init_stage == CO_RS_SHARED && first >= 0 && stage_of[first] < 0)
		restore_fail("init, %s: no progress for %d s", co_rstage_text(CO_RS_SHARED), s);
	else if (first >= 0)
		restore_fail("pid %d, %s: no progress for %d s", procs[first].pid, stage_text(first), s);
	else
		restore_fail("every process is back, but the restart did not go on for %d s", s);
}

/* From the loop while processes are still to come back: reports, ended processes, a stuck restore. */
void restore_watch(void)
{
	if (ended || G.expect <= 0)
		return;
	read_reports();
	if (ended)
		return;
	uint64_t now = co_now_ns(CLOCK_MONOTONIC);
	if (now < watch_ns)
		return;
	watch_ns = now + 500000000ULL;
	check_ended();
	if (ended)
		return;
	uint64_t bytes = restored_bytes();
	if (nreports != seen_reports || G.expect != seen_expect || bytes != seen_bytes) {
		seen_reports = nreports;
		seen_expect = G.expect;
		seen_bytes = bytes;
		moved_ns = now;
	} else if (now - moved_ns >= STALL_NS && !G.fault_hold) {
		stalled();
	}
}

/*
 * A signal that `cohort restart` forwards (SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT) came while the program is not back yet: there is nobody to
 * forward it to, and the one who sent it wants the restart to stop.  The
 * group ends; the generation is as it was.
 */
void restore_interrupt(int sig)
{
	if (ended)
		return;
	ended = 128 + sig;
	co_progress_end(&restore_pr);
	fprintf(stderr, "cohort: restart of '%s' interrupted by SIG%s before every process was back; generation %llu "
		"is unchanged\n", G.name, sigabbrev_np(sig), (unsigned long long)G.restored_from);
	kill(G.init_pid, SIGKILL);
}

/*
 * Every process is back, and the restart will not let them run (a
 * migration's target whose source did not say go): the group ends before
 * any of its code has run here; the caller has said why.
 */
void restore_abandon(void)
{
	if (ended)
		return;
	ended = 70;
	kill(G.init_pid, SIGKILL);
}

/* init has ended (not reaped yet) while processes were still to come back: what they said, or why. */
void restore_over(void)
{
	if (G.expect <= 0)
		return;
	read_reports();
	restore_fail("the group's init ended before every process was back");
}

/* Every process is back: the watch is over. */
void restore_released(void)
{
	if (G.report_fd >= 0)
		close(G.report_fd);
	G.report_fd = -1;
}

/* The status the restart ends with instead of the program's: 0, or an exit code. */
int restore_ended(void)
{
	return ended;
}

/* The group has ended, and a filler found that a page it had let out was damaged: the restart failed. */
void restore_lazy_damaged(void)
{
	if (!ended)
		ended = 70;
}

/*
 * The page filler of pid (restart --lazy, lazy.c) failed or died: the
 * program must not run on with pages that are not its own.  why: the
 * line, or empty when the filler has printed it.
 */
void restore_lazy_failed(int pid, const char *why)
{
	/* a restorer's failure ends the group, and with it the filler: the cause, said first */
	read_reports();
	if (ended)
		return;
	ended = 70;
	co_progress_end(&restore_pr);
	if (why && why[0])
		fprintf(stderr, "cohort: lazy restore of pid %d failed: %s; the group is ended\n", pid, why);
	kill(G.init_pid, SIGKILL);
}

