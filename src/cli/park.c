/*
 * park.c - the coordinator's part in parking threads that block the
 * checkpoint signal.
 *
 * A thread parks by taking the checkpoint signal (src/agent/agent.c).  A
 * thread that blocks it with a call the agent never sees cannot: glibc's
 * SIGEV_THREAD timer helper and its other internal threads block every
 * signal with internal system calls, the Go runtime blocks all but a few
 * in the thread behind os/signal, and any program may do it with a raw
 * rt_sigprocmask.  The agent asks (CO_M_TRACE) about each thread that has
 * not parked after a few milliseconds; the coordinator reads the thread's
 * mask (SigBlk), and where the signal is blocked:
 *
 *   PTRACE_SEIZE, PTRACE_INTERRUPT  the thread stops, whatever its mask (a
 *                                   system call it slept in is left with
 *                                   -ERESTART..., or -EINTR where the
 *                                   kernel gives that after any stop)
 *   PTRACE_GETSIGMASK               its mask
 *   PTRACE_SETSIGMASK               the same without the checkpoint signal
 *   PTRACE_POKEDATA                 both masks into its slot in the agent
 *   PTRACE_DETACH                   it runs on, and takes the signal the
 *                                   agent queued for it at once
 *
 * so that it parks in the agent's handler like every other thread: the
 * kernel's signal frame holds its registers and FPU state, restarts its
 * system call by the SA_RESTART rules, and after a restart rt_sigreturn
 * brings all of it back, exactly as for a thread that parked by itself.
 * The handler puts the thread's own mask back into the frame before it
 * returns.  The thread is traced for well under a millisecond.
 *
 * Why not take the registers with PTRACE_GETREGSET instead and write them
 * into the image: the restorer would need a second way back into a
 * thread (a hand-made signal frame with the FPU state), the system call
 * restart rules copied, and the thread's alternate signal stack, which
 * ptrace cannot read (every Go thread has one), would be lost.  Running
 * the one handler keeps one way to park and one way back.
 *
 * Permission: the coordinator is an ancestor of every process of the
 * group, so Yama's ptrace_scope 1 allows it; scope 2 asks for
 * CAP_SYS_PTRACE in the group's user namespace, which root has and the
 * unprivileged coordinator has in the user namespace it made for the
 * group; scope 3 forbids ptrace to everyone, and the checkpoint fails
 * saying so.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "procfs.h"

#define STOP_WAIT_MS 2000

/* Threads interrupted that did not stop in time (uninterruptible sleep): detached once they stop. */
static int lingering[64];
static int nlinger;

/* The host tid of thread tid (as the group sees it) of process host_pid, or -1. */
static int host_tid(int host_pid, int tid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", host_pid);
	DIR *d = opendir(path);
	int found = -1;
	for (struct dirent *e; d && found < 0 && (e = readdir(d));) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		struct co_nsids ids;
		int h = atoi(e->d_name);
		if (co_ns_ids(h, &ids) == 0 && ids.pid == tid)
			found = h;
	}
	if (d)
		closedir(d);
	return found;
}

static const char *yama_says(void)
{
	char buf[16];
	if (co_read_small("/proc/sys/kernel/yama/ptrace_scope", buf, sizeof(buf)) <= 0)
		return "";
	switch (atoi(buf)) {
	case 2:
		return " (kernel.yama.ptrace_scope is 2: only a tracer with CAP_SYS_PTRACE may attach)";
	case 3:
		return " (kernel.yama.ptrace_scope is 3: ptrace is disabled on this machine until reboot)";
	default:
		return " (made undumpable, or traced by another process?)";
	}
}

static void nap_us(long us)
{
	struct timespec ts = { 0, us * 1000 };
	nanosleep(&ts, NULL);
}

/*
 * Wait for the stop of traced thread htid; 0 stopped (*inject: a signal
 * whose delivery it stopped for, to be passed on), 1 it exited, -1 not
 * within STOP_WAIT_MS.
 */
static int wait_stop(int htid, int *inject)
{
	*inject = 0;
	for (int waited = 0; waited < STOP_WAIT_MS * 10; waited++) {
		int st;
		pid_t r = waitpid(htid, &st, __WALL | WNOHANG);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return 1; /* ECHILD: gone */
		if (r == htid) {
			if (!WIFSTOPPED(st))
				return 1;
			/* a signal-delivery-stop comes with no event: the signal is the thread's, passed on at the detach */
			if ((st >> 16) == 0)
				*inject = WSTOPSIG(st);
			return 0;
		}
		nap_us(100);
	}
	return -1;
}

/* Detach what stopped since we gave it up (from the coordinator's waits). */
void co_park_settle(void)
{
	for (int i = 0; i < nlinger;) {
		int inject, r = wait_stop(lingering[i], &inject);
		if (r == -1) {
			i++;
			continue;
		}
		if (r == 0)
			ptrace(PTRACE_DETACH, lingering[i], 0, (void *)(long)inject);
		lingering[i] = lingering[--nlinger];
	}
}

int co_park_lingering(void)
{
	return nlinger;
}

const char *co_park_why(int err)
{
	return err == EPERM ? yama_says() : "";
}

int co_park_stop(int htid, int *inject)
{
	*inject = 0;
	if (ptrace(PTRACE_SEIZE, htid, 0, 0) < 0)
		return errno == ESRCH ? 1 : -2;
	int r;
	if (ptrace(PTRACE_INTERRUPT, htid, 0, 0) < 0 || (r = wait_stop(htid, inject)) == 1)
		return 1;
	if (r < 0 && nlinger < (int)(sizeof(lingering) / sizeof(lingering[0])))
		lingering[nlinger++] = htid;
	return r;
}

