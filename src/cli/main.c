/*
 * main.c - the cohort command line.
 *
 *   cohort run [--name NAME] [--images DIR] [--interval S [--full-every K]] [--keep N] [--compress] [--no-precopy]
 *              [--signal N]
 *              -- PROGRAM [ARGS...]
 *   cohort checkpoint NAME [--images DIR] [--kill] [--json] [--stop] [--incremental|--full] [--compress]
 *                   [--no-precopy] [--reconnect-outside]
 *   cohort restart NAME [--images DIR] [--generation N] [--interval S [--full-every K]] [--keep N] [--compress] [--trust-images]
 *                 [--no-precopy]
 *   cohort status [NAME] [--json]
 *   cohort list
 *   cohort kill NAME [--signal SIG]
 *   cohort inspect DIR [--json]
 *   cohort migrate NAME --to ADDR:PORT --token-file FILE [--json]
 *   cohort receive --listen ADDR:PORT --token-file FILE [--images DIR] [--json]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "progress.h"

/* One line on stderr, "cohort: ...", clear of any progress line. */
static void say(const char *fmt, va_list ap)
{
	co_progress_hide(); /* a progress line must not run into the message */
	fputs("cohort: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void co_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	exit(1);
}

/* The command line was wrong: one line, status 2 (as git, docker and criu do). */
void co_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	exit(2);
}

void co_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
}

uint64_t co_now_ns(int clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

/*
 * COHORT_TRACE=1 (off by default): one line on stderr per step of a
 * migration's stop, on either side, stamped in ms, so that where the
 * downtime goes can be read off the logs (docs/architecture.md,
 * "Migration").  CLOCK_REALTIME: a restart's page fillers run in the
 * group's time namespace, whose monotonic clock is shifted; the two hosts
 * of bench/migrate.sh share the one machine's.
 */
int co_tracing(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("COHORT_TRACE") && strcmp(getenv("COHORT_TRACE"), "0");
	return on;
}

static void trace_line(uint64_t ns, const char *fmt, va_list ap)
{
	if (!co_tracing())
		return;
	char line[512];
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "cohort-trace: %.3f %d %s\n", (double)(ns ? ns : co_now_ns(CLOCK_REALTIME)) / 1e6,
		(int)getpid(), line);
}

void co_trace(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	trace_line(0, fmt, ap);
	va_end(ap);
}

void co_trace_at(uint64_t ns, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	trace_line(ns, fmt, ap);
	va_end(ap);
}

