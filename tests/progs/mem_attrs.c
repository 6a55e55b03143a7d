/*
 * mem_attrs: what the kernel keeps about a mapping besides its pages.
 *   - madvise flags, each on a region of its own, as smaps VmFlags shows
 *     them: MADV_DONTFORK (dc), MADV_DONTDUMP (dd), MADV_HUGEPAGE (hg),
 *     MADV_NOHUGEPAGE (nh), MADV_WIPEONFORK (wf); and what they do: a
 *     forked child has no DONTFORK region and a zeroed WIPEONFORK one;
 *   - PR_SET_THP_DISABLE;
 *   - the device and inode /proc/self/maps shows for a mapped file: those
 *     of the file (stat);
 *   - mprotect on file mappings must work as before: a shared mapping of
 *     a file opened read-only cannot be made writable (EACCES), one of a
 *     file opened read-write but mapped read-only can, and so can a
 *     private mapping of a read-only file.
 */
#include "common.h"
#include "exact.h"
#include <sys/prctl.h>

#define STEPS 16
#define NPG 4

static const struct { int advice; const char *code; } advs[] = {
	{ MADV_DONTFORK, "dc" }, { MADV_DONTDUMP, "dd" }, { MADV_HUGEPAGE, "hg" },
	{ MADV_NOHUGEPAGE, "nh" }, { MADV_WIPEONFORK, "wf" },
};
#define NADV (int)(sizeof(advs) / sizeof(advs[0]))
static unsigned char *adv[NADV];
static unsigned char *fro, *frw, *fpriv;
static char path_ro[PATH_MAX], path_rw[PATH_MAX];

static unsigned char *map_file(const char *path, int oflags, int prot, int flags)
{
	int fd = SYSCHK(open(path, oflags));
	void *m = mmap(NULL, NPG * PG, prot, flags, fd, 0);
	CHECK(m != MAP_FAILED, "mmap %s: %s", path, strerror(errno));
	close(fd);
	return m;
}

static void check_file_map(const unsigned char *m, const char *path, const char *perms, int step)
{
	struct x_map xm;
	struct stat st;

	SYSCHK(stat(path, &st));
	CHECK(x_maps_find(m, &xm), "step %d: no mapping of %s", step, path);
	CHECK(strcmp(xm.path, path) == 0 && strcmp(xm.perms, perms) == 0,
	      "step %d: maps shows %s %s, expected %s %s", step, xm.perms, xm.path, perms, path);
	CHECK(xm.ino == st.st_ino && makedev(xm.major, xm.minor) == st.st_dev,
	      "step %d: maps shows %s as %x:%x inode %lu, the file is %x:%x inode %lu", step, path, xm.major, xm.minor,
	      xm.ino, major(st.st_dev), minor(st.st_dev), (unsigned long)st.st_ino);
	for (int p = 0; p < NPG; p++)
		CHECK(x_diff(m + p * PG, x_seed(7, (uint64_t)p, 0)) < 0, "step %d: page %d of %s differs", step, p, path);
}

/* mprotect to read-write must fail (want_ok 0, EACCES) or succeed (then back to read-only) as before */
static void check_mprotect(unsigned char *m, int want_ok, const char *what, int step)
{
	int r = mprotect(m, NPG * PG, PROT_READ | PROT_WRITE);
	if (!want_ok) {
		CHECK(r < 0 && errno == EACCES, "step %d: mprotect(PROT_WRITE) of %s: %s, expected EACCES", step, what,
		      r ? strerror(errno) : "succeeded");
		return;
	}
	CHECK(r == 0, "step %d: mprotect(PROT_WRITE) of %s: %s", step, what, strerror(errno));
	SYSCHK(mprotect(m, NPG * PG, PROT_READ));
}

