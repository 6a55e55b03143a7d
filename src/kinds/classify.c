/*
 * classify.c - one classifier of descriptors (see classify.h).  The order
 * of the tests matters only where a descriptor could match twice: a memfd
 * is a regular file without links, so it is tested before other unlinked
 * files.  Also the search for the other name of a file deleted under the
 * name its descriptor shows (co_find_link).
 */
#include <fcntl.h>
#include <sys/stat.h>
#include "classify.h"
#include "sys.h"
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
	{ "anon_inode:inotify", CO_OBJ_INOTIFY },
	{ "anon_inode:[fanotify]", CO_OBJ_FANOTIFY },
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

/*
 * A pseudo-terminal by its device number: the master is what /dev/ptmx
 * (5:2) opens, every devpts's slaves are majors 136-143 (/dev/tty 5:0 and
 * the legacy BSD ptys stay character devices reopened by path).
 */
static uint32_t pty_kind(uint64_t rdev)
{
	unsigned major = (unsigned)(((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfffULL));
	unsigned minor = (unsigned)((rdev & 0xff) | ((rdev >> 12) & ~0xffULL));
	if (major == 5 && minor == 2)
		return CO_OBJ_PTMX;
	return major >= 136 && major <= 143 ? CO_OBJ_PTS : CO_OBJ_CHR;
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
	/* a directory removed while open: the kernel shows it so, with no links left */
	if (fmt == S_DIR)
		return s->nlink == 0 && co_endswith(link, " (deleted)") ? CO_OBJ_DELETED : CO_OBJ_DIR;
	if (fmt == S_CHR && link[0] == '/')
		return pty_kind(s->rdev);
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

int co_path_kernel_made(const char *path)
{
	return co_startswith(path, "/proc/") || co_startswith(path, "/sys/");
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
	case CO_OBJ_DELETED:
	case CO_OBJ_INOTIFY:
	case CO_OBJ_PTMX:
	case CO_OBJ_PTS:
	case CO_OBJ_FANOTIFY:
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
		[CO_OBJ_NS] = "namespace", [CO_OBJ_INOTIFY] = "inotify", [CO_OBJ_PTMX] = "pty master",
		[CO_OBJ_PTS] = "pty slave", [CO_OBJ_FANOTIFY] = "fanotify",
	};
	return kind < sizeof(names) / sizeof(names[0]) && names[kind] ? names[kind] : "?";
}

/* ---- the other name of a file deleted under one name ---- */

#define LINK_ENTRIES 20000	/* directory entries looked at, in all */
#define LINK_DEPTH 6		/* levels searched below each directory */
#define DT_DIR_ 4
#define DT_UNKNOWN_ 0

struct link_search {
	uint64_t dev, ino;
	long left;		/* entries still to look at */
	size_t len;		/* of path: "" is the root */
	char path[CO_PATH];	/* the directory being searched; the name, once found */
};

struct dirent64_ {
	uint64_t ino;
	int64_t off;
	unsigned short reclen;
	unsigned char type;
	char name[];
};

static long stat_at(int dfd, const char *name, struct stat *st)
{
	return co_sys4(SYS_newfstatat, dfd, (long)name, (long)st, AT_SYMLINK_NOFOLLOW);
}

/* path + "/" + name; 0 when it would not fit */
static int append(struct link_search *s, const char *name)
{
	size_t n = co_strlen(name);
	if (s->len + n + 2 > sizeof(s->path))
		return 0;
	s->path[s->len] = '/';
	co_memcpy(s->path + s->len + 1, name, n + 1);
	s->len += n + 1;
	return 1;
}

static void cut(struct link_search *s, size_t len)
{
	s->len = len;
	s->path[len] = 0;
}

static int search_dir(struct link_search *s, int depth, uint64_t skip);

/*
 * One pass over the directory dfd (s->path): pass 0 looks for the inode
 * among its names (d_ino, confirmed by a stat), pass 1 goes into its
 * subdirectories.  1: found (s->path is the name).
 */
static int scan(struct link_search *s, int dfd, int depth, uint64_t skip, int pass)
{
	char buf[2048];
	long got;
	if (co_lseek(dfd, 0, 0 /* SEEK_SET */) < 0)
		return 0;
	while ((got = co_getdents(dfd, buf, sizeof(buf))) > 0)
		for (long off = 0; off < got;) {
			struct dirent64_ *e = (void *)(buf + off);
			struct stat st;
			off += e->reclen;
			const char *n = e->name;
			if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])))
				continue;
			if (pass == 0) {
				if (--s->left < 0)
					return 0;
				if (e->ino == s->ino && stat_at(dfd, n, &st) == 0 && (uint64_t)st.st_ino == s->ino &&
				    (uint64_t)st.st_dev == s->dev && S_ISREG(st.st_mode) && append(s, n))
					return 1;
				continue;
			}
			if (depth <= 0 || s->left <= 0)
				return 0;
			if (e->ino == skip || (e->type != DT_DIR_ && e->type != DT_UNKNOWN_))
				continue;
			if (e->type == DT_UNKNOWN_ && (stat_at(dfd, n, &st) < 0 || !S_ISDIR(st.st_mode)))
				continue;
			size_t was = s->len;
			if (append(s, n) && search_dir(s, depth - 1, 0))
				return 1;
			cut(s, was);
		}
	return 0;
}

/* s->path and the directories up to depth levels under it, on the inode's filesystem, but skip */
static int search_dir(struct link_search *s, int depth, uint64_t skip)
{
	int dfd = (int)co_open(s->len ? s->path : "/", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (dfd < 0)
		return 0;
	struct stat st;
	int found = 0;
	if (co_fstat(dfd, &st) == 0 && (uint64_t)st.st_dev == s->dev)
		for (int pass = 0; pass < 2 && !found; pass++)
			found = scan(s, dfd, depth, skip, pass);
	co_close(dfd);
	return found;
}

int co_find_link(const char *shown, uint64_t dev, uint64_t ino, char *out, size_t n)
{
	static struct link_search s;
	struct stat st;
	/* a live name that happens to end so */
	if (stat_at(-100, shown, &st) == 0 && (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino) {
		co_strlcpy(out, shown, n);
		return 0;
	}
	if (shown[0] != '/' || !co_endswith(shown, " (deleted)"))
		return -1;
	s.dev = dev;
	s.ino = ino;
	s.left = LINK_ENTRIES;
	co_strlcpy(s.path, shown, sizeof(s.path));
	cut(&s, co_strlen(s.path) - 10);
	uint64_t skip = 0;
	/* from the directory it was deleted from, each directory above it in turn */
	for (;;) {
		size_t len = s.len;
		while (len > 0 && s.path[len] != '/')
			len--;
		cut(&s, len);
		if (search_dir(&s, LINK_DEPTH, skip)) {
			if (s.len + 1 > n)
				return -1;
			co_strlcpy(out, s.path, n);
			return 0;
		}
		if (s.left <= 0 || s.len == 0)
			return -1;
		/* its parent need not search it again */
		skip = stat_at(-100, s.path, &st) == 0 ? (uint64_t)st.st_ino : 0;
	}
}