const char *co_run_root(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("COHORT_RUN_DIR"), *xdg = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	/*
	 * Where no one else may create it first: root's in /run (root's own),
	 * a user's in their XDG_RUNTIME_DIR; /tmp only as the last resort, and
	 * then every user of it checks that it is theirs (co_run_root_check).
	 */
	if (env && *env)
		snprintf(path, sizeof(path), "%s", env);
	else if (geteuid() == 0 && lstat("/run", &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == 0 &&
		 !(st.st_mode & 022))
		snprintf(path, sizeof(path), "/run/cohort");
	else if (geteuid() != 0 && xdg && xdg[0] == '/')
		snprintf(path, sizeof(path), "%s/cohort", xdg);
	else
		snprintf(path, sizeof(path), "/tmp/cohort-%u", (unsigned)geteuid());
	return path;
}

const char *co_default_images(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("COHORT_IMAGES");
	if (env && *env)
		return env;
	const char *data = getenv("XDG_DATA_HOME");
	if (data && *data)
		snprintf(path, sizeof(path), "%s/cohort", data);
	else
		snprintf(path, sizeof(path), "%s/.local/share/cohort", getenv("HOME") ? getenv("HOME") : "/tmp");
	return path;
}

int co_valid_name(const char *n)
{
	size_t len = strlen(n);
	if (!len || len > CO_NAME_MAX || n[0] == '.')
		return 0;
	for (; *n; n++)
		if (!(*n == '-' || *n == '_' || *n == '.' || (*n >= '0' && *n <= '9') ||
		      (*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z')))
			return 0;
	return 1;
}

/*
 * The agent and the restorer sit beside the cohort binary in a build tree
 * (build/), and in PREFIX/lib/cohort/ once installed (PREFIX/bin/cohort):
 * the first that exists, else the build tree's path for the message.
 */
const char *co_self_path(const char *file, char *out, size_t n)
{
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (k < 0)
		co_die("cannot find my own executable: %s", strerror(errno));
	exe[k] = 0;
	const char *dir = dirname(exe);
	snprintf(out, n, "%s/../lib/cohort/%s", dir, file);
	if (access(out, F_OK) == 0)
		return out;
	snprintf(out, n, "%s/%s", dir, file);
	return out;
}

/* ---- help ---- */

#ifndef COHORT_VERSION
#define COHORT_VERSION "unknown"
#endif

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *synopsis; /* after "cohort " */
	const char *help;     /* what `cohort help NAME` adds below the synopsis */
};
static const struct command *find_command(const char *name);
static const struct command commands[];

static void print_help(FILE *f, const struct command *c)
{
	fprintf(f, "usage: cohort %s\n\n%s", c->synopsis, c->help);
}

/* `cohort --help`: every command's synopsis, and where to read more. */
static void print_overview(FILE *f)
{
	fputs("usage: cohort COMMAND [ARGS...]\n\n"
	      "cohort checkpoints and restarts running groups of Linux processes. Commands:\n",
	      f);
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  cohort %s\n", c->synopsis);
	fputs("\n'cohort help COMMAND' (or 'cohort COMMAND --help') tells more of one command; man cohort\n"
	      "tells everything, with examples.\n",
	      f);
}

static int cmd_help(int argc, char **argv)
{
	if (argc == 0) {
		print_overview(stdout);
		return 0;
	}
	const struct command *c = argc == 1 ? find_command(argv[0]) : NULL;
	if (argc > 1)
		co_usage("help: one command at a time, not '%s %s'", argv[0], argv[1]);
	if (!c)
		co_usage("help: no command '%s' (see 'cohort --help')", argv[0]);
	print_help(stdout, c);
	return 0;
}

/* --help or -h among a command's own arguments (for run: before its program) */
static int asks_help(const char *cmd, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
		if (!strcmp(cmd, "run") && (!strcmp(argv[i], "--") || argv[i][0] != '-'))
			return 0;
	}
	return 0;
}

/* ---- option parsing ---- */

struct opt {
	const char *name;
	int has_arg;
	const char *val;
	int set;
};

static const char *cur_cmd = "cohort";

/*
 * Options of the current command in any order among its positional
 * arguments ("--opt VALUE" or "--opt=VALUE").  With stop_at_program (run),
 * the first non-option or "--" ends them and its index is returned.
 */
static int parse_opts(int argc, char **argv, struct opt *opts, const char **pos, int npos, int stop_at_program)
{
	int np = 0, i;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (stop_at_program && strcmp(a, "--") == 0)
			return i + 1;
		if (a[0] == '-' && a[1] == '-') {
			struct opt *o = opts;
			const char *eq = strchr(a, '=');
			size_t len = eq ? (size_t)(eq - a) : strlen(a);
			for (; o->name; o++)
				if (strlen(o->name) == len && strncmp(o->name, a, len) == 0)
					break;
			if (!o->name)
				co_usage("%s: unknown option %.*s (see 'cohort help %s')", cur_cmd, (int)len, a, cur_cmd);
			o->set = 1;
			if (o->has_arg) {
				if (eq)
					o->val = eq + 1;
				else if (i + 1 < argc)
					o->val = argv[++i];
				else
					co_usage("%s: option %s needs a value", cur_cmd, a);
			} else if (eq) {
				co_usage("%s: option %s takes no value", cur_cmd, o->name);
			}
			continue;
		}
		if (stop_at_program)
			return i; /* "cohort run PROGRAM ...": the program starts here */
		if (a[0] == '-' && a[1])
			co_usage("%s: unknown option %s (see 'cohort help %s')", cur_cmd, a, cur_cmd);
		if (np >= npos)
			co_usage("%s: unexpected argument '%s' (see 'cohort help %s')", cur_cmd, a, cur_cmd);
		pos[np++] = a;
	}
	return i;
}

static double parse_seconds(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);
	if (!*s || *end || !(v > 0) || v > 1e9)
		co_usage("%s must be a positive number of seconds, not '%s'", what, s);
	return v;
}

