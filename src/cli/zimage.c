/*
 * zimage.c - compressed image files (`--compress`).
 *
 * A record-stream file of a generation (a process image, its page streams,
 * shared.img) may be stored as NAME.zst: zstd frames holding exactly the
 * bytes NAME would hold, with zstd's content checksum.  Only the CLI links
 * libzstd: the agent lives inside other people's programs (no foreign
 * symbols, no malloc while it dumps) and the restorer has no libc.  So the
 * agent writes plain images, the coordinator compresses them after the
 * dump, and everything that reads goes through co_img_open(): it hands out
 * a pipe that a child process fills with the decompressed stream, so every
 * reader stays what it was, a sequential co_reader of plain records that
 * checks every record's hash.  A damaged .zst is caught twice: by the
 * record hashes (at a decompressed offset) or by zstd itself (at a
 * compressed offset, reported when the file is closed).
 *
 * The filters are child processes, not threads: init is cloned from the
 * coordinator with a raw clone(2), where glibc's threads are not safe, and
 * a child can simply be killed when nobody wants its output any more.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>
#include "cli.h"
#include "progress.h"
#include "res.h"
#include "util.h"

#define ZLEVEL 1		/* fast: the images are written at disk speed, not archived */
#define ZBUF (1 << 20)
#define ZMAGIC 0xFD2FB528u	/* a zstd frame starts with these four bytes (little-endian) */
#define MAX_FILTERS 16


static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t k = write(fd, c, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

/* ---- the two directions, from one descriptor to another ---- */

/* Compress everything readable from in into out (one zstd frame, content checksum on). */
static int zcompress(int in, int out, int workers, const char *name, char *err, size_t errlen)
{
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	char *ib = malloc(ZBUF), *ob = malloc(ZBUF);
	int ret = -1;
	if (!cc || !ib || !ob) {
		co_err(err, errlen, "%s: out of memory for compression", name);
		goto out;
	}
	ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, ZLEVEL);
	ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
	/* a libzstd built without threads refuses this: it then compresses on this thread */
	if (workers > 1)
		ZSTD_CCtx_setParameter(cc, ZSTD_c_nbWorkers, workers);
	for (int last = 0; !last;) {
		ssize_t n = read(in, ib, ZBUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			co_err(err, errlen, "%s: read failed while compressing: %s", name, strerror(errno));
			goto out;
		}
		last = n == 0;
		ZSTD_inBuffer zi = { ib, (size_t)n, 0 };
		for (;;) {
			ZSTD_outBuffer zo = { ob, ZBUF, 0 };
			size_t left = ZSTD_compressStream2(cc, &zo, &zi, last ? ZSTD_e_end : ZSTD_e_continue);
			if (ZSTD_isError(left)) {
				co_err(err, errlen, "%s: zstd: %s", name, ZSTD_getErrorName(left));
				goto out;
			}
			if (zo.pos && write_all(out, ob, zo.pos) < 0) {
				co_err(err, errlen, "%s: write failed: %s", name, strerror(errno));
				goto out;
			}
			if (last ? left == 0 : zi.pos == zi.size)
				break;
		}
	}
	ret = 0;
out:
	ZSTD_freeCCtx(cc);
	free(ib);
	free(ob);
	return ret;
}

/*
 * Decompress in (zstd frames) into out.  A reader that stops early (out
 * closed) is not an error.  Errors name the file and the compressed offset.
 */
