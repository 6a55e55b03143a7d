/*
 * coord/run.c - the run and restart commands: the program or the images checked,
 * the group set up and started.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "res.h"
#include "coord.h"

struct co_progress restore_pr = { .fd = -1 };

/* Refuse what LD_PRELOAD cannot enter: static and setuid/setgid programs. */
static void check_program(const char *prog, char *resolved, size_t n, int depth)
{
	if (strchr(prog, '/')) {
		snprintf(resolved, n, "%s", prog);
	} else {
		const char *path = getenv("PATH") ? getenv("PATH") : "/usr/local/bin:/usr/bin:/bin";
		int found = 0;
		for (const char *p = path; *p && !found;) {
			const char *e = strchr(p, ':');
			size_t len = e ? (size_t)(e - p) : strlen(p);
			snprintf(resolved, n, "%.*s/%s", (int)len, p, prog);
			found = access(resolved, X_OK) == 0;
			p += len + (e ? 1 : 0);
		}
		if (!found)
			co_die("run: %s: command not found", prog);
	}
	struct stat st;
	if (stat(resolved, &st) < 0)
		co_die("run: %s: %s", resolved, strerror(errno));
	if (!S_ISREG(st.st_mode) || access(resolved, X_OK) < 0)
		co_die("run: %s: not an executable file", resolved);
	if (st.st_mode & (S_ISUID | S_ISGID))
		co_die("run: %s is setuid/setgid: the cohort agent cannot be loaded into it", resolved);
	int fd = open(resolved, O_RDONLY | O_CLOEXEC);
	unsigned char hdr[256];
	ssize_t got = fd >= 0 ? read(fd, hdr, sizeof(hdr)) : -1;
	if (got >= 2 && hdr[0] == '#' && hdr[1] == '!' && depth == 0) {
		hdr[got - 1 < 255 ? got : 255] = 0;
		char interp[256];
		if (sscanf((char *)hdr + 2, " %255s", interp) == 1) {
			char sub[PATH_MAX];
			close(fd);
			check_program(interp, sub, sizeof(sub), 1);
			return;
		}
	}
	if (got >= (ssize_t)sizeof(Elf64_Ehdr) && !memcmp(hdr, ELFMAG, SELFMAG)) {
		Elf64_Ehdr *eh = (Elf64_Ehdr *)hdr;
		int interp = 0;
		for (int i = 0; i < eh->e_phnum; i++) {
			Elf64_Phdr ph;
			if (pread(fd, &ph, sizeof(ph), (off_t)(eh->e_phoff + (uint64_t)i * eh->e_phentsize)) != sizeof(ph))
				break;
			interp |= ph.p_type == PT_INTERP;
		}
		if (!interp)
			co_die("run: %s is a static binary: the cohort agent (LD_PRELOAD) cannot be loaded into it",
			       resolved);
	}
	if (fd >= 0)
		close(fd);
}

static char **group_env(const char *agent)
{
	extern char **environ;
	int n = 0;
	while (environ[n])
		n++;
	char **env = calloc((size_t)n + 5, sizeof(char *));
	int k = 0;
	const char *pre = getenv("LD_PRELOAD");
	for (int i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) && strncmp(environ[i], "COHORT_SOCK=", 12) &&
		    strncmp(environ[i], "COHORT_SIG=", 11))
			env[k++] = environ[i];
	if (asprintf(&env[k++], "LD_PRELOAD=%s%s%s", agent, pre && *pre ? " " : "", pre ? pre : "") < 0 ||
	    asprintf(&env[k++], "COHORT_SOCK=%s", G.sock) < 0 || asprintf(&env[k++], "COHORT_SIG=%d", G.sig) < 0)
		co_die("out of memory");
	env[k] = NULL;
	return env;
}

/*
 * The default name of `cohort run python3 b.py` is that of `cohort run
 * python3 a.py`: continuing the other program's generations would mix two
 * programs under one name.  A name given with --name is the user's choice;
 * --replace starts over.
 */
static void check_images_of(struct co_run_opts *o)
{
	char gdir[PATH_MAX], shown[1024];
	snprintf(gdir, sizeof(gdir), "%s/%s", o->images, o->name);
	int fd = co_connect_group(o->name);
	if (fd == CO_UNTRUSTED)
		co_die("%s", co_connect_why());
	if (fd >= 0)
		co_die("a group named '%s' is already running", o->name);
	char err[PATH_MAX + 256];
	G.lock_fd = co_lock_images(gdir, err, sizeof(err));
	if (G.lock_fd < 0)
		co_die("%s", err);
	if (o->replace) {
		co_clear_group_dir(gdir);
		return;
	}
	co_recover_group_dir(gdir);
	if (!o->named && co_group_command_differs(gdir, o->argv, shown, sizeof(shown)))
		co_usage("run: %s holds checkpoints of another command line (%s): name this group with --name, "
			 "or start over with --replace",
			 gdir, shown);
}

