/*
 * records.c - every record type of the image format, declared once: the
 * shortest payload it may have (older formats wrote some shorter: what
 * is missing reads as 0), which kind of kernel object owns it (the
 * records of shared.img), and how `cohort inspect` describes it, in text
 * and in its JSON ("detail").  Names are co_rec_name()'s (image.c, which
 * the agent and the restorer use too).  docs/image-format.md describes
 * each in prose.
 */
#include <stddef.h>
#include <stdio.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "util.h"

typedef void describe_fn(unsigned type, const void *p, uint64_t len, char *out, size_t n);

static describe_fn d_head, d_proc, d_thread, d_timer, d_semadj, d_aio, d_lock, d_owner, d_dnotify, d_fd, d_vma, d_pagemap, d_bytes,
	d_end, d_seccomp, d_manifest, d_mfile, d_mproc, d_link;

static const struct rec {
	unsigned type;
	uint64_t minlen;
	const struct co_kind_ops *ops;	/* the kind that owns it (shared.img), or NULL */
	describe_fn *describe;		/* NULL: its kind's */
} recs[] = {
	{ CO_R_HEAD, offsetof(struct co_head, bind), NULL, d_head },	/* bind: format 7 */
	{ CO_R_PROC, offsetof(struct co_proc, creds), NULL, d_proc },	/* creds: format 5 */
	{ CO_R_THREAD, offsetof(struct co_thread, comm), NULL, d_thread },
	{ CO_R_FD, offsetof(struct co_fd, path) + 1, NULL, d_fd },
	{ CO_R_FILEDATA, 0, NULL, d_bytes },
	{ CO_R_VMA, offsetof(struct co_vma, path) + 1, NULL, d_vma },
	{ CO_R_PAGEMAP, offsetof(struct co_pagemap, runs), NULL, d_pagemap },
	{ CO_R_PAGEDATA, 0, NULL, d_bytes },
	{ CO_R_END, sizeof(struct co_end), NULL, d_end },
	{ CO_R_PARENTMAP, offsetof(struct co_pagemap, runs), NULL, d_pagemap },
	{ CO_R_TIMER, sizeof(struct co_timer), NULL, d_timer },
	{ CO_R_SEMUNDO, sizeof(struct co_semadj), NULL, d_semadj },
	{ CO_R_AIO, sizeof(struct co_aio), NULL, d_aio },
	{ CO_R_LOCK, sizeof(struct co_lock), NULL, d_lock },
	{ CO_R_FDOWNER, sizeof(struct co_fdowner), NULL, d_owner },
	{ CO_R_DNOTIFY, sizeof(struct co_dnotify), NULL, d_dnotify },
	{ CO_R_COWMAP, offsetof(struct co_pagemap, runs), NULL, d_pagemap },
	{ CO_R_SECCOMP, sizeof(struct co_seccomp), NULL, d_seccomp },
	{ CO_R_MANIFEST, offsetof(struct co_manifest, tty_pgid), NULL, d_manifest },	/* tty: later */
	{ CO_R_MPROC, offsetof(struct co_mproc, creds), NULL, d_mproc },		/* creds: format 5 */
	{ CO_R_MFILE, sizeof(struct co_mfile), NULL, d_mfile },
	{ CO_R_SHM, offsetof(struct co_shm, sealing), &co_shm_ops, NULL },	/* seals: format 7; known on: 8 */
	{ CO_R_SHMDATA, sizeof(uint64_t), &co_shm_ops, NULL },
	{ CO_R_PIPE, sizeof(struct co_pipe), &co_pipe_ops, NULL },
	{ CO_R_PIPEDATA, sizeof(struct co_pipedata), &co_pipe_ops, NULL },
	{ CO_R_SFILE, offsetof(struct co_sfile, path) + 1, &co_file_ops, NULL },
	{ CO_R_FCOPY, offsetof(struct co_fcopy, path) + 1, &co_file_ops, NULL },
	{ CO_R_FTIMES, sizeof(struct co_ftimes), &co_file_ops, NULL },
	{ CO_R_SLINK, sizeof(struct co_slink), NULL, d_link },
	{ CO_R_SOBJ, offsetof(struct co_sobj, d), NULL, NULL },	/* d: format 3; owner: o.kind */
	{ CO_R_EPITEM, offsetof(struct co_epitem, tfd), &co_epoll_ops, NULL },	/* tfd on: later in format 7 */
	{ CO_R_SOCKDATA, sizeof(uint64_t), &co_unix_ops, NULL },
	{ CO_R_GHOST, offsetof(struct co_ghost, path) + 1, &co_ghost_ops, NULL },
	{ CO_R_GHOSTDATA, sizeof(uint64_t), &co_ghost_ops, NULL },
	{ CO_R_IWATCH, offsetof(struct co_iwatch, path) + 1, &co_inotify_ops, NULL },
	{ CO_R_IEVENTS, sizeof(uint64_t), &co_inotify_ops, NULL },
	{ CO_R_SYSVSEM, sizeof(struct co_sysv), &co_sysv_ops, NULL },
	{ CO_R_SYSVMSG, sizeof(struct co_sysv), &co_sysv_ops, NULL },
	{ CO_R_SYSVSHM, sizeof(struct co_sysv), &co_sysv_ops, NULL },
	{ CO_R_USOCK, offsetof(struct co_usock, opts), &co_unix_ops, NULL },	/* opts: later in format 7 */
	{ CO_R_USMSG, sizeof(struct co_usmsg), &co_unix_ops, NULL },
	{ CO_R_PTY, sizeof(struct co_pty), &co_pty_ops, NULL },
	{ CO_R_PTYDATA, sizeof(struct co_ptydata), &co_pty_ops, NULL },
	{ CO_R_FMARK, offsetof(struct co_fmark, path) + 1, &co_fanotify_ops, NULL },
};

