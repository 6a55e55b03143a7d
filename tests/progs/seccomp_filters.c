/*
 * seccomp_filters [all] [gate]: threads under two seccomp filters, each
 * checked by itself at every step (filters are per thread).
 *
 *   filter A (oldest): getcpu -> ERRNO(EPERM), sched_setattr -> kill the
 *                      process (a migration's stop must not boost a
 *                      filtered thread: src/common/boost.h), installed
 *                      with TSYNC after no_new_privs, over the main thread
 *                      and "early", a thread made before any filter;
 *   filter B (newest): getcpu -> ERRNO(EACCES) (the newest filter's
 *                      answer wins among equal actions: the order counts),
 *                      sysinfo -> TRAP (SIGSYS with si_syscall), socket
 *                      of AF_INET6 -> ERRNO(EAFNOSUPPORT), clone with
 *                      CLONE_NEWUSER -> ERRNO(EPERM) (the agent's own
 *                      socket and clone must be seen to pass);
 *                      installed by the main thread alone, or with
 *                      "all" with TSYNC over every thread;
 *   "late1", "late2": made after both, they inherit the main thread's.
 *
 * The late threads wait in epoll_wait, which must never fail with EINTR.
 * Each thread checks at every step: getcpu fails with EACCES (EPERM
 * where only A applies: "early" without "all"), sysinfo traps (works
 * where only A applies), socket(AF_INET6) fails with EAFNOSUPPORT (not
 * tried where only A applies), getppid works, NoNewPrivs 1, Seccomp 2 and its
 * Seccomp_filters count in /proc/thread-self/status, PR_GET_SECCOMP 2.
 * Prints "step N ok" lines and RESULT, the same as a straight run.
 * "gate": after step 10 the main thread waits at the test's gate "mid"
 * (common.h) while the other threads go on checking.
 */
#include "common.h"
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/sysinfo.h>

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1 /* si_code of a SECCOMP_RET_TRAP */
#endif

#define STEPS 50
#define NT 4 /* main, early, late1, late2 */

static int all;
static int checked[NT];
static __thread volatile int traps;

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig, (void)uc;
	if (si->si_code == SYS_SECCOMP && si->si_syscall == SYS_sysinfo)
		traps++;
}

#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
#define ALLOW BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)

static void install(struct sock_filter *f, unsigned short n, unsigned flags)
{
	struct sock_fprog prog = { n, f };
	CHECK(syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog) == 0, "seccomp: %s", strerror(errno));
}

static void filter_a(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		LOAD_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getcpu, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_sched_setattr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		ALLOW,
	};
	install(f, sizeof(f) / sizeof(f[0]), SECCOMP_FILTER_FLAG_TSYNC);
}

/* B looks at arguments too: the agent's socket (AF_UNIX) and clone (no CLONE_NEWUSER) must pass */
static void filter_b(void)
{
	struct sock_filter f[] = {
		LOAD_NR,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getcpu, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EACCES),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_sysinfo, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AF_INET6, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAFNOSUPPORT),
		ALLOW,
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone, 0, 4),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, CLONE_NEWUSER, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		ALLOW,
		ALLOW,
	};
	install(f, sizeof(f) / sizeof(f[0]), all ? SECCOMP_FILTER_FLAG_TSYNC : 0);
}

static long status_field(const char *key)
{
	char buf[4096], *p;
	int fd = open("/proc/thread-self/status", O_RDONLY);
	CHECK(fd >= 0, "open /proc/thread-self/status: %s", strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	CHECK(n > 0, "read status");
	buf[n] = 0;
	p = strstr(buf, key);
	CHECK(p, "no %s line", key);
	return strtol(p + strlen(key), NULL, 10);
}

/* Thread i (both filters unless a_only) checks what its filters do. */
static void check_self(int i, int a_only)
{
	const char *who = i == 0 ? "main" : i == 1 ? "early" : "late";
	errno = 0;
	/* (getcpu: a call the agent never makes, which a filter of the program's may forbid) */
	long r = syscall(SYS_getcpu, NULL, NULL, NULL);
	int want = a_only ? EPERM : EACCES;
	CHECK(r == -1 && errno == want, "%s: getcpu gave %ld (%s), not %s", who, r, strerror(errno),
	      strerror(want));
	int t0 = traps;
	struct sysinfo si;
	r = syscall(SYS_sysinfo, &si);
	if (a_only)
		CHECK(r == 0 && traps == t0, "%s: sysinfo trapped or failed (%ld)", who, r);
	else
		CHECK(traps == t0 + 1, "%s: sysinfo did not trap", who);
	CHECK(syscall(SYS_getppid) > 0, "%s: getppid failed", who);
	if (!a_only) {
		errno = 0;
		r = syscall(SYS_socket, AF_INET6, SOCK_DGRAM, 0);
		CHECK(r == -1 && errno == EAFNOSUPPORT, "%s: socket(AF_INET6) gave %ld (%s)", who, r, strerror(errno));
	}
	CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, "%s: no_new_privs lost", who);
	CHECK(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2, "%s: not in seccomp filter mode", who);
	CHECK(status_field("NoNewPrivs:") == 1, "%s: NoNewPrivs not 1", who);
	CHECK(status_field("Seccomp:") == 2, "%s: Seccomp not 2", who);
	long nf = status_field("Seccomp_filters:");
	CHECK(nf == (a_only ? 1 : 2), "%s: Seccomp_filters is %ld", who, nf);
	__atomic_add_fetch(&checked[i], 1, __ATOMIC_SEQ_CST);
}

static volatile int filtered;

static void *early(void *arg)
{
	(void)arg;
	while (!filtered)
		t_sleep_ms(1);
	for (;;) {
		check_self(1, !all);
		t_sleep_ms(20);
	}
	return NULL;
}

/* its waits are epoll_wait's, which a stop of the thread (ptrace) leaves with EINTR: never seen */
static void *late(void *arg)
{
	struct epoll_event ev;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0, "epoll_create1: %s", strerror(errno));
	for (;;) {
		check_self((int)(long)arg, 0);
		int r = epoll_wait(ep, &ev, 1, 20);
		CHECK(r == 0, "epoll_wait gave %d (%s)", r, strerror(errno));
	}
	return NULL;
}

int main(int argc, char **argv)
{
	t_init("seccomp_filters");
	int gate = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "all"))
			all = 1;
		else if (!strcmp(argv[i], "gate"))
			gate = 1;
	}
	struct sigaction sa = { 0 };
	sa.sa_sigaction = on_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	CHECK(sigaction(SIGSYS, &sa, NULL) == 0, "sigaction");
	pthread_t t[3];
	CHECK(pthread_create(&t[0], NULL, early, NULL) == 0, "pthread_create");
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "PR_SET_NO_NEW_PRIVS");
	filter_a();
	filter_b();
	filtered = 1;
	for (long i = 2; i < NT; i++)
		CHECK(pthread_create(&t[i - 1], NULL, late, (void *)i) == 0, "pthread_create");
	for (int s = 0; s < STEPS; s++) {
		int seen[NT];
		for (int i = 0; i < NT; i++)
			seen[i] = __atomic_load_n(&checked[i], __ATOMIC_SEQ_CST);
		t_sleep_ms(40);
		check_self(0, 0);
		for (int i = 1; i < NT; i++)
			while (__atomic_load_n(&checked[i], __ATOMIC_SEQ_CST) == seen[i])
				t_sleep_ms(1);
		printf("step %d ok\n", s);
		fflush(stdout);
		if (gate && s == 10)
			t_gate("mid");
	}
	printf("RESULT seccomp_filters %s ok\n", all ? "all" : "mixed");
	return 0;
}
