/*
 * file_replaced: a file the program reads through a descriptor opened
 * read-only and maps MAP_PRIVATE (page 0 written: copied on write; page 1
 * the file's own), which a restart opens and maps again by its path
 * (tests/cases/exact_mem.sh: the test puts another file in its place
 * between checkpoint and restart, and the restart must refuse it).  Every
 * step reads the next record through the descriptor (its offset goes on)
 * and checks it, both pages of the mapping byte for byte, and that the
 * descriptor's file and the mapping's (/proc/self/map_files is not for
 * everyone: maps' inode) are one file, of the size and mtime it had at the
 * start (fstat: the file the checkpoint saw, or one put back as it was).
 * With "shared", a child holds the descriptor too (one open file
 * description for the group, src/kinds/file.c) and checks the same until
 * the parent ends.  The file: $COHORT_TEST_TMP/file_replaced.data.
 */
#include "common.h"
#include <limits.h>
#include <sys/mman.h>
#include <sys/wait.h>

#define STEPS 8
#define PG 4096
#define REC 64

static char path[PATH_MAX];
static unsigned char want[2 * PG];
static unsigned char *map;
static struct stat st0;

static unsigned char byte_at(size_t i) { return (unsigned char)('a' + t_mix(i / 8) % 26); }

/* the file: two pages of known bytes, written, closed, opened again read-only */
static int make_file(void)
{
	for (size_t i = 0; i < sizeof(want); i++)
		want[i] = byte_at(i);
	int w = SYSCHK(open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	t_write_all(w, want, sizeof(want), 0);
	SYSCHK(close(w));
	return SYSCHK(open(path, O_RDONLY));
}

/* the inode /proc/self/maps names for the mapping at map */
static unsigned long maps_ino(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[PATH_MAX + 128];
	unsigned long ino = 0;
	CHECK(f, "open maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end, i;
		if (sscanf(line, "%lx-%lx %*s %*s %*s %lu", &start, &end, &i) == 3 && start <= (unsigned long)map &&
		    (unsigned long)map < end)
			ino = i;
	}
	fclose(f);
	return ino;
}

/*
 * fstat(fd) into st, between two reads of maps that agree (a checkpoint and
 * restart between them, which opened and mapped the file again, read again):
 * the mapping's inode
 */
static unsigned long fstat_with_map(int fd, struct stat *st)
{
	for (;;) {
		unsigned long before = maps_ino();
		SYSCHK(fstat(fd, st));
		if (maps_ino() == before)
			return before;
	}
}

/* descriptor and mapping: the same file, as it was at the start, and the bytes expected */
static void check(int fd, const char *who)
{
	struct stat st;
	unsigned long ino = fstat_with_map(fd, &st);
	CHECK(st.st_size == st0.st_size, "%s: %s is %lld bytes, was %lld", who, path, (long long)st.st_size,
	      (long long)st0.st_size);
	CHECK(st.st_mtim.tv_sec == st0.st_mtim.tv_sec && st.st_mtim.tv_nsec == st0.st_mtim.tv_nsec,
	      "%s: %s: mtime %lld.%09ld, was %lld.%09ld", who, path, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	      (long long)st0.st_mtim.tv_sec, st0.st_mtim.tv_nsec);
	CHECK(ino == (unsigned long)st.st_ino, "%s: the mapping's inode %lu is not the descriptor's %lu", who, ino,
	      (unsigned long)st.st_ino);
	for (size_t i = 0; i < sizeof(want); i++) {
		unsigned char w = i < REC ? 'X' : want[i];
		CHECK(map[i] == w, "%s: byte %zu of the mapping (page %zu) is '%c', expected '%c'", who, i, i / PG, map[i],
		      w);
	}
}

/* the child of "shared": holds fd (the parent's open file description) until the parent closes the pipe */
static void child(int fd, int rd)
{
	char c;
	while (read(rd, &c, 1) < 0 && errno == EINTR)
		;
	check(fd, "child");
	_exit(0);
}

int main(int argc, char **argv)
{
	int shared = argc > 1 && strcmp(argv[1], "shared") == 0;
	uint64_t h = T_FNV_INIT;
	int p[2] = { -1, -1 };
	pid_t kid = -1;
	char rec[REC];

	t_init("file_replaced");
	t_fmt(path, sizeof(path), "%s/file_replaced.data", t_tmpdir());
	int fd = make_file();
	map = mmap(NULL, sizeof(want), PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(map != MAP_FAILED, "mmap %s: %s", path, strerror(errno));
	memset(map, 'X', REC); /* page 0 the program's now, page 1 still the file's */
	SYSCHK(fstat(fd, &st0));
	if (shared) {
		SYSCHK(pipe(p));
		kid = SYSCHK(fork());
		if (kid == 0) {
			close(p[1]);
			child(fd, p[0]);
		}
		close(p[0]);
	}
	for (int s = 0; s < STEPS; s++) {
		check(fd, "parent");
		t_read_all(fd, rec, REC, -1);
		CHECK(memcmp(rec, want + (size_t)s * REC, REC) == 0, "record %d read through fd %d is not the file's", s, fd);
		off_t at = lseek(fd, 0, SEEK_CUR);
		CHECK(at == (off_t)(s + 1) * REC, "fd %d at offset %lld, expected %d", fd, (long long)at, (s + 1) * REC);
		h = t_fnv(h, rec, REC);
		printf("step %d ok\n", s);
		t_pace_ms(150);
	}
	if (shared) {
		int status;
		close(p[1]);
		SYSCHK(waitpid(kid, &status, 0));
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child ended with status %#x", status);
	}
	check(fd, "parent");
	printf("RESULT file_replaced %s %016llx\n", shared ? "shared" : "alone", (unsigned long long)h);
	return 0;
}
