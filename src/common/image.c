/*
 * image.c - the one reader and writer of cohort's record stream.  Used by
 * the agent (writer), the restorer (reader, without libc) and the CLI.
 */
#include <errno.h>
#include "image.h"
#include "sys.h"
#include "util.h"

static const char zeros[256];

/* ---- writer ---- */

void co_w_init(struct co_writer *w, int fd, char *buf, uint32_t bufsize)
{
	co_memset(w, 0, sizeof(*w));
	w->fd = fd;
	w->buf = buf;
	w->bufsize = bufsize;
}

static int write_all(struct co_writer *w, const void *p, uint64_t n)
{
	const char *c = p;
	while (n && !w->err) {
		uint64_t k = n > (1UL << 30) ? (1UL << 30) : n;
		long r = w->io ? w->io->write(w->io, c, k) : co_write(w->fd, c, k);
		if (r == -EINTR)
			continue;
		if (r <= 0) {
			w->err = r ? (int)r : -EIO;
			break;
		}
		c += r;
		n -= r;
	}
	return w->err;
}

int co_w_flush(struct co_writer *w)
{
	if (w->buffered) {
		write_all(w, w->buf, w->buffered);
		w->buffered = 0;
	}
	return w->err;
}

/* Append raw bytes to the stream (not hashed). */
static int emit(struct co_writer *w, const void *p, uint64_t n)
{
	if (w->err)
		return w->err;
	w->off += n;
	if (w->buffered + n <= w->bufsize) {
		co_memcpy(w->buf + w->buffered, p, n);
		w->buffered += n;
		return 0;
	}
	if (co_w_flush(w))
		return w->err;
	if (n >= w->bufsize / 2)
		return write_all(w, p, n);
	co_memcpy(w->buf, p, n);
	w->buffered = n;
	return 0;
}

static void hdr_seal(struct co_rec_hdr *h)
{
	h->check = 0;
	h->check = (uint32_t)co_xxh64(h, sizeof(*h), 0);
}

int co_w_begin_flags(struct co_writer *w, unsigned type, uint64_t len, int aligned, unsigned flags)
{
	struct co_rec_hdr h = { CO_REC_MAGIC, (uint16_t)type, (uint16_t)flags, 0, 0, len, w->seq };
	if (aligned)
		h.pad = (uint32_t)(CO_PAGE_ALIGN(w->off + sizeof(h)) - (w->off + sizeof(h)));
	hdr_seal(&h);
	emit(w, &h, sizeof(h));
	for (uint32_t left = h.pad; left;) {
		uint32_t n = left > sizeof(zeros) ? sizeof(zeros) : left;
		emit(w, zeros, n);
		left -= n;
	}
	w->want = len;
	w->got = 0;
	co_rec_sum_init(&w->h, w->seq, type);
	return w->err;
}

int co_w_begin(struct co_writer *w, unsigned type, uint64_t len, int aligned)
{
	return co_w_begin_flags(w, type, len, aligned, 0);
}

int co_w_skip(struct co_writer *w, uint64_t n)
{
	if (w->got + n > w->want && !w->err)
		w->err = -EOVERFLOW;
	if (w->io && !w->err)
		w->err = -ESPIPE; /* a stream cannot be written out of order */
	if (co_w_flush(w))
		return w->err;
	long r = co_lseek(w->fd, (long)n, 1 /* SEEK_CUR */);
	if (r < 0)
		return w->err = (int)r;
	w->got += n;
	w->off += n;
	w->skipped = 1;
	return 0;
}

int co_w_put(struct co_writer *w, const void *p, uint64_t n)
{
	if (w->got + n > w->want && !w->err)
		w->err = -EOVERFLOW;
	co_xxh64_update(&w->h, p, n);
	w->got += n;
	return emit(w, p, n);
}

