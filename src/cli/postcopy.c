/*
 * postcopy.c - `cohort migrate --postcopy`: the stop's page data of lazy
 * regions crosses the link after the group runs at the target
 * (docs/architecture.md, "Migration", *Post-copy*).
 *
 * The source sends the stop's generation with each page stream sparse:
 * every record in place but the payload of the page data of regions the
 * target restores lazily (co_postcopy_plan: the holes).  The target writes
 * those files at their full size, the holes unwritten, and restarts the
 * group lazily: the page fillers (filler.c) index the records, which are
 * all there, and wait for the bytes of the holes.  A hole is cut into
 * pieces of PIECE bytes, the same on both sides; once the group runs the
 * source pushes every piece in file order (co_postcopy_serve), and a
 * piece a fault waits for first (WANT).
 *
 * The stop is written behind (behind.c): the page data of lazy regions,
 * and its checksums, are not in the source's files yet either.  A piece
 * is read from the parked group's memory as it is pushed, and written
 * into its file on the way (piece_bytes); what is left once the target
 * has it all, or once the link is cut, is written then
 * (co_postcopy_fill_rest), and only then is the generation committed.
 *
 * At the target one process owns the stream: the receiver forks it before
 * the restart (co_postcopy_start; the restore itself may fault on a page
 * still at the source), and READY, GO and RUNNING pass through it.  It
 * writes each piece into its file
 * and marks it in a table of pieces shared with the fillers (MAP_SHARED,
 * inherited by the fillers the coordinator forks), then wakes them (a
 * futex on the table's sequence number).  A filler that needs a piece
 * for a fault marks it asked for and wakes the receiver (an eventfd).
 * Every record a filler uses is checked against its checksum as it fills,
 * as for any lazy restart; once every piece is in, the receiver checks
 * each file's digest against the manifest's and says DONE.
 *
 * The connection lost during post-copy cannot be made safe: the group at
 * the target lacks pages only the source has.  The receiver marks the
 * table failed; the first filler that waits says so in one line and
 * fails, which ends the group (coord/lazy.c); the source completes the
 * stop's generation and commits it, to restart from (migrate.c says so).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "behind.h"
#include "postcopy_int.h"
#include "proto.h"
#include "res.h"
#include "util.h"

/* Cut n holes of file f into pieces (out NULL: only count them). */
uint32_t co_pc_cut(const struct co_wire_hole *h, uint32_t n, uint16_t f, struct piece *out)
{
	uint32_t k = 0;
	for (uint32_t i = 0; i < n; i++)
		for (uint64_t at = 0; at < h[i].len; at += PIECE, k++)
			if (out)
				out[k] = (struct piece){ h[i].off + at, (uint32_t)(h[i].len - at < PIECE ? h[i].len - at : PIECE),
							 f, MISSING, 0, 0 };
	return k;
}

/* The piece of file f at offset off among the n pieces p (sorted by file, then offset), or -1. */
long co_pc_find_piece(const struct piece *p, uint32_t n, uint32_t f, uint64_t off)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (p[mid].file < f || (p[mid].file == f && p[mid].off + p[mid].len <= off))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && p[lo].file == f && p[lo].off <= off ? (long)lo : -1;
}

/* ==== the source ==== */

struct sparse {
	char name[128];
	char path[PATH_MAX];
	struct co_wire_hole *holes;
	uint32_t n;
	struct co_behind_runs segs; /* the holes' page data written behind (behind.c) */
};
static int plan_mem = -1;	/* the memory of the process whose image the plan reads (-1: not opened) */
static int plan_pid;		/* ... its pid in the group */
static const char *plan_dir;
static struct sparse *plan;
static uint32_t nplan;
static struct piece *pieces;	/* the plan's, in the order the files were sent */
static uint32_t npieces;
static uint32_t sent_plan[MAX_FILES], nsent; /* the plan's files in the order they were sent */

