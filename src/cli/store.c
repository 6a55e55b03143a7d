/*
 * store.c - the image store.  IMAGES/NAME/gen-NNNNNN/ holds one committed
 * generation: a manifest and one image per process.  A generation is
 * written into IMAGES/NAME/.tmp-gen-NNNNNN/, every file and the directory
 * are fsynced, and a rename makes it visible at once: a crash leaves
 * either the whole generation or none of it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "util.h"

char *co_group_images(const char *images, const char *name)
{
	char *p;
	if (asprintf(&p, "%s/%s", images, name) < 0)
		co_die("out of memory");
	return p;
}

uint64_t co_newest_generation(const char *gdir)
{
	DIR *d = opendir(gdir);
	uint64_t best = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		unsigned long long g;
		char tail;
		if (sscanf(e->d_name, "gen-%llu%c", &g, &tail) == 1 && g > best)
			best = g;
	}
	if (d)
		closedir(d);
	return best;
}

int co_gen_dir(const char *gdir, uint64_t gen, char *out, size_t n)
{
	return snprintf(out, n, "%s/gen-%06llu", gdir, (unsigned long long)gen) >= (int)n ? -1 : 0;
}

/*
 * fn(rel, path, st, arg) for every entry of generation dir, hidden ones
 * too, and for every entry of each directory in it (files/: one level),
 * as lstat sees it (a link is never followed).  Stops at fn's first
 * non-zero answer and returns it; -1 (errno set) when something cannot be
 * read.  The manifest's list, its check and the ownership check all walk
 * a generation so.
 */
typedef int gen_entry_fn(const char *rel, const char *path, const struct stat *st, void *arg);
static int gen_walk(const char *dir, const char *sub, gen_entry_fn *fn, void *arg)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s%s%s", dir, sub[0] ? "/" : "", sub);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	int r = 0;
	for (struct dirent *e; !r && (e = readdir(d));) {
		char p[PATH_MAX], rel[PATH_MAX];
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(rel, sizeof(rel), "%s%s%s", sub, sub[0] ? "/" : "", e->d_name);
		snprintf(p, sizeof(p), "%s/%s", dir, rel);
		if (lstat(p, &st) < 0)
			r = -1;
		else if (!(r = fn(rel, p, &st, arg)) && S_ISDIR(st.st_mode) && !sub[0])
			r = gen_walk(dir, rel, fn, arg);
	}
	closedir(d);
	return r;
}

/* A hidden entry (".pre", or one inside files/): no part of the generation. */
static int hidden(const char *rel)
{
	const char *base = strrchr(rel, '/');
	return rel[0] == '.' || (base && base[1] == '.');
}

struct file_list {
	struct co_mfile *f;
	int n, cap;
};

/* One file for the manifest's list: every regular one but the manifest itself and hidden ones (.pre). */
static int list_one(const char *rel, const char *path, const struct stat *st, void *arg)
{
	struct file_list *l = arg;
	if (hidden(rel) || !strcmp(rel, "manifest") || (S_ISDIR(st->st_mode) && !strchr(rel, '/')))
		return 0;
	if (!S_ISREG(st->st_mode) || strlen(rel) >= sizeof(l->f->name)) {
		errno = EINVAL; /* nothing else belongs in a generation */
		return -1;
	}
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		struct co_mfile *grown = realloc(l->f, (size_t)l->cap * sizeof(*l->f));
		if (!grown)
			return -1;
		l->f = grown;
	}
	struct co_mfile *f = &l->f[l->n++];
	memset(f, 0, sizeof(*f));
	snprintf(f->name, sizeof(f->name), "%s", rel);
	f->size = (uint64_t)st->st_size;
	/* a copy has no checksummed records of its own: its digest is its only check */
	if (strchr(rel, '/') && co_file_digest(path, &f->digest) == 0)
		f->flags |= CO_MF_DIGEST;
	return 0;
}

int co_file_digest(const char *path, uint64_t *out)
{
	static char buf[1 << 20];
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct co_xxh64 h;
	co_xxh64_init(&h, 0);
	ssize_t k;
	while ((k = read(fd, buf, sizeof(buf))) > 0)
		co_xxh64_update(&h, buf, (size_t)k);
	close(fd);
	*out = co_xxh64_digest(&h);
	return k < 0 ? -1 : 0;
}

