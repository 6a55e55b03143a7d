/*
 * manager.h - what the three files of a checkpoint's manager thread share,
 * and no other file: agent.c (registration, the messages), manager.c (the
 * thread and its session) and snapshot.c (the image taken).  All hidden in
 * libcohort.so, as everything of the agent's but the wrappers.
 */
#ifndef COHORT_MANAGER_H
#define COHORT_MANAGER_H

#include <stdint.h>
#include "proto.h"

/* ---- agent.c ---- */

/* The last message received (co_recv_msg); the manager reads it. */
extern struct co_msgbuf co_inbox;
/* One message to fd: a, b, text (or NULL), and passfd when >= 0; 0 or -errno. */
int co_send_fd(int fd, unsigned type, int64_t a, int64_t b, const char *text, int passfd);
int co_send_prepared(unsigned type, int64_t prep_ns, int armed, int passfd);
int co_send_ab(int fd, unsigned type, int64_t a, int64_t b, const char *text);
int co_send_msg(int fd, unsigned type, int64_t a, const char *text);
/* DONE: bytes written, and the parent generation of an incremental image (b). */
void co_send_done(uint64_t bytes);
/* One message into co_inbox; up to nfds attached descriptors into fds[] (-1 where none): 0, or -1. */
int co_recv_msg(int fd, int *fds, int nfds);
/* The manager's descriptors while it prepares: /proc/self/task, and the tracking's. */
void co_agent_fds_setup(void);
/* A connection to the coordinator at path; from a chroot without it, from the group's root (root.c). */
int co_dial_out(const char *path);
/* The manager, back from a restart inside co_take_image(): its own table again, registered anew. */
void co_agent_restarted(void);

/* ---- manager.c ---- */

/* What the manager has to say when a step fails (FAIL's text). */
extern char co_errbuf[1024];
/* The manager's stack; a snapshot's forking process runs on it too, below what the manager uses. */
#define CO_MGR_STACK (256 << 10)
extern char co_mgr_stack[CO_MGR_STACK];
/* In a forked child: no manager runs. */
void co_manager_forked(void);
/*
 * The image's steps timed for the coordinator's trace (DUMP with
 * CO_CKPT_TRACE): "STEP=NS ..." on CLOCK_REALTIME, which no time namespace
 * shifts, sent as the text of SNAPSHOT (the manager's steps) and DONE (the
 * writer's).  The agent itself prints nothing.
 */
void co_stamps_begin(int on); /* on -1: emptied, on or off as it was */
void co_stamp(const char *step);
const char *co_stamps(void); /* NULL when off or empty; emptied by the reading */

/* ---- snapshot.c ---- */

/* DUMP's descriptors: the image's files (CO_STREAMS), then the seccomp filters to write (or -1). */
#define IMG_FDS (CO_STREAMS + 1)
enum { IMG_WRITTEN = 0, IMG_RESTARTED = 1, IMG_SNAPSHOT = 2, IMG_FAILED = -1 };
/* The image, written here or by a snapshot (IMG_*; IMG_FAILED with co_errbuf). */
int co_take_image(const char *dir, uint64_t *bytes, int snapshot);
/* The next message (co_recv_msg), watching the snapshot's writer meanwhile. */
int co_next_msg(int *fds, int nfds);
/* DUMP's descriptors (fds[0..IMG_FDS)) as the image's files: whether one of its streams is missing. */
int co_image_files_take(const int *rfd);
/* The image's files go from the manager's table (a snapshot writer has its own copies). */
void co_image_files_close(void);
/* In a new table (a restart, a new manager, a forked child): none of the snapshot's descriptors is ours. */
void co_snapshot_forget(void);

#endif
