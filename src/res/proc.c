/*
 * proc.c - process-wide attributes: identity, the mm layout the kernel
 * keeps (brk, argument and environment areas, auxv, exe), cwd, umask,
 * resource limits, signal dispositions and credentials (uids, gids,
 * supplementary groups, the dumpable flag).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/prctl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#ifndef PR_GET_AUXV
#define PR_GET_AUXV 0x41555856 /* Linux 6.4 */
#endif

#ifndef COHORT_RESTORER
static uint64_t clock_ns(int clk)
{
	struct co_timespec ts;
	co_clock_gettime(clk, &ts);
	return (uint64_t)ts.sec * 1000000000ULL + (uint64_t)ts.nsec;
}

static void read_link(const char *path, char *buf, size_t n)
{
	long r = co_readlink(path, buf, n - 1);
	buf[r > 0 ? r : 0] = 0;
}

int co_proc_dump(struct co_dumpctx *d, int nthreads)
{
	static struct co_proc p;
	co_memset(&p, 0, sizeof(p));
	p.pid = d->pid;
	p.ppid = d->ppid;
	p.pgid = d->pgid;
	p.sid = d->sid;
	p.nthreads = (uint32_t)nthreads;
	p.nfds = d->nfds;
	p.nvmas = d->nvmas;
	/* every other thread is parked, so reading the umask by setting it is safe */
	p.umask = (uint32_t)co_umask(0);
	co_umask((int)p.umask);

	uint64_t f[26];
	if (co_stat_fields("/proc/self/stat", f, 26, 26))
		return DERR(d, "pid %d: cannot parse /proc/self/stat", d->pid);
	p.mm.start_code = f[0];
	p.mm.end_code = f[1];
	p.mm.start_stack = f[2];
	p.mm.start_data = f[45 - 26];
	p.mm.end_data = f[46 - 26];
	p.mm.start_brk = f[47 - 26];
	p.mm.arg_start = f[48 - 26];
	p.mm.arg_end = f[49 - 26];
	p.mm.env_start = f[50 - 26];
	p.mm.env_end = f[51 - 26];
	p.mm.brk = (uint64_t)co_sys1(SYS_brk, 0);

	int fd = (int)co_open("/proc/self/auxv", O_RDONLY | O_CLOEXEC, 0);
	if (fd >= 0) {
		long r = co_read(fd, p.auxv, sizeof(p.auxv));
		p.auxv_bytes = r > 0 ? (uint32_t)r : 0;
		co_close(fd);
	} else {
		/* not dumpable (it changed its uid): /proc/self/auxv is root's; the kernel tells its own (6.4+) */
		long r = co_prctl(PR_GET_AUXV, (long)p.auxv, sizeof(p.auxv), 0, 0);
		p.auxv_bytes = r > 0 ? (uint32_t)(r < (long)sizeof(p.auxv) ? r : (long)sizeof(p.auxv)) : 0;
	}
	if (!p.auxv_bytes)
		return DERR(d, "pid %d: cannot read its auxiliary vector (/proc/self/auxv)", d->pid);
	for (int i = 0; i < CO_NRLIMIT; i++)
		co_prlimit(0, i, 0, &p.rlim[i]);
	if (d->fsize_raised) /* the writer's, for now: the program's is noted */
		p.rlim[RLIMIT_FSIZE].cur = d->fsize.cur;
	for (int s = 1; s <= CO_NSIG; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		co_sigaction(s, 0, &p.sigact[s - 1]);
	}
	p.sig = (uint32_t)d->sig;
	if (d->npending > 2 * CO_MAX_PENDING)
		return DERR(d, "pid %d: more than %d signals are queued for it, which cohort cannot save", d->pid,
			    2 * CO_MAX_PENDING);
	p.npending = (uint32_t)d->npending;
	p.streams = (uint32_t)d->nstreams;
	p.parent = d->parent;
	co_memcpy(p.pending, d->pending, sizeof(p.pending[0]) * (size_t)d->npending);
	p.agent_info = d->agent_info;
	p.mono_ns = clock_ns(CLOCK_MONOTONIC);
	p.boot_ns = clock_ns(CLOCK_BOOTTIME);
	co_strlcpy(p.comm, d->comm, sizeof(p.comm));
	read_link("/proc/self/exe", p.exe, sizeof(p.exe));
	read_link("/proc/self/cwd", p.cwd, sizeof(p.cwd));
	if (d->root)
		co_strlcpy(p.root, d->root, sizeof(p.root));
	/* the ids of the process (its main thread's: the program's threads share them, as libc sets them) */
	static char status[16384];
	if (co_read_small("/proc/self/status", status, sizeof(status)) <= 0)
		return DERR(d, "pid %d: cannot read /proc/self/status", d->pid);
	int ng = co_status_creds(status, p.uid, p.gid, p.groups, CO_MAX_GROUPS);
	if (ng == -E2BIG)
		return DERR(d, "pid %d: more than %d supplementary groups", d->pid, CO_MAX_GROUPS);
	if (ng < 0)
		return DERR(d, "pid %d: cannot parse the ids in /proc/self/status", d->pid);
	p.ngroups = (uint32_t)ng;
	p.creds = 1;
	p.dumpable = (int32_t)co_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	p.a = d->attrs;
	p.a8 = d->attrs8;
	p.cpu = d->cpu;
	p.mlockall = d->mlockall;
	if (co_w_rec(d->w, CO_R_PROC, &p, sizeof(p)))
		return DERR(d, "pid %d: writing the process record failed", d->pid);
	return 0;
}
#else /* the restorer */

