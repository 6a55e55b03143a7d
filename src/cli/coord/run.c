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
#include "report.h"
#include "res.h"
#include "coord.h"

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
	G.lock_fd = co_lock_images(gdir, 1, err, sizeof(err));
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
	co_trace("restart: init starts");
	start_init(&cfg);
	co_trace("restart: init started");
	return loop();
}

/* ---- restart ---- */

/*
 * restart --lazy of incremental gen-N without full-N: its chain, when the
 * restorers and the page fillers can run straight from it (chain.c), and
 * gen-N's manifest read into m, p, *n; NULL: merge first, as any restart
 * does.  The chain o->received gives (a migration's target: what it
 * received, checked and committed itself) is taken as it is, not read
 * again.  COHORT_LAZY_CHAIN=0 (tests, benchmarks) always merges.
 */
static const struct co_chain_dirs *lazy_chain(const char *gdir, uint64_t gen, const struct co_run_opts *o,
					      struct co_manifest *m, struct co_mproc *p, int *n)
{
	static struct co_chain_dirs c;
	const struct co_chain_dirs *cp = o->received ? o->received : &c;
	char full[PATH_MAX], err[1024];
	const char *env = getenv("COHORT_LAZY_CHAIN");
	if ((env && !strcmp(env, "0")) || co_full_dir(gdir, gen, full, sizeof(full)) || access(full, F_OK) == 0 ||
	    (!o->received && co_chain_dirs(gdir, gen, &c, err, sizeof(err))) || cp->n < 2 ||
	    co_read_manifest(cp->dir[0], m, p, CO_TABLE_SLOTS, n, err, sizeof(err)) || m->kind != CO_GEN_INCREMENTAL)
		return NULL;
	for (int j = 1; j < cp->n && !o->received; j++)
		if (!o->trust_images && co_images_owned(gdir, cp->dir[j], err, sizeof(err)))
			return NULL;
	if (co_chain_lazy_ok(cp, p, *n, err, sizeof(err))) {
		co_trace("restart: the chain is merged: %s", err);
		if (getenv("COHORT_LAZY_CHAIN"))
			fprintf(stderr, "cohort: restarting from the merged full image: %s\n", err);
		return NULL;
	}
	return cp;
}

/* Is generation dir an incremental one (restored from a merged full-N, or from its chain)? */
static int incremental(const char *dir)
{
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	char err[512];
	int n;
	return !co_read_manifest(dir, &m, p, CO_TABLE_SLOTS, &n, err, sizeof(err)) && m.kind == CO_GEN_INCREMENTAL;
}

