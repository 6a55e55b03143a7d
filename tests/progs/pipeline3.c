/*
 * pipeline3 (application group): three processes connected by pipes,
 * A (the parent) -> B (child 1) -> C (child 2), passing fixed-size records
 * (sequence number, payload, checksum). A writes ahead of B and B ahead of C
 * (the readers sleep between batches), so both pipes hold data in flight
 * practically all the time, and A and B often block in write() on a full
 * pipe. B verifies sequence continuity and checksums, transforms the payload
 * and forwards it; C verifies again and every REPORT_EVERY records sends a
 * report (count, running hash) to A over a third pipe. A checks every report
 * against the value it computes itself, prints it, and at the end waits for
 * both children with waitpid and checks their exit statuses (10 and 11).
 */
#include "common.h"
#include <sys/ioctl.h>
#include <sys/wait.h>

#define NREC 5400
#define REPORT_EVERY 450
#define A_BATCH 50	/* records per write by A */
#define B_BATCH 40	/* records per read by B */
#define C_BATCH 30	/* records per read by C */
#define B_SLEEP_MS 15
#define C_SLEEP_MS 20

struct rec {
	uint64_t seq;
	uint64_t payload;
	uint64_t stage;
	uint64_t check;
	uint64_t pad[4];	/* 64 bytes: a pipe holds 1024 of them */
};

struct report {
	uint64_t count;	/* records C has verified so far */
	uint64_t hash;	/* FNV over their (transformed) payloads */
	uint64_t last_seq;
	uint64_t final;
};

static pid_t parent_pid;

static uint64_t payload_a(uint64_t seq) { return t_mix(seq * 7 + 3); }
static uint64_t payload_b(uint64_t p) { return t_mix(p ^ 0x5bd1e995ull); }

static uint64_t rec_check(const struct rec *r)
{
	uint64_t h = T_FNV_INIT;

	h = t_fnv_u64(h, r->seq);
	h = t_fnv_u64(h, r->payload);
	h = t_fnv_u64(h, r->stage);
	for (int i = 0; i < 4; i++)
		h = t_fnv_u64(h, r->pad[i]);
	return h;
}

static void rec_make(struct rec *r, uint64_t seq, uint64_t payload, uint64_t stage)
{
	memset(r, 0, sizeof(*r));
	r->seq = seq;
	r->payload = payload;
	r->stage = stage;
	for (int i = 0; i < 4; i++)
		r->pad[i] = t_mix(seq + (uint64_t)i + stage * 100);
	r->check = rec_check(r);
}

/* read up to len bytes, retrying on partial reads; returns bytes read (< len only at EOF) */
static size_t read_some_full(int fd, void *buf, size_t len, const char *who)
{
	char *p = buf;
	size_t got = 0;

	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);

		if (n < 0 && errno == EINTR)
			FAIL("%s: read interrupted (EINTR)", who);
		CHECK(n >= 0, "%s: read: %s", who, strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got;
}

static void write_full(int fd, const void *buf, size_t len, const char *who)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			FAIL("%s: write interrupted (EINTR)", who);
		CHECK(n > 0, "%s: write: %s", who, n < 0 ? strerror(errno) : "0");
		p += n;
		len -= (size_t)n;
	}
}

static void verify(const struct rec *r, uint64_t want_seq, uint64_t stage, const char *who)
{
	CHECK(r->seq == want_seq, "%s: sequence gap: got %llu, expected %llu", who,
	      (unsigned long long)r->seq, (unsigned long long)want_seq);
	CHECK(r->stage == stage, "%s: record %llu has stage %llu, expected %llu", who,
	      (unsigned long long)r->seq, (unsigned long long)r->stage, (unsigned long long)stage);
	CHECK(r->check == rec_check(r), "%s: record %llu: bad checksum", who, (unsigned long long)r->seq);
	uint64_t want = stage == 0 ? payload_a(want_seq) : payload_b(payload_a(want_seq));
	CHECK(r->payload == want, "%s: record %llu: wrong payload", who, (unsigned long long)r->seq);
}

/* B: read from A, verify, transform, forward to C */
static void stage_b(int in, int out)
{
	struct t_ident id;
	struct rec buf[B_BATCH];
	uint64_t next = 0;

	t_ident_init(&id);
	for (;;) {
		size_t got = read_some_full(in, buf, sizeof(buf), "B");

		CHECK(got % sizeof(struct rec) == 0, "B: EOF in the middle of a record (%zu bytes)", got);
		size_t n = got / sizeof(struct rec);
		for (size_t i = 0; i < n; i++) {
			verify(&buf[i], next, 0, "B");
			rec_make(&buf[i], next, payload_b(buf[i].payload), 1);
			next++;
		}
		if (n)
			write_full(out, buf, n * sizeof(struct rec), "B");
		if (got < sizeof(buf))
			break;
		t_ident_check(&id);
		CHECK(getppid() == parent_pid, "B: getppid() %d, expected %d", (int)getppid(), (int)parent_pid);
		t_sleep_ms(B_SLEEP_MS);
	}
	CHECK(next == NREC, "B: got %llu records, expected %d", (unsigned long long)next, NREC);
	_exit(10);
}