int co_cmd_run(struct co_run_opts *o)
{
	static struct co_init_cfg cfg;
	record_caller_signals(&cfg);
	char resolved[PATH_MAX];
	check_program(o->argv[0], resolved, sizeof(resolved), 0);
	check_images_of(o);
	G.argv = o->argv;
	static char agent_buf[PATH_MAX];
	const char *agent = co_self_path("libcohort.so", agent_buf, sizeof(agent_buf));
	if (access(agent, R_OK) < 0)
		co_die("agent library %s is missing: run 'make'", agent);
	G.sig = o->sig ? o->sig : DEFAULT_SIG;
	common_setup(o);
	snprintf(G.program, sizeof(G.program), "%s", o->argv[0]);
	G.root_pid = 2; /* init is 1, the program the first process it starts */
	make_timens(0, 0);
	cfg.agent_sig = G.sig;
	cfg.argv = o->argv;
	cfg.envp = group_env(agent);
	cfg.root_pid = G.root_pid;
	start_init(&cfg);
	return loop();
}

/* ---- restart ---- */

static uint64_t restore_total;	/* bytes of the images to read */
static int restore_compressed;	/* they are read by the feeders (zimage.c) */
static uint64_t restore_next_ns;

/* The restore of the processes of the manifest begins: its progress, on a terminal. */
static void restore_progress_begin(const struct co_mproc *procs, int n)
{
	restore_total = 0;
	for (int i = 0; i < n; i++)
		if (!(procs[i].flags & CO_MP_ZOMBIE)) {
			restore_total += procs[i].bytes;
			restore_compressed |= (procs[i].flags & CO_MP_COMPRESSED) != 0;
		}
	co_progress_set(&restore_pr, "restoring", 0, restore_total);
}

/*
 * Bytes of the images read so far.  Each restorer reads its image with
 * read(2), once, front to back, so the `rchar` of its /proc/PID/io is how
 * far it got (the restorers it forks count their own; the few small reads
 * besides, its plan and /proc, do not matter).  But it reads a run of
 * pages straight to its place with one read(2) of up to 1 GiB, and rchar
 * (like the descriptor's position in fdinfo) moves only when that read
 * returns: meanwhile its resident memory (RssAnon), which the read fills
 * page by page, tells how far it got.  A process counts the larger of the
 * two.  Compressed images are read by the coordinator's feeder children
 * instead, the restorers reading decompressed bytes (which the manifest's
 * sizes do not count) from FIFOs: then it is what the feeders have read.
 */
static uint64_t restored_bytes(void)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	if (restore_compressed)
		return co_fifos_bytes();
	uint64_t sum = 0;
	int n = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < n; i++) {
		char path[64], buf[4096];
		uint64_t got = co_proc_io(ps[i].host, "rchar");
		long rss = -1;
		snprintf(path, sizeof(path), "/proc/%d/status", ps[i].host);
		if (co_read_small(path, buf, sizeof(buf)) > 0)
			rss = co_status_field(buf, "RssAnon");
		sum += rss > 0 && (uint64_t)rss * 1024 > got ? (uint64_t)rss * 1024 : got;
	}
	return sum;
}

/*
 * restart: a process of the manifest (not one that was a zombie) ended
 * before it came back: its restorer failed, and said why on our stderr.
 * One whose parent is init ends the restart through init; any other is
 * the child of a restored process, which waits for the release and never
 * reaps it: the restart waited for it for ever.  Its pid, or 0.
 */
static const struct co_mproc *restore_procs;
static int restore_nprocs;

int restore_failed(void)
{
	static struct nsproc ps[CO_TABLE_SLOTS * 2];
	int n = scan_group(ps, (int)CO_ARRAY_LEN(ps));
	for (int i = 0; i < n; i++) {
		if (ps[i].ids.state != 'Z' || ps[i].member >= 0)
			continue;
		for (int k = 0; k < restore_nprocs; k++)
			if (restore_procs[k].pid == ps[i].ids.pid && !(restore_procs[k].flags & CO_MP_ZOMBIE))
				return ps[i].ids.pid;
	}
	return 0;
}

/* From the loop: while processes are being restored, the line is brought up to date; 1 while it goes on. */
int restore_progress(void)
{
	if (restore_pr.fd < 0 || G.expect <= 0)
		return 0;
	uint64_t now = co_now_ns(CLOCK_MONOTONIC);
	if (now >= restore_next_ns) {
		restore_next_ns = now + PROGRESS_NS;
		co_progress_set(&restore_pr, "restoring", restored_bytes(), restore_total);
	}
	return 1;
}