int co_w_end(struct co_writer *w)
{
	if (w->got != w->want && !w->err)
		w->err = -EPROTO;
	uint64_t sum = co_xxh64_digest(&w->h);
	if (w->skipped) { /* (co_w_skip) the checksum is the later writer's too */
		w->skipped = 0;
		long r = co_w_flush(w) ? 0 : co_lseek(w->fd, sizeof(sum), 1 /* SEEK_CUR */);
		if (r < 0)
			w->err = (int)r;
		w->off += sizeof(sum);
	} else {
		emit(w, &sum, sizeof(sum));
	}
	w->seq++;
	return w->err;
}

int co_w_rec(struct co_writer *w, unsigned type, const void *p, uint64_t len)
{
	co_w_begin(w, type, len, 0);
	co_w_put(w, p, len);
	return co_w_end(w);
}

int co_w_path_rec(struct co_writer *w, unsigned type, const void *rec, uint64_t path_off, const struct co_fstamp *st)
{
	uint64_t len = path_off + co_strlen((const char *)rec + path_off) + 1;
	int stamped = st && st->recorded;
	co_w_begin(w, type, len + (stamped ? sizeof(*st) : 0), 0);
	co_w_put(w, rec, len);
	if (stamped)
		co_w_put(w, st, sizeof(*st));
	return co_w_end(w);
}

/* ---- file stamps (struct co_fstamp) ---- */

void co_path_rec_stamp(const void *rec, uint64_t len, uint64_t path_off, struct co_fstamp *st)
{
	const char *p = (const char *)rec + path_off;
	co_memset(st, 0, sizeof(*st));
	if (len <= path_off)
		return;
	uint64_t room = len - path_off, n = 0;
	while (n < room && n < CO_PATH && p[n])
		n++;
	/* the path ends within CO_PATH bytes, and a whole stamp follows its NUL */
	if (n == room || n == CO_PATH || room - n - 1 < sizeof(*st))
		return;
	co_memcpy(st, p + n + 1, sizeof(*st));
	if (st->recorded != 1 || st->mtime_nsec < 0 || st->mtime_nsec >= 1000000000)
		co_memset(st, 0, sizeof(*st)); /* damaged: not trusted either way */
}

/* d (0 to 99) as two digits at *at */
static void put2(char *b, uint64_t n, uint64_t *at, long d)
{
	if (*at + 3 > n)
		return;
	b[(*at)++] = (char)('0' + d / 10 % 10);
	b[(*at)++] = (char)('0' + d % 10);
	b[*at] = 0;
}

/*
 * "2026-12-07 05:10:11.123456789" (UTC) into b: the civil date of the
 * day number since 1970 (Howard Hinnant's days_from_civil, inverted),
 * without libc (the restorer has none).
 */
static void fmt_utc(char *b, uint64_t n, int64_t sec, int64_t nsec)
{
	int64_t days = sec / 86400, s = sec % 86400;
	if (s < 0)
		s += 86400, days--;
	int64_t z = days + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097, yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
	int64_t day = doy - (153 * mp + 2) / 5 + 1, month = mp < 10 ? mp + 3 : mp - 9;
	int64_t year = yoe + era * 400 + (month <= 2);
	uint64_t at = co_fmt(b, n, "%ld-", (long)year);
	put2(b, n, &at, (long)month);
	at += co_fmt(b + at, n - at, "-");
	put2(b, n, &at, (long)day);
	at += co_fmt(b + at, n - at, " ");
	put2(b, n, &at, (long)(s / 3600));
	at += co_fmt(b + at, n - at, ":");
	put2(b, n, &at, (long)(s / 60 % 60));
	at += co_fmt(b + at, n - at, ":");
	put2(b, n, &at, (long)(s % 60));
	at += co_fmt(b + at, n - at, ".");
	for (long k = 100000000; k && at + 2 <= n; k /= 10) {
		b[at++] = (char)('0' + nsec / k % 10);
		b[at] = 0;
	}
}