static const struct rec *rec_of(unsigned t)
{
	for (size_t i = 0; i < CO_ARRAY_LEN(recs); i++)
		if (recs[i].type == t)
			return &recs[i];
	return NULL;
}

uint64_t co_rec_minlen(unsigned t)
{
	const struct rec *r = rec_of(t);
	return r ? r->minlen : 0;
}

const struct co_kind_ops *co_rec_ops(unsigned t, const void *p)
{
	if (t == CO_R_SOBJ)
		return co_kind_ops(((const struct co_sobj *)p)->kind);
	const struct rec *r = rec_of(t);
	return r ? r->ops : NULL;
}

void co_rec_describe(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	const struct rec *r = rec_of(t);
	const struct co_kind_ops *ops = co_rec_ops(t, p);
	out[0] = 0;
	if (r && len < r->minlen)
		snprintf(out, n, "%llu bytes: too short for a %s record", (unsigned long long)len, co_rec_name(t));
	else if (r && r->describe)
		r->describe(t, p, len, out, n);
	else if (ops && ops->describe)
		ops->describe(t, p, len, out, n);
	else if (t == CO_R_SOBJ)
		snprintf(out, n, "%s %llu", co_obj_name(((const struct co_sobj *)p)->kind),
			 (unsigned long long)((const struct co_sobj *)p)->id);
}

/* ---- the records that belong to no kind ---- */

static void d_head(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_head *h = p;
	char bind[128] = "";
	if (h->version >= 7)
		snprintf(bind, sizeof(bind), " of group %llx generation %llu pid %d stream %u",
			 (unsigned long long)h->bind.group_id, (unsigned long long)h->bind.generation, h->bind.pid,
			 h->bind.stream);
	snprintf(out, n, "format %u, %s%s", h->version,
		 h->kind == CO_KIND_PROCESS ? "process image"
		 : h->kind == CO_KIND_PAGES ? "page stream"
		 : h->kind == CO_KIND_SHARED ? "shared objects"
					      : "manifest", bind);
}

/* " membarrier private-expedited,...": the membarrier commands a process registered, or "" */
static const char *membarrier_names(uint32_t mask, char *buf, size_t n)
{
	static const char *const names[] = { [2] = "global-expedited", [4] = "private-expedited",
					     [6] = "private-expedited-sync-core", [8] = "private-expedited-rseq" };
	size_t len = 0;
	buf[0] = 0;
	for (unsigned bit = 0; bit < 32 && len + 40 < n; bit++)
		if (mask >> bit & 1)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "," : " membarrier ",
						bit < CO_ARRAY_LEN(names) && names[bit] ? names[bit] : "?");
	return buf;
}

/* A /proc/PID/cgroup text as one line ("0::/a,1:cpu:/b"), in a buffer of its own per call (two). */
static const char *one_line(const char *text, size_t max)
{
	static char buf[2][2048 + 1];
	static int k;
	char *o = buf[k ^= 1];
	size_t i = 0;
	for (; i < max && i < sizeof(buf[0]) - 1 && text[i]; i++)
		o[i] = text[i] == '\n' ? ',' : text[i];
	if (i && o[i - 1] == ',')
		i--;
	o[i] = 0;
	return o;
}