/* A region of a process image: may its pages be left to post-copy? */
struct region {
	uint64_t start, end;
	uint8_t lazy;		/* the target's restorer will surely take it lazily */
	uint8_t cow;		/* it holds pages shared copy-on-write with the parent at the checkpoint */
	uint8_t anon;		/* private anonymous (a parent's region a child may keep) */
};
struct regions {
	struct region r[CO_MAX_VMAS];
	int n;
	uint32_t streams;	/* the image's page streams */
};
static struct regions regs, parent_regs;

static int region_at(const struct regions *rs, uint64_t a)
{
	int lo = 0, hi = rs->n;
	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		if (rs->r[mid].end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < rs->n && rs->r[lo].start <= a ? lo : -1;
}

/* The regions of the process image at path (and its page streams), those with copy-on-write pages marked. */
static int read_regions(const char *path, struct regions *rs, char *err, size_t errlen)
{
	static struct co_reader r;
	static struct co_vma v;
	static struct co_pagemap pm;
	static struct co_proc proc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)), -1;
	co_r_init(&r, fd, path);
	int e, kinds = 0, bad = 0;
	rs->n = 0;
	rs->streams = 1;
	while (!bad && (e = co_r_next(&r)) == 1 && r.hdr.type != CO_R_END) {
		unsigned t = r.hdr.type;
		if (t == CO_R_PROC && !(bad = co_r_payload(&r, &proc, sizeof(proc))))
			rs->streams = proc.streams < 1 ? 1 : proc.streams;
		else if (t == CO_R_VMA && !(bad = co_r_payload(&r, &v, sizeof(v))) && rs->n < CO_MAX_VMAS) {
			int k = co_vma_lazy_kind(&v);
			rs->r[rs->n++] = (struct region){ v.start, v.end, k && kinds < CO_LAZY_MAX_RANGES, 0,
							  /* (a deleted file's private mapping is restored anonymous) */
							  (v.kind == CO_V_ANON || v.kind == CO_V_DELETED) &&
								  !(v.flags & CO_VF_SHARED) };
			kinds += k;
		} else if (t == CO_R_COWMAP && !(bad = co_r_payload(&r, &pm, sizeof(pm)))) {
			for (uint32_t i = 0; i < pm.nruns && i < CO_MAX_RUNS; i++) {
				int k = region_at(rs, pm.runs[i].addr);
				if (k >= 0)
					rs->r[k].cow = 1;
			}
		} else if (t == CO_R_PAGEDATA) /* (written behind: not there yet) */
			bad = co_r_skip(&r, r.hdr.len) || co_r_finish(&r);
		else if (t != CO_R_PROC && t != CO_R_VMA && t != CO_R_COWMAP)
			bad = co_r_finish(&r);
	}
	close(fd);
	if (bad || e < 0)
		return snprintf(err, errlen, "%s", r.err[0] ? r.err : "damaged image"), -1;
	return 0;
}

/* Do the parent's private anonymous regions cover [lo, hi) wholly? */
static int parent_covers(uint64_t lo, uint64_t hi)
{
	uint64_t covered = 0;
	for (int i = 0; i < parent_regs.n; i++) {
		const struct region *p = &parent_regs.r[i];
		if (p->anon && p->end > lo && p->start < hi)
			covered += (p->end < hi ? p->end : hi) - (p->start > lo ? p->start : lo);
	}
	return covered == hi - lo;
}

/*
 * A child the target's restorer forks from its restored parent may keep
 * a region from the parent's memory (mem.c, find_kept: it holds pages
 * shared copy-on-write at the checkpoint, and the parent's private
 * anonymous memory covers it) and read its pages eagerly: such a region
 * is sent whole.  parent: the parent's image, or NULL (init makes it).
 */
