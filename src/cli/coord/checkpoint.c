/*
 * coord/checkpoint.c - one checkpoint of the group, from the request to the reply.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "boost.h"
#include "res.h"
#include "coord.h"
#include "cli/behind.h"

/*
 * Which descriptors of member c share the open file of one of our stdio
 * that is a regular file (see struct co_stdio_id): marked in its table
 * entry, where its agent reads them when it writes its image.
 */
static uint8_t *mark_stdio_files(const struct conn *c)
{
	uint8_t *marks = G.table->p[c->slot].stdio_fd;
	memset(marks, 0, CO_STDIO_FDS);
	for (int s = 0; s < 3; s++) {
		if (!G.table->stdio[s].valid || !G.table->stdio[s].file)
			continue;
		for (int fd = 0; fd < CO_STDIO_FDS; fd++)
			if (!marks[fd] && syscall(SYS_kcmp, c->host_pid, getpid(), KCMP_FILE, fd, s) == 0)
				marks[fd] = (uint8_t)(s + 1);
	}
	return marks;
}

/*
 * The ids of each member (by table slot), read while it is parked for the
 * checkpoint: the manifest records them (struct co_mproc), and its
 * restorer gives it back these, not what the process wrote in its image.
 */
static struct co_mproc seen_creds[CO_TABLE_SLOTS];

/*
 * The audit login uid and session id (kernels with audit only): read
 * here, as the ids are, since the restorer writes the login uid with
 * privileges a process could claim through its own image.
 */
static void record_audit(int host, struct co_mproc *s)
{
	char path[64];
	int64_t uid, sid;
	snprintf(path, sizeof(path), "/proc/%d/loginuid", host);
	if (co_read_number(path, &uid))
		return;
	snprintf(path, sizeof(path), "/proc/%d/sessionid", host);
	if (co_read_number(path, &sid))
		return;
	s->audit = 1;
	s->loginuid = (uint32_t)uid;
	s->sessionid = (uint32_t)sid;
}

/* 0, or -1 (err filled) for a process of another uid whose ids cannot all be recorded. */
static int record_creds(const struct conn *c, char *err, size_t errlen)
{
	static char buf[16384];
	char path[64];
	struct co_mproc *s = &seen_creds[c->slot];
	memset(s, 0, sizeof(*s));
	snprintf(path, sizeof(path), "/proc/%d/status", c->host_pid);
	int n = co_read_small(path, buf, sizeof(buf)) > 0 ? co_status_creds(buf, s->uid, s->gid, s->groups, CO_MPROC_GROUPS)
							  : -EINVAL;
	if (n >= 0) {
		s->creds = 1;
		s->ngroups = (uint32_t)n;
		s->caps = 1;
		s->cap_inh = co_status_hex(buf, "CapInh");
		s->cap_prm = co_status_hex(buf, "CapPrm");
		s->cap_eff = co_status_hex(buf, "CapEff");
		s->cap_bnd = co_status_hex(buf, "CapBnd");
		s->cap_amb = co_status_hex(buf, "CapAmb");
		record_audit(c->host_pid, s);
		return threads_same_creds(c, err, errlen);
	}
	/* ours (or root's): what its image says grants it nothing it could not take itself */
	uid_t me = geteuid();
	if (n == -E2BIG && !c->foreign && s->uid[0] == me && s->uid[1] == me && s->uid[2] == me && s->uid[3] == me) {
		memset(s, 0, sizeof(*s));
		return 0;
	}
	if (n == -E2BIG)
		snprintf(err, errlen, "pid %d runs as uid %u with more than %d supplementary groups, which cohort cannot record",
			 c->pid, s->uid[1], CO_MPROC_GROUPS);
	else
		snprintf(err, errlen, "pid %d: cannot read its ids from %s", c->pid, path);
	return -1;
}

/*
 * DUMP to member c, with its image's files attached, one per stream
 * (proc-PID.img, then its page streams, co_stream_path), made here in the
 * generation's directory tmp: the directory is ours alone, and a member
 * that changed its uid could not create files there.  Every member writes
 * through the files it is sent.  -1 (err filled) when one cannot be made.
 */
static int send_dump(struct conn *c, const char *tmp, unsigned flags, char *err, size_t errlen)
{
	char img[PATH_MAX], path[PATH_MAX];
	int fds[CO_STREAMS + 1], n, r = 0;
	/* its descriptors of files the group shares, then the directory: "3,7;DIR" (proto.h) */
	static int shared[CO_MAX_FDS];
	static char text[CO_MSG_TEXT];
	int ns = co_shared_files(c->pid, shared, CO_MAX_FDS);
	size_t len = 0;
	if (ns < 0) {
		snprintf(err, errlen, "pid %d: more than %d descriptors of files shared with other processes", c->pid,
			 CO_MAX_FDS);
		return -1;
	}
	for (int i = 0; i < ns; i++)
		len += (size_t)snprintf(text + len, sizeof(text) - len, "%s%d", i ? "," : "", shared[i]);
	if (len + strlen(tmp) + 2 > sizeof(text)) {
		snprintf(err, errlen, "pid %d: too many shared descriptors to send", c->pid);
		return -1;
	}
	snprintf(text + len, sizeof(text) - len, ";%s", tmp);
	_Static_assert(CO_STREAMS + 1 <= CO_MSG_FDS, "DUMP carries every stream's file and the seccomp filters");
	if (seccomp_for_dump(c, &fds[CO_STREAMS], err, errlen))
		return -1;
	snprintf(img, sizeof(img), "%s/proc-%d.img", tmp, c->pid);
	for (n = 0; n < CO_STREAMS; n++) {
		co_stream_path(path, sizeof(path), img, n);
		fds[n] = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fds[n] < 0) {
			snprintf(err, errlen, "pid %d: cannot create its image %s: %s", c->pid, path, strerror(errno));
			r = -1;
			break;
		}
	}
	/* one that cannot be sent to has hung up: the barrier finds out */
	if (!r)
		co_send_fds(c->fd, CO_M_DUMP, flags, 0, 0, text, fds, CO_STREAMS + (fds[CO_STREAMS] >= 0));
	for (int k = 0; k < n; k++)
		close(fds[k]);
	if (fds[CO_STREAMS] >= 0)
		close(fds[CO_STREAMS]);
	return r;
}

