/*
 * unix_name.c - a Unix socket's name given back at a restart, in init.
 *
 * Abstract names are bound as they were, in init's network namespace,
 * which is the host's: the group has none of its own (coord/setup.c
 * makes user, pid, mount, time and IPC namespaces only), so the names
 * are where the program had them.
 *
 * A path is bound under exactly the name it had (getsockname and the
 * peers' getpeername show it), in the directory the path names, without
 * following a symbolic link another user planted: the directory is
 * opened component by component with co_open_nofollow's rules (through a
 * link only when root or the user owns it), and bind(2) runs in a child
 * process with a mount namespace of its own in which that very directory
 * is bind-mounted over the path's directory, so that whatever the path
 * resolves through, the socket file is made in it.  (Binding through
 * /proc/self/fd/N/name, or at a temporary name renamed after, would give
 * the socket that name instead.)  A socket file left at the path by the
 * checkpointed program (nobody listens: connect is refused) is removed
 * first; anything else there refuses the restart.  Then the file gets
 * its mode and owner back, through the directory.
 *
 * A path another socket of the group has too (CO_USF_SHARED: bound again
 * after the first's file was removed): whatever is at the path is moved
 * aside (renamed) for the bind, the new socket file is linked to a name
 * of our own in the same directory, and what was there is put back over
 * it; the socket has the name, and what connects to it at the restart
 * connects through the other link (co_unix_address), removed once
 * everything is made.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include "kinds/unix_int.h"
#include "util.h"

const char *co_unix_name_text(const char *name, uint32_t len, char *out, size_t n)
{
	size_t o = 0;
	if (!len)
		return snprintf(out, n, "(unnamed)"), out;
	for (uint32_t i = 0; i < len && o + 1 < n; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!c && i && i + 1 == len && name[0])
			break; /* a path bound with its terminating NUL */
		out[o++] = i == 0 && !c ? '@' : c < 32 || c > 126 ? '?' : (char)c;
	}
	out[o] = 0;
	return out;
}

/* A socket file at base in dfd that nobody listens on any more (left by the checkpointed program). */
static int stale(int dfd, const char *base, uint32_t type)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/%s", dfd, base) >= sizeof(a.sun_path))
		return 0;
	int s = socket(AF_UNIX, (int)type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int r = s >= 0 && connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 && errno == ECONNREFUSED;
	if (s >= 0)
		close(s);
	return r;
}

/*
 * The directory of a path: through links only as co_open_nofollow allows;
 * "/" itself.  A descriptor, or -errno.
 */
