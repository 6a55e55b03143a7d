/*
 * unsupported_fd: keeps two connected UDP sockets on loopback open and
 * exchanges datagrams over them every step. Checkpointing it must fail
 * cleanly (network sockets are not supported) and the program must keep
 * running unharmed.
 * At start it writes "<pid> <fd0> <fd1>\n" to $COHORT_TEST_TMP/unsupported_fd.info
 * (atomically, via rename) so the harness can check the error message.
 */
#include "common.h"
#include <limits.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#define STEPS 12

int main(void)
{
	struct t_ident id;
	int sv[2];
	char path[PATH_MAX], tmp[PATH_MAX], line[64];
	uint64_t h = T_FNV_INIT;

	t_init("unsupported_fd");
	t_ident_init(&id);
	struct sockaddr_in a[2];
	for (int i = 0; i < 2; i++) {
		socklen_t l = sizeof(a[i]);
		sv[i] = SYSCHK(socket(AF_INET, SOCK_DGRAM, 0));
		memset(&a[i], 0, sizeof(a[i]));
		a[i].sin_family = AF_INET;
		a[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		SYSCHK(bind(sv[i], (struct sockaddr *)&a[i], sizeof(a[i])));
		SYSCHK(getsockname(sv[i], (struct sockaddr *)&a[i], &l));
	}
	SYSCHK(connect(sv[0], (struct sockaddr *)&a[1], sizeof(a[1])));
	SYSCHK(connect(sv[1], (struct sockaddr *)&a[0], sizeof(a[0])));
	t_fmt(path, sizeof(path), "%s/unsupported_fd.info", t_tmpdir());
	t_fmt(tmp, sizeof(tmp), "%s/unsupported_fd.info.%d", t_tmpdir(), (int)getpid());
	int fd = SYSCHK(open(tmp, O_CREAT | O_TRUNC | O_WRONLY, 0600));
	int n = snprintf(line, sizeof(line), "%d %d %d\n", (int)getpid(), sv[0], sv[1]);
	t_write_all(fd, line, (size_t)n, -1);
	close(fd);
	SYSCHK(rename(tmp, path));

	for (int s = 0; s < STEPS; s++) {
		char out[48], in[48];
		t_ident_check(&id);
		memset(out, 0, sizeof(out));
		snprintf(out, sizeof(out), "ping %d %llu", s, (unsigned long long)t_mix((uint64_t)s));
		t_write_all(sv[s % 2], out, sizeof(out), -1);
		t_read_all(sv[1 - s % 2], in, sizeof(in), -1);
		CHECK(memcmp(in, out, sizeof(in)) == 0, "socket message corrupted");
		h = t_fnv(h, in, sizeof(in));
		printf("step %d ok h=%llu\n", s, (unsigned long long)h);
		t_sleep_ms(280);
	}
	close(sv[0]);
	close(sv[1]);
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
