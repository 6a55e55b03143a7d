/*
 * classify.c - one classifier of descriptors (see classify.h).  The order
 * of the tests matters only where a descriptor could match twice: a memfd
 * is a regular file without links, so it is tested before other unlinked
 * files.
 */
#include "classify.h"
#include "util.h"

#define S_FMT 0170000u
#define S_REG 0100000u
#define S_DIR 0040000u
#define S_CHR 0020000u
#define S_BLK 0060000u
#define S_FIFO 0010000u
#define S_SOCK 0140000u
#define S_LNK 0120000u

/* anon_inode:[NAME] objects cohort knows, by the name the kernel gives them */
static const struct {
	const char *link;
	uint32_t kind;
} anon[] = {
	{ "anon_inode:[eventfd]", CO_OBJ_EVENTFD },
	{ "anon_inode:[signalfd]", CO_OBJ_SIGNALFD },
	{ "anon_inode:[timerfd]", CO_OBJ_TIMERFD },
	{ "anon_inode:[eventpoll]", CO_OBJ_EPOLL },
	/* also with pidfs (6.9+), whose inodes have no file type in st_mode */
	{ "anon_inode:[pidfd]", CO_OBJ_PIDFD },
};

/* "net:[4026531840]": what /proc/PID/fd shows of a namespace (nsfs files have no path) */
static int ns_link(const char *link)
{
	const char *p = link;
	while ((*p >= 'a' && *p <= 'z') || *p == '_')
		p++;
	if (p == link || !co_startswith(p, ":["))
		return 0;
	for (p += 2; *p >= '0' && *p <= '9'; p++)
		;
	return p[0] == ']' && !p[1];
}

uint32_t co_fd_classify(const struct co_fdstat *s)
{
	uint32_t fmt = s->mode & S_FMT;
	const char *link = s->link ? s->link : "";
	if (fmt == S_FIFO)
		return CO_OBJ_PIPE;
	if (fmt == S_REG && s->nlink == 0 && co_startswith(link, "/memfd:"))
		return CO_OBJ_SHM;
	if (fmt == S_REG && ns_link(link))
		return CO_OBJ_NS;
	if (fmt == S_REG)
		return s->nlink ? CO_OBJ_FILE : CO_OBJ_DELETED;
	if (fmt == S_DIR)
		return CO_OBJ_DIR;
	if (fmt == S_CHR && link[0] == '/')
		return CO_OBJ_CHR;
	for (unsigned i = 0; i < sizeof(anon) / sizeof(anon[0]); i++)
		if (co_startswith(link, anon[i].link))
			return anon[i].kind;
	if (fmt == S_SOCK)
		return s->domain == 1 /* AF_UNIX */ ? CO_OBJ_USOCK : CO_OBJ_SOCKET;
	if (fmt == S_BLK)
		return CO_OBJ_BLK;
	if (fmt == S_LNK)
		return CO_OBJ_SYMLINK;
	return CO_OBJ_OTHER;
}

/* "digits", "self" or "thread-self": a /proc directory of a process or thread */
static const char *proc_dir_end(const char *p)
{
	if (co_startswith(p, "self/"))
		return p + 4;
	if (co_startswith(p, "thread-self/"))
		return p + 11;
	const char *q = p;
	while (*q >= '0' && *q <= '9')
		q++;
	return q > p && *q == '/' ? q : 0;
}

int co_proc_text(const char *link)
{
	if (!co_startswith(link, "/proc/"))
		return 0;
	const char *q = proc_dir_end(link + 6);
	if (q && co_startswith(q, "/task/"))
		q = proc_dir_end(q + 6);
	if (!q)
		return 0;
	/* read at an offset that is an address, or the same before and after a restart */
	static const char *const steady[] = { "/mem", "/pagemap", "/cmdline", "/environ", "/auxv" };
	for (unsigned i = 0; i < sizeof(steady) / sizeof(steady[0]); i++)
		if (co_strcmp(q, steady[i]) == 0)
			return 0;
	return 1;
}

int co_obj_group_wide(uint32_t kind)
{
	switch (kind) {
	case CO_OBJ_PIPE:
	case CO_OBJ_SHM:
	case CO_OBJ_EVENTFD:
	case CO_OBJ_SIGNALFD:
	case CO_OBJ_TIMERFD:
	case CO_OBJ_EPOLL:
	case CO_OBJ_USOCK:
		return 1;
	}
	return 0;
}

const char *co_obj_name(uint32_t kind)
{
	static const char *const names[] = {
		[CO_OBJ_NONE] = "?", [CO_OBJ_PIPE] = "pipe", [CO_OBJ_FILE] = "file",
		[CO_OBJ_SHM] = "shared memory", [CO_OBJ_EVENTFD] = "eventfd", [CO_OBJ_SIGNALFD] = "signalfd",
		[CO_OBJ_TIMERFD] = "timerfd", [CO_OBJ_EPOLL] = "epoll", [CO_OBJ_USOCK] = "unix socket",
		[CO_OBJ_DIR] = "directory", [CO_OBJ_DELETED] = "deleted file", [CO_OBJ_CHR] = "character device",
		[CO_OBJ_SOCKET] = "socket (not a Unix socket)", [CO_OBJ_BLK] = "block device",
		[CO_OBJ_OTHER] = "unknown", [CO_OBJ_PIDFD] = "pidfd", [CO_OBJ_SYMLINK] = "symbolic link",
		[CO_OBJ_NS] = "namespace",
	};
	return kind < sizeof(names) / sizeof(names[0]) && names[kind] ? names[kind] : "?";
}