struct listed {
	const struct co_mfile *f;
	int nf;
	char *err;
	size_t errlen;
	const char *dir;
};

/* An entry the manifest does not list (hidden ones and files/ itself aside): 1, err filled. */
static int unlisted(const char *rel, const char *path, const struct stat *st, void *arg)
{
	const struct listed *l = arg;
	(void)path, (void)st;
	if (hidden(rel) || !strcmp(rel, "manifest") || !strcmp(rel, "files"))
		return 0;
	for (int i = 0; i < l->nf; i++)
		if (!strcmp(l->f[i].name, rel))
			return 0;
	snprintf(l->err, l->errlen, "%s/%s: not listed in the generation's manifest (from elsewhere?)", l->dir, rel);
	return 1;
}

int co_gen_files_check(const char *dir, const struct co_mfile *f, int nf, int digests, char *err, size_t errlen)
{
	char p[PATH_MAX];
	for (int i = 0; i < nf; i++) {
		struct stat st;
		uint64_t d = 0;
		snprintf(p, sizeof(p), "%s/%s", dir, f[i].name);
		if (lstat(p, &st) < 0)
			return snprintf(err, errlen, "%s: listed in the generation's manifest, but missing", p), -1;
		if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f[i].size)
			return snprintf(err, errlen, "%s: the manifest lists it with %llu bytes, it has %llu%s", p,
					(unsigned long long)f[i].size, (unsigned long long)st.st_size,
					S_ISREG(st.st_mode) ? "" : " (not a file)"),
			       -1;
		if (digests && (f[i].flags & CO_MF_DIGEST) && (co_file_digest(p, &d) || d != f[i].digest))
			return snprintf(err, errlen, "%s: its content is not what the manifest says (digest %016llx, "
					"expected %016llx)", p, (unsigned long long)d, (unsigned long long)f[i].digest),
			       -1;
	}
	struct listed ls = { f, nf, err, errlen, dir };
	return gen_walk(dir, "", unlisted, &ls) ? -1 : 0;
}

int co_gen_complete(const char *dir, char *err, size_t errlen)
{
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	static struct co_mfile f[CO_TABLE_SLOTS * 3 + 4096];
	char path[PATH_MAX];
	struct co_reader r;
	int n, nf;
	int fd = co_open_gen_file(dir, "manifest", path, sizeof(path), &r, err, errlen);
	if (fd < 0)
		return -1;
	int bad = co_manifest_read_files(&r, &m, p, CO_TABLE_SLOTS, &n, f, (int)(sizeof(f) / sizeof(f[0])), &nf);
	if (bad)
		snprintf(err, errlen, "%s", r.err);
	if (co_img_close(fd, err, errlen) || bad)
		return -1;
	return m.nfiles ? co_gen_files_check(dir, f, nf, 0, err, errlen) : 0;
}

int co_write_manifest(const char *dir, const struct co_manifest *mf, const struct co_mproc *p, int n)
{
	char path[PATH_MAX];
	struct file_list l = { NULL, 0, 0 };
	if (gen_walk(dir, "", list_one, &l) < 0) {
		free(l.f);
		return -1;
	}
	struct co_mfile *files = l.f;
	int nfiles = l.n;
	struct co_manifest m = *mf;
	m.nfiles = (uint32_t)nfiles;
	snprintf(path, sizeof(path), "%s/manifest", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		free(files);
		return -1;
	}
	static char buf[65536];
	struct co_writer w;
	co_w_init(&w, fd, buf, sizeof(buf));
	struct co_bind b = { m.group_id, m.generation, 0, 0 };
	co_w_head(&w, CO_KIND_MANIFEST, &b);
	co_w_rec(&w, CO_R_MANIFEST, &m, sizeof(m));
	for (int i = 0; i < n; i++)
		co_w_rec(&w, CO_R_MPROC, &p[i], sizeof(p[i]));
	for (int i = 0; i < nfiles; i++)
		co_w_rec(&w, CO_R_MFILE, &files[i], sizeof(files[i]));
	free(files);
	struct co_end end = { w.seq + 1, 0 };
	co_w_rec(&w, CO_R_END, &end, sizeof(end));
	int r = co_w_flush(&w);
	close(fd);
	return r ? -1 : 0;
}