/* The restorer's own descriptors sit just below the hard limit: raise the soft one. */
int co_proc_restore_early(struct co_rstctx *rc)
{
	rc->fd_base = co_plan_top();
	/* the program's own limits are set last, in co_proc_restore() */
	return rc->fd_base > 16 ? 0 : co_err(rc->err, rc->errlen, "descriptor limit too low");
}

static const char *const rlimit_names[CO_NRLIMIT] = {
	"RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
	"RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
	"RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME",
};

/* A limit as text: "unlimited" or the number. */
static const char *rlim_text(char *buf, size_t n, uint64_t v)
{
	if (v == (uint64_t)RLIM_INFINITY)
		return "unlimited";
	co_fmt(buf, n, "%llu", (unsigned long long)v);
	return buf;
}

/*
 * The program's resource limits, exactly as saved, never lowered quietly:
 * a hard limit above the restart's needs CAP_SYS_RESOURCE (and an
 * RLIMIT_NOFILE one no more than fs.nr_open).  Set late: the restorer's
 * own descriptors, at the top of the range its raised RLIMIT_NOFILE gave
 * (co_plan_top), stay open whatever the program's limit.
 */
static int rlimits_restore(struct co_rstctx *rc)
{
	const struct co_proc *p = rc->proc;
	for (int i = 0; i < CO_NRLIMIT; i++) {
		struct rlimit want = { p->rlim[i].cur, p->rlim[i].max }, have = { 0, 0 };
		long r = co_prlimit(0, i, 0, &have);
		if (r == 0 && want.rlim_cur == have.rlim_cur && want.rlim_max == have.rlim_max)
			continue;
		if (r == 0)
			r = co_prlimit(0, i, &want, 0);
		if (r == 0)
			continue;
		char c[24], m[24], h[24], why[96];
		int64_t nr_open = 0;
		if (r == -EPERM && i == RLIMIT_NOFILE && co_read_number("/proc/sys/fs/nr_open", &nr_open) == 0 &&
		    want.rlim_max > (uint64_t)nr_open)
			co_fmt(why, sizeof(why), "this machine's fs.nr_open is %lld", (long long)nr_open);
		else if (r == -EPERM && want.rlim_max > have.rlim_max)
			co_fmt(why, sizeof(why), "the restart's hard limit is %s (raise it, or restart with privilege)",
			       rlim_text(h, sizeof(h), have.rlim_max));
		else
			co_fmt(why, sizeof(why), "errno %ld%s", -r, want.rlim_cur > want.rlim_max ? " (soft above hard)" : "");
		return co_err(rc->err, rc->errlen, "pid %d: cannot set %s back to %s/%s: %s", p->pid, rlimit_names[i],
			      rlim_text(c, sizeof(c), want.rlim_cur), rlim_text(m, sizeof(m), want.rlim_max), why);
	}
	return 0;
}

