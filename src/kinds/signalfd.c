/*
 * signalfd.c - a signalfd: its signal mask (fdinfo), made again with
 * signalfd(2).  The signals it reads are the process's own pending ones,
 * which the process image keeps.  One object per open file description.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/signalfd.h>
#include "kinds/kinds.h"
#include "procfs.h"

static int signalfd_dump(struct co_kdump *d, int first, uint64_t *id)
{
	char info[4096];
	struct co_sobj o = { .kind = CO_OBJ_SIGNALFD, .id = (uint64_t)first + 1 };
	if (co_ref_fdinfo(d, first, info, sizeof(info)) < 0)
		return -1;
	o.a = co_status_hex(info, "sigmask");
	*id = o.id;
	return co_sobj_write(d, first, &o);
}

static int signalfd_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	sigset_t ss;
	sigemptyset(&ss);
	for (int sig = 1; sig <= 64; sig++)
		if (o->a & (1ULL << (sig - 1)))
			sigaddset(&ss, sig);
	return co_sobj_made(x, o, signalfd(-1, &ss, 0));
}

static void signalfd_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	(void)type, (void)len;
	const struct co_sobj *o = p;
	snprintf(out, n, "signalfd %llu: mask %#llx", (unsigned long long)o->id, (unsigned long long)o->a);
}

const struct co_kind_ops co_signalfd_ops = {
	.kind = CO_OBJ_SIGNALFD, .identity = CO_ID_OPENFILE,
	.dump = signalfd_dump, .restore = signalfd_restore, .describe = signalfd_describe,
};
