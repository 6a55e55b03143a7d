/*
 * main.c - the cohort command line.
 *
 *   cohort run [--name NAME] [--images DIR] [--interval S [--full-every K]] [--keep N] [--compress] [--no-precopy]
 *              [--signal N]
 *              -- PROGRAM [ARGS...]
 *   cohort checkpoint NAME [--images DIR] [--kill] [--json] [--stop] [--incremental|--full] [--compress]
 *                   [--no-precopy]
 *   cohort restart NAME [--images DIR] [--generation N] [--interval S [--full-every K]] [--keep N] [--compress]
 *                 [--no-precopy]
 *   cohort status [NAME] [--json]
 *   cohort list
 *   cohort kill NAME [--signal SIG]
 *   cohort inspect DIR [--json]
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

void co_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	co_progress_hide(); /* a progress line must not run into the message */
	fputs("cohort: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

void co_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	co_progress_hide();
	fputs("cohort: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

uint64_t co_now_ns(int clock)
{
	struct timespec t;
	clock_gettime(clock, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

const char *co_run_root(void)
{
	static char path[PATH_MAX];
	const char *env = getenv("COHORT_RUN_DIR");
	if (env && *env)
		snprintf(path, sizeof(path), "%s", env);
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

const char *co_self_path(const char *file, char *out, size_t n)
{
	char exe[PATH_MAX];
	ssize_t k = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (k < 0)
		co_die("cannot find my own executable");
	exe[k] = 0;
	snprintf(out, n, "%s/%s", dirname(exe), file);
	return out;
}

/* ---- control socket ---- */

int co_send(int fd, unsigned type, unsigned flags, int64_t a, int64_t b, const char *text, int passfd)
{
	static struct co_msgbuf mb;
	memset(&mb.m, 0, sizeof(mb.m));
	mb.m.type = type;
	mb.m.flags = flags;
	mb.m.a = a;
	mb.m.b = b;
	size_t n = text ? strlen(text) : 0;
	if (n >= sizeof(mb.text))
		n = sizeof(mb.text) - 1;
	memcpy(mb.text, text ? text : "", n);
	mb.m.textlen = (uint32_t)n;
	struct iovec iov = { &mb, sizeof(mb.m) + n };
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (passfd >= 0) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &passfd, sizeof(int));
	}
	ssize_t r;
	do
		r = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : 0;
}

int co_recv(int fd, struct co_msgbuf *mb, int *passfd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { mb, sizeof(*mb) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	ssize_t r;
	do
		r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < (ssize_t)sizeof(mb->m))
		return -1;
	size_t tl = mb->m.textlen < sizeof(mb->text) ? mb->m.textlen : sizeof(mb->text) - 1;
	if ((size_t)r < sizeof(mb->m) + tl)
		tl = (size_t)r - sizeof(mb->m);
	mb->text[tl] = 0;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (c && c->cmsg_type == SCM_RIGHTS) {
		int got;
		memcpy(&got, CMSG_DATA(c), sizeof(int));
		if (passfd)
			*passfd = got;
		else
			close(got);
	}
	return 0;
}

int co_connect_group(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s/ctl.sock", co_run_root(), name) >=
	    sizeof(sa.sun_path))
		co_die("run directory path too long: %s", co_run_root());
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* ---- client commands ---- */

static void usage(void)
{
	fputs("usage:\n"
	      "  cohort run [--name NAME] [--images DIR] [--interval SECONDS [--full-every K]] [--keep N]\n"
	      "             [--compress] [--no-precopy] [--signal N] -- PROGRAM [ARGS...]\n"
	      "  cohort checkpoint NAME [--images DIR] [--kill] [--json] [--stop] [--incremental|--full] [--compress]\n"
	      "             [--no-precopy]\n"
	      "  cohort restart NAME [--images DIR] [--generation N] [--interval SECONDS [--full-every K]] [--keep N]\n"
	      "             [--compress] [--no-precopy]\n"
	      "  cohort status [NAME] [--json]\n"
	      "  cohort list\n"
	      "  cohort kill NAME [--signal SIG]\n"
	      "  cohort inspect DIR [--json]\n"
	      "  cohort verify DIR\n",
	      stderr);
	exit(2);
}

/* Option parsing shared by the commands: returns the value of --opt or NULL. */
struct opt {
	const char *name;
	int has_arg;
	const char *val;
	int set;
};

static int parse_opts(int argc, char **argv, struct opt *opts, const char **pos, int npos, int stop_at_dashdash)
{
	int np = 0, i;
	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (stop_at_dashdash && strcmp(a, "--") == 0)
			return i + 1;
		if (a[0] == '-' && a[1] == '-') {
			struct opt *o = opts;
			const char *eq = strchr(a, '=');
			size_t len = eq ? (size_t)(eq - a) : strlen(a);
			for (; o->name; o++)
				if (strlen(o->name) == len && strncmp(o->name, a, len) == 0)
					break;
			if (!o->name)
				co_die("unknown option %s (see 'cohort' for usage)", a);
			o->set = 1;
			if (o->has_arg) {
				if (eq)
					o->val = eq + 1;
				else if (i + 1 < argc)
					o->val = argv[++i];
				else
					co_die("option %s needs a value", a);
			} else if (eq) {
				co_die("option %s takes no value", o->name);
			}
			continue;
		}
		if (stop_at_dashdash)
			return i; /* "cohort run PROGRAM ...": the program starts here */
		if (np >= npos)
			co_die("unexpected argument '%s'", a);
		pos[np++] = a;
	}
	return i;
}

static double parse_seconds(const char *s, const char *what)
{
	char *end;
	double v = strtod(s, &end);
	if (*end || v <= 0)
		co_die("%s must be a positive number of seconds, not '%s'", what, s);
	return v;
}

static int parse_signal(const char *s)
{
	if (s[0] >= '0' && s[0] <= '9') {
		char *end;
		long v = strtol(s, &end, 10);
		if (*end || v < 1 || v > 64)
			co_die("bad signal '%s'", s);
		return (int)v;
	}
	if (strncmp(s, "SIG", 3) == 0)
		s += 3;
	for (int i = 1; i < 32; i++) {
		const char *n = sigabbrev_np(i);
		if (n && strcmp(n, s) == 0)
			return i;
	}
	co_die("unknown signal '%s'", s);
}

static const char *need_name(const char *name)
{
	if (!name)
		usage();
	if (!co_valid_name(name))
		co_die("invalid group name '%s' (letters, digits, '.', '_' and '-', at most %d)", name, CO_NAME_MAX);
	return name;
}

static int group_or_die(const char *name)
{
	int fd = co_connect_group(name);
	if (fd < 0)
		co_die("no running group named '%s'", name);
	return fd;
}

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
			   { "--compress", 0, 0, 0 }, { "--no-precopy", 0, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	const char *name = need_name(pos[0]);
	char images[PATH_MAX] = "";
	if (o[0].val && !realpath(o[0].val, images)) {
		if (mkdir(o[0].val, 0700) < 0 || !realpath(o[0].val, images))
			co_die("images directory %s: %s", o[0].val, strerror(errno));
	}
	if (o[4].set && o[5].set)
		co_die("checkpoint: --incremental and --full exclude each other");
	unsigned flags = (o[1].set ? CO_CKPT_KILL : 0) | (o[2].set ? CO_CKPT_JSON : 0) | (o[3].set ? CO_CKPT_STOP : 0) |
			 (o[4].set ? CO_CKPT_INCREMENTAL : 0) | (o[6].set ? CO_CKPT_COMPRESS : 0) |
			 (o[7].set ? CO_CKPT_NO_PRECOPY : 0) | (co_progress_wanted(STDERR_FILENO) ? CO_CKPT_PROGRESS : 0);
	return request(name, CO_M_CKPT_REQ, flags, 0, images);
}

static int cmd_status(int argc, char **argv)
{
	struct opt o[] = { { "--json", 0, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	if (pos[0])
		return request(need_name(pos[0]), CO_M_STATUS_REQ, o[0].set ? CO_STATUS_JSON : 0, 0, 0);
	/* every running group */
	DIR *d = opendir(co_run_root());
	int first = 1;
	if (o[0].set)
		fputs("[", stdout);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (!co_valid_name(e->d_name))
			continue;
		int fd = co_connect_group(e->d_name);
		if (fd < 0)
			continue;
		static struct co_msgbuf mb;
		if (!co_send(fd, CO_M_STATUS_REQ, o[0].set ? CO_STATUS_JSON : 0, 0, 0, 0, -1) &&
		    !co_recv(fd, &mb, 0) && mb.m.a == 0) {
			if (o[0].set && !first)
				fputs(",", stdout);
			fputs(mb.text, stdout);
			first = 0;
		}
		close(fd);
	}
	if (d)
		closedir(d);
	if (o[0].set)
		fputs("]\n", stdout);
	else if (first)
		puts("no running groups");
	return 0;
}

static int cmd_list(int argc, char **argv)
{
	(void)argv;
	if (argc)
		usage();
	DIR *d = opendir(co_run_root());
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		if (!co_valid_name(e->d_name))
			continue;
		int fd = co_connect_group(e->d_name);
		if (fd < 0)
			continue;
		close(fd);
		puts(e->d_name);
		n++;
	}
	if (d)
		closedir(d);
	return 0;
}

static int cmd_kill(int argc, char **argv)
{
	struct opt o[] = { { "--signal", 1, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	const char *name = need_name(pos[0]);
	int sig = o[0].val ? parse_signal(o[0].val) : SIGTERM;
	return request(name, CO_M_KILL_REQ, 0, sig, 0);
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

static unsigned parse_count(const char *s, const char *what, unsigned min)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v < min || v > 1000000)
		co_die("%s must be a whole number of at least %u, not '%s'", what, min, s);
	return (unsigned)v;
}

/* --full-every K (with --interval: every K-th timed checkpoint is full) and --keep N */
static void retention_opts(struct co_run_opts *r, const char *full_every, const char *keep)
{
	if (full_every && !r->interval)
		co_die("--full-every needs --interval");
	r->full_every = full_every ? parse_count(full_every, "--full-every", 1) : 0;
	r->keep = keep ? parse_count(keep, "--keep", 1) : 0;
}

static int cmd_run(int argc, char **argv)
{
	struct opt o[] = { { "--name", 1, 0, 0 }, { "--images", 1, 0, 0 }, { "--interval", 1, 0, 0 },
			   { "--signal", 1, 0, 0 }, { "--full-every", 1, 0, 0 }, { "--keep", 1, 0, 0 },
			   { "--compress", 0, 0, 0 }, { "--no-precopy", 0, 0, 0 }, { 0, 0, 0, 0 } };
	int used = parse_opts(argc, argv, o, 0, 0, 1);
	struct co_run_opts r = { 0 };
	if (used >= argc)
		co_die("run: no program given (cohort run [options] -- PROGRAM [ARGS...])");
	r.argv = argv + used;
	static char images[PATH_MAX];
	images_opt(o[1].val, images);
	r.images = images;
	r.interval = o[2].val ? parse_seconds(o[2].val, "--interval") : 0;
	r.sig = o[3].val ? parse_signal(o[3].val) : 0;
	retention_opts(&r, o[4].val, o[5].val);
	r.compress = o[6].set;
	r.no_precopy = o[7].set;
	static char base[CO_NAME_MAX + 1];
	if (o[0].val) {
		r.name = need_name(o[0].val);
	} else {
		const char *b = strrchr(r.argv[0], '/');
		snprintf(base, sizeof(base), "%s", b ? b + 1 : r.argv[0]);
		if (!co_valid_name(base))
			co_die("cannot make a group name from '%s': give one with --name", r.argv[0]);
		r.name = base;
	}
	return co_cmd_run(&r);
}

static int cmd_restart(int argc, char **argv)
{
	struct opt o[] = { { "--images", 1, 0, 0 }, { "--generation", 1, 0, 0 }, { "--interval", 1, 0, 0 },
			   { "--full-every", 1, 0, 0 }, { "--keep", 1, 0, 0 }, { "--compress", 0, 0, 0 },
			   { "--no-precopy", 0, 0, 0 }, { 0, 0, 0, 0 } };
	const char *pos[1] = { 0 };
	parse_opts(argc, argv, o, pos, 1, 0);
	struct co_run_opts r = { 0 };
	r.name = need_name(pos[0]);
	static char images[PATH_MAX];
	images_opt(o[0].val, images);
	r.images = images;
	if (o[1].val) {
		char *end;
		r.generation = strtoull(o[1].val, &end, 10);
		if (*end || !r.generation)
			co_die("--generation must be a generation number, not '%s'", o[1].val);
	}
	r.interval = o[2].val ? parse_seconds(o[2].val, "--interval") : 0;
	retention_opts(&r, o[3].val, o[4].val);
	r.compress = o[5].set;
	r.no_precopy = o[6].set;
	return co_cmd_restart(&r);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	argc -= 2;
	argv += 2;
	if (!strcmp(cmd, "run"))
		return cmd_run(argc, argv);
	if (!strcmp(cmd, "checkpoint"))
		return cmd_checkpoint(argc, argv);
	if (!strcmp(cmd, "restart"))
		return cmd_restart(argc, argv);
	if (!strcmp(cmd, "status"))
		return cmd_status(argc, argv);
	if (!strcmp(cmd, "list"))
		return cmd_list(argc, argv);
	if (!strcmp(cmd, "kill"))
		return cmd_kill(argc, argv);
	if (!strcmp(cmd, "inspect"))
		return co_cmd_inspect(argc, argv);
	if (!strcmp(cmd, "verify"))
		return co_cmd_verify(argc, argv);
	if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help"))
		usage();
	co_die("unknown command '%s' (see 'cohort --help')", cmd);
}