int co_proc_restore(struct co_rstctx *rc)
{
	struct co_proc *p = rc->proc;
	struct prctl_mm_map map;
	co_memset(&map, 0, sizeof(map));
	map.start_code = p->mm.start_code;
	map.end_code = p->mm.end_code;
	map.start_data = p->mm.start_data;
	map.end_data = p->mm.end_data;
	map.start_brk = p->mm.start_brk;
	map.brk = p->mm.brk;
	map.start_stack = p->mm.start_stack;
	map.arg_start = p->mm.arg_start;
	map.arg_end = p->mm.arg_end;
	map.env_start = p->mm.env_start;
	map.env_end = p->mm.env_end;
	map.auxv = (__u64 *)p->auxv;
	map.auxv_size = p->auxv_bytes;
	/*
	 * exe: only what /proc/self/exe names, not a way in (opening it there
	 * checks the program's rights): opened as the restorer, as an exec
	 * opens it whatever the program may read.
	 */
	int exe = -1;
	if (p->exe[0] && !co_endswith(p->exe, " (deleted)") && co_creds_files(&rc->ids, 0) == 0) {
		exe = (int)co_open(p->exe, O_RDONLY | O_CLOEXEC, 0);
		if (co_creds_files(&rc->ids, 1)) {
			if (exe >= 0)
				co_close(exe);
			return co_err(rc->err, rc->errlen, "pid %d: cannot open its files as uid %u again", p->pid,
				      rc->ids.uid[3]);
		}
	}
	map.exe_fd = (uint32_t)exe;
	long r = co_prctl(PR_SET_MM, PR_SET_MM_MAP, (long)&map, sizeof(map), 0);
	if (r < 0 && exe >= 0) {
		/* keep going without /proc/self/exe rather than fail the restart */
		map.exe_fd = (uint32_t)-1;
		r = co_prctl(PR_SET_MM, PR_SET_MM_MAP, (long)&map, sizeof(map), 0);
	}
	if (exe >= 0)
		co_close(exe);
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot restore the memory layout (errno %ld)",
			      p->pid, -r);
	long cd = co_files_chdir(rc, p->cwd);
	if (cd < 0)
		return co_err(rc->err, rc->errlen, "pid %d: working directory %s: %s (errno %d%s)", p->pid, p->cwd,
			      cd == -ENOENT ? "gone" : "cannot enter it", (int)-cd, co_creds_why(&rc->ids, cd));
	co_umask((int)p->umask);
	for (int s = 1; s <= CO_NSIG; s++) {
		if (s == SIGKILL || s == SIGSTOP)
			continue;
		co_sigaction(s, &p->sigact[s - 1], 0);
	}
	if (rlimits_restore(rc))
		return -1;
	/* under the program's RLIMIT_MEMLOCK, just set */
	if (co_mem_lock(rc))
		return -1;
	return co_pattrs_restore(rc);
}

/*
 * Its root directory when it had chrooted, as late as anything goes by
 * path: its files, mappings and working directory were opened from the
 * group's root, by the paths the image has from there; a working
 * directory outside the new root stays so, as chroot(2) leaves it.  Done
 * with the restorer's privileges (the process had CAP_SYS_CHROOT to
 * chroot at all), before its threads take their own ids.
 */
int co_root_restore(struct co_rstctx *rc)
{
	const char *root = rc->proc->root;
	long r = root[0] ? co_sys1(SYS_chroot, (long)root) : 0;
	if (r < 0)
		return co_err(rc->err, rc->errlen, "pid %d: cannot go back into its root directory %s (chroot): "
			      "errno %ld", rc->proc->pid, root, -r);
	return 0;
}

