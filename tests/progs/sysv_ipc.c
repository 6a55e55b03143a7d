/*
 * sysv_ipc (application group): SysV IPC objects three processes share,
 * with state in them at any moment a checkpoint may come (issue 13).
 * The parent makes, by key, a set of 3 semaphores, a message queue and
 * a shm segment of 4 pages and 100 bytes that every process keeps
 * attached, and one IPC_PRIVATE segment that nobody keeps attached
 * (filled once, checked at the end), then forks two children, which find
 * the objects by key and must get the same ids.
 * Each step s: the parent queues step s's orders (type 1 for child 1,
 * 2 for child 2); each child
 * takes its order (msgrcv by type), adds 1 to semaphore 0 and c to
 * semaphore c, writes s into its word of the attached segment, and
 * answers (type 100+c, with a digest).  The parent checks the answers,
 * every semaphore value, the segment's words, and every key, id, mode
 * and size against what it noted at the start.  Five messages of types
 * 50 to 54 and sizes 1 to 4000 bytes wait in the queue from the start
 * and are read at the end, in order of their types, checked byte for byte.
 * Output: one line per step, then RESULT.
 */
#include "common.h"
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#define STEPS 40
#define STEP_MS 80
/* keys of this run (a native run is in the host's IPC namespace, beside others) */
#define KEY_SEM (key_base + 1)
#define KEY_MSG (key_base + 2)
#define KEY_SHM (key_base + 3)
#define SHM_SIZE (4 * 4096 + 100)
#define PRIV_SIZE (3 * 4096)

static int semid, msqid, shmid, privid;
static key_t key_base;
static volatile uint64_t *words;	/* the attached segment: word c is child c's step */

struct msg {
	long mtype;
	char text[4096];
};

/* message k of the ones waiting from the start: its size and its bytes */
static size_t park_len(int k) { return k == 0 ? 1 : (size_t)(k * 1000); }
static char park_byte(int k, size_t i) { return (char)t_mix((uint64_t)k * 7919 + i); }

/* The objects are still the ones noted at the start: keys, ids, modes, sizes. */
static void check_ids(const char *who, int attached)
{
	CHECK(semget(KEY_SEM, 0, 0) == semid, "%s: semaphore key now names id %d, not %d", who, semget(KEY_SEM, 0, 0), semid);
	CHECK(msgget(KEY_MSG, 0) == msqid, "%s: queue key now names id %d, not %d", who, msgget(KEY_MSG, 0), msqid);
	CHECK(shmget(KEY_SHM, 0, 0) == shmid, "%s: shm key now names id %d, not %d", who, shmget(KEY_SHM, 0, 0), shmid);
	struct semid_ds sd;
	struct msqid_ds md;
	struct shmid_ds hd;
	SYSCHK(semctl(semid, 0, IPC_STAT, &sd));
	CHECK((sd.sem_perm.mode & 0777) == 0640 && sd.sem_nsems == 3, "%s: semaphore set mode %o, %lu semaphores", who,
	      sd.sem_perm.mode & 0777, (unsigned long)sd.sem_nsems);
	SYSCHK(msgctl(msqid, IPC_STAT, &md));
	CHECK((md.msg_perm.mode & 0777) == 0620, "%s: queue mode %o", who, md.msg_perm.mode & 0777);
	SYSCHK(shmctl(shmid, IPC_STAT, &hd));
	CHECK((hd.shm_perm.mode & 0777) == 0660 && hd.shm_segsz == SHM_SIZE, "%s: segment mode %o, %zu bytes", who,
	      hd.shm_perm.mode & 0777, (size_t)hd.shm_segsz);
	CHECK(hd.shm_perm.uid == getuid(), "%s: segment owner %u", who, (unsigned)hd.shm_perm.uid);
	/* the parent and both children keep it attached while the steps run: after a restart too (the parent
	 * checks it after both children answered a step that is not their last: both still run) */
	CHECK(!attached || hd.shm_nattch == 3, "%s: the segment is attached %lu times", who, (unsigned long)hd.shm_nattch);
	SYSCHK(shmctl(privid, IPC_STAT, &hd));
	CHECK(hd.shm_segsz == PRIV_SIZE && hd.shm_perm.__key == IPC_PRIVATE, "%s: private segment %zu bytes, key %#x",
	      who, (size_t)hd.shm_segsz, (unsigned)hd.shm_perm.__key);
}

