/*
 * sysv.c - the SysV IPC objects of the group's IPC namespace (init is
 * cloned with CLONE_NEWIPC): semaphore sets, message queues and shm
 * segments, with their keys and ids.  They belong to no descriptor, so
 * the engine calls this once per checkpoint rather than per reference.
 *
 * Dump (the coordinator, every member parked): a thread of the
 * coordinator enters the group's IPC namespace (setns) and ends there
 * (without privileges it could not go back), lists each kind by index
 * (SEM_INFO, then SEM_STAT_ANY per index, and the same for queues and
 * segments: no /proc text to parse).  A set is
 * one CO_R_SYSVSEM with its values; a queue is a CO_R_SYSVMSG (part 0),
 * its messages in order read with MSG_COPY, which leaves them queued
 * (part 1 each), then part 2; a segment is a CO_R_SYSVSHM (part 0), runs
 * of its bytes that are not zero (part 1), then part 2.
 *
 * Restore (init, in the group's new IPC namespace, before any restorer):
 * each object made with its id (/proc/sys/kernel/{sem,msg,shm}_next_id
 * set to it just before the get, as CRIU does), filled, and given its
 * owner and mode (IPC_SET) last, at part 2, so that a read-only mode
 * does not stop the filling.  A segment the processes attach is mapped
 * again by their restorers with shmat (src/res/mem.c): one segment, the
 * same id both ways.
 *
 * The semaphore adjustments of SEM_UNDO are each process's, not the
 * namespace's, and no interface shows them: the agent notes them as the
 * process makes them (src/agent/semundo.c), its image holds them (record
 * 76) and its restorer makes them again once these sets exist
 * (src/res/semundo.c).
 *
 * Not restored: the pids and times the objects note, and a segment
 * removed while attached (IPC_RMID: refused).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <unistd.h>
#include "cli/cli.h"
#include "kinds/kinds.h"
#include "util.h"

enum { PART_OBJECT = 0, PART_DATA = 1, PART_DONE = 2 };

#define MAX_SEMS 32768	/* the kernel's SEMMSL limit is 32000 */

static struct co_sysv perm_of(const struct ipc_perm *p, int id, uint64_t size)
{
	return (struct co_sysv){ .part = PART_OBJECT, .id = id, .key = p->__key, .uid = p->uid, .gid = p->gid,
				 .mode = p->mode, .size = size };
}

/* ---- dump, inside the group's IPC namespace ---- */

static int dump_sems(struct co_kdump *d)
{
	struct seminfo si;
	int max = semctl(0, 0, SEM_INFO, (struct seminfo *)&si);
	static unsigned short vals[MAX_SEMS];
	for (int i = 0; i <= max; i++) {
		struct semid_ds ds;
		int id = semctl(i, 0, SEM_STAT_ANY, &ds);
		if (id < 0)
			continue;
		if (ds.sem_nsems > MAX_SEMS || semctl(id, 0, GETALL, vals) < 0) {
			snprintf(d->err, d->errlen, "sysv semaphore set %d: cannot read its values: %s", id,
				 strerror(errno));
			return -1;
		}
		struct co_sysv s = perm_of(&ds.sem_perm, id, ds.sem_nsems);
		uint64_t n = ds.sem_nsems * sizeof(vals[0]);
		co_w_begin(d->w, CO_R_SYSVSEM, sizeof(s) + n, 0);
		co_w_put(d->w, &s, sizeof(s));
		co_w_put(d->w, vals, n);
		co_w_end(d->w);
	}
	return 0;
}

