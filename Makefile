# Conveniences over the scripts the README names: scripts/demo.sh (make run) and
# scripts/test.sh (make test). Both install what they need (Dendrite into a cache, PostgreSQL
# from Debian's packages) on first use.

GO        ?= go
TESTFLAGS ?=
FUZZTIME  ?= 60s
BENCHTIME ?= 1s
ARGS      ?=
# The tests run with -tags nocrypto (no end-to-bridge encryption) so that build stays tested;
# GOTAGS= runs them in the default build, which has it (pure Go, with or without cgo). The
# encrypted end-to-end test runs either way: it builds the bridge binary without tags.
GOTAGS    ?= nocrypto

.PHONY: test run fuzz bench

# Every test, race detector on, no cache; installs Dendrite and starts a throwaway PostgreSQL
# first (scripts/test.sh).
test:
	GOTAGS='$(GOTAGS)' TESTFLAGS='$(TESTFLAGS)' ./scripts/test.sh

# Run the demo: an embedded MSN network, a local Dendrite (installed into a cache on first use)
# and the bridge. ARGS="-c config.yaml" runs the configured bridge instead.
run:
	./scripts/demo.sh $(ARGS)

# Each fuzz target (func FuzzXxx in a _test.go file) for FUZZTIME.
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) GOFLAGS='-tags=$(GOTAGS)' ./scripts/fuzz.sh

# Benchmarks only, with allocation counts.
bench:
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count=1 ./...