static int drop_kept(const char *parent, char *err, size_t errlen)
{
	int any = 0;
	for (int i = 0; i < regs.n; i++)
		any |= regs.r[i].cow && regs.r[i].lazy;
	if (!any || !parent)
		return 0;
	if (read_regions(parent, &parent_regs, err, errlen))
		return -1;
	for (int i = 0; i < regs.n; i++)
		if (regs.r[i].cow && parent_covers(regs.r[i].start, regs.r[i].end))
			regs.r[i].lazy = 0;
	return 0;
}

static int add_hole(struct sparse *s, uint64_t off, uint64_t len, uint32_t *cap)
{
	if (s->n && s->holes[s->n - 1].off + s->holes[s->n - 1].len == off) {
		s->holes[s->n - 1].len += len;
		return 0;
	}
	if (s->n == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		struct co_wire_hole *h = realloc(s->holes, *cap * sizeof(*h));
		if (!h)
			return -1;
		s->holes = h;
	}
	s->holes[s->n++] = (struct co_wire_hole){ off, len };
	return 0;
}

/* The memory of the process whose image the plan reads (its page data written behind is read there). */
static int mem_fd(char *err, size_t errlen)
{
	int host;
	if (plan_mem < 0 && (host = co_behind_host(plan_dir, plan_pid, err, errlen)) > 0)
		plan_mem = co_behind_mem(host, err, errlen);
	return plan_mem;
}

static struct co_postcopy_stats plan_stats; /* what the plan wrote behind before the stop was sent */

/* A page data record written behind (payload at off, record seq): from memory, now. */
static int write_now(int fd, const struct co_pagemap *pm, uint64_t off, uint64_t seq, char *err, size_t errlen)
{
	int mem = mem_fd(err, errlen);
	return mem < 0 ? -1 : co_behind_record(mem, fd, pm->runs, pm->nruns, off, seq, &plan_stats.behind, err, errlen);
}

/* Is each run of pm in a region the target takes lazily? */
static int all_lazy(const struct co_pagemap *pm)
{
	for (uint32_t i = 0; i < pm->nruns; i++) {
		int k = region_at(&regs, pm->runs[i].addr);
		if (k < 0 || !regs.r[k].lazy || pm->runs[i].addr + pm->runs[i].npages * 4096 > regs.r[k].end)
			return 0;
	}
	return 1;
}


/*
 * The holes of one page stream: the payload of its page data in lazy
 * regions.  Page data written behind (CO_RF_BEHIND) in a hole is noted
 * (s->segs: piece_bytes reads it from memory); elsewhere (a region the
 * target restores eagerly after all) it is written now, before the file
 * is sent, as it is for a file sent whole.
 */
