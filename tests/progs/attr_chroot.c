/*
 * attr_chroot: a process whose root directory is not the group's
 * (chroot(2) into a directory of its own) that cohort cannot restore: the
 * checkpoint must be refused in one line naming the process and its root,
 * and the program must run on in its root.  MODE (argv[1]):
 *   deleted  its root directory is removed after the chroot (it could not
 *            be entered again)
 *   nocaps   it drops CAP_SYS_ADMIN after the chroot (its agent could not
 *            leave the root for the group's)
 *   nosetns  a seccomp filter of its own denies setns (EPERM), which its
 *            agent would need to leave the root
 * (tests/progs/chroot_root.c: those that come back.)
 *
 * It makes a directory with a file "marker" in it (its bytes known),
 * chroots there (root only: as another user it prints the same lines
 * without chrooting, and the test is skipped), prints "ready", waits for
 * go.1 (common.h, looked up through a descriptor of the test directory
 * kept from before), then at every step checks that "/" is that
 * directory (device and inode), that /marker holds its bytes and getcwd
 * says "/" (unless removed), and that the path of the test directory is
 * gone.  Output: "step N ok" lines and a RESULT line; any difference is a
 * FAIL on stderr and exit 1.
 */
#include "common.h"

#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>

#define STEPS 6

static const char marker[] = "the root of attr_chroot\n";

/* go.s in the test directory, through dirfd: its path is not in our root */
static void wait_go_at(int dirfd, int s)
{
	char name[32];
	t_fmt(name, sizeof(name), "go.%d", s);
	while (faccessat(dirfd, name, F_OK, 0) != 0)
		t_sleep_ms(10);
}

/* CAP_SYS_ADMIN out of our effective and permitted sets */
static void drop_admin(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	SYSCHK(syscall(SYS_capget, &h, d));
	d[0].effective &= ~(1U << CAP_SYS_ADMIN);
	d[0].permitted &= ~(1U << CAP_SYS_ADMIN);
	SYSCHK(syscall(SYS_capset, &h, d));
}

/* A filter of our own: setns fails with EPERM, everything else is allowed */
static void deny_setns(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setns, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	SYSCHK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
	SYSCHK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog));
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int deleted = !strcmp(mode, "deleted");
	CHECK(deleted || !strcmp(mode, "nocaps") || !strcmp(mode, "nosetns"), "usage: attr_chroot deleted|nocaps|nosetns");
	t_init("attr_chroot");
	char dir[4096], path[4200], buf[128];
	t_mkworkdir(dir, sizeof(dir), "attr_chroot");
	t_fmt(path, sizeof(path), "%s/marker", dir);
	int fd = SYSCHK(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
	t_write_all(fd, marker, sizeof(marker) - 1, -1);
	close(fd);
	struct stat want, st;
	SYSCHK(stat(dir, &want));
	int tdir = SYSCHK(open(t_tmpdir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	int root = geteuid() == 0;
	if (root) {
		SYSCHK(chroot(dir));
		SYSCHK(chdir("/"));
		if (deleted) {
			SYSCHK(unlink("/marker"));
			t_fmt(path, sizeof(path), "attr_chroot.%d", (int)getpid());
			SYSCHK(unlinkat(tdir, path, AT_REMOVEDIR));
		} else if (!strcmp(mode, "nocaps")) {
			drop_admin();
		} else {
			deny_setns();
		}
	}
	printf("ready\n");
	wait_go_at(tdir, 1);
	for (int s = 0; s < STEPS; s++) {
		if (root) {
			SYSCHK(stat("/", &st));
			CHECK(st.st_dev == want.st_dev && st.st_ino == want.st_ino,
			      "step %d: / is %lx:%lu, not the directory chrooted to (%lx:%lu)", s,
			      (unsigned long)st.st_dev, (unsigned long)st.st_ino, (unsigned long)want.st_dev,
			      (unsigned long)want.st_ino);
			CHECK(access(dir, F_OK) != 0, "step %d: %s is still reachable", s, dir);
			if (deleted)
				goto next;
			fd = open("/marker", O_RDONLY | O_CLOEXEC);
			CHECK(fd >= 0, "step %d: open /marker: %s", s, strerror(errno));
			ssize_t n = read(fd, buf, sizeof(buf));
			close(fd);
			CHECK(n == (ssize_t)sizeof(marker) - 1 && !memcmp(buf, marker, sizeof(marker) - 1),
			      "step %d: /marker holds %zd other bytes", s, n);
			CHECK(getcwd(buf, sizeof(buf)) && !strcmp(buf, "/"), "step %d: cwd %s", s, buf);
		}
	next:
		printf("step %d ok\n", s);
		t_sleep_ms(20);
	}
	printf("RESULT attr_chroot ok\n");
	return 0;
}
