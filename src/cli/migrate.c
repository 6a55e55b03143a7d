/*
 * migrate.c - `cohort migrate NAME --to ADDR:PORT --token-file FILE`: the
 * source side of a migration by stop-and-copy (docs/architecture.md,
 * "Migration"; the stream: wire.h).
 *
 * The group is checkpointed by its coordinator with CO_CKPT_HOLD: the
 * generation is committed here and the group stays parked.  The
 * generation is streamed to the target, which restarts it; only once the
 * target says the group runs there is the coordinator told to end it here
 * (HOLD_END).  Any failure before that resumes the group here
 * (HOLD_RESUME, or our connection to the coordinator closing): nothing is
 * ever lost, and the generation stays here like any other.
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
#include "cli.h"
#include "util.h"
#include "procfs.h"
#include "wire.h"

#define MAX_PATHS 4096 /* distinct files a group holds that are compared with the target's */

struct migration {
	const struct co_migrate_opts *o;
	struct co_wire w;
	int connected;		/* the stream is up and both sides proved the token */
	int coord;		/* the coordinator's connection, or -1 */
	int held;		/* the group is parked by our checkpoint (CO_CKPT_HOLD) */
	uint64_t gen;
	int processes;
	double pause_ms;	/* the checkpoint's pause up to its commit */
	char dir[PATH_MAX];	/* the generation's directory here */
	uint64_t t_start, t_reply, t_running;
};

static struct migration M;

/* The migration failed: the other side and the coordinator are told, the group runs on; one line, exit 1. */
static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	char why[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	int resumed = 0;
	if (M.held) { /* first: the group waits for nothing else */
		static struct co_msgbuf mb;
		/* it resumes the group even if it never reads this: our connection's end says the same */
		resumed = !co_send(M.coord, CO_M_HOLD_RESUME, 0, 0, 0, NULL, -1) && !co_recv(M.coord, &mb, NULL) &&
			  mb.m.type == CO_M_REPLY && mb.m.a == 0;
	}
	if (M.connected) {
		char said[2100];
		snprintf(said, sizeof(said), "the source gave up: %s", why);
		co_wire_send(&M.w, CO_W_ABORT, 0, 0, said);
		co_wire_hang_up(&M.w);
	}
	co_die("migration of '%s' to %s failed: %s%s", M.o->name, M.o->to, why,
	       resumed ? "; the group runs on here" : M.held ? "; the group resumes here" : "");
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
	struct co_wire_msg *m = malloc(sizeof(*m));
	char err[1024];
	if (!m || co_wire_send(&M.w, CO_W_HELLO, co_vdso_size(), 0, text) ||
	    co_wire_recv(&M.w, m, CO_W_OK, err, sizeof(err)))
		fail("%s", m ? err : "out of memory");
	free(m);
}

/* ---- the checkpoint that holds the group ---- */

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

static void hold_group(void)
{
	static struct co_msgbuf mb;
	/* held from the moment it is sent: a coordinator that loses us resumes the group */
	if (co_send(M.coord, CO_M_CKPT_REQ, CO_CKPT_HOLD | CO_CKPT_JSON, 0, 0, NULL, -1))
		fail("group '%s': the coordinator did not answer", M.o->name);
	do
		if (co_recv(M.coord, &mb, NULL))
			fail("group '%s': the coordinator did not answer", M.o->name);
	while (mb.m.type == CO_M_PROGRESS);
	if (mb.m.type != CO_M_REPLY || mb.m.a)
		fail("%s", mb.m.type == CO_M_REPLY ? mb.text : "the coordinator answered something else");
	M.held = 1;
	M.t_reply = co_now_ns(CLOCK_MONOTONIC);
	M.gen = (uint64_t)json_num(mb.text, "generation");
	M.processes = (int)json_num(mb.text, "processes");
	M.pause_ms = json_num(mb.text, "pause_ms");
	json_str(mb.text, "directory", M.dir, sizeof(M.dir));
	if (!M.gen || !M.dir[0])
		fail("the coordinator's reply names no generation: %.200s", mb.text);
}