/*
 * A generation is committed only with every live process's image whole:
 * its writer said DONE with a size, and the file is there with at least
 * that much in it.  (An image of 0 bytes was once committed, and could
 * not be restarted.)
 */
static int image_written(const char *tmp, const struct co_mproc *mp, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", tmp, mp->image);
	if (mp->bytes == 0)
		snprintf(err, errlen, "pid %d: its image writer reported no bytes written", mp->pid);
	else if (stat(path, &st) < 0)
		snprintf(err, errlen, "pid %d: its image %s is missing: %s", mp->pid, path, strerror(errno));
	else if (st.st_size == 0)
		snprintf(err, errlen, "pid %d: its image %s is empty", mp->pid, path);
	else
		return 1;
	return 0;
}

/* Which of the group's process groups has our terminal, and its settings (tty.c). */
static void record_terminal(struct co_manifest *m, const struct nsproc *ps, int n)
{
	static int hosts[CO_TABLE_SLOTS * 2], pgids[CO_TABLE_SLOTS * 2];
	for (int i = 0; i < n; i++) {
		hosts[i] = ps[i].host;
		pgids[i] = ps[i].ids.pgid;
	}
	co_tty_record(m, hosts, pgids, n);
}

/*
 * The pause as the program lived it: the longest any of its threads was
 * held, from entering the checkpoint handler to running again after the
 * release, as each thread measured it itself (agent.c, note_stop).  A
 * thread writes its time once it runs again: wait for that, a second at
 * most; a thread still held then counts as held since the pause began.
 */
static double program_pause_ms(uint64_t gen, uint64_t t_pause)
{
	uint64_t deadline = co_now_ns(CLOCK_MONOTONIC) + 1000000000ULL, worst;
	for (;;) {
		int pending = 0;
		worst = 0;
		for (int i = 0; i < G.nc; i++) {
			const struct conn *c = &G.c[i];
			if (c->kind != C_MEMBER || !c->part || c->slot < 0)
				continue;
			struct co_pentry *e = &G.table->p[c->slot];
			if (__atomic_load_n(&e->stop_gen, __ATOMIC_ACQUIRE) != gen)
				continue;
			uint32_t left = __atomic_load_n(&e->stop_left, __ATOMIC_ACQUIRE);
			uint64_t ns = __atomic_load_n(&e->stop_ns, __ATOMIC_RELAXED);
			pending |= left < __atomic_load_n(&e->stop_parked, __ATOMIC_RELAXED);
			worst = ns > worst ? ns : worst;
		}
		if (!pending)
			break;
		uint64_t now = co_now_ns(CLOCK_MONOTONIC);
		if (now > deadline) {
			worst = now - t_pause > worst ? now - t_pause : worst;
			break;
		}
		usleep(1000);
	}
	return (double)worst / 1e6;
}

/*
 * One checkpoint, from the request to the reply: each phase below reads
 * and fills this, in order (checkpoint()).  Static: a checkpoint is taken
 * one at a time, and its tables are large.
 */
struct ckpt {
	int cfd;			/* the client's connection: the reply goes there */
	unsigned flags;			/* CO_CKPT_* */
	const char *images;		/* IMAGES (the group's, or the request's --images) */
	char gdir[PATH_MAX];		/* IMAGES/NAME */
	char tmp[PATH_MAX];		/* IMAGES/NAME/.tmp-gen-N, renamed at the commit */
	uint64_t gen, parent;		/* the generation taken; the parent of an incremental (0: full) */
	int precopy, compress, kill_it;
	int hold;			/* CO_CKPT_HOLD: parked after the commit until the client says (ckpt_hold) */
	int parked;			/* kill_it or hold: the members are not released at the snapshot */
	int behind;			/* CO_CKPT_BEHIND: committed once its page data is written (hold_behind) */
	char err[1024];			/* why it failed */
	int released;			/* the members were sent RELEASE */
	int busy;			/* a member was caught part-way through something (CO_BUSY) */
	int redo_whole;			/* its pre-copy could not be merged: taken again without one */
	int tries;			/* pauses it took (ckpt_again) */
	int lock_fd;			/* --images elsewhere: that group directory's LOCK, held meanwhile */
	int precopied;			/* processes whose full image was pre-copied */
	int incremental;
	/* times (CLOCK_MONOTONIC): the request, this try's start, first park, all parked, release, commit */
	uint64_t t_start, t0, t_park, t_quiesced, t_release, t_done;
	uint64_t mono, boot;		/* the group's clocks while nothing of it ran */
	struct nsproc ps[CO_TABLE_SLOTS * 2]; /* the group as the kernel saw it, all parked */
	int nps;
	struct co_manifest m;
	struct co_mproc procs[CO_TABLE_SLOTS];
	int n;				/* processes in the manifest */
	uint64_t bytes, raw_bytes;	/* stored (compressed when it is), and before compression */
};

