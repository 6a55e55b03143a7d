/*
 * migrate.c - `cohort migrate NAME --to ADDR:PORT --token-file FILE`: the
 * source side of a migration by pre-copy rounds (docs/architecture.md,
 * "Migration"; the stream: wire.h).
 *
 * While the group runs, its coordinator takes a full checkpoint and then
 * incremental ones (the pages written since), each committed here and
 * streamed, until what is left is small (precopy_rounds).  Then the stop:
 * a checkpoint with CO_CKPT_HOLD, incremental, committed here, the group
 * kept parked; it is streamed and the target restarts the chain.  Only
 * once the target says the group runs there is the coordinator told to
 * end it here (HOLD_END).  Any failure before that leaves the group
 * running here (HOLD_RESUME, or our connection to the coordinator
 * closing): nothing is ever lost, and the generations stay here like any
 * other.  --max-rounds 0 skips the rounds: stop-and-copy.  --postcopy:
 * the stop is written behind (CO_CKPT_BEHIND, behind.c) and committed
 * only after the group ends here, once post-copy has written its page
 * data from the group parked here (commit_behind).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include "boost.h"
#include "cli.h"
#include "progress.h"
#include "util.h"
#include "procfs.h"
#include "postcopy.h"
#include "wire.h"

#define MAX_PATHS 4096 /* distinct files a group holds that are compared with the target's */
#define MAX_SENT 256	/* generations one migration sends */
#define STOP_AHEAD_BYTES (64ULL << 20) /* a stop sent before the target answers its file list (stop_and_send) */

/* One checkpoint the coordinator took for us (its JSON reply). */
struct taken {
	uint64_t gen, bytes;
	int processes;
	double pause_ms;	/* its pause up to the commit (held: the group still stopped then) */
	double duration_ms;	/* from the request to the commit */
	char dir[PATH_MAX];	/* its directory here */
};

struct migration {
	const struct co_migrate_opts *o;
	struct co_wire w;
	int connected;		/* the stream is up and both sides proved the token */
	int coord;		/* the coordinator's connection, or -1 */
	int held;		/* the group is parked by our checkpoint (CO_CKPT_HOLD) */
	uint64_t gen;		/* the newest generation taken for us */
	int processes;
	char dir[PATH_MAX];	/* its directory here */
	uint64_t sent_gens[MAX_SENT]; /* the generations the target has committed (or gets now) */
	int nsent;
	int rounds;		/* pre-copy rounds streamed while the group ran */
	int taken;		/* checkpoints taken for us (committed here) */
	uint64_t round_bytes[MAX_SENT];
	uint64_t send_bytes, send_ns; /* what the rounds streamed, and in how long: the rate */
	uint64_t round_ns;	/* what the rounds took in all, checkpoint and sending (time_to_stop) */
	unsigned asked;		/* the flags of the checkpoint asked of the coordinator (ask, answer) */
	double pause_ms;	/* the stop's checkpoint, up to its commit */
	struct co_progress pr;	/* on a terminal: the round, bytes, rate, estimate */
	char label[32];		/* "round 2", "stop": what the progress line is about */
	/* CLOCK_MONOTONIC: the start; the stop's reply, files compared, sent, READY, RUNNING */
	uint64_t t_start, t_reply, t_compared, t_sent, t_ready, t_running;
	int stop_incremental;	/* the stop was incremental (the rounds converged: stop_whole) */
	struct co_postcopy_stats pc; /* --postcopy: what followed once the group ran there */
	/* --postcopy: the stop written behind (CO_CKPT_BEHIND), not committed yet: its directory, number, final directory */
	char behind[PATH_MAX];
	uint64_t behind_gen;
	char behind_dir[PATH_MAX];
	uint64_t t_committed;	/* ... committed once its page data was in */
	uint64_t t_done;	/* ... and when the target had it all (DONE) */
};

static struct migration M;

/* The migration failed: the other side and the coordinator are told, the group runs on; one line, exit 1. */
static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	char why[2048], kept[256] = "";
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	co_progress_end(&M.pr);
	int resumed = 0, held = M.held;
	static char coord_said[CO_MSG_TEXT];
	/*
	 * The target first (one message, not waited for): it ends the group
	 * restored there, and with it the file locks the coordinator here
	 * takes back before the group runs on (coord/hold_locks.c).
	 */
	if (M.connected) {
		char said[2100];
		snprintf(said, sizeof(said), "the source gave up: %s", why);
		co_wire_send(&M.w, CO_W_ABORT, 0, 0, said);
	}
	if (M.held) {
		static struct co_msgbuf mb;
		/* it resumes the group even if it never reads this: our connection's end says the same */
		resumed = !co_send(M.coord, CO_M_HOLD_RESUME, 0, 0, 0, NULL, -1) && !co_recv(M.coord, &mb, NULL) &&
			  mb.m.type == CO_M_REPLY && mb.m.a == 0;
		if (!resumed && mb.m.type == CO_M_REPLY && mb.m.a)
			snprintf(coord_said, sizeof(coord_said), "; %s", mb.text);
	}
	if (M.connected)
		co_wire_hang_up(&M.w);
	/* the rounds' generations are the group's own, committed here like any other */
	if (M.taken && M.coord >= 0)
		snprintf(kept, sizeof(kept), " (the generation%s it took, up to %llu, stay%s here)", M.taken == 1 ? "" : "s",
			 (unsigned long long)M.gen, M.taken == 1 ? "s" : "");
	co_die("migration of '%s' to %s failed: %s%s%s", M.o->name, M.o->to, why,
	       resumed || (!held && M.coord >= 0) ? "; the group runs on here"
	       : coord_said[0]			   ? coord_said
	       : held				   ? "; the group resumes here"
						   : "",
	       kept);
}