/* Every message of queue id, in order, left where it is (MSG_COPY takes the n-th without removing it). */
static int dump_messages(struct co_kdump *d, int id, uint64_t count, size_t max)
{
	struct msgbuf *m = malloc(sizeof(long) + max);
	if (!m) {
		snprintf(d->err, d->errlen, "sysv message queue %d: out of memory", id);
		return -1;
	}
	for (uint64_t k = 0; k < count; k++) {
		ssize_t n = msgrcv(id, m, max, (long)k, IPC_NOWAIT | MSG_COPY);
		if (n < 0) {
			snprintf(d->err, d->errlen, "sysv message queue %d: cannot read message %llu: %s%s", id,
				 (unsigned long long)k, strerror(errno),
				 errno == ENOSYS ? " (the kernel lacks CONFIG_CHECKPOINT_RESTORE)" : "");
			free(m);
			return -1;
		}
		struct co_sysv s = { .part = PART_DATA, .id = id, .size = (uint64_t)n, .at = m->mtype };
		co_w_begin(d->w, CO_R_SYSVMSG, sizeof(s) + (uint64_t)n, 0);
		co_w_put(d->w, &s, sizeof(s));
		co_w_put(d->w, m->mtext, (uint64_t)n);
		co_w_end(d->w);
	}
	free(m);
	return 0;
}

static int dump_msgs(struct co_kdump *d)
{
	struct msginfo mi;
	int max = msgctl(0, MSG_INFO, (struct msqid_ds *)&mi);
	for (int i = 0; i <= max; i++) {
		struct msqid_ds ds;
		int id = msgctl(i, MSG_STAT_ANY, &ds);
		if (id < 0)
			continue;
		struct co_sysv s = perm_of(&ds.msg_perm, id, ds.msg_qbytes);
		co_w_rec(d->w, CO_R_SYSVMSG, &s, sizeof(s));
		if (dump_messages(d, id, ds.msg_qnum, (size_t)mi.msgmax) < 0)
			return -1;
		s.part = PART_DONE;
		co_w_rec(d->w, CO_R_SYSVMSG, &s, sizeof(s));
	}
	return 0;
}

static int zero_page(const unsigned char *p)
{
	for (size_t i = 0; i < CO_PAGE; i++)
		if (p[i])
			return 0;
	return 1;
}

/* The bytes of segment id (size), attached here for the moment: its runs of pages not all zero. */
static int dump_segment_data(struct co_kdump *d, int id, uint64_t size)
{
	const unsigned char *base = shmat(id, NULL, SHM_RDONLY);
	if (base == (void *)-1) {
		snprintf(d->err, d->errlen, "sysv shm segment %d: cannot attach it to read it: %s", id, strerror(errno));
		return -1;
	}
	/*
	 * Made with SHM_HUGETLB: its pages are the hugetlb pool's, which a
	 * restart may not have, and a segment made again would be of 4 KiB
	 * pages (refused as an attached one is, shm.c).  Nothing but the
	 * mapping shows it: the segment's mode keeps permission bits only.
	 */
	int huge = co_shm_hugetlb_at((uint64_t)base);
	if (huge) {
		shmdt(base);
		if (huge < 0)
			snprintf(d->err, d->errlen, "sysv shm segment %d: cannot find where it is attached here: %s", id,
				 strerror(-huge));
		else
			snprintf(d->err, d->errlen, "sysv shm segment %d is huge page memory (SHM_HUGETLB), which cohort "
				 "cannot restore", id);
		return -1;
	}
	for (uint64_t off = 0; off < size;) {
		if (zero_page(base + off) && (off += CO_PAGE))
			continue;
		uint64_t end = off + CO_PAGE;
		while (end < size && !zero_page(base + end))
			end += CO_PAGE;
		if (end > size)
			end = size;
		struct co_sysv s = { .part = PART_DATA, .id = id, .size = end - off, .at = (int64_t)off };
		co_w_begin(d->w, CO_R_SYSVSHM, sizeof(s) + (end - off), 0);
		co_w_put(d->w, &s, sizeof(s));
		co_w_put(d->w, base + off, end - off);
		co_w_end(d->w);
		off = end;
	}
	shmdt(base);
	return 0;
}

