/*
 * wire.h - the migration stream between `cohort migrate` (the source) and
 * `cohort receive` (the target): a TCP connection that carries the image
 * format's own checksummed records (image.h: CO_R_WIRE_*), after each side
 * has proved it knows the shared secret of the token file.
 *
 *   source                                  target
 *   AUTH (its nonce)                  ->
 *                                     <-    AUTH (its nonce, its proof)
 *   PROOF (its proof) or REFUSED      ->
 *                                     <-    OK, or REFUSED: wrong token
 *   HELLO (group, kernel, vdso, CPU)  ->
 *                                     <-    OK, or REFUSED (why)
 *   FSTAT (path, size, mtime) ...     ->      (FCOPY instead for a file that
 *   FSTAT_END                         ->       travels in the generation: --copy-files)
 *                                     <-    OK, or REFUSED (the file that differs)
 *   GEN (generation, b 0), FILE "manifest", FILE ... (each with its DATA), GEN_END ->
 *                                     <-    OK (checked there; committed with the last), or REFUSED
 *   ... (a pre-copy round each: the group runs at the source meanwhile;
 *        FSTAT again before the last, which follows its FSTAT_END at
 *        once when small: the answer to the list is read after it)
 *   GEN (generation, b 1: the last), FILE ..., GEN_END ->
 *        (--postcopy: a page stream as SPARSE, its hole list (DATA), then
 *         FILE without the holes' bytes)
 *                                     <-    READY (restored, parked), or ABORT (why)
 *   (the source's coordinator ends the group at the source: HOLD_END)
 *   GO                                ->
 *                                     <-    RUNNING
 *   --postcopy, from READY on:
 *                                     <-    WANT (file, offset): a fault waits for that piece
 *   PUSH (file, offset), DATA         ->      (after RUNNING every piece, in file order;
 *                                              the pieces WANTed first)
 *                                     <-    DONE (every piece in, the files' digests checked)
 *
 * From the byte after the target's OK to PROOF on, every byte each way is
 * encrypted and authenticated in frames (wire_crypt.h), under the records.
 *
 * Either side may send ABORT (text: why) instead of its next message and
 * hang up; a side that sees it, or the connection close, gives up.  The
 * group never runs on both sides: the target lets it run only after GO,
 * which comes only once the source has ended it.  A post-copy cut after
 * RUNNING cannot be undone: the group at the target ends, and the source
 * names the generation to restart it from (postcopy.c).
 * docs/architecture.md ("Migration") tells what is checked where.
 */
#ifndef COHORT_WIRE_H
#define COHORT_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include "image.h"

struct co_progress;
struct co_wire_crypt;

enum co_wire_op {
	CO_W_AUTH = 1,	 /* nonce; from the target also mac: its proof */
	CO_W_PROOF,	 /* mac: the source's proof */
	CO_W_OK,
	CO_W_REFUSED,	 /* text: why */
	CO_W_ABORT,	 /* text: why */
	CO_W_HELLO,	 /* text: "NAME\nKERNEL-RELEASE\nCPU-FLAGS"; a: vdso size */
	CO_W_FSTAT,	 /* text: a path the group holds; a: its size, b: its mtime (ns); both -1: only that it is there */
	CO_W_FSTAT_END,
	CO_W_GEN,	 /* a: the generation that follows; b: 1 for the last, the one restarted */
	CO_W_GEN_END,	 /* every file of it was sent */
	CO_W_READY,	 /* every process is back at the target, parked; a: processes */
	CO_W_GO,	 /* the group has ended at the source: let it run */
	CO_W_RUNNING,	 /* it runs at the target */
	CO_W_FCOPY,	 /* text: a file the group writes, whose copy travels in the generation (files/N) and
			  * is put in place by the restart (--copy-files): not compared */
	/* post-copy (--postcopy; src/cli/postcopy.c) */
	CO_W_SPARSE,	 /* the next FILE comes without its holes: a: how many, listed in one DATA record
			  * (struct co_wire_hole each) */
	CO_W_PUSH,	 /* a: a sparse file (its place among the last generation's), b: offset; one DATA
			  * record of the bytes follows (a piece: postcopy.c) */
	CO_W_WANT,	 /* target: a fault waits for the piece of file a at offset b: send it first */
	CO_W_DONE,	 /* target: every piece has come, the files are whole (digests checked) */
};

/* A range of a sparse file that its FILE leaves out (CO_W_SPARSE): bytes [off, off + len). */
struct co_wire_hole {
	uint64_t off, len;
};
#define CO_WIRE_MAX_HOLES (CO_WIRE_CHUNK / sizeof(struct co_wire_hole))

