/*
 * fuzz_image.c - libFuzzer target for the image readers: every input is
 * read as a cohort file by `cohort inspect` (one record walk, each
 * record's description, the page streams it names) and, placed in a
 * generation directory as its manifest, by the manifest reader and the
 * check of the files it lists.  The readers must refuse what they cannot
 * read with a message, never crash, hang or read out of bounds.
 *
 * The custom mutator reseals what libFuzzer mutates: each record's
 * sequence number, header check and payload checksum are made right
 * again, so that mutations reach the record contents and the readers
 * behind the checksums instead of stopping at the first one.
 *
 *   make fuzz; build/fuzz/fuzz_image -close_fd_mask=3 CORPUS_DIR
 * (tests/cases/fuzz.sh runs it briefly in make check on a fresh corpus.)
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli/cli.h"
#include "image.h"
#include "xxh64.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max);

static char dir[4096], manifest[4200];

static void cleanup(void)
{
	unlink(manifest);
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/cohort-fuzz.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
	mkdir(dir, 0700);
	snprintf(manifest, sizeof(manifest), "%s/manifest", dir);
	atexit(cleanup);
	return 0;
}

static void put(const char *path, const uint8_t *data, size_t size)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		abort();
	if (size && write(fd, data, size) != (ssize_t)size)
		abort();
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	/* as a file of any kind, through inspect (text and JSON) */
	put(manifest, data, size);
	co_cmd_inspect(manifest, size && (data[0] & 1));
	/* as a generation's manifest */
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	int n;
	if (co_read_manifest(dir, &m, p, CO_TABLE_SLOTS, &n, err, sizeof(err)) == 0)
		co_gen_complete(dir, err, sizeof(err));
	return 0;
}

/* Make each record's header and checksum right again (image.c's format). */
static void reseal(uint8_t *d, size_t size)
{
	size_t off = 0;
	for (uint64_t seq = 0; off + sizeof(struct co_rec_hdr) + 8 <= size; seq++) {
		struct co_rec_hdr h;
		memcpy(&h, d + off, sizeof(h));
		h.magic = CO_REC_MAGIC;
		h.seq = seq;
		if (h.pad > 4096 || off + sizeof(h) + h.pad + 8 > size)
			h.pad = 0;
		size_t room = size - off - sizeof(h) - h.pad - 8;
		if (h.len > room)
			h.len = room;
		memset(d + off + sizeof(h), 0, h.pad);
		uint8_t *payload = d + off + sizeof(h) + h.pad;
		uint64_t sum = co_xxh64(payload, h.len, h.seq ^ h.type);
		memcpy(payload + h.len, &sum, sizeof(sum));
		h.check = 0;
		h.check = (uint32_t)co_xxh64(&h, sizeof(h), 0);
		memcpy(d + off, &h, sizeof(h));
		off += sizeof(h) + h.pad + h.len + 8;
	}
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max, unsigned seed)
{
	size = LLVMFuzzerMutate(data, size, max);
	if (seed % 8) /* now and then leave a broken checksum: the readers must refuse those too */
		reseal(data, size);
	return size;
}