int co_cmd_restart(struct co_run_opts *o)
{
	char gdir[PATH_MAX], dir[PATH_MAX], err[1024];
	snprintf(gdir, sizeof(gdir), "%s/%s", o->images, o->name);
	uint64_t gen = o->generation ? o->generation : co_newest_generation(gdir);
	if (!gen)
		co_die("no checkpoint of group '%s' in %s", o->name, o->images);
	co_gen_dir(gdir, gen, dir, sizeof(dir));
	struct stat st;
	if (stat(dir, &st) < 0)
		co_die("group '%s' has no generation %llu in %s", o->name, (unsigned long long)gen, o->images);
	if (!o->trust_images && co_images_owned(gdir, dir, err, sizeof(err)))
		co_die("%s", err);
	/* before anything is merged: the images are ours while the group lives */
	G.lock_fd = co_lock_images(gdir, err, sizeof(err));
	if (G.lock_fd < 0)
		co_die("%s", err);
	co_recover_group_dir(gdir);
	/* an incremental generation comes back from its merged full image, built now if missing */
	co_progress_start(&restore_pr, STDERR_FILENO, "restart '%s'", o->name);
	co_merge_progress = &restore_pr;
	if (co_restore_dir(gdir, gen, dir, sizeof(dir), err, sizeof(err)))
		co_die("generation %llu of '%s': %s", (unsigned long long)gen, o->name, err);
	co_merge_progress = NULL;
	static struct co_manifest m;
	static struct co_mproc procs[CO_TABLE_SLOTS];
	int n;
	/* the full image merged for it (full-N), whoever made it */
	if (!o->trust_images && co_images_owned(gdir, dir, err, sizeof(err)))
		co_die("%s", err);
	if (co_read_manifest(dir, &m, procs, CO_TABLE_SLOTS, &n, err, sizeof(err)) < 0 ||
	    co_gen_complete(dir, err, sizeof(err)) < 0)
		co_die("%s", err);
	if (n < 1)
		co_die("%s/manifest lists no process", dir);
	static char restorer_buf[PATH_MAX];
	const char *restorer = co_self_path("cohort-restore", restorer_buf, sizeof(restorer_buf));
	if (access(restorer, X_OK) < 0)
		co_die("restorer %s is missing: run 'make'", restorer);
	/* init makes the processes whose parent is init (or gone); restorers make the rest */
	static struct co_init_proc ip[CO_TABLE_SLOTS];
	int nroots = 0, nlive = 0;
	for (int i = 0; i < n; i++) {
		if (procs[i].flags & CO_MP_ZOMBIE)
			continue;
		char img[PATH_MAX], stored[PATH_MAX];
		snprintf(img, sizeof(img), "%s/%s", dir, procs[i].image);
		if (co_img_locate(img, stored, sizeof(stored)) < 0 || access(stored, R_OK) < 0)
			co_die("%s: %s", img, strerror(errno));
		nlive++;
		int parent = 0;
		for (int k = 0; k < n; k++)
			parent |= procs[k].pid == procs[i].ppid && !(procs[k].flags & CO_MP_ZOMBIE);
		if (!parent)
			ip[nroots++].pid = procs[i].pid;
	}
	G.sig = (int)m.sig;
	G.group_id = m.group_id; /* 0 in an older manifest: a new one is made */
	common_setup(o);
	snprintf(G.program, sizeof(G.program), "%s", m.program);
	G.root_pid = m.root_pid ? m.root_pid : procs[0].pid;
	G.expect = nlive;
	restore_procs = procs;
	restore_nprocs = n;
	restore_progress_begin(procs, n);
	G.restored_from = gen;
	G.restored = m;
	G.last_committed = gen; /* the restored state is this generation: incrementals build on it */
	G.table->generation = gen;
	make_timens((int64_t)(m.mono_ns - co_now_ns(CLOCK_MONOTONIC)), (int64_t)(m.boot_ns - co_now_ns(CLOCK_BOOTTIME)));
	static struct co_init_cfg cfg;
	static char fifos[PATH_MAX];
	for (int i = 0; i < n && !cfg.image_dir; i++)
		if (procs[i].flags & CO_MP_COMPRESSED) {
			snprintf(fifos, sizeof(fifos), "%s/images", G.rundir);
			if (co_fifos_start(dir, procs, n, fifos, err, sizeof(err)))
				co_die("%s", err);
			cfg.image_dir = fifos;
		}
	cfg.nprocs = nroots;
	cfg.procs = ip;
	cfg.gen_dir = dir;
	cfg.root_pid = G.root_pid;
	cfg.restorer = restorer;
	cfg.sock = G.sock;
	cfg.generation = gen;
	start_init(&cfg);
	return loop();
}
