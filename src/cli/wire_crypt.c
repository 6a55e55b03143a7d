/*
 * wire_crypt.c - the migration stream's transport (wire_crypt.h): plain
 * while the two sides prove the token, then authenticated encryption of
 * every byte each way, under image.c's writer and reader.
 *
 * Keys: HKDF-SHA256 of the token, salted with the source's and the
 * target's nonces of this connection, gives a key and a base nonce per
 * direction (a label each), so that no two connections and no two
 * directions share one.  Frames: AES-256-GCM over the plaintext, with the
 * 4-byte length as associated data and the frame's number XORed into the
 * base nonce; the number is never sent, each side counts, so a frame
 * replayed, reordered or left out is opened with another nonce than it
 * was sealed with and fails its tag like a changed one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "wire_crypt.h"

#define HEAD 4		/* a frame's length */
#define TAG 16		/* GCM's tag */
#define IVLEN 12	/* GCM's nonce */
#define KEYLEN 32	/* AES-256 */
#define BATCH 16	/* frames sealed before one write: a file's chunk (CO_WIRE_CHUNK) in one system call */

static const char LABEL_S2T[] = "cohort migrate 1: the source's stream", LABEL_T2S[] = "cohort migrate 1: the target's stream";

/* One direction: its cipher (key set), base nonce and the frames sealed or opened so far. */
struct way {
	EVP_CIPHER_CTX *ctx;
	uint8_t iv[IVLEN];
	uint64_t n;
	int on;
};

struct co_wire_crypt {
	struct co_io io;	/* first: the writer's and reader's pointer is the whole */
	int fd;
	char peer[128];
	struct way tx, rx;
	unsigned char *out;	/* up to BATCH frames as they go on the socket */
	unsigned char *in;	/* one frame as it came (ciphertext, tag), opened in place when the reader wants less */
	unsigned char head[HEAD];
	size_t inoff, inlen;	/* in[inoff..inlen): plaintext the reader has not taken */
	int tap;		/* COHORT_WIRE_TAP: a copy of what we send, or -1 */
	uint64_t flip;		/* COHORT_WIRE_FLIP: the frame to damage on its way (tests), or 0 */
	uint64_t drop;		/* COHORT_WIRE_DROP: the frame lost on its way (tests), or 0 */
	char err[300];
};

/* ---- the socket ---- */

