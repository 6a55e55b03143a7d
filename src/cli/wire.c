/*
 * wire.c - the migration stream (wire.h): the token, the TCP connection,
 * the mutual proof of the token, control messages and files, all as
 * image records (image.c's one writer and reader), so that every byte is
 * checked as it arrives just as an image on disk is when it is read.
 *
 * The token authenticates the two ends when they meet; after that every
 * byte each way is encrypted and authenticated with keys derived from it
 * and the meeting's nonces (wire_crypt.c, under the writer and reader),
 * so that what the records carry and the code that reads them are those
 * of a plain stream (docs/architecture.md, "Migration", **Trust**).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "progress.h"
#include "util.h"
#include "wire.h"
#include "wire_crypt.h"

/* how long a side waits for the other's next bytes before it gives up on the connection */
#define WIRE_TIMEOUT_S 120
/*
 * A link that goes dead (a cable pulled, a host gone) answers nothing at
 * all: the bytes sent stay unacknowledged, or an idle connection's
 * keepalive probes do.  After this long without an acknowledgement the
 * kernel ends the connection (TCP_USER_TIMEOUT), and the side waiting on
 * it learns so, instead of waiting WIRE_TIMEOUT_S or for ever.
 */
#define WIRE_DEAD_MS 10000
#define WIRE_KEEPIDLE_S 3
#define WIRE_KEEPINTVL_S 1

/* ---- the token ---- */

void co_wire_token(const char *path, unsigned char *key, size_t *keylen, size_t max)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		co_die("token file %s: %s", path, strerror(errno));
	/* a secret others can read is no secret: refused as ssh refuses such a key */
	if (!S_ISREG(st.st_mode))
		co_die("token file %s is not a regular file", path);
	if (st.st_mode & 077)
		co_die("token file %s may be read by others (mode %04o): make it yours alone (chmod 600 %s)", path,
		       (unsigned)(st.st_mode & 07777), path);
	if (st.st_uid != geteuid())
		co_die("token file %s belongs to uid %u, not to you", path, (unsigned)st.st_uid);
	ssize_t n = read(fd, key, max);
	close(fd);
	if (n < 0)
		co_die("token file %s: %s", path, strerror(errno));
	while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r'))
		n--; /* `echo SECRET > FILE` and the secret alone are the same token */
	if (n == 0)
		co_die("token file %s is empty", path);
	if ((size_t)n == max)
		co_die("token file %s is longer than %zu bytes", path, max - 1);
	*keylen = (size_t)n;
}

/* ---- the connection ---- */

int co_wire_addr(const char *arg, char *host, size_t hn, char *port, size_t pn)
{
	const char *colon = strrchr(arg, ':');
	if (!colon || colon == arg || !colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    strlen(colon + 1) > 5 || atoi(colon + 1) > 65535)
		return -1;
	const char *h = arg;
	size_t len = (size_t)(colon - arg);
	if (h[0] == '[') { /* [::1]:4000 */
		if (len < 3 || h[len - 1] != ']')
			return -1;
		h++;
		len -= 2;
	}
	if (len >= hn || strlen(colon + 1) >= pn)
		return -1;
	snprintf(host, hn, "%.*s", (int)len, h);
	snprintf(port, pn, "%s", colon + 1);
	return 0;
}

static struct addrinfo *resolve(const char *host, const char *port, int passive, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 }, *ai = NULL;
	int e = getaddrinfo(host, port, &hints, &ai);
	if (e) {
		snprintf(err, errlen, "%s:%s: %s", host, port, gai_strerror(e));
		return NULL;
	}
	return ai;
}