static int stream_holes(struct sparse *s, char *err, size_t errlen)
{
	static struct co_reader r;
	static struct co_pagemap pm;
	uint32_t cap = 0;
	int fd = open(s->path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return snprintf(err, errlen, "cannot open %s: %s", s->path, strerror(errno)), -1;
	co_r_init(&r, fd, s->path);
	int e, bad = 0;
	while (!bad && (e = co_r_next(&r)) == 1 && r.hdr.type != CO_R_END) {
		if (r.hdr.type != CO_R_PAGEMAP) {
			bad = co_r_finish(&r);
			continue;
		}
		if (co_r_payload(&r, &pm, sizeof(pm)) || pm.nruns > CO_MAX_RUNS || co_r_next(&r) != 1 ||
		    r.hdr.type != CO_R_PAGEDATA) {
			bad = 1;
			break;
		}
		uint64_t at = r.off;
		uint32_t r0 = s->segs.n;
		int behind = (r.hdr.flags & CO_RF_BEHIND) && r.hdr.len; /* (its payload and checksum are not there) */
		if (behind && !all_lazy(&pm)) /* (one region's: the target takes it eagerly after all) */
			bad = write_now(fd, &pm, r.off, r.hdr.seq, err, errlen);
		else
			for (uint32_t i = 0; i < pm.nruns && !bad; i++) {
				int k = region_at(&regs, pm.runs[i].addr);
				uint64_t len = pm.runs[i].npages * 4096, a = pm.runs[i].addr;
				if (k >= 0 && regs.r[k].lazy && a + len <= regs.r[k].end)
					bad = add_hole(s, at, len, &cap) ||
					      (behind && (mem_fd(err, errlen) < 0 || co_behind_add(&s->segs, at, len, a)));
				at += len;
			}
		/* its checksum follows its payload: a hole too, written once the record's last bytes go */
		if (!bad && behind && all_lazy(&pm))
			bad = add_hole(s, r.off + r.hdr.len, 8, &cap) ||
			      co_behind_add_rec(&s->segs, r.off, r.hdr.len, r.hdr.seq, r0);
		bad = bad || co_r_skip(&r, r.hdr.len) || co_r_finish(&r);
	}
	if (!bad && s->n > CO_WIRE_MAX_HOLES) { /* more than a hole list carries: sent whole */
		s->segs.mem = plan_mem;
		bad = co_behind_write_all(&s->segs, fd, &plan_stats.behind, err, errlen);
		free(s->holes);
		s->holes = NULL;
		s->n = s->segs.n = s->segs.nrec = 0;
	}
	close(fd);
	if (bad && err[0])
		return -1;
	if (bad || e < 0)
		return snprintf(err, errlen, "%s", r.err[0] ? r.err : "cannot list the holes of a page stream"), -1;
	s->segs.mem = s->segs.n ? plan_mem : -1;
	return 0;
}

int co_postcopy_plan(const char *dir, char *err, size_t errlen)
{
	static struct co_manifest m;
	static struct co_mproc procs[CO_TABLE_SLOTS];
	int n;
	if (co_read_manifest(dir, &m, procs, CO_TABLE_SLOTS, &n, err, errlen))
		return -1;
	if (!plan && !(plan = calloc(MAX_FILES, sizeof(*plan))))
		return snprintf(err, errlen, "out of memory"), -1;
	nplan = 0;
	for (int i = 0; i < n; i++) {
		if (procs[i].flags & (CO_MP_ZOMBIE | CO_MP_COMPRESSED))
			continue;
		char image[PATH_MAX], parent[PATH_MAX];
		int pk = -1;
		for (int j = 0; j < n && pk < 0; j++)
			if (procs[j].pid == procs[i].ppid && !(procs[j].flags & CO_MP_ZOMBIE) && j != i)
				pk = j;
		snprintf(image, sizeof(image), "%s/%s", dir, procs[i].image);
		if (pk >= 0)
			snprintf(parent, sizeof(parent), "%s/%s", dir, procs[pk].image);
		if (read_regions(image, &regs, err, errlen) || drop_kept(pk >= 0 ? parent : NULL, err, errlen))
			return -1;
		plan_mem = -1; /* opened at its first page data written behind (kept open: piece_bytes reads it) */
		plan_pid = procs[i].pid;
		plan_dir = dir;
		for (uint32_t k = 0; k < regs.streams && k < CO_STREAMS && nplan < MAX_FILES; k++) {
			struct sparse *s = &plan[nplan];
			memset(s, 0, sizeof(*s));
			err[0] = 0;
			co_stream_path(s->path, sizeof(s->path), image, (int)k);
			snprintf(s->name, sizeof(s->name), "%s", strrchr(s->path, '/') + 1);
			if (stream_holes(s, err, errlen))
				return -1;
			nplan += s->n > 0;
		}
	}
	/* the pieces, in the order the files are sent: pushed in that order, each asked for by (file, offset) */
	uint32_t np = 0;
	for (uint32_t f = 0; f < nplan; f++)
		np += co_pc_cut(plan[f].holes, plan[f].n, 0, NULL);
	free(pieces);
	if (!(pieces = calloc(np ? np : 1, sizeof(*pieces))))
		return snprintf(err, errlen, "out of memory"), -1;
	npieces = nsent = 0;
	co_trace("migrate: post-copy plan: %u files sparse, %llu bytes written behind before they are sent", nplan,
		 (unsigned long long)plan_stats.behind);
	return 0;
}

const struct co_wire_hole *co_postcopy_holes(const char *name, uint32_t *n)
{
	for (uint32_t i = 0; i < nplan; i++)
		if (!strcmp(plan[i].name, name)) {
			/* the target numbers the sparse files as they come: so do we */
			sent_plan[nsent] = i;
			npieces += co_pc_cut(plan[i].holes, plan[i].n, (uint16_t)nsent++, pieces + npieces);
			*n = plan[i].n;
			return plan[i].holes;
		}
	return NULL;
}

/*
 * The bytes of piece p into buf: from its file, and where they were
 * written behind and are not in yet, from the parked process's memory,
 * written into the file on the way (then p is written).
 */
static int piece_bytes(struct piece *p, char *buf, struct co_postcopy_stats *st, char *err, size_t errlen)
{
	static int fd = -1, fd_of = -1;
	static char before[PIECE];
	struct sparse *s = &plan[sent_plan[p->file]];
	if (fd_of != p->file) {
		if (fd >= 0)
			close(fd);
		fd_of = p->file;
		if ((fd = open(s->path, O_RDWR | O_CLOEXEC)) < 0)
			return snprintf(err, errlen, "cannot open %s: %s", s->path, strerror(errno)), -1;
	}
	/* a record's checksum is hashed from its file: the record's pieces before it go in first */
	long c = p->written ? -1 : co_behind_rec_at(&s->segs, p->off, p->len);
	for (long k = c < 0 ? -1 : co_pc_find_piece(pieces, npieces, p->file, s->segs.rec[c].off); k >= 0 && &pieces[k] < p; k++)
		if (!pieces[k].written && piece_bytes(&pieces[k], before, st, err, errlen))
			return -1;
	if (pread(fd, buf, p->len, (off_t)p->off) != (ssize_t)p->len)
		return snprintf(err, errlen, "cannot read %s at byte %llu", s->path, (unsigned long long)p->off), -1;
	if (!p->written && co_behind_overlay(&s->segs, fd, p->off, buf, p->len, &st->behind, err, errlen))
		return -1;
	p->written = 1;
	return 0;
}

/* Piece p of the plan onto the stream: PUSH, then its bytes. */
static int push(struct co_wire *w, struct piece *p, struct co_postcopy_stats *st, char *err, size_t errlen)
{
	static char buf[PIECE];
	if (piece_bytes(p, buf, st, err, errlen))
		return -1;
	if (co_wire_send(w, CO_W_PUSH, p->file, (int64_t)p->off, NULL))
		return snprintf(err, errlen, "%s: the connection was lost", w->peer), -1;
	co_w_rec(&w->w, CO_R_WIRE_DATA, buf, p->len);
	if (co_w_flush(&w->w))
		return snprintf(err, errlen, "sending to %s: %s", w->peer, strerror(-w->w.err)), -1;
	st->bytes += p->len;
	return 0;
}

/*
 * The push order: file order, but on from the last piece a fault asked
 * for.  A program that walks its memory (one that writes everywhere, the
 * case where the rounds cannot converge) goes on from its fault, so the
 * pushes run ahead of it there instead of where it is not, and it waits
 * on a WANT's round trip again only once it overtakes them.  The pieces
 * passed over are pushed after the last one.
 */
static uint32_t next;		/* the next piece to push, once it is not sent */
static uint32_t first;		/* none before it is left to push */

static uint32_t next_piece(void)
{
	while (next < npieces && pieces[next].sent)
		next++;
	if (next == npieces) {
		while (first < npieces && pieces[first].sent)
			first++;
		next = first;
	}
	return next;
}

/* The next message from the target into m, a WANT answered at once (then 2); -1 with err. */
static int answer(struct co_wire *w, struct co_wire_msg *m, struct co_postcopy_stats *st, char *err, size_t errlen)
{
	if (co_wire_recv(w, m, 0, err, errlen))
		return -1;
	if (m->op != CO_W_WANT)
		return 0;
	long k = m->a >= 0 ? co_pc_find_piece(pieces, npieces, (uint32_t)m->a, (uint64_t)m->b) : -1;
	if (k < 0)
		return snprintf(err, errlen, "%s asked for something this migration does not hold", w->peer), -1;
	st->requests++;
	next = (uint32_t)k + 1; /* the program goes on from there, most likely */
	if (pieces[k].sent)
		return 2; /* pushed already, and on its way: the stream is in order, sending it twice only delays the next */
	st->requests_behind += !pieces[k].written; /* (read from the parked group's memory, then) */
	pieces[k].sent = 1;
	return push(w, &pieces[k], st, err, errlen) ? -1 : 2;
}

/*
 * Little unsent data on the socket at a time: a WANT's answer queues
 * behind no more of the background push than this.
 */
#define LOW_WATER (4 * PIECE)

/*
 * One step: a message from the target (a WANT answered: 2; any other: 0,
 * in m), else, once the group runs there (serving) and the socket has
 * room, the next piece pushed (2).  Until then only WANTs are answered:
 * the restore there may fault on a page still here.
 */
static int serving;

static int step(struct co_wire *w, struct co_wire_msg *m, struct co_postcopy_stats *st, char *err, size_t errlen)
{
	static int low;
	if (!low++) {
		int lw = LOW_WATER;
		setsockopt(w->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lw, sizeof(lw));
	}
	uint32_t k = next_piece();
	struct pollfd pf = { w->fd, (short)(POLLIN | (serving && k < npieces ? POLLOUT : 0)), 0 };
	if (co_wire_readable(w))
		return answer(w, m, st, err, errlen);
	int n = poll(&pf, 1, QUIET_MS);
	if (n < 0 && errno == EINTR)
		return 2;
	if (n <= 0)
		return snprintf(err, errlen, "%s: %s", w->peer, n ? strerror(errno) : "no word for 120 s"), -1;
	if (pf.revents & (POLLIN | POLLERR | POLLHUP))
		return answer(w, m, st, err, errlen);
	pieces[k].sent = 1;
	return push(w, &pieces[k], st, err, errlen) ? -1 : 2;
}

int co_postcopy_until(struct co_wire *w, unsigned op, struct co_postcopy_stats *st, char *err, size_t errlen)
{
	static struct co_wire_msg m;
	int r;
	while ((r = step(w, &m, st, err, errlen)) == 2)
		;
	if (r < 0)
		return -1;
	if (m.op != op)
		return snprintf(err, errlen, "%s sent something else where %s was due", w->peer,
				op == CO_W_READY ? "READY" : op == CO_W_RUNNING ? "RUNNING" : "DONE"), -1;
	return 0;
}

int co_postcopy_serve(struct co_wire *w, struct co_postcopy_stats *st, char *err, size_t errlen)
{
	co_crash_point("postcopy"); /* tests: migrate killed (or held, for the link to be cut) once the group runs there */
	serving = 1;
	if (!nsent)
		return 0; /* nothing was left out: the target restarted the group as any migration's */
	/* the rest in file order, a WANT answered before the next piece; then DONE */
	return co_postcopy_until(w, CO_W_DONE, st, err, errlen);
}

int co_postcopy_fill_rest(struct co_postcopy_stats *st, char *err, size_t errlen)
{
	static char buf[PIECE];
	st->behind += plan_stats.behind;
	plan_stats.behind = 0;
	for (uint32_t k = 0; k < npieces; k++)
		if (!pieces[k].written && plan[sent_plan[pieces[k].file]].segs.n && piece_bytes(&pieces[k], buf, st, err, errlen))
			return -1;
	return 0;
}