static int open_dir(const char *dir)
{
	return strcmp(dir, "/") ? (int)co_open_nofollow(dir, O_PATH | O_DIRECTORY, 0)
				: open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/*
 * bind(s, a) in a child with a mount namespace of its own (private: nothing
 * it mounts is seen elsewhere), in which the directory dir, opened there
 * again the same way and checked to be the one we opened (was: its stat),
 * is bind-mounted over dir.  (A bind mount's source must be of the
 * caller's namespace: hence the second open.)  0 or an errno.
 */
static int bind_in(int s, const struct stat *was, const char *dir, const struct sockaddr_un *a, socklen_t len)
{
	int p[2], e = EIO;
	if (pipe2(p, O_CLOEXEC) < 0)
		return errno;
	pid_t c = fork();
	if (c == 0) {
		char src[64];
		struct stat st;
		int r = 0, d = -1;
		if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
			r = errno;
		else if ((d = open_dir(dir)) < 0 || fstat(d, &st) < 0)
			r = d < 0 ? -d : errno;
		else if (st.st_dev != was->st_dev || st.st_ino != was->st_ino)
			r = ELOOP; /* the path leads elsewhere than a moment ago */
		snprintf(src, sizeof(src), "/proc/self/fd/%d", d);
		if (!r && (mount(src, dir, NULL, MS_BIND | MS_REC, NULL) < 0 || bind(s, (const struct sockaddr *)a, len) < 0))
			r = errno;
		if (write(p[1], &r, sizeof(r)) < 0)
			_exit(1);
		_exit(0);
	}
	close(p[1]);
	if (c < 0 || read(p[0], &e, sizeof(e)) != sizeof(e))
		e = c < 0 ? errno : EIO;
	close(p[0]);
	if (c > 0)
		waitpid(c, NULL, 0);
	return e;
}

int co_unix_bind(struct co_krestore *x, int s, const struct co_usock *o, int *dfd, char *base, size_t basen)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + o->namelen);
	char t[160], dir[sizeof(a.sun_path) + 1];
	memcpy(a.sun_path, o->name, o->namelen);
	co_unix_name_text(o->name, o->namelen, t, sizeof(t));
	*dfd = -1;
	if (!o->name[0]) /* abstract */
		return bind(s, (struct sockaddr *)&a, len) < 0 ? co_kerr(x, "binding a Unix socket to %s again: %s", t, strerror(errno)) : 0;
	/* the directory and the last component, from the path as it was bound */
	size_t plen = strnlen(o->name, o->namelen), cut = plen;
	while (cut > 0 && o->name[cut - 1] != '/')
		cut--;
	if (o->name[0] != '/' || cut == plen || plen - cut >= basen)
		return co_kerr(x, "cannot bind a Unix socket to %s again: not an absolute path to a file", t);
	memcpy(dir, o->name, cut > 1 ? cut - 1 : 1);
	dir[cut > 1 ? cut - 1 : 1] = 0;
	memcpy(base, o->name + cut, plen - cut);
	base[plen - cut] = 0;
	int d = open_dir(dir);
	struct stat st, dst;
	if (d < 0 || fstat(d, &dst) < 0)
		return co_kerr(x, "cannot bind a Unix socket to %s again: its directory: %s", t, strerror(d < 0 ? -d : errno));
	int e = 0, aside = 0;
	char kept[32], moved[32];
	snprintf(kept, sizeof(kept), ".cohort-%llx-k", (unsigned long long)o->id);
	snprintf(moved, sizeof(moved), ".cohort-%llx-m", (unsigned long long)o->id);
	if (fstatat(d, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && (o->flags & CO_USF_SHARED))
		e = renameat(d, base, d, moved) == 0 ? (aside = 1, 0) : errno;
	else if (fstatat(d, base, &st, AT_SYMLINK_NOFOLLOW) == 0)
		e = S_ISSOCK(st.st_mode) && stale(d, base, o->type) && unlinkat(d, base, 0) == 0 ? 0 : EADDRINUSE;
	if (!e)
		e = bind_in(s, &dst, dir, &a, len);
	if (!e && (o->flags & CO_USF_SHARED)) { /* its own link aside, and the path as it was */
		e = linkat(d, base, d, kept, 0) == 0 ? 0 : errno;
		if (aside ? renameat(d, moved, d, base) < 0 : unlinkat(d, base, 0) < 0)
			e = e ? e : errno;
		snprintf(base, basen, "%s", kept);
		*dfd = e ? -1 : d;
		if (!e)
			return 0;
	}
	if (e) {
		if (aside) /* what was at the path, back (a no-op once it is) */
			renameat(d, moved, d, base);
		close(d);
		return co_kerr(x, "cannot bind a Unix socket to %s again: %s", t, strerror(e));
	}
	/* its mode and owner, as they were (the owner needs the privilege to give it: kept as made otherwise) */
	if ((o->flags & CO_USF_UNLINKED) == 0 && (fchmodat(d, base, o->mode, 0) < 0 ||
	    (fchownat(d, base, o->uid, o->gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != EPERM && errno != EINVAL))) {
		e = errno;
		close(d);
		return co_kerr(x, "cannot give the Unix socket file %s its mode and owner again: %s", t, strerror(e));
	}
	if (o->flags & CO_USF_UNLINKED)
		*dfd = d;
	else
		close(d);
	return 0;
}