static int failed(struct ckpt *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The phase failed for the reason given: -1. */
static int failed(struct ckpt *k, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(k->err, sizeof(k->err), fmt, ap);
	va_end(ap);
	return -1;
}

/*
 * Is there room for the images?  A full generation takes about the
 * group's memory (a pre-copy's pages are given back as they are merged:
 * merge.c, give_back), and compressed images are written whole first; a
 * checkpoint that cannot fit fails before anything is paused or written,
 * rather than after filling the disk.  An incremental one takes what was
 * written since its parent, which is not known ahead: not checked.
 */
static int ckpt_room(struct ckpt *k)
{
	struct statvfs fs;
	if (k->parent || statvfs(k->tmp, &fs) < 0)
		return 0;
	uint64_t need = members_memory(MM_ALL), have = (uint64_t)fs.f_bavail * fs.f_frsize;
	need += need / 16 + (4u << 20); /* records, page maps, the program's files, shared.img */
	if (have >= need)
		return 0;
	return failed(k, "not enough room in %s: the images take about %llu MiB (the group's memory), %llu MiB "
		      "are free; free some, or take it elsewhere with --images", k->images,
		      (unsigned long long)(need >> 20), (unsigned long long)(have >> 20));
}

/*
 * Prepare: the generation's number, its parent and its temporary
 * directory.  -1 when the checkpoint cannot begin (replied already).
 */
static int ckpt_prepare(struct ckpt *k, int ci, unsigned flags, const char *images_override)
{
	memset(k, 0, sizeof(*k));
	k->lock_fd = -1;
	k->cfd = G.c[ci].fd;
	k->flags = flags;
	k->t_start = co_now_ns(CLOCK_MONOTONIC);
	k->tries = 1;
	if (G.expect > 0) {
		reply(k->cfd, 1, "group '%s' is still being restored", G.name);
		return -1;
	}
	if (!nmembers()) {
		reply(k->cfd, 1, "group '%s' has no registered process yet", G.name);
		return -1;
	}
	k->images = images_override && *images_override ? images_override : G.images;
	snprintf(k->gdir, sizeof(k->gdir), "%s/%s", k->images, G.name);
	if (co_mkdir_p(k->gdir) < 0) {
		reply(k->cfd, 1, "cannot create %s: %s", k->gdir, strerror(errno));
		return -1;
	}
	/* the group's own images are locked for its life; others for this checkpoint (co_lock_images) */
	if (strcmp(k->images, G.images) && (k->lock_fd = co_lock_images(k->gdir, 0, k->err, sizeof(k->err))) < 0) {
		reply(k->cfd, 1, "%s", k->err);
		return -1;
	}
	k->gen = co_newest_generation(k->gdir) + 1;
	/* an incremental needs its parent: the last generation this group committed, still there */
	k->parent = 0;
	if ((flags & CO_CKPT_INCREMENTAL) && G.last_committed && !strcmp(k->images, G.images) &&
	    co_generation_usable(k->gdir, G.last_committed))
		k->parent = G.last_committed;
	snprintf(k->tmp, sizeof(k->tmp), "%s/.tmp-gen-%06llu", k->gdir, (unsigned long long)k->gen);
	co_remove_tree(k->tmp);
	if (mkdir(k->tmp, 0700) < 0) {
		reply(k->cfd, 1, "cannot create %s: %s", k->tmp, strerror(errno));
		return -1;
	}
	/* with a snapshot, a full image's memory is read while the group runs (precopy.c) */
	k->precopy = !G.no_precopy && !(flags & (CO_CKPT_NO_PRECOPY | CO_CKPT_STOP | CO_CKPT_KILL));
	k->compress = G.compress || (flags & CO_CKPT_COMPRESS);
	k->kill_it = (flags & CO_CKPT_KILL) != 0;
	k->hold = !k->kill_it && (flags & CO_CKPT_HOLD);
	k->parked = k->kill_it || k->hold;
	if (k->hold)
		k->precopy = 0; /* the group stays stopped: nothing to gain from reading ahead */
	k->behind = k->hold && (flags & CO_CKPT_BEHIND) && !k->compress;
	if (ckpt_room(k) < 0) {
		co_remove_tree(k->tmp);
		reply(k->cfd, 1, "checkpoint of '%s' failed: %s", G.name, k->err);
		return -1;
	}
	progress_begin(k->cfd, flags, k->tmp);
	return 0;
}

/* Every member takes part, from the start; none has answered yet. */
static void ckpt_enrol(struct ckpt *k)
{
	G.ck_gen = k->gen;
	G.ck_parent = k->parent;
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		c->got = 0;
		c->part = c->kind == C_MEMBER;
		c->answered = c->kind != C_MEMBER;
		c->prep_flags = k->precopy ? CO_PREP_PRECOPY : 0;
		c->prep_flags |= getenv("COHORT_TEST_HELD_GAP") ? CO_PREP_TEST_HELD_GAP : 0;
		c->incr_parent = 0;
		c->prep_ns = 0;
		c->hold_ns = 0;
		c->prepare_ns = 0;
		c->armed = 0;
		c->quiesce = 0;
	}
}

/*
 * Every process of the group must now be a parked member, or a zombie.
 * One forked just before its parent parked may still be registering
 * (in fork, or exec'ing a new program): it joins this checkpoint.
 * k->ps: the group, all parked.
 */
