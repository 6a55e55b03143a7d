/*
 * unix_syslog - what syslog(3) does, to a path of the test's own
 * ($UNIX_SYSLOG_PATH, a datagram listener outside the group,
 * tests/progs/unix_outside.py): one datagram socket connected to it at
 * the start (openlog with LOG_NDELAY), one message every step.  With
 * $UNIX_OUTSIDE_STREAM also a stream connection to a server outside the
 * group, "ping N" answered by "pong N" every step.  The socket must stay
 * connected to the path across checkpoints and restarts (getpeername).
 */
#include "common.h"
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define STEPS 12

static int connect_to(const char *path, int type)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	CHECK(strlen(path) < sizeof(a.sun_path), "path too long");
	strcpy(a.sun_path, path);
	int s = SYSCHK(socket(AF_UNIX, type, 0));
	SYSCHK(connect(s, (struct sockaddr *)&a, sizeof(a)));
	return s;
}

int main(void)
{
	t_init("unix_syslog");
	const char *path = getenv("UNIX_SYSLOG_PATH"), *spath = getenv("UNIX_OUTSIDE_STREAM");
	CHECK(path, "UNIX_SYSLOG_PATH is not set");
	int s = connect_to(path, SOCK_DGRAM), c = spath ? connect_to(spath, SOCK_STREAM) : -1;
	uint64_t h = T_FNV_INIT;
	for (int i = 0; i < STEPS; i++) {
		struct sockaddr_un a;
		socklen_t l = sizeof(a);
		SYSCHK(getpeername(s, (struct sockaddr *)&a, &l));
		CHECK(l > offsetof(struct sockaddr_un, sun_path) && !strcmp(a.sun_path, path), "not connected to %s", path);
		char m[128];
		int n = snprintf(m, sizeof(m), "<13>unix_syslog[%d]: step %d", (int)getpid(), i);
		CHECK(send(s, m, (size_t)n, 0) == n, "send to %s: %s", path, strerror(errno));
		if (c >= 0) {
			char want[32], got[32];
			n = snprintf(m, sizeof(m), "ping %d\n", i);
			t_write_all(c, m, (size_t)n, -1);
			int w = snprintf(want, sizeof(want), "pong %d\n", i);
			t_read_all(c, got, (size_t)w, -1);
			CHECK(!memcmp(got, want, (size_t)w), "the server did not answer %s", want);
			h = t_fnv(h, got, (size_t)w);
		}
		printf("step %d ok\n", i);
		t_sleep_ms(200);
	}
	printf("RESULT %llx\n", (unsigned long long)h);
	return 0;
}