static int dump_shms(struct co_kdump *d)
{
	struct shm_info si;
	int max = shmctl(0, SHM_INFO, (struct shmid_ds *)&si);
	for (int i = 0; i <= max; i++) {
		struct shmid_ds ds;
		int id = shmctl(i, SHM_STAT_ANY, &ds);
		if (id < 0)
			continue;
		if (ds.shm_perm.mode & SHM_DEST) {
			snprintf(d->err, d->errlen, "sysv shm segment %d was removed (IPC_RMID) while %lu processes still "
				 "attach it, which cohort cannot restore", id, (unsigned long)ds.shm_nattch);
			return -1;
		}
		struct co_sysv s = perm_of(&ds.shm_perm, id, ds.shm_segsz);
		s.mode &= 0777;	/* SHM_LOCKED is not asked for again */
		co_w_rec(d->w, CO_R_SYSVSHM, &s, sizeof(s));
		/* a page of zeros reads one in (shmem keeps no zero page): the segment's size in memory, for a moment */
		if (dump_segment_data(d, id, ds.shm_segsz) < 0)
			return -1;
		s.part = PART_DONE;
		co_w_rec(d->w, CO_R_SYSVSHM, &s, sizeof(s));
	}
	return 0;
}

struct ns_dump {
	struct co_kdump *d;
	int ns;
	int r;
};

/* A thread of its own enters the namespace and ends there (an unprivileged coordinator could not come back). */
static void *dump_in_ns(void *arg)
{
	struct ns_dump *a = arg;
	if (setns(a->ns, CLONE_NEWIPC) < 0) {
		snprintf(a->d->err, a->d->errlen, "cannot enter the group's IPC namespace: %s", strerror(errno));
		return NULL;
	}
	a->r = dump_sems(a->d) < 0 || dump_msgs(a->d) < 0 || dump_shms(a->d) < 0 ? -1 : 0;
	return NULL;
}

int co_sysv_dump(struct co_kdump *d, int host_pid)
{
	char p[64];
	snprintf(p, sizeof(p), "/proc/%d/ns/ipc", host_pid);
	struct ns_dump a = { d, open(p, O_RDONLY | O_CLOEXEC), -1 };
	pthread_t t;
	int e = a.ns < 0 ? errno : pthread_create(&t, NULL, dump_in_ns, &a);
	if (e) {
		snprintf(d->err, d->errlen, "cannot enter the group's IPC namespace (%s): %s", p, strerror(e));
	} else {
		pthread_join(t, NULL);
		if (a.r == 0 && d->w->err)
			snprintf(d->err, d->errlen, "writing the group's SysV IPC objects: %s", strerror(-d->w->err));
	}
	if (a.ns >= 0)
		close(a.ns);
	return a.r < 0 || d->w->err ? -1 : 0;
}

/* ---- restore, in init ---- */

/* The queue or segment being filled (part 1 records), and where a segment is attached in init. */
static int cur_id = -1;
static unsigned cur_type;
static unsigned char *cur_at;
static uint64_t cur_size;

static const char *what_of(unsigned type)
{
	return type == CO_R_SYSVSEM ? "sysv semaphore set" : type == CO_R_SYSVMSG ? "sysv message queue" : "sysv shm segment";
}

/* Make the next object of this kind with the id s->id: *_next_id, then get (made readable and writable by us). */
static int make(struct co_krestore *x, unsigned type, const struct co_sysv *s)
{
	static const char *const sysctl[] = { "sem", "msg", "shm" };
	int k = type == CO_R_SYSVSEM ? 0 : type == CO_R_SYSVMSG ? 1 : 2;
	char path[64], id[16];
	snprintf(path, sizeof(path), "/proc/sys/kernel/%s_next_id", sysctl[k]);
	snprintf(id, sizeof(id), "%d", s->id);
	if (co_write_proc(path, id) < 0)
		return co_kerr(x, "%s %d (key %#x): cannot set %s: %s", what_of(type), s->id, (unsigned)s->key, path,
			       strerror(errno));
	int fl = IPC_CREAT | IPC_EXCL | 0600, got;
	if (k == 0)
		got = semget(s->key, (int)s->size, fl);
	else if (k == 1)
		got = msgget(s->key, fl);
	else
		got = shmget(s->key, s->size, fl);
	if (got < 0)
		return co_kerr(x, "%s %d (key %#x): cannot make it again: %s", what_of(type), s->id, (unsigned)s->key,
			       strerror(errno));
	if (got != s->id)
		return co_kerr(x, "%s %d (key %#x): made again as %d, not its own id", what_of(type), s->id,
			       (unsigned)s->key, got);
	return 0;
}