int co_open_gen_file(const char *dir, const char *name, char *path, size_t n, struct co_reader *r,
		     char *err, size_t errlen)
{
	char plain[PATH_MAX];
	snprintf(plain, sizeof(plain), "%s/%s", dir, name);
	return co_img_open(plain, r, path, n, err, errlen);
}

int co_image_paths(const char *dir, const char *name, void (*each)(unsigned type, const union co_path_rec *rec, void *ctx),
		   void *ctx, char *err, size_t errlen)
{
	static union co_path_rec u;
	char path[PATH_MAX];
	struct co_reader r;
	int fd = co_open_gen_file(dir, name, path, sizeof(path), &r, err, errlen);
	if (fd < 0)
		return -1;
	int e, bad = 0;
	while (!bad && (e = co_r_next(&r)) == 1 && r.hdr.type != CO_R_END) {
		unsigned t = r.hdr.type;
		/*
		 * Page data names no file, and whoever reads it checks it (the
		 * restorer, a page filler): passed over, not read.  A post-copy's
		 * stop has holes there until they are filled (postcopy.c).
		 */
		if (t == CO_R_PAGEDATA && !r.decompressed) {
			bad = co_r_skip(&r, r.hdr.len) || co_r_finish(&r);
			continue;
		}
		if (t != CO_R_FD && t != CO_R_VMA && t != CO_R_SFILE && t != CO_R_FCOPY) {
			bad = co_r_finish(&r);
			continue;
		}
		bad = co_r_payload(&r, &u, sizeof(u));
		if (!bad)
			each(t, &u, ctx);
	}
	bad |= e < 0;
	if (bad)
		snprintf(err, errlen, "%s", r.err);
	return co_img_close(fd, err, errlen) || bad ? -1 : 0;
}

int co_read_manifest(const char *dir, struct co_manifest *m, struct co_mproc *p, int max, int *n,
		     char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct co_reader r;
	int fd = co_open_gen_file(dir, "manifest", path, sizeof(path), &r, err, errlen);
	if (fd < 0)
		return -1;
	int ret = co_manifest_read(&r, m, p, max, n);
	if (ret)
		snprintf(err, errlen, "%s", r.err);
	return co_img_close(fd, err, errlen) || ret ? -1 : 0;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int r = fsync(fd);
	close(fd);
	return r;
}

/* fsync every file directly in dir. */
static int fsync_entries(const char *dir)
{
	DIR *d = opendir(dir);
	int r = d ? 0 : -1;
	for (struct dirent *e; !r && d && (e = readdir(d));) {
		char p[PATH_MAX];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		r = fsync_path(p);
	}
	if (d)
		closedir(d);
	return r;
}

int co_commit(const char *tmpdir, const char *gdir, uint64_t gen, char *err, size_t errlen)
{
	char final[PATH_MAX];
	co_gen_dir(gdir, gen, final, sizeof(final));
	return co_commit_dir(tmpdir, final, gdir, err, errlen);
}

int co_commit_dir(const char *tmpdir, const char *final, const char *gdir, char *err, size_t errlen)
{
	co_crash_point("fsync");
	DIR *d = opendir(tmpdir);
	if (!d) {
		snprintf(err, errlen, "%s: %s", tmpdir, strerror(errno));
		return -1;
	}
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.')
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		/* files/: the copies inside first (a power loss must not leave one empty), then the directory */
		if ((e->d_type == DT_DIR && fsync_entries(p)) || fsync_path(p)) {
			snprintf(err, errlen, "fsync %s: %s", p, strerror(errno));
			closedir(d);
			return -1;
		}
	}
	closedir(d);
	co_crash_point("rename");
	if (fsync_path(tmpdir) || rename(tmpdir, final)) {
		snprintf(err, errlen, "committing %s: %s", final, strerror(errno));
		return -1;
	}
	co_crash_point("renamed");
	if (fsync_path(gdir)) {
		snprintf(err, errlen, "committing %s: %s", final, strerror(errno));
		return -1;
	}
	return 0;
}

