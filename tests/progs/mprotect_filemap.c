/*
 * mprotect_filemap: memory protections and file mappings.
 *   - anon region made PROT_READ after filling;
 *   - anon region made PROT_NONE with data in it (made readable on some
 *     steps to verify, then PROT_NONE again);
 *   - anon region split into three VMAs by mprotect of its middle;
 *   - MAP_PRIVATE read/write mapping of a file the test creates, with some
 *     pages modified privately (the file itself must stay unchanged), and a
 *     read-only MAP_PRIVATE mapping of the same file at a file offset;
 *   - MAP_SHARED read/write mapping of a file: writes through the mapping
 *     must reach the file (checked with pread) and pwrite()s to the file
 *     must show up in the mapping.
 * Protections and mapping kinds are also checked in /proc/self/maps.
 * The fds of the mapped files are closed right after mmap.
 */
#include "common.h"
#include <limits.h>
#include <sys/mman.h>

#define STEPS 10
#define PG 4096ul

static unsigned char *r_ro, *r_none, *r_split, *f_priv, *f_priv_ro, *f_shared;
static char dir[PATH_MAX], priv_path[PATH_MAX], shared_path[PATH_MAX];

static uint64_t seed(uint64_t region, uint64_t page, uint64_t ver) { return t_mix((region << 48) ^ (page << 16) ^ ver); }

static void fill(void *p, uint64_t sd)
{
	uint64_t *w = p;

	for (size_t i = 0; i < PG / 8; i++)
		w[i] = sd ^ (i * 0x2545f4914f6cdd1dull);
}

static int ok(const void *p, uint64_t sd)
{
	const uint64_t *w = p;

	for (size_t i = 0; i < PG / 8; i++)
		if (w[i] != (sd ^ (i * 0x2545f4914f6cdd1dull)))
			return 0;
	return 1;
}

/*
 * perms ("rw-p"), bounds and path of the mapping that contains addr; 0 if
 * none.  The kernel merges a new anonymous mapping with an equal neighbour,
 * so a region need not start its own mapping: the test checks the bounds it
 * controls (the mprotect split) explicitly instead.
 */
static int maps_lookup(const void *addr, char perms[5], char *path, size_t plen,
		       unsigned long *mstart, unsigned long *mend)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[PATH_MAX + 128];
	int found = 0;

	CHECK(f, "open maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long start, end;
		char p[5];
		int n = 0;

		if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, p, &n) < 3)
			continue;
		if (start <= (unsigned long)addr && (unsigned long)addr < end) {
			memcpy(perms, p, 5);
			if (mstart)
				*mstart = start;
			if (mend)
				*mend = end;
			if (path) {
				char *s = line + n;
				s[strcspn(s, "\n")] = 0;
				snprintf(path, plen, "%s", n ? s : "");
			}
			found = 1;
			break;
		}
	}
	fclose(f);
	return found;
}

static void expect_perms(const void *addr, const char *want, const char *what)
{
	char perms[5] = "";

	CHECK(maps_lookup(addr, perms, NULL, 0, NULL, NULL), "%s: no mapping holds %p", what, addr);
	CHECK(strcmp(perms, want) == 0, "%s: perms %s, expected %s", what, perms, want);
}

/* a mapping boundary lies exactly at addr (the mprotect split is kept) */
static void expect_boundary(const void *addr, const char *what)
{
	char perms[5] = "";
	unsigned long start = 0, end = 0;

	CHECK(maps_lookup(addr, perms, NULL, 0, &start, &end), "%s: no mapping holds %p", what, addr);
	CHECK(start == (unsigned long)addr, "%s: mapping %lx-%lx crosses the split at %p", what, start, end, addr);
}

