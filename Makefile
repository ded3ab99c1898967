# Developer and CI entry points. None of these targets installs anything:
# .ci/run provisions Dendrite and PostgreSQL, then calls `make test`.
#
# End-to-end tests need the Dendrite binaries ($DENDRITE_BIN, default
# ~/.cache/dendrite-v0.13.8/bin) and PostgreSQL tests need
# $MSN_BRIDGE_TEST_POSTGRES; without them those tests are skipped, or fail
# when $CI is set. See internal/testenv.

GO        ?= go
TESTFLAGS ?=
FUZZTIME  ?= 60s
BENCHTIME ?= 1s
ARGS      ?=
# nocrypto: end-to-bridge encryption is an optional build (-tags goolm); the race
# detector needs cgo, and a cgo build of bridgev2 without it would want libolm.
GOTAGS    ?= nocrypto

.PHONY: test run fuzz bench

# Every test, race detector on, no cache.
test:
	$(GO) test -tags '$(GOTAGS)' -race -count=1 -timeout 45m $(TESTFLAGS) ./...

# Run the bridge (ARGS="-c config.yaml" passes flags).
# Without a config.yaml this is the demo: an embedded MSN network, a local Dendrite (installed
# into a cache on first use) and the bridge.
run:
	./scripts/install-dendrite.sh
	CGO_ENABLED=0 $(GO) run ./cmd/bridge $(ARGS)

# Each fuzz target (func FuzzXxx in a _test.go file) for FUZZTIME.
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) GOFLAGS='-tags=$(GOTAGS)' ./scripts/fuzz.sh

# Benchmarks only, with allocation counts.
bench:
	$(GO) test -tags '$(GOTAGS)' -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count=1 ./...
