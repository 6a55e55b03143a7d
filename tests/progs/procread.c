/*
 * procread: a program reading its own /proc/self/maps and smaps, part by
 * part, for the proc_read_midway test.
 *
 *   procread [STEPS]        (STEPS default 30)
 *
 * First it opens /proc/self/smaps, reads its first HOLD bytes, prints
 * "holding smaps at byte HOLD" and waits for $COHORT_TEST_TMP/go.1 with
 * the descriptor open (a checkpoint meanwhile must not be taken: after a
 * restart the rest of the file would be other text); then it reads the
 * rest and checks all of it.  Each step then maps a region of its own
 * (a different size each step, so that the map changes) and reads
 * /proc/self/maps in small read()s with 1 ms between them (the descriptor
 * read part-way much of the time), and checks every line: the form
 * "start-end perms offset dev inode [path]", regions in order and apart,
 * and the regions holding a static variable, a stack variable, the heap
 * and the step's own region found with the protections they have.  Any
 * mismatch goes to stderr with exit 1.  It prints "step s ok" and at the
 * end "RESULT procread STEPS <hash of the region sizes>".
 */
#include "common.h"
#include <sys/mman.h>

#define HOLD 700
#define CHUNK 256
#define MAX_TEXT (1 << 20)

static char text[MAX_TEXT];
static int static_var = 1;

/* The whole file at path, read CHUNK bytes at a time, pausing gap_ms between reads; its length. */
static size_t read_slowly(int fd, size_t have, int gap_ms)
{
	for (;;) {
		if (have + CHUNK >= MAX_TEXT)
			FAIL("more than %d bytes of /proc text", MAX_TEXT);
		ssize_t n = read(fd, text + have, CHUNK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			FAIL("read: %s", strerror(errno));
		if (n == 0)
			break;
		have += (size_t)n;
		if (gap_ms)
			t_sleep_ms(gap_ms);
	}
	text[have] = 0;
	return have;
}

struct want {
	const char *what;
	uintptr_t addr;
	const char *perms;
	int found;
};

/*
 * Every line of maps (or of smaps: the header lines, the others being
 * "Name: value" or VmFlags) well formed, the regions in order, and each
 * wanted address inside a region with its protections.
 */
static void check_text(const char *name, size_t len, struct want *w, int nw)
{
	if (len == 0 || text[len - 1] != '\n')
		FAIL("%s: %zu bytes, not ending a line", name, len);
	uintptr_t last_end = 0;
	int lineno = 0, headers = 0;
	for (char *line = text, *nl; *line; line = nl + 1) {
		nl = strchr(line, '\n');
		*nl = 0;
		lineno++;
		unsigned long s, e, off, ino;
		char perms[8], dev[16];
		int used = 0;
		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %n", &s, &e, perms, &off, dev, &ino, &used) >= 6 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			headers++;
			if (e <= s || s < last_end || strlen(perms) != 4 || !strchr(dev, ':'))
				FAIL("%s line %d out of order or malformed: %s", name, lineno, line);
			last_end = e;
			for (int i = 0; i < nw; i++)
				if (w[i].addr >= s && w[i].addr < e) {
					if (strcmp(perms, w[i].perms) != 0)
						FAIL("%s: %s is in %s, protections %s, expected %s", name, w[i].what, line,
						     perms, w[i].perms);
					w[i].found = 1;
				}
			continue;
		}
		/* smaps: "Rss:     12 kB", "VmFlags: rd wr", "THPeligible:    0" */
		char key[64];
		if (sscanf(line, "%63[A-Za-z_]:", key) != 1 || !strchr(line, ':'))
			FAIL("%s line %d malformed: \"%s\"", name, lineno, line);
	}
	if (!headers)
		FAIL("%s: no region", name);
	for (int i = 0; i < nw; i++)
		if (!w[i].found)
			FAIL("%s: no region holds %s (%#lx)", name, w[i].what, (unsigned long)w[i].addr);
}

int main(int argc, char **argv)
{
	t_init("procread");
	int steps = argc > 1 ? atoi(argv[1]) : 30;
	if (steps < 1 || steps > 1000)
		FAIL("steps must be 1..1000");
	int stack_var = 2;
	char *heap = malloc(64);
	SYSCHK(heap ? 0 : -1);
	struct want base[] = {
		{ "a static variable", (uintptr_t)&static_var, "rw-p", 0 },
		{ "a stack variable", (uintptr_t)&stack_var, "rw-p", 0 },
		{ "the heap", (uintptr_t)heap, "rw-p", 0 },
	};

	int fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		FAIL("open /proc/self/smaps: %s", strerror(errno));
	size_t have = 0;
	while (have < HOLD) {
		ssize_t n = read(fd, text + have, HOLD - have);
		if (n <= 0)
			FAIL("read /proc/self/smaps: %s", n ? strerror(errno) : "ends early");
		have += (size_t)n;
	}
	printf("holding smaps at byte %d\n", HOLD);
	fflush(stdout);
	t_wait_go(1);
	have = read_slowly(fd, have, 0);
	close(fd);
	check_text("smaps", have, base, 3);
	printf("step 0 ok\n");
	fflush(stdout);

	uint64_t h = T_FNV_INIT;
	for (int s = 1; s <= steps; s++) {
		size_t len = (size_t)(1 + s % 7) * 4096;
		char *own = mmap(NULL, len, s % 2 ? PROT_READ : PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (own == MAP_FAILED)
			FAIL("mmap: %s", strerror(errno));
		struct want w[4];
		memcpy(w, base, sizeof(base));
		for (int i = 0; i < 3; i++)
			w[i].found = 0;
		w[3] = (struct want){ "the step's region", (uintptr_t)own + len - 1, s % 2 ? "r--p" : "rw-p", 0 };
		fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			FAIL("open /proc/self/maps: %s", strerror(errno));
		have = read_slowly(fd, 0, 1);
		close(fd);
		check_text("maps", have, w, 4);
		SYSCHK(munmap(own, len));
		h = t_fnv_u64(h, len);
		printf("step %d ok\n", s);
		fflush(stdout);
		t_sleep_ms(30);
	}
	printf("RESULT procread %d %016llx\n", steps, (unsigned long long)h);
	return 0;
}
