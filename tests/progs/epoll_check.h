/*
 * Helpers of the epoll test programs (epoll_items.c, epoll_family.c;
 * tests/cases/epoll.sh): what an epoll set holds, read back from the
 * kernel.  Each program includes it after common.h.
 *
 * An item is known by the file it watches and the number it was added
 * with ("tfd" in the set's fdinfo), which need not be that file's number
 * any more.  ep_items() checks every line of the set's fdinfo (number,
 * events, data, the watched inode) against what the program expects, and
 * with kcmp(KCMP_EPOLL_TFD) that the item watches the very file the
 * program holds on descriptor fd; ep_ready() that epoll_wait reports
 * exactly the expected items with exactly their events.
 */
#ifndef COHORT_TEST_EPOLL_CHECK_H
#define COHORT_TEST_EPOLL_CHECK_H

#include <linux/kcmp.h>
#include <sys/epoll.h>

#define EP_MAX 16

/* One expected item: its data (unique), the file it watches (this process's fd), its number, its events. */
struct ep_want {
	uint64_t data;
	int fd, tfd;
	uint32_t events;
};

struct ep_line {
	int tfd;
	unsigned events;
	unsigned long long data, ino;
};

/* The items of set ep as its fdinfo lists them: how many */
static int ep_lines(int ep, struct ep_line *out, int max)
{
	char path[64], line[512];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", ep);
	FILE *f = fopen(path, "re");
	CHECK(f, "open %s: %s", path, strerror(errno));
	int n = 0;
	while (fgets(line, sizeof(line), f)) {
		struct ep_line l;
		if (strncmp(line, "tfd:", 4))
			continue;
		CHECK(sscanf(line, "tfd: %d events: %x data: %llx pos:%*d ino:%llx", &l.tfd, &l.events, &l.data,
			     &l.ino) == 4, "epoll fdinfo line not understood: %s", line);
		CHECK(n < max, "epoll %d: more than %d items", ep, max);
		out[n++] = l;
	}
	fclose(f);
	return n;
}

/* Does item (tfd, the toff-th with that number) of set ep watch the file of fd?  kcmp: 0 the same */
static int ep_watches(int ep, int tfd, int fd)
{
	for (unsigned toff = 0; toff < EP_MAX; toff++) {
		struct kcmp_epoll_slot slot = { (unsigned)ep, (unsigned)tfd, toff };
		long r = syscall(SYS_kcmp, getpid(), getpid(), KCMP_EPOLL_TFD, fd, &slot);
		if (r == 0)
			return 1;
		if (r < 0) /* ENOENT: no more items with that number */
			return 0;
	}
	return 0;
}

/*
 * Set ep holds exactly the items of want (n), each watching the file of
 * its fd (mine: 0 for an item whose file another process holds, checked
 * there), with its number, events and data, and the file's inode.
 */
static void ep_items(const char *when, int ep, const struct ep_want *want, int n, const int *mine)
{
	struct ep_line l[EP_MAX];
	int got = ep_lines(ep, l, EP_MAX);
	CHECK(got == n, "%s: epoll %d holds %d items, expected %d", when, ep, got, n);
	for (int i = 0; i < n; i++) {
		const struct ep_want *w = NULL;
		for (int j = 0; j < n; j++)
			if (want[j].data == l[i].data)
				w = &want[j];
		CHECK(w, "%s: epoll %d has an item with data %#llx, which was never added", when, ep, l[i].data);
		CHECK(l[i].tfd == w->tfd && l[i].events == w->events, "%s: item %#llx: tfd %d events %#x, expected tfd "
		      "%d events %#x", when, l[i].data, l[i].tfd, l[i].events, w->tfd, w->events);
		if (mine && !mine[w - want])
			continue;
		struct stat st;
		SYSCHK(fstat(w->fd, &st));
		CHECK(l[i].ino == (unsigned long long)st.st_ino, "%s: item %#llx watches inode %llu, fd %d is inode %llu",
		      when, l[i].data, l[i].ino, w->fd, (unsigned long long)st.st_ino);
		CHECK(ep_watches(ep, w->tfd, w->fd), "%s: item %#llx (tfd %d) does not watch the file of fd %d", when,
		      l[i].data, w->tfd, w->fd);
	}
}

/* epoll_wait on ep (no wait) reports exactly these items (data), each with exactly its events */
static void ep_ready(const char *when, int ep, int n, const uint64_t *data, const uint32_t *events)
{
	struct epoll_event ev[EP_MAX];
	int got = epoll_wait(ep, ev, EP_MAX, 0);
	CHECK(got >= 0, "%s: epoll_wait: %s", when, strerror(errno));
	for (int i = 0; i < got; i++) {
		int k = 0;
		while (k < n && data[k] != ev[i].data.u64)
			k++;
		CHECK(k < n, "%s: item %#llx reported ready (events %#x), expected it not to be", when,
		      (unsigned long long)ev[i].data.u64, ev[i].events);
		CHECK(ev[i].events == events[k], "%s: item %#llx reported with events %#x, expected %#x", when,
		      (unsigned long long)ev[i].data.u64, ev[i].events, events[k]);
	}
	CHECK(got == n, "%s: %d items ready, expected %d", when, got, n);
}

#endif
