/*
 * seccomp.c - seccomp filter chains (issue 11): what the image keeps and
 * how a restored thread gets its filters back.
 *
 * Nobody but a tracer may read a thread's filters: the coordinator reads
 * them with ptrace (src/cli/seccomp.c, PTRACE_SECCOMP_GET_FILTER, which
 * needs CAP_SYS_ADMIN), checks them against every system call the agent
 * makes, and hands them to the agent with DUMP as ready payloads of
 * CO_R_SECCOMP records (image.h: header, tids, filters), each behind its
 * length (u64) in a memfd.
 *
 * Dump (the agent's image writer): those payloads become records after
 * the threads', as they come.
 * Restore: the restorer keeps each record (co_seccomp_take) and every
 * thread installs its chain, oldest filter first, as its last system call
 * before it jumps back into the program (co_seccomp_install), after
 * no_new_privs is set again (attrs.c), so that nothing the restorer does
 * runs under the program's filters.  A chain every thread had, with the
 * same no_new_privs (CO_SC_ALL), is installed by the main thread alone,
 * last of all, with SECCOMP_FILTER_FLAG_TSYNC: the threads share one chain
 * as they did (a later TSYNC of the program's needs that), the agent's
 * manager thread included.  Other chains are installed by each thread for
 * itself: equal filters, no longer shared.
 */
#include <errno.h>
#include "res.h"
#include "sys.h"
#include "util.h"

#define CO_SECCOMP_SET_MODE_FILTER 1
#define CO_SECCOMP_FILTER_FLAG_TSYNC 1u
#define CO_SECCOMP_FILTER_FLAG_LOG 2u
#define CO_BPF_MAXINSNS 4096

#ifndef SYS_seccomp
#define SYS_seccomp 317
#endif

#ifndef COHORT_RESTORER

/* Copy n bytes at off of fd into the record begun on w: 0, or -errno. */
static long copy_payload(struct co_writer *w, int fd, uint64_t off, uint64_t n)
{
	char buf[4096];
	while (n) {
		long got = co_pread(fd, buf, n < sizeof(buf) ? n : sizeof(buf), (long)off);
		if (got <= 0)
			return got < 0 ? got : -EIO;
		if (co_w_put(w, buf, (uint64_t)got))
			return w->err ? w->err : -EIO;
		off += (uint64_t)got;
		n -= (uint64_t)got;
	}
	return 0;
}

int co_seccomp_dump(struct co_dumpctx *d, int fd)
{
	uint64_t off = 0, len;
	if (fd < 0)
		return 0;
	for (long got; (got = co_pread(fd, &len, sizeof(len), (long)off)) != 0; off += len) {
		if (got != sizeof(len) || len < sizeof(struct co_seccomp) || len > CO_SECCOMP_MAX)
			return DERR(d, "pid %d: the seccomp filters the coordinator sent are damaged (byte %llu)", d->pid,
				    (unsigned long long)off);
		off += sizeof(len);
		long r = co_w_begin(d->w, CO_R_SECCOMP, len, 0) ? -EIO : copy_payload(d->w, fd, off, len);
		if (!r && co_w_end(d->w))
			r = -EIO;
		if (r)
			return DERR(d, "pid %d: writing its seccomp filters failed (errno %ld)", d->pid,
				    d->w->err ? -(long)d->w->err : -r);
	}
	return 0;
}

#else /* the restorer */

static const struct co_seccomp *chains[CO_MAX_THREADS];

/* The filters of chain s, after its tids. */
static const struct co_sfilter *first_filter(const struct co_seccomp *s)
{
	return (const struct co_sfilter *)((const int32_t *)(s + 1) + s->nthreads);
}

static const struct co_sfilter *next_filter(const struct co_sfilter *f)
{
	return (const struct co_sfilter *)((const char *)(f + 1) + (size_t)f->len * 8);
}

/* The record's sizes add up, every filter has instructions the kernel takes: 0 or -1. */
static int chain_ok(const struct co_seccomp *s, uint64_t len)
{
	if (!s->nthreads || s->nthreads > CO_MAX_THREADS || !s->nfilters || s->nfilters > CO_SECCOMP_MAX / 16)
		return -1;
	uint64_t need = sizeof(*s) + (uint64_t)s->nthreads * 4, insns = 0;
	const struct co_sfilter *f = first_filter(s);
	for (uint32_t i = 0; i < s->nfilters; i++, f = next_filter(f)) {
		if (need + sizeof(*f) > len || !f->len || f->len > CO_BPF_MAXINSNS)
			return -1;
		need += sizeof(*f) + (uint64_t)f->len * 8;
		insns += f->len;
	}
	return need == len && insns == s->ninsns ? 0 : -1;
}

int co_seccomp_take(struct co_rstctx *rc, void *buf)
{
	struct co_reader *r = rc->r;
	uint64_t len = r->hdr.len;
	if (len > CO_SECCOMP_MAX || rc->nseccomp >= CO_MAX_THREADS)
		return co_err(rc->err, rc->errlen, "%s: byte %lu: %s", r->name, (unsigned long)r->rec_off,
			      len > CO_SECCOMP_MAX ? "seccomp filters larger than the kernel allows"
						   : "more seccomp filter chains than threads");
	if (co_r_payload(r, buf, len))
		return co_err(rc->err, rc->errlen, "%s", r->err);
	if (chain_ok(buf, len))
		return co_err(rc->err, rc->errlen, "%s: byte %lu: damaged seccomp filters record", r->name,
			      (unsigned long)r->rec_off);
	chains[rc->nseccomp++] = buf;
	return 0;
}

/* The chain thread tid had, or NULL. */
static const struct co_seccomp *chain_of(const struct co_rstctx *rc, int tid)
{
	for (int i = 0; i < rc->nseccomp; i++) {
		const int32_t *t = (const int32_t *)(chains[i] + 1);
		for (uint32_t k = 0; k < chains[i]->nthreads; k++)
			if (t[k] == tid)
				return chains[i];
	}
	return 0;
}

long co_seccomp_install(const struct co_rstctx *rc, int tid, int main_thread)
{
	const struct co_seccomp *s = chain_of(rc, tid);
	int all = s && (s->flags & CO_SC_ALL);
	if (!s || (all && !main_thread))
		return 0;
	const struct co_sfilter *f = first_filter(s);
	for (uint32_t i = 0; i < s->nfilters; i++, f = next_filter(f)) {
		struct {
			uint16_t len;
			const void *filter;
		} prog = { (uint16_t)f->len, f + 1 };
		unsigned flags = (f->flags & CO_SECCOMP_FILTER_FLAG_LOG) | (all ? CO_SECCOMP_FILTER_FLAG_TSYNC : 0);
		long r = co_sys3(SYS_seccomp, CO_SECCOMP_SET_MODE_FILTER, flags, (long)&prog);
		if (r)
			return r > 0 ? -ESRCH : r; /* TSYNC: r is a thread that could not take it */
	}
	return 0;
}

#endif
