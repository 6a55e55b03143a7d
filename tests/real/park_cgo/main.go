// A Go program with cgo for tests/cases/park.sh: goroutines calling into C
// (which keeps a table in malloc'd memory), goroutines on small stacks that
// recurse, allocate and sleep (the garbage collector preempts them with
// signals), os/signal.Notify (a runtime thread that blocks every signal but
// the notified ones), and a thread made by C with pthread_create that
// blocks every signal (pthread_sigmask) and counts in a loop of sleeps.
// Each of 60 steps prints "step N sum S hash H"; "RESULT ..." at the end.
// A mismatch prints "ERROR ..." and exits 1.
package main

/*
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static uint64_t *table;
static int table_len;
static volatile long c_ticks;

static void *c_thread(void *arg) {
	sigset_t all;
	(void)arg;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	for (;;) {
		struct timespec ts = { 0, 2000000 };
		nanosleep(&ts, NULL);
		__atomic_add_fetch(&c_ticks, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static int table_init(int n) {
	pthread_t th;
	table = calloc(n, sizeof *table);
	table_len = n;
	return table != NULL && pthread_create(&th, NULL, c_thread, NULL) == 0;
}
static uint64_t table_mix(int i, uint64_t v) {
	uint64_t h = table[i % table_len] ^ v;
	h *= 1099511628211ULL;
	table[i % table_len] = h;
	return h;
}
static uint64_t table_sum(void) {
	uint64_t s = 0;
	for (int i = 0; i < table_len; i++) s += table[i];
	return s;
}
static long ticks(void) { return __atomic_load_n(&c_ticks, __ATOMIC_RELAXED); }
*/
import "C"

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

const (
	steps = 60
	slots = 64
	swarm = 200
)

func fail(format string, a ...interface{}) {
	fmt.Printf("ERROR "+format+"\n", a...)
	os.Exit(1)
}

func mix(x uint64, n int) uint64 {
	for k := 0; k < n; k++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

func leaf(x uint64, depth int) uint64 {
	if depth == 0 {
		return mix(x, 500)
	}
	b := make([]byte, 64+depth*32)
	b[depth] = byte(x)
	return leaf(x+uint64(b[depth]), depth-1) ^ uint64(depth)
}

func main() {
	endHeld := os.Getenv("COHORT_TEST_END_GATE") != ""
	os.Unsetenv("COHORT_TEST_END_GATE") // (this process alone waits)
	if C.table_init(slots) == 0 {
		fail("table_init failed")
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	mirror := make([]uint64, slots)
	var hash uint64 = 14695981039346656037
	var sum uint64
	var mu sync.Mutex
	for s := 1; s <= steps; s++ {
		var wg sync.WaitGroup
		part := make([]uint64, swarm)
		for g := 0; g < swarm; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				v := leaf(uint64(s*swarm+g), g%9)
				time.Sleep(time.Duration(g%3) * time.Millisecond)
				part[g] = v
				if g%50 == 0 {
					mu.Lock()
					slot := (s*swarm + g) % slots
					h := uint64(C.table_mix(C.int(slot), C.uint64_t(v)))
					mirror[slot] = (mirror[slot] ^ v) * 1099511628211
					if h != mirror[slot] {
						mu.Unlock()
						fail("step %d: C table slot %d is %x, expected %x", s, slot, h, mirror[slot])
					}
					mu.Unlock()
				}
			}(g)
		}
		wg.Wait()
		for g := 0; g < swarm; g++ {
			if want := leaf(uint64(s*swarm+g), g%9); part[g] != want {
				fail("step %d: goroutine %d: %x, expected %x", s, g, part[g], want)
			}
			sum += part[g]
			hash = (hash ^ part[g]) * 1099511628211
		}
		var msum uint64
		for _, v := range mirror {
			msum += v
		}
		if cs := uint64(C.table_sum()); cs != msum {
			fail("step %d: C table sum %x, expected %x", s, cs, msum)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			fail("kill: %v", err)
		}
		select {
		case <-sigs:
		case <-time.After(10 * time.Second):
			fail("step %d: SIGUSR1 never arrived", s)
		}
		fmt.Printf("step %d sum %x hash %x table %x\n", s, sum, hash, msum)
		time.Sleep(40 * time.Millisecond)
	}
	if C.ticks() < 1 {
		fail("the C thread never counted")
	}
	fmt.Printf("RESULT steps %d sum %x hash %x\n", steps, sum, hash)
	endGate(endHeld, os.Getenv("COHORT_TEST_TMP"))
}
