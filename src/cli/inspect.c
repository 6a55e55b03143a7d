/*
 * inspect.c - `cohort inspect DIR|FILE [--json]`: what a generation or a
 * single process image holds, record by record, with every checksum
 * verified on the way (a damaged byte is reported with its offset).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "kinds/kinds.h"
#include "res.h"
#include "util.h"

/* Pages with data, and pages left to the parent generation. */
struct page_count {
	uint64_t pages, parent;
};

/*
 * Walk one image file, and with it the page streams a process image names;
 * returns 0 when every record checks out.  quiet: print nothing, only add
 * the pages to *count.
 */
static int inspect_image(const char *path, int json, int quiet, struct page_count *count)
{
	char name[PATH_MAX], err[1024];
	struct co_reader r;
	int fd = co_img_open(path, &r, name, sizeof(name), err, sizeof(err));
	if (fd < 0) {
		fprintf(stderr, "cohort: %s\n", err);
		return -1;
	}
	static union {
		struct co_head h;
		struct co_proc p;
		struct co_thread t;
		struct co_timer tm;
		struct co_fd f;
		struct co_vma v;
		struct co_pagemap pm;
		struct co_end e;
		struct co_shm shm;
		struct co_pipe pipe;
		struct co_sfile sf;
		struct co_fcopy fc;
		struct co_slink sl;
		struct co_sobj so;
		struct co_epitem ei;
		uint64_t id;	/* the first field of shared memory data and socket data */
	} u;
	uint64_t pages = 0, nrec = 0, regions = 0, threads = 0, fds = 0, parent_pages = 0;
	uint32_t nstreams = 1;
	int ret = 0, first = 1;
	if (json && !quiet)
		printf("{\"image\":\"%s\",\"compressed\":%s,\"records\":[", name, r.decompressed ? "true" : "false");
	for (;;) {
		int e = co_r_next(&r);
		if (e <= 0) {
			if (e < 0 || nrec == 0) {
				if (e < 0)
					snprintf(err, sizeof(err), "%s", r.err);
				else
					snprintf(err, sizeof(err), "%s: empty image", name);
				ret = -1;
			}
			break;
		}
		unsigned t = r.hdr.type;
		uint64_t off = r.rec_off, len = r.hdr.len;
		if (t == CO_R_PAGEDATA || t == CO_R_FILEDATA) {
			if (co_r_finish(&r)) {
				snprintf(err, sizeof(err), "%s", r.err);
				ret = -1;
				break;
			}
			pages += t == CO_R_PAGEDATA ? len / CO_PAGE : 0;
		} else if (co_r_payload(&r, &u, sizeof(u))) {
			snprintf(err, sizeof(err), "%s", r.err);
			ret = -1;
			break;
		}
		nrec++;
		if (t == CO_R_PARENTMAP)
			parent_pages += u.pm.npages;
		/*
		 * A count from the image: the streams are looked for only as far
		 * as there can be some, whether or not an error was found before
		 * (a file that said 4 billion went on opening them for hours).
		 */
		if (t == CO_R_PROC && u.p.streams > CO_STREAMS) {
			if (!ret)
				snprintf(err, sizeof(err), "%s: byte %llu: process record names %u page streams, at most %d",
					 name, (unsigned long long)off, u.p.streams, CO_STREAMS);
			ret = -1;
		} else if (t == CO_R_PROC) {
			nstreams = u.p.streams;
		}
		if (quiet)
			continue;
		char line[1400];
		threads += t == CO_R_THREAD;
		fds += t == CO_R_FD;
		regions += t == CO_R_VMA;
		co_rec_describe(t, &u, len, line, sizeof(line));
		if (len < co_rec_minlen(t) && !ret) {
			snprintf(err, sizeof(err), "%s: byte %llu: %s record of %llu bytes, too short", name,
				 (unsigned long long)off, co_rec_name(t), (unsigned long long)len);
			ret = -1;
		}
		if (json) {
			printf("%s{\"offset\":%llu,\"type\":\"%s\",\"length\":%llu,\"detail\":\"", first ? "" : ",",
			       (unsigned long long)off, co_rec_name(t), (unsigned long long)len);
			for (const char *c = line; *c; c++)
				printf(*c == '"' || *c == '\\' ? "\\%c" : "%c", *c);
			printf("\"}");
		} else {
			printf("  %10llu %-10s %s\n", (unsigned long long)off, co_rec_name(t), line);
		}
		first = 0;
	}
	/* a compressed file: zstd's finding (compressed offset) says more than the record that broke off */
	if (co_img_close(fd, err, sizeof(err)))
		ret = -1;
	if (ret)
		fprintf(stderr, "cohort: %s\n", err);
	/* the page streams of this image count with it */
	char plain[PATH_MAX];
	snprintf(plain, sizeof(plain), "%s", path);
	if (co_endswith(plain, CO_ZST)) /* named as stored: the streams are named after the plain name */
		plain[strlen(plain) - strlen(CO_ZST)] = 0;
	for (uint32_t k = 1; !quiet && k < nstreams; k++) {
		char p[PATH_MAX];
		struct page_count sc = { 0, 0 };
		co_stream_path(p, sizeof(p), plain, (int)k);
		ret |= inspect_image(p, 0, 1, &sc);
		pages += sc.pages;
		parent_pages += sc.parent;
	}
	if (count) {
		count->pages += pages;
		count->parent += parent_pages;
	}
	if (json && !quiet)
		printf("],\"threads\":%llu,\"descriptors\":%llu,\"regions\":%llu,\"pages\":%llu,\"parent_pages\":%llu,"
		       "\"ok\":%s}",
		       (unsigned long long)threads, (unsigned long long)fds, (unsigned long long)regions,
		       (unsigned long long)pages, (unsigned long long)parent_pages, ret ? "false" : "true");
	else if (!quiet)
		printf("  %s: %llu records, %llu threads, %llu descriptors, %llu regions, %llu pages, %llu kept from the "
		       "parent: %s\n",
		       name, (unsigned long long)nrec, (unsigned long long)threads, (unsigned long long)fds,
		       (unsigned long long)regions, (unsigned long long)pages, (unsigned long long)parent_pages,
		       ret ? "DAMAGED" : "checksums ok");
	return ret;
}