/* ---- connecting ---- */

static void connect_target(void)
{
	char host[256], port[16], err[1024];
	if (co_wire_addr(M.o->to, host, sizeof(host), port, sizeof(port)))
		co_usage("migrate: --to wants ADDR:PORT, not '%s'", M.o->to);
	static unsigned char key[4096];
	size_t keylen;
	co_wire_token(M.o->token_file, key, &keylen, sizeof(key));
	int fd = co_wire_connect(host, port, err, sizeof(err));
	if (fd < 0)
		fail("%s", err);
	co_wire_init(&M.w, fd, M.o->to);
	if (co_wire_auth_source(&M.w, key, keylen, err, sizeof(err)))
		fail("%s", err);
	memset(key, 0, sizeof(key));
	M.connected = 1;
}

/* What the target checks before anything large is sent: the group's name, our kernel, vdso and CPU. */
static void hello(void)
{
	static char text[CO_WIRE_TEXT], flags[CO_WIRE_TEXT - 512];
	struct utsname u;
	uname(&u);
	if (co_cpu_flags(flags, sizeof(flags)) < 0)
		flags[0] = 0;
	snprintf(text, sizeof(text), "%s\n%s\n%s", M.o->name, u.release, flags);
	static struct co_wire_msg m;
	char err[1024];
	if (co_wire_send(&M.w, CO_W_HELLO, co_vdso_size(), 0, text) || co_wire_recv(&M.w, &m, CO_W_OK, err, sizeof(err)))
		fail("%s", err);
}

/* ---- the group's checkpoints ---- */

/* The number after "key": in a JSON reply (0 when absent). */
static double json_num(const char *text, const char *key)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\":", key);
	const char *p = strstr(text, k);
	return p ? strtod(p + strlen(k), NULL) : 0;
}

/* The string after "key": (its escapes undone), in out. */
static void json_str(const char *text, const char *key, char *out, size_t n)
{
	char k[64];
	snprintf(k, sizeof(k), "\"%s\":\"", key);
	const char *p = strstr(text, k);
	size_t o = 0;
	for (p = p ? p + strlen(k) : ""; *p && *p != '"' && o + 1 < n; p++)
		out[o++] = *p == '\\' && p[1] ? *++p : *p;
	out[o] = 0;
}

/* The group's coordinator, before anything else is said: a group that is not here is not sent. */
static void connect_group(void)
{
	M.coord = co_connect_group(M.o->name);
	if (M.coord == CO_UNTRUSTED)
		fail("%s", co_connect_why());
	if (M.coord < 0)
		fail("no running group named '%s' here (see 'cohort list')", M.o->name);
}

/* The group's directory, which holds the generation's directory dir. */
static void group_dir(const char *dir, char *out, size_t n)
{
	snprintf(out, n, "%s", dir);
	char *slash = strrchr(out, '/');
	if (slash)
		*slash = 0;
}

/*
 * The coordinator went away in the middle of the migration (killed, or
 * the group finished): the group went with it (its init is the
 * coordinator's child).  Nothing runs anywhere now: the target is told to
 * give up, and we say which generation to restart it from here.
 */
static void coordinator_gone(void) __attribute__((noreturn));
static void coordinator_gone(void)
{
	char gdir[PATH_MAX];
	group_dir(M.dir, gdir, sizeof(gdir));
	uint64_t newest = M.dir[0] ? co_newest_generation(gdir) : 0;
	M.held = 0;
	close(M.coord);
	M.coord = -1;
	if (!newest)
		fail("the group's coordinator here ended before a generation was committed, and the group with it (it "
		     "finished, or was killed)");
	fail("the group's coordinator here ended during the migration, and the group with it (it finished, or was "
	     "killed): it runs nowhere; should it run again, restart it here with 'cohort restart %s' (generation "
	     "%llu, committed in %s)",
	     M.o->name, (unsigned long long)newest, gdir);
}

/*
 * One checkpoint by the coordinator (CO_CKPT_* flags, JSON reply), asked
 * (ask) and then answered (answer: its generation, directory and numbers
 * into t), with a round's sending in between at most.  With CO_CKPT_HOLD
 * the group stays parked once the reply has come (M.held): from then on
 * any failure resumes it (fail); before, our connection closing does.
 */
