/*
 * receive.c - `cohort receive --listen ADDR:PORT --token-file FILE`: the
 * target side of a migration (docs/architecture.md, "Migration"; the
 * stream: wire.h).
 *
 * It accepts one connection, and takes nothing from it until the peer has
 * proved it knows the token.  It refuses, before anything large comes,
 * what it could not restore here (another kernel or vdso, CPU features
 * it lacks, a file the group holds that differs here); then writes the
 * generation into IMAGES/NAME as a checkpoint writes one (a temporary
 * directory, every file checked against the manifest, fsynced, renamed)
 * and restarts it exactly as `cohort restart` does, in the foreground.
 * Until the group runs here, any failure discards what was received.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>
#include "boost.h"
#include "cli.h"
#include "util.h"
#include "procfs.h"
#include "postcopy.h"
#include "wire.h"
#include "pindex.h"

#define MAX_GENS 256 /* generations one migration brings (its rounds) */

struct reception {
	const struct co_receive_opts *o;
	struct co_wire w;
	pid_t self;		/* the atexit handler acts in this process only, not in a child that exits */
	char name[CO_NAME_MAX + 1];
	char gdir[PATH_MAX];
	char tmp[PATH_MAX];	/* IMAGES/NAME/.tmp-gen-N while a generation comes */
	int lock_fd;
	uint64_t gen;		/* the generation coming, then the last: the one restarted */
	/*
	 * The generations of this migration, oldest first: each waits in its
	 * .tmp-gen-N, checked, until the last has come; then all are
	 * committed.  A receiver killed before leaves only temporary
	 * directories (removed by the next run, restart or receive of the
	 * group): never a generation one could restart here while the group
	 * runs on at the source.
	 */
	uint64_t gens[MAX_GENS];
	uint64_t parent[MAX_GENS];	/* gens[i]'s parent generation, 0 for a full one */
	int ngens, ncommitted, running;
	int postcopy;		/* the stop's pages come after (postcopy.c): its process owns the stream */
	char why[1024];		/* why the group was not let run here (on_ready) */
	struct co_wire_msg m;	/* the message being handled */
};

static struct reception R;

/* Where generation g waits until it is committed. */
static void tmp_dir(uint64_t g, char *out, size_t n)
{
	snprintf(out, n, "%s/.tmp-gen-%06llu", R.gdir, (unsigned long long)g);
}

/*
 * Nothing of a migration that failed stays: the generations received
 * (newest first: never a child without its parent), and the full images
 * the restart may have merged of them.
 */
static void discard(void)
{
	char dir[PATH_MAX];
	if (R.tmp[0])
		co_remove_tree(R.tmp);
	R.tmp[0] = 0;
	while (R.ngens > 0 && !R.running) {
		uint64_t g = R.gens[--R.ngens];
		if (R.ngens < R.ncommitted)
			co_gen_dir(R.gdir, g, dir, sizeof(dir));
		else
			tmp_dir(g, dir, sizeof(dir));
		co_remove_tree(dir);
		co_full_dir(R.gdir, g, dir, sizeof(dir));
		co_remove_tree(dir);
	}
	R.ncommitted = 0;
}

/* The migration failed here: the source is told why (it resumes the group), one line, exit 1. */
static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	char why[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	char said[2100];
	snprintf(said, sizeof(said), "the target refused: %s", why);
	co_wire_send(&R.w, CO_W_REFUSED, 0, 0, said);
	co_wire_hang_up(&R.w);
	discard();
	co_die("migration%s%s%s from %s refused: %s", R.name[0] ? " of '" : "", R.name, R.name[0] ? "'" : "",
	       R.w.peer, why);
}

/* The source gave up, or the connection failed: what it said, or what happened. */
static void lost(const char *err) __attribute__((noreturn));
static void lost(const char *err)
{
	discard();
	co_die("migration%s%s%s from %s failed: %s; nothing of it is kept here", R.name[0] ? " of '" : "", R.name,
	       R.name[0] ? "'" : "", R.w.peer, err);
}

/* ABORT to the source: ours to send, or (post-copy) the process that owns the stream by then says it. */
static void abort_to_source(const char *why)
{
	if (R.postcopy)
		co_postcopy_abort(why);
	else
		co_wire_send(&R.w, CO_W_ABORT, 0, 0, why);
}

