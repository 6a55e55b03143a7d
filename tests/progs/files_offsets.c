/*
 * files_offsets: regular files opened in different modes with offsets that
 * advance every step; a dup()'d descriptor (and a dup2() to a high fd number)
 * must keep sharing the offset with the original; an independent second open
 * of the same file keeps its own offset; an O_APPEND log; a read-only input
 * file consumed sequentially; an offset parked beyond EOF. Every step checks
 * offsets, fd flags, the identity (dev/ino) of every fd and file contents.
 * Files live in $COHORT_TEST_TMP/files_offsets.<pid>/.
 */
#include "common.h"
#include <limits.h>

#define STEPS 10
#define REC 64
#define HIGHFD 100

enum { F_DATA, F_DUP, F_HIGH, F_DATA2, F_LOG, F_IN, F_SPARSE, NFD };

static int fds[NFD];
static struct stat st0[NFD];
static int fl0[NFD], fdfl0[NFD];
static char dir[PATH_MAX], p_data[PATH_MAX], p_log[PATH_MAX], p_in[PATH_MAX], p_sparse[PATH_MAX];

static void rec(char *buf, const char *kind, int s)
{
	memset(buf, 0, REC);
	snprintf(buf, REC, "%s record %d %016llx", kind, s, (unsigned long long)t_mix((uint64_t)s * 7 + kind[0]));
	buf[REC - 1] = '\n';
}

static off_t pos(int fd)
{
	off_t o = lseek(fd, 0, SEEK_CUR);

	CHECK(o >= 0, "lseek(%d): %s", fd, strerror(errno));
	return o;
}

static void check_fds(void)
{
	for (int i = 0; i < NFD; i++) {
		struct stat st;

		CHECK(fstat(fds[i], &st) == 0, "fstat fd %d: %s", fds[i], strerror(errno));
		CHECK(st.st_dev == st0[i].st_dev && st.st_ino == st0[i].st_ino, "fd %d now refers to another file",
		      fds[i]);
		CHECK(fcntl(fds[i], F_GETFL) == fl0[i], "fd %d: file status flags %#x != %#x", fds[i],
		      fcntl(fds[i], F_GETFL), fl0[i]);
		CHECK(fcntl(fds[i], F_GETFD) == fdfl0[i], "fd %d: fd flags %#x != %#x", fds[i],
		      fcntl(fds[i], F_GETFD), fdfl0[i]);
	}
}

