/*
 * incr_remap - regions that move between two checkpoints.  A 16 MiB region
 * A and a 1 MiB region B are filled with different bytes; after about two
 * seconds (a full checkpoint is taken before) B is moved with mremap into a
 * hole cut in the middle of A and never written again; after two more
 * seconds (an incremental checkpoint is taken before) the program checks
 * and sums A.  The pages that now sit in A's hole were held by the parent
 * image with A's old bytes and were not written since: an incremental that
 * left them to the parent would bring A's bytes back.  Prints RESULT.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "common.h"


int main(void)
{
	size_t a_len = 16 << 20, b_len = 1 << 20;
	unsigned char *a = mmap(0, a_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *b = mmap(0, b_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (a == MAP_FAILED || b == MAP_FAILED)
		FAIL("mmap failed");
	memset(a, 0xAA, a_len);
	memset(b, 0x55, b_len);
	puts("filled");
	fflush(stdout);
	sleep(2);
	unsigned char *hole = a + 4 * b_len;
	if (munmap(hole, b_len) || mremap(b, b_len, b_len, MREMAP_MAYMOVE | MREMAP_FIXED, hole) == MAP_FAILED)
		FAIL("mremap failed");
	puts("moved");
	fflush(stdout);
	sleep(2);
	unsigned long sum = 0;
	for (size_t i = 0; i < a_len; i++) {
		unsigned char want = i >= 4 * b_len && i < 5 * b_len ? 0x55 : 0xAA;
		if (a[i] != want)
			FAIL("byte %zu of A is %#x, expected %#x", i, a[i], want);
		sum = sum * 31 + a[i];
	}
	printf("RESULT %lu\n", sum);
	return 0;
}