/* path (not followed) belongs to the euid and nobody else may write it; -1 (err filled) otherwise */
static int owned_here(const char *path, const char *what, char *err, size_t errlen)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno)), -1;
	if (S_ISLNK(st.st_mode))
		return snprintf(err, errlen, "%s %s is a symbolic link: refusing it", what, path), -1;
	if (st.st_uid != geteuid())
		return snprintf(err, errlen, "%s %s belongs to uid %u, not to you: a restart does what its images say "
				"(which files it writes, as whom); restart it as its owner, or pass --trust-images",
				what, path, (unsigned)st.st_uid), -1;
	if (S_ISDIR(st.st_mode) && (st.st_mode & 022))
		return snprintf(err, errlen, "%s %s is writable by others (%04o): its images could be anyone's; "
				"pass --trust-images to restart it anyway", what, path, (unsigned)(st.st_mode & 07777)),
		       -1;
	return 0;
}

struct owned_arg {
	char *err;
	size_t errlen;
};

static int owned_entry(const char *rel, const char *path, const struct stat *st, void *arg)
{
	struct owned_arg *o = arg;
	(void)rel, (void)st;
	return owned_here(path, "image file", o->err, o->errlen) ? 1 : 0;
}

int co_images_owned(const char *gdir, const char *dir, char *err, size_t errlen)
{
	if (owned_here(gdir, "group directory", err, errlen) || owned_here(dir, "generation", err, errlen))
		return -1;
	struct owned_arg o = { err, errlen };
	int r = gen_walk(dir, "", owned_entry, &o);
	if (r < 0)
		snprintf(err, errlen, "generation %s: %s", dir, strerror(errno));
	return r ? -1 : 0;
}

/*
 * The switch var=STEP[:N] (tests only): 1 the Nth time (default the first)
 * step is reached (*reached counts).  STEP:/FILE instead waits there until
 * FILE exists, and answers 0; it makes FILE.at first, for a test to know
 * the step is reached.
 */
static int test_point(const char *var, const char *step, int *reached)
{
	const char *v = getenv(var);
	size_t n = strlen(step);
	if (!v || strncmp(v, step, n) || (v[n] && v[n] != ':'))
		return 0;
	if (v[n] == ':' && v[n + 1] == '/') {
		char at[PATH_MAX];
		snprintf(at, sizeof(at), "%s.at", v + n + 1);
		int fd = open(at, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		while (access(v + n + 1, F_OK) < 0)
			usleep(20000);
		return 0;
	}
	int nth = v[n] == ':' ? atoi(v + n + 1) : 1;
	return ++*reached == (nth > 0 ? nth : 1);
}

void co_crash_point(const char *step)
{
	static int reached;
	if (test_point("COHORT_CRASH", step, &reached))
		kill(getpid(), SIGKILL);
}

int co_fail_point(const char *step)
{
	static int reached;
	return test_point("COHORT_CKPT_FAIL", step, &reached);
}

int co_mkdir_p(const char *path)
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
 * IMAGES/NAME/LOCK, held (flock) by the one cohort that may write the
 * group's images: the coordinator of a running group, for its whole life
 * (its checkpoints, background merges and pruning), and a restart from
 * before it merges anything.  Two groups of one name with different run
 * directories once wrote the same generations.  The holder's pid is
 * written in it, for the message of the next one; a merge that outlives
 * its group writes "PID merge" (co_lock_note), and a caller that passes
 * wait_merge waits for that one instead of failing: `cohort restart`
 * right after `checkpoint --incremental --kill` found the lock taken by
 * the merge of that very checkpoint.
 */
int co_lock_images(const char *gdir, int wait_merge, char *err, size_t errlen)
{
	char p[PATH_MAX], holder[32] = "";
	if (co_mkdir_p(gdir) < 0)
		return snprintf(err, errlen, "cannot create %s: %s", gdir, strerror(errno)), -1;
	snprintf(p, sizeof(p), "%s/LOCK", gdir);
	int fd = open(p, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return snprintf(err, errlen, "cannot open %s: %s", p, strerror(errno)), -1;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ssize_t k = pread(fd, holder, sizeof(holder) - 1, 0);
		holder[k > 0 ? k : 0] = 0;
		holder[strcspn(holder, "\n")] = 0;
		char *merge = strstr(holder, " merge");
		if (wait_merge && merge) {
			/* a merge ends by itself; the wait is said once, on stderr */
			*merge = 0;
			co_warn("waiting for the background merge (pid %s) of %s to end", holder, gdir);
			if (flock(fd, LOCK_EX) == 0)
				break;
			if (errno == EINTR)
				continue;
		}
		close(fd);
		return snprintf(err, errlen, "the images in %s are in use by another cohort%s%s%s: %s is locked", gdir,
				holder[0] ? " (pid " : "", holder, holder[0] ? ")" : "", p),
		       -1;
	}
	co_lock_note(fd, getpid(), 0);
	return fd;
}

/* Say in LOCK (descriptor fd) who holds it: pid, and whether a merge. */
void co_lock_note(int fd, pid_t pid, int merge)
{
	char line[40];
	int n = snprintf(line, sizeof(line), "%d%s\n", (int)pid, merge ? " merge" : "");
	/* for messages and the wait above only: a failure to write changes nothing */
	if (ftruncate(fd, 0) == 0 && pwrite(fd, line, (size_t)n, 0) != n)
		errno = 0;
}

void co_remove_entries(const char *dir, int (*doomed)(const char *name, void *arg), void *arg)
{
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !doomed(e->d_name, arg))
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) < 0 && errno == EISDIR)
			co_remove_tree(p);
	}
	if (d)
		closedir(d);
}

