/*
 * unix_int.h - what the files of the Unix socket kind share: unix.c (the
 * sockets: sock_diag, their shapes), unix_restore.c (made again),
 * unix_queue.c (what is queued on them, descriptors in flight included),
 * unix_name.c (a name given back at a restart).
 */
#ifndef COHORT_UNIX_INT_H
#define COHORT_UNIX_INT_H

#include <sys/socket.h>
#include <sys/un.h>
#include "kinds/kinds.h"

/* A socket's state, as sock_diag has it */
#define ST_ESTABLISHED 1
#define ST_LISTEN 10

/* unix.c: the shape recorded for the object refs[k] (NULL: not a Unix socket object of this dump). */
const struct co_usock *co_unix_planned(int k);
/* unix.c: the object (its first ref) of the Unix socket inode ino in this dump, or -1 (outside the group). */
int co_unix_ref(const struct co_kdump *d, uint64_t ino);
/* unix.c: the object of this dump bound to name (namelen bytes) and able to take it back: its ref, or -1. */
int co_unix_named(const struct co_kdump *d, const char *name, uint32_t namelen);
/* unix.c: the peer of the datagram or seqpacket socket refs[k] in the group that alone sends to it: its ref, or -1. */
int co_unix_only_sender(const struct co_kdump *d, int k);
struct sockaddr_un;
/* unix.c: the address that reaches a socket through path, an O_PATH descriptor of its socket file (/proc/self/fd/N); its length. */
socklen_t co_unix_via_path(int path, struct sockaddr_un *a);
/* unix.c: the datagram socket object of this dump bound to name, as sock_diag lists it, or -1. */
int co_unix_dgram_named(const struct co_kdump *d, const char *name, uint32_t namelen);
/* unix.c: where we send to the unconnected named datagram socket refs[k] (*path: an O_PATH descriptor or -1); 0 or -1. */
int co_unix_reach_addr(const struct co_kdump *d, int k, struct sockaddr_un *a, socklen_t *alen, int *path);

/*
 * unix_queue.c: the descriptors in flight on refs[first]'s queue made
 * references (co_ref_inflight), its messages of no bytes noted for the
 * dump (first_queue: the checkpoint's first, what earlier ones noted is
 * dropped); 0 or -1.
 */
int co_unix_collect_queue(struct co_kdump *d, int first, int first_queue);
/* unix_queue.c: every message queued on refs[first] as CO_R_USMSG records; 0 or -1 (err filled). */
int co_unix_dump_queue(struct co_kdump *d, int first);
/* unix_queue.c: what a --kill checkpoint read off streams, sent back (failed) or let go (committed). */
void co_unix_settle(int failed);
/* unix_queue.c: one CO_R_USMSG at a restart; 0 or -1. */
int co_unix_restore_msg(struct co_krestore *x, const void *p, uint64_t len);
/* unix_queue.c: once every record is read: init's own sending sockets closed. */
void co_unix_msg_done(void);
/* unix_queue.c: for inspect. */
void co_unix_describe_msg(const void *p, uint64_t len, char *out, size_t n);

/* unix_restore.c: a record of the kind (CO_R_USOCK, CO_R_USMSG, and those of older images); once all are read. */
int co_unix_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len);
int co_unix_restore_done(struct co_krestore *x);
/* unix_restore.c: the other end of a pair whose peer had closed (it sends what the peer had sent): -1 if none. */
int co_unix_orphan_end(uint64_t id);

/*
 * unix_name.c: socket s bound to the name of o, safely (see there);
 * *dfd: the directory of a path, kept open when the name is to be
 * removed later (CO_USF_UNLINKED), else -1; base: the last component.
 * 0, or -1 (err filled through x).
 */
int co_unix_bind(struct co_krestore *x, int s, const struct co_usock *o, int *dfd, char *base, size_t basen);
/*
 * unix_restore.c: the address by which the socket id (0: outside the
 * group), whose name is name, is reached at a restart: its name, or the
 * link of its own kept aside when another socket has that path too
 * (CO_USF_SHARED).  Its length.
 */
socklen_t co_unix_address(uint64_t id, const char *name, uint32_t len, struct sockaddr_un *a);
/* unix_name.c: "/path", "@abstract" (unprintable bytes as ?), or "(unnamed)". */
const char *co_unix_name_text(const char *name, uint32_t len, char *out, size_t n);
/* unix_queue.c: one message of len bytes passing nfds descriptors, on s; what sendmsg returns. */
ssize_t co_unix_send_fds(int s, const void *buf, size_t len, const int *fds, uint32_t nfds);

/*
 * unix_opts.c: the options of socket s (our descriptor) into o->opts
 * (CO_USF_OPTS); -1 with why ("whose ...") when they cannot be read.
 * co_unix_opts_set: o's options given back to s (the socket made again,
 * its queue not yet), each read again to be as recorded; 0, or -1 (err
 * filled through x).  co_unix_opts_text: them for inspect (", ...").
 * co_unix_filter: -1 with why when s has a socket filter attached
 * (refused: it is not given back), else 0.
 */
int co_unix_filter(int s, char *why, size_t n);
int co_unix_opts_read(int s, struct co_usock *o, char *why, size_t n);
int co_unix_opts_set(struct co_krestore *x, int s, const struct co_usock *o);
void co_unix_opts_text(const struct co_usock *o, char *out, size_t n);
/*
 * unix_opts.c: while the queues are put back, their senders have the
 * biggest send buffer we may give (co_unix_raise_sndbuf: a socket of
 * init's own); co_unix_refill_begin: the group's socket id (s), its own
 * size noted first; co_unix_refill_end: every noted size given back once
 * all is queued.  0, or -1 (err filled through x).
 */
void co_unix_raise_sndbuf(int s);
int co_unix_refill_begin(struct co_krestore *x, int s, uint64_t id);
int co_unix_refill_end(struct co_krestore *x);

/*
 * unix_backlog.c: the connections taken from listeners' backlogs, given
 * back behind markers.  co_unix_backlog_begin: listener refs[first]
 * whose backlog is taken, l our copy of it, path an O_PATH descriptor of
 * its socket file (-1: abstract), both its own now; its index, or -1.
 * co_unix_backlog_add: connection conn taken from listener index l, kept
 * (a copy); 0 or -1.  co_unix_unmark: a, just accepted, or when it is a
 * marker the connection it passes (a closed; -1 if that cannot be had).
 * co_unix_backlog_give: every connection kept given back in order (give
 * 1), or let go (0); all closed.
 */
int co_unix_backlog_begin(struct co_kdump *d, int first, int l, int path, int type);
int co_unix_backlog_add(int l, int conn);
int co_unix_unmark(struct co_kdump *d, int a);
void co_unix_backlog_give(int give);

#endif