/* All of p on the socket (and the tap): 0 or -errno. */
static long send_all(struct co_wire_crypt *k, const unsigned char *p, size_t n)
{
	if (k->tap >= 0 && write(k->tap, p, n) != (ssize_t)n) {
		close(k->tap); /* a test's tap that fails is no reason to fail the migration: the test sees it short */
		k->tap = -1;
	}
	while (n) {
		ssize_t r = write(k->fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r ? -errno : -EIO;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* Exactly n bytes off the socket: 0; 1 when it ends before the first; -errno (-EPIPE: it ended within them). */
static long recv_all(struct co_wire_crypt *k, unsigned char *p, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t r = read(k->fd, p + done, n - done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return done ? -EPIPE : 1;
		done += (size_t)r;
	}
	return 0;
}

/* ---- frames ---- */

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Frame n's nonce: the direction's base with n (big-endian) XORed into its last 8 bytes. */
static void nonce_of(const struct way *d, uint64_t n, uint8_t *out)
{
	memcpy(out, d->iv, IVLEN);
	for (int i = 0; i < 8; i++)
		out[IVLEN - 1 - i] ^= (uint8_t)(n >> (8 * i));
}

/* The next frame of len plaintext bytes at p into out: length, ciphertext, tag.  0 or -1. */
static int seal(struct co_wire_crypt *k, const unsigned char *p, uint32_t len, unsigned char *out)
{
	uint8_t nonce[IVLEN];
	int l;
	uint64_t n = ++k->tx.n;
	put_le32(out, len);
	nonce_of(&k->tx, n, nonce);
	if (EVP_EncryptInit_ex(k->tx.ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_EncryptUpdate(k->tx.ctx, NULL, &l, out, HEAD) != 1 ||
	    EVP_EncryptUpdate(k->tx.ctx, out + HEAD, &l, p, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(k->tx.ctx, out + HEAD + len, &l) != 1 ||
	    EVP_CIPHER_CTX_ctrl(k->tx.ctx, EVP_CTRL_GCM_GET_TAG, TAG, out + HEAD + len) != 1)
		return -1;
	if (n == k->flip)
		out[HEAD + len / 2] ^= 0x10; /* tests: one bit changed on the way */
	return 0;
}

/* The frame in k->in (k->head its length) opened into to (k->in itself, or the reader's buffer).  0 or -1. */
static int open_frame(struct co_wire_crypt *k, uint32_t len, unsigned char *to)
{
	uint8_t nonce[IVLEN];
	int l;
	nonce_of(&k->rx, k->rx.n + 1, nonce);
	if (EVP_DecryptInit_ex(k->rx.ctx, NULL, NULL, NULL, nonce) != 1 ||
	    EVP_DecryptUpdate(k->rx.ctx, NULL, &l, k->head, HEAD) != 1 ||
	    EVP_DecryptUpdate(k->rx.ctx, to, &l, k->in, (int)len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(k->rx.ctx, EVP_CTRL_GCM_SET_TAG, TAG, k->in + len) != 1 ||
	    EVP_DecryptFinal_ex(k->rx.ctx, to + len, &l) != 1)
		return -1;
	k->rx.n++;
	return 0;
}

/* The stream is broken here: why, in one line (co_crypt_error), and the error the reader or writer returns. */
static long broken(struct co_wire_crypt *k, long e, const char *why, uint64_t frame)
{
	if (!k->err[0])
		snprintf(k->err, sizeof(k->err), "migration stream from %s: frame %llu %s", k->peer,
			 (unsigned long long)frame, why);
	return e;
}

/* ---- the writer's and reader's transport ---- */

static long crypt_write(struct co_io *io, const void *p, uint64_t n)
{
	struct co_wire_crypt *k = (struct co_wire_crypt *)io;
	const unsigned char *c = p;
	if (!k->tx.on) {
		long e = send_all(k, c, n);
		return e ? e : (long)n;
	}
	for (uint64_t done = 0; done < n;) {
		size_t used = 0;
		for (int f = 0; f < BATCH && done < n; f++) {
			uint32_t len = n - done > CO_CRYPT_FRAME ? CO_CRYPT_FRAME : (uint32_t)(n - done);
			if (seal(k, c + done, len, k->out + used))
				return broken(k, -EPROTO, "could not be encrypted (OpenSSL)", k->tx.n);
			if (k->tx.n != k->drop) /* tests: a frame left out */
				used += HEAD + len + TAG;
			done += len;
		}
		long e = send_all(k, k->out, used);
		if (e)
			return e;
	}
	return (long)n;
}

/* The next frame off the socket into k->in, its length in *len: 0; 1 at a clean end; -errno. */
static long frame_in(struct co_wire_crypt *k, uint32_t *len)
{
	uint64_t frame = k->rx.n + 1;
	long e = recv_all(k, k->head, HEAD);
	if (e == 0) {
		*len = get_le32(k->head);
		/* the length is authenticated with the frame, but must be bounded before the frame is read */
		if (*len == 0 || *len > CO_CRYPT_FRAME)
			return broken(k, -EBADMSG, "failed authentication (its length is out of bounds)", frame);
		e = recv_all(k, k->in, *len + TAG);
		if (e == 1)
			e = -EPIPE;
	}
	/* a connection that ends within a frame is said so; its other errors are the reader's to name */
	return e == -EPIPE ? broken(k, e, "was cut short: the connection ended within it", frame) : e;
}

static long crypt_read(struct co_io *io, void *p, uint64_t n)
{
	struct co_wire_crypt *k = (struct co_wire_crypt *)io;
	if (!k->rx.on) {
		ssize_t r = read(k->fd, p, n);
		return r < 0 ? -errno : r;
	}
	if (k->inoff == k->inlen) {
		uint32_t len;
		long e = frame_in(k, &len);
		if (e)
			return e == 1 ? 0 : e;
		/* straight into the reader's buffer when it takes the whole frame: no copy */
		int whole = n >= len;
		if (open_frame(k, len, whole ? p : k->in))
			return broken(k, -EBADMSG, "failed authentication", k->rx.n + 1);
		if (whole)
			return len;
		k->inoff = 0;
		k->inlen = len;
	}
	size_t m = n < k->inlen - k->inoff ? (size_t)n : k->inlen - k->inoff;
	memcpy(p, k->in + k->inoff, m);
	k->inoff += m;
	return (long)m;
}

struct co_wire_crypt *co_crypt_new(int fd, const char *peer, struct co_writer *w, struct co_reader *r)
{
	struct co_wire_crypt *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->io.read = crypt_read;
	k->io.write = crypt_write;
	k->fd = fd;
	snprintf(k->peer, sizeof(k->peer), "%s", peer);
	const char *tap = getenv("COHORT_WIRE_TAP"), *flip = getenv("COHORT_WIRE_FLIP"), *drop = getenv("COHORT_WIRE_DROP");
	k->tap = tap && tap[0] ? open(tap, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
	k->flip = flip ? strtoull(flip, NULL, 10) : 0;
	k->drop = drop ? strtoull(drop, NULL, 10) : 0;
	w->io = &k->io;
	r->io = &k->io;
	return k;
}

/* ---- the keys ---- */

/* HKDF-SHA256(token, salt, label) into out. */
static int hkdf(const unsigned char *token, size_t tlen, const unsigned char *salt, size_t slen, const char *label,
		unsigned char *out, size_t outlen)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	int ok = pc && EVP_PKEY_derive_init(pc) == 1 && EVP_PKEY_CTX_set_hkdf_md(pc, EVP_sha256()) == 1 &&
		 EVP_PKEY_CTX_set1_hkdf_salt(pc, salt, (int)slen) == 1 &&
		 EVP_PKEY_CTX_set1_hkdf_key(pc, token, (int)tlen) == 1 &&
		 EVP_PKEY_CTX_add1_hkdf_info(pc, (const unsigned char *)label, (int)strlen(label)) == 1 &&
		 EVP_PKEY_derive(pc, out, &outlen) == 1;
	EVP_PKEY_CTX_free(pc);
	return ok ? 0 : -1;
}

/* One direction keyed from label: encrypting (ours) or decrypting (theirs). */
static int way_key(struct way *d, int encrypt, const unsigned char *token, size_t tlen, const unsigned char *salt,
		   size_t slen, const char *label)
{
	unsigned char km[KEYLEN + IVLEN];
	int ok = hkdf(token, tlen, salt, slen, label, km, sizeof(km)) == 0 && (d->ctx = EVP_CIPHER_CTX_new()) &&
		 (encrypt ? EVP_EncryptInit_ex(d->ctx, EVP_aes_256_gcm(), NULL, km, NULL)
			  : EVP_DecryptInit_ex(d->ctx, EVP_aes_256_gcm(), NULL, km, NULL)) == 1;
	memcpy(d->iv, km + KEYLEN, IVLEN);
	OPENSSL_cleanse(km, sizeof(km));
	d->n = 0;
	d->on = ok;
	return ok ? 0 : -1;
}

int co_crypt_key(struct co_wire_crypt *k, int source, const unsigned char *token, size_t tlen, const uint8_t *ns,
		 const uint8_t *nt, size_t nlen, char *err, size_t errlen)
{
	unsigned char salt[128];
	if (2 * nlen > sizeof(salt))
		return snprintf(err, errlen, "migration stream to %s: nonces of %zu bytes", k->peer, nlen), -1;
	memcpy(salt, ns, nlen);
	memcpy(salt + nlen, nt, nlen);
	k->out = malloc(BATCH * (size_t)(HEAD + CO_CRYPT_FRAME + TAG));
	k->in = malloc(CO_CRYPT_FRAME + TAG);
	if (!k->out || !k->in || way_key(&k->tx, 1, token, tlen, salt, 2 * nlen, source ? LABEL_S2T : LABEL_T2S) ||
	    way_key(&k->rx, 0, token, tlen, salt, 2 * nlen, source ? LABEL_T2S : LABEL_S2T))
		return snprintf(err, errlen, "migration stream to %s: cannot set up its encryption (OpenSSL, or out of memory)",
				k->peer), -1;
	return 0;
}

const char *co_crypt_error(const struct co_wire_crypt *k)
{
	return k ? k->err : "";
}

size_t co_crypt_pending(const struct co_wire_crypt *k)
{
	return k ? k->inlen - k->inoff : 0;
}

void co_crypt_set_fd(struct co_wire_crypt *k, int fd)
{
	if (k)
		k->fd = fd;
}