static void expect_file_map(const void *addr, const char *want_perms, const char *want_path, const char *what)
{
	char perms[5] = "", path[PATH_MAX] = "";

	CHECK(maps_lookup(addr, perms, path, sizeof(path), NULL, NULL), "%s: no mapping holds %p", what, addr);
	CHECK(strcmp(perms, want_perms) == 0, "%s: perms %s, expected %s", what, perms, want_perms);
	CHECK(strcmp(path, want_path) == 0, "%s: maps path '%s', expected '%s'", what, path, want_path);
}

static void *map_anon(size_t pages)
{
	void *p = mmap(NULL, pages * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

static void make_file(const char *path, int region, size_t pages)
{
	unsigned char buf[PG];
	int fd = SYSCHK(open(path, O_CREAT | O_TRUNC | O_RDWR, 0600));

	for (size_t p = 0; p < pages; p++) {
		fill(buf, seed((uint64_t)region, p, 0));
		t_write_all(fd, buf, PG, (off_t)(p * PG));
	}
	close(fd);
}

static void check_file_page(const char *path, size_t page, uint64_t sd, const char *what)
{
	unsigned char buf[PG];
	int fd = SYSCHK(open(path, O_RDONLY));

	t_read_all(fd, buf, PG, (off_t)(page * PG));
	close(fd);
	CHECK(ok(buf, sd), "%s: file page %zu has wrong content", what, page);
}

int main(void)
{
	struct t_ident id;
	uint64_t shared_ver[4] = { 0, 0, 0, 0 };
	uint64_t priv_ver[8] = { 0 };
	uint64_t split_ver = 0;
	uint64_t h = T_FNV_INIT;
	int fd;

	t_init("mprotect_filemap");
	t_ident_init(&id);
	t_mkworkdir(dir, sizeof(dir), "mprotect_filemap");
	t_fmt(priv_path, sizeof(priv_path), "%s/priv.dat", dir);
	t_fmt(shared_path, sizeof(shared_path), "%s/shared.dat", dir);

	r_ro = map_anon(4);
	for (size_t p = 0; p < 4; p++)
		fill(r_ro + p * PG, seed(1, p, 0));
	SYSCHK(mprotect(r_ro, 4 * PG, PROT_READ));

	r_none = map_anon(4);
	for (size_t p = 0; p < 4; p++)
		fill(r_none + p * PG, seed(2, p, 0));
	SYSCHK(mprotect(r_none, 4 * PG, PROT_NONE));

	r_split = map_anon(6);
	for (size_t p = 0; p < 6; p++)
		fill(r_split + p * PG, seed(3, p, 0));
	SYSCHK(mprotect(r_split + 2 * PG, 2 * PG, PROT_READ));

	make_file(priv_path, 4, 8);
	fd = SYSCHK(open(priv_path, O_RDWR));
	f_priv = mmap(NULL, 8 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(f_priv != MAP_FAILED, "mmap priv: %s", strerror(errno));
	f_priv_ro = mmap(NULL, 3 * PG, PROT_READ, MAP_PRIVATE, fd, 2 * PG);
	CHECK(f_priv_ro != MAP_FAILED, "mmap priv ro: %s", strerror(errno));
	close(fd);

	make_file(shared_path, 5, 4);
	fd = SYSCHK(open(shared_path, O_RDWR));
	f_shared = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(f_shared != MAP_FAILED, "mmap shared: %s", strerror(errno));
	close(fd);

	for (int s = 0; s <= STEPS; s++) {
		t_ident_check(&id);

		/* read-only anon */
		expect_perms(r_ro, "r--p", "r_ro");
		for (size_t p = 0; p < 4; p++)
			CHECK(ok(r_ro + p * PG, seed(1, p, 0)), "r_ro page %zu", p);

		/* PROT_NONE anon with data; verify on odd steps and at the end */
		expect_perms(r_none, "---p", "r_none");
		if (s % 2 == 1 || s == STEPS) {
			SYSCHK(mprotect(r_none, 4 * PG, PROT_READ));
			for (size_t p = 0; p < 4; p++)
				CHECK(ok(r_none + p * PG, seed(2, p, 0)), "r_none page %zu", p);
			SYSCHK(mprotect(r_none, 4 * PG, PROT_NONE));
		}

		/* split region: rw / r / rw */
		expect_perms(r_split, "rw-p", "r_split[0]");
		expect_perms(r_split + 2 * PG, "r--p", "r_split[2]");
		expect_perms(r_split + 4 * PG, "rw-p", "r_split[4]");
		expect_boundary(r_split + 2 * PG, "r_split[2]");
		expect_boundary(r_split + 4 * PG, "r_split[4]");
		for (size_t p = 0; p < 6; p++) {
			uint64_t v = (p == 2 || p == 3) ? 0 : split_ver;
			CHECK(ok(r_split + p * PG, seed(3, p, v)), "r_split page %zu", p);
		}

		/* private file mapping: pages 1 and 5 modified privately */
		expect_file_map(f_priv, "rw-p", priv_path, "f_priv");
		expect_file_map(f_priv_ro, "r--p", priv_path, "f_priv_ro");
		for (size_t p = 0; p < 8; p++) {
			uint64_t sd = (p == 1 || p == 5) && priv_ver[p] ? seed(6, p, priv_ver[p]) : seed(4, p, 0);
			CHECK(ok(f_priv + p * PG, sd), "f_priv page %zu", p);
			check_file_page(priv_path, p, seed(4, p, 0), "priv.dat (must be unchanged)");
		}
		for (size_t p = 0; p < 3; p++)
			CHECK(ok(f_priv_ro + p * PG, seed(4, p + 2, 0)), "f_priv_ro page %zu", p);

		/* shared file mapping: mapping and file agree */
		expect_file_map(f_shared, "rw-s", shared_path, "f_shared");
		for (size_t p = 0; p < 4; p++) {
			uint64_t sd = seed(5, p, shared_ver[p]);
			CHECK(ok(f_shared + p * PG, sd), "f_shared page %zu (mapping)", p);
			check_file_page(shared_path, p, sd, "shared.dat");
		}
		if (s == STEPS)
			break;

		/* mutate */
		split_ver++;
		for (size_t p = 0; p < 6; p++)
			if (p != 2 && p != 3)
				fill(r_split + p * PG, seed(3, p, split_ver));
		size_t pp = (s % 2) ? 5 : 1;
		priv_ver[pp]++;
		fill(f_priv + pp * PG, seed(6, pp, priv_ver[pp]));
		/* write through the mapping */
		size_t sp = (size_t)s % 4;
		shared_ver[sp]++;
		fill(f_shared + sp * PG, seed(5, sp, shared_ver[sp]));
		SYSCHK(msync(f_shared, 4 * PG, MS_SYNC));
		/* write through the file; must appear in the mapping */
		size_t wp = (size_t)(s + 2) % 4;
		unsigned char buf[PG];
		shared_ver[wp]++;
		fill(buf, seed(5, wp, shared_ver[wp]));
		fd = SYSCHK(open(shared_path, O_WRONLY));
		t_write_all(fd, buf, PG, (off_t)(wp * PG));
		close(fd);
		CHECK(ok(f_shared + wp * PG, seed(5, wp, shared_ver[wp])), "f_shared page %zu: pwrite not visible", wp);

		for (size_t p = 0; p < 4; p++)
			h = t_fnv(h, f_shared + p * PG + 8 * (size_t)s, 8);
		h = t_fnv(h, f_priv + pp * PG, 16);
		printf("step %d ok h=%llu\n", s, (unsigned long long)h);
		t_sleep_ms(300);
	}
	munmap(f_priv, 8 * PG);
	munmap(f_priv_ro, 3 * PG);
	munmap(f_shared, 4 * PG);
	unlink(priv_path);
	unlink(shared_path);
	rmdir(dir);
	printf("RESULT %llu\n", (unsigned long long)h);
	return 0;
}