/* ADDR:PORT of a socket's own end (local) or its peer's. */
static void sock_name(int fd, int local, char *out, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char h[NI_MAXHOST], p[NI_MAXSERV];
	if ((local ? getsockname(fd, (struct sockaddr *)&ss, &len) : getpeername(fd, (struct sockaddr *)&ss, &len)) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, h, sizeof(h), p, sizeof(p), NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(out, n, "?");
		return;
	}
	snprintf(out, n, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
}

int co_wire_listen(const char *host, const char *port, char *shown, size_t n, char *err, size_t errlen)
{
	struct addrinfo *ai = resolve(host, port, 1, err, errlen);
	if (!ai)
		return -1;
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1) < 0) {
		snprintf(err, errlen, "cannot listen on %s:%s: %s", host, port, strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return -1;
	}
	freeaddrinfo(ai);
	sock_name(fd, 1, shown, n);
	return fd;
}

/* Both ends give up on a peer that stops answering, rather than wait for ever. */
static void set_timeouts(int fd)
{
	struct timeval tv = { WIRE_TIMEOUT_S, 0 };
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	int idle = WIRE_KEEPIDLE_S, intvl = WIRE_KEEPINTVL_S, cnt = WIRE_DEAD_MS / 1000, dead = WIRE_DEAD_MS;
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &dead, sizeof(dead));
}

int co_wire_connect(const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo *ai = resolve(host, port, 0, err, errlen);
	if (!ai)
		return -1;
	int fd = -1, e = 0;
	for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) < 0) {
			e = errno;
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		snprintf(err, errlen, "cannot connect to %s:%s: %s", host, port, strerror(e ? e : errno));
		return -1;
	}
	set_timeouts(fd);
	return fd;
}

void co_wire_init(struct co_wire *c, int fd, const char *peer)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	if (!peer[0])
		sock_name(fd, 0, c->peer, sizeof(c->peer));
	snprintf(c->rname, sizeof(c->rname), "the stream from %s", c->peer);
	set_timeouts(fd);
	co_w_init(&c->w, fd, c->wbuf, sizeof(c->wbuf));
	co_r_init(&c->r, fd, c->rname);
	c->crypt = co_crypt_new(fd, c->peer, &c->w, &c->r);
	if (!c->crypt)
		co_die("the stream from %s: out of memory", c->peer);
}

void co_wire_set_fd(struct co_wire *c, int fd)
{
	c->fd = c->w.fd = c->r.fd = fd;
	co_crypt_set_fd(c->crypt, fd);
}

int co_wire_readable(const struct co_wire *c)
{
	return co_crypt_pending(c->crypt) > 0;
}

void co_wire_hang_up(struct co_wire *c)
{
	static char sink[65536];
	struct timeval tv = { 0, 200000 };
	uint64_t end = co_now_ns(CLOCK_MONOTONIC) + 5000000000ULL;
	if (c->fd < 0)
		return;
	shutdown(c->fd, SHUT_WR);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (co_now_ns(CLOCK_MONOTONIC) < end) {
		ssize_t k = read(c->fd, sink, sizeof(sink));
		if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
			break;
	}
	close(c->fd);
	c->fd = -1;
}

/* ---- control messages ---- */

static int send_msg(struct co_wire *c, const struct co_wire_msg *m)
{
	size_t len = offsetof(struct co_wire_msg, text) + strnlen(m->text, CO_WIRE_TEXT - 1) + 1;
	co_w_rec(&c->w, CO_R_WIRE_MSG, m, len);
	return co_w_flush(&c->w) ? -1 : 0;
}

int co_wire_send(struct co_wire *c, unsigned op, int64_t a, int64_t b, const char *text)
{
	static struct co_wire_msg m;
	memset(&m, 0, offsetof(struct co_wire_msg, text));
	m.op = op;
	m.a = a;
	m.b = b;
	snprintf(m.text, sizeof(m.text), "%s", text ? text : "");
	return send_msg(c, &m);
}

/* What went wrong reading: the transport's finding (a frame that failed its tag), else the reader's. */
static const char *read_err(const struct co_wire *c)
{
	const char *e = co_crypt_error(c->crypt);
	return e[0] ? e : c->r.err;
}

/* Why the stream failed, in a line: the reader's finding, or the connection's end. */
static int lost(struct co_wire *c, int e, char *err, size_t errlen)
{
	if (e == 0)
		snprintf(err, errlen, "%s closed the connection", c->peer);
	else
		snprintf(err, errlen, "%s", read_err(c)[0] ? read_err(c) : "the connection was lost");
	return -1;
}