int main(void)
{
	struct t_ident id;
	char buf[REC], want[REC];
	uint64_t h = T_FNV_INIT;
	off_t data_pos = 0, data2_pos = 0, in_pos = 0, log_size = 0;
	const off_t sparse_pos = 5 * 1024 * 1024 + 123;

	t_init("files_offsets");
	t_ident_init(&id);
	t_mkworkdir(dir, sizeof(dir), "files_offsets");
	t_fmt(p_data, sizeof(p_data), "%s/data", dir);
	t_fmt(p_log, sizeof(p_log), "%s/log", dir);
	t_fmt(p_in, sizeof(p_in), "%s/input", dir);
	t_fmt(p_sparse, sizeof(p_sparse), "%s/sparse", dir);

	/* input file: one record per step, plus the data the read-only fd consumes */
	int fd = SYSCHK(open(p_in, O_CREAT | O_TRUNC | O_WRONLY, 0600));
	for (int s = 0; s < 2 * STEPS; s++) {
		rec(buf, "input", s);
		t_write_all(fd, buf, REC, -1);
	}
	close(fd);

	fds[F_DATA] = SYSCHK(open(p_data, O_CREAT | O_TRUNC | O_RDWR, 0600));
	fds[F_DUP] = SYSCHK(dup(fds[F_DATA]));
	fds[F_HIGH] = SYSCHK(dup2(fds[F_DATA], HIGHFD));
	fds[F_DATA2] = SYSCHK(open(p_data, O_RDONLY | O_CLOEXEC));
	fds[F_LOG] = SYSCHK(open(p_log, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0600));
	fds[F_IN] = SYSCHK(open(p_in, O_RDONLY));
	fds[F_SPARSE] = SYSCHK(open(p_sparse, O_CREAT | O_TRUNC | O_RDWR, 0600));
	SYSCHK(lseek(fds[F_SPARSE], sparse_pos, SEEK_SET));	/* beyond EOF, nothing written */
	for (int i = 0; i < NFD; i++) {
		SYSCHK(fstat(fds[i], &st0[i]));
		fl0[i] = SYSCHK(fcntl(fds[i], F_GETFL));
		fdfl0[i] = SYSCHK(fcntl(fds[i], F_GETFD));
	}

	for (int s = 0; s < STEPS; s++) {
		t_ident_check(&id);
		check_fds();
		/* shared offsets */
		CHECK(pos(fds[F_DATA]) == data_pos && pos(fds[F_DUP]) == data_pos && pos(fds[F_HIGH]) == data_pos,
		      "step %d: data offsets %lld/%lld/%lld, expected %lld", s, (long long)pos(fds[F_DATA]),
		      (long long)pos(fds[F_DUP]), (long long)pos(fds[F_HIGH]), (long long)data_pos);
		CHECK(pos(fds[F_DATA2]) == data2_pos, "step %d: independent offset %lld, expected %lld", s,
		      (long long)pos(fds[F_DATA2]), (long long)data2_pos);
		CHECK(pos(fds[F_IN]) == in_pos, "step %d: input offset %lld, expected %lld", s,
		      (long long)pos(fds[F_IN]), (long long)in_pos);
		CHECK(pos(fds[F_SPARSE]) == sparse_pos, "step %d: offset beyond EOF lost: %lld", s,
		      (long long)pos(fds[F_SPARSE]));
		struct stat st;
		SYSCHK(fstat(fds[F_LOG], &st));
		CHECK(st.st_size == log_size, "step %d: log size %lld, expected %lld", s, (long long)st.st_size,
		      (long long)log_size);
		SYSCHK(fstat(fds[F_SPARSE], &st));
		CHECK(st.st_size == 0, "sparse file size %lld", (long long)st.st_size);

		/* write via original, dup and high dup: all advance the shared offset */
		rec(buf, "orig", s);
		t_write_all(fds[F_DATA], buf, REC, -1);
		rec(buf, "dup", s);
		t_write_all(fds[F_DUP], buf, REC, -1);
		rec(buf, "high", s);
		t_write_all(fds[F_HIGH], buf, REC, -1);
		data_pos += 3 * REC;
		CHECK(pos(fds[F_DATA]) == data_pos, "offset not shared");
		/* the independent reader reads what was written one step earlier */
		if (s > 0) {
			t_read_all(fds[F_DATA2], buf, REC, -1);
			rec(want, s % 3 == 1 ? "orig" : s % 3 == 2 ? "dup" : "high", (s - 1) / 3);
			CHECK(memcmp(buf, want, REC) == 0, "step %d: independent reader got wrong record", s);
			data2_pos += REC;
		}
		/* sequential reads of the input */
		t_read_all(fds[F_IN], buf, REC, -1);
		rec(want, "input", s);
		CHECK(memcmp(buf, want, REC) == 0, "step %d: input record mismatch", s);
		in_pos += REC;
		h = t_fnv(h, buf, REC);
		/* append: move the offset away first; O_APPEND must still append */
		SYSCHK(lseek(fds[F_LOG], 0, SEEK_SET));
		rec(buf, "log", s);
		t_write_all(fds[F_LOG], buf, REC, -1);
		log_size += REC;
		CHECK(pos(fds[F_LOG]) == log_size, "append offset %lld", (long long)pos(fds[F_LOG]));

		printf("step %d ok data=%lld in=%lld log=%lld\n", s, (long long)data_pos, (long long)in_pos,
		       (long long)log_size);
		t_sleep_ms(300);
	}

	/* final verification of file contents via fresh descriptors */
	check_fds();
	fd = SYSCHK(open(p_data, O_RDONLY));
	for (int s = 0; s < STEPS; s++) {
		const char *kinds[3] = { "orig", "dup", "high" };
		for (int k = 0; k < 3; k++) {
			t_read_all(fd, buf, REC, -1);
			rec(want, kinds[k], s);
			CHECK(memcmp(buf, want, REC) == 0, "data file: record %d/%s mismatch", s, kinds[k]);
			h = t_fnv(h, buf, REC);
		}
	}
	CHECK(read(fd, buf, 1) == 0, "data file too long");
	close(fd);
	fd = SYSCHK(open(p_log, O_RDONLY));
	for (int s = 0; s < STEPS; s++) {
		t_read_all(fd, buf, REC, -1);
		rec(want, "log", s);
		CHECK(memcmp(buf, want, REC) == 0, "log file: record %d mismatch", s);
		h = t_fnv(h, buf, REC);
	}
	CHECK(read(fd, buf, 1) == 0, "log file too long");
	close(fd);
	/* a write at the parked offset creates the hole */
	t_write_all(fds[F_SPARSE], "x", 1, -1);
	struct stat st;
	SYSCHK(fstat(fds[F_SPARSE], &st));
	CHECK(st.st_size == sparse_pos + 1, "sparse size %lld", (long long)st.st_size);

	for (int i = 0; i < NFD; i++)
		close(fds[i]);
	unlink(p_data);
	unlink(p_log);
	unlink(p_in);
	unlink(p_sparse);
	rmdir(dir);
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
