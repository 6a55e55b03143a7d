/*
 * caps_keep (run as root): capabilities a program set for itself must come
 * back exactly: no more (a root program that dropped some must not get
 * them back from a restorer that runs as root), no fewer (a process that
 * kept some across its change of uid).
 *
 * The parent (uid 0) drops CAP_NET_RAW and CAP_SYS_ADMIN from its
 * effective and permitted sets, CAP_MKNOD from its bounding set, makes
 * CAP_NET_BIND_SERVICE inheritable and ambient and sets SECBIT_NOROOT.
 * A child becomes uid 65534 keeping CAP_NET_BIND_SERVICE and CAP_KILL
 * (PR_SET_KEEPCAPS), ambient CAP_NET_BIND_SERVICE.  Each process then
 * starts a second thread; every thread checks its sets, bounding set,
 * ambient set and securebits at every step, and that a raw socket is
 * refused (CAP_NET_RAW gone).
 */
#include "common.h"
#include <linux/capability.h>
#include <linux/securebits.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define STEPS 40
#define BIT(c) (1ULL << (c))

struct sets { uint64_t eff, prm, inh; };

static struct sets want;
static uint64_t want_amb;
static int want_secbits;
static int checked;

static struct sets get_sets(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	CHECK(syscall(SYS_capget, &h, d) == 0, "capget: %s", strerror(errno));
	struct sets s = { 0, 0, 0 };
	for (int w = 0; w < 2; w++) {
		s.eff |= (uint64_t)d[w].effective << 32 * w;
		s.prm |= (uint64_t)d[w].permitted << 32 * w;
		s.inh |= (uint64_t)d[w].inheritable << 32 * w;
	}
	return s;
}

static void set_sets(struct sets s)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	for (int w = 0; w < 2; w++)
		d[w] = (struct __user_cap_data_struct){ (uint32_t)(s.eff >> 32 * w), (uint32_t)(s.prm >> 32 * w),
							(uint32_t)(s.inh >> 32 * w) };
	CHECK(syscall(SYS_capset, &h, d) == 0, "capset: %s", strerror(errno));
}

static void check(const char *who)
{
	struct sets s = get_sets();
	CHECK(s.eff == want.eff && s.prm == want.prm && s.inh == want.inh,
	      "%s: effective %llx permitted %llx inheritable %llx, expected %llx %llx %llx", who,
	      (unsigned long long)s.eff, (unsigned long long)s.prm, (unsigned long long)s.inh,
	      (unsigned long long)want.eff, (unsigned long long)want.prm, (unsigned long long)want.inh);
	CHECK(prctl(PR_CAPBSET_READ, CAP_MKNOD, 0, 0, 0) == 0, "%s: CAP_MKNOD back in the bounding set", who);
	CHECK(prctl(PR_CAPBSET_READ, CAP_NET_RAW, 0, 0, 0) == 1, "%s: CAP_NET_RAW not in the bounding set", who);
	for (int c = 0; c <= CAP_LAST_CAP; c++)
		CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, c, 0, 0) == !!(want_amb & BIT(c)),
		      "%s: ambient capability %d %s", who, c, want_amb & BIT(c) ? "lost" : "gained");
	CHECK(prctl(PR_GET_SECUREBITS, 0, 0, 0, 0) == want_secbits, "%s: securebits %#x, expected %#x", who,
	      prctl(PR_GET_SECUREBITS, 0, 0, 0, 0), want_secbits);
	int s_raw = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
	CHECK(s_raw < 0 && errno == EPERM, "%s: a raw socket was allowed", who);
}

static void *second_thread(void *arg)
{
	(void)arg;
	for (;;) {
		check("second thread");
		__atomic_add_fetch(&checked, 1, __ATOMIC_SEQ_CST);
		t_sleep_ms(10);
	}
	return NULL;
}

static void steps(const char *who, int print)
{
	pthread_t t;
	CHECK(pthread_create(&t, NULL, second_thread, NULL) == 0, "pthread_create");
	for (int s = 0; s < STEPS; s++) {
		int seen = __atomic_load_n(&checked, __ATOMIC_SEQ_CST);
		t_sleep_ms(50);
		check(who);
		while (__atomic_load_n(&checked, __ATOMIC_SEQ_CST) == seen)
			t_sleep_ms(1);
		if (print) {
			printf("step %d ok\n", s);
			fflush(stdout);
		}
	}
}

int main(void)
{
	t_init("caps_keep");
	CHECK(getuid() == 0, "caps_keep must run as root");
	struct sets all = get_sets();
	CHECK(prctl(PR_CAPBSET_DROP, CAP_MKNOD, 0, 0, 0) == 0, "PR_CAPBSET_DROP: %s", strerror(errno));
	want.eff = want.prm = all.prm & ~(BIT(CAP_NET_RAW) | BIT(CAP_SYS_ADMIN) | BIT(CAP_MKNOD));
	want.inh = BIT(CAP_NET_BIND_SERVICE);
	set_sets(want);
	CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) == 0, "ambient raise: %s",
	      strerror(errno));
	want_amb = BIT(CAP_NET_BIND_SERVICE);
	pid_t c = fork();
	CHECK(c >= 0, "fork");
	if (c == 0) {
		t_init("caps_keep child");
		CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) == 0, "PR_SET_KEEPCAPS");
		CHECK(setresgid(65534, 65534, 65534) == 0 && setresuid(65534, 65534, 65534) == 0, "setresuid: %s",
		      strerror(errno));
		CHECK(prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) == 0, "PR_SET_KEEPCAPS 0");
		want.eff = want.prm = BIT(CAP_NET_BIND_SERVICE) | BIT(CAP_KILL);
		want.inh = BIT(CAP_NET_BIND_SERVICE);
		set_sets(want);
		CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) == 0,
		      "child ambient raise: %s", strerror(errno));
		want_secbits = 0;
		steps("child", 0);
		_exit(0);
	}
	CHECK(prctl(PR_SET_SECUREBITS, SECBIT_NOROOT, 0, 0, 0) == 0, "PR_SET_SECUREBITS: %s", strerror(errno));
	want_secbits = SECBIT_NOROOT;
	steps("parent", 1);
	int st;
	CHECK(waitpid(c, &st, 0) == c && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child ended with %#x", st);
	printf("RESULT caps_keep ok\n");
	return 0;
}
