// A pure-Go program (no import "C") for tests/cases/park.sh, built with
// -ldflags=-linkmode=external so that it is dynamically linked and the
// agent loads.  What makes Go hard to checkpoint, in 60 steps:
//   - os/signal.Notify: the runtime starts a thread that blocks every
//     signal but the notified ones (raw rt_sigprocmask), so the checkpoint
//     signal cannot reach it; each step the program sends itself SIGUSR1
//     and waits for it on the channel;
//   - 300 goroutines a step on small stacks, recursing, allocating (the
//     garbage collector preempts them with signals), sleeping: a handler
//     that ran on a goroutine's stack instead of the signal stack would
//     overwrite its neighbours;
//   - workers fed through channels, a ticker, time.Sleep.
// Each step prints "step N sum S hash H"; "RESULT ..." at the end.  A
// mismatch prints "ERROR ..." and exits 1.
// COHORT_TEST_GATES="S1 S2 ...": after step Sk it waits until the file go.k
// exists in COHORT_TEST_TMP (tests/cases/migrate_real.sh migrates it at
// known steps); unset, it never waits.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	steps   = 60
	workers = 4
	swarm   = 300
)

func fail(format string, a ...interface{}) {
	fmt.Printf("ERROR "+format+"\n", a...)
	os.Exit(1)
}

func gate(step int) {
	for k, g := range strings.Fields(os.Getenv("COHORT_TEST_GATES")) {
		if g != strconv.Itoa(step) {
			continue
		}
		file := filepath.Join(os.Getenv("COHORT_TEST_TMP"), fmt.Sprintf("go.%d", k+1))
		for {
			if _, err := os.Stat(file); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func mix(x uint64, n int) uint64 {
	for k := 0; k < n; k++ {
		x = x*6364136223846793005 + 1442695040888963407
	}
	return x
}

// recurse a little on a small goroutine stack, allocating on the way
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
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGUSR1)
	jobs := make(chan [2]int)
	results := make(chan [3]uint64)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				results <- [3]uint64{uint64(j[0]), uint64(j[1]), mix(uint64(j[0]*workers+j[1]+1), 100000)}
			}
		}()
	}
	var mu sync.Mutex
	ticks := 0
	ticker := time.NewTicker(5 * time.Millisecond)
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
	var sum uint64
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
			if want := mix(uint64(s*workers+id+1), 100000); got[id] != want {
				fail("step %d: worker %d: %x, expected %x", s, id, got[id], want)
			}
			hash = (hash ^ got[id]) * 1099511628211
		}
		var swg sync.WaitGroup
		part := make([]uint64, swarm)
		for g := 0; g < swarm; g++ {
			swg.Add(1)
			go func(g int) {
				defer swg.Done()
				v := leaf(uint64(s*swarm+g), g%9)
				time.Sleep(time.Duration(g%3) * time.Millisecond)
				part[g] = v
			}(g)
		}
		swg.Wait()
		for g := 0; g < swarm; g++ {
			if want := leaf(uint64(s*swarm+g), g%9); part[g] != want {
				fail("step %d: goroutine %d: %x, expected %x", s, g, part[g], want)
			}
			sum += part[g]
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
			fail("kill: %v", err)
		}
		select {
		case sig := <-sigs:
			if sig != syscall.SIGUSR1 {
				fail("step %d: got %v", s, sig)
			}
		case <-time.After(10 * time.Second):
			fail("step %d: SIGUSR1 never arrived", s)
		}
		fmt.Printf("step %d sum %x hash %x\n", s, sum, hash)
		gate(s)
		time.Sleep(40 * time.Millisecond)
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
	fmt.Printf("RESULT steps %d sum %x hash %x\n", steps, sum, hash)
	endGate(endHeld, os.Getenv("COHORT_TEST_TMP"))
}
