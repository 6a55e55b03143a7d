/*
 * file_crash: files written by the program must come back as they were at
 * the checkpoint when the program is restarted after a crash.
 *
 * The program keeps two files in $COHORT_TEST_TMP open for writing the whole
 * time: a log it appends fixed-size records to with write() at its current
 * offset, and a small state file it rewrites in place with pwrite(); both
 * are fsynced at every step. Its in-memory counters (record count, running
 * hash) must match the files: at every step, before writing, it reads both
 * files back (through separate read-only descriptors) and checks size and
 * contents against memory, and checks the log descriptor's offset.
 *
 * The harness (t_file_crash in tests/run.sh) runs it under cohort, takes a
 * checkpoint WITHOUT --kill, lets it run on (so the files change), kills the
 * whole group with SIGKILL and restarts it: the files must have been put
 * back as at the checkpoint, or the checks fail. Progress lines go to
 * stdout, one per step; the restarted run's output must be exactly the
 * continuation of the native output from the checkpointed step.  Under
 * the test's gates (common.h) it waits before step GATE_STEP until the file
 * "checkpointed" exists (the checkpoint lands before it has run its steps
 * out, however slow the machine), and before its end, files still open,
 * until "end" exists (the crash finds it running).
 */
#include "common.h"

#define STEPS 36
#define STEP_MS 100
#define GATE_STEP 12
#define RECLEN 48

static char log_path[4096], state_path[4096];

static void make_record(char *buf, int i, uint64_t h)
{
	char tmp[RECLEN + 1];

	/* exactly RECLEN bytes, space-padded, newline-terminated */
	memset(buf, ' ', RECLEN);
	int n = snprintf(tmp, sizeof(tmp), "record %06d %016llx", i, (unsigned long long)h);
	CHECK(n > 0 && n < RECLEN, "record too long");
	memcpy(buf, tmp, (size_t)n);
	buf[RECLEN - 1] = '\n';
}

static void make_state(char *buf, size_t len, int count, uint64_t h)
{
	memset(buf, 0, len);
	snprintf(buf, len, "count=%06d hash=%016llx\n", count, (unsigned long long)h);
}

static uint64_t file_hash(const char *path, off_t *size)
{
	char buf[4096];
	uint64_t h = T_FNV_INIT;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
	*size = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		CHECK(n >= 0, "read %s: %s", path, strerror(errno));
		if (n == 0)
			break;
		h = t_fnv(h, buf, (size_t)n);
		*size += n;
	}
	close(fd);
	return h;
}

int main(void)
{
	struct t_ident id;
	char rec[RECLEN], state[64], got[64];
	uint64_t h = T_FNV_INIT;	/* running hash of the record contents */
	uint64_t fh = T_FNV_INIT;	/* FNV of the whole log file content */

	t_init("file_crash");
	t_ident_init(&id);
	t_fmt(log_path, sizeof(log_path), "%s/file_crash.log", t_tmpdir());
	t_fmt(state_path, sizeof(state_path), "%s/file_crash.state", t_tmpdir());
	int lfd = SYSCHK(open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	int sfd = SYSCHK(open(state_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
	make_state(state, sizeof(state), 0, h);
	t_write_all(sfd, state, sizeof(state), 0);
	SYSCHK(fsync(sfd));

	for (int i = 0; i < STEPS; i++) {
		if (i == GATE_STEP)
			t_gate("checkpointed");
		t_ident_check(&id);
		/* the files must be exactly what memory says */
		off_t lsize, ssize;
		uint64_t lh = file_hash(log_path, &lsize);
		CHECK(lsize == (off_t)i * RECLEN, "step %d: log has %lld bytes, expected %lld", i, (long long)lsize,
		      (long long)i * RECLEN);
		CHECK(lh == fh, "step %d: log contents differ from what was written", i);
		off_t pos = lseek(lfd, 0, SEEK_CUR);
		CHECK(pos == lsize, "step %d: log offset %lld, size %lld", i, (long long)pos, (long long)lsize);
		file_hash(state_path, &ssize);
		CHECK(ssize == (off_t)sizeof(state), "step %d: state file has %lld bytes", i, (long long)ssize);
		t_read_all(sfd, got, sizeof(got), 0);
		make_state(state, sizeof(state), i, h);
		CHECK(memcmp(got, state, sizeof(state)) == 0, "step %d: state file says '%.30s', memory '%.30s'", i,
		      got, state);

		/* one more step */
		h = t_fnv_u64(h, t_mix((uint64_t)i));
		make_record(rec, i, h);
		t_write_all(lfd, rec, RECLEN, -1);
		fh = t_fnv(fh, rec, RECLEN);
		make_state(state, sizeof(state), i + 1, h);
		t_write_all(sfd, state, sizeof(state), 0);
		SYSCHK(fsync(lfd));
		SYSCHK(fsync(sfd));
		printf("step %d ok: %d records, hash %016llx\n", i, i + 1, (unsigned long long)h);
		t_sleep_ms(STEP_MS);
	}
	t_end_gate_now();
	close(lfd);
	close(sfd);
	printf("RESULT %d records %016llx\n", STEPS, (unsigned long long)h);
	return 0;
}