static const char *gen_kind_name(uint32_t k)
{
	return k == CO_GEN_FULL ? "full" : k == CO_GEN_INCREMENTAL ? "incremental" : k == CO_GEN_MERGED ? "merged" : "?";
}

/* A generation: its manifest, then each process image. */
static int inspect_generation(const char *dir, int json)
{
	static struct co_manifest m;
	static struct co_mproc p[CO_TABLE_SLOTS];
	int n;
	char err[1024], name[256], prog[1024];
	if (co_read_manifest(dir, &m, p, CO_TABLE_SLOTS, &n, err, sizeof(err))) {
		fprintf(stderr, "cohort: %s\n", err);
		return 1;
	}
	if (json)
		printf("{\"group\":\"%s\",\"generation\":%llu,\"parent\":%llu,\"kind\":\"%s\",\"program\":\"%s\","
		       "\"bytes\":%llu,\"processes\":[",
		       co_json_esc(m.name, name, sizeof(name)), (unsigned long long)m.generation,
		       (unsigned long long)m.parent, gen_kind_name(m.kind), co_json_esc(m.program, prog, sizeof(prog)),
		       (unsigned long long)m.bytes);
	else
		printf("group %s generation %llu (%s, parent %llu): %u process%s, %llu bytes, program %s\n", m.name,
		       (unsigned long long)m.generation, gen_kind_name(m.kind),
		       (unsigned long long)m.parent, m.nprocs, m.nprocs == 1 ? "" : "es", (unsigned long long)m.bytes,
		       m.program);
	int bad = 0;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		snprintf(path, sizeof(path), "%s/%s", dir, p[i].image);
		if (json && i)
			printf(",");
		if (p[i].flags & CO_MP_ZOMBIE) { /* it has no image: it exits again at the restart */
			if (json)
				printf("{\"pid\":%d,\"zombie\":true,\"exit_status\":%d}", p[i].pid, p[i].exit_status);
			else
				printf("process %d (parent %d): zombie, wait status %#x\n", p[i].pid, p[i].ppid,
				       (unsigned)p[i].exit_status);
			continue;
		}
		if (!json)
			printf("process %d (parent %d): %s\n", p[i].pid, p[i].ppid, p[i].image);
		bad |= inspect_image(path, json, 0, NULL) != 0;
	}
	/* what the processes share: every generation has one (the descriptors above name its objects) */
	char spath[PATH_MAX], stored[PATH_MAX];
	snprintf(spath, sizeof(spath), "%s/shared.img", dir);
	int has_shared = co_img_locate(spath, stored, sizeof(stored)) == 0;
	if (json)
		printf("],\"shared\":%s", has_shared ? "" : "null");
	else if (has_shared)
		printf("shared objects: shared.img\n");
	if (has_shared)
		bad |= inspect_image(spath, json, 0, NULL) != 0;
	if (json)
		printf(",\"ok\":%s}\n", bad ? "false" : "true");
	return bad;
}

static int is_generation(const struct dirent *e)
{
	unsigned long long g;
	char tail;
	return sscanf(e->d_name, "gen-%llu%c", &g, &tail) == 1;
}

/* and the merged full images of incremental ones, which a restart uses in their place */
static int is_generation_or_full(const struct dirent *e)
{
	unsigned long long g;
	char tail;
	return is_generation(e) || sscanf(e->d_name, "full-%llu%c", &g, &tail) == 1;
}

