/*
 * coord/jobs.c - the heavy parts of a checkpoint in child processes: background
 * merges, compression, pre-copy and the merge of the pre-copies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include "coord.h"
#include "util.h"

/*
 * The body of a merge child: wait for the merge behind pidfd `after` (if
 * not -1) to end, merge every unmerged incremental of gdir, prune to keep
 * generations (if not 0), exit.
 */
static __attribute__((noreturn)) void merge_child(const char *gdir, int after, unsigned keep)
{
	/*
	 * The child keeps nothing of the coordinator's (members must see
	 * their hang-ups) but the images' LOCK, so that no other cohort
	 * writes them before it is done, even once the group has ended.  It
	 * says nothing on the group's stderr: a failure goes to
	 * IMAGES/NAME/merge.log, and a restart builds what it could not.
	 */
	int keep_fds = 3;
	/* (the pidfd of the merge to wait for too: the wait comes after, so that `cohort run | cat` ends with the group) */
	int lock = G.lock_fd >= 0 ? fcntl(G.lock_fd, F_DUPFD, 100) : -1;
	after = after >= 0 ? fcntl(after, F_DUPFD, 100) : -1;
	if (lock >= 0)
		dup2(lock, keep_fds++);
	if (after >= 0) {
		dup2(after, keep_fds);
		after = keep_fds++;
	}
	syscall(SYS_close_range, keep_fds, ~0U, 0);
	char log[PATH_MAX];
	snprintf(log, sizeof(log), "%s/merge.log", gdir);
	int lfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	dup2(lfd >= 0 ? lfd : open("/dev/null", O_WRONLY | O_CLOEXEC), STDERR_FILENO);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	dup2(null, STDIN_FILENO);
	dup2(null, STDOUT_FILENO);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_NAME, "cohort-merge");
	if (after >= 0) {
		struct pollfd w = { after, POLLIN, 0 };
		while (poll(&w, 1, -1) < 0 && errno == EINTR)
			;
	}
	/*
	 * Background work: the program must not wait for it.  On two cores a
	 * merge at the program's priority took a core from it for seconds
	 * after every incremental (a 2 GiB heap rewritten in rounds: rounds
	 * twice as long, with the same CPU time; docs/benchmarks.md).  At
	 * nice 19 it takes what the program leaves (the lowest best-effort
	 * I/O priority too); a restart that finds full-N missing builds it.
	 */
	setpriority(PRIO_PROCESS, 0, 19);
	syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, (2 << 13) | 7 /* best effort, lowest */);
	char err[1024];
	int r = co_merge_all(gdir, err, sizeof(err));
	if (r) {
		time_t now = time(NULL);
		char when[32];
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime(&now));
		fprintf(stderr, "%s background merge: %s\n", when, err);
	}
	if (keep)
		co_prune(gdir, keep);
	_exit(r ? 1 : 0);
}

/*
 * Fold committed incrementals into full images, in a child process so that
 * the group and its checkpoints never wait for it.  One at a time; an
 * incremental committed meanwhile is taken by the next round.
 */
void start_merge(const char *gdir)
{
	if (G.merge_pid > 0) {
		G.merge_again = 1;
		return;
	}
	G.merge_again = 0;
	G.merge_held = 0; /* co_merge_all takes every incremental not merged yet */
	pid_t pid = fork();
	if (pid < 0) {
		co_warn("cannot start the background merge: %s", strerror(errno));
		return;
	}
	if (pid > 0) {
		G.merge_pid = pid;
		return;
	}
	merge_child(gdir, -1, 0);
}

/* A migration is over (its hold ended, either way): the merges its rounds held back begin. */
void release_merges(const char *gdir)
{
	if (!G.merge_held)
		return;
	G.merge_held = 0;
	start_merge(gdir);
}

/*
 * The group ended while a merge ran (or with a migration's merges held
 * back).  That merge may have started before the last incremental was
 * committed, and no coordinator will be there to start the next round or
 * to prune after it: a detached child waits for the running merge, if
 * any, then merges whatever is still unmerged and prunes.
 * `cohort run` returns at once; the group's images are complete a little
 * later, as with any background merge.
 */
void finish_merges(void)
{
	reap_merge();
	if (G.merge_pid <= 0 && !G.merge_held)
		return;
	/* (a migration's merges held back, and none running: the detached child merges them) */
	int running = G.merge_pid > 0 ? (int)syscall(SYS_pidfd_open, G.merge_pid, 0) : -1;
	char gdir[PATH_MAX];
	snprintf(gdir, sizeof(gdir), "%s/%s", G.images, G.name);
	pid_t pid = fork();
	if (pid != 0) {
		if (pid < 0)
			co_warn("cannot start the last background merge: %s", strerror(errno));
		else if (G.lock_fd >= 0)
			co_lock_note(G.lock_fd, pid, 1); /* the lock's holder from now on: run and restart wait for it */
		if (running >= 0)
			close(running);
		return;
	}
	merge_child(gdir, running, G.keep);
}

