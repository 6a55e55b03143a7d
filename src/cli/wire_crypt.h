/*
 * wire_crypt.h - the migration stream's transport (wire.h): plain during
 * the proof of the token, then every byte each way authenticated and
 * encrypted (AES-256-GCM, OpenSSL's libcrypto) in frames, with a key per
 * direction derived from the token and both sides' nonces.  It sits under
 * image.c's writer and reader (struct co_io), so that the records, and
 * what wire.c, migrate.c and receive.c make of them, are those of a plain
 * stream.  docs/architecture.md ("Migration", **Trust**) tells what it
 * guarantees and what not.
 *
 * A frame: its length (4 bytes, little-endian: the plaintext's, 1 to
 * CO_CRYPT_FRAME), the ciphertext, the 16-byte tag; the length is
 * authenticated with it, and the frame's number (1, 2, ... each way) is
 * its nonce, so a frame changed, replayed, reordered or left out fails
 * its tag.  A message (co_wire_send flushes right after it) always ends
 * its frame: once a message is read, nothing decrypted waits here, and
 * the socket may be polled for the next.
 *
 * Tests: COHORT_WIRE_TAP=FILE appends every byte this side sends on the
 * socket to FILE; COHORT_WIRE_FLIP=N flips one bit of the ciphertext of
 * the N-th frame this side sends; COHORT_WIRE_DROP=N leaves that frame out.
 */
#ifndef COHORT_WIRE_CRYPT_H
#define COHORT_WIRE_CRYPT_H

#include <stddef.h>
#include <stdint.h>
#include "image.h"

#define CO_CRYPT_FRAME 65536 /* plaintext bytes of a frame at most: the wire's writer buffer, its reads of a file */

struct co_wire_crypt;

/*
 * The transport of fd for w and r, plain until co_crypt_key; peer names
 * the other side in messages.  NULL when out of memory.
 */
struct co_wire_crypt *co_crypt_new(int fd, const char *peer, struct co_writer *w, struct co_reader *r);
/*
 * Both sides have proved the token: from the next byte on, each way is
 * encrypted with keys derived (HKDF-SHA256) from the token and the two
 * nonces, source the side that sent the first (the migration's source).
 * 0, or -1 with err.
 */
int co_crypt_key(struct co_wire_crypt *k, int source, const unsigned char *token, size_t tlen, const uint8_t *ns,
		 const uint8_t *nt, size_t nlen, char *err, size_t errlen);
/* Why the stream failed here (a frame that failed its tag, ...) in one line; "" when it did not. */
const char *co_crypt_error(const struct co_wire_crypt *k);
/* Decrypted bytes read from the socket that the reader has not taken yet. */
size_t co_crypt_pending(const struct co_wire_crypt *k);
/* The socket moved to another descriptor number (a process forked to own the stream). */
void co_crypt_set_fd(struct co_wire_crypt *k, int fd);

#endif