/*
 * Credentials.  The kernel keeps them per thread (libc's setresuid sets
 * them in every thread of the program), so each restored thread sets its
 * own with raw system calls, the last thing before it goes back: until
 * then the restorer needs root's (clone3 with set_tid, the memory map
 * and exe, its own image files).  In the order the kernel allows: groups
 * and gids while the uid may still change them, the uids last;
 * setresgid and setresuid set the filesystem ids to the effective ones,
 * so those come after each.  Only what differs from the restorer's ids is
 * set: a restorer that runs as the program's uid already (a group started
 * without privileges) may not call setgroups, and needs not.
 *
 * The ids are the manifest's, which the coordinator read while the
 * process was parked (struct co_mproc), not what the process wrote in its
 * image: one that changed its uid writes its image itself, and must not
 * be able to claim root there.  Likewise the files of the image (its
 * descriptors, the files it maps, its working directory) are opened with
 * its groups and filesystem ids (co_creds_files): a process that dropped
 * root gets back only what it may open, never a file root opens for it by
 * a path its image names.  Root's own process keeps root's.
 *
 * Capabilities (format 6): the manifest's sets, which the coordinator
 * read (the process's threads all have the same, or the checkpoint was
 * refused): the bounding set is cut down first, the permitted set kept
 * across the change of uid (PR_SET_KEEPCAPS), then the securebits the
 * thread recorded, the effective, permitted and inheritable sets and the
 * ambient ones are set.  A program that dropped capabilities as root
 * gets back only what it kept; one that kept some across a change of
 * uid gets those back.  Without recorded sets (older manifests) a thread
 * whose uids all change from 0 loses them all, one that keeps uid 0 keeps
 * the restorer's.
 */
static struct {
	int groups, gids, fsgid, uids, fsuid;
} cplan;

/* The restorer's own groups and filesystem ids, while it opens the program's files as the program. */
static struct {
	int saved;
	uint32_t fsuid, fsgid, ngroups;
	uint32_t groups[CO_MAX_GROUPS];
} own;

static int same_groups(const struct co_ids *ids, const uint32_t *cur, long n)
{
	return n == (long)ids->ngroups && co_memcmp(cur, ids->groups, sizeof(cur[0]) * ids->ngroups) == 0;
}

/* setfsuid/setfsgid answer with the old id, never an error: ask again to know */
static int set_fsid(long nr, uint32_t id)
{
	co_sys1(nr, id);
	return (uint32_t)co_sys1(nr, -1) == id ? 0 : -EPERM;
}

int co_creds_files(const struct co_ids *ids, int program)
{
	long r = 0;
	if (!ids->valid)
		return 0;
	if (!own.saved) {
		long n = co_sys2(SYS_getgroups, CO_MAX_GROUPS, (long)own.groups);
		if (n < 0)
			return (int)n;
		own.ngroups = (uint32_t)n;
		own.fsuid = (uint32_t)co_sys1(SYS_setfsuid, -1);
		own.fsgid = (uint32_t)co_sys1(SYS_setfsgid, -1);
		own.saved = 1;
	}
	if (program) {
		if (!same_groups(ids, own.groups, own.ngroups))
			r = co_sys2(SYS_setgroups, ids->ngroups, (long)ids->groups);
		if (!r && own.fsgid != ids->gid[3])
			r = set_fsid(SYS_setfsgid, ids->gid[3]);
		/* the last: a filesystem uid other than 0 takes the filesystem capabilities with it */
		if (!r && own.fsuid != ids->uid[3])
			r = set_fsid(SYS_setfsuid, ids->uid[3]);
		return (int)r;
	}
	/* the filesystem capabilities come back with filesystem uid 0 */
	r = set_fsid(SYS_setfsuid, own.fsuid);
	if (!r)
		r = set_fsid(SYS_setfsgid, own.fsgid);
	if (!r && !same_groups(ids, own.groups, own.ngroups))
		r = co_sys2(SYS_setgroups, own.ngroups, (long)own.groups);
	return (int)r;
}

const char *co_creds_why(const struct co_ids *ids, long err)
{
	static char why[160];
	if ((err != -EACCES && err != -EPERM) || !ids->valid || ids->uid[3] == own.fsuid)
		return "";
	co_fmt(why, sizeof(why), ": opened as its uid %u, which may not (had it opened it before it changed its uid?)",
	       ids->uid[3]);
	return why;
}

void co_creds_plan(const struct co_ids *ids)
{
	static uint32_t cur[CO_MAX_GROUPS];
	uint32_t u[3], g[3];
	co_memset(&cplan, 0, sizeof(cplan));
	if (!ids->valid)
		return; /* an image from before they were recorded */
	co_sys3(SYS_getresuid, (long)&u[0], (long)&u[1], (long)&u[2]);
	co_sys3(SYS_getresgid, (long)&g[0], (long)&g[1], (long)&g[2]);
	cplan.groups = !same_groups(ids, cur, co_sys2(SYS_getgroups, CO_MAX_GROUPS, (long)cur));
	cplan.gids = co_memcmp(g, ids->gid, sizeof(g)) != 0;
	cplan.uids = co_memcmp(u, ids->uid, sizeof(u)) != 0;
	/* setfsgid(-1) changes nothing and tells the current one */
	cplan.fsgid = (uint32_t)co_sys1(SYS_setfsgid, -1) != ids->gid[3] || cplan.gids;
	cplan.fsuid = (uint32_t)co_sys1(SYS_setfsuid, -1) != ids->uid[3] || cplan.uids;
}

