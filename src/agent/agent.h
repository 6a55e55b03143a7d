/*
 * agent.h - state shared by the parts of libcohort.so, the agent that
 * lives inside every process of a group.
 */
#ifndef COHORT_AGENT_H
#define COHORT_AGENT_H

#include <stdint.h>
#include "image.h"
#include "proto.h"
#include "resume.h"
#include "res.h"


enum co_tstate { CO_TS_FREE = 0, CO_TS_SIGNALLED, CO_TS_PARKED, CO_TS_GONE };

/* One thread of this process during a checkpoint. */
struct co_tslot {
	int tid;
	int state;
	struct co_thread rec;
};


struct co_agent {
	int active;		/* registered with a coordinator */
	int sig;		/* checkpoint signal */
	int sock;		/* the manager's connection during a checkpoint (its own table), or -1 */
	int pid;
	int slot;
	struct co_table *table;
	char sock_path[256];

	/* checkpoint state */
	struct co_tslot threads[CO_MAX_THREADS];
	int nthreads;
	int manager_tid;
	int parked;		/* futex: threads parked so far */
	int arrived;		/* futex: threads back in the handler after a restart */
	int hold;		/* futex: threads wait while release == hold */
	int release;
	uint64_t generation;
	struct co_resume resume;

	/* taken by the manager before the snapshot: a snapshot child sees other values */
	int ppid, pgid, sid;
	struct co_siginfo shared_pending[2 * CO_MAX_PENDING];
	int nshared_pending;
	int ready_pipe;		/* the snapshot child says "you may go on" here */
	int taskfd;		/* /proc/self/task, the manager's during a checkpoint (agent_fds_setup) */
	uint64_t want_parent;	/* PREPARE asked for an image incremental against this generation */
	uint64_t incr_parent;	/* this image is incremental against it (0: full) */
	int await_quiesce;	/* ARMED sent: QUIESCE parks the threads */
};

extern struct co_agent co_agent;
/* Bumped by the handler in each thread that a checkpoint interrupted. */
extern __thread unsigned co_tls_epoch __attribute__((tls_model("initial-exec")));

int co_ctx_save(struct co_ctx *ctx) __attribute__((returns_twice));

/*
 * dump.c: write this process's image into dir; 0 ok, -1 with err filled.
 * snapshot_done (may be NULL) is called once the process may run again.
 * co_dump_process is co_dump_begin (look at descriptors and the memory
 * map) then co_dump_write (write the image); a snapshot forks between them.
 */
int co_dump_process(const char *dir, uint64_t *bytes, char *err, size_t errlen, void (*snapshot_done)(void));
int co_dump_begin(char *err, size_t errlen);
/* After co_dump_begin: must the program stay parked until the writer has written its descriptors? */
int co_dump_needs_pause(void);
int co_dump_write(const char *dir, uint64_t *bytes, void (*snapshot_done)(void));

/* agent.c: in a new process made by fork (an atfork handler) or clone (wrap.c) */
void co_agent_forked(void);
/* agent.c: held around fork and clone, and while the manager prepares with the program running */
void co_agent_fork_lock(void);
void co_agent_fork_unlock(void);

/* wrap.c */
void co_wrap_init(void);
/*
 * The manager's own descriptors, in its own table during a checkpoint
 * (CO_AGENT_MAX_FDS at most), ascending; how many.  Never in the program's.
 */
#define CO_AGENT_MAX_FDS 8
int co_agent_fds(int *out);

#endif
