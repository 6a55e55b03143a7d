/*
 * plan.h - the init -> restorer plan, declared once.
 *
 * At a restart the group's init makes every group-wide object once
 * (src/kinds/engine.c reading shared.img), before any process exists, and
 * hands them down on inherited descriptors.  The plan says which of them
 * becomes which descriptor of which process, which shared memory object a
 * mapping takes, and which epoll items a process adds back.  Each
 * restorer reads it (restorer.c), takes what is its own (files.c, mem.c,
 * co_plan_epoll) and closes the rest.
 *
 * Descriptor layout, top of the descriptor table down (co_plan_top):
 *   [top, limit)       the restorer's own descriptors (its image files, stdio)
 *   [lo, top)          the objects init made (co_plan_hdr.lo, .hi = top)
 *   lo - 1             the plan itself (a memfd)
 *   [0, lo - 1)        the program's: closed before its descriptors come back
 */
#ifndef COHORT_PLAN_H
#define COHORT_PLAN_H

#include <stdint.h>

#define CO_PLAN_MAGIC 0x4e414c50u /* "PLAN" */
#define CO_MAX_PLAN 65536
#define CO_PLAN_RESERVED 64	/* descriptors kept at the top for the restorer's own */

enum co_plan_kind {
	CO_PLAN_FD = 1,		/* descriptor fd of process pid is src */
	CO_PLAN_SHM = 2,	/* mappings of shared memory object (dev, ino) map src */
	CO_PLAN_EPITEM = 3,	/* process pid adds its fd to its epoll src, events dev, data ino */
	CO_PLAN_CTTY = 4,	/* process pid, once it leads its session, takes src's terminal as controlling terminal */
	CO_PLAN_FGPG = 5,	/* process pid, once in its group, makes it (dev: the pgid) the foreground of src's */
};

/* The fd of a link and a CO_PLAN_FD entry that hand a process its deleted working directory. */
#define CO_PLAN_CWD (-2)

struct co_plan_ent {
	int32_t pid, fd;	/* CO_PLAN_FD: this descriptor of this process */
	uint32_t kind;
	int32_t src;		/* the inherited descriptor to use */
	uint64_t dev, ino;	/* CO_PLAN_SHM: this shared memory object */
};

struct co_plan_hdr {
	uint32_t magic, n;	/* n entries follow the header */
	int32_t lo, hi;		/* the objects' descriptors */
};

/*
 * The descriptor layout above, for init and the restorer alike: raises the
 * soft RLIMIT_NOFILE to the hard one (at most 2^20) and returns the lowest
 * descriptor of the restorer's own (the limit minus CO_PLAN_RESERVED).
 */
int co_plan_top(void);

/* The restorer's look-ups (plan.c, restorer build only). */
struct co_rstctx;
int co_plan_fd(struct co_rstctx *rc, int pid, int fd);		/* -1: not a group-wide object */
int co_plan_shm(struct co_rstctx *rc, uint64_t dev, uint64_t ino);	/* -1: none */
void co_plan_epoll(struct co_rstctx *rc);			/* the process's epoll items, added back */
/* The plan's entry of kind for process pid (CO_PLAN_CTTY, CO_PLAN_FGPG), or NULL. */
const struct co_plan_ent *co_plan_find(struct co_rstctx *rc, uint32_t kind, int pid);

#endif
