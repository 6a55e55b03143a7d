/*
 * restorer.c - cohort-restore: turns a fresh process into the one in an
 * image.  Runs without libc, linked at a fixed address far from where
 * programs live (CO_RESTORER_BASE), with its working memory right above.
 *
 *   cohort-restore IMAGE SOCKET GENERATION
 *
 * The process was created by the group's init with the recorded pid.
 * Steps: move onto our own stack, copy our code to anonymous memory (so no
 * file of ours stays mapped and /proc/self/exe can be set), read the
 * image's metadata, check it fits this kernel, restore descriptors, rebuild
 * the address space, restore process attributes, then recreate the threads
 * and jump into the parked contexts.  Any failure before the address space
 * is touched leaves a clean error; after that the process just exits with
 * the message, and the coordinator reports it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include "resume.h"
#include "procfs.h"
#include "res.h"
#include "sys.h"
#include "util.h"

#define ZONE_SIZE (128UL << 20)
#define STACK_SIZE (1UL << 20)
#define SCRATCH_SIZE (32UL << 20)

extern char __executable_start[];
void co_switch_stack(void *sp, void (*fn)(void *), void *arg) __attribute__((noreturn));

static struct co_reader reader;
static struct co_proc proc;
static struct co_rstctx rc;
static char err[512];
static char image_path[CO_PATH], sock_path[256];
static uint64_t generation;
static int errfd = 2;

/* These would be libc's; the compiler may emit calls to them. */
void *memcpy(void *d, const void *s, size_t n) { co_memcpy(d, s, n); return d; }
void *memset(void *d, int c, size_t n) { co_memset(d, c, n); return d; }
int memcmp(const void *a, const void *b, size_t n) { return co_memcmp(a, b, n); }
void *memmove(void *d, const void *s, size_t n)
{
	char *dp = d;
	const char *sp = s;
	if (dp < sp)
		while (n--)
			*dp++ = *sp++;
	else
		while (n--)
			dp[n] = sp[n];
	return d;
}

static __attribute__((noreturn)) void die(const char *msg)
{
	char line[700];
	size_t n = co_fmt(line, sizeof(line), "cohort: restore failed: %s\n", msg);
	co_write(errfd, line, n);
	co_exit_group(70);
	__builtin_unreachable();
}

/* Replace each file-backed mapping of our own binary with an anonymous copy. */
static void anonymize_self(void)
{
	static struct co_maps m;
	static struct co_mapent e[16];
	int n = 0;
	if (co_maps_open(&m, "/proc/self/maps"))
		die("cannot read /proc/self/maps");
	while (n < 16 && co_maps_next(&m, &e[n]) == 1)
		if (e[n].start >= CO_RESTORER_BASE && e[n].start < CO_RESTORER_BASE + (16UL << 20) &&
		    e[n].path[0] == '/')
			n++;
	co_maps_close(&m);
	for (int i = 0; i < n; i++) {
		uint64_t len = e[i].end - e[i].start;
		long tmp = co_mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (tmp < 0 && tmp > -4096)
			die("out of memory");
		co_memcpy((void *)tmp, (void *)e[i].start, len);
		co_mprotect((void *)tmp, len, (int)e[i].prot);
		if (co_mremap((void *)tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)e[i].start) < 0)
			die("cannot move the restorer");
	}
}

static void *zalloc(uint64_t *next, uint64_t size)
{
	void *p = (void *)*next;
	*next += CO_PAGE_ALIGN(size);
	return p;
}

/* Read every record up to the first page map, restoring descriptors on the way. */
static void read_metadata(uint64_t *next)
{
	struct co_head h;
	if (co_r_expect(&reader, CO_R_HEAD, &h, sizeof(h)))
		die(reader.err);
	if (co_strcmp(h.magic, CO_IMG_MAGIC) != 0 || h.kind != CO_KIND_PROCESS)
		die("not a cohort process image");
	if (h.version != CO_IMG_VERSION)
		die("image format version not supported by this cohort");
	if (co_r_expect(&reader, CO_R_PROC, &proc, sizeof(proc)))
		die(reader.err);
	rc.threads = zalloc(next, sizeof(struct co_thread) * CO_MAX_THREADS);
	rc.vmas = zalloc(next, sizeof(struct co_vma) * CO_MAX_VMAS);
	for (;;) {
		int e = co_r_next(&reader);
		if (e <= 0)
			die(e < 0 ? reader.err : "image ends early");
		unsigned t = reader.hdr.type;
		if (t == CO_R_THREAD) {
			if (rc.nthreads == CO_MAX_THREADS)
				die("too many threads in image");
			if (co_r_payload(&reader, &rc.threads[rc.nthreads++], sizeof(struct co_thread)))
				die(reader.err);
		} else if (t == CO_R_FD) {
			static struct co_fd f;
			if (co_r_payload(&reader, &f, sizeof(f)))
				die(reader.err);
			f.path[sizeof(f.path) - 1] = 0;
			if (f.fd < 0 || f.fd >= rc.fd_base)
				die("descriptor number out of range");
			if (co_files_restore_one(&rc, &f))
				die(err);
		} else if (t == CO_R_VMA) {
			if (rc.nvmas == CO_MAX_VMAS)
				die("too many regions in image");
			struct co_vma *v = &rc.vmas[rc.nvmas++];
			if (co_r_payload(&reader, v, sizeof(*v)))
				die(reader.err);
			v->path[sizeof(v->path) - 1] = 0;
			if (v->start >= v->end || (v->start | v->end) & (CO_PAGE - 1))
				die("damaged region record");
		} else if (t == CO_R_PAGEMAP || t == CO_R_END) {
			co_r_unread(&reader); /* co_mem_restore() reads from here on */
			return;
		} else {
			co_fmt(err, sizeof(err), "%s: byte %lu: unexpected %s record", reader.name,
			       (unsigned long)reader.rec_off, co_rec_name(t));
			die(err);
		}
	}
}