/* Owner and mode as they were (IPC_SET), once the object is filled; qbytes for a queue. */
static int set_perm(struct co_krestore *x, unsigned type, const struct co_sysv *s)
{
	int r;
	if (type == CO_R_SYSVSEM) {
		struct semid_ds ds = { .sem_perm = { .uid = s->uid, .gid = s->gid, .mode = s->mode & 0777 } };
		r = semctl(s->id, 0, IPC_SET, &ds);
	} else if (type == CO_R_SYSVMSG) {
		struct msqid_ds ds;
		r = msgctl(s->id, IPC_STAT, &ds);
		ds.msg_perm.uid = s->uid, ds.msg_perm.gid = s->gid, ds.msg_perm.mode = s->mode & 0777;
		if (r == 0)
			r = msgctl(s->id, IPC_SET, &ds);
	} else {
		struct shmid_ds ds = { .shm_perm = { .uid = s->uid, .gid = s->gid, .mode = s->mode & 0777 } };
		r = shmctl(s->id, IPC_SET, &ds);
	}
	if (r < 0)
		return co_kerr(x, "%s %d: cannot give it owner %u:%u and mode %o: %s", what_of(type), s->id, s->uid,
			       s->gid, s->mode & 0777, strerror(errno));
	return 0;
}

static int restore_sem(struct co_krestore *x, const struct co_sysv *s, const void *vals, uint64_t n)
{
	if (n < s->size * sizeof(unsigned short) || s->size == 0 || s->size > MAX_SEMS)
		return co_kbad(x, "sysv semaphore set %d of %llu semaphores with %llu bytes of values", s->id,
			       (unsigned long long)s->size, (unsigned long long)n);
	static unsigned short v[MAX_SEMS];
	memcpy(v, vals, s->size * sizeof(v[0]));
	if (make(x, CO_R_SYSVSEM, s) < 0)
		return -1;
	if (semctl(s->id, 0, SETALL, v) < 0)
		return co_kerr(x, "sysv semaphore set %d: cannot set its values: %s", s->id, strerror(errno));
	return set_perm(x, CO_R_SYSVSEM, s);
}

/* A queue's byte limit first (its messages must fit), then its messages in order. */
static int restore_msg_part(struct co_krestore *x, const struct co_sysv *s, const void *data, uint64_t n)
{
	if (s->part == PART_OBJECT) {
		struct msqid_ds ds;
		if (make(x, CO_R_SYSVMSG, s) < 0)
			return -1;
		/* above msgmnb it needs CAP_SYS_RESOURCE: without, the default limit stays, and msgsnd says if too small */
		if (msgctl(s->id, IPC_STAT, &ds) == 0 && ds.msg_qbytes != s->size) {
			ds.msg_qbytes = s->size;
			msgctl(s->id, IPC_SET, &ds);
		}
		return 0;
	}
	if (s->part == PART_DONE)
		return 0;
	struct msgbuf *m = malloc(sizeof(long) + n + 1);
	if (!m)
		return co_kerr(x, "sysv message queue %d: out of memory", s->id);
	m->mtype = s->at;
	memcpy(m->mtext, data, n);
	int r = msgsnd(s->id, m, n, IPC_NOWAIT);
	int e = errno;
	free(m);
	if (r < 0)
		return co_kerr(x, "sysv message queue %d: cannot queue a message of type %lld (%llu bytes) again: %s",
			       s->id, (long long)s->at, (unsigned long long)n, strerror(e));
	return 0;
}