/* co_die from a restart that could not begin (or any exit before the group runs): discard, tell the source. */
static void at_exit(void)
{
	if (getpid() != R.self || R.running || !R.ngens)
		return;
	abort_to_source("the target gave up: the restart failed there");
	discard();
}

/* ---- one connection, proved ---- */

static int accept_one(void)
{
	char host[256], port[16], shown[300], err[1024];
	if (co_wire_addr(R.o->listen, host, sizeof(host), port, sizeof(port)))
		co_usage("receive: --listen wants ADDR:PORT, not '%s'", R.o->listen);
	static unsigned char key[4096];
	size_t keylen;
	co_wire_token(R.o->token_file, key, &keylen, sizeof(key));
	int lfd = co_wire_listen(host, port, shown, sizeof(shown), err, sizeof(err));
	if (lfd < 0)
		co_die("%s", err);
	/* scripts wait for this line (and read the port picked for 0 from it) */
	fprintf(stderr, "listening on %s\n", shown);
	fflush(stderr);
	int fd;
	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		co_die("accept on %s: %s", shown, strerror(errno));
	close(lfd); /* one migration */
	co_wire_init(&R.w, fd, "");
	if (co_wire_auth_target(&R.w, key, keylen, err, sizeof(err)))
		co_die("migration from %s refused: %s", R.w.peer, err);
	memset(key, 0, sizeof(key));
	return fd;
}

/* ---- can it run here? ---- */

/* Each of the source's CPU flags that ours lack, in missing (empty: none). */
static void cpu_lacks(const char *theirs, char *missing, size_t n)
{
	static char mine[65536];
	char word[64];
	size_t used = 0;
	missing[0] = 0;
	if (co_cpu_flags(mine, sizeof(mine)) < 0)
		mine[0] = 0;
	for (const char *p = theirs; *p;) {
		size_t len = strcspn(p, " ");
		if (len && len < sizeof(word)) {
			snprintf(word, sizeof(word), "%.*s", (int)len, p);
			int have = 0;
			for (const char *q = mine; *q && !have;) {
				size_t l = strcspn(q, " ");
				have = l == len && !strncmp(q, word, len);
				q += l + (q[l] == ' ');
			}
			if (!have && used + len + 2 < n)
				used += (size_t)snprintf(missing + used, n - used, "%s%s", used ? " " : "", word);
		}
		p += len + (p[len] == ' ');
	}
}

/* HELLO: the group's name and the source's kernel, vdso and CPU, each compared with ours. */
static void check_hello(void)
{
	char err[1024], missing[2048];
	if (co_wire_recv(&R.w, &R.m, CO_W_HELLO, err, sizeof(err)))
		lost(err);
	char *kernel = strchr(R.m.text, '\n'), *flags = kernel ? strchr(kernel + 1, '\n') : NULL;
	if (!flags)
		fail("a malformed HELLO");
	*kernel++ = 0;
	*flags++ = 0;
	if (!co_valid_name(R.m.text))
		fail("invalid group name");
	snprintf(R.name, sizeof(R.name), "%s", R.m.text);
	struct utsname u;
	uname(&u);
	/* the agent and restorer rely on the kernel's ABI and the vdso's layout as the group saw them */
	if (strcmp(kernel, u.release))
		fail("the group runs on kernel %s, this machine has %s", kernel, u.release);
	if (R.m.a != co_vdso_size())
		fail("the source's vdso is %lld bytes, this machine's %ld: the group's calls into it cannot be moved",
		     (long long)R.m.a, co_vdso_size());
	cpu_lacks(flags, missing, sizeof(missing));
	if (missing[0])
		fail("this CPU lacks features the group may use: %s", missing);
	int fd = co_connect_group(R.name);
	if (fd >= 0 || fd == CO_UNTRUSTED)
		fail("%s", fd >= 0 ? "a group of that name already runs here" : co_connect_why());
	snprintf(R.gdir, sizeof(R.gdir), "%s/%s", R.o->images, R.name);
	/* a background merge of the group's last stay here (migrated away, and back) ends by itself */
	R.lock_fd = co_lock_images(R.gdir, 1, err, sizeof(err));
	if (R.lock_fd < 0)
		fail("%s", err);
	co_recover_group_dir(R.gdir);
	if (co_wire_send(&R.w, CO_W_OK, 0, 0, NULL))
		lost("the connection was lost");
}