static void check_fork(int step)
{
	pid_t pid = SYSCHK(fork());
	if (pid == 0) {
		struct x_map xm;
		if (x_maps_find(adv[0], &xm))
			_exit(10); /* the DONTFORK region came along */
		for (int i = 1; i < NADV; i++) {
			long z = x_nonzero(adv[i], NPG * PG);
			if ((advs[i].advice == MADV_WIPEONFORK) != (z < 0))
				_exit(11 + i);
		}
		_exit(0);
	}
	int st;
	SYSCHK(waitpid(pid, &st, 0));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "step %d: forked child found %s", step,
	      WEXITSTATUS(st) == 10 ? "the MADV_DONTFORK region" : "a region wiped or not wiped wrongly");
}

static void check_all(int step)
{
	for (int i = 0; i < NADV; i++) {
		for (int p = 0; p < NPG; p++)
			CHECK(x_diff(adv[i] + p * PG, x_seed((uint64_t)i, (uint64_t)p, 1)) < 0,
			      "step %d: page %d of the %s region differs", step, p, advs[i].code);
		CHECK(x_vmflag(adv[i], advs[i].code), "step %d: the region advised %s lost its VmFlags %s", step,
		      advs[i].code, advs[i].code);
		for (int k = 0; k < NADV; k++)
			CHECK(k == i || !x_vmflag(adv[i], advs[k].code), "step %d: the region advised %s has VmFlags %s too",
			      step, advs[i].code, advs[k].code);
	}
	CHECK(prctl(PR_GET_THP_DISABLE, 0, 0, 0, 0) == 1, "step %d: PR_GET_THP_DISABLE is not 1", step);
	check_file_map(fro, path_ro, "r--s", step);
	check_file_map(frw, path_rw, "r--s", step);
	check_file_map(fpriv, path_ro, "r--p", step);
	check_mprotect(fro, 0, "a shared mapping of a file opened O_RDONLY", step);
	check_mprotect(frw, 1, "a shared read-only mapping of a file opened O_RDWR", step);
	check_mprotect(fpriv, 1, "a private mapping of a file opened O_RDONLY", step);
	check_fork(step);
}

int main(void)
{
	char dir[PATH_MAX];
	unsigned char buf[PG];

	t_init("mem_attrs");
	t_mkworkdir(dir, sizeof(dir), "mem_attrs");
	SYSCHK(prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0));
	for (int i = 0; i < NADV; i++) {
		/* apart from each other: no two regions merge */
		adv[i] = mmap(NULL, (NPG + 1) * PG, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(adv[i] != MAP_FAILED, "mmap: %s", strerror(errno));
		SYSCHK(mprotect(adv[i], NPG * PG, PROT_READ | PROT_WRITE));
		for (int p = 0; p < NPG; p++)
			x_fill(adv[i] + p * PG, x_seed((uint64_t)i, (uint64_t)p, 1));
		SYSCHK(madvise(adv[i], NPG * PG, advs[i].advice));
	}
	t_fmt(path_ro, sizeof(path_ro), "%s/ro", dir);
	t_fmt(path_rw, sizeof(path_rw), "%s/rw", dir);
	for (int k = 0; k < 2; k++) {
		int fd = SYSCHK(open(k ? path_rw : path_ro, O_CREAT | O_TRUNC | O_RDWR, 0600));
		for (int p = 0; p < NPG; p++) {
			x_fill(buf, x_seed(7, (uint64_t)p, 0));
			t_write_all(fd, buf, PG, (off_t)(p * PG));
		}
		close(fd);
	}
	fro = map_file(path_ro, O_RDONLY, PROT_READ, MAP_SHARED);
	frw = map_file(path_rw, O_RDWR, PROT_READ, MAP_SHARED);
	fpriv = map_file(path_ro, O_RDONLY, PROT_READ, MAP_PRIVATE);
	for (int s = 0; s < STEPS; s++) {
		check_all(s);
		x_step(s, 100);
	}
	check_all(STEPS);
	printf("RESULT mem_attrs ok\n");
	return 0;
}
