/*
 * thread_creds (run as root): one thread changes its effective uid and gid
 * with raw system calls, which change that thread alone (glibc's
 * setresuid() would change every thread).  A restore gives every thread
 * its process's ids, so a checkpoint must be refused while the threads
 * differ, and the program must run on unharmed.  When go.1 appears the
 * thread takes root's ids back; from then on checkpoints must succeed and
 * the ids must come back as they were.
 *
 * Output: "odd" (the thread's ids differ now), then "same" after go.1, and
 * step lines; each step checks both threads' ids.
 */
#include <grp.h>
#include "common.h"

#define NOBODY 65534
#define STEPS 40

static volatile int phase;	/* 0: the thread is nobody; 1: told to go back; 2: root again */
static volatile int checked;	/* steps the thread checked its own ids at */

static void ids(uid_t *ru, uid_t *eu, uid_t *su, gid_t *rg, gid_t *eg, gid_t *sg)
{
	/* raw: glibc's getres*id read the calling thread's ids anyway, but say so */
	syscall(SYS_getresuid, ru, eu, su);
	syscall(SYS_getresgid, rg, eg, sg);
}

static void expect(const char *who, uid_t eu_want, gid_t eg_want)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	ids(&ru, &eu, &su, &rg, &eg, &sg);
	CHECK(ru == 0 && su == 0 && rg == 0 && sg == 0, "%s: real/saved ids %u/%u %u/%u", who, ru, su, rg, sg);
	CHECK(eu == eu_want && eg == eg_want, "%s: effective uid %u gid %u, expected %u %u", who, eu, eg, eu_want,
	      eg_want);
}

static void *odd_thread(void *arg)
{
	(void)arg;
	/* gid first: without root's euid the thread could not change it */
	CHECK(syscall(SYS_setresgid, -1, NOBODY, -1) == 0, "setresgid: %s", strerror(errno));
	CHECK(syscall(SYS_setresuid, -1, NOBODY, -1) == 0, "setresuid: %s", strerror(errno));
	phase = 0;
	__atomic_store_n(&checked, 1, __ATOMIC_SEQ_CST);
	while (phase == 0) {
		expect("odd thread", NOBODY, NOBODY);
		t_sleep_ms(5);
	}
	/* the saved uid is still root's: the way back */
	CHECK(syscall(SYS_setresuid, -1, 0, -1) == 0, "setresuid back: %s", strerror(errno));
	CHECK(syscall(SYS_setresgid, -1, 0, -1) == 0, "setresgid back: %s", strerror(errno));
	phase = 2;
	for (;;) {
		expect("thread", 0, 0);
		__atomic_add_fetch(&checked, 1, __ATOMIC_SEQ_CST);
		t_sleep_ms(5);
	}
	return NULL;
}

int main(void)
{
	t_init("thread_creds");
	CHECK(getuid() == 0, "thread_creds must run as root (uid %u)", getuid());
	pthread_t t;
	CHECK(pthread_create(&t, NULL, odd_thread, NULL) == 0, "pthread_create");
	while (!__atomic_load_n(&checked, __ATOMIC_SEQ_CST))
		t_sleep_ms(1);
	expect("main thread", 0, 0);
	printf("odd\n");
	fflush(stdout);
	t_wait_go(1);
	phase = 1;
	while (phase != 2)
		t_sleep_ms(1);
	printf("same\n");
	fflush(stdout);
	for (int s = 0; s < STEPS; s++) {
		int before = __atomic_load_n(&checked, __ATOMIC_SEQ_CST);
		t_sleep_ms(50);
		expect("main thread", 0, 0);
		/* the thread must still be there and checking */
		while (__atomic_load_n(&checked, __ATOMIC_SEQ_CST) == before)
			t_sleep_ms(1);
		printf("step %d ok\n", s);
		fflush(stdout);
	}
	printf("RESULT thread_creds ok\n");
	return 0;
}
