/*
 * progress.c - the status line of a long checkpoint, restart or merge on a
 * terminal (see progress.h), and the few measurements it is made of.
 *
 * The line is drawn with "\r" and erase-to-end-of-line, cut to the
 * terminal's width (a line that wraps cannot be redrawn in place), and
 * written with write(2), not stdio: it must be on the terminal before the
 * next message, and nothing of it may sit in a buffer when the result
 * line is printed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "procfs.h"
#include "progress.h"

#define REDRAW_NS 200000000ULL	/* at most five lines a second */
#define RATE_AFTER_NS 300000000ULL /* a rate over less time than this jumps about: not shown yet */
#define DELAY_NS 500000000ULL	/* work over sooner than this shows no progress */
/*
 * Unread progress (bytes queued to a client) beyond which the coordinator
 * drops updates: a client that stopped reading (suspended with ^Z) must
 * still have room for the final reply, which is sent blocking.
 */
#define SEND_BACKLOG (32 << 10)

static struct co_progress *onscreen; /* the progress whose line is on the terminal */

/* $COHORT_PROGRESS_DELAY (seconds), else DELAY_NS */
static uint64_t delay_ns(void)
{
	const char *s = getenv("COHORT_PROGRESS_DELAY");
	char *end;
	double v = s && *s ? strtod(s, &end) : -1;
	return v >= 0 && v < 1e6 && !*end ? (uint64_t)(v * 1e9) : DELAY_NS;
}

int co_progress_wanted(int fd)
{
	const char *term = getenv("TERM");
	return fd >= 0 && isatty(fd) && !(term && !strcmp(term, "dumb"));
}

void co_progress_start(struct co_progress *p, int fd, const char *fmt, ...)
{
	va_list ap;
	memset(p, 0, sizeof(*p));
	p->fd = co_progress_wanted(fd) ? fd : -1;
	p->t_visible = co_now_ns(CLOCK_MONOTONIC) + delay_ns();
	va_start(ap, fmt);
	vsnprintf(p->what, sizeof(p->what), fmt, ap);
	va_end(ap);
}

/* n bytes as "412.0 MiB" */
static void human(char *out, size_t n, double v)
{
	if (v < 1024)
		snprintf(out, n, "%.0f B", v);
	else if (v < 1024.0 * 1024)
		snprintf(out, n, "%.1f KiB", v / 1024);
	else if (v < 1024.0 * 1024 * 1024)
		snprintf(out, n, "%.1f MiB", v / (1024.0 * 1024));
	else
		snprintf(out, n, "%.2f GiB", v / (1024.0 * 1024 * 1024));
}

/* bytes per second as "215 MiB/s" */
static void human_rate(char *out, size_t n, double r)
{
	if (r < 1024.0 * 1024)
		snprintf(out, n, "%.0f KiB/s", r / 1024);
	else if (r < 1024.0 * 1024 * 1024)
		snprintf(out, n, "%.0f MiB/s", r / (1024.0 * 1024));
	else
		snprintf(out, n, "%.2f GiB/s", r / (1024.0 * 1024 * 1024));
}

int co_progress_format(char *out, size_t n, const char *what, const char *phase, uint64_t done, uint64_t total,
		       double rate)
{
	char d[32], t[32], r[32];
	int k = snprintf(out, n, "%s: %s", what, phase);
	if (!done && !total)
		return k; /* nothing counted (yet): the phase alone */
	human(d, sizeof(d), (double)done);
	/* an estimate that turned out too low says nothing: done alone then */
	if (total && total >= done) {
		human(t, sizeof(t), (double)total);
		k += snprintf(out + k, (size_t)k < n ? n - (size_t)k : 0, "  %s / %s  %d %%", d, t,
			      (int)(done * 100 / total));
	} else {
		k += snprintf(out + k, (size_t)k < n ? n - (size_t)k : 0, "  %s", d);
	}
	if (rate > 0) {
		human_rate(r, sizeof(r), rate);
		k += snprintf(out + k, (size_t)k < n ? n - (size_t)k : 0, "  %s", r);
	}
	return k;
}

static void put(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = write(fd, s, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return; /* the terminal is gone: nothing to tell it */
		s += k;
		n -= (size_t)k;
	}
}

/* The terminal's width; 0 when unknown. */
static int width(int fd)
{
	struct winsize ws;
	return ioctl(fd, TIOCGWINSZ, &ws) == 0 ? ws.ws_col : 0;
}

/*
 * In the background (another process group is the terminal's foreground)
 * a line would land in the middle of whatever runs in front; a terminal
 * that is not ours to ask (-1) is drawn on.
 */
static int in_front(int fd)
{
	pid_t fg = tcgetpgrp(fd);
	return fg <= 0 || fg == getpgrp();
}