/* ---- the files the group holds, compared with the target's ---- */

static char (*paths)[CO_PATH];
static int npaths;

static void note_path(const char *p)
{
	if (p[0] != '/')
		return;
	for (int i = 0; i < npaths; i++)
		if (!strcmp(paths[i], p))
			return;
	if (npaths < MAX_PATHS)
		snprintf(paths[npaths++], CO_PATH, "%s", p);
}

/* The paths of the regular files one image of the generation opens or maps (its fds, regions, shared files). */
static void image_paths(const char *name)
{
	static union {
		struct co_fd fd;
		struct co_vma vma;
		struct co_sfile sf;
	} u;
	char path[PATH_MAX], err[1024];
	struct co_reader r;
	int fd = co_open_gen_file(M.dir, name, path, sizeof(path), &r, err, sizeof(err));
	if (fd < 0)
		fail("%s", err);
	int e, bad = 0;
	while (!bad && (e = co_r_next(&r)) == 1) {
		unsigned t = r.hdr.type;
		if (t != CO_R_FD && t != CO_R_VMA && t != CO_R_SFILE) {
			bad = co_r_finish(&r);
			continue;
		}
		memset(&u, 0, sizeof(u));
		bad = co_r_payload(&r, &u, t == CO_R_FD ? sizeof(u.fd) : t == CO_R_VMA ? sizeof(u.vma) : sizeof(u.sf));
		if (!bad && t == CO_R_FD && u.fd.kind == CO_FD_REG)
			note_path(u.fd.path);
		else if (!bad && t == CO_R_VMA && u.vma.kind == CO_V_FILE)
			note_path(u.vma.path);
		else if (!bad && t == CO_R_SFILE)
			note_path(u.sf.path);
	}
	bad |= e < 0;
	if (bad)
		snprintf(err, sizeof(err), "%s", r.err);
	if (co_img_close(fd, err, sizeof(err)) || bad)
		fail("%s", err);
}

/* Each regular file the group holds, with its size and mtime, for the target to compare with its own. */
static void compare_files(void)
{
	static struct co_manifest m;
	static struct co_mproc procs[CO_TABLE_SLOTS];
	char err[1024];
	int n;
	if (co_read_manifest(M.dir, &m, procs, CO_TABLE_SLOTS, &n, err, sizeof(err)))
		fail("%s", err);
	paths = calloc(MAX_PATHS, CO_PATH);
	if (!paths)
		fail("out of memory");
	image_paths("shared.img");
	for (int i = 0; i < n; i++)
		if (!(procs[i].flags & CO_MP_ZOMBIE))
			image_paths(procs[i].image);
	for (int i = 0; i < npaths; i++) {
		struct stat st;
		if (stat(paths[i], &st) < 0 || !S_ISREG(st.st_mode))
			continue; /* gone here too, or not a file: the restart itself has its say */
		int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
		if (co_wire_send(&M.w, CO_W_FSTAT, (int64_t)st.st_size, mtime, paths[i]))
			fail("%s closed the connection", M.o->to);
	}
	free(paths);
	struct co_wire_msg *msg = malloc(sizeof(*msg));
	if (!msg || co_wire_send(&M.w, CO_W_FSTAT_END, 0, 0, NULL) || co_wire_recv(&M.w, msg, CO_W_OK, err, sizeof(err)))
		fail("%s", msg ? err : "out of memory");
	free(msg);
}

/* ---- the generation ---- */

