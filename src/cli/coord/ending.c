/*
 * coord/ending.c - the end of a checkpoint's sessions, and of a group
 * kept parked to the end: by `checkpoint --kill`, or by a migration's
 * stop once the group runs at the target (checkpoint.c, ckpt_hold).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "coord.h"
#include "util.h"

/*
 * The checkpoint is over: the members' connections go (a member's manager
 * thread has gone, or goes once it has read RELEASE; a snapshot still
 * writing has said DONE), and an ATTACH from now on is a late one.
 */
void end_sessions(void)
{
	for (int i = G.nc - 1; i >= 0; i--)
		if (G.c[i].kind == C_MEMBER && G.c[i].stale)
			drop(i);
		else if (G.c[i].kind == C_MEMBER && !G.c[i].restored)
			hang_up(&G.c[i]);
	G.ck_gen = G.ck_parent = 0;
}

/*
 * A parked group ends (--kill, or a migration's HOLD_END): every process
 * is killed at once.  Once the signal is sent, SIGKILL is pending in
 * every thread of it (the kernel marks the whole thread group as exiting
 * when it queues the signal): none of the program's code runs again, even
 * though tearing down its memory takes a while longer (~30 ms per GiB).
 * Every live process of the group is a parked member of this checkpoint
 * (ckpt_await_late; a parked process forks nothing), so the members' pidfds
 * reach them all, with no scan of every process of the machine
 * (signal_group: 0.4-0.9 ms of a migration's switch); a member without
 * a pidfd, or one that could not take the signal, falls back to the scan.
 *
 * Each thread is first put at SCHED_IDLE: woken by the signal, the dying
 * threads would otherwise take the CPU from this coordinator and from
 * `migrate`, whose reply and GO the target's group waits for (on a host
 * of one CPU, 5 ms of the switch); at SCHED_IDLE they tear the memory
 * down when nothing else wants the CPU.  (A migration's HOLD_END stops
 * the group, replies, and kills it only once the group runs at the
 * target: stop_parked_group.)
 */
static int idle_thread(int tid, void *arg)
{
	(void)arg;
	struct sched_param sp = { 0 };
	sched_setscheduler(tid, SCHED_IDLE, &sp);
	return 0;
}

/* Every thread of the group at SCHED_IDLE (a member still there, by its pidfd: its pid is its own). */
static void idle_group(void)
{
	for (int i = 0; i < G.nc; i++)
		if (G.c[i].kind == C_MEMBER && G.c[i].host_pid > 0 && G.c[i].pidfd >= 0 &&
		    syscall(SYS_pidfd_send_signal, G.c[i].pidfd, 0, NULL, 0) == 0)
			co_each_task(G.c[i].host_pid, idle_thread, NULL);
}

void kill_parked_group(void)
{
	int missed = 0;
	idle_group();
	for (int i = 0; i < G.nc; i++) {
		const struct conn *c = &G.c[i];
		if (c->kind == C_MEMBER)
			missed |= c->pidfd < 0 || syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL, 0) < 0;
	}
	if (missed)
		signal_group(SIGKILL);
	kill(G.init_pid, SIGKILL);
}

/*
 * A migration's end here: every member stopped (SIGSTOP, through its
 * pidfd), so that none of the program's code can run here again (a parked
 * thread takes the stop before it could return to the program), and the
 * coordinator may answer HOLD_END before it kills the group, and kill it
 * once the group runs at the target (`migrate` hangs up then: await_go).
 * Killed first, the dying threads' teardown of their memory (in the
 * kernel, ~30 ms a GiB) held `migrate`'s GO back by 4-5 ms on a host of
 * one CPU, even at SCHED_IDLE.  -1 when one could not be stopped: then the group is killed
 * before the answer, as before.  Should this coordinator die meanwhile,
 * init dies with it and takes the stopped group along.
 */
int stop_parked_group(void)
{
	idle_group(); /* (the stop wakes every thread) */
	for (int i = 0; i < G.nc; i++) {
		const struct conn *c = &G.c[i];
		if (c->kind == C_MEMBER && (c->pidfd < 0 || syscall(SYS_pidfd_send_signal, c->pidfd, SIGSTOP, NULL, 0) < 0))
			return -1;
	}
	return 0;
}

/* Until migrate hangs up on fd (RUNNING has come, or it failed), or 10 s: the group, stopped, is killed after that. */
void await_go(int fd)
{
	struct pollfd p = { fd, POLLIN, 0 };
	while (poll(&p, 1, 10000) < 0 && errno == EINTR)
		;
}

/* ... and its session stays open until it is gone (kill_parked_group first). */
void await_parked_group(void)
{
	/*
	 * Init's end takes every process of its namespace with it, and
	 * only once they are all gone does its pidfd say it has ended.
	 * Only then are the members hung up on: a manager whose
	 * connection closes lets its threads go, and a program that ran
	 * on for that instant wrote what its restart writes again (a
	 * line printed twice).
	 */
	struct pollfd gone = { G.init_pidfd, POLLIN, 0 };
	while (poll(&gone, 1, 10000) < 0 && errno == EINTR)
		;
	end_sessions();
}

void end_parked_group(void)
{
	kill_parked_group();
	await_parked_group();
}