static void ask(unsigned flags)
{
	if (M.pr.fd >= 0)
		flags |= CO_CKPT_PROGRESS; /* its phases, drawn once answer() reads them */
	flags |= CO_CKPT_MIGRATING;	   /* the background merge waits for the migration's end */
	M.asked = flags | CO_CKPT_JSON;
	/* held from the moment it is sent: a coordinator that loses us resumes the group */
	if (co_send(M.coord, CO_M_CKPT_REQ, M.asked, 0, 0, NULL, -1))
		coordinator_gone();
}

static void answer(struct taken *t)
{
	static struct co_msgbuf mb;
	/* the checkpoint's own phases (the coordinator's), on a line of their own that ends with it */
	struct co_progress ck;
	co_progress_clear(&M.pr);
	co_progress_start(&ck, M.pr.fd, "migrate '%s': %s", M.o->name, M.label);
	if (co_recv_progress(M.coord, &mb, &ck))
		coordinator_gone();
	if (mb.m.type != CO_M_REPLY || mb.m.a)
		fail("%s", mb.m.type == CO_M_REPLY ? mb.text : "the coordinator answered something else");
	co_trace("migrate: %s: %.400s", M.label, mb.text);
	M.held = (M.asked & CO_CKPT_HOLD) != 0;
	M.taken++;
	memset(t, 0, sizeof(*t));
	t->gen = (uint64_t)json_num(mb.text, "generation");
	t->bytes = (uint64_t)json_num(mb.text, "bytes");
	t->processes = (int)json_num(mb.text, "processes");
	t->pause_ms = json_num(mb.text, "pause_ms");
	t->duration_ms = json_num(mb.text, "duration_ms");
	json_str(mb.text, "directory", t->dir, sizeof(t->dir));
	if (!t->gen || !t->dir[0])
		fail("the coordinator's reply names no generation: %.200s", mb.text);
	json_str(mb.text, "behind", M.behind, sizeof(M.behind));
	if (M.behind[0]) { /* written behind: not the group's until its page data is in (commit_behind) */
		M.taken--;
		M.behind_gen = t->gen;
		snprintf(M.behind_dir, sizeof(M.behind_dir), "%s", t->dir);
		snprintf(t->dir, sizeof(t->dir), "%s", M.behind);
		M.processes = t->processes;
		return;
	}
	snprintf(M.dir, sizeof(M.dir), "%s", t->dir);
	M.gen = t->gen;
	M.processes = t->processes;
}

static void take(unsigned flags, struct taken *t)
{
	ask(flags);
	answer(t);
}

/* ---- the files the group holds, compared with the target's ---- */

struct held_path {
	char path[CO_PATH];
	/*
	 * The group writes it: the generation holds a copy (CO_R_FCOPY), which
	 * the restart puts in place with --copy-files; its size and time move
	 * while the group runs.
	 */
	int written;
};
static struct held_path *paths;
static int npaths;

static void note_path(const char *p, int written)
{
	if (p[0] != '/')
		return;
	for (int i = 0; i < npaths; i++)
		if (!strcmp(paths[i].path, p)) {
			paths[i].written |= written;
			return;
		}
	if (npaths < MAX_PATHS) {
		snprintf(paths[npaths].path, CO_PATH, "%s", p);
		paths[npaths++].written = written;
	}
}

/* A path one record of an image names, when it is a regular file's (co_image_paths). */
static void note_record(unsigned t, const union co_path_rec *u, void *ctx)
{
	(void)ctx;
	if (t == CO_R_FD && u->fd.kind == CO_FD_REG)
		note_path(u->fd.path, 0);
	else if (t == CO_R_VMA && u->vma.kind == CO_V_FILE)
		note_path(u->vma.path, 0);
	else if (t == CO_R_SFILE)
		note_path(u->sf.path, 0);
	else if (t == CO_R_FCOPY)
		note_path(u->fc.path, 1);
}

/* The paths of the regular files one image of dir opens or maps (its fds, regions, shared files, copies). */
static void image_paths(const char *dir, const char *name)
{
	char err[1024];
	if (co_image_paths(dir, name, note_record, NULL, err, sizeof(err)))
		fail("%s", err);
}

/*
 * Each regular file generation t holds, with its size and mtime, for the
 * target to compare with its own; with --copy-files, one the generation
 * carries a copy of is named instead (FCOPY): the restart there puts it in
 * place.  Asked after the first round (a file that differs is found before
 * the rounds go on) and again at the stop, for what the group holds then.
 * After the first round the group runs on: a file it writes may have grown
 * between the stat here and the target's (one file both hosts see, or two
 * the group writes alike), so only that it is there is asked then (size
 * and time -1); the stop's list, with the group stopped, compares it.
 * The target answers OK, or REFUSED naming the first that differs
 * (files_answer).
 */