static uint64_t answer_of(int c, int s) { return t_mix((uint64_t)(c * 1000 + s)); }

static void child(int c)
{
	int sid = semget(KEY_SEM, 0, 0);
	CHECK(sid == semid, "child %d: semget by key gave %d, the parent noted %d", c, sid, semid);
	char who[16];
	snprintf(who, sizeof(who), "child %d", c);
	for (int s = 0; s < STEPS; s++) {
		struct msg m;
		/* (a checkpoint never shows: no EINTR from a SysV call, which the kernel never restarts) */
		ssize_t n = msgrcv(msqid, &m, sizeof(m.text), c, 0);
		CHECK(n == 8, "child %d: order of %zd bytes (%s)", c, n, n < 0 ? strerror(errno) : "");
		uint64_t got;
		memcpy(&got, m.text, 8);
		CHECK(got == (uint64_t)s, "child %d: order for step %llu at step %d", c, (unsigned long long)got, s);
		struct sembuf ops[2] = { { 0, 1, 0 }, { (unsigned short)c, (short)c, 0 } };
		CHECK(semop(semid, ops, 2) == 0, "child %d: semop: %s", c, strerror(errno));
		words[c] = (uint64_t)s;
		/* (the count of attachments only in the parent: a child's sibling may already have ended its last step) */
		check_ids(who, 0);
		m.mtype = 100 + c;
		uint64_t a = answer_of(c, s);
		memcpy(m.text, &a, 8);
		CHECK(msgsnd(msqid, &m, 8, 0) == 0, "child %d: msgsnd: %s", c, strerror(errno));
	}
	_exit(0);
}

static void send_order(int c, int s)
{
	struct msg m = { .mtype = c };
	uint64_t v = (uint64_t)s;
	memcpy(m.text, &v, 8);
	CHECK(msgsnd(msqid, &m, 8, 0) == 0, "msgsnd: %s", strerror(errno));
}

/*
 * Objects made and removed around the real ones: the real ids are not
 * the first of a fresh namespace (a restart must keep them, not make
 * the first ones again), and the ids have gaps.
 */
static int dummies[3];
static void make_dummies(int remove)
{
	if (remove) {
		SYSCHK(semctl(dummies[0], 0, IPC_RMID));
		SYSCHK(msgctl(dummies[1], IPC_RMID, NULL));
		SYSCHK(shmctl(dummies[2], IPC_RMID, NULL));
		return;
	}
	for (int k = 0; k < 2; k++) {
		dummies[0] = SYSCHK(semget(IPC_PRIVATE, 1, 0600));
		dummies[1] = SYSCHK(msgget(IPC_PRIVATE, 0600));
		dummies[2] = SYSCHK(shmget(IPC_PRIVATE, 4096, 0600));
		if (k == 0)
			make_dummies(1);
	}
}

static void make_objects(void)
{
	make_dummies(0);
	semid = SYSCHK(semget(KEY_SEM, 3, IPC_CREAT | IPC_EXCL | 0640));
	unsigned short zero[3] = { 0, 0, 0 };
	SYSCHK(semctl(semid, 0, SETALL, zero));
	msqid = SYSCHK(msgget(KEY_MSG, IPC_CREAT | IPC_EXCL | 0620));
	shmid = SYSCHK(shmget(KEY_SHM, SHM_SIZE, IPC_CREAT | IPC_EXCL | 0660));
	words = shmat(shmid, NULL, 0);
	CHECK(words != (void *)-1, "shmat: %s", strerror(errno));
	/* the last bytes past the pages: must come back too */
	memset((char *)words + 4 * 4096, 0x5a, 100);
	privid = SYSCHK(shmget(IPC_PRIVATE, PRIV_SIZE, IPC_CREAT | 0600));
	char *p = shmat(privid, NULL, 0);
	CHECK(p != (void *)-1, "shmat private: %s", strerror(errno));
	for (int i = 0; i < PRIV_SIZE; i += 7)
		p[i] = (char)(i / 7 + 1);
	SYSCHK(shmdt(p));
	make_dummies(1);
	for (int k = 4; k >= 0; k--) {
		static struct msg m;
		m.mtype = 50 + k;
		for (size_t i = 0; i < park_len(k); i++)
			m.text[i] = park_byte(k, i);
		SYSCHK(msgsnd(msqid, &m, park_len(k), 0));
	}
}

