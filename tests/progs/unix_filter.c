/*
 * unix_filter - a Unix socket with a socket filter attached, which cohort
 * does not give back (src/kinds/unix_opts.c): a datagram pair whose
 * receiver has a classic filter of 2 instructions (SO_ATTACH_FILTER) and
 * a message queued; "filtered", then it waits (t_wait_go 1) while the
 * harness finds the checkpoint refused.  Then the filter and the message
 * must be there still (the program ran on unharmed); an eBPF program is
 * attached in its place (SO_ATTACH_BPF: "ebpf attached", or "ebpf
 * unavailable" where bpf(2) may not load one) and it waits again (go 2);
 * then the filter is taken off ("detached", go 3: a checkpoint --kill
 * comes, and the restart goes on) and a message goes through.  Prints a
 * RESULT.
 */
#include "common.h"
#include <linux/bpf.h>
#include <linux/filter.h>
#include <sys/socket.h>

#ifndef SO_ATTACH_BPF
#define SO_ATTACH_BPF 50
#endif

/* The length of s's classic filter, as SO_GET_FILTER counts it (0: none). */
static unsigned filter_len(int s)
{
	socklen_t len = 0;
	SYSCHK(getsockopt(s, SOL_SOCKET, SO_GET_FILTER, NULL, &len));
	return (unsigned)len;
}

static void pass(int a, int b, const char *text)
{
	char buf[32];
	SYSCHK(send(a, text, strlen(text), 0));
	ssize_t r = recv(b, buf, sizeof(buf), MSG_DONTWAIT);
	CHECK(r == (ssize_t)strlen(text) && !memcmp(buf, text, (size_t)r), "expected \"%s\", got %zd bytes", text, r);
}

/* An eBPF socket filter that keeps every packet whole: its descriptor, or -1 when bpf(2) refuses. */
static int load_ebpf(void)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = -1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_SOCKET_FILTER;
	a.insns = (uintptr_t)insns;
	a.insn_cnt = 2;
	a.license = (uintptr_t) "GPL";
	return (int)syscall(SYS_bpf, BPF_PROG_LOAD, &a, sizeof(a));
}

int main(void)
{
	t_init("unix_filter");
	int sv[2];
	SYSCHK(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv));
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_LEN, 0),
		BPF_STMT(BPF_RET | BPF_A, 0),
	};
	struct sock_fprog prog = { 2, code };
	SYSCHK(setsockopt(sv[1], SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)));
	CHECK(filter_len(sv[1]) == 2, "the filter has %u instructions, not 2", filter_len(sv[1]));
	SYSCHK(send(sv[0], "queued", 6, 0));
	printf("filtered\n");
	t_wait_go(1);
	CHECK(filter_len(sv[1]) == 2, "after the refused checkpoint the filter has %u instructions, not 2",
	      filter_len(sv[1]));
	char buf[16];
	CHECK(recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) == 6 && !memcmp(buf, "queued", 6),
	      "the message queued before the refused checkpoint is gone");
	pass(sv[0], sv[1], "through the filter");
	int bpf = load_ebpf();
	if (bpf >= 0) {
		SYSCHK(setsockopt(sv[1], SOL_SOCKET, SO_ATTACH_BPF, &bpf, sizeof(bpf)));
		close(bpf);
	}
	printf("ebpf %s\n", bpf >= 0 ? "attached" : "unavailable");
	t_wait_go(2);
	if (bpf >= 0)
		pass(sv[0], sv[1], "through eBPF");
	int zero = 0;
	SYSCHK(setsockopt(sv[1], SOL_SOCKET, SO_DETACH_FILTER, &zero, sizeof(zero)));
	CHECK(filter_len(sv[1]) == 0, "a filter is left after SO_DETACH_FILTER");
	printf("detached\n");
	t_wait_go(3);
	pass(sv[0], sv[1], "unfiltered");
	printf("RESULT ok\n");
	return 0;
}