static void send_file_list(const struct taken *t, int running)
{
	static struct co_manifest m;
	static struct co_mproc procs[CO_TABLE_SLOTS];
	char err[1024];
	int n;
	if (co_read_manifest(t->dir, &m, procs, CO_TABLE_SLOTS, &n, err, sizeof(err)))
		fail("%s", err);
	if (!paths && !(paths = calloc(MAX_PATHS, sizeof(*paths))))
		fail("out of memory");
	npaths = 0;
	image_paths(t->dir, "shared.img");
	for (int i = 0; i < n; i++)
		if (!(procs[i].flags & CO_MP_ZOMBIE))
			image_paths(t->dir, procs[i].image);
	for (int i = 0; i < npaths; i++) {
		struct stat st;
		if (paths[i].written && M.o->copy_files) {
			if (co_wire_send(&M.w, CO_W_FCOPY, 0, 0, paths[i].path))
				fail("%s closed the connection", M.o->to);
			continue;
		}
		if (stat(paths[i].path, &st) < 0 || !S_ISREG(st.st_mode))
			continue; /* gone here too, or not a file: the restart itself has its say */
		int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
		int moving = running && paths[i].written;
		if (co_wire_send(&M.w, CO_W_FSTAT, moving ? -1 : (int64_t)st.st_size, moving ? -1 : mtime, paths[i].path))
			fail("%s closed the connection", M.o->to);
	}
	if (co_wire_send(&M.w, CO_W_FSTAT_END, 0, 0, NULL))
		fail("%s closed the connection", M.o->to);
}

static void files_answer(void)
{
	static struct co_wire_msg msg;
	char err[1024];
	if (co_wire_recv(&M.w, &msg, CO_W_OK, err, sizeof(err)))
		fail("%s", err);
}

static void compare_files(const struct taken *t, int running)
{
	send_file_list(t, running);
	files_answer();
}

/* ---- the generations ---- */

static int was_sent(uint64_t gen)
{
	for (int i = 0; i < M.nsent; i++)
		if (M.sent_gens[i] == gen)
			return 1;
	return 0;
}

/*
 * Generation gen (in the group's directory gdir), the manifest first (the
 * target checks each file against it), then each file it lists.  An
 * incremental one goes after its parent, if the target does not have it
 * yet (a timed checkpoint may have come between two rounds).  last: the
 * generation the target restarts (it answers READY); the others it
 * commits and answers OK.
 */
static void send_generation(const char *gdir, uint64_t gen, int last)
{
	static struct co_manifest m;
	static struct co_mproc procs[CO_TABLE_SLOTS];
	static struct co_mfile f[CO_TABLE_SLOTS * 3 + 4096];
	char dir[PATH_MAX], path[PATH_MAX], err[1024] = "";
	struct co_reader r;
	int n, nf;
	if (last && M.behind[0])
		snprintf(dir, sizeof(dir), "%s", M.behind); /* written behind: not committed yet */
	else
		co_gen_dir(gdir, gen, dir, sizeof(dir));
	int fd = co_open_gen_file(dir, "manifest", path, sizeof(path), &r, err, sizeof(err));
	if (fd < 0)
		fail("%s", err);
	int bad = co_manifest_read_files(&r, &m, procs, CO_TABLE_SLOTS, &n, f, (int)CO_ARRAY_LEN(f), &nf);
	if (bad)
		snprintf(err, sizeof(err), "%s", r.err);
	if (co_img_close(fd, err, sizeof(err)) || bad)
		fail("%s", err);
	uint64_t parent = m.kind == CO_GEN_INCREMENTAL ? m.parent : 0;
	if (parent && !was_sent(parent)) {
		send_generation(gdir, parent, 0); /* (m and f are static: read again below) */
		send_generation(gdir, gen, last);
		return;
	}
	if (M.nsent == MAX_SENT)
		fail("more than %d generations to send", MAX_SENT);
	if (co_wire_send(&M.w, CO_W_GEN, (int64_t)gen, last, NULL) ||
	    co_wire_send_file(&M.w, path, "manifest", NULL, err, sizeof(err)))
		fail("%s", err[0] ? err : "the connection was lost");
	for (int i = 0; i < nf; i++) {
		uint32_t nholes = 0;
		/* --postcopy: the stop's page data of lazy regions follows once the group runs there */
		const struct co_wire_hole *holes = last && M.o->postcopy ? co_postcopy_holes(f[i].name, &nholes) : NULL;
		snprintf(path, sizeof(path), "%s/%s", dir, f[i].name);
		/* the manifest's digest (files/N), or none: an image checks its own records */
		const uint64_t *listed = f[i].flags & CO_MF_DIGEST ? &f[i].digest : NULL;
		if (holes ? co_wire_send_sparse(&M.w, path, f[i].name, holes, nholes, listed, err, sizeof(err))
			  : co_wire_send_file(&M.w, path, f[i].name, listed, err, sizeof(err)))
			fail("%s", err);
		if (last)
			co_trace("migrate: %s sent", f[i].name);
	}
	if (co_wire_send(&M.w, CO_W_GEN_END, 0, 0, NULL))
		fail("%s closed the connection", M.o->to);
	M.sent_gens[M.nsent++] = gen;
	static struct co_wire_msg ok;
	if (!last && co_wire_recv(&M.w, &ok, CO_W_OK, err, sizeof(err)))
		fail("%s", err);
}