/* At the end: the messages that waited all along, the private segment, then everything removed. */
static uint64_t check_end(uint64_t h)
{
	for (int k = 0; k < 5; k++) {
		static struct msg m;
		ssize_t n = SYSCHK(msgrcv(msqid, &m, sizeof(m.text), 50 + k, IPC_NOWAIT));
		CHECK((size_t)n == park_len(k), "waiting message %d: %zd bytes", k, n);
		for (size_t i = 0; i < (size_t)n; i++)
			CHECK(m.text[i] == park_byte(k, i), "waiting message %d: byte %zu differs", k, i);
		h = t_fnv(h, m.text, (size_t)n);
	}
	struct msqid_ds md;
	SYSCHK(msgctl(msqid, IPC_STAT, &md));
	CHECK(md.msg_qnum == 0, "%lu messages left in the queue", (unsigned long)md.msg_qnum);
	char *p = shmat(privid, NULL, SHM_RDONLY);
	CHECK(p != (void *)-1, "shmat private: %s", strerror(errno));
	for (int i = 0; i < PRIV_SIZE; i++)
		CHECK(p[i] == (i % 7 ? 0 : (char)(i / 7 + 1)), "private segment: byte %d is %d", i, p[i]);
	h = t_fnv(h, p, PRIV_SIZE);
	SYSCHK(shmdt(p));
	for (int i = 0; i < 100; i++)
		CHECK(((char *)words)[4 * 4096 + i] == 0x5a, "segment byte %d past its pages differs", 4 * 4096 + i);
	SYSCHK(semctl(semid, 0, IPC_RMID));
	SYSCHK(msgctl(msqid, IPC_RMID, NULL));
	SYSCHK(shmctl(shmid, IPC_RMID, NULL));
	SYSCHK(shmctl(privid, IPC_RMID, NULL));
	return h;
}

int main(void)
{
	t_init("sysv_ipc");
	key_base = (key_t)(0x5eed0000 | ((getpid() & 0xfff) << 4));
	make_objects();
	check_ids("parent", 0);
	CHECK(semid && msqid && shmid, "ids %d %d %d: the first of the namespace", semid, msqid, shmid);
	send_order(1, 0);
	send_order(2, 0);
	pid_t kids[3];
	for (int c = 1; c <= 2; c++) {
		kids[c] = SYSCHK(fork());
		if (kids[c] == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* a native run that fails leaves no child waiting */
			child(c);
		}
	}
	uint64_t h = 0;
	for (int s = 0; s < STEPS; s++) {
		for (int c = 1; c <= 2; c++) {
			struct msg m;
			ssize_t n;
			n = msgrcv(msqid, &m, sizeof(m.text), 100 + c, 0);
			CHECK(n >= 0, "msgrcv: %s", strerror(errno));
			uint64_t a;
			memcpy(&a, m.text, 8);
			CHECK(n == 8 && a == answer_of(c, s), "step %d: child %d answered wrong", s, c);
			CHECK(words[c] == (uint64_t)s, "step %d: child %d's word is %llu", s, c, (unsigned long long)words[c]);
		}
		unsigned short v[3];
		SYSCHK(semctl(semid, 0, GETALL, v));
		CHECK(v[0] == 2 * (s + 1) && v[1] == s + 1 && v[2] == 2 * (s + 1), "step %d: semaphores %u %u %u", s, v[0],
		      v[1], v[2]);
		check_ids("parent", s < STEPS - 1);
		h = t_fnv(h, v, sizeof(v));
		/* the next step's orders, once this one is checked (the waiting messages keep the queue full) */
		if (s + 1 < STEPS)
			for (int c = 1; c <= 2; c++)
				send_order(c, s + 1);
		printf("step %d ok sems %u %u %u\n", s, v[0], v[1], v[2]);
		fflush(stdout);
		t_sleep_ms(STEP_MS);
	}
	for (int c = 1; c <= 2; c++) {
		int st;
		SYSCHK(waitpid(kids[c], &st, 0));
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d ended with status %#x", c, st);
	}
	/*
	 * a test's end gate (common.h) holds the program here, before the end's
	 * checks and the removal of the objects: a segment removed while still
	 * attached cannot be checkpointed (cohort refuses it), nor, under
	 * cohort, should the end's checks run before the last restart
	 */
	t_end_gate_now();
	h = check_end(h);
	printf("RESULT sysv_ipc %016llx\n", (unsigned long long)h);
	return 0;
}
