/*
 * pty_self - a pseudo-terminal the program opens itself, across checkpoints
 * (tests/cases/pty.sh).
 *
 * The parent opens a pty (packet mode on its master, a window size, a
 * second pty left locked), forks a child that starts a session with the
 * slave as its controlling terminal, sets the terminal's settings
 * (canonical with echo, custom special characters, exclusive mode) and
 * forks a worker in a process group of its own, which it makes the
 * foreground.  Each round the parent completes the line it began the round
 * before and begins the next one (so a partial line sits in the input
 * queue), the worker reads the completed line, checks every detail of its
 * terminal and answers after a moment (so its answer sits in the output
 * queue while the parent sleeps); the parent reads the echo and the
 * answer, which must be exactly what a straight run gets, and prints
 * "step N ok" (or what is wrong) and what it read.  At the end: RESULT, a digest of
 * everything read.
 *
 * A third pty, in packet mode, the parent holds both ends of: each round
 * it does on the slave what sets bits of the status byte for the master's
 * reader (flushes, flow control on or off, output stopped or started),
 * and the next round reads that byte, which must be exactly those bits,
 * alone: it waits there at every checkpoint.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 40

static void ms(int n)
{
	struct timespec t = { n / 1000, (long)(n % 1000) * 1000000 };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static void die(const char *what)
{
	printf("ERROR %s: %s\n", what, strerror(errno));
	exit(1);
}

/* What the worker finds wrong with its terminal, "" when everything is as set. */
static const char *check_terminal(pid_t sid)
{
	struct termios t;
	struct winsize ws;
	int excl = 0;
	if (tcgetattr(0, &t) < 0)
		return "tcgetattr";
	if (!(t.c_lflag & ICANON) || !(t.c_lflag & ECHO) || (t.c_lflag & ISIG) || !(t.c_oflag & ONLCR) ||
	    !(t.c_iflag & ICRNL) || t.c_cc[VERASE] != 0x08 || t.c_cc[VKILL] != 0x15 || t.c_cc[VINTR] != 0x07)
		return "termios";
	if (ioctl(0, TIOCGWINSZ, &ws) < 0 || ws.ws_row != 30 || ws.ws_col != 100)
		return "window size";
	if (ioctl(0, TIOCGEXCL, &excl) < 0 || !excl)
		return "exclusive mode";
	if (tcgetsid(0) != sid || getsid(0) != sid)
		return "session";
	if (tcgetpgrp(0) != getpgrp() || getpgrp() == sid)
		return "foreground";
	return "";
}

/* The worker: each line read is answered after a moment, "pong LINE ok" (or what is wrong). */
static void worker(pid_t sid)
{
	char line[256];
	for (;;) {
		ssize_t n = read(0, line, sizeof(line) - 1);
		if (n <= 0)
			exit(2);
		line[n] = 0;
		if (!strcmp(line, "quit\n"))
			exit(0);
		line[strcspn(line, "\n")] = 0;
		ms(60);
		const char *bad = check_terminal(sid);
		dprintf(1, "pong %s %s\n", line, bad[0] ? bad : "ok");
	}
}

/* The session leader: the terminal's settings, then the worker in the foreground. */
static void leader(const char *slave)
{
	if (setsid() < 0)
		die("setsid");
	int s = open(slave, O_RDWR); /* a session leader's first terminal: its controlling terminal */
	if (s < 0)
		die("open slave");
	dup2(s, 0);
	dup2(s, 1);
	if (s > 1)
		close(s);
	struct termios t;
	tcgetattr(0, &t);
	t.c_lflag |= ICANON | ECHO;
	t.c_lflag &= ~(tcflag_t)ISIG;
	t.c_oflag |= OPOST | ONLCR;
	t.c_iflag |= ICRNL;
	t.c_cc[VERASE] = 0x08;
	t.c_cc[VKILL] = 0x15;
	t.c_cc[VINTR] = 0x07;
	if (tcsetattr(0, TCSANOW, &t) < 0 || ioctl(0, TIOCEXCL) < 0)
		die("terminal settings");
	signal(SIGTTOU, SIG_IGN);
	pid_t w = fork();
	if (w == 0) {
		setpgid(0, 0);
		/* a read from the background would stop it (SIGTTIN): the leader makes it the foreground first */
		while (tcgetpgrp(0) != getpgrp())
			ms(1);
		worker(getsid(0));
	}
	setpgid(w, w);
	if (tcsetpgrp(0, w) < 0)
		die("tcsetpgrp");
	int st;
	while (waitpid(w, &st, 0) < 0 && errno == EINTR)
		;
	exit(WIFEXITED(st) ? WEXITSTATUS(st) : 3);
}