/* The next message is op, exactly; -1 with err otherwise. */
static int expect(unsigned op, const char *what, char *err, size_t errlen)
{
	static struct co_wire_msg m;
	if (co_wire_recv(&M.w, &m, op, err, errlen))
		return -1;
	if (m.op != op)
		return snprintf(err, errlen, "%s sent something else where %s was due", M.o->to, what), -1;
	return 0;
}

/* The target restarts the group: READY once every process is back there, parked. */
static void await_ready(void)
{
	char err[1024];
	co_progress_set(&M.pr, "stop: restoring there", 0, 0);
	/* --postcopy: the restore there may fault on pages still here (postcopy.c) */
	if (M.o->postcopy ? co_postcopy_until(&M.w, CO_W_READY, &M.pc, err, sizeof(err))
			  : expect(CO_W_READY, "READY", err, sizeof(err)))
		fail("%s", err);
	M.t_ready = co_now_ns(CLOCK_MONOTONIC);
	co_trace("migrate: READY");
	co_crash_point("ready"); /* tests: migrate killed with the group restored there, held here */
}

/*
 * The group ends here, and only then may it run there (GO): it never runs
 * on both sides.  Its run or restart here prints where it went.  A
 * coordinator that does not confirm the end: the target is told to give
 * up (the group is ended here or runs on, never in two places).
 */
static void end_here(void)
{
	static struct co_msgbuf mb;
	if (co_send(M.coord, CO_M_HOLD_END, 0, 0, 0, M.o->to, -1) || co_recv(M.coord, &mb, NULL))
		coordinator_gone(); /* it died holding the group, which died with it */
	int ended = mb.m.type == CO_M_REPLY && !mb.m.a;
	co_trace("migrate: ended here");
	M.held = 0;
	/*
	 * (written behind: its commit is still to come, commit_behind; else
	 * the coordinator, the group stopped, waits for us to hang up once
	 * RUNNING has come before it kills it: its teardown then takes no CPU
	 * from the switch, let_run; a failure or our end hangs up too)
	 */
	if (!ended) {
		close(M.coord);
		M.coord = -1;
	}
	if (!ended)
		fail("the group's coordinator here did not confirm its end, so it was not let run at %s", M.o->to);
}

/*
 * A stop written behind: every byte of its page data not yet written (by
 * the pushes) is written from the parked group's memory, and the
 * coordinator commits the generation, then ends the group.  0 (M.gen and
 * M.dir name it), or -1 with err: the generation is lost.
 */
static int commit_behind(char *err, size_t errlen)
{
	static struct co_msgbuf mb;
	if (!M.behind[0])
		return 0;
	M.behind[0] = 0;
	int bad = co_postcopy_fill_rest(&M.pc, err, errlen);
	if (!bad && (co_send(M.coord, CO_M_HOLD_COMMIT, 0, 0, 0, NULL, -1) || co_recv(M.coord, &mb, NULL)))
		bad = snprintf(err, errlen, "the group's coordinator here ended before the stop's generation %llu was "
			       "committed, its page data with it", (unsigned long long)M.behind_gen);
	else if (!bad && (mb.m.type != CO_M_REPLY || mb.m.a))
		bad = snprintf(err, errlen, "%s", mb.m.type == CO_M_REPLY ? mb.text : "the coordinator answered something else");
	close(M.coord);
	M.coord = -1;
	if (bad)
		return -1;
	M.gen = M.behind_gen;
	snprintf(M.dir, sizeof(M.dir), "%s", mb.text);
	M.taken++;
	M.t_committed = co_now_ns(CLOCK_MONOTONIC);
	co_trace("migrate: the stop's generation %llu committed", (unsigned long long)M.gen);
	return 0;
}

/*
 * commit_behind failed once the group ended here: one line, exit 1.  The
 * coordinator, hung up on before HOLD_COMMIT, writes what is left itself
 * (coord/hold.c) and commits, if the group's memory is still there.
 */
static void lost_behind(const char *what, const char *why) __attribute__((noreturn));
static void lost_behind(const char *what, const char *why)
{
	co_progress_end(&M.pr);
	co_die("group '%s' ended here, %s; its generation %llu here could not be completed (%s): the group's "
	       "coordinator here completes it if it can (its run says so), else the group, should it not run there, "
	       "is lost", M.o->name, what, (unsigned long long)M.behind_gen, why);
}