/*
 * A thread asleep in the kernel until a fanotify permission event it
 * caused is answered takes fatal signals only, so it cannot park; and the
 * answer may have to come from a process of the group that has parked
 * already, which would then never give it.  Its wait channel names the
 * function it sleeps in.  Thread htid of host_pid (pid in the group), or
 * any of its threads (htid 0): 1 with err filled when one waits so, or 0.
 */
int co_park_fanotify_wait(int pid, int host_pid, int htid, char *err, size_t errlen)
{
	/* (where the kernel waits for the answer: inlined into the first here; a reader of events waits elsewhere) */
	int t = co_task_waiting_in(host_pid, htid, "fanotify_handle_event");
	if (t <= 0)
		t = co_task_waiting_in(host_pid, htid, "fanotify_get_response");
	if (t <= 0)
		return 0;
	struct co_nsids ids;
	char path[96], comm[64] = "?";
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", host_pid, t);
	if (co_read_small(path, comm, sizeof(comm)) > 0)
		comm[strcspn(comm, "\n")] = 0;
	snprintf(err, errlen,
		 "pid %d: thread %d (%s) waits for the answer to a fanotify permission event (it opened or read a file "
		 "that a fanotify group watches), and no signal reaches it until that answer comes",
		 pid, co_ns_ids(t, &ids) == 0 ? ids.pid : t, comm);
	return 1;
}

/*
 * Thread tid of member pid (host_pid) has not parked for signal sig: if
 * its mask blocks sig, unblock it there and write {its mask, the mask
 * set} at addr in the member.  0 done, 1 not blocked (or gone), -1 with
 * err; 2 with err: it waits for a fanotify permission answer (the
 * checkpoint lets the group run a moment and tries again).
 */
int co_park_thread(int pid, int host_pid, int tid, int sig, uint64_t addr, char *err, size_t errlen)
{
	int htid = host_tid(host_pid, tid);
	if (htid < 0)
		return 1;
	char path[96], buf[4096], comm[64] = "?";
	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", host_pid, htid);
	if (co_read_small(path, comm, sizeof(comm)) > 0)
		comm[strcspn(comm, "\n")] = 0;
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", host_pid, htid);
	if (co_read_small(path, buf, sizeof(buf)) <= 0)
		return 1;
	if (co_status_state(buf) == 'D' && co_park_fanotify_wait(pid, host_pid, htid, err, errlen))
		return 2;
	uint64_t bit = 1ULL << (sig - 1);
	if (!(co_status_hex(buf, "SigBlk") & bit))
		return 1;
	long tracer = co_status_field(buf, "TracerPid");
	if (tracer > 0) {
		snprintf(err, errlen,
			 "pid %d: thread %d (%s) blocks the checkpoint signal %d and is traced by host pid %ld (a "
			 "debugger or strace?): cohort cannot stop it to unblock the signal; detach the tracer and try again",
			 pid, tid, comm, sig, tracer);
		return -1;
	}
	int inject = 0, r = co_park_stop(htid, &inject);
	if (r == 1)
		return 1; /* it exited meanwhile: the agent sees it gone */
	if (r == -2) {
		snprintf(err, errlen,
			 "pid %d: thread %d (%s) blocks the checkpoint signal %d, and cohort cannot stop it with ptrace "
			 "to unblock it: %s%s",
			 pid, tid, comm, sig, strerror(errno), co_park_why(errno));
		return -1;
	}
	if (r < 0) {
		snprintf(err, errlen,
			 "pid %d: thread %d (%s) blocks the checkpoint signal %d and did not stop within %d ms for "
			 "cohort to unblock it (an uninterruptible wait?)",
			 pid, tid, comm, sig, STOP_WAIT_MS);
		return -1;
	}
	/*
	 * Still the program the agent asked for?  A thread stopped in execve
	 * comes to its stop in the new program, whose agent is not there
	 * yet: the signal unblocked now would end it (the default action of
	 * a real-time signal).  Then it is only let go.
	 */
	errno = 0;
	long check = ptrace(PTRACE_PEEKDATA, htid, (void *)(addr + 16), 0);
	int same = errno == 0 && (uint64_t)check == CO_TRACE_CHECK(tid, addr);
	uint64_t mask = 0;
	int done = 1;
	if (same && ptrace(PTRACE_GETSIGMASK, htid, sizeof(mask), &mask) == 0 && (mask & bit)) {
		uint64_t set = mask & ~bit;
		/* the masks first: the thread reads them when it takes the signal, after the detach */
		if (ptrace(PTRACE_POKEDATA, htid, (void *)addr, (void *)mask) < 0 ||
		    ptrace(PTRACE_POKEDATA, htid, (void *)(addr + 8), (void *)set) < 0 ||
		    ptrace(PTRACE_SETSIGMASK, htid, sizeof(set), &set) < 0) {
			snprintf(err, errlen, "pid %d: thread %d (%s): cannot unblock the checkpoint signal %d with ptrace: %s",
				 pid, tid, comm, sig, strerror(errno));
			done = -1;
		} else {
			done = 0;
		}
	}
	if (ptrace(PTRACE_DETACH, htid, 0, (void *)(long)inject) < 0 && errno != ESRCH && done >= 0) {
		snprintf(err, errlen, "pid %d: thread %d (%s): cannot let it go after ptrace: %s", pid, tid, comm,
			 strerror(errno));
		done = -1;
	}
	return done;
}
