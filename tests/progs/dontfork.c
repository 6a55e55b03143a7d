/*
 * dontfork: memory laid out the way V8 (Node.js) lays it out, for the
 * node_regions tests.
 *
 *   dontfork [STEPS]        (STEPS default 30, 100 ms apart; no pause
 *                           once $COHORT_TEST_TMP/fast exists)
 *
 * Regions:
 *   A  8 MiB read-write, MADV_DONTFORK, every page written (V8's heap pages);
 *   B  1 MiB MADV_DONTFORK, written, then PROT_NONE (V8 protects pages that
 *      hold data); every 4th step it is made writable, some pages are
 *      written, and it is PROT_NONE again;
 *   C  a 1 GiB PROT_NONE reservation (MAP_NORESERVE), MADV_DONTFORK (V8's
 *      code range), with 40 MiB in its middle made read-write and written;
 *      at step GROW_STEP 4 MiB more of it are made read-write and written;
 *   D  a 256 MiB PROT_NONE reservation without MADV_DONTFORK (a malloc
 *      arena), its first 4 MiB read-write, written and MADV_DONTDUMP;
 *   E  256 KiB read-write, MADV_WIPEONFORK, written (a forked child gets
 *      it zeroed: a random number generator's state).
 * Every step writes a few pages of A, C and D (versions: the step), then
 * checks every word of every written page (B made readable for the moment:
 * no descriptor of /proc/self/mem is kept, which a restart would have to
 * open again), the protections
 * and VmFlags of every part in /proc/self/smaps (dc, wf and dd where the
 * program asked for them and nowhere else; no resident page in the
 * reserved parts), and every 5th step that a forked child gets none of the
 * DONTFORK regions, D as it is and E zeroed.  It prints "step s ok"; any mismatch goes to stderr with exit 1.
 * At the end: "RESULT dontfork STEPS <hash of the page versions>".
 */
#include "common.h"
#include <sys/mman.h>
#include <sys/wait.h>

#define PAGE 4096ul
#define MIB (1ul << 20)
#define A_PAGES (8 * MIB / PAGE)
#define B_PAGES (1 * MIB / PAGE)
#define C_SIZE (1024 * MIB)
#define C_USED_OFF (256 * MIB)
#define C_USED_PAGES (40 * MIB / PAGE)
#define C_GROW_PAGES (4 * MIB / PAGE)
#define D_SIZE (256 * MIB)
#define D_USED_PAGES (4 * MIB / PAGE)
#define E_PAGES (256 * 1024 / PAGE)
#define GROW_STEP 6
#define MAX_STEPS 250

enum { RA, RB, RC, RD, RE, NREG };
struct region {
	const char *name;
	unsigned char *base;	/* first page that holds data */
	size_t pages;		/* pages that hold data now */
	unsigned char *ver;	/* version of each page: the step that last wrote it */
};
static struct region reg[NREG];
static unsigned char ver_a[A_PAGES], ver_b[B_PAGES], ver_c[C_USED_PAGES + C_GROW_PAGES], ver_d[D_USED_PAGES], ver_e[E_PAGES];
static unsigned char *c_res, *d_res;	/* the reservations */

static void fill_page(unsigned char *p, int r, size_t page, int ver)
{
	uint64_t *w = (uint64_t *)p, x = t_mix(((uint64_t)r << 56) ^ ((uint64_t)ver << 32) ^ page) | 1;
	for (size_t i = 0; i < PAGE / 8; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		w[i] = x;
	}
}

static void check_page(const unsigned char *p, int r, size_t page)
{
	static unsigned char want[PAGE];
	fill_page(want, r, page, reg[r].ver[page]);
	if (memcmp(p, want, PAGE) != 0) {
		size_t i = 0;
		while (i < PAGE && p[i] == want[i])
			i++;
		FAIL("region %s page %zu (version %d): byte %zu is %02x, expected %02x", reg[r].name, page,
		     reg[r].ver[page], i, p[i], want[i]);
	}
}

static void write_page(int r, size_t page, int ver)
{
	reg[r].ver[page] = (unsigned char)ver;
	fill_page(reg[r].base + page * PAGE, r, page, ver);
}

static void *map_anon(size_t len, int prot)
{
	void *p = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		FAIL("mmap %zu: %s", len, strerror(errno));
	return p;
}