int co_fstamp_changed(const struct co_fstamp *st, uint32_t mode, uint64_t size, int64_t mtime_sec,
		      int64_t mtime_nsec, char *why, uint64_t n)
{
	char was[48], now[48], sz[64] = "";
	if ((mode & 0170000) != 0100000) {
		co_fmt(why, n, "(it is no longer a regular file)");
		return 1;
	}
	if (size == st->size && mtime_sec == st->mtime_sec && mtime_nsec == st->mtime_nsec)
		return 0;
	if (size != st->size)
		co_fmt(sz, sizeof(sz), "size %lu -> %lu, ", (unsigned long)st->size, (unsigned long)size);
	fmt_utc(was, sizeof(was), st->mtime_sec, st->mtime_nsec);
	fmt_utc(now, sizeof(now), mtime_sec, mtime_nsec);
	co_fmt(why, n, "(%smodified %s -> %s UTC)", sz, was, now);
	return 1;
}

/* ---- reader ---- */

const char *co_rec_name(unsigned type)
{
	switch (type) {
	case CO_R_HEAD: return "head";
	case CO_R_PROC: return "process";
	case CO_R_THREAD: return "thread";
	case CO_R_FD: return "descriptor";
	case CO_R_FILEDATA: return "file data";
	case CO_R_VMA: return "region";
	case CO_R_PAGEMAP: return "page map";
	case CO_R_PAGEDATA: return "page data";
	case CO_R_END: return "end";
	case CO_R_PARENTMAP: return "parent map";
	case CO_R_TIMER: return "timer";
	case CO_R_MANIFEST: return "manifest";
	case CO_R_MPROC: return "manifest process";
	case CO_R_MFILE: return "manifest file";
	case CO_R_SHM: return "shared memory";
	case CO_R_SHMDATA: return "shared memory data";
	case CO_R_PIPE: return "pipe";
	case CO_R_SFILE: return "shared file";
	case CO_R_FCOPY: return "file copy";
	case CO_R_FTIMES: return "file times";
	case CO_R_SLINK: return "link";
	case CO_R_SOBJ: return "object";
	case CO_R_EPITEM: return "epoll item";
	case CO_R_SOCKDATA: return "socket data";
	case CO_R_LOCK: return "lock";
	case CO_R_FDOWNER: return "descriptor owner";
	case CO_R_GHOST: return "deleted file";
	case CO_R_GHOSTDATA: return "deleted file data";
	case CO_R_SYSVSEM: return "sysv semaphores";
	case CO_R_SYSVMSG: return "sysv message queue";
	case CO_R_SYSVSHM: return "sysv shm";
	case CO_R_SEMUNDO: return "semaphore adjustment";
	case CO_R_AIO: return "aio ring";
	case CO_R_DNOTIFY: return "dnotify watch";
	case CO_R_COWMAP: return "copy-on-write map";
	case CO_R_SECCOMP: return "seccomp filters";
	case CO_R_IWATCH: return "inotify watch";
	case CO_R_IEVENTS: return "inotify events";
	case CO_R_FMARK: return "fanotify mark";
	case CO_R_USOCK: return "unix socket";
	case CO_R_USMSG: return "unix message";
	case CO_R_PTY: return "pty";
	case CO_R_PTYDATA: return "pty data";
	case CO_R_PIPEDATA: return "pipe data";
	case CO_R_WIRE_MSG: return "migration message";
	case CO_R_WIRE_FILE: return "migration file";
	case CO_R_WIRE_DATA: return "migration data";
	}
	return "unknown";
}

void co_r_init(struct co_reader *r, int fd, const char *name)
{
	co_memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->name = name;
}

/*
 * Where an offset points, in messages: a stream decompressed from a .zst
 * file has offsets of the decompressed bytes, not of the file.
 */
static const char *at(const struct co_reader *r)
{
	return r->decompressed ? "decompressed byte" : "byte";
}

static void truncated(struct co_reader *r, uint64_t off)
{
	co_fmt(r->err, sizeof(r->err), "%s: %s %lu: %s", r->name, at(r), (unsigned long)off,
	       r->decompressed ? "the stream ends early (the compressed file is damaged or truncated)"
			       : "image is truncated");
}