static void d_proc(unsigned t, const void *pp, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_proc *p = pp;
	char ids[160] = "", mb[160];
	membarrier_names(p->a.membarrier, mb, sizeof(mb)); /* 0 in older records (read short) */
	if (p->creds) /* format 5 */
		snprintf(ids, sizeof(ids), " uid %u/%u/%u/%u gid %u/%u/%u/%u groups %u%s", p->uid[0], p->uid[1], p->uid[2],
			 p->uid[3], p->gid[0], p->gid[1], p->gid[2], p->gid[3], p->ngroups,
			 p->dumpable == 0 ? " (not dumpable)" : "");
	char cg[2 * sizeof(p->a.cgroup) + 32] = "";
	if (p->a.cgroup[0]) /* format 7 */
		snprintf(cg, sizeof(cg), " cgroups %s base %s", one_line(p->a.cgroup, sizeof(p->a.cgroup)),
			 one_line(p->a.cgroup_base, sizeof(p->a.cgroup_base)));
	char cpu[96] = "";
	if (p->cpu.cpu) /* later in format 7 */
		snprintf(cpu, sizeof(cpu), " cpu %.3fs (user %.3fs sys %.3fs)", p->cpu.ns / 1e9, p->cpu.utime_ns / 1e9,
			 p->cpu.stime_ns / 1e9);
	char root[CO_PATH + 8] = "";
	if (p->root[0]) /* later in format 7: chrooted */
		snprintf(root, sizeof(root), " root %.*s", CO_PATH, p->root);
	snprintf(out, n, "pid %d ppid %d threads %u fds %u regions %u%s%s%s exe %.*s cwd %.*s%s%s", p->pid, p->ppid,
		 p->nthreads, p->nfds, p->nvmas, ids, mb, cpu, CO_PATH, p->exe, CO_PATH, p->cwd, root, cg);
}

static void d_thread(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_thread *th = p;
	char cpu[32] = "";
	if (th->cpu.cpu) /* later in format 7 */
		snprintf(cpu, sizeof(cpu), " cpu %.3fs", th->cpu.ns / 1e9);
	snprintf(out, n, "tid %d%s%s rip %lx rsp %lx fs %lx rseq %lx%s", th->tid, th->flags & CO_T_MANAGER ? " (agent)" : "",
		 th->flags & CO_T_LEADER ? " (main)" : "", (unsigned long)th->ctx.rip, (unsigned long)th->ctx.rsp,
		 (unsigned long)th->fsbase, (unsigned long)th->rseq_addr, cpu);
}

static void d_lock(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_lock *l = p;
	static const char *const kinds[] = { "?", "POSIX", "flock", "OFD" };
	snprintf(out, n, "fd %d %s %s lock, bytes %llu+%llu%s", l->fd, kinds[l->kind <= CO_LK_OFD ? l->kind : 0],
		 l->write ? "write" : "read", (unsigned long long)l->start, (unsigned long long)l->len,
		 l->len ? "" : " (to the end)");
}

static void d_owner(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_fdowner *o = p;
	static const char *const types[] = { "thread", "process", "process group" };
	snprintf(out, n, "fd %d SIGIO to %s %d, signal %d%s", o->fd, o->type >= 0 && o->type <= 2 ? types[o->type] : "?",
		 o->pid, o->sig, o->sig ? "" : " (SIGIO)");
}

static void d_dnotify(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	static const char *const ev[] = { "access", "modify", "create", "delete", "rename", "attrib" };
	const struct co_dnotify *w = p;
	int k = snprintf(out, n, "fd %d events %#x:", w->fd, w->mask);
	for (int i = 0; i < 6 && k > 0 && (size_t)k < n; i++)
		if (w->mask >> i & 1)
			k += snprintf(out + k, n - (size_t)k, " %s", ev[i]);
	if (k > 0 && (size_t)k < n)
		snprintf(out + k, n - (size_t)k, "%s", w->mask & 0x80000000u ? " (multishot)" : " (one-shot)");
}