struct co_wire {
	int fd;
	char peer[128];		/* ADDR:PORT of the other side, for messages */
	struct co_writer w;
	struct co_reader r;
	char rname[160];	/* the reader's name in its messages */
	char wbuf[65536];
	uint64_t sent, received; /* bytes of files */
	struct co_progress *pr;	/* counts the bytes sent, on a terminal (progress.h); NULL: none */
	struct co_wire_crypt *crypt; /* the transport under w and r: encrypted once the token is proved (wire_crypt.h) */
};

/* The token file's secret, refused (one line, exit 1) when others may read it or it is empty. */
void co_wire_token(const char *path, unsigned char *key, size_t *keylen, size_t max);
/* ADDR:PORT (ADDR a name, an IPv4 address or [IPv6]) into host and port; -1 when malformed. */
int co_wire_addr(const char *arg, char *host, size_t hn, char *port, size_t pn);
/* A listening socket on host:port; its address as ADDR:PORT (the port picked, for 0) in shown. */
int co_wire_listen(const char *host, const char *port, char *shown, size_t n, char *err, size_t errlen);
/* Connect to host:port; -1 with err. */
int co_wire_connect(const char *host, const char *port, char *err, size_t errlen);
void co_wire_init(struct co_wire *c, int fd, const char *peer);

/*
 * Each side proves it knows the key (HMAC-SHA256 over both nonces and its
 * role, OpenSSL) and checks the other's proof in constant time.  0 both
 * proved; -1 with err in one line (a wrong token, or the connection lost).
 */
int co_wire_auth_source(struct co_wire *c, const unsigned char *key, size_t keylen, char *err, size_t errlen);
int co_wire_auth_target(struct co_wire *c, const unsigned char *key, size_t keylen, char *err, size_t errlen);

/*
 * The last word (REFUSED or ABORT) said: close so that the other side
 * reads it.  A socket closed with bytes unread sends a reset, which
 * destroys what the peer had not read yet: what the peer still sends is
 * read and dropped until it hangs up (a few seconds at most).
 */
void co_wire_hang_up(struct co_wire *c);
/* The connection now on descriptor fd (the same socket, moved: a process forked to own the stream). */
void co_wire_set_fd(struct co_wire *c, int fd);
/*
 * Is a message there to read without waiting?  Bytes the transport has
 * already taken off the socket and decrypted are not seen by poll(2):
 * a loop that polls the socket asks this first.
 */
int co_wire_readable(const struct co_wire *c);

/* A control message; 0 or -1 (the connection is lost: err). */
int co_wire_send(struct co_wire *c, unsigned op, int64_t a, int64_t b, const char *text);
/*
 * The next control message into m; 0, or -1 with err: the connection
 * lost or closed, a damaged record, an ABORT (its text) or, when want is
 * not 0, another message than want or OK.
 */
int co_wire_recv(struct co_wire *c, struct co_wire_msg *m, unsigned want, char *err, size_t errlen);

/*
 * Send the file at path as name (size and digest first, then its bytes);
 * -1 with err.  digest: the file's as its manifest lists it (the target
 * checks the bytes against it), or NULL: none (an image, or the manifest:
 * their records are checked as they arrive).
 */
int co_wire_send_file(struct co_wire *c, const char *path, const char *name, const uint64_t *digest, char *err,
		      size_t errlen);
/*
 * The same without the bytes of the n holes (in order, apart): SPARSE and
 * the hole list first; the size and digest announced are the whole file's
 * (digest: the manifest's, checked once post-copy has filled it; NULL: none).
 */
int co_wire_send_sparse(struct co_wire *c, const char *path, const char *name, const struct co_wire_hole *holes,
			uint32_t n, const uint64_t *digest, char *err, size_t errlen);
/* After SPARSE (in m): its hole list into holes (at most max), *n of them; -1 with err. */
int co_wire_recv_holes(struct co_wire *c, const struct co_wire_msg *m, struct co_wire_hole *holes, uint32_t max,
		       uint32_t *n, char *err, size_t errlen);
/*
 * The next record is a file's announcement (CO_R_WIRE_FILE) into f: 1; a
 * control message (into m): 0; -1 with err.
 */
int co_wire_next_file(struct co_wire *c, struct co_wire_file *f, struct co_wire_msg *m, char *err, size_t errlen);
/* Its bytes into fd (already created), checked against its size and digest as they come; -1 with err. */
int co_wire_recv_file(struct co_wire *c, const struct co_wire_file *f, int fd, char *err, size_t errlen);
/*
 * A sparse one's: the bytes around the n holes, each record checked; the
 * file has its full size, the holes left unwritten (its digest is checked
 * once post-copy has filled them).
 */
int co_wire_recv_sparse(struct co_wire *c, const struct co_wire_file *f, int fd, const struct co_wire_hole *holes,
			uint32_t n, char *err, size_t errlen);

#endif
