/*
 * postcopy_target.c - post-copy at the target (docs/architecture.md,
 * "Migration", *Post-copy*; the whole design in postcopy.c's opening
 * comment): the sparse files as they come, the post-copy process that
 * owns the stream once the restart begins, and the page source through
 * which the fillers wait for the pieces still at the source.
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

/* ==== the target ==== */

struct pc_file {
	dev_t dev;
	ino_t ino;
	uint32_t p0, np;	/* its pieces */
	uint64_t digest;	/* the whole file's, as the manifest lists it */
	int check;		/* ... if it lists one */
	char name[128];
};

/* Shared between the receiver's post-copy process and the fillers. */
struct table {
	uint32_t seq;		/* futex: a piece came in, or the end */
	uint32_t failed;	/* the stream is lost: why says why */
	uint32_t reported;	/* a filler has said so */
	int32_t receiver;	/* the process that owns the stream, once the group runs */
	uint32_t nfiles, npieces;
	char why[512];
	struct pc_file files[MAX_FILES];
	struct piece pieces[];
};
static struct table *T;
static int wake_fd = -1;	/* eventfd: a filler asked for a piece */
static char gen_path[PATH_MAX];	/* the generation's directory */

/* The sparse files as they come, before the table is made. */
static struct noted {
	char name[128];
	struct co_wire_hole *holes;
	uint32_t n;
	uint64_t digest;	/* the whole file's, as the manifest lists it */
	int check;		/* ... if it lists one */
} got[MAX_FILES];
static uint32_t ngot;

int co_postcopy_note(const char *name, const struct co_wire_hole *holes, uint32_t n, const uint64_t *digest,
		     char *err, size_t errlen)
{
	if (ngot == MAX_FILES)
		return snprintf(err, errlen, "more than %d sparse files", MAX_FILES), -1;
	struct noted *s = &got[ngot];
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->holes = malloc((n ? n : 1) * sizeof(*holes));
	if (!s->holes)
		return snprintf(err, errlen, "out of memory"), -1;
	memcpy(s->holes, holes, n * sizeof(*holes));
	s->n = n;
	s->check = digest != NULL;
	s->digest = digest ? *digest : 0;
	ngot++;
	return 0;
}

int co_postcopy_files(void)
{
	return (int)ngot;
}

int co_postcopy_map(const char *gen_dir, char *err, size_t errlen)
{
	uint32_t np = 0;
	for (uint32_t f = 0; f < ngot; f++)
		np += co_pc_cut(got[f].holes, got[f].n, 0, NULL);
	size_t size = sizeof(struct table) + (size_t)np * sizeof(struct piece);
	T = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (T == MAP_FAILED) {
		T = NULL;
		return snprintf(err, errlen, "cannot map the post-copy table: %s", strerror(errno)), -1;
	}
	wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (wake_fd < 0)
		return snprintf(err, errlen, "eventfd: %s", strerror(errno)), -1;
	T->npieces = np;
	T->nfiles = ngot;
	snprintf(gen_path, sizeof(gen_path), "%s", gen_dir);
	for (uint32_t f = 0, k = 0; f < ngot; f++) {
		struct pc_file *pf = &T->files[f];
		char path[PATH_MAX + 160];
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", gen_dir, got[f].name);
		if (stat(path, &st) < 0)
			return snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1;
		*pf = (struct pc_file){ st.st_dev, st.st_ino, k, 0, got[f].digest, got[f].check, "" };
		snprintf(pf->name, sizeof(pf->name), "%s", path + strlen(gen_dir) + 1);
		pf->np = co_pc_cut(got[f].holes, got[f].n, (uint16_t)f, T->pieces + k);
		k += pf->np;
	}
	return 0;
}

/* ---- the receiver's post-copy process ---- */

/*
 * Between the receiver (the coordinator of the restart) and its post-copy
 * process, which owns the stream from the start of the restart: pages may
 * be faulted on before the group runs (its restore touches them).
 */
struct ctl {
	char op;		/* to it: 'R' READY, 'N' RUNNING, 'A' ABORT (text); from it: 'G' GO, 'L' lost (text) */
	int64_t a;
	char text[1024];
};
static int ctl_fd = -1;		/* the receiver's end; the post-copy process's is 5 */
static pid_t pc_pid;
static int running_there;	/* the post-copy process: the group runs (RUNNING sent) */