static int zdecompress(int in, int out, const char *name, char *err, size_t errlen)
{
	ZSTD_DCtx *dc = ZSTD_createDCtx();
	char *ib = malloc(ZBUF), *ob = malloc(ZBUF);
	uint64_t consumed = 0;	/* compressed bytes before ib */
	size_t pending = 0;	/* 0: between frames */
	int ret = -1;
	if (!dc || !ib || !ob) {
		co_err(err, errlen, "%s: out of memory for decompression", name);
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, ib, ZBUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			co_err(err, errlen, "%s: compressed byte %llu: read failed: %s", name, (unsigned long long)consumed,
			     strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		ZSTD_inBuffer zi = { ib, (size_t)n, 0 };
		while (zi.pos < zi.size) {
			/* about one block per call: an error's offset is then where its block starts */
			ZSTD_outBuffer zo = { ob, ZSTD_DStreamOutSize(), 0 };
			size_t before = zi.pos;
			pending = ZSTD_decompressStream(dc, &zo, &zi);
			if (ZSTD_isError(pending)) {
				co_err(err, errlen, "%s: compressed byte %llu: damaged compressed data (zstd: %s)", name,
				     (unsigned long long)(consumed + before), ZSTD_getErrorName(pending));
				goto out;
			}
			if (zo.pos && write_all(out, ob, zo.pos) < 0) {
				ret = errno == EPIPE ? 0 : co_err(err, errlen, "%s: write failed: %s", name, strerror(errno));
				goto out;
			}
		}
		consumed += (uint64_t)n;
	}
	if (pending) {
		co_err(err, errlen, "%s: compressed byte %llu: the compressed file is truncated", name,
		     (unsigned long long)consumed);
		goto out;
	}
	ret = 0;
out:
	ZSTD_freeDCtx(dc);
	free(ib);
	free(ob);
	return ret;
}

/* ---- filters: child processes between a file and a pipe ---- */

struct filter {
	int fd;			/* our end of the pipe (-1: slot free) */
	pid_t pid;
	int errfd;		/* the child's message, if it fails */
};
static struct filter filters[MAX_FILTERS];
static int nfilters;

/*
 * Start a child that runs fn(in, out); it keeps only in, out and its
 * message pipe, and dies with us.  Returns the child's pid, or -1.
 */
static pid_t spawn_filter(int in, int out, int (*fn)(int, int, const char *, char *, size_t, int), const char *name,
			  int arg, int *errfd)
{
	int ep[2];
	if (pipe2(ep, O_CLOEXEC) < 0)
		return -1;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0) {
		close(ep[0]);
		close(ep[1]);
		return -1;
	}
	if (pid == 0) {
		char msg[1024] = "";
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		prctl(PR_SET_NAME, "cohort-zstd");
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_IGN);
		/* nothing of the caller's but the two ends and the message pipe, as 3, 4, 5 */
		int a = fcntl(in, F_DUPFD, 6), b = fcntl(out, F_DUPFD, 6), c = fcntl(ep[1], F_DUPFD, 6);
		if (a < 0 || b < 0 || c < 0 || dup2(a, 3) < 0 || dup2(b, 4) < 0 || dup2(c, 5) < 0)
			_exit(1);
		syscall(SYS_close_range, 6, ~0U, 0);
		int r = fn(3, 4, name, msg, sizeof(msg), arg);
		if (r && write_all(5, msg, strlen(msg)) < 0)
			_exit(2);
		_exit(r ? 1 : 0);
	}
	close(ep[1]);
	*errfd = ep[0];
	return pid;
}

static int run_decompress(int in, int out, const char *name, char *err, size_t errlen, int unused)
{
	(void)unused;
	return zdecompress(in, out, name, err, errlen);
}

static int run_compress(int in, int out, const char *name, char *err, size_t errlen, int workers)
{
	return zcompress(in, out, workers, name, err, errlen);
}

/* Wait for a filter child; -1 with its message when it failed. */
static int reap_filter(pid_t pid, int errfd, const char *name, char *err, size_t errlen)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	char msg[1024];
	ssize_t n = read(errfd, msg, sizeof(msg) - 1);
	close(errfd);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (n > 0) {
		msg[n] = 0;
		return co_err(err, errlen, "%s", msg);
	}
	if (WIFSIGNALED(st))
		return co_err(err, errlen, "%s: the zstd filter was killed by signal %d", name, WTERMSIG(st));
	return co_err(err, errlen, "%s: the zstd filter failed", name);
}

static struct filter *filter_slot(void)
{
	for (int i = 0; i < nfilters; i++)
		if (filters[i].fd < 0)
			return &filters[i];
	return nfilters < MAX_FILTERS ? &filters[nfilters++] : NULL;
}

static struct filter *filter_of(int fd)
{
	for (int i = 0; i < nfilters; i++)
		if (filters[i].fd == fd && fd >= 0)
			return &filters[i];
	return NULL;
}

/* ---- the public side ---- */

int co_img_locate(const char *path, char *out, size_t n)
{
	struct stat st;
	snprintf(out, n, "%s", path);
	if (stat(out, &st) == 0)
		return 0;
	snprintf(out, n, "%s" CO_ZST, path);
	return stat(out, &st) == 0 ? 0 : -1;
}

/* Does fd (at offset 0) start with a zstd frame? */
static int is_zstd(int fd)
{
	unsigned char m[4];
	if (pread(fd, m, sizeof(m), 0) != (ssize_t)sizeof(m))
		return 0;
	return ((uint32_t)m[0] | (uint32_t)m[1] << 8 | (uint32_t)m[2] << 16 | (uint32_t)m[3] << 24) == ZMAGIC;
}

/*
 * Put a filter child between file (taken over) and a new pipe: reading,
 * it decompresses file into the pipe; writing, it compresses what comes
 * through the pipe into file.  Returns our end of the pipe, or -1.
 */