static void restore(void *unused)
{
	(void)unused;
	uint64_t next = CO_RESTORER_BASE + (16UL << 20) + STACK_SIZE;
	anonymize_self();

	/* our descriptors go high, out of the program's way */
	rc.err = err;
	rc.errlen = sizeof(err);
	rc.proc = &proc;
	rc.r = &reader;
	rc.image = image_path;
	rc.zone = CO_RESTORER_BASE;
	rc.zone_len = ZONE_SIZE;
	if (co_proc_restore_early(&rc))
		die(err);
	int imgfd = (int)co_open(image_path, O_RDONLY | O_CLOEXEC, 0);
	if (imgfd < 0) {
		co_fmt(err, sizeof(err), "cannot open %s (errno %d)", image_path, -imgfd);
		die(err);
	}
	int base = rc.fd_base;
	for (int i = 0; i < 3; i++) {
		long r = co_fcntl(i, F_DUPFD_CLOEXEC, base + 1 + i);
		rc.stdio[i] = r >= 0 ? (int)r : (int)co_open("/dev/null", O_RDWR | O_CLOEXEC, 0);
	}
	errfd = rc.stdio[2];
	int high = (int)co_fcntl(imgfd, F_DUPFD_CLOEXEC, base + 8);
	co_close(imgfd);
	co_sys3(SYS_close_range, 0, (unsigned)base - 1, 0);
	co_r_init(&reader, high, image_path);

	rc.scratch = zalloc(&next, SCRATCH_SIZE);
	rc.scratch_len = SCRATCH_SIZE;
	read_metadata(&next);
	if (proc.pid != (int)co_getpid()) {
		co_fmt(err, sizeof(err), "image is of pid %d but the restorer runs as pid %ld", proc.pid,
		       co_getpid());
		die(err);
	}
	if (co_mem_check(&rc))
		die(err);
	if (co_mem_restore(&rc))
		die(err);
	if (co_proc_restore(&rc))
		die(err);

	struct co_resume *rs = (struct co_resume *)proc.agent_info;
	rs->magic = CO_RESUME_MAGIC;
	rs->zone = rc.zone;
	rs->zone_len = rc.zone_len;
	rs->generation = generation;
	co_strlcpy(rs->sock, sock_path, sizeof(rs->sock));

	/* co_threads_restore() closes these just before the last jump */
	for (int i = 0; i < 3; i++)
		rc.own_fds[rc.nown_fds++] = rc.stdio[i];
	rc.own_fds[rc.nown_fds++] = high;
	if (co_threads_restore(&rc))
		die(err);
	die("thread restore returned");
}

void co_restorer_main(long *sp)
{
	int argc = (int)sp[0];
	char **argv = (char **)(sp + 1);
	uint64_t all = ~0ULL;
	co_sigprocmask(SIG_SETMASK, &all, 0);
	if (argc != 4)
		die("usage: cohort-restore IMAGE SOCKET GENERATION");
	co_strlcpy(image_path, argv[1], sizeof(image_path));
	co_strlcpy(sock_path, argv[2], sizeof(sock_path));
	generation = co_strtoul(argv[3], 0, 10);

	/* the working area: stack and tables, right above our code */
	uint64_t zone = CO_RESTORER_BASE + (16UL << 20);
	long r = co_mmap((void *)zone, ZONE_SIZE - (16UL << 20), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE | MAP_NORESERVE, -1, 0);
	if (r != (long)zone)
		die("cannot set up the restorer's working area");
	co_switch_stack((void *)(zone + STACK_SIZE), restore, 0);
}