/* The line that begins with want, whole (packet mode: each read's first byte is its status, not data). */
static void read_line(int m, char *got, size_t max, const char *want)
{
	size_t n = strlen(got);
	const char *at;
	while (!(at = strstr(got, want)) || !strstr(at, "\r\n")) {
		char buf[512];
		ssize_t r = read(m, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read master");
		if (buf[0] != 0) /* TIOCPKT_DATA is 0: anything else is a status byte, which no round makes */
			printf("status byte %#x\n", buf[0]);
		if (n + (size_t)r > max)
			die("too much from the master");
		memcpy(got + n, buf + 1, (size_t)r - 1);
		n += (size_t)r - 1;
		got[n] = 0;
	}
}

/* The status bits round i sets on the slave s of the status pty, as make_status sets them. */
static int make_status(int s, int i)
{
	struct termios t;
	int want = 0;
	if (tcgetattr(s, &t) < 0)
		die("tcgetattr status pty");
	if (i % 2) /* flow control by ^S and ^Q turned on (DOSTOP) or off (NOSTOP) */
		t.c_iflag |= IXON;
	else
		t.c_iflag &= ~(tcflag_t)IXON;
	want |= i % 2 ? TIOCPKT_DOSTOP : TIOCPKT_NOSTOP;
	if (tcsetattr(s, TCSANOW, &t) < 0)
		die("tcsetattr status pty");
	int r = 0;
	switch (i % 4) {
	case 0:
		r = tcflow(s, TCOOFF) | tcflow(s, TCOON) | tcflush(s, TCIFLUSH);
		want |= TIOCPKT_START | TIOCPKT_FLUSHREAD;
		break;
	case 1:
		r = tcflow(s, TCOOFF) | tcflow(s, TCOON) | tcflush(s, TCOFLUSH);
		want |= TIOCPKT_START | TIOCPKT_FLUSHWRITE;
		break;
	case 2:
		r = tcflush(s, TCIOFLUSH);
		want |= TIOCPKT_FLUSHREAD | TIOCPKT_FLUSHWRITE;
		break;
	default:
		r = tcflow(s, TCOOFF);
		want |= TIOCPKT_STOP;
	}
	if (r < 0)
		die("status pty");
	return want;
}

/* The status byte waiting on master m: exactly want, alone (then nothing to read). */
static int status_ok(int m, int want)
{
	unsigned char b = 0;
	if (read(m, &b, 1) != 1 || b != want)
		return 0;
	return read(m, &b, 1) < 0 && errno == EAGAIN;
}

static void put(int m, const char *s)
{
	if (write(m, s, strlen(s)) != (ssize_t)strlen(s))
		die("write master");
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	int locked = posix_openpt(O_RDWR | O_NOCTTY); /* never unlocked */
	if (m < 0 || locked < 0 || grantpt(m) < 0 || unlockpt(m) < 0)
		die("posix_openpt");
	int one = 1, index = -1, index2 = -1;
	struct winsize ws = { 30, 100, 0, 0 };
	if (ioctl(m, TIOCSWINSZ, &ws) < 0 || ioctl(m, TIOCPKT, &one) < 0 || ioctl(m, TIOCGPTN, &index) < 0 ||
	    ioctl(locked, TIOCGPTN, &index2) < 0)
		die("pty settings");
	char slave[64];
	snprintf(slave, sizeof(slave), "/dev/pts/%d", index);
	pid_t c = fork();
	if (c == 0) {
		close(m);
		close(locked);
		leader(slave);
	}
	int sm = posix_openpt(O_RDWR | O_NOCTTY | O_NONBLOCK), ss = -1, pidx = -1;
	char sname[64];
	if (sm < 0 || grantpt(sm) < 0 || unlockpt(sm) < 0 || ioctl(sm, TIOCPKT, &one) < 0 || ioctl(sm, TIOCGPTN, &pidx) < 0)
		die("status pty");
	snprintf(sname, sizeof(sname), "/dev/pts/%d", pidx);
	if ((ss = open(sname, O_RDWR | O_NOCTTY)) < 0)
		die("status pty slave");
	int status = make_status(ss, 0);
	unsigned long long digest = 1469598103934665603ULL;
	char got[4096] = "";
	put(m, "ping 0 ");
	for (int i = 0; i < ROUNDS; i++) {
		char next[64], want[64];
		int status_bad = !status_ok(sm, status);
		status = make_status(ss, i + 1);
		/* the line of this round completed, the next one begun: both echoed at once */
		snprintf(next, sizeof(next), i + 1 < ROUNDS ? "tail\rping %d " : "tail\r", i + 1);
		put(m, next);
		ms(40); /* meanwhile the worker's answer waits in the output queue */
		snprintf(want, sizeof(want), "pong ping %d tail ", i);
		got[0] = 0;
		read_line(m, got, sizeof(got) - 1, want);
		/* the master's own view: index, lock, packet mode, the other pty still locked */
		int idx = -1, lk = -1, pkt = -1, lk2 = -1, idx2 = -1;
		ioctl(m, TIOCGPTN, &idx);
		ioctl(m, TIOCGPTLCK, &lk);
		ioctl(m, TIOCGPKT, &pkt);
		ioctl(locked, TIOCGPTLCK, &lk2);
		ioctl(locked, TIOCGPTN, &idx2);
		const char *bad = idx != index ? "index" : lk ? "lock" : !pkt ? "packet mode" : lk2 != 1 ? "second lock"
				  : idx2 != index2 ? "second index" : status_bad ? "status byte" : NULL;
		for (char *p = got; *p; p++)
			digest = (digest ^ (unsigned char)*p) * 1099511628211ULL;
		size_t len = strlen(got);
		char shown[sizeof(got) * 2];
		size_t k = 0;
		for (size_t j = 0; j < len; j++)
			k += (size_t)sprintf(shown + k, got[j] == '\r' ? "\\r" : got[j] == '\n' ? "\\n" : "%c", got[j]);
		int ok = !bad && strstr(got, " ok\r\n");
		printf("step %d %s\n  read %s\n", i + 1, ok ? "ok" : bad ? bad : "wrong", shown);
	}
	put(m, "quit\r");
	int st;
	while (waitpid(c, &st, 0) < 0 && errno == EINTR)
		;
	printf("RESULT leader status %d digest %016llx\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1, digest);
	return 0;
}