/*
 * Each file the group holds must be here as it is there (size, mtime), or
 * the restart would differ; one whose copy travels in the generation
 * (FCOPY, --copy-files) is put in place by the restart, as any restart
 * puts back the files the group writes.  Then OK.
 */
static void check_file(void)
{
	struct stat st;
	if (R.m.op == CO_W_FCOPY)
		return;
	/* tests (COHORT_TEST_FSTAT_MS): a slow look, so that what the group writes meanwhile shows */
	const char *slow = getenv("COHORT_TEST_FSTAT_MS");
	if (slow)
		usleep((useconds_t)atoi(slow) * 1000);
	if (stat(R.m.text, &st) < 0)
		fail("the group holds %s, which is not here: %s", R.m.text, strerror(errno));
	if (R.m.a == -1 && R.m.b == -1) /* one the group writes, listed while it runs: compared at the stop */
		return;
	int64_t mtime = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
	if ((int64_t)st.st_size != R.m.a)
		fail("%s differs here: %lld bytes, %lld at the source", R.m.text, (long long)st.st_size, (long long)R.m.a);
	if (mtime != R.m.b)
		fail("%s differs here: modified at another time than at the source", R.m.text);
}

/* ---- the generation ---- */

static struct co_manifest man;
static struct co_mproc procs[CO_TABLE_SLOTS];
static struct co_mfile files[CO_TABLE_SLOTS * 3 + 4096];
static unsigned char got[CO_TABLE_SLOTS * 3 + 4096];
static int nprocs, nfiles;

/* A file name the manifest may list: proc-2.img, proc-2.p1.img.zst, files/0; nothing above or beside. */
static int name_ok(const char *n)
{
	const char *slash = strchr(n, '/');
	if (!n[0] || n[0] == '.' || strstr(n, "..") || (slash && (strncmp(n, "files/", 6) || strchr(slash + 1, '/'))))
		return 0;
	return strcmp(n, "manifest") != 0 && strcmp(n, "LOCK") != 0;
}

/* The manifest, first: into .wire/ (written last into the generation), and read as a restart reads it. */
static void receive_manifest(const struct co_wire_file *f)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], err[1024];
	struct co_reader r;
	snprintf(dir, sizeof(dir), "%s/.wire", R.tmp);
	snprintf(path, sizeof(path), "%s/manifest", dir);
	int fd = mkdir(dir, 0700) < 0 ? -1 : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		fail("cannot create %s: %s", path, strerror(errno));
	if (co_wire_recv_file(&R.w, f, fd, err, sizeof(err)))
		lost(err);
	close(fd);
	fd = co_open_gen_file(dir, "manifest", path, sizeof(path), &r, err, sizeof(err));
	if (fd < 0)
		fail("%s", err);
	int bad = co_manifest_read_files(&r, &man, procs, CO_TABLE_SLOTS, &nprocs, files, (int)CO_ARRAY_LEN(files),
					 &nfiles);
	if (bad)
		snprintf(err, sizeof(err), "%s", r.err);
	if (co_img_close(fd, err, sizeof(err)) || bad)
		fail("%s", err);
	if (strcmp(man.name, R.name) || man.generation != R.gen)
		fail("the manifest is of group '%.64s' generation %llu, not of '%s' generation %llu", man.name,
		     (unsigned long long)man.generation, R.name, (unsigned long long)R.gen);
	if (!man.nfiles)
		fail("the manifest lists no files (format 7 is needed to check what arrives)");
	/* an incremental rests on its parent: one that came in this migration, never one that was here before */
	int have_parent = man.kind != CO_GEN_INCREMENTAL;
	for (int i = 0; i < R.ngens && !have_parent; i++)
		have_parent = R.gens[i] == man.parent;
	if (!have_parent)
		fail("generation %llu is incremental, and its parent %llu did not come before it",
		     (unsigned long long)R.gen, (unsigned long long)man.parent);
	/* the very parent it was taken against (as a restart checks its chain: merge.c, chain_resolve) */
	uint64_t d = 0;
	char pdir[PATH_MAX], pm[PATH_MAX + 16];
	tmp_dir(man.parent, pdir, sizeof(pdir));
	snprintf(pm, sizeof(pm), "%s/manifest", pdir);
	if (man.kind == CO_GEN_INCREMENTAL && man.parent_digest &&
	    (co_file_digest(pm, &d) || d != man.parent_digest))
		fail("generation %llu is incremental on another generation %llu than the one received (its "
		     "manifest's digest is %016llx, expected %016llx)", (unsigned long long)R.gen,
		     (unsigned long long)man.parent, (unsigned long long)d, (unsigned long long)man.parent_digest);
	for (int i = 0; i < nfiles; i++)
		if (!name_ok(files[i].name))
			fail("the manifest lists a file named '%.128s'", files[i].name);
}

