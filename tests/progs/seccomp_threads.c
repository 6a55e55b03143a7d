/*
 * seccomp_threads filter|deny|nopriv|strict: one thread runs under
 * seccomp, in filter mode (after no_new_privs: a filter allowing
 * everything, or with "deny" one that kills the process at clone3, which
 * the agent's manager thread is made with; with "nopriv" the filter
 * allowing everything, installed as root without no_new_privs, and then
 * CAP_SYS_ADMIN dropped from the thread's effective set, so that it could
 * not install it again) or in strict mode (read, write, exit and
 * sigreturn only: any other system call, as a signal handler would make,
 * kills the process).  The main thread prints "ready", waits for go.1,
 * lets the thread end and prints RESULT.  A checkpoint of strict, deny or
 * nopriv (or of filter, by a cohort without root) must be refused without
 * harming it.
 */
#include "common.h"
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

static int pfd[2];
static volatile int entered;

static void *strict_thread(void *arg)
{
	(void)arg;
	char x;
	CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT) == 0, "strict mode: %s", strerror(errno));
	entered = 1;
	/* from here on: read, write and exit only */
	syscall(SYS_read, pfd[0], &x, 1);
	syscall(SYS_exit, 0);
	return NULL;
}

static int deny, nopriv;

/* CAP_SYS_ADMIN out of the calling thread's effective set (raw: capabilities are per thread) */
static void drop_sys_admin(void)
{
	struct { uint32_t version; int pid; } h = { 0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0 };
	struct { uint32_t eff, prm, inh; } d[2];
	CHECK(syscall(SYS_capget, &h, d) == 0, "capget: %s", strerror(errno));
	d[0].eff &= ~(1u << 21 /* CAP_SYS_ADMIN */);
	CHECK(syscall(SYS_capset, &h, d) == 0, "capset: %s", strerror(errno));
}

static void *filter_thread(void *arg)
{
	(void)arg;
	char x;
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0 /* nr */),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_clone3, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	/* "filter": the last instruction alone */
	struct sock_fprog prog = { deny ? 4 : 1, deny ? f : &f[3] };
	CHECK(nopriv || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
	CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0, "filter mode: %s", strerror(errno));
	if (nopriv)
		drop_sys_admin();
	entered = 1;
	CHECK(read(pfd[0], &x, 1) == 1, "read");
	return NULL;
}

int main(int argc, char **argv)
{
	t_init("seccomp_threads");
	CHECK(argc == 2 && (!strcmp(argv[1], "filter") || !strcmp(argv[1], "deny") || !strcmp(argv[1], "nopriv") ||
			    !strcmp(argv[1], "strict")),
	      "usage: seccomp_threads filter|deny|nopriv|strict");
	deny = !strcmp(argv[1], "deny");
	nopriv = !strcmp(argv[1], "nopriv");
	CHECK(pipe(pfd) == 0, "pipe");
	pthread_t t;
	CHECK(pthread_create(&t, NULL, argv[1][0] == 's' ? strict_thread : filter_thread, NULL) == 0, "pthread_create");
	while (!entered)
		t_sleep_ms(1);
	printf("ready\n");
	fflush(stdout);
	t_wait_go(1);
	CHECK(write(pfd[1], "x", 1) == 1, "write");
	CHECK(pthread_join(t, NULL) == 0, "pthread_join");
	printf("RESULT seccomp_threads %s ok\n", argv[1]);
	return 0;
}