static void draw(struct co_progress *p, uint64_t now)
{
	char line[256];
	if (now < p->t_visible || !in_front(p->fd))
		return;
	uint64_t dt = now - p->t_phase;
	double rate = dt >= RATE_AFTER_NS && p->done > p->done_phase ? (double)(p->done - p->done_phase) * 1e9 / (double)dt
								      : 0;
	line[0] = '\r';
	int k = co_progress_format(line + 1, sizeof(line) - 5, p->what, p->phase, p->done, p->total, rate);
	if (k > (int)sizeof(line) - 6)
		k = (int)sizeof(line) - 6;
	int w = width(p->fd);
	if (w > 1 && k > w - 1)
		k = w - 1; /* the cursor stays on this row */
	memcpy(line + 1 + k, "\033[K", 3);
	put(p->fd, line, (size_t)k + 4);
	p->t_drawn = now;
	p->shown = 1;
	onscreen = p;
}

void co_progress_set(struct co_progress *p, const char *phase, uint64_t done, uint64_t total)
{
	if (!p || p->fd < 0)
		return;
	uint64_t now = co_now_ns(CLOCK_MONOTONIC);
	int changed = strncmp(phase, p->phase, sizeof(p->phase) - 1) != 0;
	/* a new phase, or a counter that started again (a merge in steps): the rate starts again */
	if (changed || done < p->done) {
		snprintf(p->phase, sizeof(p->phase), "%s", phase);
		p->t_phase = now;
		p->done_phase = done;
	}
	p->done = done;
	p->total = total;
	if (changed || !p->shown || now - p->t_drawn >= REDRAW_NS)
		draw(p, now);
}

void co_progress_add(struct co_progress *p, uint64_t n)
{
	if (p && p->fd >= 0)
		co_progress_set(p, p->phase, p->done + n, p->total);
}

void co_progress_clear(struct co_progress *p)
{
	if (!p || p->fd < 0 || !p->shown)
		return;
	put(p->fd, "\r\033[K", 4);
	p->shown = 0;
	if (onscreen == p)
		onscreen = NULL;
}

void co_progress_end(struct co_progress *p)
{
	co_progress_clear(p);
	if (p)
		p->fd = -1;
}

void co_progress_hide(void)
{
	co_progress_clear(onscreen);
}

/*
 * Wait until fd has a message.  Until the line has appeared, not longer
 * than its delay: a phase that sends nothing more (the commit's fsync) is
 * shown all the same once the delay is over.
 */
static void wait_message(int fd, struct co_progress *p)
{
	for (;;) {
		uint64_t now = co_now_ns(CLOCK_MONOTONIC);
		struct pollfd w = { fd, POLLIN, 0 };
		int wait = p->fd < 0 || p->shown || !p->phase[0] ? -1
			   : now >= p->t_visible ? 0 : (int)((p->t_visible - now) / 1000000 + 1);
		if (poll(&w, 1, wait) != 0 || wait < 0)
			return; /* a message, or an error that recv will tell */
		co_progress_set(p, p->phase, p->done, p->total);
		if (p->shown || !in_front(p->fd))
			return;
	}
}

int co_recv_progress(int fd, struct co_msgbuf *mb, struct co_progress *p)
{
	for (;;) {
		wait_message(fd, p);
		int r = co_recv(fd, mb, NULL);
		if (r < 0 || mb->m.type != CO_M_PROGRESS) {
			co_progress_end(p);
			return r;
		}
		co_progress_set(p, mb->text, (uint64_t)mb->m.a, (uint64_t)mb->m.b);
	}
}

int co_progress_send(int fd, const char *phase, uint64_t done, uint64_t total)
{
	struct {
		struct co_msg m;
		char text[32];
	} b;
	int queued = 0;
	if (ioctl(fd, SIOCOUTQ, &queued) == 0 && queued > SEND_BACKLOG)
		return 1;
	memset(&b, 0, sizeof(b));
	b.m.type = CO_M_PROGRESS;
	b.m.a = (int64_t)done;
	b.m.b = (int64_t)total;
	b.m.textlen = (uint32_t)snprintf(b.text, sizeof(b.text), "%s", phase);
	if (b.m.textlen >= sizeof(b.text))
		b.m.textlen = sizeof(b.text) - 1;
	if (send(fd, &b, sizeof(b.m) + b.m.textlen, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
		return 0;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ENOBUFS ? 1 : -1;
}

uint64_t co_dir_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	uint64_t n = 0;
	for (struct dirent *e; d && (e = readdir(d));) {
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
			n += (uint64_t)st.st_size;
	}
	if (d)
		closedir(d);
	return n;
}

uint64_t co_proc_io(pid_t pid, const char *key)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	long v = co_read_small(path, buf, sizeof(buf)) > 0 ? co_status_field(buf, key) : -1;
	return v > 0 ? (uint64_t)v : 0;
}