static int ckpt_await_late(struct ckpt *k)
{
	uint64_t deadline = co_now_ns(CLOCK_MONOTONIC) + 10000000000ULL;
	for (;;) {
		k->nps = scan_group(k->ps, (int)CO_ARRAY_LEN(k->ps));
		int late = -1;
		for (int i = 0; i < k->nps && late < 0; i++)
			if (k->ps[i].ids.state != 'Z' && (k->ps[i].member < 0 || !G.c[k->ps[i].member].answered))
				late = i;
		if (late < 0)
			break;
		if (co_now_ns(CLOCK_MONOTONIC) > deadline) {
			why_absent(k->ps[late].host, k->ps[late].ids.pid, k->ps[late].member >= 0, k->err, sizeof(k->err));
			return -1;
		}
		pump(20, k->gen);
		if (barrier_more(CO_M_QUIESCED, k->gen, QUIESCE_TIMEOUT_MS, k->err, sizeof(k->err), 0))
			return -1;
	}
	/* its last process ended while we waited (zombies at most are left): there is nothing to restart */
	int live = 0;
	for (int i = 0; i < k->nps; i++)
		live += k->ps[i].ids.state != 'Z';
	return live > 0 ? 0 : failed(k, "the group ended during the checkpoint");
}

/*
 * Quiesce: every member's manager thread starts, connects (ATTACH) and
 * gets PREPARE; with a pre-copy each arms (ARMED), its memory is read
 * while it runs, and then it parks; every member parks (QUIESCED), and so
 * do processes born meanwhile.  The pause starts at k->t_park.
 */
static int ckpt_quiesce(struct ckpt *k)
{
	k->t0 = co_now_ns(CLOCK_MONOTONIC);
	int bad = settle(k->err, sizeof(k->err)) || under_seccomp(k->err, sizeof(k->err)) ||
		  chrooted(k->err, sizeof(k->err));
	k->t0 = k->t_park = co_now_ns(CLOCK_MONOTONIC);
	co_trace("checkpoint %llu: settled", (unsigned long long)k->gen);
	ckpt_enrol(k);
	if (bad)
		return -1;
	for (int i = G.nc - 1; i >= 0; i--)
		if (G.c[i].kind == C_MEMBER && signal_member(&G.c[i]) < 0)
			drop(i); /* gone already */
	if (k->precopy) {
		if (barrier(CO_M_ARMED, k->gen, QUIESCE_TIMEOUT_MS, k->err, sizeof(k->err)))
			return -1;
		precopy_members(k->tmp, k->gen);
		k->t_park = co_now_ns(CLOCK_MONOTONIC); /* the pause starts here */
		if (getenv("COHORT_DEBUG"))
			co_warn("checkpoint %llu: prepared and pre-copied in %.1f ms", (unsigned long long)k->gen,
				(double)(k->t_park - k->t0) / 1e6);
	}
	progress_phase("snapshot", PC_NONE, 0);
	if (barrier(CO_M_QUIESCED, k->gen, QUIESCE_TIMEOUT_MS, k->err, sizeof(k->err)))
		return -1;
	co_trace("checkpoint %llu: quiesced", (unsigned long long)k->gen);
	/* without a pre-copy each member ran on until it had PREPARE (and prepared, prep_ns below) */
	for (int i = 0; !k->precopy && i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part && G.c[i].prepare_ns &&
		    (k->t_park == k->t0 || G.c[i].prepare_ns < k->t_park))
			k->t_park = G.c[i].prepare_ns;
	return ckpt_await_late(k);
}

/*
 * What DUMP asks of every member.  A migration's stop (hold) keeps the
 * group parked until it ends or resumes, so a snapshot would only cost
 * its fork (page tables, the writer's start and its copy-on-write
 * faults): each member writes its image itself, an incremental one
 * passing over the unwritten stretches as a lean snapshot would leave
 * them out (dirty.h, co_dirty_lean_begin).
 */
static unsigned dump_flags(const struct ckpt *k)
{
	unsigned f = k->flags & CO_CKPT_STOP;
	if (k->behind)
		f |= CO_CKPT_STOP | CO_CKPT_BEHIND;
	if (k->hold)
		f |= CO_CKPT_STOP;
	f |= k->flags & CO_CKPT_BOOST;
	f |= getenv("COHORT_TEST_COWMAP_ALL") ? CO_CKPT_COWMAP_ALL : 0;
	return f | (co_tracing() ? CO_CKPT_TRACE : 0);
}

/*
 * Capture: what the members share (shared.img), then each member's image
 * through the files sent with DUMP.  Once every member has its snapshot
 * (SNAPSHOT) the group runs again (RELEASE; with --kill it stays parked);
 * the images are whole at DONE, and pre-copied ones are merged into full
 * images.
 */