static const char *op_name(unsigned op)
{
	static const char *names[] = { "?", "AUTH", "PROOF", "OK", "REFUSED", "ABORT", "HELLO",
				       "FSTAT", "FSTAT_END", "GEN", "GEN_END", "READY", "GO", "RUNNING", "FCOPY",
				       "SPARSE", "PUSH", "WANT", "DONE" };
	return op < CO_ARRAY_LEN(names) ? names[op] : "?";
}

/* The payload of the message record just read into m (terminated text). */
static int read_msg(struct co_wire *c, struct co_wire_msg *m, char *err, size_t errlen)
{
	if (c->r.hdr.len > sizeof(*m) || co_r_payload(&c->r, m, sizeof(*m)))
		return snprintf(err, errlen, "%s", read_err(c)[0] ? read_err(c) : "oversized message from the peer"), -1;
	m->text[sizeof(m->text) - 1] = 0;
	return 0;
}

int co_wire_recv(struct co_wire *c, struct co_wire_msg *m, unsigned want, char *err, size_t errlen)
{
	int e = co_r_next(&c->r);
	if (e <= 0)
		return lost(c, e, err, errlen);
	if (c->r.hdr.type != CO_R_WIRE_MSG)
		return snprintf(err, errlen, "%s sent a %s record where a message was due", c->peer,
				co_rec_name(c->r.hdr.type)), -1;
	if (read_msg(c, m, err, errlen))
		return -1;
	if (m->op == CO_W_ABORT || m->op == CO_W_REFUSED)
		return snprintf(err, errlen, "%s", m->text[0] ? m->text : "the peer gave up"), -1;
	if (want && m->op != want && m->op != CO_W_OK)
		return snprintf(err, errlen, "%s sent %s where %s was due", c->peer, op_name(m->op), op_name(want)), -1;
	return 0;
}

/* ---- the proof of the token ---- */

static const char ROLE_TARGET[] = "cohort migrate 1: the target proves", ROLE_SOURCE[] = "cohort migrate 1: the source proves";

/* HMAC-SHA256(key, role || source's nonce || target's nonce) */
static void proof(const unsigned char *key, size_t keylen, const char *role, const uint8_t *ns, const uint8_t *nt,
		  uint8_t *mac)
{
	unsigned char msg[64 + 2 * CO_WIRE_NONCE];
	size_t rl = strlen(role);
	memcpy(msg, role, rl);
	memcpy(msg + rl, ns, CO_WIRE_NONCE);
	memcpy(msg + rl + CO_WIRE_NONCE, nt, CO_WIRE_NONCE);
	unsigned int len = CO_WIRE_MAC;
	HMAC(EVP_sha256(), key, (int)keylen, msg, rl + 2 * CO_WIRE_NONCE, mac, &len);
}

static int nonce(uint8_t *out, char *err, size_t errlen)
{
	if (RAND_bytes(out, CO_WIRE_NONCE) == 1)
		return 0;
	snprintf(err, errlen, "cannot make a random nonce (OpenSSL's RAND_bytes failed)");
	return -1;
}

/* Send m with op; the nonce and mac are the caller's. */
static int send_auth(struct co_wire *c, struct co_wire_msg *m, unsigned op)
{
	m->op = op;
	m->text[0] = 0;
	return send_msg(c, m);
}