/*
 * The generations under a group's images directory, oldest first, as
 * paths in one allocated array (NULL-terminated); NULL when dir holds none.
 */
static char **generations(const char *dir, int fulls)
{
	struct dirent **e;
	/* full-%06llu, gen-%06llu: names sort as numbers, the full images first */
	int n = scandir(dir, &e, fulls ? is_generation_or_full : is_generation, alphasort);
	if (n <= 0)
		return NULL;
	char **out = calloc((size_t)n + 1, sizeof(char *));
	for (int i = 0; i < n; i++) {
		if (!out || asprintf(&out[i], "%s/%s", dir, e[i]->d_name) < 0)
			co_die("out of memory");
		free(e[i]);
	}
	free(e);
	return out;
}

static void free_list(char **l)
{
	for (char **p = l; p && *p; p++)
		free(*p);
	free(l);
}

/*
 * A generation (DIR/manifest), or every generation of a group (and with
 * fulls its merged full images), in a list: NULL when DIR is neither.
 */
static char **targets(const char *dir, int fulls)
{
	char m[PATH_MAX];
	struct stat st;
	snprintf(m, sizeof(m), "%s/manifest", dir);
	if (stat(m, &st) == 0) {
		char **one = calloc(2, sizeof(char *));
		if (!one || !(one[0] = strdup(dir)))
			co_die("out of memory");
		return one;
	}
	return generations(dir, fulls);
}

int co_cmd_inspect(const char *target, int json)
{
	struct stat st;
	if (stat(target, &st) < 0)
		co_die("%s: %s", target, strerror(errno));
	if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
		co_die("%s is neither an image file nor a directory", target);
	if (!S_ISDIR(st.st_mode)) {
		int bad = inspect_image(target, json, 0, NULL) != 0;
		if (json)
			printf("\n");
		return bad;
	}
	char **dirs = targets(target, 0);
	if (!dirs)
		co_die("%s is neither a generation (no manifest) nor a group's images directory (no gen-N)", target);
	int bad = 0;
	for (char **d = dirs; *d; d++)
		bad |= inspect_generation(*d, json);
	free_list(dirs);
	return bad;
}

/*
 * What file name of a generation must hold, from its name: its kind and
 * binding (co_bind) under manifest m.  0 when the name is no image file
 * (the manifest, a copy under files/).
 */
static int bound_as(const char *name, const struct co_manifest *m, uint32_t *kind, struct co_bind *b)
{
	int pid, k = 0, used = 0;
	*b = (struct co_bind){ m->group_id, m->generation, 0, 0 };
	if (!strcmp(name, "shared.img") || !strcmp(name, "shared.img" CO_ZST)) {
		*kind = CO_KIND_SHARED;
		return 1;
	}
	if (sscanf(name, "proc-%d.p%d.img%n", &pid, &k, &used) == 2 ||
	    (k = 0, used = 0, sscanf(name, "proc-%d.img%n", &pid, &used) == 1)) {
		if (name[used] && strcmp(name + used, CO_ZST))
			return 0;
		*kind = k ? CO_KIND_PAGES : CO_KIND_PROCESS;
		b->pid = pid;
		b->stream = (uint32_t)k;
		return 1;
	}
	return 0;
}

/*
 * Walk every record of one file, checking headers, order and hashes (and
 * zstd's, if compressed), and its head: of kind, bound to want (NULL:
 * any cohort file).
 */
static int verify_file(const char *path, uint32_t kind, const struct co_bind *want, uint64_t *records, uint64_t *bytes,
		       char *err, size_t errlen)
{
	char name[PATH_MAX];
	struct co_reader r;
	int fd = co_img_open(path, &r, name, sizeof(name), err, errlen);
	if (fd < 0)
		return -1;
	int ret = 0, ended = 0;
	for (;;) {
		int e = co_r_next(&r);
		if (e < 0 || (e == 0 && !ended)) {
			if (e < 0)
				snprintf(err, errlen, "%s", r.err);
			else
				snprintf(err, errlen, "%s: file ends before its end record", name);
			ret = -1;
			break;
		}
		if (e == 0)
			break;
		if (ended) {
			snprintf(err, errlen, "%s: byte %lu: records after the end record", name,
				 (unsigned long)r.rec_off);
			ret = -1;
			break;
		}
		ended = r.hdr.type == CO_R_END;
		if (r.seq == 0) { /* the head: whose file this is */
			struct co_head h;
			if (r.hdr.type != CO_R_HEAD) {
				snprintf(err, errlen, "%s: starts with a %s record, not its head", name,
					 co_rec_name(r.hdr.type));
				ret = -1;
				break;
			}
			if (co_r_payload(&r, &h, sizeof(h)) || (kind && co_head_check(&r, &h, kind, want))) {
				snprintf(err, errlen, "%s", r.err);
				ret = -1;
				break;
			}
		} else if (co_r_finish(&r)) {
			snprintf(err, errlen, "%s", r.err);
			ret = -1;
			break;
		}
		(*records)++;
	}
	*bytes += r.off;
	if (co_img_close(fd, err, errlen))
		ret = -1;
	return ret;
}