static int start_filter(int file, int reading, const char *name, char *err, size_t errlen)
{
	const char *what = reading ? "decompression" : "compression";
	int p[2];
	struct filter *f = filter_slot();
	if (!f || pipe2(p, O_CLOEXEC) < 0) {
		close(file);
		if (f)
			f->fd = -1;
		return co_err(err, errlen, "%s: cannot start its %s: %s", name, what, f ? strerror(errno) : "too many open");
	}
	int ours = reading ? p[0] : p[1], theirs = reading ? p[1] : p[0];
	fcntl(p[1], F_SETPIPE_SZ, ZBUF); /* fewer, larger handovers; the default size works too */
	f->pid = reading ? spawn_filter(file, theirs, run_decompress, name, 0, &f->errfd)
			 : spawn_filter(theirs, file, run_compress, name, 1, &f->errfd);
	close(file);
	close(theirs);
	if (f->pid < 0) {
		close(ours);
		f->fd = -1;
		return co_err(err, errlen, "%s: cannot start its %s: %s", name, what, strerror(errno));
	}
	f->fd = ours;
	return ours;
}

int co_img_open(const char *path, struct co_reader *r, char *name, size_t n, char *err, size_t errlen)
{
	int fd = -1;
	if (co_img_locate(path, name, n) == 0)
		fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return co_err(err, errlen, "%s: %s", path, strerror(errno));
	co_r_init(r, fd, name);
	if (!is_zstd(fd))
		return fd;
	int ours = start_filter(fd, 1, name, err, errlen);
	if (ours >= 0) {
		r->fd = ours;
		r->decompressed = 1;
	}
	return ours;
}

int co_img_close(int fd, char *err, size_t errlen)
{
	struct filter *f = filter_of(fd);
	close(fd);
	if (!f)
		return 0;
	f->fd = -1;
	/* a reader that stopped early leaves the child writing into a closed pipe: EPIPE ends it */
	return reap_filter(f->pid, f->errfd, "decompression", err, errlen);
}

int co_img_create(const char *path, int compress, char *err, size_t errlen)
{
	char zpath[PATH_MAX];
	snprintf(zpath, sizeof(zpath), compress ? "%s" CO_ZST : "%s", path);
	int fd = open(zpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !compress)
		return fd < 0 ? co_err(err, errlen, "%s: %s", zpath, strerror(errno)) : fd;
	return start_filter(fd, 0, zpath, err, errlen);
}

int co_img_finish(int fd, char *err, size_t errlen)
{
	struct filter *f = filter_of(fd);
	if (close(fd) < 0 && !f)
		return co_err(err, errlen, "close: %s", strerror(errno));
	if (!f)
		return 0;
	f->fd = -1;
	return reap_filter(f->pid, f->errfd, "compression", err, errlen);
}

/* Compress one file of a generation into NAME.zst and remove NAME. */
static int compress_file(const char *path, int workers, char *err, size_t errlen)
{
	char zpath[PATH_MAX];
	snprintf(zpath, sizeof(zpath), "%s" CO_ZST, path);
	int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return co_err(err, errlen, "%s: %s", path, strerror(errno));
	int out = open(zpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		close(in);
		return co_err(err, errlen, "%s: %s", zpath, strerror(errno));
	}
	int r = zcompress(in, out, workers, zpath, err, errlen);
	close(in);
	if (close(out) < 0 && !r)
		r = co_err(err, errlen, "%s: %s", zpath, strerror(errno));
	if (!r && unlink(path) < 0)
		r = co_err(err, errlen, "%s: %s", path, strerror(errno));
	if (r)
		unlink(zpath);
	return r;
}

/* Record-stream files of a generation: what --compress compresses. */
static int is_stream_file(const char *name)
{
	return (!strncmp(name, "proc-", 5) || !strcmp(name, "shared.img")) && co_endswith(name, ".img");
}

int co_compress_gen(const char *dir, const struct co_mproc *p, int n, int workers, char *err, size_t errlen)
{
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/shared.img", dir);
	if (access(path, F_OK) == 0 && compress_file(path, workers, err, errlen))
		return -1;
	for (int i = 0; i < n; i++) {
		if (p[i].flags & CO_MP_ZOMBIE)
			continue;
		for (int k = 0; k < CO_STREAMS; k++) {
			char img[PATH_MAX];
			snprintf(img, sizeof(img), "%s/%s", dir, p[i].image);
			co_stream_path(path, sizeof(path), img, k);
			if (!is_stream_file(strrchr(path, '/') + 1))
				return co_err(err, errlen, "%s: not an image file name", path);
			if ((k == 0 || access(path, F_OK) == 0) && compress_file(path, workers, err, errlen))
				return -1;
		}
	}
	return 0;
}

uint64_t co_img_bytes(const char *image)
{
	uint64_t total = 0;
	for (int k = 0; k < CO_STREAMS; k++) {
		char path[PATH_MAX], found[PATH_MAX];
		struct stat st;
		co_stream_path(path, sizeof(path), image, k);
		if (co_img_locate(path, found, sizeof(found)) == 0 && stat(found, &st) == 0)
			total += (uint64_t)st.st_size;
	}
	return total;
}

