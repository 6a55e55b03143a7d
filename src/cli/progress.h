/*
 * progress.h - one status line on a terminal for the long parts of a
 * checkpoint, a restart, a merge:
 *
 *   checkpoint 'sim': writing images  412.0 MiB / 1.02 GiB  38 %  215 MiB/s
 *
 * redrawn in place at most five times a second and erased when done.
 * Only a terminal gets it (isatty, TERM not "dumb"): on anything else
 * every call does nothing, so output to files and pipes stays as it was.
 * It appears only once the work has taken half a second (or
 * $COHORT_PROGRESS_DELAY seconds): what is over sooner leaves no trace
 * on the terminal either.
 *
 * Checkpoints are taken by the coordinator for a client in another
 * process: the client asks with CO_CKPT_PROGRESS, the coordinator sends
 * CO_M_PROGRESS messages (co_progress_send), the client draws them
 * (co_recv_progress).  A restart draws on its own stderr.
 */
#ifndef COHORT_PROGRESS_H
#define COHORT_PROGRESS_H

#include <stdint.h>
#include <sys/types.h>
#include "proto.h"

struct co_progress {
	int fd;			/* the terminal; -1: every call does nothing */
	char what[96];		/* "checkpoint 'sim'" */
	char phase[32];
	uint64_t done, total;	/* bytes; total 0: not known */
	uint64_t t_phase;	/* when the phase began (ns): its rate is measured from there */
	uint64_t done_phase;	/* done when the phase began */
	uint64_t t_visible;	/* nothing is drawn before (ns): the start and the delay */
	uint64_t t_drawn;	/* last drawn (ns) */
	int shown;		/* a line is on the terminal */
};

/* Is fd a terminal that can take "\r" and "\033[K" (TERM not "dumb")? */
int co_progress_wanted(int fd);
/* Start p drawing on fd, if co_progress_wanted(fd); the label is printf-style. */
void co_progress_start(struct co_progress *p, int fd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Bytes done and total (0: not known) of phase: drawn now if the phase changed, else at most every 200 ms. */
void co_progress_set(struct co_progress *p, const char *phase, uint64_t done, uint64_t total);
/* n more bytes done in the current phase. */
void co_progress_add(struct co_progress *p, uint64_t n);
/* Erase the line (it comes back at the next update); p may be NULL. */
void co_progress_clear(struct co_progress *p);
/* Erase the line for good: p draws nothing any more. */
void co_progress_end(struct co_progress *p);
/* Erase the line of whichever progress of this process is on the terminal (before a message). */
void co_progress_hide(void);

/* The line for these numbers (rate in bytes/s, < 0: not known yet), in out; its length. */
int co_progress_format(char *out, size_t n, const char *what, const char *phase, uint64_t done, uint64_t total,
		       double rate);

/* Client: receive from fd until a message other than CO_M_PROGRESS, drawing those on p; 0 or -1. */
int co_recv_progress(int fd, struct co_msgbuf *mb, struct co_progress *p);
/*
 * Coordinator: send one CO_M_PROGRESS to a client without ever waiting.
 * 0 sent, 1 dropped (the client is behind), -1 the client is gone.
 */
int co_progress_send(int fd, const char *phase, uint64_t done, uint64_t total);

/* Sizes of the regular files in dir (not below it), for bytes written so far. */
uint64_t co_dir_bytes(const char *dir);
/* A counter of /proc/PID/io ("rchar": bytes read, "wchar": written); 0 when it cannot be read. */
uint64_t co_proc_io(pid_t pid, const char *key);

/* merge.c: restart points this at its progress while it builds full-N (NULL elsewhere). */
extern struct co_progress *co_merge_progress;

#endif
