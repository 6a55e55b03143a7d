/*
 * sig_launch: start a command with a chosen signal state, the way a shell,
 * nohup or a supervisor hands one on.
 *
 *   sig_launch [-i SIGS] [-d SIGS] [-b SIGS] -- COMMAND [ARGS...]
 *
 * -i: these signals ignored; -d: these default; -b: exactly these blocked
 * (the mask is left alone without -b).  SIGS: comma-separated names
 * without "SIG" (HUP, PIPE, ...) or numbers.  Dispositions not named stay
 * as they were given to sig_launch.  Not a test by itself: the transparency
 * tests start the program natively and `cohort run` alike through it.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const struct { const char *name; int sig; } names[] = {
	{ "HUP", SIGHUP }, { "INT", SIGINT }, { "QUIT", SIGQUIT }, { "USR1", SIGUSR1 }, { "USR2", SIGUSR2 },
	{ "PIPE", SIGPIPE }, { "ALRM", SIGALRM }, { "TERM", SIGTERM }, { "CHLD", SIGCHLD }, { "CONT", SIGCONT },
	{ "TSTP", SIGTSTP }, { "TTIN", SIGTTIN }, { "TTOU", SIGTTOU }, { "URG", SIGURG }, { "XFSZ", SIGXFSZ },
	{ "WINCH", SIGWINCH },
};

static int parse_sig(const char *s)
{
	char *end;
	long n = strtol(s, &end, 10);
	if (*s && !*end && n >= 1 && n <= 64)
		return (int)n;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(s, names[i].name))
			return names[i].sig;
	fprintf(stderr, "sig_launch: unknown signal '%s'\n", s);
	exit(2);
}

/* Call fn for every signal of a comma-separated list. */
static void each(const char *list, void (*fn)(int, void *), void *arg)
{
	char buf[256];
	snprintf(buf, sizeof(buf), "%s", list);
	for (char *save, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		fn(parse_sig(t), arg);
}

static void set_disp(int sig, void *h)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = (void (*)(int))h;
	if (sigaction(sig, &sa, NULL) < 0) {
		perror("sig_launch: sigaction");
		exit(2);
	}
}

static void add(int sig, void *set) { sigaddset(set, sig); }

int main(int argc, char **argv)
{
	int i = 1;
	for (; i + 1 < argc && strcmp(argv[i], "--"); i += 2) {
		if (!strcmp(argv[i], "-i"))
			each(argv[i + 1], set_disp, (void *)SIG_IGN);
		else if (!strcmp(argv[i], "-d"))
			each(argv[i + 1], set_disp, (void *)SIG_DFL);
		else if (!strcmp(argv[i], "-b")) {
			sigset_t m;
			sigemptyset(&m);
			each(argv[i + 1], add, &m);
			sigprocmask(SIG_SETMASK, &m, NULL);
		} else
			break;
	}
	if (i >= argc - 1 || strcmp(argv[i], "--")) {
		fprintf(stderr, "usage: sig_launch [-i SIGS] [-d SIGS] [-b SIGS] -- COMMAND [ARGS...]\n");
		return 2;
	}
	execvp(argv[i + 1], argv + i + 1);
	perror("sig_launch: exec");
	return 127;
}