/* Read exactly n bytes; 0 ok, 1 clean EOF before any byte, -1 error. */
static int read_exact(struct co_reader *r, void *p, uint64_t n)
{
	char *c = p;
	uint64_t done = 0;
	while (done < n) {
		uint64_t want = n - done > (1UL << 30) ? (1UL << 30) : n - done;
		long k = r->io ? r->io->read(r->io, c + done, want) : co_read(r->fd, c + done, want);
		if (k == -EINTR)
			continue;
		if (k < 0) {
			co_fmt(r->err, sizeof(r->err), "%s: %s %lu: read failed (errno %ld)",
			       r->name, at(r), (unsigned long)(r->off + done), -k);
			return -1;
		}
		if (k == 0) {
			if (done == 0)
				return 1;
			truncated(r, r->off + done);
			return -1;
		}
		done += k;
	}
	r->off += n;
	return 0;
}

void co_r_unread(struct co_reader *r)
{
	r->pending = 1;
}

int co_r_next(struct co_reader *r)
{
	struct co_rec_hdr h;
	if (r->pending) {
		r->pending = 0;
		return 1;
	}
	r->rec_off = r->off;
	int e = read_exact(r, &h, sizeof(h));
	if (e == 1)
		return 0;
	if (e)
		return -1;
	uint32_t check = h.check;
	hdr_seal(&h);
	if (h.magic != CO_REC_MAGIC || h.check != check) {
		co_fmt(r->err, sizeof(r->err), "%s: %s %lu: damaged record header",
		       r->name, at(r), (unsigned long)r->rec_off);
		return -1;
	}
	if (h.seq != r->seq) {
		co_fmt(r->err, sizeof(r->err), "%s: %s %lu: record %lu found where %lu was expected",
		       r->name, at(r), (unsigned long)r->rec_off, (unsigned long)h.seq, (unsigned long)r->seq);
		return -1;
	}
	/* the padding is not hashed, so it must be what the writer wrote: zeros */
	for (uint32_t left = h.pad; left;) {
		char tmp[256];
		uint32_t n = left > sizeof(tmp) ? sizeof(tmp) : left;
		if (read_exact(r, tmp, n))
			goto trunc;
		for (uint32_t i = 0; i < n; i++)
			if (tmp[i]) {
				co_fmt(r->err, sizeof(r->err), "%s: %s %lu: damaged padding of %s record %lu",
				       r->name, at(r), (unsigned long)(r->off - n + i), co_rec_name(h.type),
				       (unsigned long)h.seq);
				return -1;
			}
		left -= n;
	}
	r->hdr = h;
	r->left = h.len;
	co_rec_sum_init(&r->h, h.seq, h.type);
	return 1;
trunc:
	if (!r->err[0])
		truncated(r, r->off);
	return -1;
}

int co_r_read(struct co_reader *r, void *p, uint64_t n)
{
	if (n > r->left) {
		co_fmt(r->err, sizeof(r->err), "%s: %s %lu: %s record is shorter than expected",
		       r->name, at(r), (unsigned long)r->rec_off, co_rec_name(r->hdr.type));
		return -1;
	}
	int e = read_exact(r, p, n);
	if (e) {
		if (e == 1)
			truncated(r, r->off);
		return -1;
	}
	co_xxh64_update(&r->h, p, n);
	r->left -= n;
	return 0;
}

int co_r_finish(struct co_reader *r)
{
	char tmp[512];
	while (r->left) {
		uint64_t n = r->left > sizeof(tmp) ? sizeof(tmp) : r->left;
		if (co_r_read(r, tmp, n))
			return -1;
	}
	uint64_t sum;
	if (read_exact(r, &sum, sizeof(sum))) {
		if (!r->err[0])
			truncated(r, r->off);
		return -1;
	}
	if (!r->unhashed && sum != co_xxh64_digest(&r->h)) {
		co_fmt(r->err, sizeof(r->err),
		       "%s: %s %lu: checksum mismatch in %s record %lu (payload bytes %lu-%lu)",
		       r->name, at(r), (unsigned long)r->rec_off, co_rec_name(r->hdr.type),
		       (unsigned long)r->hdr.seq,
		       (unsigned long)(r->rec_off + sizeof(struct co_rec_hdr) + r->hdr.pad),
		       (unsigned long)(r->off - sizeof(sum)));
		return -1;
	}
	r->unhashed = 0;
	r->seq++;
	return 0;
}