/* Every file of the generation: the manifest first (the target checks each file against it), then each it lists. */
static void send_generation(void)
{
	static struct co_manifest m;
	static struct co_mproc procs[CO_TABLE_SLOTS];
	static struct co_mfile f[CO_TABLE_SLOTS * 3 + 4096];
	char path[PATH_MAX], err[1024];
	struct co_reader r;
	int n, nf;
	int fd = co_open_gen_file(M.dir, "manifest", path, sizeof(path), &r, err, sizeof(err));
	if (fd < 0)
		fail("%s", err);
	int bad = co_manifest_read_files(&r, &m, procs, CO_TABLE_SLOTS, &n, f, (int)CO_ARRAY_LEN(f), &nf);
	if (bad)
		snprintf(err, sizeof(err), "%s", r.err);
	if (co_img_close(fd, err, sizeof(err)) || bad)
		fail("%s", err);
	if (co_wire_send(&M.w, CO_W_GEN, (int64_t)M.gen, 0, NULL) ||
	    co_wire_send_file(&M.w, path, "manifest", err, sizeof(err)))
		fail("%s", err[0] ? err : "the connection was lost");
	for (int i = 0; i < nf; i++) {
		snprintf(path, sizeof(path), "%s/%s", M.dir, f[i].name);
		if (co_wire_send_file(&M.w, path, f[i].name, err, sizeof(err)))
			fail("%s", err);
	}
	if (co_wire_send(&M.w, CO_W_GEN_END, 0, 0, NULL))
		fail("%s closed the connection", M.o->to);
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
	if (expect(CO_W_READY, "READY", err, sizeof(err)))
		fail("%s", err);
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
	int ended = !co_send(M.coord, CO_M_HOLD_END, 0, 0, 0, M.o->to, -1) && !co_recv(M.coord, &mb, NULL) &&
		    mb.m.type == CO_M_REPLY && !mb.m.a;
	M.held = 0;
	close(M.coord);
	if (!ended)
		fail("the group's coordinator here did not confirm its end, so it was not let run at %s", M.o->to);
}

/* GO, and RUNNING back: it runs there.  Past the end here nothing can be called off: a failure says what to do. */
static void let_run(void)
{
	char err[1024] = "";
	M.connected = 0;
	if (co_wire_send(&M.w, CO_W_GO, 0, 0, NULL) || expect(CO_W_RUNNING, "RUNNING", err, sizeof(err)))
		co_die("group '%s' ended here, but %s did not confirm it runs there (%s): if it does not, restart it "
		       "here with 'cohort restart %s' (generation %llu is committed in %s)",
		       M.o->name, M.o->to, err[0] ? err : "the connection was lost", M.o->name,
		       (unsigned long long)M.gen, M.dir);
	M.t_running = co_now_ns(CLOCK_MONOTONIC);
}

static void result(void)
{
	double down = M.pause_ms + (double)(M.t_running - M.t_reply) / 1e6;
	double dur = (double)(co_now_ns(CLOCK_MONOTONIC) - M.t_start) / 1e6;
	unsigned long long bytes = M.w.sent, gen = M.gen;
	if (M.o->json) {
		char name[256], to[512];
		printf("{\"group\":\"%s\",\"to\":\"%s\",\"generation\":%llu,\"rounds\":0,\"bytes\":%llu,"
		       "\"downtime_ms\":%.2f,\"duration_ms\":%.2f,\"processes\":%d,\"mode\":\"stop-and-copy\"}\n",
		       co_json_esc(M.o->name, name, sizeof(name)), co_json_esc(M.o->to, to, sizeof(to)), gen, bytes,
		       down, dur, M.processes);
	} else {
		printf("group '%s' migrated to %s: generation %llu, %d process%s, %llu bytes, downtime %.1f ms, "
		       "duration %.1f ms\n",
		       M.o->name, M.o->to, gen, M.processes, M.processes == 1 ? "" : "es", bytes, down, dur);
	}
}

int co_cmd_migrate(const struct co_migrate_opts *o)
{
	M.o = o;
	M.coord = -1;
	M.t_start = co_now_ns(CLOCK_MONOTONIC);
	signal(SIGPIPE, SIG_IGN); /* a target that hangs up is an error to report, not our end */
	connect_target();
	connect_group();
	hello();
	hold_group();
	compare_files();
	send_generation();
	await_ready();
	end_here();
	let_run();
	result();
	return 0;
}