/* ---- restart: the restorer reads compressed images from FIFOs ---- */

/*
 * The restorer opens its image files itself, with raw system calls, and
 * reads each once, front to back.  For a compressed process image it opens
 * them in a private directory of named FIFOs instead, each fed by a filter
 * child that decompresses the stored file; it still names the stored file
 * in its messages.  A FIFO nobody opens (a restore that failed before)
 * leaves its child blocked in open(): co_fifos_stop() kills it.
 */
struct feeder {
	pid_t pid;
	int errfd;
	char name[PATH_MAX];
};
static struct feeder feeders[CO_TABLE_SLOTS * CO_STREAMS];
static int nfeeders;
static char fifo_dir[PATH_MAX];
static char fifo_path[PATH_MAX];	/* the FIFO of the feeder being started */

/* A feeder child: wait for the restorer to open the FIFO, then fill it. */
static int feed_fifo(int in, int unused, const char *stored, char *err, size_t errlen, int unused2)
{
	(void)unused;
	(void)unused2;
	int out;
	while ((out = open(fifo_path, O_WRONLY | O_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (out < 0)
		return co_err(err, errlen, "%s: %s", fifo_path, strerror(errno));
	fcntl(out, F_SETPIPE_SZ, ZBUF);
	return zdecompress(in, out, stored, err, errlen);
}

/* One FIFO for the stored file `stored`, named `fifo`, with its feeder. */
static int add_feeder(const char *stored, const char *fifo, char *err, size_t errlen)
{
	if (nfeeders == (int)CO_ARRAY_LEN(feeders))
		return co_err(err, errlen, "too many compressed images");
	if (mkfifo(fifo, 0600) < 0)
		return co_err(err, errlen, "cannot create %s: %s", fifo, strerror(errno));
	int in = open(stored, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return co_err(err, errlen, "%s: %s", stored, strerror(errno));
	struct feeder *f = &feeders[nfeeders];
	snprintf(f->name, sizeof(f->name), "%s", stored);
	snprintf(fifo_path, sizeof(fifo_path), "%s", fifo);
	f->pid = spawn_filter(in, in, feed_fifo, stored, 0, &f->errfd);
	close(in);
	if (f->pid < 0)
		return co_err(err, errlen, "%s: cannot start its decompression: %s", stored, strerror(errno));
	nfeeders++;
	return 0;
}

int co_fifos_start(const char *gen_dir, const struct co_mproc *p, int n, const char *dir, char *err, size_t errlen)
{
	snprintf(fifo_dir, sizeof(fifo_dir), "%s", dir);
	co_remove_tree(fifo_dir); /* left by a coordinator that was killed */
	if (mkdir(fifo_dir, 0700) < 0)
		return co_err(err, errlen, "cannot create %s: %s", fifo_dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		if ((p[i].flags & CO_MP_ZOMBIE) || !(p[i].flags & CO_MP_COMPRESSED))
			continue;
		for (int k = 0; k < CO_STREAMS; k++) {
			char img[PATH_MAX], stored[PATH_MAX], fifo[PATH_MAX];
			snprintf(img, sizeof(img), "%s/%s", gen_dir, p[i].image);
			co_stream_path(stored, sizeof(stored), img, k);
			strcat(stored, CO_ZST);
			if (k > 0 && access(stored, F_OK) < 0)
				continue; /* a process with one page stream */
			snprintf(img, sizeof(img), "%s/%s", fifo_dir, p[i].image);
			co_stream_path(fifo, sizeof(fifo), img, k);
			if (add_feeder(stored, fifo, err, errlen)) {
				co_fifos_stop(0);
				return -1;
			}
		}
	}
	return 0;
}

uint64_t co_fifos_bytes(void)
{
	uint64_t n = 0;
	for (int i = 0; i < nfeeders; i++)
		n += co_proc_io(feeders[i].pid, "rchar");
	return n;
}

void co_fifos_stop(int warn)
{
	for (int i = 0; i < nfeeders; i++) {
		struct feeder *f = &feeders[i];
		char err[1024];
		/* each is done by now, or blocked on a FIFO that no restorer will open */
		kill(f->pid, SIGKILL);
		/*
		 * A feeder fails either with its restorer, which said why, or at
		 * the very end of a file whose records all checked out (zstd's
		 * frame checksum comes last): worth a warning then.
		 */
		if (reap_filter(f->pid, f->errfd, f->name, err, sizeof(err)) && warn && !strstr(err, "killed by signal"))
			co_warn("warning: %s", err);
	}
	nfeeders = 0;
	if (fifo_dir[0])
		co_remove_tree(fifo_dir);
	fifo_dir[0] = 0;
}