/* "2 filters (9 instructions) of threads 3 4, all: TSYNC" (the first tids: inspect reads a prefix) */
static void d_seccomp(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t;
	const struct co_seccomp *s = p;
	const int32_t *tid = (const int32_t *)(s + 1);
	size_t k = (size_t)snprintf(out, n, "%u filter%s (%u instructions) of thread%s", s->nfilters,
				    s->nfilters == 1 ? "" : "s", s->ninsns, s->nthreads == 1 ? "" : "s");
	uint32_t shown = 0;
	for (; shown < s->nthreads && shown < 8 && sizeof(*s) + (shown + 1) * sizeof(*tid) <= len && k < n; shown++)
		k += (size_t)snprintf(out + k, n - k, " %d", tid[shown]);
	if (k < n && shown < s->nthreads)
		k += (size_t)snprintf(out + k, n - k, " and %u more", s->nthreads - shown);
	if (k < n && (s->flags & CO_SC_ALL))
		snprintf(out + k, n - k, ", every thread's (restored with TSYNC)");
}

static void d_timer(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_timer *tm = p;
	char how[64];
	if (tm->notify & 1)
		snprintf(how, sizeof(how), "no signal");
	else if (tm->notify & 4)
		snprintf(how, sizeof(how), "signal %d to tid %d", tm->signo, tm->tid);
	else
		snprintf(how, sizeof(how), "signal %d", tm->signo);
	snprintf(out, n, "id %d clock %d %s, left %lld.%09lld s, interval %lld.%09lld s", tm->id, tm->clock, how,
		 (long long)tm->value_sec, (long long)tm->value_nsec, (long long)tm->interval_sec,
		 (long long)tm->interval_nsec);
}

static void d_semadj(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_semadj *a = p;
	snprintf(out, n, "semaphore %d of set %d: %+d at exit (SEM_UNDO)", a->semnum, a->semid, a->adj);
}

static void d_aio(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_aio *a = p;
	snprintf(out, n, "aio ring %llx-%llx: nr %u (asked %u), head %u, tail %u, %u unreaped events",
		 (unsigned long long)a->start, (unsigned long long)a->end, a->nr, a->nr_asked, a->head, a->tail,
		 a->nevents);
}

/*
 * " [file: N bytes, mtime S.NS, inode D:I]": the stamp after the path of a
 * record (struct co_fstamp), which a restart checks; "" when it has none.
 */
const char *co_stamp_text(const void *p, uint64_t len, uint64_t path_off, char *buf, size_t n)
{
	struct co_fstamp st;
	co_path_rec_stamp(p, len, path_off, &st);
	buf[0] = 0;
	if (st.recorded)
		snprintf(buf, n, " [file: %llu bytes, mtime %lld.%09lld, inode %llx:%llu]", (unsigned long long)st.size,
			 (long long)st.mtime_sec, (long long)st.mtime_nsec, (unsigned long long)st.dev,
			 (unsigned long long)st.ino);
	return buf;
}

/* A descriptor's kind: how it comes back, and for a group-wide object which one it is. */
static const char *fd_kind(const struct co_fd *f)
{
	static const char *const how[] = { "?", "file", "deleted-file", "chardev", "stdio", "dup", "?", "pidfd" };
	if (f->kind == CO_FD_SHARED)
		return f->obj == CO_OBJ_FILE ? "shared file" : f->obj == CO_OBJ_DIR ? "shared directory"
			: f->obj ? co_obj_name(f->obj) : "shared";
	return f->kind < CO_ARRAY_LEN(how) ? how[f->kind] : "?";
}

static void d_fd(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t;
	const struct co_fd *f = p;
	char st[128];
	if (f->kind == CO_FD_PIDFD) {
		snprintf(out, n, "fd %d pidfd of pid %d flags %o%s", f->fd, f->same_as, f->flags,
			 f->flags & 0200 /* PIDFD_THREAD */ ? " (thread)" : "");
		return;
	}
	if (f->kind == CO_FD_SHARED) /* its state is the object's, in shared.img */
		snprintf(out, n, "fd %d %s flags %o (object in shared.img) %.*s", f->fd, fd_kind(f), f->flags, CO_PATH,
			 f->path);
	else
		snprintf(out, n, "fd %d %s flags %o pos %llu %.*s%s", f->fd, fd_kind(f), f->flags,
			 (unsigned long long)f->pos, CO_PATH, f->path,
			 co_stamp_text(p, len, offsetof(struct co_fd, path), st, sizeof(st)));
}

