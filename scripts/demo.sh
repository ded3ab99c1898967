#!/usr/bin/env bash
# The demo on a fresh machine: installs the local Dendrite homeserver into $HOME/.cache on first
# use, then runs the bridge with --demo, which starts the embedded MSN network with demo
# contacts, Dendrite on 127.0.0.1:8008 and the bridge between them (a config.yaml in the
# directory is not read). Extra arguments go to the bridge (for example -demo-dir DIR); with -c
# the configured bridge runs instead of the demo. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
demo=(--demo)
for arg in "$@"; do
	case "$arg" in
	-c | --c | -config | --config | -c=* | --c=* | -config=* | --config=*) demo=() ;;
	esac
done
./scripts/install-dendrite.sh
CGO_ENABLED=0 go build -o bin/msn-bridge ./cmd/bridge
exec ./bin/msn-bridge ${demo[@]+"${demo[@]}"} "$@"