static int parse_signal(const char *s)
{
	if (s[0] >= '0' && s[0] <= '9') {
		char *end;
		long v = strtol(s, &end, 10);
		if (*end || v < 1 || v > 64)
			co_usage("bad signal '%s' (a number from 1 to 64, or a name such as TERM)", s);
		return (int)v;
	}
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (int i = 1; i < 32; i++) {
		const char *n = sigabbrev_np(i);
		if (n && strcmp(n, s) == 0)
			return i;
	}
	co_usage("unknown signal '%s'", s);
}

static unsigned parse_count(const char *s, const char *what, unsigned min)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *s == '-' || *end || errno || v < min || v > 1000000)
		co_usage("%s must be a whole number of at least %u, not '%s'", what, min, s);
	return (unsigned)v;
}

static const char *need_name(const char *name)
{
	if (!name)
		co_usage("%s: which group? (see 'cohort help %s')", cur_cmd, cur_cmd);
	if (!co_valid_name(name)) {
		char esc[256];
		co_usage("invalid group name '%s' (letters, digits, '.', '_' and '-', at most %d)",
			 co_json_esc(name, esc, sizeof(esc)), CO_NAME_MAX);
	}
	return name;
}

/* ---- client commands ---- */

static int group_or_die(const char *name)
{
	int fd = co_connect_group(name);
	if (fd == CO_UNTRUSTED)
		co_die("%s", co_connect_why());
	/* a socket there that takes no connection is not "no group": say what connect said */
	if (fd < 0 && errno != ENOENT)
		co_die("group '%s': its coordinator takes no connection (%s)", name, strerror(errno));
	if (fd < 0)
		co_die("no running group named '%s' (see 'cohort list')", name);
	return fd;
}

/* One request to the group's coordinator; its reply to stdout, or its error to stderr (status 1). */
static int request(const char *name, unsigned type, unsigned flags, int64_t a, const char *text)
{
	static struct co_msgbuf mb;
	int fd = group_or_die(name);
	/* a checkpoint that asked for progress gets it before the reply (stderr: it is the terminal) */
	struct co_progress pr;
	co_progress_start(&pr, type == CO_M_CKPT_REQ && (flags & CO_CKPT_PROGRESS) ? STDERR_FILENO : -1,
			  "checkpoint '%s'", name);
	if (co_send(fd, type, flags, a, 0, text, -1) || co_recv_progress(fd, &mb, &pr) || mb.m.type != CO_M_REPLY)
		co_die("group '%s': the coordinator did not answer", name);
	close(fd);
	if (mb.m.a) {
		fprintf(stderr, "cohort: %s\n", mb.text);
		return 1;
	}
	fputs(mb.text, stdout);
	if (mb.text[0] && mb.text[strlen(mb.text) - 1] != '\n')
		fputc('\n', stdout);
	return 0;
}