static int ckpt_capture(struct ckpt *k)
{
	co_crash_point("capture"); /* tests: the group parked, its clocks going on (timerfd_clock) */
	/* first what the members share, while nothing of theirs but the agents moves */
	static struct co_shared_member sm[CO_TABLE_SLOTS];
	int nsm = 0;
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part) {
			uint8_t *marks = mark_stdio_files(&G.c[i]);
			sm[nsm++] = (struct co_shared_member){ G.c[i].pid, G.c[i].host_pid, -1, marks };
		}
	char serr[1024];
	/* a pre-copy or a parent leave only what was written since: how much is not known */
	progress_phase("writing images", PC_FILES, k->precopy || k->parent || P.fd < 0 ? 0 : members_memory(MM_PART));
	const int64_t clock_off[2] = { G.mono_off, G.boot_off };
	int sbad = co_shared_dump(k->tmp, k->gen, sm, nsm, G.table, k->flags, clock_off, serr, sizeof(serr));
	co_trace("checkpoint %llu: shared objects", (unsigned long long)k->gen);
	if (sbad == CO_BUSY) {
		k->busy = 1;
		return failed(k, "%s", serr);
	}
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part &&
		    (own_namespaces(&G.c[i], k->err, sizeof(k->err)) || record_creds(&G.c[i], k->err, sizeof(k->err)) ||
		     send_dump(&G.c[i], k->tmp, dump_flags(k), k->err, sizeof(k->err))))
			return -1;
	co_trace("checkpoint %llu: DUMP sent", (unsigned long long)k->gen);
	/* every member has a snapshot (or its whole image): the group may run again */
	if (barrier(CO_M_SNAPSHOT, 0, DUMP_TIMEOUT_MS, k->err, sizeof(k->err)))
		return -1;
	co_trace("checkpoint %llu: snapshots taken", (unsigned long long)k->gen);
	/*
	 * The group's clocks as they stand, where a restart's go on from
	 * (make_timens): nothing of the group has run since it parked, and
	 * every timer was looked at by now (the shared ones above, each
	 * process's in its pause).  Read before the first look, a timerfd's
	 * expirations counted up to that look ran ahead of the restarted
	 * clock: a program that compares them with the time saw one period
	 * more than went by.
	 */
	k->mono = co_now_ns(CLOCK_MONOTONIC) + (uint64_t)G.mono_off;
	k->boot = co_now_ns(CLOCK_BOOTTIME) + (uint64_t)G.boot_off;
	if (sbad)
		return failed(k, "%s", serr);
	if (!k->parked) {
		broadcast(CO_M_RELEASE, (int64_t)k->gen, NULL);
		k->t_release = co_now_ns(CLOCK_MONOTONIC);
		k->released = 1;
		co_unboost(); /* a round's pause is over: its images are written beside the program, not ahead of it */
	}
	int bad = barrier(CO_M_DONE, 0, DUMP_TIMEOUT_MS, k->err, sizeof(k->err));
	uint64_t t_m = co_now_ns(CLOCK_MONOTONIC);
	if (!bad && k->precopy) {
		bad = merge_precopies(k->tmp, k->gen, &k->precopied, k->err, sizeof(k->err));
		/*
		 * The merge found a page the snapshot left to the pre-copy and the
		 * pre-copy does not have (seen once in a few runs of a program
		 * rewriting its memory on a busy machine: never guessed, but the
		 * checkpoint need not fail for it): taken again without a pre-copy.
		 */
		k->redo_whole = bad;
	}
	if (getenv("COHORT_DEBUG") && k->precopy)
		co_warn("checkpoint %llu: images written %.1f ms after the pause began, merged in %.1f ms",
			(unsigned long long)k->gen, (double)(t_m - k->t_park) / 1e6,
			(double)(co_now_ns(CLOCK_MONOTONIC) - t_m) / 1e6);
	return bad ? -1 : 0;
}

/*
 * The manifest's entry for process ps (parked member or zombie): the tree
 * as the namespace sees it (parents, sessions, groups), and for a live one
 * its image, whole, and the ids it was seen with.
 */
static int ckpt_proc(struct ckpt *k, const struct nsproc *ps, struct co_mproc *mp)
{
	memset(mp, 0, sizeof(*mp));
	mp->pid = ps->ids.pid;
	mp->pgid = ps->ids.pgid;
	mp->sid = ps->ids.sid;
	mp->ppid = ps->ids.host_ppid == G.init_pid ? 1 : 0;
	for (int i = 0; i < k->nps; i++)
		if (k->ps[i].host == ps->ids.host_ppid)
			mp->ppid = k->ps[i].ids.pid;
	if (ps->ids.state == 'Z') {
		mp->flags = CO_MP_ZOMBIE;
		mp->exit_status = ps->ids.exit_code;
		return 0;
	}
	/* its slot, as the scan found it: slots do not move (drop) */
	const struct conn *c = ps->member >= 0 ? &G.c[ps->member] : NULL;
	if (!c || !c->part)
		return failed(k, "pid %d left the group during the checkpoint", mp->pid);
	mp->bytes = c->bytes;
	snprintf(mp->image, sizeof(mp->image), "proc-%d.img", c->pid);
	const struct co_mproc *ids = &seen_creds[c->slot];
	mp->creds = ids->creds;
	mp->ngroups = ids->ngroups;
	memcpy(mp->uid, ids->uid, sizeof(mp->uid));
	memcpy(mp->gid, ids->gid, sizeof(mp->gid));
	memcpy(mp->groups, ids->groups, sizeof(mp->groups));
	mp->caps = ids->caps;
	mp->cap_inh = ids->cap_inh;
	mp->cap_prm = ids->cap_prm;
	mp->cap_eff = ids->cap_eff;
	mp->cap_bnd = ids->cap_bnd;
	mp->cap_amb = ids->cap_amb;
	mp->audit = ids->audit;
	mp->loginuid = ids->loginuid;
	mp->sessionid = ids->sessionid;
	if (!image_written(k->tmp, mp, k->err, sizeof(k->err)))
		return -1;
	k->bytes += c->bytes;
	if (k->parent && c->incr_parent == k->parent) {
		mp->flags |= CO_MP_INCREMENTAL;
		k->m.kind = CO_GEN_INCREMENTAL;
		k->m.parent = k->parent;
		k->incremental = 1;
	}
	return 0;
}