static const char *vma_kind(unsigned k)
{
	static const char *const names[] = { "?", "anon", "file", "shared-anon", "special", "deleted-file", "aio-ring" };
	return k < CO_ARRAY_LEN(names) ? names[k] : "?";
}

/* " (dontfork,hugepage)": the madvise flags recorded with a region, or "". */
static const char *vma_advice(uint32_t flags, char *buf, size_t n)
{
	static const struct { uint32_t flag; const char *name; } adv[] = {
		{ CO_VF_DONTFORK, "dontfork" }, { CO_VF_WIPEONFORK, "wipeonfork" }, { CO_VF_DONTDUMP, "dontdump" },
		{ CO_VF_HUGEPAGE, "hugepage" }, { CO_VF_NOHUGEPAGE, "nohugepage" }, { CO_VF_SEQUENTIAL, "sequential" },
		{ CO_VF_RANDOM, "random" },
	};
	size_t len = 0;
	buf[0] = 0;
	for (size_t k = 0; k < CO_ARRAY_LEN(adv); k++)
		if ((flags & adv[k].flag) && len + 16 < n)
			len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? "," : " (", adv[k].name);
	if (len)
		snprintf(buf + len, n - len, ")");
	return buf;
}

static void d_vma(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t;
	const struct co_vma *v = p;
	char adv[128], st[128];
	snprintf(out, n, "%lx-%lx %c%c%c%c %s%s %.*s%s", (unsigned long)v->start, (unsigned long)v->end,
		 v->prot & 1 ? 'r' : '-', v->prot & 2 ? 'w' : '-', v->prot & 4 ? 'x' : '-',
		 v->flags & CO_VF_SHARED ? 's' : 'p', vma_kind(v->kind), vma_advice(v->flags, adv, sizeof(adv)), CO_PATH,
		 v->path, co_stamp_text(p, len, offsetof(struct co_vma, path), st, sizeof(st)));
}

static void d_pagemap(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)len;
	const struct co_pagemap *pm = p;
	snprintf(out, n, "%u runs, %llu pages%s", pm->nruns, (unsigned long long)pm->npages,
		 t == CO_R_PARENTMAP ? " kept from the parent generation"
		 : t == CO_R_COWMAP ? " shared copy-on-write (with the parent process, where it has them)" : "");
}

static void d_bytes(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)p;
	snprintf(out, n, "%llu bytes", (unsigned long long)len);
}

static void d_end(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	snprintf(out, n, "%llu page bytes", (unsigned long long)((const struct co_end *)p)->page_bytes);
}

static void d_manifest(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_manifest *m = p;
	snprintf(out, n, "group %.*s (id %llx) generation %llu parent %llu, %u processes, %u files", (int)sizeof(m->name),
		 m->name, (unsigned long long)m->group_id, (unsigned long long)m->generation,
		 (unsigned long long)m->parent, m->nprocs, m->nfiles);
}

static void d_mfile(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_mfile *f = p;
	snprintf(out, n, "%.*s, %llu bytes", (int)sizeof(f->name), f->name, (unsigned long long)f->size);
}

static void d_mproc(unsigned t, const void *pp, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_mproc *p = pp;
	char audit[64] = "", uid[16] = "unset", sid[16] = "unset";
	if (p->audit == 1) { /* later in format 7 */
		if (p->loginuid != UINT32_MAX)
			snprintf(uid, sizeof(uid), "%u", p->loginuid);
		if (p->sessionid != UINT32_MAX)
			snprintf(sid, sizeof(sid), "%u", p->sessionid);
		snprintf(audit, sizeof(audit), " loginuid %s sessionid %s", uid, sid);
	}
	snprintf(out, n, "pid %d ppid %d %.*s%s%s", p->pid, p->ppid, (int)sizeof(p->image), p->image,
		 p->flags & CO_MP_ZOMBIE ? " (zombie)" : "", audit);
}

static void d_link(unsigned t, const void *p, uint64_t len, char *out, size_t n)
{
	(void)t, (void)len;
	const struct co_slink *l = p;
	char fd[24];
	if (l->fd == CO_PLAN_CWD)
		snprintf(fd, sizeof(fd), "cwd");
	else
		snprintf(fd, sizeof(fd), "fd %d", l->fd);
	snprintf(out, n, "pid %d %s -> %s %llu%s", l->pid, fd, co_obj_name(l->kind), (unsigned long long)l->id,
		 l->kind == CO_OBJ_PIPE ? (l->end ? " (write end)" : " (read end)") : "");
}