int co_wire_auth_source(struct co_wire *c, const unsigned char *key, size_t keylen, char *err, size_t errlen)
{
	static struct co_wire_msg mine, theirs;
	uint8_t ns[CO_WIRE_NONCE], nt[CO_WIRE_NONCE], want[CO_WIRE_MAC];
	memset(&mine, 0, sizeof(mine));
	err[0] = 0;
	if (nonce(ns, err, errlen))
		return -1;
	memcpy(mine.nonce, ns, sizeof(ns));
	if (send_auth(c, &mine, CO_W_AUTH))
		return lost(c, -1, err, errlen);
	if (co_wire_recv(c, &theirs, CO_W_AUTH, err, errlen))
		return -1;
	memcpy(nt, theirs.nonce, sizeof(nt));
	proof(key, keylen, ROLE_TARGET, ns, nt, want);
	if (CRYPTO_memcmp(want, theirs.mac, CO_WIRE_MAC) != 0) {
		/* it does not know our secret: it gets nothing more than that verdict */
		co_wire_send(c, CO_W_REFUSED, 0, 0, "wrong token: the source found this target's proof wrong");
		co_wire_hang_up(c);
		return snprintf(err, errlen, "%s does not know our token (the token files differ): nothing was sent",
				c->peer), -1;
	}
	memset(&mine, 0, sizeof(mine));
	proof(key, keylen, ROLE_SOURCE, ns, nt, mine.mac);
	if (send_auth(c, &mine, CO_W_PROOF))
		return lost(c, -1, err, errlen);
	if (co_wire_recv(c, &theirs, CO_W_OK, err, errlen))
		return -1;
	/* both proved: from here on each way is encrypted (the target switched after its OK) */
	return co_crypt_key(c->crypt, 1, key, keylen, ns, nt, CO_WIRE_NONCE, err, errlen);
}

int co_wire_auth_target(struct co_wire *c, const unsigned char *key, size_t keylen, char *err, size_t errlen)
{
	static struct co_wire_msg mine, theirs;
	uint8_t ns[CO_WIRE_NONCE], want[CO_WIRE_MAC];
	err[0] = 0;
	if (co_wire_recv(c, &theirs, CO_W_AUTH, err, errlen))
		return -1;
	memcpy(ns, theirs.nonce, sizeof(ns));
	memset(&mine, 0, sizeof(mine));
	if (nonce(mine.nonce, err, errlen))
		return -1;
	proof(key, keylen, ROLE_TARGET, ns, mine.nonce, mine.mac);
	if (send_auth(c, &mine, CO_W_AUTH))
		return lost(c, -1, err, errlen);
	if (co_wire_recv(c, &theirs, CO_W_PROOF, err, errlen))
		return -1;
	proof(key, keylen, ROLE_SOURCE, ns, mine.nonce, want);
	if (theirs.op != CO_W_PROOF || CRYPTO_memcmp(want, theirs.mac, CO_WIRE_MAC) != 0) {
		co_wire_send(c, CO_W_REFUSED, 0, 0, "wrong token: the target found the source's proof wrong");
		co_wire_hang_up(c);
		return snprintf(err, errlen, "%s does not know our token (the token files differ): refused it", c->peer),
		       -1;
	}
	if (co_wire_send(c, CO_W_OK, 0, 0, NULL))
		return lost(c, -1, err, errlen);
	/* the OK is the last plain record: the source switches once it has read it */
	return co_crypt_key(c->crypt, 0, key, keylen, ns, mine.nonce, CO_WIRE_NONCE, err, errlen);
}

/* ---- files ---- */

/* The bytes of fd from done up to end, in DATA records. */
static int send_bytes(struct co_wire *c, int fd, const char *path, uint64_t done, uint64_t end, char *err,
		      size_t errlen)
{
	static char buf[CO_WIRE_CHUNK];
	if (lseek(fd, (off_t)done, SEEK_SET) < 0)
		return snprintf(err, errlen, "cannot read %s at byte %llu: %s", path, (unsigned long long)done,
				strerror(errno)), -1;
	while (done < end && !c->w.err) {
		ssize_t k = read(fd, buf, end - done < sizeof(buf) ? end - done : sizeof(buf));
		if (k <= 0)
			return snprintf(err, errlen, "cannot read %s at byte %llu: %s", path, (unsigned long long)done,
					k ? strerror(errno) : "it became shorter"), -1;
		co_w_rec(&c->w, CO_R_WIRE_DATA, buf, (uint64_t)k);
		done += (uint64_t)k;
		c->sent += (uint64_t)k;
		co_progress_add(c->pr, (uint64_t)k);
	}
	return 0;
}