/* GO, and RUNNING back: it runs there.  Past the end here nothing can be called off: a failure says what to do. */
static void let_run(void)
{
	char err[1024] = "";
	M.connected = 0;
	if (co_wire_send(&M.w, CO_W_GO, 0, 0, NULL) ||
	    (M.o->postcopy ? co_postcopy_until(&M.w, CO_W_RUNNING, &M.pc, err, sizeof(err))
			   : expect(CO_W_RUNNING, "RUNNING", err, sizeof(err)))) {
		char cerr[1024];
		if (commit_behind(cerr, sizeof(cerr)))
			lost_behind("but its target did not confirm it runs there", cerr);
		co_progress_end(&M.pr);
		co_die("group '%s' ended here, but %s did not confirm it runs there (%s): if it does not, restart it "
		       "here with 'cohort restart %s' (generation %llu is committed in %s)",
		       M.o->name, M.o->to, err[0] ? err : "the connection was lost", M.o->name,
		       (unsigned long long)M.gen, M.dir);
	}
	M.t_running = co_now_ns(CLOCK_MONOTONIC);
	co_unboost();
	co_trace("migrate: RUNNING");
	if (!M.behind[0] && M.coord >= 0) { /* the group here may be torn down now (end_here) */
		close(M.coord);
		M.coord = -1;
	}
}

/*
 * --postcopy: the group runs there, its stop's pages still coming from
 * here.  A failure now cannot be undone: the group there ends (its page
 * fillers fail), and the stop's generation, committed here, is where it
 * restarts from.
 */
static void post_copy(void)
{
	char err[1024];
	co_progress_set(&M.pr, "post-copy", 0, 0);
	int cut = co_postcopy_serve(&M.w, &M.pc, err, sizeof(err));
	M.t_done = co_now_ns(CLOCK_MONOTONIC);
	char cerr[1024];
	/* the stop's page data, what post-copy did not write of it, then its commit: the generation to restart from */
	if (commit_behind(cerr, sizeof(cerr))) {
		char what[1200];
		snprintf(what, sizeof(what), "it runs at %s%s%s%s", M.o->to, cut ? " but post-copy was cut (" : "",
			 cut ? err : "", cut ? ")" : "");
		lost_behind(what, cerr);
	}
	if (cut) {
		co_progress_end(&M.pr);
		co_die("group '%s' runs at %s, but post-copy was cut (%s): it ends there, its pages being here; restart "
		       "it here with 'cohort restart %s --generation %llu' (committed in %s)",
		       M.o->name, M.o->to, err, M.o->name, (unsigned long long)M.gen, M.dir);
	}
	close(M.w.fd);
}

/* ---- the rounds ---- */

/* Bytes a second the rounds were streamed at (0: not measured yet). */
static double rate(void)
{
	return M.send_ns ? (double)M.send_bytes * 1e9 / (double)M.send_ns : 0;
}

/* The progress line's phase for sending n bytes: the estimate of how long, once a rate was measured. */
static void sending(uint64_t n)
{
	char phase[32];
	double r = rate();
	if (r > 0)
		snprintf(phase, sizeof(phase), "%s: sending, ~%.1f s", M.label, (double)n / r);
	else
		snprintf(phase, sizeof(phase), "%s: sending", M.label);
	co_progress_set(&M.pr, phase, 0, n);
}

/* Stream generation t (not the last), measured for the rate; its checkpoint began at t_take. */
static void stream_round(const struct taken *t, uint64_t t_take)
{
	char gdir[PATH_MAX];
	group_dir(t->dir, gdir, sizeof(gdir));
	sending(t->bytes);
	uint64_t b0 = M.w.sent, t0 = co_now_ns(CLOCK_MONOTONIC);
	send_generation(gdir, t->gen, 0);
	M.send_bytes += M.w.sent - b0;
	M.send_ns += co_now_ns(CLOCK_MONOTONIC) - t0;
	M.round_ns += co_now_ns(CLOCK_MONOTONIC) - t_take;
	M.round_bytes[M.rounds++] = M.w.sent - b0;
	co_crash_point("round"); /* tests: a round is over (STEP:/FILE waits there, for the link to be cut) */
}

/*
 * Did the rounds fail to converge (the last still carried half as much as
 * the first: the program writes about as fast as the link sends)?  Then
 * an incremental stop would carry about the whole memory anyway, and the
 * target would merge a chain as large as the memory twice over before it
 * restarts it; a whole stop is restarted as it comes.
 */
static int stop_whole(void)
{
	int k = M.rounds - 1;
	return k >= 1 && M.round_bytes[k] * 2 >= M.round_bytes[0];
}

/* Would bytes go in --downtime-ms at the rate the rounds went? */
static int fits(uint64_t bytes)
{
	double r = M.round_ns ? (double)M.send_bytes * 1e9 / (double)M.round_ns : 0;
	return r > 0 && (double)bytes * 1000.0 / r <= M.o->downtime_ms;
}

/* Did round k carry at least as much as the one before? */
static int grew(int k)
{
	return k >= 1 && M.round_bytes[k] >= M.round_bytes[k - 1];
}