static int not_lock(const char *name, void *arg)
{
	(void)arg;
	return strcmp(name, "LOCK") != 0;
}

void co_clear_group_dir(const char *gdir)
{
	co_remove_entries(gdir, not_lock, NULL);
}

void co_remove_tree(const char *dir)
{
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (unlink(p) < 0 && errno == EISDIR)
			co_remove_tree(p); /* files/ of a generation */
	}
	if (d)
		closedir(d);
	rmdir(dir);
}

/*
 * IMAGES/NAME/command: the command line the group's images were taken of
 * (arguments NUL-separated), so that `cohort run python3 b.py` does not
 * quietly continue the generations of `cohort run python3 a.py`, which
 * share the default name.  Advisory: restart never reads it.
 */
static size_t join_argv(char *const *argv, char *out, size_t n)
{
	size_t k = 0;
	for (; *argv; argv++) {
		size_t l = strlen(*argv) + 1;
		if (k + l > n)
			break;
		memcpy(out + k, *argv, l);
		k += l;
	}
	return k;
}

/* The command line in a readable form (arguments joined by spaces). */
static const char *shown_command(const char *joined, size_t len, char *out, size_t n)
{
	size_t k = len < n ? len : n - 1;
	memcpy(out, joined, k);
	out[k] = 0;
	for (size_t i = 0; i + 1 < k; i++)
		if (!out[i])
			out[i] = ' ';
	return out;
}

int co_group_command_differs(const char *gdir, char *const *argv, char *shown, size_t n)
{
	if (!co_newest_generation(gdir))
		return 0; /* no generation: nothing to continue or to mix up */
	static char want[8192], have[8192];
	size_t wl = join_argv(argv, want, sizeof(want));
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/command", gdir);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		/* images older than the command file: the manifest names the program */
		static struct co_manifest m;
		static struct co_mproc procs[CO_TABLE_SLOTS];
		char dir[PATH_MAX], err[256];
		int np;
		co_gen_dir(gdir, co_newest_generation(gdir), dir, sizeof(dir));
		if (co_read_manifest(dir, &m, procs, CO_TABLE_SLOTS, &np, err, sizeof(err)) < 0)
			return 0;
		snprintf(shown, n, "%s", m.program);
		return strcmp(m.program, argv[0]) != 0;
	}
	ssize_t hl = read(fd, have, sizeof(have));
	close(fd);
	if (hl < 0)
		hl = 0;
	shown_command(have, (size_t)hl, shown, n);
	return (size_t)hl != wl || memcmp(have, want, wl) != 0;
}

int co_group_command_write(const char *gdir, char *const *argv)
{
	static char buf[8192];
	size_t len = join_argv(argv, buf, sizeof(buf));
	char path[PATH_MAX], tmp[PATH_MAX];
	snprintf(path, sizeof(path), "%s/command", gdir);
	snprintf(tmp, sizeof(tmp), "%s/.command.tmp", gdir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -1;
	int ok = write(fd, buf, len) == (ssize_t)len;
	close(fd);
	if (!ok || rename(tmp, path) < 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}