/* C: read from B, verify, report to A */
static void stage_c(int in, int rep)
{
	struct t_ident id;
	struct rec buf[C_BATCH];
	uint64_t next = 0, h = T_FNV_INIT;

	t_ident_init(&id);
	for (;;) {
		size_t got = read_some_full(in, buf, sizeof(buf), "C");

		CHECK(got % sizeof(struct rec) == 0, "C: EOF in the middle of a record (%zu bytes)", got);
		size_t n = got / sizeof(struct rec);
		for (size_t i = 0; i < n; i++) {
			verify(&buf[i], next, 1, "C");
			h = t_fnv_u64(h, buf[i].payload);
			next++;
			if (next % REPORT_EVERY == 0) {
				struct report r = { next, h, buf[i].seq, 0 };
				write_full(rep, &r, sizeof(r), "C report");
			}
		}
		if (got < sizeof(buf))
			break;
		t_ident_check(&id);
		CHECK(getppid() == parent_pid, "C: getppid() %d, expected %d", (int)getppid(), (int)parent_pid);
		t_sleep_ms(C_SLEEP_MS);
	}
	CHECK(next == NREC, "C: got %llu records, expected %d", (unsigned long long)next, NREC);
	struct report r = { next, h, next - 1, 1 };
	write_full(rep, &r, sizeof(r), "C report");
	_exit(11);
}

/* expected hash after count records */
static uint64_t expect_hash(uint64_t count)
{
	uint64_t h = T_FNV_INIT;

	for (uint64_t s = 0; s < count; s++)
		h = t_fnv_u64(h, payload_b(payload_a(s)));
	return h;
}

static int nreports;
static uint64_t last_count;

static void handle_report(const struct report *r)
{
	CHECK(r->count > last_count || (r->final && r->count == last_count), "report count %llu after %llu", (unsigned long long)r->count,
	      (unsigned long long)last_count);
	CHECK(r->final || r->count % REPORT_EVERY == 0, "report count %llu", (unsigned long long)r->count);
	CHECK(r->last_seq == r->count - 1, "report: last seq %llu, count %llu", (unsigned long long)r->last_seq,
	      (unsigned long long)r->count);
	CHECK(r->hash == expect_hash(r->count), "report %d: wrong hash", nreports);
	last_count = r->count;
	nreports++;
	printf("report %d: %s%llu records verified by C, hash %016llx\n", nreports, r->final ? "final, " : "",
	       (unsigned long long)r->count, (unsigned long long)r->hash);
}

/* read every report available now (rep is non-blocking) */
static int poll_reports(int rep)
{
	struct report r;
	int final = 0;

	for (;;) {
		ssize_t n = read(rep, &r, sizeof(r));

		if (n < 0 && errno == EAGAIN)
			return final;
		if (n < 0 && errno == EINTR)
			FAIL("A: read interrupted (EINTR)");
		CHECK(n >= 0, "A: read report: %s", strerror(errno));
		if (n == 0)
			return -1;
		CHECK(n == (ssize_t)sizeof(r), "A: short report (%zd bytes)", n);
		handle_report(&r);
		final |= (int)r.final;
	}
}

int main(void)
{
	struct t_ident id;
	int ab[2], bc[2], ca[2];
	pid_t b, c;

	t_init("pipeline3");
	t_ident_init(&id);
	parent_pid = getpid();
	signal(SIGPIPE, SIG_IGN);
	SYSCHK(pipe(ab));
	SYSCHK(pipe(bc));
	SYSCHK(pipe(ca));
	fflush(stdout);
	b = SYSCHK(fork());
	if (b == 0) {
		close(ab[1]);
		close(bc[0]);
		close(ca[0]);
		close(ca[1]);
		stage_b(ab[0], bc[1]);
	}
	c = SYSCHK(fork());
	if (c == 0) {
		close(ab[0]);
		close(ab[1]);
		close(bc[1]);
		close(ca[0]);
		stage_c(bc[0], ca[1]);
	}
	close(ab[0]);
	close(bc[0]);
	close(bc[1]);
	close(ca[1]);
	SYSCHK(fcntl(ca[0], F_SETFL, O_NONBLOCK));

	struct rec buf[A_BATCH];
	uint64_t seq = 0;
	int final = 0;
	while (seq < NREC) {
		int n = 0;
		for (; n < A_BATCH && seq < NREC; n++, seq++)
			rec_make(&buf[n], seq, payload_a(seq), 0);
		write_full(ab[1], buf, (size_t)n * sizeof(struct rec), "A");
		t_ident_check(&id);
		int r = poll_reports(ca[0]);
		CHECK(r >= 0, "A: C closed the report pipe early");
		final |= r;
		/* keep the pipe A->B well filled but not always full */
		int queued = 0;
		SYSCHK(ioctl(ab[1], FIONREAD, &queued));
		if (queued > 40 * 1024)
			t_sleep_ms(10);
	}
	close(ab[1]);
	SYSCHK(fcntl(ca[0], F_SETFL, 0));
	while (!final) {
		struct report r;
		size_t got = read_some_full(ca[0], &r, sizeof(r), "A");
		CHECK(got == sizeof(r), "A: report pipe closed before the final report (%zu bytes)", got);
		handle_report(&r);
		final = (int)r.final;
	}
	char extra;
	CHECK(read_some_full(ca[0], &extra, 1, "A") == 0, "A: data after the final report");
	CHECK(nreports == NREC / REPORT_EVERY + 1, "A: %d reports", nreports);

	int st;
	pid_t w = waitpid(b, &st, 0);
	if (w < 0 && errno == EINTR)
		FAIL("waitpid interrupted (EINTR)");
	CHECK(w == b, "waitpid B: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 10, "B: status %#x", st);
	w = waitpid(c, &st, 0);
	CHECK(w == c, "waitpid C: %s", strerror(errno));
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 11, "C: status %#x", st);
	t_ident_check(&id);
	printf("stages exited 10 11\n");
	printf("RESULT %d records %016llx\n", NREC, (unsigned long long)expect_hash(NREC));
	return 0;
}