/* A segment: made and attached here while its runs are written, detached at part 2. */
static int restore_shm_part(struct co_krestore *x, const struct co_sysv *s, const void *data, uint64_t n)
{
	if (s->part == PART_OBJECT) {
		if (make(x, CO_R_SYSVSHM, s) < 0)
			return -1;
		cur_at = shmat(s->id, NULL, 0);
		if (cur_at == (void *)-1) {
			cur_at = NULL;
			return co_kerr(x, "sysv shm segment %d: cannot attach it to fill it: %s", s->id, strerror(errno));
		}
		cur_size = s->size;
		return 0;
	}
	if (s->part == PART_DONE) {
		shmdt(cur_at);
		cur_at = NULL;
		return 0;
	}
	if (!cur_at || s->at < 0 || (uint64_t)s->at > cur_size || n > cur_size - (uint64_t)s->at)
		return co_kbad(x, "sysv shm segment %d: %llu bytes at %lld, outside its %llu bytes", s->id,
			       (unsigned long long)n, (long long)s->at, (unsigned long long)cur_size);
	memcpy(cur_at + s->at, data, n);
	return 0;
}

static int sysv_restore(struct co_krestore *x, unsigned type, const void *p, uint64_t len)
{
	struct co_sysv s;
	memcpy(&s, p, sizeof(s));
	const char *data = (const char *)p + sizeof(s);
	uint64_t n = len - sizeof(s);
	if (type == CO_R_SYSVSEM)
		return restore_sem(x, &s, data, n);
	if (s.part > PART_DONE || (s.part != PART_OBJECT && (s.id != cur_id || type != cur_type)))
		return co_kbad(x, "%s %d: part %u out of place", what_of(type), s.id, s.part);
	if (s.part == PART_DATA && n != s.size)
		return co_kbad(x, "%s %d: %llu bytes where it says %llu", what_of(type), s.id, (unsigned long long)n,
			       (unsigned long long)s.size);
	cur_id = s.part == PART_DONE ? -1 : s.id;
	cur_type = type;
	int r = type == CO_R_SYSVMSG ? restore_msg_part(x, &s, data, n) : restore_shm_part(x, &s, data, n);
	if (r == 0 && s.part == PART_DONE)
		r = set_perm(x, type, &s);
	return r;
}

static void sysv_describe(unsigned type, const void *p, uint64_t len, char *out, size_t n)
{
	struct co_sysv s;
	memcpy(&s, p, sizeof(s));
	uint64_t bytes = len - sizeof(s);
	if (s.part == PART_DATA && type == CO_R_SYSVMSG)
		snprintf(out, n, "queue %d: message of type %lld, %llu bytes", s.id, (long long)s.at,
			 (unsigned long long)bytes);
	else if (s.part == PART_DATA)
		snprintf(out, n, "segment %d: %llu bytes at offset %lld", s.id, (unsigned long long)bytes, (long long)s.at);
	else if (s.part == PART_DONE)
		snprintf(out, n, "%s %d: filled, owner %u:%u, mode %o", what_of(type) + 5, s.id, s.uid, s.gid,
			 s.mode & 0777);
	else
		snprintf(out, n, "%s %d, key %#x, owner %u:%u, mode %o, %s %llu", what_of(type) + 5, s.id,
			 (unsigned)s.key, s.uid, s.gid, s.mode & 0777,
			 type == CO_R_SYSVSEM ? "semaphores" : type == CO_R_SYSVMSG ? "byte limit" : "bytes",
			 (unsigned long long)s.size);
}

/* Not a descriptor kind (kind none): records.c hands it its records, co_shared_dump calls co_sysv_dump. */
const struct co_kind_ops co_sysv_ops = {
	.kind = CO_OBJ_NONE, .restore = sysv_restore, .describe = sysv_describe,
};
