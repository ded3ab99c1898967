#!/usr/bin/env bash
# The demo on a fresh machine: installs the local Dendrite homeserver into $HOME/.cache on first
# use, then runs the bridge without a config file, which starts the embedded MSN network with
# demo contacts, Dendrite on 127.0.0.1:8008 and the bridge between them. Extra arguments go to
# the bridge (for example -demo-dir DIR). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/install-dendrite.sh
CGO_ENABLED=0 go build -o bin/msn-bridge ./cmd/bridge
exec ./bin/msn-bridge "$@"