/*
 * Is it time for the stop?  What the last round sent is about what the
 * next would send (the pages written while a round goes): the stop comes
 * once that fits in --downtime-ms at the rate the rounds went (bytes over
 * what their checkpoints and sending took: the stop writes its bytes too,
 * then sends them, the group stopped), or no longer shrinks, or after
 * --max-rounds.  (At the sending rate alone 10 MB passed for 20 ms, and
 * the stop took twice that.)  Not shrinking while half the memory still
 * comes: the program writes as fast as we send, and more rounds are
 * wasted.  Otherwise one round that grew is given one more: on a busy
 * machine a round slowed down now and then and carried more, and the stop
 * that came right after it carried 60 MB instead of 5 (docs/benchmarks.md,
 * "The stop on a busy machine").
 */
static int time_to_stop(void)
{
	int k = M.rounds - 1;
	if (M.rounds >= M.o->max_rounds || fits(M.round_bytes[k]))
		return 1;
	return grew(k) && (stop_whole() || grew(k - 1));
}

/*
 * The stop's flags: held; incremental unless whole.  With --postcopy a
 * whole stop is written behind (its memory read from the parked group as
 * it is sent); an incremental one after rounds that converged carries a
 * few MB, which the snapshot writes in ~5 ms, where each process writing
 * its own image, as a stop written behind must, took ~25 ms (1 GiB at
 * 1 %): its page data then follows from its committed files.
 */
static unsigned stop_flags(void)
{
	int behind = M.o->postcopy && !M.stop_incremental;
	unsigned small = M.stop_incremental ? CO_CKPT_INCREMENTAL | CO_CKPT_BOOST : 0;
	return CO_CKPT_HOLD | small | (behind ? CO_CKPT_BEHIND : 0);
}

/*
 * Pre-copy: while the group runs, a full generation (round 0: the memory
 * read ahead, the program paused for the snapshot only), then
 * incrementals of the pages written since, each committed here and
 * streamed, until time_to_stop.  The files the group holds are compared
 * after the first checkpoint, before its bulk is sent.
 */
static void precopy_rounds(void)
{
	static struct taken t;
	do {
		uint64_t t_take = co_now_ns(CLOCK_MONOTONIC);
		snprintf(M.label, sizeof(M.label), "round %d", M.rounds);
		/*
		 * After round 0 every process counts its written pages from the
		 * last round, and its image needs no pre-copy: asked without one,
		 * it parks at once instead of answering ARMED, leaving, and being
		 * signalled again for QUIESCE (~5 ms of every round, and what the
		 * program writes meanwhile goes to the stop).  One born since
		 * takes a whole image from a full snapshot fork.  Its pause is
		 * the program's downtime too: ahead of the machine's other work
		 * (CO_CKPT_BOOST, boost.h), the coordinator's and the agents'
		 * part of it (a busy machine made round 1's pause 55 ms, the
		 * snapshot fork of 1 GiB waiting for a CPU).
		 */
		take(M.rounds ? CO_CKPT_INCREMENTAL | CO_CKPT_NO_PRECOPY | CO_CKPT_BOOST : 0, &t);
		if (!M.rounds)
			compare_files(&t, 1);
		stream_round(&t, t_take);
	} while (!time_to_stop());
}

/*
 * The stop: a checkpoint that holds the group parked (CO_CKPT_HOLD), of
 * the pages written since the last round (incremental; whole without
 * rounds, or when they did not converge), the files compared again, and
 * the generation the target restarts.
 */
static void stop_and_send(void)
{
	static struct taken t;
	char gdir[PATH_MAX];
	snprintf(M.label, sizeof(M.label), "stop");
	/*
	 * Asked once the last round is sent, not while it crosses: the agents
	 * now park in ~1 ms, and a stop that parked beside the last round's
	 * sending, receiving and indexing (both hosts' work on this machine's
	 * two CPUs) took 5-8 ms more than one that came after it (16-27 ms
	 * against 13-21 ms, docs/benchmarks.md).
	 */
	M.stop_incremental = M.rounds && !stop_whole();
	/* a few MB to send: ahead of the machine's other work until the group runs there (let_run) */
	if (M.stop_incremental && co_boost())
		co_trace("migrate: the stop at SCHED_FIFO 1");
	ask(stop_flags());
	answer(&t);
	M.t_reply = co_now_ns(CLOCK_MONOTONIC);
	co_trace("migrate: the stop's generation %llu %s", (unsigned long long)t.gen,
		 M.behind[0] ? "written, its page data behind" : "committed");
	M.pause_ms = t.pause_ms;
	/*
	 * A stop the target can drain after it refused (it reads what still
	 * comes for 5 s, co_wire_hang_up) goes right behind its file list, and
	 * the answer is read after it: the target answers only once it has
	 * indexed the last round (index_ahead, receive.c), and the round trip
	 * and that wait are no longer the program's.
	 */
	int ahead = t.bytes <= STOP_AHEAD_BYTES;
	if (ahead)
		send_file_list(&t, 0);
	else
		compare_files(&t, 0);
	M.t_compared = co_now_ns(CLOCK_MONOTONIC);
	co_trace("migrate: the stop's files %s", ahead ? "listed" : "compared");
	sending(t.bytes);
	group_dir(M.behind[0] ? M.behind_dir : t.dir, gdir, sizeof(gdir));
	char err[1024];
	if (M.o->postcopy && co_postcopy_plan(t.dir, err, sizeof(err)))
		fail("%s", err);
	send_generation(gdir, t.gen, 1);
	if (ahead)
		files_answer();
	M.t_sent = co_now_ns(CLOCK_MONOTONIC);
	co_trace("migrate: the stop's generation sent");
}