/* B is PROT_NONE between steps: made writable, pages written, protected again (as V8 does). */
static void write_b(int ver, size_t first, size_t n)
{
	SYSCHK(mprotect(reg[RB].base, B_PAGES * PAGE, PROT_READ | PROT_WRITE));
	for (size_t i = first; i < first + n && i < B_PAGES; i++)
		write_page(RB, i, ver);
	SYSCHK(mprotect(reg[RB].base, B_PAGES * PAGE, PROT_NONE));
}

static void setup(void)
{
	reg[RA] = (struct region){ "A", map_anon(A_PAGES * PAGE, PROT_READ | PROT_WRITE), A_PAGES, ver_a };
	SYSCHK(madvise(reg[RA].base, A_PAGES * PAGE, MADV_DONTFORK));
	reg[RB] = (struct region){ "B", map_anon(B_PAGES * PAGE, PROT_READ | PROT_WRITE), B_PAGES, ver_b };
	SYSCHK(madvise(reg[RB].base, B_PAGES * PAGE, MADV_DONTFORK));
	c_res = map_anon(C_SIZE, PROT_NONE);
	SYSCHK(madvise(c_res, C_SIZE, MADV_DONTFORK));
	reg[RC] = (struct region){ "C", c_res + C_USED_OFF, C_USED_PAGES, ver_c };
	SYSCHK(mprotect(reg[RC].base, C_USED_PAGES * PAGE, PROT_READ | PROT_WRITE));
	d_res = map_anon(D_SIZE, PROT_NONE);
	reg[RD] = (struct region){ "D", d_res, D_USED_PAGES, ver_d };
	SYSCHK(mprotect(reg[RD].base, D_USED_PAGES * PAGE, PROT_READ | PROT_WRITE));
	SYSCHK(madvise(reg[RD].base, D_USED_PAGES * PAGE, MADV_DONTDUMP));
	reg[RE] = (struct region){ "E", map_anon(E_PAGES * PAGE, PROT_READ | PROT_WRITE), E_PAGES, ver_e };
	SYSCHK(madvise(reg[RE].base, E_PAGES * PAGE, MADV_WIPEONFORK));
	for (int r = 0; r < NREG; r++)
		if (r != RB)
			for (size_t i = 0; i < reg[r].pages; i++)
				write_page(r, i, 0);
	write_b(0, 0, B_PAGES);
}

/* The pages of step s: a fixed pseudo-random few of each region. */
static void step_writes(int s)
{
	uint64_t rng = 0x5eed0000u + (uint64_t)s;
	static const size_t per[NREG] = { 32, 0, 64, 16, 4 };
	if (s == GROW_STEP) {
		/* commit 4 MiB more of the reservation, right after the used part */
		SYSCHK(mprotect(reg[RC].base + C_USED_PAGES * PAGE, C_GROW_PAGES * PAGE, PROT_READ | PROT_WRITE));
		for (size_t i = C_USED_PAGES; i < C_USED_PAGES + C_GROW_PAGES; i++)
			write_page(RC, i, s);
		reg[RC].pages = C_USED_PAGES + C_GROW_PAGES;
	}
	for (int r = 0; r < NREG; r++)
		for (size_t k = 0; k < per[r]; k++)
			write_page(r, t_rand(&rng) % reg[r].pages, s);
	if (s % 4 == 0)
		write_b(s, t_rand(&rng) % B_PAGES, 8);
}

static void check_contents(void)
{
	for (int r = 0; r < NREG; r++) {
		if (r == RB) /* PROT_NONE between steps */
			SYSCHK(mprotect(reg[RB].base, B_PAGES * PAGE, PROT_READ));
		for (size_t i = 0; i < reg[r].pages; i++)
			check_page(reg[r].base + i * PAGE, r, i);
		if (r == RB)
			SYSCHK(mprotect(reg[RB].base, B_PAGES * PAGE, PROT_NONE));
	}
}

/* What /proc/self/smaps says of the region holding addr. */
struct vma {
	uintptr_t start, end;
	char perms[5];
	char vmflags[512];	/* " rd wr mr mw me dc " */
	long rss_kb;
};

