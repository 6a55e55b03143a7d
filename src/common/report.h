/*
 * report.h - what the restorers (and the group's init) tell the coordinator
 * while a restart runs, and the test-only fault switch of that path.
 *
 * A restart gives init the write end of a pipe (COHORT_REPORT=FD in the
 * environment of every cohort-restore it execs); each restorer says on it
 * where it is (one record per stage) and, when it fails, why.  The
 * coordinator reads the other end: it prints the first failure as the one
 * line of the restart, names the pid and stage of a restore that stopped
 * moving, and ends the group (coord/restore.c).  A record is written with
 * one write(2) of at most PIPE_BUF bytes, so records never interleave; the
 * write end is non-blocking: a restorer never waits for the coordinator.
 *
 * COHORT_FAULT=MODE:STAGE[:PID] (read once by `cohort restart`, passed on
 * by init) makes the restorer of PID (every one without it), or init for
 * the stage "shared", fail (MODE "fail") or stop for ever (MODE "hang")
 * when it reaches STAGE.  MODE "hold" stops it as "hang" does, but the
 * coordinator never gives up on it (no "no progress" end): a test that
 * kills `cohort restart` while the restore is stopped needs it stopped
 * until then, however slowly a busy machine lets the test see it there.
 * Tests use it (tests/cases/restart_fail.sh).
 */
#ifndef COHORT_REPORT_H
#define COHORT_REPORT_H

#include <stdint.h>

enum co_rstage {
	CO_RS_START,		/* the restorer runs: its own set-up */
	CO_RS_CHILDREN,		/* it has its pid: it creates its child processes */
	CO_RS_FILES,		/* it reads its image's metadata, restoring the descriptors */
	CO_RS_CGROUPS,		/* descriptors done: it joins its cgroups (before its memory is charged) */
	CO_RS_MAP,		/* it checks its memory map against this kernel */
	CO_RS_MEMORY,		/* it replaces its memory with the image's (then forks its children from it) */
	CO_RS_ATTRS,		/* memory done: the process's attributes */
	CO_RS_PIDFDS,		/* attributes done: its pidfds, once the processes they name exist; its epoll items */
	CO_RS_LOCKS,		/* its file locks */
	CO_RS_THREADS,		/* locks done: it creates its threads, waits until each has its ids */
	CO_RS_THREAD,		/* in a thread other than the main one, before it takes its ids */
	CO_RS_JUMP,		/* every thread has its ids: the main thread returns into the program */
	CO_RS_SHARED,		/* init: the group's shared objects (pipes, sockets, files), before any restorer */
	CO_RS_COUNT
};

/* The switch's name of a stage (COHORT_FAULT), and what the messages say. */
static inline const char *co_rstage_key(unsigned s)
{
	static const char *const k[CO_RS_COUNT] = { "start", "children", "files", "cgroups", "map", "memory",
						    "attrs", "pidfds", "locks", "threads", "thread", "jump", "shared" };
	return s < CO_RS_COUNT ? k[s] : "?";
}

static inline const char *co_rstage_text(unsigned s)
{
	static const char *const t[CO_RS_COUNT] = {
		"starting", "creating its child processes", "restoring its descriptors", "joining its cgroups",
		"checking its memory map", "restoring its memory", "restoring its process attributes",
		"opening its pidfds again", "taking its file locks again",
		"restoring its threads", "a thread taking its ids back", "returning into the program",
		"restoring the group's shared objects"
	};
	return s < CO_RS_COUNT ? t[s] : "at an unknown stage";
}

enum { CO_RPT_STAGE = 1, CO_RPT_FAILED };

/* One record on the report pipe: this header, then len bytes of text (a failure's reason). */
struct co_rpt {
	uint16_t kind;		/* CO_RPT_* */
	uint16_t stage;		/* enum co_rstage */
	int32_t pid;		/* in the group (init: 1) */
	uint32_t len;
	uint64_t at_ns;		/* CLOCK_REALTIME when it was said (COHORT_TRACE: when, not when read) */
};
#define CO_RPT_MAX 4096		/* PIPE_BUF: a record is written whole */

enum { CO_FAULT_NONE, CO_FAULT_FAIL, CO_FAULT_HANG, CO_FAULT_HOLD };

struct co_fault {
	int mode;		/* CO_FAULT_* */
	unsigned stage;
	int pid;		/* 0: every process */
};

/* Parse COHORT_FAULT's value (NULL: none): 0, or -1 when it is not MODE:STAGE[:PID]. */
static inline int co_fault_parse(const char *s, struct co_fault *f)
{
	f->mode = CO_FAULT_NONE;
	f->stage = 0;
	f->pid = 0;
	if (!s || !*s)
		return 0;
	int mode = s[0] == 'f' && s[1] == 'a' && s[2] == 'i' && s[3] == 'l' && s[4] == ':'   ? CO_FAULT_FAIL
		   : s[0] == 'h' && s[1] == 'a' && s[2] == 'n' && s[3] == 'g' && s[4] == ':' ? CO_FAULT_HANG
		   : s[0] == 'h' && s[1] == 'o' && s[2] == 'l' && s[3] == 'd' && s[4] == ':' ? CO_FAULT_HOLD
											       : 0;
	if (!mode)
		return -1;
	s += 5;
	for (unsigned st = 0; st < CO_RS_COUNT; st++) {
		const char *k = co_rstage_key(st), *p = s;
		while (*k && *p == *k)
			k++, p++;
		if (*k || (*p && *p != ':'))
			continue;
		long pid = 0;
		if (*p == ':') {
			if (!*++p)
				return -1;
			for (; *p >= '0' && *p <= '9' && pid < (1L << 22); p++)
				pid = pid * 10 + (*p - '0');
			if (*p || pid <= 0 || pid >= (1L << 22))
				return -1;
		}
		f->mode = mode;
		f->stage = st;
		f->pid = (int)pid;
		return 0;
	}
	return -1;
}

#endif