static void wake_all(void)
{
	__atomic_add_fetch(&T->seq, 1, __ATOMIC_SEQ_CST);
	syscall(SYS_futex, &T->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

static int ctl_send(int fd, char op, int64_t a, const char *text)
{
	static struct ctl c;
	memset(&c, 0, sizeof(c));
	c.op = op;
	c.a = a;
	snprintf(c.text, sizeof(c.text), "%s", text ? text : "");
	return send(fd, &c, sizeof(c), MSG_NOSIGNAL) == (ssize_t)sizeof(c) ? 0 : -1;
}

/*
 * The stream is lost.  Before the group runs: the receiver is told (it
 * abandons the restart, as any failure then).  After: the first filler
 * that waits for a piece says so (one line) and fails, which ends the
 * group; the receiver says it when no filler did (co_postcopy_finish).
 */
static void __attribute__((noreturn)) lost(const char *peer, const char *why)
{
	snprintf(T->why, sizeof(T->why), "post-copy from %s was cut (%s): its pages are only at the source", peer, why);
	__atomic_store_n(&T->failed, 1, __ATOMIC_SEQ_CST);
	wake_all();
	if (!running_there)
		ctl_send(5, 'L', 0, why);
	_exit(1);
}

/* A PUSH (in m): its bytes into their place, then the fillers woken.  1 when the piece is new. */
static int take_piece(struct co_wire *w, const struct co_wire_msg *m, const int *fds)
{
	static char buf[PIECE];
	long k = m->a >= 0 && (uint64_t)m->a < T->nfiles
			 ? co_pc_find_piece(T->pieces, T->npieces, (uint32_t)m->a, (uint64_t)m->b)
			 : -1;
	struct piece *p = k >= 0 ? &T->pieces[k] : NULL;
	if (!p || p->off != (uint64_t)m->b || co_r_next(&w->r) != 1 || w->r.hdr.type != CO_R_WIRE_DATA ||
	    w->r.hdr.len != p->len)
		lost(w->peer, w->r.err[0] ? w->r.err : "a piece that is not one of this migration's");
	if (co_r_read(&w->r, buf, p->len) || co_r_finish(&w->r))
		lost(w->peer, w->r.err);
	if (__atomic_load_n(&p->state, __ATOMIC_ACQUIRE) == IN)
		return 0; /* pushed, and asked for meanwhile: the same bytes */
	if (pwrite(fds[p->file], buf, p->len, (off_t)p->off) != (ssize_t)p->len)
		lost(w->peer, "cannot write a piece into its file here");
	__atomic_store_n(&p->state, IN, __ATOMIC_RELEASE);
	wake_all();
	return 1;
}

/* The pieces fillers wait for (ASKED): a WANT each. */
static void ask(struct co_wire *w)
{
	uint64_t n;
	if (read(wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		lost(w->peer, "its wakeup failed");
	for (uint32_t k = 0; k < T->npieces; k++) {
		uint8_t want = ASKED;
		if (__atomic_compare_exchange_n(&T->pieces[k].state, &want, WANTED, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) &&
		    co_wire_send(w, CO_W_WANT, T->pieces[k].file, (int64_t)T->pieces[k].off, NULL))
			lost(w->peer, "the connection was lost");
	}
}

/* Every piece has come: each file is whole, as the manifest says. */
static void check_files(const char *peer)
{
	for (uint32_t f = 0; f < T->nfiles; f++) {
		char path[PATH_MAX + 160], why[PATH_MAX + 256];
		uint64_t d = 0;
		snprintf(path, sizeof(path), "%s/%s", gen_path, T->files[f].name);
		if (T->files[f].check && (co_file_digest(path, &d) || d != T->files[f].digest)) {
			snprintf(why, sizeof(why), "%s: its content is not what the manifest says once filled", path);
			lost(peer, why);
		}
	}
}

/* What the receiver says: READY and RUNNING go on the stream, ABORT too (then we are done). */
static void from_receiver(struct co_wire *w)
{
	static struct ctl c;
	ssize_t r = recv(5, &c, sizeof(c), 0);
	if (r < 0 && errno == EINTR)
		return;
	if (r != (ssize_t)sizeof(c)) { /* the receiver gave up, or ended: nothing more for us before the group runs */
		if (!running_there)
			_exit(1);
		return;
	}
	c.text[sizeof(c.text) - 1] = 0;
	if (c.op == 'A') {
		co_wire_send(w, CO_W_ABORT, 0, 0, c.text);
		co_wire_hang_up(w);
		_exit(0);
	}
	unsigned op = c.op == 'R' ? CO_W_READY : CO_W_RUNNING;
	if (co_wire_send(w, op, c.a, 0, NULL))
		lost(w->peer, "the connection was lost");
	running_there |= op == CO_W_RUNNING;
}

/* The next message on the stream: a piece, or (before the group runs) GO for the receiver.  1: a new piece. */
static int from_source(struct co_wire *w, const int *fds)
{
	static struct co_wire_msg m;
	char err[1024];
	if (co_wire_recv(w, &m, 0, err, sizeof(err)))
		lost(w->peer, err);
	if (m.op == CO_W_GO && !running_there) {
		if (ctl_send(5, 'G', 0, NULL))
			_exit(1);
		return 0;
	}
	if (m.op != CO_W_PUSH)
		lost(w->peer, "a message out of order where pages were due");
	return take_piece(w, &m, fds);
}

static void __attribute__((noreturn)) receiver(struct co_wire *w)
{
	static int fds[MAX_FILES];
	uint32_t in = 0;
	for (uint32_t f = 0; f < T->nfiles; f++) {
		char path[PATH_MAX + 160];
		snprintf(path, sizeof(path), "%s/%s", gen_path, T->files[f].name);
		if ((fds[f] = open(path, O_WRONLY | O_CLOEXEC)) < 0)
			lost(w->peer, "cannot open its files here");
	}
	/* until every piece is in and the group runs (RUNNING said: DONE comes after it) */
	while (in < T->npieces || !running_there) {
		struct pollfd p[3] = { { w->fd, POLLIN, 0 }, { wake_fd, POLLIN, 0 }, { 5, POLLIN, 0 } };
		/* once the group runs, a source that sends nothing at all for so long is as good as gone */
		int ready = co_wire_readable(w); /* decrypted already: poll would not see it */
		int n = poll(p, 3, ready ? 0 : running_there ? QUIET_MS : -1);
		if (n < 0 && errno != EINTR)
			lost(w->peer, strerror(errno));
		if (n == 0 && !ready)
			lost(w->peer, "no word from it for 120 s");
		if (ready)
			p[0].revents |= POLLIN;
		if (p[2].revents)
			from_receiver(w);
		if (p[1].revents)
			ask(w);
		if (p[0].revents)
			in += (uint32_t)from_source(w, fds);
	}
	check_files(w->peer);
	if (co_wire_send(w, CO_W_DONE, 0, 0, NULL))
		lost(w->peer, "the connection was lost before DONE");
	co_wire_hang_up(w);
	_exit(0);
}

int co_postcopy_start(struct co_wire *w)
{
	int sv[2];
	if (!T || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	pid_t parent = getpid();
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		prctl(PR_SET_NAME, "cohort-postcopy");
		/* the stream, the wakeup, the receiver's socket and stderr; nothing else of the coordinator's */
		int s = fcntl(w->fd, F_DUPFD_CLOEXEC, 16), e = fcntl(wake_fd, F_DUPFD_CLOEXEC, 16);
		int c = fcntl(sv[1], F_DUPFD_CLOEXEC, 16), null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (s < 0 || e < 0 || c < 0 || null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
		    dup3(s, 3, O_CLOEXEC) < 0 || dup3(e, 4, O_CLOEXEC) < 0 || dup3(c, 5, O_CLOEXEC) < 0)
			_exit(1);
		syscall(SYS_close_range, 6, ~0U, 0);
		co_wire_set_fd(w, 3);
		wake_fd = 4;
		receiver(w);
	}
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return -1;
	}
	ctl_fd = sv[0];
	pc_pid = pid;
	__atomic_store_n(&T->receiver, pid, __ATOMIC_SEQ_CST);
	return 0;
}

int co_postcopy_ready(int64_t procs, char *why, size_t n)
{
	static struct ctl c;
	if (ctl_send(ctl_fd, 'R', procs, NULL))
		return snprintf(why, n, "the post-copy process here ended"), -1;
	ssize_t r;
	while ((r = recv(ctl_fd, &c, sizeof(c), 0)) < 0 && errno == EINTR)
		;
	if (r != (ssize_t)sizeof(c))
		return snprintf(why, n, "the post-copy process here ended"), -1;
	c.text[sizeof(c.text) - 1] = 0;
	if (c.op != 'G')
		return snprintf(why, n, "%s", c.text), -1;
	return 0;
}

void co_postcopy_running(int64_t procs)
{
	ctl_send(ctl_fd, 'N', procs, NULL);
}

/* Wait for the post-copy process (0: it ended well). */
static int reap(void)
{
	int st = 0;
	if (pc_pid <= 0)
		return 0;
	while (waitpid(pc_pid, &st, 0) < 0 && errno == EINTR)
		;
	pc_pid = 0;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

void co_postcopy_abort(const char *why)
{
	if (pc_pid <= 0)
		return;
	if (ctl_send(ctl_fd, 'A', 0, why))
		kill(pc_pid, SIGKILL);
	reap();
}

int co_postcopy_finish(void)
{
	if (pc_pid <= 0 || !reap())
		return 0;
	uint32_t no = 0;
	if (__atomic_compare_exchange_n(&T->reported, &no, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		co_warn("%s", T->why[0] ? T->why : "post-copy failed here: its process was killed");
	return -1;
}

/* ---- the fillers' page source ---- */

int co_postcopy_filler_fd(int fd)
{
	if (!T || wake_fd < 0 || (wake_fd != fd && dup3(wake_fd, fd, O_CLOEXEC) != fd))
		return -1;
	wake_fd = fd;
	return 0;
}

/* The table's file the descriptor fd reads, or -1 (a file sent whole). */
static int file_of(int fd)
{
	static int cached_fd = -1, cached = -1;
	struct stat st;
	if (fd == cached_fd)
		return cached;
	cached_fd = fd;
	cached = -1;
	if (fstat(fd, &st) == 0)
		for (uint32_t f = 0; f < T->nfiles && cached < 0; f++)
			if (T->files[f].dev == st.st_dev && T->files[f].ino == st.st_ino)
				cached = (int)f;
	return cached;
}

static uint32_t seen;	/* the table's sequence number when ready() last looked */
static int receiver_fd = -1; /* pidfd of the receiver's post-copy process, once there is one */
static int receiver_dead;	/* ... which had ended when we last waited */

static int pc_ready(void *ctx, int fd, uint64_t off, uint64_t n, int demand)
{
	(void)ctx;
	seen = __atomic_load_n(&T->seq, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(&T->failed, __ATOMIC_ACQUIRE))
		return -1;
	int f = file_of(fd);
	if (f < 0 || !n)
		return 1;
	const struct pc_file *pf = &T->files[f];
	long k = co_pc_find_piece(T->pieces + pf->p0, pf->np, (uint32_t)f, off);
	if (k < 0) { /* off is between holes: the first piece after it */
		uint32_t lo = 0, hi = pf->np;
		while (lo < hi) {
			uint32_t mid = lo + (hi - lo) / 2;
			if (T->pieces[pf->p0 + mid].off < off)
				lo = mid + 1;
			else
				hi = mid;
		}
		k = lo;
	}
	int ready = 1, asked = 0;
	for (uint32_t i = pf->p0 + (uint32_t)k; i < pf->p0 + pf->np && T->pieces[i].off < off + n; i++) {
		uint8_t st = __atomic_load_n(&T->pieces[i].state, __ATOMIC_ACQUIRE);
		if (st == IN)
			continue;
		ready = 0;
		uint8_t missing = MISSING;
		if (demand && __atomic_compare_exchange_n(&T->pieces[i].state, &missing, ASKED, 0, __ATOMIC_ACQ_REL,
							  __ATOMIC_ACQUIRE))
			asked = 1;
	}
	if (!ready && receiver_dead) { /* nobody left to bring them */
		snprintf(T->why, sizeof(T->why), "the post-copy process here ended before every page had come");
		__atomic_store_n(&T->failed, 1, __ATOMIC_SEQ_CST);
		return -1;
	}
	if (asked) {
		uint64_t one = 1;
		if (write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			return -1;
	}
	return ready;
}

/* Has the receiver's post-copy process ended (killed: it says nothing)? */
static int receiver_gone(void)
{
	pid_t pid = __atomic_load_n(&T->receiver, __ATOMIC_ACQUIRE);
	if (pid <= 0)
		return 0; /* not yet: the group does not run yet */
	if (receiver_fd < 0 && (receiver_fd = (int)syscall(SYS_pidfd_open, pid, 0)) < 0)
		return errno == ESRCH;
	struct pollfd p = { receiver_fd, POLLIN, 0 };
	return poll(&p, 1, 0) == 1;
}

static void pc_wait(void *ctx, int ms)
{
	(void)ctx;
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	syscall(SYS_futex, &T->seq, FUTEX_WAIT, seen, &ts, NULL, 0);
	/* (it ends once every piece is in, too: pc_ready looks again before it calls that a failure) */
	receiver_dead = receiver_gone();
}

static const char *pc_why(void *ctx)
{
	(void)ctx;
	uint32_t no = 0;
	return __atomic_compare_exchange_n(&T->reported, &no, 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST) ? T->why : NULL;
}

struct co_page_source co_postcopy_source(void)
{
	if (!T)
		return (struct co_page_source){ 0 };
	return (struct co_page_source){ pc_ready, pc_wait, pc_why, NULL };
}

void co_postcopy_report(const char *gen_dir, const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		return;
	for (uint32_t i = 0; T && i < T->nfiles; i++) {
		char p[PATH_MAX + 160];
		struct stat st;
		snprintf(p, sizeof(p), "%s/%s", gen_dir, T->files[i].name);
		if (stat(p, &st) == 0)
			fprintf(f, "%s %lld %lld\n", T->files[i].name, (long long)st.st_size, (long long)st.st_blocks * 512);
	}
	fclose(f);
}