static int find_vma(uintptr_t addr, struct vma *v)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	int found = 0, in = 0;
	if (!f)
		FAIL("open /proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;
		char perms[5];
		if (sscanf(line, "%lx-%lx %4s ", &s, &e, perms) == 3 && strchr(line, '-') < strchr(line, ' ')) {
			if (found)
				break;
			in = addr >= s && addr < e;
			if (in) {
				v->start = s;
				v->end = e;
				memcpy(v->perms, perms, 5);
				v->vmflags[0] = 0;
				v->rss_kb = -1;
			}
			continue;
		}
		if (!in)
			continue;
		if (strncmp(line, "Rss:", 4) == 0)
			v->rss_kb = strtol(line + 4, NULL, 10);
		if (strncmp(line, "VmFlags:", 8) == 0) {
			snprintf(v->vmflags, sizeof(v->vmflags), "%s", line + 8);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

/*
 * The part of memory at addr has these protections, of the VmFlags dc
 * (MADV_DONTFORK), wf (MADV_WIPEONFORK) and dd (MADV_DONTDUMP) those in
 * flags, and, empty, nothing resident.
 */
static void check_vma(const char *what, const void *addr, const char *perms, const char *flags, int empty)
{
	static const char *const codes[] = { "dc", "wf", "dd" };
	struct vma v;
	if (!find_vma((uintptr_t)addr, &v))
		FAIL("%s: no region at its address in /proc/self/smaps", what);
	if (strcmp(v.perms, perms) != 0)
		FAIL("%s: protections %s, expected %s", what, v.perms, perms);
	for (size_t k = 0; k < sizeof(codes) / sizeof(codes[0]); k++) {
		char code[4] = { ' ', codes[k][0], codes[k][1], 0 };
		int has = strstr(v.vmflags, code) != NULL, want = strstr(flags, codes[k]) != NULL;
		if (has != want)
			FAIL("%s: VmFlags%s %s %s", what, v.vmflags, has ? "has" : "lacks", codes[k]);
	}
	if (empty && v.rss_kb != 0)
		FAIL("%s: a reservation with %ld kB resident", what, v.rss_kb);
}

static void check_layout(void)
{
	size_t c_used = reg[RC].pages * PAGE;
	check_vma("A", reg[RA].base, "rw-p", "dc", 0);
	check_vma("B", reg[RB].base, "---p", "dc", 0);
	check_vma("C below the used part", c_res, "---p", "dc", 1);
	check_vma("C used part", reg[RC].base, "rw-p", "dc", 0);
	check_vma("C used part (end)", reg[RC].base + c_used - 1, "rw-p", "dc", 0);
	check_vma("C above the used part", reg[RC].base + c_used, "---p", "dc", 1);
	check_vma("C (last page)", c_res + C_SIZE - 1, "---p", "dc", 1);
	check_vma("D used part", reg[RD].base, "rw-p", "dd", 0);
	check_vma("D reserved part", d_res + D_USED_PAGES * PAGE, "---p", "", 1);
	check_vma("E", reg[RE].base, "rw-p", "wf", 0);
}

/* A forked child must get neither A, B nor C (MADV_DONTFORK), D as it is, and E zeroed (MADV_WIPEONFORK). */
static void check_fork(void)
{
	pid_t pid = fork();
	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		struct vma v;
		/*
		 * A region copied into the child would begin where it begins in
		 * the parent.  Its hole may hold something else of the child's
		 * meanwhile: the agent's own memory when a checkpoint catches the
		 * child, which mmap puts at the top of the first hole it fits
		 * (the holes of A and C are one, below libc): it covers a start
		 * only by chance.
		 */
		const unsigned char *gone[] = { reg[RA].base, reg[RB].base, c_res, reg[RC].base };
		for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++)
			if (find_vma((uintptr_t)gone[i], &v) && v.start == (uintptr_t)gone[i])
				_exit(10 + (int)i);
		for (size_t i = 0; i < reg[RD].pages; i++)
			check_page(reg[RD].base + i * PAGE, RD, i);
		for (size_t i = 0; i < E_PAGES * PAGE; i++)
			if (reg[RE].base[i])
				_exit(20);
		_exit(0);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			FAIL("waitpid: %s", strerror(errno));
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		FAIL("forked child: status %#x (10+i: DONTFORK region i was copied into it, 20: E not wiped)", st);
}

int main(int argc, char **argv)
{
	t_init("dontfork");
	int steps = argc > 1 ? atoi(argv[1]) : 30;
	if (steps < 1 || steps > MAX_STEPS)
		FAIL("steps must be 1..%d", MAX_STEPS);
	setup();
	check_contents();
	check_layout();
	for (int s = 1; s <= steps; s++) {
		t_pace_ms(100);
		step_writes(s);
		check_contents();
		check_layout();
		if (s % 5 == 0)
			check_fork();
		printf("step %d ok\n", s);
	}
	uint64_t h = T_FNV_INIT;
	for (int r = 0; r < NREG; r++)
		h = t_fnv(h, reg[r].ver, reg[r].pages);
	printf("RESULT dontfork %d %016llx\n", steps, (unsigned long long)h);
	return 0;
}
