/*
 * uid_forge (a tool of the uid tests, not a program to checkpoint): rewrite
 * a process image the way a process of the group could, since it writes
 * its image itself, and make the record's checksum good again.
 *
 *   uid_forge IMAGE ids          the process record claims root: every uid
 *                                and gid 0, no supplementary group
 *   uid_forge IMAGE cwd PATH     its working directory is PATH
 *   uid_forge IMAGE fd N PATH    its descriptor N (a file it reopens by
 *                                path) is PATH
 *   uid_forge SHARED fcopy PATH  (shared.img) the first file copy is put
 *                                back over PATH (trust_images' fcopy_target)
 *
 * Only plain (not compressed) images.  Exit 0 when the record was found
 * and rewritten.
 */
#include "common.h"
#include <stddef.h>
#include "../../src/common/image.h"
#include "../../src/common/xxh64.c"

void co_memcpy(void *d, const void *s, size_t n) { memcpy(d, s, n); }

static unsigned char *buf;
static size_t len;

/* The record of `type` (the fd-th descriptor record when type is CO_R_FD): its payload, or NULL. */
static unsigned char *find(unsigned type, int fd, struct co_rec_hdr **hdr)
{
	size_t off = 0;
	while (off + sizeof(struct co_rec_hdr) <= len) {
		struct co_rec_hdr *h = (struct co_rec_hdr *)(buf + off);
		CHECK(h->magic == CO_REC_MAGIC, "no record at byte %zu", off);
		unsigned char *p = buf + off + sizeof(*h) + h->pad;
		CHECK(p + h->len + 8 <= buf + len, "record at byte %zu runs past the end", off);
		if (h->type == type && (type != CO_R_FD || ((struct co_fd *)p)->fd == fd)) {
			*hdr = h;
			return p;
		}
		off += sizeof(*h) + h->pad + h->len + 8;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	t_init("uid_forge");
	CHECK(argc >= 3, "usage: uid_forge IMAGE ids | cwd PATH | fd N PATH");
	int f = SYSCHK(open(argv[1], O_RDWR));
	struct stat st;
	SYSCHK(fstat(f, &st));
	len = (size_t)st.st_size;
	buf = malloc(len);
	CHECK(buf != NULL, "out of memory");
	t_read_all(f, buf, len, 0);
	struct co_rec_hdr *h = NULL;
	unsigned char *p = NULL;
	if (!strcmp(argv[2], "ids") || !strcmp(argv[2], "cwd")) {
		p = find(CO_R_PROC, 0, &h);
		CHECK(p && h->len >= offsetof(struct co_proc, groups), "no process record of format 5");
		struct co_proc *pr = (struct co_proc *)p;
		if (!strcmp(argv[2], "ids")) {
			CHECK(pr->creds == 1, "the record has no ids");
			memset(pr->uid, 0, sizeof(pr->uid));
			memset(pr->gid, 0, sizeof(pr->gid));
			pr->ngroups = 0;
		} else {
			CHECK(argc == 4 && strlen(argv[3]) < sizeof(pr->cwd), "usage: uid_forge IMAGE cwd PATH");
			memset(pr->cwd, 0, sizeof(pr->cwd));
			strcpy(pr->cwd, argv[3]);
		}
	} else if (!strcmp(argv[2], "fd")) {
		CHECK(argc == 5, "usage: uid_forge IMAGE fd N PATH");
		p = find(CO_R_FD, atoi(argv[3]), &h);
		CHECK(p != NULL, "no descriptor %s in the image", argv[3]);
		struct co_fd *fr = (struct co_fd *)p;
		CHECK(fr->kind == CO_FD_REG || fr->kind == CO_FD_CHR, "descriptor %s is not reopened by path", argv[3]);
		CHECK(strlen(argv[4]) < sizeof(fr->path) && h->len >= offsetof(struct co_fd, path) + strlen(argv[4]) + 1,
		      "path too long for the record");
		memset(fr->path, 0, h->len - offsetof(struct co_fd, path));
		strcpy(fr->path, argv[4]);
	} else if (!strcmp(argv[2], "fcopy")) {
		CHECK(argc == 4, "usage: uid_forge SHARED fcopy PATH");
		p = find(CO_R_FCOPY, 0, &h);
		CHECK(p != NULL, "no file copy in the image");
		struct co_fcopy *c = (struct co_fcopy *)p;
		CHECK(h->len >= offsetof(struct co_fcopy, path) + strlen(argv[3]) + 1, "path too long for the record");
		memset(c->path, 0, h->len - offsetof(struct co_fcopy, path));
		strcpy(c->path, argv[3]);
	} else {
		FAIL("unknown rewrite %s", argv[2]);
	}
	/* the payload's checksum, as the writer makes it (image.c: seed = sequence number ^ type) */
	uint64_t sum = co_xxh64(p, h->len, h->seq ^ h->type);
	memcpy(p + h->len, &sum, sizeof(sum));
	t_write_all(f, buf, len, 0);
	SYSCHK(close(f));
	return 0;
}
