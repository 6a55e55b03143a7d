/* xxh64.c - XXH64, streaming form.  See xxh64.h. */
#include "xxh64.h"
#include "util.h"

#define P1 0x9E3779B185EBCA87ULL
#define P2 0xC2B2AE3D27D4EB4FULL
#define P3 0x165667B19E3779F9ULL
#define P4 0x85EBCA77C2B2AE63ULL
#define P5 0x27D4EB2F165667C5ULL

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t rd64(const unsigned char *p) { uint64_t v; __builtin_memcpy(&v, p, 8); return v; }
static inline uint32_t rd32(const unsigned char *p) { uint32_t v; __builtin_memcpy(&v, p, 4); return v; }

static inline uint64_t round1(uint64_t acc, uint64_t in)
{
	acc += in * P2;
	acc = rotl(acc, 31);
	return acc * P1;
}

static inline uint64_t merge(uint64_t acc, uint64_t v)
{
	acc ^= round1(0, v);
	return acc * P1 + P4;
}

void co_xxh64_init(struct co_xxh64 *s, uint64_t seed)
{
	s->total = 0;
	s->buffered = 0;
	s->seed = seed;
	s->v[0] = seed + P1 + P2;
	s->v[1] = seed + P2;
	s->v[2] = seed;
	s->v[3] = seed - P1;
}

/* Consume whole 32-byte stripes; returns the bytes used. */
static size_t stripes(uint64_t *v, const unsigned char *p, size_t n)
{
	uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
	size_t done = 0;
	for (; n - done >= 32; done += 32) {
		a = round1(a, rd64(p + done));
		b = round1(b, rd64(p + done + 8));
		c = round1(c, rd64(p + done + 16));
		d = round1(d, rd64(p + done + 24));
	}
	v[0] = a, v[1] = b, v[2] = c, v[3] = d;
	return done;
}

void co_xxh64_update(struct co_xxh64 *s, const void *data, size_t n)
{
	const unsigned char *p = data;
	s->total += n;
	if (s->buffered) {
		size_t take = 32 - s->buffered;
		if (take > n)
			take = n;
		__builtin_memcpy(s->buf + s->buffered, p, take);
		s->buffered += take;
		p += take;
		n -= take;
		if (s->buffered < 32)
			return;
		stripes(s->v, s->buf, 32);
		s->buffered = 0;
	}
	size_t used = stripes(s->v, p, n);
	p += used;
	n -= used;
	if (n) {
		__builtin_memcpy(s->buf, p, n);
		s->buffered = n;
	}
}

uint64_t co_xxh64_digest(const struct co_xxh64 *s)
{
	uint64_t h;
	if (s->total >= 32) {
		h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
		for (int i = 0; i < 4; i++)
			h = merge(h, s->v[i]);
	} else {
		h = s->seed + P5;
	}
	h += s->total;
	const unsigned char *p = s->buf;
	unsigned n = s->buffered;
	for (; n >= 8; n -= 8, p += 8) {
		h ^= round1(0, rd64(p));
		h = rotl(h, 27) * P1 + P4;
	}
	if (n >= 4) {
		h ^= (uint64_t)rd32(p) * P1;
		h = rotl(h, 23) * P2 + P3;
		p += 4;
		n -= 4;
	}
	for (; n; n--, p++) {
		h ^= (*p) * P5;
		h = rotl(h, 11) * P1;
	}
	h ^= h >> 33;
	h *= P2;
	h ^= h >> 29;
	h *= P3;
	h ^= h >> 32;
	return h;
}

uint64_t co_xxh64(const void *p, size_t n, uint64_t seed)
{
	struct co_xxh64 s;
	co_xxh64_init(&s, seed);
	co_xxh64_update(&s, p, n);
	return co_xxh64_digest(&s);
}