int co_r_skip(struct co_reader *r, uint64_t n)
{
	if (n > r->left) {
		co_fmt(r->err, sizeof(r->err), "%s: %s %lu: %s record is shorter than expected",
		       r->name, at(r), (unsigned long)r->rec_off, co_rec_name(r->hdr.type));
		return -1;
	}
	long e = co_lseek(r->fd, (long)n, 1 /* SEEK_CUR */);
	if (e < 0) {
		co_fmt(r->err, sizeof(r->err), "%s: %s %lu: cannot skip %lu bytes (errno %ld)", r->name, at(r),
		       (unsigned long)r->off, (unsigned long)n, -e);
		return -1;
	}
	r->off += n;
	r->left -= n;
	r->unhashed = 1;
	return 0;
}

int co_r_payload(struct co_reader *r, void *p, uint64_t max)
{
	uint64_t n = r->hdr.len < max ? r->hdr.len : max;
	if (co_r_read(r, p, n))
		return -1;
	if (n < max)
		co_memset((char *)p + n, 0, max - n);
	return co_r_finish(r);
}

int co_r_expect(struct co_reader *r, unsigned type, void *p, uint64_t max)
{
	int e = co_r_next(r);
	if (e < 0)
		return -1;
	if (e == 0 || r->hdr.type != type) {
		co_fmt(r->err, sizeof(r->err), "%s: %s %lu: expected a %s record, found %s",
		       r->name, at(r), (unsigned long)r->rec_off, co_rec_name(type),
		       e ? co_rec_name(r->hdr.type)
			 : r->decompressed ? "the end of the stream (the compressed file is damaged or truncated)"
					   : "end of file");
		return -1;
	}
	return co_r_payload(r, p, max);
}

void co_stream_path(char *out, unsigned long n, const char *image, int k)
{
	size_t len = co_strlen(image);
	if (k == 0 || len < 4 || !co_endswith(image, ".img")) {
		co_strlcpy(out, image, n);
		return;
	}
	co_fmt(out, n, "%s", image);
	if (len - 4 < n)
		co_fmt(out + len - 4, n - (len - 4), ".p%d.img", k);
}

int co_w_head(struct co_writer *w, uint32_t kind, const struct co_bind *b)
{
	struct co_head h;
	struct co_timespec ts;
	co_memset(&h, 0, sizeof(h));
	co_strlcpy(h.magic, CO_IMG_MAGIC, sizeof(h.magic));
	h.version = CO_IMG_VERSION;
	h.kind = kind;
	if (b)
		h.bind = *b;
	co_clock_gettime(0 /* CLOCK_REALTIME */, &ts);
	h.created_ns = (uint64_t)ts.sec * 1000000000ULL + (uint64_t)ts.nsec;
	return co_w_rec(w, CO_R_HEAD, &h, sizeof(h));
}

static const char *kind_name(uint32_t kind)
{
	return kind == CO_KIND_PROCESS ? "process image" : kind == CO_KIND_PAGES ? "page stream"
	       : kind == CO_KIND_SHARED ? "shared objects file" : kind == CO_KIND_MANIFEST ? "manifest" : "file";
}

int co_head_check(struct co_reader *r, const struct co_head *h, uint32_t kind, const struct co_bind *want)
{
	if (co_strcmp(h->magic, CO_IMG_MAGIC) || h->kind != kind)
		return co_err(r->err, sizeof(r->err), "%s: not a cohort %s", r->name, kind_name(kind));
	if (!CO_IMG_VERSION_OK(h->version))
		return co_err(r->err, sizeof(r->err), "%s: image format version %u, this cohort reads %u to %u",
			      r->name, h->version, CO_IMG_VERSION_MIN, CO_IMG_VERSION);
	if (!want || h->version < 7)
		return 0;
	const struct co_bind *b = &h->bind;
	if ((b->group_id && want->group_id && b->group_id != want->group_id) || b->generation != want->generation ||
	    b->pid != want->pid || b->stream != want->stream)
		return co_err(r->err, sizeof(r->err),
			      "%s: this file belongs to %s%llx, generation %llu, pid %d, stream %u, not to %s%llx, "
			      "generation %llu, pid %d, stream %u (a file from elsewhere?)",
			      r->name, "group ", (unsigned long long)b->group_id, (unsigned long long)b->generation,
			      b->pid, b->stream, "group ", (unsigned long long)want->group_id,
			      (unsigned long long)want->generation, want->pid, want->stream);
	return 0;
}

