// Package goroutines counts, for tests, the goroutines a package's own code started.
package goroutines

import (
	"runtime/pprof"
	"strings"
	"time"
)

// Started counts the goroutines whose creator is a function of the package with import path
// pkg, in one of its non-test files.
func Started(pkg string) int {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 2)
	n := 0
	for _, g := range strings.Split(b.String(), "\n\n") {
		_, created, ok := strings.Cut(g, "\ncreated by "+pkg+".")
		if !ok {
			continue
		}
		lines := strings.SplitN(created, "\n", 3)
		if len(lines) < 2 {
			continue
		}
		file, _, _ := strings.Cut(strings.TrimSpace(lines[1]), ":")
		if !strings.HasSuffix(file, "_test.go") {
			n++
		}
	}
	return n
}

// Await waits, polling for at most max, until Started(pkg) is want, and returns the last count.
func Await(pkg string, want int, max time.Duration) int {
	deadline := time.Now().Add(max)
	got := Started(pkg)
	for got != want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		got = Started(pkg)
	}
	return got
}

// Dump returns every goroutine's stack, for a failure message.
func Dump() string {
	var b strings.Builder
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	return b.String()
}
