/*
 * boost.h - a migration's stop, and its rounds' pauses, run ahead of the
 * machine's other work.
 *
 * The stop is a chain of short steps in several processes (the source's
 * coordinator, agents and `cohort migrate`; the target's `cohort receive`,
 * init, restorers and page fillers), each waiting for the one before.  On
 * a busy machine every step also waited for a CPU, and the program's
 * switch grew from ~15 ms to 40-60 ms (docs/benchmarks.md, "The stop on a
 * busy machine").  So each of those steps puts the thread that does it at
 * SCHED_FIFO 1 for the stop's few milliseconds, where the kernel lets it
 * (CAP_SYS_NICE, as the THP re-collapse's writer, dirty_thp.c), and back
 * after.  The pause of each incremental round is the program's downtime
 * too: the source's coordinator and agents do the same for it, until the
 * group runs again (CO_CKPT_BOOST, proto.h).
 *
 * Only a thread at the default (SCHED_OTHER, nice 0, no flags) is boosted,
 * so that back means back to that: somebody who started cohort niced, or
 * at a real-time priority, chose what cohort runs at.  The boost carries
 * SCHED_RESET_ON_FORK: nothing a boosted thread makes (a thread, a
 * process, a program) inherits it; a helper thread of a boosted process is
 * given it (co_spawn), and a restorer gives it to itself.
 *
 * Raw system calls only: the agent boosts its manager thread inside the
 * program, and the restorer has no libc.  The agent does so only in a
 * process without seccomp filters (snapshot.c): the coordinator checks
 * every call the agent makes against a program's filters and refuses a
 * checkpoint one of them would break (src/cli/seccomp.c), and a program
 * that forbids sched_setattr must not be refused for the boost's sake;
 * so its call is left out of that list (scripts/agent-syscalls.sh).
 */
#ifndef COHORT_BOOST_H
#define COHORT_BOOST_H

/*
 * The calling thread at SCHED_FIFO 1 if it runs at the default and the
 * kernel allows; 1 if so, and the process is marked boosted (co_boosted:
 * the threads and processes it makes then boost themselves).
 */
int co_boost(void);
/* Thread tid (0: the caller) likewise, without the mark. */
int co_boost_tid(int tid);
/* In a marked process: the calling thread back to the default, if a boost put it where it is; the mark goes. */
void co_unboost(void);
/* The same, the mark kept: one thread's part is done, others of the process still start boosted. */
void co_unboost_thread(void);
/* Is the process marked (co_boost, and no co_unboost since)?  A copy made by fork keeps the mark. */
int co_boosted(void);

#endif