int co_cmd_restart(struct co_run_opts *o)
{
	char gdir[PATH_MAX], dir[PATH_MAX], err[1024];
	snprintf(gdir, sizeof(gdir), "%s/%s", o->images, o->name);
	/* the test-only fault switch (report.h): read once here, handed to init and the restorers */
	const char *fault = getenv("COHORT_FAULT");
	struct co_fault f;
	if (co_fault_parse(fault, &f))
		co_usage("COHORT_FAULT=%s: expected fail:STAGE[:PID], hang:STAGE[:PID] or hold:STAGE[:PID]", fault);
	G.fault_hold = f.mode == CO_FAULT_HOLD;
	uint64_t gen = o->generation ? o->generation : co_newest_generation(gdir);
	if (!gen)
		co_die("no checkpoint of group '%s' in %s", o->name, o->images);
	co_gen_dir(gdir, gen, dir, sizeof(dir));
	struct stat st;
	if (stat(dir, &st) < 0)
		co_die("group '%s' has no generation %llu in %s", o->name, (unsigned long long)gen, o->images);
	if (!o->trust_images && !o->received && co_images_owned(gdir, dir, err, sizeof(err)))
		co_die("%s", err);
	/* before anything is merged: the images are ours while the group lives (receive took them already) */
	G.lock_fd = o->held_lock ? o->lock_fd : co_lock_images(gdir, 1, err, sizeof(err));
	if (G.lock_fd < 0)
		co_die("%s", err);
	if (!o->received) /* receive did, taking the LOCK, and wrote nothing there since but what it committed */
		co_recover_group_dir(gdir);
	/*
	 * An incremental generation comes back from its merged full image,
	 * built now if missing; lazily, straight from its chain where it can.
	 */
	co_progress_start(&restore_pr, STDERR_FILENO, "restart '%s'", o->name);
	co_trace("restart: begins");
	static struct co_manifest m;
	static struct co_mproc procs[CO_TABLE_SLOTS];
	int n;
	const struct co_chain_dirs *chain = o->lazy ? lazy_chain(gdir, gen, o, &m, procs, &n) : NULL;
	co_trace("restart: chain %s", chain ? "as it is" : "merged");
	/* a migration's post-copy: gen-N's page data is not all here yet, so nothing may be merged of it */
	if (o->lazy == 2 && !chain && incremental(dir))
		co_die("generation %llu of '%s': post-copy needs its restart straight from its chain, which cannot be "
		       "here (restart --lazy's conditions: docs/architecture.md, \"From a chain\")",
		       (unsigned long long)gen, o->name);
	co_merge_progress = &restore_pr;
	if (!chain && co_restore_dir(gdir, gen, dir, sizeof(dir), err, sizeof(err)))
		co_die("generation %llu of '%s': %s", (unsigned long long)gen, o->name, err);
	co_merge_progress = NULL;
	/* as receive checked it, its manifest read with its chain; or the full image merged for it (full-N) */
	int received = o->received && !strcmp(dir, o->received->dir[0]);
	if (!o->trust_images && !received && co_images_owned(gdir, dir, err, sizeof(err)))
		co_die("%s", err);
	if ((!chain && co_read_manifest(dir, &m, procs, CO_TABLE_SLOTS, &n, err, sizeof(err)) < 0) ||
	    (!received && co_gen_complete(dir, err, sizeof(err)) < 0))
		co_die("%s", err);
	co_trace("restart: generation %llu complete", (unsigned long long)gen);
	if (n < 1)
		co_die("%s/manifest lists no process", dir);
	static char restorer_buf[PATH_MAX];
	const char *restorer = co_self_path("cohort-restore", restorer_buf, sizeof(restorer_buf));
	if (access(restorer, X_OK) < 0)
		co_die("restorer %s is missing: run 'make'", restorer);
	/* init makes the processes whose parent is init (or gone); restorers make the rest (co_mproc_maker) */
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
		if (!co_mproc_maker(procs, n, i))
			ip[nroots++].pid = procs[i].pid;
	}
	co_trace("restart: images there");
	G.sig = (int)m.sig;
	G.group_id = m.group_id; /* 0 in an older manifest: a new one is made */
	common_setup(o);
	snprintf(G.program, sizeof(G.program), "%s", m.program);
	G.root_pid = m.root_pid ? m.root_pid : procs[0].pid;
	G.expect = nlive;
	restore_begin(procs, n);
	G.restored_from = gen;
	G.restored = m;
	G.on_ready = o->on_ready;
	G.on_running = o->on_running;
	G.last_committed = gen; /* the restored state is this generation: incrementals build on it */
	G.table->generation = gen;
	co_trace("restart: set up");
	make_timens((int64_t)(m.mono_ns - co_now_ns(CLOCK_MONOTONIC)), (int64_t)(m.boot_ns - co_now_ns(CLOCK_BOOTTIME)));
	co_trace("restart: time namespace");
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
	cfg.fault = f.mode != CO_FAULT_NONE ? fault : NULL;
	if (o->lazy) { /* the restorers hand their lazy regions to page fillers (lazy.c) */
		static char lazy_dir[PATH_MAX];
		snprintf(lazy_dir, sizeof(lazy_dir), "%s", dir);
		lazy_setup(lazy_dir, chain, procs, n);
		cfg.lazy = o->lazy;
	}
	co_trace("restart: init starts");
	start_init(&cfg);
	co_trace("restart: init started");
	if (o->lazy)
		lazy_prefork();
	return loop();
}