/* The merge child ended: prune what it made unneeded, start another round if due. */
void reap_merge(void)
{
	if (G.merge_pid <= 0 || waitpid(G.merge_pid, NULL, WNOHANG) != G.merge_pid)
		return;
	G.merge_pid = 0;
	char gdir[PATH_MAX];
	snprintf(gdir, sizeof(gdir), "%s/%s", G.images, G.name);
	if (G.keep)
		co_prune(gdir, G.keep);
	if (G.merge_again)
		start_merge(gdir);
}

#define ZSTD_WORKERS 2	/* compression threads: this machine's cores; the group runs meanwhile */

/*
 * Run fn(arg, job) in a child process named name: the heavy parts of a
 * checkpoint (libzstd's threads and allocations, reading and writing a
 * GiB) stay out of the coordinator, whose death would leave the group
 * without checkpoints (a file size limit, say, kills the writer with
 * SIGXFSZ), and the coordinator goes on answering registrations (gen: as
 * for pump()).  Other requests wait, as during any checkpoint.  0 when fn
 * returned 0; else err says why, from job->msg or from how the child ended.
 */
int run_job(const char *name, const char *what, int (*fn)(void *, struct job *), void *arg, struct job *job,
		   uint64_t gen, char *err, size_t errlen)
{
	memset(job, 0, sizeof(*job));
	pid_t parent = getpid(), pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(1);
		/* nothing of the coordinator's: members must see their hang-ups */
		syscall(SYS_close_range, 3, ~0U, 0);
		prctl(PR_SET_NAME, name);
		_exit(fn(arg, job) ? 1 : 0);
	}
	int st = 0, r = -1;
	if (pid > 0)
		progress_job(pid);
	if (pid < 0)
		snprintf(job->msg, sizeof(job->msg), "cannot start %s: %s", what, strerror(errno));
	while (pid > 0 && (r = (int)waitpid(pid, &st, WNOHANG)) == 0)
		pump(5, gen);
	int ok = r == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	if (!ok && !job->msg[0])
		snprintf(job->msg, sizeof(job->msg), "%s: %s", what,
			 r == pid && WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "failed");
	if (!ok)
		snprintf(err, errlen, "%s", job->msg);
	return ok ? 0 : -1;
}

static struct job *job_map(void)
{
	static struct job *j;
	if (!j && (j = mmap(NULL, sizeof(*j), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) == MAP_FAILED)
		j = NULL;
	return j;
}

struct compress_arg {
	const char *tmp;
	const struct co_mproc *procs;
	int n;
};

static int compress_job(void *arg, struct job *job)
{
	struct compress_arg *a = arg;
	return co_compress_gen(a->tmp, a->procs, a->n, ZSTD_WORKERS, job->msg, sizeof(job->msg));
}

/*
 * Compress the images of the generation being written in tmp, after every
 * process said DONE and before the commit: the group is running again by
 * now (it waits only with --kill), so this lengthens the checkpoint, not
 * the pause.  On failure the caller removes tmp: nothing half-compressed
 * is committed.
 */
int compress_images(const char *tmp, const struct co_mproc *procs, int n, char *err, size_t errlen)
{
	struct job *job = job_map();
	struct compress_arg a = { tmp, procs, n };
	/* all it reads: the images and shared.img, which are all .tmp-gen-N holds before the manifest */
	progress_phase("compressing", PC_JOB_READ, co_dir_bytes(tmp));
	if (!job)
		return snprintf(err, errlen, "cannot compress the images: %s", strerror(errno)), -1;
	return run_job("cohort-zstd", "the compression", compress_job, &a, job, 0, err, errlen);
}

/* Where the pre-copies of the generation being written in tmp go: tmp/.pre. */
const char *pre_dir(const char *tmp)
{
	static char pre[PATH_MAX];
	snprintf(pre, sizeof(pre), "%s/.pre", tmp);
	return pre;
}

/*
 * Whether the pre-copy of member c, pages read ahead, is worth its merge.
 * Memory it could not read ahead (regions of huge pages, compared by page
 * hashes, and pages written since the arming) goes into the image of the
 * pause anyway, and the merge then copies all of it a second time: with
 * less than an eighth of the process's memory read ahead (a heap of huge
 * pages: nothing), a whole image from the snapshot is the cheaper way,
 * and its pause is no longer (huge pages fork fast).  (Half was too much:
 * a program rewriting its memory during the pre-copy, on a busy machine,
 * then never had one.)
 */
static int precopy_worth(const struct conn *c, uint64_t pages)
{
	char path[64], buf[4096];
	snprintf(path, sizeof(path), "/proc/%d/status", c->host_pid);
	long anon_kib = co_read_small(path, buf, sizeof(buf)) > 0 ? co_status_field(buf, "RssAnon") : -1;
	return anon_kib < 0 || pages * (CO_PAGE / 1024) * 8 >= (uint64_t)anon_kib;
}

/* The pre-copy of every armed member (the child's copy of G), into pre_dir(tmp). */
static int precopy_job(void *arg, struct job *job)
{
	const char *pre = pre_dir(arg);
	int made = mkdir(pre, 0700) == 0 || errno == EEXIST;
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		if (c->kind != C_MEMBER || !c->part || !c->armed)
			continue;
		char img[PATH_MAX], perr[1024];
		snprintf(img, sizeof(img), "%s/proc-%d.img", pre, c->pid);
		int64_t pages = made ? co_precopy(img, c->pid, c->host_pid, perr, sizeof(perr)) : -1;
		if (pages < 0) {
			job->failed[job->nfailed++] = c->pid;
			if (getenv("COHORT_DEBUG"))
				co_warn("pre-copy of pid %d: %s", c->pid, made ? perr : strerror(errno));
		} else if (!precopy_worth(c, (uint64_t)pages)) {
			/* told it failed, the process saves itself whole, as without a pre-copy */
			job->failed[job->nfailed++] = c->pid;
		}
	}
	return 0;
}

