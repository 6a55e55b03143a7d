/*
 * threads_mutex_cond: producers/consumers on a bounded queue protected by a
 * mutex and condition variables. The main thread drives steps; per step every
 * producer pushes a fixed batch, the consumers drain it, and main checks that
 * the number and checksum of consumed items match what it computes itself.
 */
#include "common.h"

#define NPROD 3
#define NCONS 3
#define QCAP 8
#define STEPS 10
#define PER_STEP 240

struct item {
	uint32_t val;
	uint32_t chk;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t not_empty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t not_full = PTHREAD_COND_INITIALIZER;
static pthread_cond_t step_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t drained_cv;	/* CLOCK_MONOTONIC, used with timedwait */

static struct item q[QCAP];
static int q_head, q_count;
static int cur_step = -1;
static int done;
static uint64_t consumed_count, consumed_sum, target;
static uint64_t per_cons[NCONS], per_prod[NPROD];

static uint32_t item_val(int p, int s, int i)
{
	return (uint32_t)t_mix(((uint64_t)p << 40) ^ ((uint64_t)s << 20) ^ (uint64_t)i);
}

static uint32_t item_chk(uint32_t v) { return (uint32_t)t_mix(v ^ 0xabcdef12u); }

static uint64_t weigh(uint32_t v) { return (uint64_t)v * 3u + (v >> 7); }

static void *producer(void *arg)
{
	int p = (int)(intptr_t)arg;
	struct t_ident id;
	int last = -1;

	t_ident_init(&id);
	pthread_mutex_lock(&mu);
	for (;;) {
		while (cur_step == last && !done)
			pthread_cond_wait(&step_cv, &mu);
		if (done)
			break;
		CHECK(cur_step == last + 1, "producer %d: step jumped from %d to %d", p, last, cur_step);
		last = cur_step;
		for (int i = 0; i < PER_STEP; i++) {
			while (q_count == QCAP)
				pthread_cond_wait(&not_full, &mu);
			uint32_t v = item_val(p, last, i);
			q[(q_head + q_count) % QCAP] = (struct item){ v, item_chk(v) };
			q_count++;
			per_prod[p]++;
			pthread_cond_signal(&not_empty);
			if (i % 40 == 39) {
				/* let time pass with the lock released */
				pthread_mutex_unlock(&mu);
				t_ident_check(&id);
				t_sleep_ms(2);
				pthread_mutex_lock(&mu);
			}
		}
	}
	pthread_mutex_unlock(&mu);
	t_ident_check(&id);
	return NULL;
}

static void *consumer(void *arg)
{
	int c = (int)(intptr_t)arg;
	struct t_ident id;

	t_ident_init(&id);
	pthread_mutex_lock(&mu);
	for (;;) {
		while (q_count == 0 && !done)
			pthread_cond_wait(&not_empty, &mu);
		if (q_count == 0 && done)
			break;
		struct item it = q[q_head];
		q_head = (q_head + 1) % QCAP;
		q_count--;
		pthread_cond_signal(&not_full);
		CHECK(it.chk == item_chk(it.val), "corrupted queue item %#x/%#x", it.val, it.chk);
		consumed_count++;
		consumed_sum += weigh(it.val);
		per_cons[c]++;
		if (consumed_count == target)
			pthread_cond_signal(&drained_cv);
		if (consumed_count % 64 == 0) {
			pthread_mutex_unlock(&mu);
			t_ident_check(&id);
			pthread_mutex_lock(&mu);
		}
	}
	pthread_mutex_unlock(&mu);
	t_ident_check(&id);
	return NULL;
}

int main(void)
{
	pthread_t prod[NPROD], cons[NCONS];
	pthread_condattr_t ca;
	struct t_ident id;
	uint64_t expect_sum = 0;

	t_init("threads_mutex_cond");
	t_ident_init(&id);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&drained_cv, &ca);

	for (int i = 0; i < NCONS; i++)
		CHECK(pthread_create(&cons[i], NULL, consumer, (void *)(intptr_t)i) == 0, "pthread_create");
	for (int i = 0; i < NPROD; i++)
		CHECK(pthread_create(&prod[i], NULL, producer, (void *)(intptr_t)i) == 0, "pthread_create");

	for (int s = 0; s < STEPS; s++) {
		for (int p = 0; p < NPROD; p++)
			for (int i = 0; i < PER_STEP; i++)
				expect_sum += weigh(item_val(p, s, i));

		pthread_mutex_lock(&mu);
		target += (uint64_t)NPROD * PER_STEP;
		cur_step = s;
		pthread_cond_broadcast(&step_cv);
		while (consumed_count < target) {
			struct timespec ts = t_ns_to_ts(t_now_ns(CLOCK_MONOTONIC) + 100000000ull);
			int r = pthread_cond_timedwait(&drained_cv, &mu, &ts);
			CHECK(r == 0 || r == ETIMEDOUT, "pthread_cond_timedwait: %s", strerror(r));
		}
		CHECK(consumed_count == target, "consumed %llu, expected %llu",
		      (unsigned long long)consumed_count, (unsigned long long)target);
		CHECK(consumed_sum == expect_sum, "sum %llu, expected %llu",
		      (unsigned long long)consumed_sum, (unsigned long long)expect_sum);
		uint64_t pc = 0, cc = 0;
		for (int i = 0; i < NPROD; i++) {
			CHECK(per_prod[i] == (uint64_t)(s + 1) * PER_STEP, "producer %d count %llu", i,
			      (unsigned long long)per_prod[i]);
			pc += per_prod[i];
		}
		for (int i = 0; i < NCONS; i++)
			cc += per_cons[i];
		CHECK(pc == target && cc == target && q_count == 0, "counts %llu %llu %d", (unsigned long long)pc,
		      (unsigned long long)cc, q_count);
		pthread_mutex_unlock(&mu);

		t_ident_check(&id);
		printf("step %d ok items=%llu sum=%llu\n", s, (unsigned long long)target,
		       (unsigned long long)expect_sum);
		t_sleep_ms(300);
	}

	pthread_mutex_lock(&mu);
	done = 1;
	pthread_cond_broadcast(&step_cv);
	pthread_cond_broadcast(&not_empty);
	pthread_mutex_unlock(&mu);
	for (int i = 0; i < NPROD; i++)
		CHECK(pthread_join(prod[i], NULL) == 0, "join");
	for (int i = 0; i < NCONS; i++)
		CHECK(pthread_join(cons[i], NULL) == 0, "join");
	t_ident_check(&id);
	printf("RESULT %llu\n", (unsigned long long)consumed_sum);
	return 0;
}