/*
 * The file at path as name: announced (its whole size, and the digest
 * given, else 0: none), then its bytes but the n holes.  Read once, as it
 * goes: the records carry their own checksums, so that a digest of the
 * whole read first (another pass over each file before its first byte
 * left) checked nothing they do not.
 */
static int send_file(struct co_wire *c, const char *path, const char *name, const struct co_wire_hole *holes,
		     uint32_t n, const uint64_t *digest, char *err, size_t errlen)
{
	static struct co_wire_file f;
	memset(&f, 0, sizeof(f));
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (digest)
		f.digest = *digest;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	snprintf(f.name, sizeof(f.name), "%s", name);
	f.size = (uint64_t)st.st_size;
	co_w_rec(&c->w, CO_R_WIRE_FILE, &f, sizeof(f));
	uint64_t at = 0;
	int bad = 0;
	for (uint32_t i = 0; i <= n && !bad; i++) {
		uint64_t end = i < n ? holes[i].off : f.size;
		bad = end < at || end > f.size || send_bytes(c, fd, path, at, end, err, errlen);
		if (bad && end < at)
			snprintf(err, errlen, "%s: hole %u out of order", path, i);
		at = i < n ? end + holes[i].len : at;
	}
	close(fd);
	if (bad)
		return -1;
	if (co_w_flush(&c->w))
		return snprintf(err, errlen, "sending %s to %s: %s", name, c->peer, strerror(-c->w.err)), -1;
	return 0;
}

int co_wire_send_file(struct co_wire *c, const char *path, const char *name, const uint64_t *digest, char *err,
		      size_t errlen)
{
	return send_file(c, path, name, NULL, 0, digest, err, errlen);
}

int co_wire_send_sparse(struct co_wire *c, const char *path, const char *name, const struct co_wire_hole *holes,
			uint32_t n, const uint64_t *digest, char *err, size_t errlen)
{
	if (n > CO_WIRE_MAX_HOLES)
		return snprintf(err, errlen, "%s: more than %zu holes", path, (size_t)CO_WIRE_MAX_HOLES), -1;
	if (co_wire_send(c, CO_W_SPARSE, n, 0, name))
		return lost(c, -1, err, errlen);
	co_w_rec(&c->w, CO_R_WIRE_DATA, holes, (uint64_t)n * sizeof(*holes));
	return send_file(c, path, name, holes, n, digest, err, errlen);
}

int co_wire_recv_holes(struct co_wire *c, const struct co_wire_msg *m, struct co_wire_hole *holes, uint32_t max,
		       uint32_t *n, char *err, size_t errlen)
{
	int e = co_r_next(&c->r);
	if (e <= 0)
		return lost(c, e, err, errlen);
	uint64_t len = c->r.hdr.len;
	if (c->r.hdr.type != CO_R_WIRE_DATA || m->a < 0 || (uint64_t)m->a > max ||
	    len != (uint64_t)m->a * sizeof(*holes))
		return snprintf(err, errlen, "%s: a hole list that does not match its SPARSE (%lld holes)", c->peer,
				(long long)m->a), -1;
	if (co_r_read(&c->r, holes, len) || co_r_finish(&c->r))
		return snprintf(err, errlen, "%s", read_err(c)), -1;
	*n = (uint32_t)m->a;
	return 0;
}

int co_wire_next_file(struct co_wire *c, struct co_wire_file *f, struct co_wire_msg *m, char *err, size_t errlen)
{
	int e = co_r_next(&c->r);
	if (e <= 0)
		return lost(c, e, err, errlen);
	if (c->r.hdr.type == CO_R_WIRE_MSG) {
		if (read_msg(c, m, err, errlen))
			return -1;
		if (m->op == CO_W_ABORT)
			return snprintf(err, errlen, "%s", m->text), -1;
		return 0;
	}
	if (c->r.hdr.type != CO_R_WIRE_FILE)
		return snprintf(err, errlen, "%s sent a %s record where a file was due", c->peer,
				co_rec_name(c->r.hdr.type)), -1;
	if (co_r_payload(&c->r, f, sizeof(*f)))
		return snprintf(err, errlen, "%s", read_err(c)), -1;
	f->name[sizeof(f->name) - 1] = 0;
	return 1;
}