/*
 * One file the manifest lists, checked against it (size; digest where it
 * has one) as it comes; sparse (n holes: post-copy fills them), its
 * digest is checked once they are filled (postcopy.c).
 */
static int receive_file(const struct co_wire_file *f, const struct co_wire_hole *holes, uint32_t n)
{
	char path[PATH_MAX], err[1024];
	int k = 0;
	while (k < nfiles && strcmp(files[k].name, f->name))
		k++;
	if (k == nfiles || got[k])
		fail("%s: %.128s is not a file the manifest lists, or came twice", R.tmp, f->name);
	if (f->size != files[k].size || ((files[k].flags & CO_MF_DIGEST) && f->digest != files[k].digest))
		fail("%.128s is announced with another size or digest than its manifest lists", f->name);
	got[k] = 1;
	int digest = (files[k].flags & CO_MF_DIGEST) != 0;
	if (n)
		files[k].flags &= ~CO_MF_DIGEST; /* (our copy of the list: the manifest keeps it, for later) */
	if (!strncmp(f->name, "files/", 6)) {
		snprintf(path, sizeof(path), "%s/files", R.tmp);
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			fail("cannot create %s: %s", path, strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/%s", R.tmp, f->name);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		fail("cannot create %s: %s", path, strerror(errno));
	if (n ? co_wire_recv_sparse(&R.w, f, fd, holes, n, err, sizeof(err)) : co_wire_recv_file(&R.w, f, fd, err, sizeof(err)))
		lost(err);
	/* on disk as it comes (the commit's fsync, at the stop, then finds nothing left to write) */
	if (fsync(fd) < 0 || close(fd) < 0)
		fail("cannot write %s: %s", path, strerror(errno));
	co_trace("receive: %s received", f->name);
	co_crash_point("received"); /* tests: a receiver killed mid-stream */
	return digest;
}

/* SPARSE (in R.m): the hole list, then the file without them; only in the last generation (post-copy). */
static void receive_sparse(int last)
{
	static struct co_wire_hole holes[CO_WIRE_MAX_HOLES];
	static struct co_wire_file f;
	char err[1024], name[sizeof(f.name)];
	uint32_t n;
	snprintf(name, sizeof(name), "%s", R.m.text);
	if (!last)
		fail("a sparse file in a generation that is not the last");
	if (co_wire_recv_holes(&R.w, &R.m, holes, CO_WIRE_MAX_HOLES, &n, err, sizeof(err)))
		lost(err);
	int e = co_wire_next_file(&R.w, &f, &R.m, err, sizeof(err));
	if (e < 0)
		lost(err);
	if (e == 0 || strcmp(f.name, name))
		fail("a sparse file's hole list without its file");
	int digest = receive_file(&f, holes, n);
	if (co_postcopy_note(f.name, holes, n, digest ? &f.digest : NULL, err, sizeof(err)))
		fail("%s", err);
}

/* Every file has come: the manifest last, each checked as a restart checks; committed with the last (commit_all). */
static void check_generation(void)
{
	char from[PATH_MAX + 16], to[PATH_MAX + 16], dir[PATH_MAX + 8], err[1024];
	snprintf(dir, sizeof(dir), "%s/.wire", R.tmp);
	snprintf(from, sizeof(from), "%s/manifest", dir);
	snprintf(to, sizeof(to), "%s/manifest", R.tmp);
	if (rename(from, to) < 0 || rmdir(dir) < 0)
		fail("cannot move %s into place: %s", from, strerror(errno));
	if (co_gen_files_check(R.tmp, files, nfiles, 1, err, sizeof(err)))
		fail("%s", err);
	R.parent[R.ngens] = man.kind == CO_GEN_INCREMENTAL ? man.parent : 0;
	R.gens[R.ngens++] = R.gen;
	R.tmp[0] = 0;
}

/* The last has come: every generation is committed (store.c), oldest first, as a checkpoint commits one. */
static void commit_all(void)
{
	char tmp[PATH_MAX], err[1024];
	while (R.ncommitted < R.ngens) {
		uint64_t g = R.gens[R.ncommitted];
		tmp_dir(g, tmp, sizeof(tmp));
		if (co_commit(tmp, R.gdir, g, err, sizeof(err)) < 0)
			fail("%s", err);
		R.ncommitted++;
	}
}

/* One generation, GEN (in R.m) to GEN_END, checked; 1 when it is the last (to restart: all are committed then). */
static int receive_generation(void)
{
	static struct co_wire_file f;
	char err[1024];
	int last = R.m.b == 1;
	R.gen = (uint64_t)R.m.a;
	co_crash_point("generation"); /* tests: a receiver killed as a round begins */
	uint64_t have = co_newest_generation(R.gdir);
	if (!R.gen || R.gen > 999999 || R.gen <= have)
		fail("%s holds generation %llu already: generation %llu would not be the newest", R.gdir,
		     (unsigned long long)have, (unsigned long long)R.gen);
	if (R.ngens == MAX_GENS)
		fail("more than %d generations in one migration", MAX_GENS);
	if (R.ngens && R.gen <= R.gens[R.ngens - 1])
		fail("generation %llu came after generation %llu", (unsigned long long)R.gen,
		     (unsigned long long)R.gens[R.ngens - 1]);
	tmp_dir(R.gen, R.tmp, sizeof(R.tmp));
	co_remove_tree(R.tmp);
	if (mkdir(R.tmp, 0700) < 0)
		fail("cannot create %s: %s", R.tmp, strerror(errno));
	memset(got, 0, sizeof(got));
	int e = co_wire_next_file(&R.w, &f, &R.m, err, sizeof(err));
	if (e < 0)
		lost(err);
	if (e == 0 || strcmp(f.name, "manifest"))
		fail("the generation does not begin with its manifest");
	receive_manifest(&f);
	/*
	 * The stop after rounds that converged (an incremental: a few MB):
	 * from here until the group runs, ahead of the machine's other work
	 * (boost.h); a whole stop carries the memory, and is not.
	 */
	if (last && man.kind == CO_GEN_INCREMENTAL && co_boost())
		co_trace("receive: the stop at SCHED_FIFO 1");
	if (last)
		co_trace("receive: generation %llu begins", (unsigned long long)R.gen);
	while ((e = co_wire_next_file(&R.w, &f, &R.m, err, sizeof(err))) == 1 || (e == 0 && R.m.op == CO_W_SPARSE)) {
		if (e == 1)
			receive_file(&f, NULL, 0);
		else
			receive_sparse(last);
	}
	if (e < 0)
		lost(err);
	if (R.m.op != CO_W_GEN_END)
		fail("a message out of order where a file was due");
	co_trace("receive: generation %llu received", (unsigned long long)R.gen);
	check_generation();
	co_trace("receive: generation %llu checked", (unsigned long long)R.gen);
	if (last) {
		commit_all();
		co_trace("receive: committed");
	}
	return last;
}

/*
 * A round's generation, checked and answered: its process images folded
 * into the page index of the restart to come while the source takes the
 * next round (pindex.c), so that the stop's filler indexes only the
 * stop's own image.
 */
static void index_ahead(void)
{
	char dir[PATH_MAX];
	tmp_dir(R.gens[R.ngens - 1], dir, sizeof(dir));
	co_pindex_ahead(dir);
	co_trace("receive: generation %llu indexed", (unsigned long long)R.gens[R.ngens - 1]);
}

/*
 * What the source sends until the generation to restart: the files the
 * group holds (FSTAT, FCOPY) to compare, each list answered OK, and the
 * generations of its rounds, each checked and answered OK.
 */
static void receive_all(void)
{
	char err[1024];
	for (;;) {
		if (co_wire_recv(&R.w, &R.m, 0, err, sizeof(err)))
			lost(err);
		if (R.m.op == CO_W_FSTAT || R.m.op == CO_W_FCOPY) {
			check_file();
			continue;
		}
		unsigned op = R.m.op;
		if (op == CO_W_GEN && receive_generation())
			return;
		if (op != CO_W_GEN && op != CO_W_FSTAT_END)
			fail("a message out of order where the files or a generation were due");
		if (co_wire_send(&R.w, CO_W_OK, 0, 0, NULL))
			lost("the connection was lost");
		if (op == CO_W_GEN)
			index_ahead();
	}
}

/* ---- the restart ---- */

/*
 * The generation to restart and its chain, newest first, down to its full
 * base: every one received in this migration, checked as it came (its
 * files against its manifest, with digests; an incremental's parent one
 * of this migration's, the very one it was taken against) and committed
 * by us.  The restart takes them as they are instead of reading them all
 * again from the images directory (coord/run.c); NULL (a chain longer than
 * a restart reads directly): it does.
 */
static const struct co_chain_dirs *received_chain(void)
{
	static struct co_chain_dirs c;
	uint64_t g = R.gen;
	for (c.n = 0; c.n < CO_CHAIN_MAX;) {
		int i = R.ngens - 1;
		while (i >= 0 && R.gens[i] != g)
			i--;
		if (i < 0) /* cannot be: each parent came before its child (receive_manifest) */
			return NULL;
		co_gen_dir(R.gdir, g, c.dir[c.n], sizeof(c.dir[c.n]));
		c.n++;
		if (!R.parent[i])
			return &c;
		g = R.parent[i];
	}
	return NULL;
}

/*
 * Every process is back, parked (coord/conn.c): the source ends the group
 * there and says GO, and only then does it run here; anything else (the
 * connection lost, ABORT) and it ends here before any of its code ran.
 */
static int ready(void)
{
	co_trace("receive: every process back");
	if (R.postcopy)
		return co_postcopy_ready(nprocs, R.why, sizeof(R.why));
	if (co_wire_send(&R.w, CO_W_READY, nprocs, 0, NULL) || co_wire_recv(&R.w, &R.m, CO_W_GO, R.why, sizeof(R.why)))
		return R.why[0] ? -1 : (snprintf(R.why, sizeof(R.why), "%s closed the connection", R.w.peer), -1);
	if (R.m.op != CO_W_GO)
		return snprintf(R.why, sizeof(R.why), "the source did not say go"), -1;
	co_trace("receive: GO");
	return 0;
}

/* It runs here: the source is told, and the stream is over. */
static void running(void)
{
	R.running = 1;
	co_unboost();
	co_trace("receive: released");
	if (R.postcopy) /* the stream goes on, in the post-copy process */
		co_postcopy_running(nprocs);
	else
		co_wire_send(&R.w, CO_W_RUNNING, nprocs, 0, NULL);
	close(R.w.fd);
}

int co_cmd_receive(const struct co_receive_opts *o)
{
	R.o = o;
	R.self = getpid();
	R.lock_fd = -1;
	signal(SIGPIPE, SIG_IGN);
	accept_one();
	check_hello();
	atexit(at_exit);
	co_init_start_ahead(); /* while the receiver is small, and long before the stop */
	receive_all();
	static struct co_run_opts r;
	r.name = R.name;
	r.images = o->images;
	r.generation = R.gen;
	r.json = o->json;
	r.held_lock = 1;
	r.lazy = 1;	/* the stop must not carry a restore of all memory: pages come in while the group runs (filler.c) */
	if (co_postcopy_files()) { /* and some are still at the source: lazy, or the restore fails (postcopy.c) */
		char dir[PATH_MAX], err[1024];
		co_gen_dir(R.gdir, R.gen, dir, sizeof(dir));
		if (co_postcopy_map(dir, err, sizeof(err)))
			fail("%s", err);
		const char *hook = getenv("COHORT_POSTCOPY_HOLES"); /* tests: the files sparse at the restart */
		if (hook)
			co_postcopy_report(dir, hook);
		if (co_postcopy_start(&R.w))
			fail("cannot start the post-copy process here: %s", strerror(errno));
		R.postcopy = 1;
		r.lazy = 2;
	}
	r.lock_fd = R.lock_fd;
	r.received = received_chain();
	r.on_ready = ready;
	r.on_running = running;
	int rc = co_cmd_restart(&r);
	co_unboost();
	if (!R.running) {
		abort_to_source("the target gave up: the restart failed there");
		discard();
		co_warn("migration of '%s' from %s failed: %s; nothing of it is kept here", R.name, R.w.peer,
			R.why[0] ? R.why : "the restart failed here");
		return rc ? rc : 1;
	}
	if (co_postcopy_finish() && !rc)
		rc = 1;
	return rc;
}