/* The calling thread's sets as 64-bit masks: [0] effective, [1] permitted, [2] inheritable. */
static long caps_get(uint64_t sets[3])
{
	struct co_capdata d[2];
	long r = co_capget(d);
	for (int k = 0; k < 3; k++)
		sets[k] = 0;
	for (int w = 0; r == 0 && w < 2; w++) {
		sets[0] |= (uint64_t)d[w].effective << 32 * w;
		sets[1] |= (uint64_t)d[w].permitted << 32 * w;
		sets[2] |= (uint64_t)d[w].inheritable << 32 * w;
	}
	return r;
}

static long caps_set(const uint64_t sets[3])
{
	struct co_capdata d[2];
	for (int w = 0; w < 2; w++)
		d[w] = (struct co_capdata){ (uint32_t)(sets[0] >> 32 * w), (uint32_t)(sets[1] >> 32 * w),
					    (uint32_t)(sets[2] >> 32 * w) };
	return co_capset(d);
}

/* Before the ids change, with the restorer's privileges: the bounding set cut down to the program's. */
static long caps_before(const struct co_ids *ids)
{
	for (long c = 0; c < 64; c++) {
		long in = co_prctl(PR_CAPBSET_READ, c, 0, 0, 0);
		if (in < 0)
			break; /* past the last capability this kernel knows */
		if (in == 1 && !(ids->cap_bnd >> c & 1)) {
			long r = co_prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
			if (r < 0)
				return r;
		}
	}
	/* the permitted set survives the change of uid, to be cut down after it */
	return cplan.uids ? co_prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) : 0;
}

/*
 * After the ids changed: the securebits (which need CAP_SETPCAP in the
 * effective set, so first all that is permitted is made effective), then
 * the three sets, then the ambient ones (which must be permitted and
 * inheritable by then).
 */
static long caps_after(const struct co_ids *ids, int64_t securebits)
{
	uint64_t cur[3], want[3] = { ids->cap_eff, ids->cap_prm, ids->cap_inh };
	long r = caps_get(cur);
	if (!r && securebits >= 0 && co_prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) != securebits) {
		uint64_t all[3] = { cur[1], cur[1], cur[2] };
		r = caps_set(all);
		if (!r)
			r = co_prctl(PR_SET_SECUREBITS, (long)securebits, 0, 0, 0);
	} else if (!r && cplan.uids) {
		r = co_prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	}
	if (!r)
		r = caps_set(want);
	for (long c = 0; !r && c < 64; c++)
		if (ids->cap_amb >> c & 1)
			r = co_prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0);
	return r;
}

int co_creds_set(const struct co_ids *ids, int64_t securebits)
{
	long r = ids->caps ? caps_before(ids) : 0;
	if (!r && cplan.groups)
		r = co_sys2(SYS_setgroups, ids->ngroups, (long)ids->groups);
	if (!r && cplan.gids)
		r = co_sys3(SYS_setresgid, ids->gid[0], ids->gid[1], ids->gid[2]);
	if (!r && cplan.fsgid)
		r = set_fsid(SYS_setfsgid, ids->gid[3]);
	if (!r && cplan.uids)
		r = co_sys3(SYS_setresuid, ids->uid[0], ids->uid[1], ids->uid[2]);
	if (!r && cplan.fsuid)
		r = set_fsid(SYS_setfsuid, ids->uid[3]);
	if (!r && ids->caps)
		r = caps_after(ids, securebits);
	return (int)r;
}

void co_creds_dumpable(const struct co_ids *ids)
{
	/* 2 (suid_dumpable) cannot be asked for: a change of uid has set it to that already */
	if (ids->valid && (ids->dumpable == 0 || ids->dumpable == 1) &&
	    co_prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != ids->dumpable)
		co_prctl(PR_SET_DUMPABLE, ids->dumpable, 0, 0, 0);
}
#endif