/* Milliseconds from a to b (CLOCK_MONOTONIC ns). */
static double ms(uint64_t a, uint64_t b)
{
	return (double)(b - a) / 1e6;
}

static void result(void)
{
	co_progress_end(&M.pr);
	double down = M.pause_ms + (double)(M.t_running - M.t_reply) / 1e6;
	double dur = (double)(co_now_ns(CLOCK_MONOTONIC) - M.t_start) / 1e6;
	unsigned long long bytes = M.w.sent + M.pc.bytes, gen = M.gen;
	const char *mode = M.o->postcopy ? "post-copy" : M.rounds ? "pre-copy" : "stop-and-copy";
	char pc[256] = "";
	if (M.o->postcopy)
		snprintf(pc, sizeof(pc), ",\"postcopy_ms\":%.2f,\"postcopy_bytes\":%llu,\"requests\":%llu,"
			 "\"behind_bytes\":%llu,\"requests_behind\":%llu,\"committed_ms\":%.2f",
			 ms(M.t_running, M.t_done), (unsigned long long)M.pc.bytes, (unsigned long long)M.pc.requests,
			 (unsigned long long)M.pc.behind, (unsigned long long)M.pc.requests_behind,
			 M.t_committed ? ms(M.t_running, M.t_committed) : 0.0);
	if (M.o->json) {
		char name[256], to[512], rb[MAX_SENT * 24 + 8];
		size_t o = 0;
		for (int i = 0; i < M.rounds && o < sizeof(rb) - 24; i++)
			o += (size_t)snprintf(rb + o, sizeof(rb) - o, "%s%llu", i ? "," : "",
					      (unsigned long long)M.round_bytes[i]);
		rb[o] = 0;
		/* where the downtime went: the stop's checkpoint, the files compared, the last generation sent,
		 * committed and restored there (READY), the group ended here and released there (RUNNING) */
		printf("{\"group\":\"%s\",\"to\":\"%s\",\"generation\":%llu,\"rounds\":%d,\"round_bytes\":[%s],"
		       "\"bytes\":%llu,\"downtime_ms\":%.2f,\"duration_ms\":%.2f,\"processes\":%d,\"mode\":\"%s\","
		       "\"stop\":\"%s\",\"copy_files\":%s,\"downtime_phases_ms\":{\"checkpoint\":%.2f,\"files\":%.2f,\"sending\":%.2f,"
		       "\"restoring\":%.2f,\"switching\":%.2f}%s}\n",
		       co_json_esc(M.o->name, name, sizeof(name)), co_json_esc(M.o->to, to, sizeof(to)), gen, M.rounds,
		       rb, bytes, down, dur, M.processes, mode, M.stop_incremental ? "incremental" : "whole",
		       M.o->copy_files ? "true" : "false", M.pause_ms,
		       ms(M.t_reply, M.t_compared), ms(M.t_compared, M.t_sent), ms(M.t_sent, M.t_ready),
		       ms(M.t_ready, M.t_running), pc);
	} else {
		char after[128] = "";
		if (M.o->postcopy)
			snprintf(after, sizeof(after), ", post-copy %llu bytes in %.1f ms", (unsigned long long)M.pc.bytes,
				 ms(M.t_running, M.t_done));
		printf("group '%s' migrated to %s: generation %llu, %d process%s, %d round%s, %llu bytes, "
		       "downtime %.1f ms, duration %.1f ms%s\n",
		       M.o->name, M.o->to, gen, M.processes, M.processes == 1 ? "" : "es", M.rounds,
		       M.rounds == 1 ? "" : "s", bytes, down, dur, after);
	}
}

int co_cmd_migrate(const struct co_migrate_opts *o)
{
	M.o = o;
	M.coord = -1;
	M.t_start = co_now_ns(CLOCK_MONOTONIC);
	signal(SIGPIPE, SIG_IGN); /* a target that hangs up is an error to report, not our end */
	co_progress_start(&M.pr, STDERR_FILENO, "migrate '%s'", o->name);
	connect_target();
	M.w.pr = &M.pr;
	connect_group();
	hello();
	if (o->max_rounds)
		precopy_rounds();
	stop_and_send();
	await_ready();
	end_here();
	let_run();
	if (o->postcopy)
		post_copy();
	result();
	return 0;
}
