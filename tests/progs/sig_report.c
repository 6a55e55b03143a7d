/*
 * sig_report: the signal state a program starts with, which must be what
 * its caller handed on, with or without cohort: which of signals 1..64 are
 * ignored (the others must be default: nothing is caught after an exec),
 * which are blocked, which are pending.  It prints them once, then checks
 * at every step, across checkpoints and restarts, that nothing changed.
 * (32 and 33 are glibc's own: sigaction() refuses them.)
 */
#include "common.h"

#define STEPS 10

struct state {
	char ignored[512], blocked[512], pending[512];
};

static void add_sig(char *list, size_t len, int sig)
{
	size_t n = strlen(list);
	snprintf(list + n, len - n, " %d", sig);
}

static void look(struct state *st)
{
	sigset_t mask, pend;
	memset(st, 0, sizeof(*st));
	SYSCHK(sigprocmask(SIG_BLOCK, NULL, &mask));
	SYSCHK(sigpending(&pend));
	for (int s = 1; s <= 64; s++) {
		if (s == 32 || s == 33)
			continue;
		struct sigaction sa;
		SYSCHK(sigaction(s, NULL, &sa));
		CHECK(sa.sa_handler == SIG_IGN || sa.sa_handler == SIG_DFL, "signal %d: caught at start", s);
		if (sa.sa_handler == SIG_IGN)
			add_sig(st->ignored, sizeof(st->ignored), s);
		if (sigismember(&mask, s))
			add_sig(st->blocked, sizeof(st->blocked), s);
		if (sigismember(&pend, s))
			add_sig(st->pending, sizeof(st->pending), s);
	}
}

int main(void)
{
	t_init("sig_report");
	struct state first, now;
	look(&first);
	printf("ignored:%s\nblocked:%s\npending:%s\n", first.ignored, first.blocked, first.pending);
	fflush(stdout);
	uint64_t h = T_FNV_INIT;
	for (int s = 0; s < STEPS; s++) {
		t_sleep_ms(200);
		look(&now);
		CHECK(!strcmp(now.ignored, first.ignored), "step %d: ignored%s, was%s", s, now.ignored, first.ignored);
		CHECK(!strcmp(now.blocked, first.blocked), "step %d: blocked%s, was%s", s, now.blocked, first.blocked);
		CHECK(!strcmp(now.pending, first.pending), "step %d: pending%s, was%s", s, now.pending, first.pending);
		h = t_fnv(h, &now, sizeof(now));
		printf("step %d ok\n", s);
		fflush(stdout);
	}
	printf("RESULT %016llx\n", (unsigned long long)h);
	return 0;
}
