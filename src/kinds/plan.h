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
	CO_PLAN_EPITEM = 3,	/* process pid adds the file of its fd, as tfd, to its epoll src: events dev, data ino */
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
	int32_t tfd;		/* CO_PLAN_EPITEM: the number the item was added with */
	uint32_t spare;
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

/*
 * An epoll item added back (init and the restorer alike, no libc): the
 * file of descriptor target to epoll set ep, with the number tfd it was
 * added with (an item is known by file and number).  When target is not
 * tfd, the file is put on tfd for the call and whatever tfd was is put
 * back (close-on-exec flag included).  0, or -errno (-EPERM: EPOLLWAKEUP
 * asked for where the kernel would drop it, without CAP_BLOCK_SUSPEND).
 */
long co_epoll_add(int ep, int target, int tfd, uint32_t events, uint64_t data);
/*
 * Every poll event an item may ask for (not EPOLLERR and EPOLLHUP, which
 * EPOLL_CTL_ADD always adds), and the flags a fired EPOLLONESHOT item
 * keeps (the kernel's EP_PRIVATE_BITS): an item whose events hold nothing
 * else is disabled until EPOLL_CTL_MOD.
 */
#define CO_EPOLL_ANY 0x27c7u		/* IN PRI OUT RDNORM RDBAND WRNORM WRBAND MSG RDHUP */
#define CO_EPOLL_FLAGS 0xf0000000u	/* EXCLUSIVE WAKEUP ONESHOT ET */
#define CO_EPOLL_DISABLED(ev) (((ev) & ~CO_EPOLL_FLAGS) == 0)
#define CO_EPOLLWAKEUP 0x20000000u
/*
 * A fired EPOLLONESHOT item added back disabled, as the kernel left it:
 * added asking for every event (with its flags) and fired at once by an
 * epoll_wait on ep, which disables it.  Only an item that can fire now
 * can be made so, and only while no other item of ep is ready (the wait
 * takes the first ready one): the caller adds these first.  0; -EAGAIN
 * when the file is ready for nothing now (the item is then enabled: the
 * caller fails); or -errno.
 */
long co_epoll_add_disabled(int ep, int target, int tfd, uint32_t events, uint64_t data);

/* The restorer's look-ups (plan.c, restorer build only). */
struct co_rstctx;
int co_plan_fd(struct co_rstctx *rc, int pid, int fd);		/* -1: not a group-wide object */
int co_plan_shm(struct co_rstctx *rc, uint64_t dev, uint64_t ino);	/* -1: none */
/* The process's epoll items, added back once all its descriptors are (pidfds too): 0, or -1 with err. */
int co_plan_epoll(struct co_rstctx *rc);
/* The plan's entry of kind for process pid (CO_PLAN_CTTY, CO_PLAN_FGPG), or NULL. */
const struct co_plan_ent *co_plan_find(struct co_rstctx *rc, uint32_t kind, int pid);

#endif