/*
 * Read the memory of every armed member ahead (precopy.c) while the group
 * runs, then tell every member to park.  A member that could not be read
 * parks for a whole image.  No manager thread of ours stays in the
 * program while its memory is read (a program listing its threads would
 * see it for as long): each left after ARMED, and the checkpoint signal
 * starts another, which gets QUIESCE when it attaches.
 */
void precopy_members(const char *tmp, uint64_t gen)
{
	struct job *job = job_map();
	char err[1024];
	progress_phase("pre-copying", PC_PRE, members_memory(MM_PRECOPY));
	int ok = job && run_job("cohort-precopy", "the pre-copy", precopy_job, (void *)tmp, job, gen, err, sizeof(err)) == 0;
	if (!ok && getenv("COHORT_DEBUG"))
		co_warn("%s", job ? err : "no memory for the pre-copy");
	co_crash_point("precopied"); /* tests: the group runs on, armed, before it parks (flags_ahead) */
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		if (c->kind != C_MEMBER || !c->part)
			continue;
		int failed = c->armed && !ok;
		for (int k = 0; ok && k < job->nfailed; k++)
			failed |= job->failed[k] == c->pid;
		if (!(c->got & (1u << CO_M_ARMED)))
			continue; /* born during the checkpoint: parked already */
		/* its manager left after ARMED: the next one, started by this signal, gets QUIESCE (on_attach) */
		c->quiesce = 1 + (failed ? CO_PREP_PRECOPY_FAILED : 0);
		c->answered = 0;
		signal_member(c); /* gone, or exec'ing: the barrier finds out, and signals again */
	}
}

/* A member whose image is incremental against its pre-copy. */
static int precopied(const struct conn *c, uint64_t gen)
{
	return c->kind == C_MEMBER && c->part && c->incr_parent == CO_PRECOPY_ID(gen);
}

struct merge_arg {
	const char *tmp;
	uint64_t gen;
};

static int merge_job(void *arg, struct job *job)
{
	struct merge_arg *a = arg;
	for (int i = 0; i < G.nc; i++) {
		struct conn *c = &G.c[i];
		char image[64], e[2048];
		if (!precopied(c, a->gen))
			continue;
		snprintf(image, sizeof(image), "proc-%d.img", c->pid);
		struct co_bind gen = { G.group_id, a->gen, 0, 0 };
		if (co_merge_precopy(a->tmp, pre_dir(a->tmp), c->pid, image, CO_PRECOPY_ID(a->gen), &gen, e, sizeof(e))) {
			snprintf(job->msg, sizeof(job->msg), "pid %d: merging its pre-copy: %s", c->pid, e);
			return -1;
		}
	}
	return 0;
}

/* Fold the pre-copy into each pre-copied member's image: full images.  *merged: how many. */
int merge_precopies(const char *tmp, uint64_t gen, int *merged, char *err, size_t errlen)
{
	struct job *job = job_map();
	struct merge_arg a = { tmp, gen };
	*merged = 0;
	int any = 0;
	for (int i = 0; i < G.nc; i++)
		any |= precopied(&G.c[i], gen);
	if (!any) {
		co_remove_tree(pre_dir(tmp));
		return 0;
	}
	/* the full images come to about what the pre-copies took */
	progress_phase("merging pre-copy", PC_JOB_WRITE, co_dir_bytes(pre_dir(tmp)));
	int r = job ? run_job("cohort-premerge", "merging the pre-copy", merge_job, &a, job, 0, err, errlen)
		    : (snprintf(err, errlen, "cannot merge the pre-copy: %s", strerror(errno)), -1);
	for (int i = 0; i < G.nc && !r; i++) {
		struct conn *c = &G.c[i];
		if (!precopied(c, gen))
			continue;
		char image[PATH_MAX];
		snprintf(image, sizeof(image), "%s/proc-%d.img", tmp, c->pid);
		c->bytes = co_img_bytes(image);
		c->incr_parent = 0;
		*merged += 1;
	}
	co_remove_tree(pre_dir(tmp));
	return r;
}
