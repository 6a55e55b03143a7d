// A Go program with cgo (tests/cases/real.sh, real_go_cgo): the runtime's
// threads, 4 goroutines fed through channels, a ticker, and C code called
// through cgo that keeps state in C memory (a malloc'd table).  50 steps;
// after each the main goroutine checks the goroutines' results and the C
// table against what it computes itself and prints "step N sum S hash H";
// "RESULT ..." at the end.  A mismatch prints "ERROR ..." and exits 1.
package main

/*
#include <stdint.h>
#include <stdlib.h>

static uint64_t *table;
static int table_len;

static int table_init(int n) {
	table = calloc(n, sizeof *table);
	table_len = n;
	return table != NULL;
}
// mixes v into slot i of the C table and returns the new value
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
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"time"
)

const (
	steps   = 50
	workers = 4
	slots   = 64
	work    = 200000
)

func fail(format string, a ...interface{}) {
	fmt.Printf("ERROR "+format+"\n", a...)
	os.Exit(1)
}

func compute(step, id int) uint64 {
	x := uint64(step*workers + id + 1)
	for k := 0; k < work; k++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

func main() {
	if C.table_init(slots) == 0 {
		fail("calloc failed")
	}
	mirror := make([]uint64, slots)
	jobs := make(chan [2]int)
	results := make(chan [3]uint64)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- [3]uint64{uint64(j[0]), uint64(j[1]), compute(j[0], j[1])}
			}
		}()
	}
	var mu sync.Mutex
	ticks := 0
	ticker := time.NewTicker(7 * time.Millisecond)
	stop := make(chan bool)
	go func() {
		for {
			select {
			case <-ticker.C:
				mu.Lock()
				ticks++
				mu.Unlock()
			case <-stop:
				return
			}
		}
	}()
	var hash uint64 = 14695981039346656037
	for s := 1; s <= steps; s++ {
		go func(s int) {
			for id := 0; id < workers; id++ {
				jobs <- [2]int{s, id}
			}
		}(s)
		got := make([]uint64, workers)
		for i := 0; i < workers; i++ {
			r := <-results
			if int(r[0]) != s {
				fail("step %d: a result of step %d", s, r[0])
			}
			got[r[1]] = r[2]
		}
		for id := 0; id < workers; id++ {
			want := compute(s, id)
			if got[id] != want {
				fail("step %d: worker result %d is %x, expected %x", s, id, got[id], want)
			}
			slot := (s*workers + id) % slots
			h := uint64(C.table_mix(C.int(slot), C.uint64_t(want)))
			mirror[slot] = (mirror[slot] ^ want) * 1099511628211
			if h != mirror[slot] {
				fail("step %d: C table slot %d is %x, expected %x", s, slot, h, mirror[slot])
			}
			hash = (hash ^ h) * 1099511628211
		}
		var sum uint64
		for _, v := range mirror {
			sum += v
		}
		if cs := uint64(C.table_sum()); cs != sum {
			fail("step %d: C table sum %x, expected %x", s, cs, sum)
		}
		fmt.Printf("step %d sum %x hash %x\n", s, sum, hash)
		time.Sleep(70 * time.Millisecond)
	}
	close(jobs)
	wg.Wait()
	close(stop)
	ticker.Stop()
	mu.Lock()
	if ticks < 1 {
		fail("the ticker never fired")
	}
	mu.Unlock()
	fmt.Printf("RESULT steps %d hash %x\n", steps, hash)
}
