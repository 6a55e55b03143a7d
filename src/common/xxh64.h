/*
 * xxh64.h - the XXH64 hash (Yann Collet's xxHash, 64-bit variant), written
 * freestanding so the restorer can verify images without libc.  Every image
 * record carries the XXH64 of its payload.
 */
#ifndef COHORT_XXH64_H
#define COHORT_XXH64_H

#include <stddef.h>
#include <stdint.h>

struct co_xxh64 {
	uint64_t total;
	uint64_t v[4];
	unsigned char buf[32];
	unsigned buffered;
	uint64_t seed;
};

void co_xxh64_init(struct co_xxh64 *s, uint64_t seed);
void co_xxh64_update(struct co_xxh64 *s, const void *p, size_t n);
uint64_t co_xxh64_digest(const struct co_xxh64 *s);
uint64_t co_xxh64(const void *p, size_t n, uint64_t seed);

#endif