/* One finding of verify_generation: on stderr, and the first kept for JSON. */
static void finding(int json, char *first, size_t n, const char *err)
{
	if (!json)
		fprintf(stderr, "cohort: %s\n", err);
	if (!first[0])
		snprintf(first, n, "%s", err);
}

/*
 * `cohort verify DIR [--json]`: a generation (DIR/manifest) or every
 * generation of a group (DIR/gen-*): its manifest, every file it lists
 * (format 7: no more, no fewer, of their sizes, each bound to this
 * generation), and each file's records, without restoring anything; one
 * line (or JSON object) per generation.
 */
static int verify_generation(const char *dir, int json)
{
	uint64_t records = 0, bytes = 0;
	int files = 0, bad = 0, nm = 0, nf = 0;
	char first_err[1024] = "";
	static struct co_manifest m;
	static struct co_mproc mp[CO_TABLE_SLOTS];
	static struct co_mfile mf[CO_TABLE_SLOTS * 3 + 4096]; /* images, streams, shared.img, copies */
	char path[PATH_MAX], err[1024];
	struct co_reader r;
	int mfd = co_open_gen_file(dir, "manifest", path, sizeof(path), &r, err, sizeof(err));
	int mbad = mfd < 0 ||
		   co_manifest_read_files(&r, &m, mp, CO_TABLE_SLOTS, &nm, mf, (int)(sizeof(mf) / sizeof(mf[0])), &nf);
	if (mfd >= 0 && mbad)
		snprintf(err, sizeof(err), "%s", r.err);
	if (mfd >= 0 && co_img_close(mfd, err, sizeof(err)))
		mbad = 1;
	if (mbad) {
		finding(json, first_err, sizeof(first_err), err);
		memset(&m, 0, sizeof(m));
		bad = 1;
	} else if (m.nfiles && co_gen_files_check(dir, mf, nf, 1, err, sizeof(err))) {
		finding(json, first_err, sizeof(first_err), err);
		bad = 1;
	}
	DIR *d = opendir(dir);
	if (!d)
		snprintf(first_err, sizeof(first_err), "%s: %s", dir, strerror(errno));
	for (struct dirent *e; d && (e = readdir(d));) {
		/* (a damaged manifest is told once, above) */
		if (e->d_name[0] == '.' || !strcmp(e->d_name, "files") || (mbad && !strcmp(e->d_name, "manifest")))
			continue;
		char p[PATH_MAX];
		uint32_t kind = 0;
		struct co_bind want;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		int bound = !mbad && bound_as(e->d_name, &m, &kind, &want);
		if (verify_file(p, kind, bound ? &want : NULL, &records, &bytes, err, sizeof(err))) {
			finding(json, first_err, sizeof(first_err), err);
			bad = 1;
		}
		files++;
	}
	if (d)
		closedir(d);
	bad |= !d;
	if (json) {
		char edir[PATH_MAX * 2], eerr[2048];
		unsigned long long g = 0;
		const char *base = strrchr(dir, '/');
		if (sscanf(base ? base + 1 : dir, "gen-%llu", &g) != 1)
			sscanf(base ? base + 1 : dir, "full-%llu", &g);
		printf("{\"dir\":\"%s\",\"generation\":%llu,\"files\":%d,\"records\":%llu,\"bytes\":%llu,\"ok\":%s,"
		       "\"error\":\"%s\"}\n",
		       co_json_esc(dir, edir, sizeof(edir)), g, files, (unsigned long long)records,
		       (unsigned long long)bytes, bad ? "false" : "true", co_json_esc(first_err, eerr, sizeof(eerr)));
	} else {
		printf("%s: %d files, %llu records, %llu bytes: %s\n", dir, files, (unsigned long long)records,
		       (unsigned long long)bytes, bad ? "DAMAGED" : "ok");
	}
	return bad;
}

int co_cmd_verify(const char *target, int json)
{
	struct stat st;
	if (stat(target, &st) < 0)
		co_die("%s: %s", target, strerror(errno));
	char **dirs = targets(target, 1); /* a damaged full-N would fail the restart it serves */
	if (!dirs)
		co_die("%s holds no generation", target);
	int bad = 0;
	for (char **d = dirs; *d; d++)
		bad |= verify_generation(*d, json);
	free_list(dirs);
	return bad ? 1 : 0;
}