/* With --compress: the images stored as .zst, and the bytes they take now. */
static int ckpt_compress(struct ckpt *k)
{
	if (compress_images(k->tmp, k->procs, k->n, k->err, sizeof(k->err)))
		return -1;
	k->bytes = 0;
	for (int i = 0; i < k->n; i++) {
		char img[PATH_MAX];
		if (k->procs[i].flags & CO_MP_ZOMBIE)
			continue;
		snprintf(img, sizeof(img), "%s/%s", k->tmp, k->procs[i].image);
		k->procs[i].flags |= CO_MP_COMPRESSED;
		k->procs[i].bytes = co_img_bytes(img);
		k->bytes += k->procs[i].bytes;
	}
	return 0;
}

/* Finish the images: the manifest of the generation, after compressing its images if asked. */
static int ckpt_finish_images(struct ckpt *k)
{
	struct co_manifest *m = &k->m;
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", G.name);
	m->group_id = G.group_id;
	m->generation = k->gen;
	m->parent = 0;
	m->kind = CO_GEN_FULL;
	m->created_ns = co_now_ns(CLOCK_REALTIME);
	m->mono_ns = k->mono;
	m->boot_ns = k->boot;
	m->sig = (uint32_t)G.sig;
	m->root_pid = G.root_pid;
	snprintf(m->program, sizeof(m->program), "%s", G.program);
	record_terminal(m, k->ps, k->nps);
	k->bytes = 0;
	for (k->n = 0; k->n < k->nps; k->n++)
		if (ckpt_proc(k, &k->ps[k->n], &k->procs[k->n]))
			return -1;
	m->nprocs = (uint32_t)k->n;
	/* an incremental names its parent by the digest of its manifest too: a parent put there since is not it */
	char pm[PATH_MAX];
	if (m->kind == CO_GEN_INCREMENTAL && co_gen_dir(k->gdir, m->parent, pm, sizeof(pm) - 16) == 0) {
		strcat(pm, "/manifest");
		if (co_file_digest(pm, &m->parent_digest) < 0)
			return failed(k, "cannot read the parent generation's manifest %s: %s", pm, strerror(errno));
	}
	k->raw_bytes = k->bytes;
	if (k->compress && ckpt_compress(k))
		return -1;
	m->bytes = k->bytes;
	co_crash_point("written");
	if (co_fail_point("written"))
		return failed(k, "failure injected (COHORT_CKPT_FAIL)");
	if (co_write_manifest(k->tmp, m, k->procs, k->n) < 0)
		return failed(k, "cannot write the manifest in %s: %s", k->tmp, strerror(errno));
	return 0;
}

/* The checkpoint failed: the group runs on as it was, nothing is committed. */
static void ckpt_abort(struct ckpt *k)
{
	co_shared_settle(1);
	if (!k->released)
		broadcast(CO_M_RELEASE, (int64_t)(k->gen - 1), NULL);
	end_sessions();
	co_remove_tree(k->tmp);
	reply(k->cfd, 1, "checkpoint of '%s' failed: %s", G.name, k->err);
}

/*
 * The pause found a member part-way through something a restart could
 * not carry on (CO_BUSY: a /proc file read half-way): the group runs on a
 * moment, 4 ms after the first try and twice as long after each next one
 * (about a second in all), and the checkpoint begins again in an empty
 * directory.  Or a pre-copy could not be merged (redo_whole): it begins
 * again at once, without a pre-copy.  -1 (err filled) when that directory
 * cannot be made.
 */