static int cmd_checkpoint(int argc, char **argv)
{
	struct opt o[] = { { "--images", 1, 0, 0 }, { "--kill", 0, 0, 0 }, { "--json", 0, 0, 0 },
			   { "--stop", 0, 0, 0 }, { "--incremental", 0, 0, 0 }, { "--full", 0, 0, 0 },
			   { "--compress", 0, 0, 0 }, { "--no-precopy", 0, 0, 0 }, { "--reconnect-outside", 0, 0, 0 },
			   { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	const char *name = need_name(pos[0]);
	if (o[4].set && o[5].set)
		co_usage("checkpoint: --incremental and --full exclude each other");
	char images[PATH_MAX] = "";
	if (o[0].val && !realpath(o[0].val, images)) {
		if (mkdir(o[0].val, 0700) < 0 || !realpath(o[0].val, images))
			co_die("images directory %s: %s", o[0].val, strerror(errno));
	}
	unsigned flags = (o[1].set ? CO_CKPT_KILL : 0) | (o[2].set ? CO_CKPT_JSON : 0) | (o[3].set ? CO_CKPT_STOP : 0) |
			 (o[4].set ? CO_CKPT_INCREMENTAL : 0) | (o[6].set ? CO_CKPT_COMPRESS : 0) |
			 (o[7].set ? CO_CKPT_NO_PRECOPY : 0) | (o[8].set ? CO_CKPT_RECONNECT : 0) |
			 (co_progress_wanted(STDERR_FILENO) ? CO_CKPT_PROGRESS : 0);
	return request(name, CO_M_CKPT_REQ, flags, 0, images);
}

/* Each running group's name, in name order; *n of them (a static list). */
static char (*running_groups(int *n))[CO_NAME_MAX + 1]
{
	static char names[256][CO_NAME_MAX + 1];
	struct dirent **e;
	char why[640];
	if (co_run_root_check(why, sizeof(why)))
		co_die("%s", why);
	int k = scandir(co_run_root(), &e, NULL, alphasort);
	*n = 0;
	for (int i = 0; i < k; i++) {
		if (*n < 256 && co_valid_name(e[i]->d_name)) {
			int fd = co_connect_group(e[i]->d_name);
			if (fd >= 0) {
				close(fd);
				snprintf(names[(*n)++], CO_NAME_MAX + 1, "%s", e[i]->d_name);
			}
		}
		free(e[i]);
	}
	if (k >= 0)
		free(e);
	return names;
}

/* The coordinator's answer to a status request, or NULL when it gave none. */
static const char *ask_status(const char *name, unsigned flags)
{
	static struct co_msgbuf mb;
	int fd = co_connect_group(name);
	if (fd == CO_UNTRUSTED)
		co_die("%s", co_connect_why());
	if (fd < 0)
		return NULL;
	int ok = !co_send(fd, CO_M_STATUS_REQ, flags, 0, 0, 0, -1) && !co_recv(fd, &mb, 0) &&
		 mb.m.type == CO_M_REPLY && mb.m.a == 0;
	close(fd);
	return ok ? mb.text : NULL;
}

static int cmd_status(int argc, char **argv)
{
	struct opt o[] = { { "--json", 0, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	unsigned flags = o[0].set ? CO_STATUS_JSON : 0;
	if (pos[0])
		return request(need_name(pos[0]), CO_M_STATUS_REQ, flags, 0, 0);
	/* every running group */
	int n, shown = 0;
	char(*names)[CO_NAME_MAX + 1] = running_groups(&n);
	if (o[0].set)
		fputs("[", stdout);
	for (int i = 0; i < n; i++) {
		const char *text = ask_status(names[i], flags);
		if (!text)
			continue;
		if (o[0].set && shown)
			fputs(",", stdout);
		fputs(text, stdout);
		shown++;
	}
	if (o[0].set)
		fputs("]\n", stdout);
	else if (!shown)
		puts("no running groups");
	return 0;
}

/* `cohort list`: one running group a line; --json: one object a line (status's summary). */
static int cmd_list(int argc, char **argv)
{
	struct opt o[] = { { "--json", 0, 0, 0 }, { 0, 0, 0, 0 } };
	parse_opts(argc, argv, o, NULL, 0, 0);
	int n;
	char(*names)[CO_NAME_MAX + 1] = running_groups(&n);
	for (int i = 0; i < n; i++) {
		if (!o[0].set) {
			puts(names[i]);
			continue;
		}
		const char *text = ask_status(names[i], CO_STATUS_JSON | CO_STATUS_BRIEF);
		if (text)
			fputs(text, stdout);
	}
	return 0;
}

static int cmd_kill(int argc, char **argv)
{
	struct opt o[] = { { "--signal", 1, 0, 0 }, { "--json", 0, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	const char *name = need_name(pos[0]);
	int sig = o[0].val ? parse_signal(o[0].val) : SIGTERM;
	return request(name, CO_M_KILL_REQ, o[1].set ? CO_KILL_JSON : 0, sig, 0);
}

static void images_opt(const char *val, char *out)
{
	const char *dir = val ? val : co_default_images();
	if (!realpath(dir, out)) {
		if (errno != ENOENT)
			co_die("images directory %s: %s", dir, strerror(errno));
		snprintf(out, PATH_MAX, "%s", dir);
	}
}

/* --full-every K (with --interval: every K-th timed checkpoint is full) and --keep N */
static void retention_opts(struct co_run_opts *r, const char *full_every, const char *keep)
{
	if (full_every && !r->interval)
		co_usage("%s: --full-every needs --interval", cur_cmd);
	r->full_every = full_every ? parse_count(full_every, "--full-every", 1) : 0;
	r->keep = keep ? parse_count(keep, "--keep", 1) : 0;
}

static int cmd_run(int argc, char **argv)
{
	struct opt o[] = { { "--name", 1, 0, 0 }, { "--images", 1, 0, 0 }, { "--interval", 1, 0, 0 },
			   { "--signal", 1, 0, 0 }, { "--full-every", 1, 0, 0 }, { "--keep", 1, 0, 0 },
			   { "--compress", 0, 0, 0 }, { "--no-precopy", 0, 0, 0 }, { "--replace", 0, 0, 0 },
			   { "--json", 0, 0, 0 }, { 0, 0, 0, 0 } };
	int used = parse_opts(argc, argv, o, 0, 0, 1);
	struct co_run_opts r = { 0 };
	if (used >= argc)
		co_usage("run: no program given (cohort run [OPTIONS] [--] PROGRAM [ARGS...])");
	r.argv = argv + used;
	static char images[PATH_MAX];
	images_opt(o[1].val, images);
	r.images = images;
	r.interval = o[2].val ? parse_seconds(o[2].val, "--interval") : 0;
	r.sig = o[3].val ? parse_signal(o[3].val) : 0;
	/* the agent needs a signal of its own that can be caught and queued: a real-time one libc leaves free */
	if (r.sig && (r.sig < SIGRTMIN || r.sig > SIGRTMAX))
		co_usage("run: --signal must be a real-time signal from %d to %d, not %d", SIGRTMIN, SIGRTMAX, r.sig);
	retention_opts(&r, o[4].val, o[5].val);
	r.compress = o[6].set;
	r.no_precopy = o[7].set;
	r.replace = o[8].set;
	r.json = o[9].set;
	static char base[CO_NAME_MAX + 1];
	if (o[0].val) {
		r.name = need_name(o[0].val);
		r.named = 1;
	} else {
		const char *b = strrchr(r.argv[0], '/');
		snprintf(base, sizeof(base), "%s", b ? b + 1 : r.argv[0]);
		if (!co_valid_name(base))
			co_usage("run: cannot make a group name from '%s': give one with --name", r.argv[0]);
		r.name = base;
	}
	return co_cmd_run(&r);
}

static int cmd_restart(int argc, char **argv)
{
	struct opt o[] = { { "--images", 1, 0, 0 }, { "--generation", 1, 0, 0 }, { "--interval", 1, 0, 0 },
			   { "--full-every", 1, 0, 0 }, { "--keep", 1, 0, 0 }, { "--compress", 0, 0, 0 },
			   { "--no-precopy", 0, 0, 0 }, { "--json", 0, 0, 0 }, { "--trust-images", 0, 0, 0 },
			   { "--lazy", 0, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	struct co_run_opts r = { 0 };
	r.name = need_name(pos[0]);
	r.trust_images = o[8].set;
	r.lazy = o[9].set;
	static char images[PATH_MAX];
	images_opt(o[0].val, images);
	r.images = images;
	if (o[1].val) {
		const char *g = o[1].val;
		char *end;
		errno = 0;
		r.generation = strtoull(g, &end, 10);
		if (g[0] < '0' || g[0] > '9' || *end || errno || !r.generation || r.generation > 999999)
			co_usage("restart: --generation must be a generation number (1 to 999999), not '%s'", g);
	}
	r.interval = o[2].val ? parse_seconds(o[2].val, "--interval") : 0;
	retention_opts(&r, o[3].val, o[4].val);
	r.compress = o[5].set;
	r.no_precopy = o[6].set;
	r.json = o[7].set;
	return co_cmd_restart(&r);
}

/* --max-rounds: 0 (stop-and-copy) to MIGRATE_MAX_ROUNDS */
#define MIGRATE_MAX_ROUNDS 100
static int parse_rounds(const char *s)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *s < '0' || *s > '9' || *end || errno || v > MIGRATE_MAX_ROUNDS)
		co_usage("migrate: --max-rounds must be a whole number from 0 to %d, not '%s'", MIGRATE_MAX_ROUNDS, s);
	return (int)v;
}

/* --downtime-ms: milliseconds, more than 0 and at most an hour (decimals allowed) */
static double parse_downtime(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (!*s || *s < '0' || *s > '9' || *end || errno || !(v > 0) || v > 3600000)
		co_usage("migrate: --downtime-ms must be a number of milliseconds above 0 (at most 3600000), not '%s'", s);
	return v;
}

static int cmd_migrate(int argc, char **argv)
{
	struct opt o[] = { { "--to", 1, 0, 0 }, { "--token-file", 1, 0, 0 }, { "--json", 0, 0, 0 },
			   { "--max-rounds", 1, 0, 0 }, { "--downtime-ms", 1, 0, 0 }, { "--postcopy", 0, 0, 0 },
			   { "--copy-files", 0, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	struct co_migrate_opts m = { .name = need_name(pos[0]), .to = o[0].val, .token_file = o[1].val,
				     .json = o[2].set, .max_rounds = 8, .downtime_ms = 20, .copy_files = o[6].set,
				     .postcopy = o[5].set };
	if (!m.to || !m.token_file)
		co_usage("migrate: needs --to ADDR:PORT and --token-file FILE (see 'cohort help migrate')");
	if (o[3].val)
		m.max_rounds = parse_rounds(o[3].val);
	if (o[4].val)
		m.downtime_ms = parse_downtime(o[4].val);
	return co_cmd_migrate(&m);
}

static int cmd_receive(int argc, char **argv)
{
	struct opt o[] = { { "--listen", 1, 0, 0 }, { "--token-file", 1, 0, 0 }, { "--images", 1, 0, 0 },
			   { "--json", 0, 0, 0 }, { 0, 0, 0, 0 } };
	parse_opts(argc, argv, o, NULL, 0, 0);
	static char images[PATH_MAX];
	images_opt(o[2].val, images);
	struct co_receive_opts r = { .listen = o[0].val, .token_file = o[1].val, .images = images, .json = o[3].set };
	if (!r.listen || !r.token_file)
		co_usage("receive: needs --listen ADDR:PORT and --token-file FILE (see 'cohort help receive')");
	return co_cmd_receive(&r);
}

/* inspect and verify: one directory or image, and --json */
static const char *one_target(int argc, char **argv, int *json)
{
	struct opt o[] = { { "--json", 0, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	if (!pos[0])
		co_usage("%s: of what? (see 'cohort help %s')", cur_cmd, cur_cmd);
	*json = o[0].set;
	return pos[0];
}

static int cmd_inspect(int argc, char **argv)
{
	int json;
	const char *target = one_target(argc, argv, &json);
	return co_cmd_inspect(target, json);
}

static int cmd_verify(int argc, char **argv)
{
	int json;
	const char *target = one_target(argc, argv, &json);
	return co_cmd_verify(target, json);
}

static const struct command commands[] = {
	{ "run", cmd_run,
	  "run [--name NAME] [--images DIR] [--interval SECONDS [--full-every K]] [--keep N]\n"
	  "             [--compress] [--no-precopy] [--signal N] [--replace] [--json] [--] PROGRAM [ARGS...]",
	  "Starts PROGRAM as a new group in the foreground, with your stdin, stdout and stderr, and\n"
	  "exits with its status (128+N if signal N ended it; 75 if 'checkpoint --kill' ended it).\n"
	  "  --name NAME          the group's name (default: PROGRAM's base name)\n"
	  "  --images DIR         where generations go: DIR/NAME/gen-N (default: $COHORT_IMAGES,\n"
	  "                       else $XDG_DATA_HOME/cohort, else ~/.local/share/cohort)\n"
	  "  --interval SECONDS   checkpoint every SECONDS while it runs\n"
	  "  --full-every K       with --interval: every K-th timed checkpoint full, the others incremental\n"
	  "  --keep N             keep only the newest N generations (and what they need)\n"
	  "  --compress           store every checkpoint's images compressed (zstd)\n"
	  "  --no-precopy         never read full images ahead while the group runs\n"
	  "  --signal N           the real-time signal the agent uses (default 62)\n"
	  "  --replace            start over: delete the images of an earlier group of this name\n"
	  "                       that ran another command line (refused without it)\n"
	  "  --json               when the group ends, print its outcome as one JSON object, the\n"
	  "                       last line of stdout\n" },
	{ "checkpoint", cmd_checkpoint,
	  "checkpoint NAME [--images DIR] [--kill] [--json] [--stop] [--incremental|--full]\n"
	  "             [--compress] [--no-precopy] [--reconnect-outside]",
	  "Checkpoints the running group NAME and waits until the generation is committed.\n"
	  "  --images DIR         write this generation under DIR/NAME instead of the group's own\n"
	  "  --kill               end the group once the generation is committed\n"
	  "  --json               print the result as one JSON object\n"
	  "  --stop               keep the group stopped while the images are written\n"
	  "  --incremental        only the pages written since the last generation\n"
	  "  --full               everything (the default)\n"
	  "  --compress           store the images compressed (zstd)\n"
	  "  --no-precopy         do not read full images ahead while the group runs\n"
	  "  --reconnect-outside  a Unix stream socket connected outside the group is connected\n"
	  "                       afresh to its peer's name at a restart (else refused)\n" },
	{ "restart", cmd_restart,
	  "restart NAME [--images DIR] [--generation N] [--interval SECONDS [--full-every K]] [--keep N]\n"
	  "             [--compress] [--no-precopy] [--json] [--trust-images] [--lazy]",
	  "Restarts group NAME from its newest committed generation (or N) in the foreground; the\n"
	  "group's stdin, stdout and stderr are yours. Exits as 'cohort run' does.\n"
	  "  --images DIR         where the group's generations are (as for run)\n"
	  "  --generation N       restart generation N instead of the newest\n"
	  "  --interval, --full-every, --keep, --compress, --no-precopy: as for run\n"
	  "  --json               when the group ends, print its outcome as one JSON object, the\n"
	  "                       last line of stdout\n"
	  "  --trust-images       restart images another user owns, or in a directory others may\n"
	  "                       write (refused by default: a restart writes the files its images\n"
	  "                       name, as you)\n"
	  "  --lazy               the program runs before its memory is all in place: its pages\n"
	  "                       come in on demand and in the background (userfaultfd; root)\n" },
	{ "migrate", cmd_migrate,
	  "migrate NAME --to ADDR:PORT --token-file FILE [--json] [--max-rounds N] [--downtime-ms MS]\n"
	  "             [--postcopy] [--copy-files]",
	  "Moves the running group NAME to the machine where 'cohort receive' listens at ADDR:PORT:\n"
	  "while it runs, its memory is sent, then rounds of the pages written since; then it is\n"
	  "held stopped for the last of them, and once it runs there it ends here (its 'cohort run'\n"
	  "or 'cohort restart' prints where it went and exits 0).  Any failure before that resumes\n"
	  "it here.  Exits 0 only once it runs there.\n"
	  "  --to ADDR:PORT       where 'cohort receive' listens\n"
	  "  --token-file FILE    the secret shared with the receiver (yours alone: mode 600)\n"
	  "  --json               print the result as one JSON object (rounds, bytes, downtime_ms,\n"
	  "                       duration_ms, processes)\n"
	  "  --max-rounds N       pre-copy rounds at most (default 8; 0: stop the group and send it\n"
	  "                       whole)\n"
	  "  --downtime-ms MS     stop once what is left would take this long to send (default 20)\n"
	  "  --copy-files         send the files the group writes (it holds them open for writing)\n"
	  "                       and put them in place there, instead of requiring the same there\n"
	  "  --postcopy           let the group run there after one short stop: the stop's pages\n"
	  "                       follow while it runs, the ones it faults on first (the rounds\n"
	  "                       before it still run: --max-rounds 0 for none); should the link\n"
	  "                       fail meanwhile, the group ends there and restarts here from the\n"
	  "                       stop's generation (named)\n" },
	{ "receive", cmd_receive, "receive --listen ADDR:PORT --token-file FILE [--images DIR] [--json]",
	  "Accepts one migration (see 'cohort help migrate') and runs the group in the foreground as\n"
	  "'cohort restart' does: its stdin, stdout and stderr are yours, and receive exits with its\n"
	  "status.  Prints 'listening on ADDR:PORT' on stderr when ready.\n"
	  "  --listen ADDR:PORT   where to listen (PORT 0: a free port, printed)\n"
	  "  --token-file FILE    the secret shared with the source (yours alone: mode 600)\n"
	  "  --images DIR         where the group's generations go (as for run)\n"
	  "  --json               when the group ends, print its outcome as one JSON object, the\n"
	  "                       last line of stdout\n" },
	{ "status", cmd_status, "status [NAME] [--json]",
	  "Shows the running group NAME (or every running group): its processes with their command\n"
	  "lines, threads and states, its last generation and images.\n"
	  "  --json               one JSON object (an array of them without NAME)\n" },
	{ "list", cmd_list, "list [--json]",
	  "Lists the running groups, one name a line.\n"
	  "  --json               one JSON object a line: name, state, coordinator_pid, program,\n"
	  "                       processes, generation, images\n" },
	{ "kill", cmd_kill, "kill NAME [--signal SIG] [--json]",
	  "Sends a signal to every process of group NAME.\n"
	  "  --signal SIG         the signal, by number or name (default TERM)\n"
	  "  --json               print the result as one JSON object\n" },
	{ "inspect", cmd_inspect, "inspect DIR|GROUPDIR|IMAGE [--json]",
	  "Shows what a generation (DIR), every generation of a group (its images directory) or one\n"
	  "process image holds, checking every checksum on the way.\n"
	  "  --json               one JSON object per generation, one a line\n" },
	{ "verify", cmd_verify, "verify DIR|GROUPDIR [--json]",
	  "Checks a generation, or every generation of a group (its images directory), without\n"
	  "restoring anything. Exits 1 if any is damaged.\n"
	  "  --json               one JSON object per generation, one a line\n" },
	{ "help", cmd_help, "help [COMMAND]", "Shows the help of COMMAND, or the list of commands.\n" },
	{ NULL, NULL, NULL, NULL },
};

static const struct command *find_command(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		co_usage("no command given (see 'cohort --help')");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help"))
		return cmd_help(0, NULL);
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("cohort %s\n", COHORT_VERSION);
		return 0;
	}
	const struct command *c = find_command(cmd);
	if (!c)
		co_usage("unknown command '%s' (see 'cohort --help')", cmd);
	cur_cmd = c->name;
	if (asks_help(cmd, argc - 2, argv + 2)) {
		print_help(stdout, c);
		return 0;
	}
	return c->fn(argc - 2, argv + 2);
}