int co_mproc_maker(const struct co_mproc *p, int n, int i)
{
	int leader = 0;
	for (int k = 0; k < n; k++) {
		if (p[k].pid == p[i].ppid && p[k].pid != p[i].pid && !(p[k].flags & CO_MP_ZOMBIE))
			return p[k].pid;
		if (p[k].pid == p[i].sid && p[k].sid == p[k].pid && p[k].pid != p[i].pid && (p[k].flags & CO_MP_ZOMBIE))
			leader = p[k].pid;
	}
	return leader;
}

int co_manifest_read(struct co_reader *r, struct co_manifest *m, struct co_mproc *p, int max, int *n)
{
	int nf;
	return co_manifest_read_files(r, m, p, max, n, 0, 0, &nf);
}

int co_manifest_read_files(struct co_reader *r, struct co_manifest *m, struct co_mproc *p, int max, int *n,
			   struct co_mfile *f, int maxf, int *nf)
{
	struct co_head h;
	*n = 0;
	*nf = 0;
	if (co_r_expect(r, CO_R_HEAD, &h, sizeof(h)) || co_head_check(r, &h, CO_KIND_MANIFEST, 0))
		return -1;
	if (co_r_expect(r, CO_R_MANIFEST, m, sizeof(*m)))
		return -1;
	/* a manifest is its generation's own: its head says so too */
	struct co_bind own = { m->group_id, m->generation, 0, 0 };
	if (co_head_check(r, &h, CO_KIND_MANIFEST, &own))
		return -1;
	for (;;) {
		int e = co_r_next(r);
		if (e < 0)
			return -1;
		if (e == 0)
			return co_err(r->err, sizeof(r->err), "%s: manifest is truncated", r->name);
		if (r->hdr.type == CO_R_END) {
			if (co_r_finish(r))
				return -1;
			break;
		}
		if (r->hdr.type == CO_R_MFILE && *n == (int)m->nprocs) {
			struct co_mfile one, *dst = f && *nf < maxf ? &f[*nf] : &one;
			if (*nf >= (int)m->nfiles)
				return co_err(r->err, sizeof(r->err), "%s: %s %lu: more files than the %u it lists",
					      r->name, at(r), (unsigned long)r->rec_off, m->nfiles);
			if (co_r_payload(r, dst, sizeof(*dst)))
				return -1;
			dst->name[sizeof(dst->name) - 1] = 0;
			(*nf)++;
			continue;
		}
		if (r->hdr.type != CO_R_MPROC || *n >= max || *nf)
			return co_err(r->err, sizeof(r->err), "%s: %s %lu: unexpected %s record", r->name, at(r),
				      (unsigned long)r->rec_off, co_rec_name(r->hdr.type));
		if (co_r_payload(r, &p[*n], sizeof(p[0])))
			return -1;
		p[*n].image[sizeof(p[0].image) - 1] = 0;
		(*n)++;
	}
	if ((uint32_t)*n != m->nprocs)
		return co_err(r->err, sizeof(r->err), "%s: lists %d processes, expected %u", r->name, *n, m->nprocs);
	if ((uint32_t)*nf != m->nfiles)
		return co_err(r->err, sizeof(r->err), "%s: lists %d files, expected %u", r->name, *nf, m->nfiles);
	if (f && *nf > maxf)
		return co_err(r->err, sizeof(r->err), "%s: lists %d files, more than %d", r->name, *nf, maxf);
	m->name[sizeof(m->name) - 1] = 0;
	m->program[sizeof(m->program) - 1] = 0;
	return 0;
}