#define BUSY_TRIES 8
static int ckpt_again(struct ckpt *k, int tries)
{
	co_shared_settle(1);
	if (!k->released)
		broadcast(CO_M_RELEASE, (int64_t)(k->gen - 1), NULL);
	end_sessions();
	co_remove_tree(k->tmp);
	if (mkdir(k->tmp, 0700) < 0)
		return failed(k, "cannot create %s: %s", k->tmp, strerror(errno));
	if (getenv("COHORT_DEBUG"))
		co_warn("checkpoint %llu: try %d: %s", (unsigned long long)k->gen, tries + 1, k->err);
	struct timespec ts = { 0, (4L << tries) * 1000000L };
	while (k->busy && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	if (k->redo_whole) /* once: the next try writes whole images from its snapshot */
		k->precopy = 0;
	k->busy = k->redo_whole = k->released = k->precopied = 0;
	k->err[0] = 0;
	k->tries++;
	progress_begin(k->cfd, k->flags, k->tmp); /* phases_ms: those of the last try */
	return 0;
}

static void ckpt_end_group(struct ckpt *k)
{
	end_parked_group();
	k->t_release = k->t_done;
	G.killed_gen = k->gen;
	co_gen_dir(k->gdir, k->gen, G.killed_dir, sizeof(G.killed_dir));
}

/*
 * Commit: .tmp-gen-N becomes gen-N (store.c), then with --kill the group
 * ends; the group's bookkeeping follows (the next incremental's parent,
 * the background merge, pruning).
 */
static int ckpt_committed(struct ckpt *k);
static int ckpt_commit(struct ckpt *k)
{
	/* with --kill (or held) the group stays parked: a manager that is hung up on lets it go */
	if (!k->parked)
		end_sessions();
	progress_phase("committing", PC_FILES, 0);
	if (k->behind) { /* not before its page data is in (hold_behind) */
		k->t_done = k->t_release = co_now_ns(CLOCK_MONOTONIC);
		return hold_write_hosts(k->tmp) ? failed(k, "cannot write %s/%s", k->tmp, CO_BEHIND_PIDS) : 0;
	}
	if (co_commit(k->tmp, k->gdir, k->gen, k->err, sizeof(k->err)) < 0)
		return -1;
	return ckpt_committed(k);
}

/* The group's bookkeeping once generation k is committed. */
static int ckpt_committed(struct ckpt *k)
{
	co_shared_settle(0);
	k->t_done = co_now_ns(CLOCK_MONOTONIC);
	if (k->kill_it)
		ckpt_end_group(k);
	if (k->hold)
		k->t_release = k->t_done; /* the pause so far: the client adds what follows */
	G.table->generation = k->gen;
	G.last_committed = k->gen;
	if (G.argv && strcmp(G.command_dir, k->gdir) && co_group_command_write(k->gdir, G.argv) == 0)
		snprintf(G.command_dir, sizeof(G.command_dir), "%s", k->gdir);
	if (k->incremental && (k->flags & CO_CKPT_MIGRATING))
		G.merge_held = 1; /* merged once the migration is over (ckpt_hold) */
	else if (k->incremental)
		start_merge(k->gdir);
	if (G.keep)
		co_prune(k->gdir, G.keep); /* a merge that loses a generation meanwhile skips it (merge.c) */
	return 0;
}

/* Reply: the generation taken, its size and the pause, in a line or in JSON. */
static void ckpt_reply(struct ckpt *k)
{
	/*
	 * The pause starts when the first process parks: each prepares first
	 * (tracking new memory) while its program still runs, and says how long.
	 */
	int64_t prep = -1;
	int64_t hold = 0; /* the longest a member held its threads to prepare: a stop of its own, before the pause */
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part) {
			if (prep < 0 || G.c[i].prep_ns < prep)
				prep = G.c[i].prep_ns;
			hold = G.c[i].hold_ns > hold ? G.c[i].hold_ns : hold;
		}
	uint64_t t_pause = k->t_park + (prep > 0 && (uint64_t)prep < k->t_release - k->t_park ? (uint64_t)prep : 0);
	double pause_ms = (double)(k->t_release - t_pause) / 1e6, dur_ms = (double)(k->t_done - k->t_start) / 1e6;
	char prog_pause[32] = "null", phases[512]; /* prog_pause: null for --kill (the group never ran again) */
	if (!k->parked)
		snprintf(prog_pause, sizeof(prog_pause), "%.2f", program_pause_ms(k->gen, t_pause));
	const char *kind = k->incremental ? "incremental" : "full";
	unsigned long long gen = k->gen, bytes = k->bytes, raw = k->raw_bytes;
	int n = k->n;
	if (k->flags & CO_CKPT_JSON)
		reply(k->cfd, 0,
		      "{\"group\":\"%s\",\"generation\":%llu,\"kind\":\"%s\",\"parent\":%llu,\"processes\":%d,"
		      "\"bytes\":%llu,\"raw_bytes\":%llu,\"compressed\":%s,\"pause_ms\":%.2f,\"program_pause_ms\":%s,"
		      "\"prepare_hold_ms\":%.2f,\"duration_ms\":%.2f,\"phases_ms\":%s,\"precopied\":%d,"
		      "\"directory\":\"%s/gen-%06llu\",\"killed\":%s,\"tries\":%d,\"behind\":\"%s\"}",
		      G.name, gen, kind, (unsigned long long)(k->incremental ? k->parent : 0), n, bytes, raw,
		      k->compress ? "true" : "false", pause_ms, prog_pause, (double)hold / 1e6, dur_ms,
		      phases_json(k->t0, k->t_done, phases, sizeof(phases)), k->precopied, k->gdir, gen,
		      k->kill_it ? "true" : "false", k->tries, k->behind ? k->tmp : "");
	else if (k->compress)
		reply(k->cfd, 0,
		      "generation %llu of '%s' (%s): %d process%s, %llu bytes compressed from %llu, pause %.1f ms, "
		      "duration %.1f ms%s",
		      gen, G.name, kind, n, n == 1 ? "" : "es", bytes, raw, pause_ms, dur_ms,
		      k->kill_it ? ", group ended" : "");
	else
		reply(k->cfd, 0, "generation %llu of '%s' (%s): %d process%s, %llu bytes, pause %.1f ms, duration %.1f ms%s",
		      gen, G.name, kind, n, n == 1 ? "" : "es", bytes, pause_ms, dur_ms,
		      k->kill_it ? ", group ended" : "");
}

/*
 * A migration that failed, whose group cannot run on here: a file lock it
 * held was let go for the target (hold_locks.c) and somebody else has it
 * now.  Running on, the program would believe it holds it: the group
 * ends instead (the run or restart with it), and says so; its generation
 * is kept, to restart from once the lock is free (as a restart, it takes
 * the lock back or refuses).
 */
static void ckpt_locks_lost(struct ckpt *k, int client_waits, const char *why)
{
	char line[1600];
	if (k->behind) /* never committed: nothing holds it */
		snprintf(line, sizeof(line), "the group '%s' ended: %s", G.name, why);
	else
		snprintf(line, sizeof(line), "the group '%s' ended: %s; generation %llu holds it as it was ('cohort "
			 "restart %s' once the lock is free)", G.name, why, (unsigned long long)k->gen, G.name);
	fprintf(stderr, "cohort: %s\n", line);
	if (client_waits)
		reply(k->cfd, 1, "%s", line);
	end_parked_group();
}

/*
 * A migration's checkpoint (CO_CKPT_HOLD) is committed and the group is
 * still parked: its client now streams the generation to the target and
 * says how it went.  HOLD_END: the group runs there now and ends here
 * (loop.c prints where it went).  HOLD_RESUME, or the client gone (killed,
 * its connection cut), or anything else: the group runs on here as if
 * nothing had happened, its generation kept like any other.  Nothing else
 * is served meanwhile: the group must not be checkpointed twice.
 */
