/*
 * merge_dir.c - a group's images directory, generation by generation:
 * where a merged full image is (co_full_dir), which generations there are,
 * the background merge of every one (co_merge_all, cohort-merge), what a
 * start recovers (co_recover_group_dir) and what pruning keeps (co_prune:
 * a kept generation's chain of parents too).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "merge_int.h"
#include "progress.h"
#include "res.h"
#include "util.h"

int co_full_dir(const char *gdir, uint64_t gen, char *out, size_t n)
{
	return snprintf(out, n, "%s/full-%06llu", gdir, (unsigned long long)gen) >= (int)n ? -1 : 0;
}

int co_generation_usable(const char *gdir, uint64_t gen)
{
	char dir[PATH_MAX], err[256];
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	int n;
	co_gen_dir(gdir, gen, dir, sizeof(dir));
	return co_read_manifest(dir, &m, p, CO_TABLE_SLOTS, &n, err, sizeof(err)) == 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The generations in gdir, oldest first; returns how many (at most max). */
static int list_gens(const char *gdir, uint64_t *g, int max)
{
	DIR *d = opendir(gdir);
	int n = 0;
	for (struct dirent *e; d && (e = readdir(d)) && n < max;) {
		unsigned long long v;
		char tail;
		if (sscanf(e->d_name, "gen-%llu%c", &v, &tail) == 1)
			g[n++] = v;
	}
	if (d)
		closedir(d);
	qsort(g, (size_t)n, sizeof(*g), cmp_u64);
	return n;
}

/* Leftovers of merges that were killed half-way: their pid is gone. */
static int stale_tmp(const char *name, void *arg)
{
	(void)arg;
	unsigned long long g;
	int pid;
	return sscanf(name, ".tmp-full-%llu.%d", &g, &pid) == 2 && pid != getpid() && kill(pid, 0) < 0 &&
	       errno == ESRCH;
}

static void remove_stale_tmp(const char *gdir)
{
	co_remove_entries(gdir, stale_tmp, NULL);
}

/* A merged full image whose generation is gone (pruned while it was made). */
static int orphan(const char *name, void *gdir)
{
	unsigned long long g;
	char gen[PATH_MAX];
	if (sscanf(name, "full-%llu", &g) != 1)
		return 0;
	co_gen_dir(gdir, g, gen, sizeof(gen));
	return !exists(gen);
}

static void drop_orphans(const char *gdir)
{
	co_remove_entries(gdir, orphan, (void *)gdir);
}

static int temporary(const char *name, void *arg)
{
	(void)arg;
	return strncmp(name, ".tmp-", 5) == 0;
}

void co_recover_group_dir(const char *gdir)
{
	co_remove_entries(gdir, temporary, NULL);
	/* a full image is only ever needed with its generation (co_prune keeps both) */
	drop_orphans(gdir);
}

#define MAX_GENS 100000
int co_merge_all(const char *gdir, char *err, size_t errlen)
{
	static uint64_t g[MAX_GENS];
	remove_stale_tmp(gdir);
	int n = list_gens(gdir, g, MAX_GENS);
	for (int i = 0; i < n; i++) {
		char out[PATH_MAX], gen[PATH_MAX];
		co_gen_dir(gdir, g[i], gen, sizeof(gen));
		/* one pruned since the list was made (or while it was merged) is no failure */
		if (exists(gen) && co_restore_dir(gdir, g[i], out, sizeof(out), err, errlen) && exists(gen))
			return -1;
	}
	return 0;
}

/* Kind and parent of generation g; -1 when it cannot be read. */
static int gen_kind(const char *gdir, uint64_t g, uint64_t *parent)
{
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	char dir[PATH_MAX], err[256];
	int n;
	co_gen_dir(gdir, g, dir, sizeof(dir));
	if (co_read_manifest(dir, &m, p, CO_TABLE_SLOTS, &n, err, sizeof(err)))
		return -1;
	*parent = m.parent;
	return (int)m.kind;
}

void co_prune(const char *gdir, unsigned keep)
{
	static uint64_t g[MAX_GENS];
	static unsigned char need[MAX_GENS];
	int n = list_gens(gdir, g, MAX_GENS);
	if (n <= (int)keep)
		return;
	memset(need, 0, (size_t)n);
	for (int i = n - (int)keep; i < n; i++) {
		/* a kept generation needs its chain of parents until a full image */
		for (int k = i; k >= 0;) {
			need[k] = 1;
			uint64_t parent = 0;
			char full[PATH_MAX];
			co_full_dir(gdir, g[k], full, sizeof(full));
			if (gen_kind(gdir, g[k], &parent) != CO_GEN_INCREMENTAL || exists(full))
				break;
			int j = k - 1;
			while (j >= 0 && g[j] != parent)
				j--;
			k = j;
		}
	}
	for (int i = 0; i < n; i++) {
		if (need[i])
			continue;
		char dir[PATH_MAX];
		/* the generation first: a merge that finds it gone does not make its full image (write_full) */
		co_gen_dir(gdir, g[i], dir, sizeof(dir));
		co_remove_tree(dir);
		co_crash_point("prune");
		co_full_dir(gdir, g[i], dir, sizeof(dir));
		co_remove_tree(dir);
	}
	drop_orphans(gdir);
}