static int pwrite_all(int fd, const char *p, size_t n, uint64_t at)
{
	while (n) {
		ssize_t k = pwrite(fd, p, n, (off_t)at);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
		at += (uint64_t)k;
	}
	return 0;
}

/*
 * The bytes of f into fd, around the n holes (lseek over each: the file
 * has its full size, the holes unwritten); with no holes and a digest
 * announced (a file the manifest gives one), checked against it too.
 */
static int recv_file(struct co_wire *c, const struct co_wire_file *f, int fd, const struct co_wire_hole *holes,
		     uint32_t n, char *err, size_t errlen)
{
	/*
	 * A record's whole (CO_WIRE_CHUNK) at a time: the transport opens each
	 * frame straight into it but the one a record's header splits (a
	 * smaller read took every frame through a copy), one pwrite each.
	 */
	static char buf[CO_WIRE_CHUNK];
	struct co_xxh64 h;
	co_xxh64_init(&h, 0);
	uint64_t done = 0, at = 0, gap = 0; /* done: bytes received; at: their offset in the file */
	for (uint32_t i = 0; i < n; i++)
		gap += holes[i].len;
	if (gap > f->size)
		return snprintf(err, errlen, "%s: holes of %llu bytes in %llu", f->name, (unsigned long long)gap,
				(unsigned long long)f->size), -1;
	uint32_t hole = 0;
	int digest = !n && f->digest; /* (a sparse file's is checked once post-copy has filled it) */
	while (done < f->size - gap) {
		int e = co_r_next(&c->r);
		if (e <= 0)
			return lost(c, e, err, errlen);
		if (c->r.hdr.type != CO_R_WIRE_DATA || c->r.hdr.len > f->size - gap - done)
			return snprintf(err, errlen, "%s: byte %llu of %s: a %s record of %llu bytes where its data was due",
					c->peer, (unsigned long long)done, f->name, co_rec_name(c->r.hdr.type),
					(unsigned long long)c->r.hdr.len), -1;
		for (uint64_t left = c->r.hdr.len; left;) {
			while (hole < n && at == holes[hole].off) /* its bytes come in post-copy */
				at += holes[hole++].len;
			uint64_t stop = hole < n ? holes[hole].off : f->size;
			size_t k = left < sizeof(buf) ? (size_t)left : sizeof(buf);
			k = stop - at < k ? (size_t)(stop - at) : k;
			if (stop <= at)
				return snprintf(err, errlen, "%s: holes out of order", f->name), -1;
			if (co_r_read(&c->r, buf, k))
				return snprintf(err, errlen, "%s", read_err(c)), -1;
			if (pwrite_all(fd, buf, k, at))
				return snprintf(err, errlen, "cannot write %s: %s", f->name, strerror(errno)), -1;
			if (digest)
				co_xxh64_update(&h, buf, k);
			left -= k;
			done += k;
			at += k;
			c->received += k;
		}
		if (co_r_finish(&c->r))
			return snprintf(err, errlen, "%s", read_err(c)), -1;
	}
	if (n && ftruncate(fd, (off_t)f->size) < 0)
		return snprintf(err, errlen, "cannot write %s: %s", f->name, strerror(errno)), -1;
	if (digest && co_xxh64_digest(&h) != f->digest)
		return snprintf(err, errlen, "%s arrived damaged: its digest is not the one announced", f->name), -1;
	return 0;
}

int co_wire_recv_file(struct co_wire *c, const struct co_wire_file *f, int fd, char *err, size_t errlen)
{
	return recv_file(c, f, fd, NULL, 0, err, errlen);
}

int co_wire_recv_sparse(struct co_wire *c, const struct co_wire_file *f, int fd, const struct co_wire_hole *holes,
			uint32_t n, char *err, size_t errlen)
{
	return recv_file(c, f, fd, holes, n, err, errlen);
}