static void ckpt_hold(struct ckpt *k)
{
	static struct co_msgbuf mb;
	memset(&mb.m, 0, sizeof(mb.m));
	co_crash_point("hold"); /* tests: the coordinator killed during a migration's stop */
	snprintf(G.holding, sizeof(G.holding), "migrating (stopped for the switch)");
	hold_wait(k->cfd);
	int r = co_recv(k->cfd, &mb, NULL) == 0;
	if (r && mb.m.type == CO_M_HOLD_END) {
		snprintf(G.migrated_to, sizeof(G.migrated_to), "%s", mb.text);
		co_trace("hold: HOLD_END");
		hold_locks_forget(); /* the target has them */
		if (k->behind) { /* its page data written, then committed (hold.c), and only then ended */
			if (!hold_behind(k->cfd, k->tmp, k->gdir, k->gen))
				ckpt_committed(k);
			end_parked_group();
			co_trace("hold: the group is gone");
			release_merges(k->gdir);
			return;
		}
		/*
		 * Stopped (or killed) is ended: no code of the group runs here
		 * any more, so the target may let it run while the kernel tears
		 * it down here (for 1 GiB that took 34 ms of the migration's
		 * downtime).
		 */
		int stopped = stop_parked_group() == 0;
		if (!stopped)
			kill_parked_group();
		reply(k->cfd, 0, "group '%s' ended here: it runs at %s", G.name, G.migrated_to);
		co_unboost(); /* the switch's part here is done: what follows is the group's end */
		if (stopped) {
			await_go(k->cfd);
			kill_parked_group();
		}
		await_parked_group();
		co_trace("hold: the group is gone");
		release_merges(k->gdir);
		return;
	}
	int resume = r && mb.m.type == CO_M_HOLD_RESUME;
	char err[1200];
	int lost = hold_locks_retake(err, sizeof(err)) < 0;
	if (lost) {
		ckpt_locks_lost(k, resume, err);
	} else {
		broadcast(CO_M_RELEASE, (int64_t)k->gen, NULL);
		end_sessions();
	}
	if (k->behind) { /* never committed: as a checkpoint that failed */
		co_shared_settle(1);
		co_remove_tree(k->tmp);
	}
	if (resume && !lost)
		reply(k->cfd, 0, "group '%s' runs on", G.name);
	release_merges(k->gdir);
}

/*
 * The checkpoint a client asked for on connection ci, start to end:
 * prepare, quiesce, capture, finish the images, commit, reply.  Any
 * failure up to the commit (its own included) aborts it (ckpt_abort):
 * the group runs on as it was.
 */
void checkpoint(int ci, unsigned flags, const char *images_override)
{
	static struct ckpt k;
	/*
	 * A migration's incremental rounds and its small stop: every step of
	 * the pause here ahead of the machine's other work (boost.h); a
	 * round's until the group runs again (ckpt_capture), the stop's until
	 * the group is stopped for the target (ckpt_hold).
	 */
	if (flags & CO_CKPT_BOOST)
		co_boost();
	if (ckpt_prepare(&k, ci, flags, images_override) < 0) {
		co_unboost();
		if (k.lock_fd >= 0)
			close(k.lock_fd);
		return;
	}
	if (co_boosted())
		co_trace("checkpoint %llu: at SCHED_FIFO 1", (unsigned long long)k.gen);
	int bad;
	for (int tries = 0;; tries++) {
		G.member_exited = G.member_busy = 0;
		bad = ckpt_quiesce(&k);
		k.t_quiesced = co_now_ns(CLOCK_MONOTONIC);
		co_trace("checkpoint %llu: parked", (unsigned long long)k.gen);
		bad = bad || ckpt_capture(&k);
		co_trace("checkpoint %llu: images written", (unsigned long long)k.gen);
		/*
		 * A process that ended as the pause came (one already in exit
		 * when the signal was sent) is no failure of the group's: the
		 * next try finds it gone, or a zombie, and takes the others.
		 * Nor is a thread caught waiting for a fanotify answer that a
		 * parked member may owe it: the next try may find it done.
		 */
		if (bad && (G.member_exited || G.member_busy))
			k.busy = 1;
		if (!bad || !(k.busy || k.redo_whole) || tries == BUSY_TRIES || ckpt_again(&k, tries) < 0)
			break;
	}
	if (getenv("COHORT_DEBUG"))
		co_warn("checkpoint %llu: quiesce %.1f ms, dump %.1f ms", (unsigned long long)k.gen,
			(double)(k.t_quiesced - k.t0) / 1e6, (double)(co_now_ns(CLOCK_MONOTONIC) - k.t_quiesced) / 1e6);
	bad = bad || ckpt_finish_images(&k);
	/* requests that waited for the checkpoint are taken again (pump) */
	for (int i = 0; i < G.nc; i++)
		G.c[i].deferred = 0;
	if (bad || ckpt_commit(&k) < 0) {
		ckpt_abort(&k);
	} else {
		co_trace("checkpoint %llu: committed", (unsigned long long)k.gen);
		if (k.hold) /* before the client sends a byte of it: the target takes them back (hold_locks.c) */
			hold_locks_drop();
		ckpt_reply(&k);
		if (k.hold)
			ckpt_hold(&k);
		G.holding[0] = 0;
	}
	co_unboost();
	if (k.lock_fd >= 0)
		close(k.lock_fd);
}
