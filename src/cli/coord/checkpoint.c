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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include "res.h"
#include "coord.h"

static int mkdir_p(const char *path)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, 0700) < 0 && errno != EEXIST ? -1 : 0;
}

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
		return 0;
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
	int fds[CO_STREAMS], n, r = 0;
	_Static_assert(CO_STREAMS <= CO_MSG_FDS, "DUMP carries every stream's file");
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
		co_send_fds(c->fd, CO_M_DUMP, flags, 0, 0, tmp, fds, CO_STREAMS);
	for (int k = 0; k < n; k++)
		close(fds[k]);
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
 * The checkpoint is over: the members' connections go (a member's manager
 * thread has gone, or goes once it has read RELEASE; a snapshot still
 * writing has said DONE), and an ATTACH from now on is a late one.
 */
static void end_sessions(void)
{
	for (int i = G.nc - 1; i >= 0; i--)
		if (G.c[i].kind == C_MEMBER && G.c[i].stale)
			drop(i);
		else if (G.c[i].kind == C_MEMBER && !G.c[i].restored)
			hang_up(&G.c[i]);
	G.ck_gen = G.ck_parent = 0;
}

void checkpoint(int ci, unsigned flags, const char *images_override)
{
	int cfd = G.c[ci].fd;
	char err[1024] = "", tmp[PATH_MAX], gdir[PATH_MAX];
	if (G.expect > 0) {
		reply(cfd, 1, "group '%s' is still being restored", G.name);
		return;
	}
	if (!nmembers()) {
		reply(cfd, 1, "group '%s' has no registered process yet", G.name);
		return;
	}
	const char *images = images_override && *images_override ? images_override : G.images;
	snprintf(gdir, sizeof(gdir), "%s/%s", images, G.name);
	if (mkdir_p(gdir) < 0) {
		reply(cfd, 1, "cannot create %s: %s", gdir, strerror(errno));
		return;
	}
	uint64_t gen = co_newest_generation(gdir) + 1;
	/* an incremental needs its parent: the last generation this group committed, still there */
	uint64_t parent = 0;
	if ((flags & CO_CKPT_INCREMENTAL) && G.last_committed && !strcmp(images, G.images) &&
	    co_generation_usable(gdir, G.last_committed))
		parent = G.last_committed;
	snprintf(tmp, sizeof(tmp), "%s/.tmp-gen-%06llu", gdir, (unsigned long long)gen);
	co_remove_tree(tmp);
	if (mkdir(tmp, 0700) < 0) {
		reply(cfd, 1, "cannot create %s: %s", tmp, strerror(errno));
		return;
	}
	progress_begin(cfd, flags, tmp);
	uint64_t t0 = co_now_ns(CLOCK_MONOTONIC);
	int bad = settle(err, sizeof(err));
	t0 = co_now_ns(CLOCK_MONOTONIC);
	/* with a snapshot, a full image's memory is read while the group runs (precopy.c) */
	int precopy = !G.no_precopy && !(flags & (CO_CKPT_NO_PRECOPY | CO_CKPT_STOP | CO_CKPT_KILL));
	G.ck_gen = gen;
	G.ck_parent = parent;
	for (int i = 0; i < G.nc; i++) {
		G.c[i].got = 0;
		G.c[i].part = G.c[i].kind == C_MEMBER;
		G.c[i].answered = G.c[i].kind != C_MEMBER;
		G.c[i].prep_flags = precopy ? CO_PREP_PRECOPY : 0;
		G.c[i].incr_parent = 0;
		G.c[i].prep_ns = 0;
		G.c[i].prepare_ns = 0;
		G.c[i].armed = 0;
	}
	uint64_t t_park = t0;
	int precopied = 0; /* processes whose full image was pre-copied */
	if (!bad) {
		/* every member's manager thread starts, connects (ATTACH) and gets PREPARE */
		for (int i = G.nc - 1; i >= 0; i--)
			if (G.c[i].kind == C_MEMBER && signal_member(&G.c[i]) < 0)
				drop(i); /* gone already */
		if (precopy && !(bad = barrier(CO_M_ARMED, gen, QUIESCE_TIMEOUT_MS, err, sizeof(err)))) {
			precopy_members(tmp, gen);
			t_park = co_now_ns(CLOCK_MONOTONIC); /* the pause starts here */
			if (getenv("COHORT_DEBUG"))
				co_warn("checkpoint %llu: prepared and pre-copied in %.1f ms", (unsigned long long)gen,
					(double)(t_park - t0) / 1e6);
		}
		progress_phase("snapshot", PC_NONE, 0);
		if (!bad)
			bad = barrier(CO_M_QUIESCED, gen, QUIESCE_TIMEOUT_MS, err, sizeof(err));
		/* without a pre-copy each member ran on until it had PREPARE (and prepared, prep_ns below) */
		for (int i = 0; !precopy && i < G.nc; i++)
			if (G.c[i].kind == C_MEMBER && G.c[i].part && G.c[i].prepare_ns &&
			    (t_park == t0 || G.c[i].prepare_ns < t_park))
				t_park = G.c[i].prepare_ns;
	}
	/*
	 * Every process of the group must now be a parked member, or a zombie.
	 * One forked just before its parent parked may still be registering
	 * (in fork, or exec'ing a new program): it joins this checkpoint.
	 */
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int nps = 0;
	uint64_t late_deadline = co_now_ns(CLOCK_MONOTONIC) + 10000000000ULL;
	while (!bad) {
		nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
		int late = -1;
		for (int i = 0; i < nps && late < 0; i++)
			if (ps[i].ids.state != 'Z' && (ps[i].member < 0 || !G.c[ps[i].member].answered))
				late = i;
		if (late < 0)
			break;
		if (co_now_ns(CLOCK_MONOTONIC) > late_deadline) {
			why_absent(ps[late].host, ps[late].ids.pid, ps[late].member >= 0, err, sizeof(err));
			bad = 1;
			break;
		}
		pump(20, gen);
		bad = barrier_more(CO_M_QUIESCED, gen, QUIESCE_TIMEOUT_MS, err, sizeof(err), 0);
	}
	if (!bad && nps <= 0) {
		/* its last process ended while we waited: there is nothing to save */
		snprintf(err, sizeof(err), "the group ended during the checkpoint");
		bad = 1;
	}
	/* nothing of the group runs now: its clocks as they stand */
	uint64_t mono = co_now_ns(CLOCK_MONOTONIC) + (uint64_t)G.mono_off;
	uint64_t boot = co_now_ns(CLOCK_BOOTTIME) + (uint64_t)G.boot_off;
	uint64_t t_quiesced = co_now_ns(CLOCK_MONOTONIC), t_release = 0;
	int released = 0;
	if (!bad) {
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
		progress_phase("writing images", PC_FILES, precopy || parent ? 0 : members_memory(0));
		int sbad = co_shared_dump(tmp, sm, nsm, G.table, serr, sizeof(serr));
		for (int i = 0; i < G.nc && !bad; i++)
			if (G.c[i].kind == C_MEMBER && G.c[i].part)
				bad = record_creds(&G.c[i], err, sizeof(err)) ||
				      send_dump(&G.c[i], tmp, flags & CO_CKPT_STOP, err, sizeof(err));
		/* every member has a snapshot (or its whole image): the group may run again */
		if (!bad)
			bad = barrier(CO_M_SNAPSHOT, 0, DUMP_TIMEOUT_MS, err, sizeof(err));
		if (!bad && sbad) {
			snprintf(err, sizeof(err), "%s", serr);
			bad = 1;
		}
		if (!bad && !(flags & CO_CKPT_KILL)) {
			broadcast(CO_M_RELEASE, (int64_t)gen, NULL);
			t_release = co_now_ns(CLOCK_MONOTONIC);
			released = 1;
		}
		if (!bad)
			bad = barrier(CO_M_DONE, 0, DUMP_TIMEOUT_MS, err, sizeof(err));
		uint64_t t_m = co_now_ns(CLOCK_MONOTONIC);
		if (!bad && precopy)
			bad = merge_precopies(tmp, gen, &precopied, err, sizeof(err));
		if (getenv("COHORT_DEBUG") && precopy)
			co_warn("checkpoint %llu: images written %.1f ms after the pause began, merged in %.1f ms",
				(unsigned long long)gen, (double)(t_m - t_park) / 1e6,
				(double)(co_now_ns(CLOCK_MONOTONIC) - t_m) / 1e6);
	}
	if (getenv("COHORT_DEBUG"))
		co_warn("checkpoint %llu: quiesce %.1f ms, dump %.1f ms", (unsigned long long)gen,
			(double)(t_quiesced - t0) / 1e6, (double)(co_now_ns(CLOCK_MONOTONIC) - t_quiesced) / 1e6);
	static struct co_mproc procs[CO_TABLE_SLOTS];
	int n = 0, incremental = 0, compress = G.compress || (flags & CO_CKPT_COMPRESS);
	uint64_t bytes = 0, raw_bytes = 0;
	if (!bad) {
		struct co_manifest m;
		memset(&m, 0, sizeof(m));
		snprintf(m.name, sizeof(m.name), "%s", G.name);
		m.generation = gen;
		m.parent = 0;
		m.kind = CO_GEN_FULL;
		m.created_ns = co_now_ns(CLOCK_REALTIME);
		m.mono_ns = mono;
		m.boot_ns = boot;
		m.sig = (uint32_t)G.sig;
		m.root_pid = G.root_pid;
		snprintf(m.program, sizeof(m.program), "%s", G.program);
		record_terminal(&m, ps, nps);
		/* the tree as the namespace sees it: parents, sessions, groups, zombies */
		for (int i = 0; i < nps; i++) {
			struct co_mproc *mp = &procs[n];
			memset(mp, 0, sizeof(*mp));
			mp->pid = ps[i].ids.pid;
			mp->pgid = ps[i].ids.pgid;
			mp->sid = ps[i].ids.sid;
			mp->ppid = ps[i].ids.host_ppid == G.init_pid ? 1 : 0;
			for (int k = 0; k < nps; k++)
				if (ps[k].host == ps[i].ids.host_ppid)
					mp->ppid = ps[k].ids.pid;
			if (ps[i].ids.state == 'Z') {
				mp->flags = CO_MP_ZOMBIE;
				mp->exit_status = ps[i].ids.exit_code;
			} else {
				/* its connection, as the scan found it: slots do not move (drop) */
				int ci = ps[i].member;
				if (ci < 0 || !G.c[ci].part) {
					snprintf(err, sizeof(err), "pid %d left the group during the checkpoint", mp->pid);
					bad = 1;
					break;
				}
				mp->bytes = G.c[ci].bytes;
				snprintf(mp->image, sizeof(mp->image), "proc-%d.img", G.c[ci].pid);
				const struct co_mproc *ids = &seen_creds[G.c[ci].slot];
				mp->creds = ids->creds;
				mp->ngroups = ids->ngroups;
				memcpy(mp->uid, ids->uid, sizeof(mp->uid));
				memcpy(mp->gid, ids->gid, sizeof(mp->gid));
				memcpy(mp->groups, ids->groups, sizeof(mp->groups));
				if (!image_written(tmp, mp, err, sizeof(err))) {
					bad = 1;
					break;
				}
				bytes += G.c[ci].bytes;
				if (parent && G.c[ci].incr_parent == parent) {
					mp->flags |= CO_MP_INCREMENTAL;
					m.kind = CO_GEN_INCREMENTAL;
					m.parent = parent;
					incremental = 1;
				}
			}
			n++;
		}
		m.nprocs = (uint32_t)n;
		raw_bytes = bytes;
		if (!bad && compress) {
			bad = compress_images(tmp, procs, n, err, sizeof(err));
			bytes = 0;
			for (int i = 0; i < n && !bad; i++) {
				char img[PATH_MAX];
				if (procs[i].flags & CO_MP_ZOMBIE)
					continue;
				snprintf(img, sizeof(img), "%s/%s", tmp, procs[i].image);
				procs[i].flags |= CO_MP_COMPRESSED;
				procs[i].bytes = co_img_bytes(img);
				bytes += procs[i].bytes;
			}
		}
		m.bytes = bytes;
		if (!bad && co_write_manifest(tmp, &m, procs, n) < 0) {
			snprintf(err, sizeof(err), "cannot write the manifest in %s: %s", tmp, strerror(errno));
			bad = 1;
		}
	}
	for (int i = 0; i < G.nc; i++)
		G.c[i].deferred = 0;
	if (bad) {
		if (!released)
			broadcast(CO_M_RELEASE, (int64_t)(gen - 1), NULL);
		end_sessions();
		co_remove_tree(tmp);
		reply(cfd, 1, "checkpoint of '%s' failed: %s", G.name, err);
		return;
	}
	int kill_it = flags & CO_CKPT_KILL;
	/* with --kill the group stays parked until it ends: a manager that is hung up on lets it go */
	if (!kill_it)
		end_sessions();
	progress_phase("committing", PC_FILES, 0);
	if (co_commit(tmp, gdir, gen, err, sizeof(err)) < 0) {
		if (kill_it)
			broadcast(CO_M_RELEASE, (int64_t)(gen - 1), NULL);
		end_sessions();
		co_remove_tree(tmp);
		reply(cfd, 1, "checkpoint of '%s' failed: %s", G.name, err);
		return;
	}
	uint64_t t_done = co_now_ns(CLOCK_MONOTONIC);
	if (kill_it) {
		/*
		 * The group ends parked: every process is killed at once, and its
		 * session stays open until it is gone (below).
		 */
		static struct nsproc ps[CO_TABLE_SLOTS * 2];
		int nps = scan_group(ps, (int)CO_ARRAY_LEN(ps));
		for (int i = 0; i < nps; i++)
			kill(ps[i].host, SIGKILL);
		kill(G.init_pid, SIGKILL);
		/*
		 * Init's end takes every process of its namespace with it, and
		 * only once they are all gone does its pidfd say it has ended.
		 * Only then are the members hung up on: a manager whose
		 * connection closes lets its threads go, and a program that ran
		 * on for that instant wrote what its restart writes again (a
		 * line printed twice).
		 */
		struct pollfd gone = { G.init_pidfd, POLLIN, 0 };
		while (poll(&gone, 1, 10000) < 0 && errno == EINTR)
			;
		end_sessions();
		t_release = t_done;
		G.killed_gen = gen;
		co_gen_dir(gdir, gen, G.killed_dir, sizeof(G.killed_dir));
	}
	G.table->generation = gen;
	G.last_committed = gen;
	if (G.argv && strcmp(G.command_dir, gdir) && co_group_command_write(gdir, G.argv) == 0)
		snprintf(G.command_dir, sizeof(G.command_dir), "%s", gdir);
	if (incremental)
		start_merge(gdir);
	if (G.keep)
		co_prune(gdir, G.keep);
	/*
	 * The pause starts when the first process parks: each prepares first
	 * (tracking new memory) while its program still runs, and says how long.
	 */
	int64_t prep = -1;
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].part && (prep < 0 || G.c[i].prep_ns < prep))
			prep = G.c[i].prep_ns;
	uint64_t t_pause = t_park + (prep > 0 && (uint64_t)prep < t_release - t_park ? (uint64_t)prep : 0);
	double pause_ms = (double)(t_release - t_pause) / 1e6, dur_ms = (double)(t_done - t0) / 1e6;
	char prog_pause[32] = "null"; /* --kill: the group never ran again */
	if (!kill_it)
		snprintf(prog_pause, sizeof(prog_pause), "%.2f", program_pause_ms(gen, t_pause));
	if (flags & CO_CKPT_JSON)
		reply(cfd, 0,
		      "{\"group\":\"%s\",\"generation\":%llu,\"kind\":\"%s\",\"parent\":%llu,\"processes\":%d,"
		      "\"bytes\":%llu,\"raw_bytes\":%llu,\"compressed\":%s,\"pause_ms\":%.2f,\"program_pause_ms\":%s,"
		      "\"duration_ms\":%.2f,\"precopied\":%d,\"directory\":\"%s/gen-%06llu\",\"killed\":%s}",
		      G.name, (unsigned long long)gen, incremental ? "incremental" : "full",
		      (unsigned long long)(incremental ? parent : 0), n, (unsigned long long)bytes,
		      (unsigned long long)raw_bytes, compress ? "true" : "false", pause_ms, prog_pause, dur_ms, precopied,
		      gdir, (unsigned long long)gen, kill_it ? "true" : "false");
	else if (compress)
		reply(cfd, 0,
		      "generation %llu of '%s' (%s): %d process%s, %llu bytes compressed from %llu, pause %.1f ms, "
		      "duration %.1f ms%s",
		      (unsigned long long)gen, G.name, incremental ? "incremental" : "full", n, n == 1 ? "" : "es",
		      (unsigned long long)bytes, (unsigned long long)raw_bytes, pause_ms, dur_ms,
		      kill_it ? ", group ended" : "");
	else
		reply(cfd, 0, "generation %llu of '%s' (%s): %d process%s, %llu bytes, pause %.1f ms, duration %.1f ms%s",
		      (unsigned long long)gen, G.name, incremental ? "incremental" : "full", n, n == 1 ? "" : "es",
		      (unsigned long long)bytes, pause_ms, dur_ms, kill_it ? ", group ended" : "");
}
