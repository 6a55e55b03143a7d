// endgate.go: built with each Go test program of tests/real (tests/cases/park.sh, go_build).
package main

import (
	"os"
	"time"
)

// endGate: run under COHORT_TEST_END_GATE (tests/progs/common.h says why),
// the program waits at its end until the test makes COHORT_TEST_TMP/end,
// having made "at-end" (no more steps come).  on: read at the start.
func endGate(on bool, dir string) {
	if on && dir != "" {
		os.WriteFile(dir+"/at-end", nil, 0600)
		for _, err := os.Stat(dir + "/end"); os.IsNotExist(err); _, err = os.Stat(dir + "/end") {
			time.Sleep(10 * time.Millisecond)
		}
	}
}
