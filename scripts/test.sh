#!/usr/bin/env bash
# The whole test suite, on a fresh machine as on a developer's:
#
#   1. Dendrite v0.13.8 into $HOME/.cache (scripts/install-dendrite.sh), unless already there;
#   2. PostgreSQL from Debian's packages if it is missing, then a throwaway cluster on 127.0.0.1
#      (scripts/postgres-up.sh), stopped again on exit; MSN_BRIDGE_TEST_POSTGRES already set is
#      used as it is;
#   3. go test -race -count=1 over every package (TESTFLAGS adds flags, PKGS narrows packages),
#      with -tags nocrypto unless GOTAGS says otherwise (GOTAGS= is the default build, with
#      end-to-bridge encryption; docs/encryption.md).
#
# Nothing is skipped: CI=true makes a missing Dendrite or PostgreSQL a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export CI=${CI:-true}
TEST_TIMEOUT=${TEST_TIMEOUT:-60m}
GOTAGS=${GOTAGS-nocrypto}
PKGS=${PKGS:-./...}

as_root() {
	if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo -n "$@"; fi
}

# apt_get ARGS...: apt-get that waits for a held lock and retries.
apt_get() {
	local i
	for i in 1 2 3 4 5; do
		if as_root env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300 "$@"; then
			return 0
		fi
		echo "apt-get $1 failed (attempt $i of 5); retrying in 15s" >&2
		sleep 15
	done
	return 1
}

have_initdb() {
	command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null
}

echo "==> Dendrite"
"$ROOT/scripts/install-dendrite.sh"

PGDIR=""
cleanup() {
	if [[ -n $PGDIR ]]; then
		"$ROOT/scripts/postgres-down.sh" "$PGDIR" >/dev/null 2>&1 || echo "warning: failed to stop PostgreSQL in $PGDIR" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> PostgreSQL"
if [[ -n ${MSN_BRIDGE_TEST_POSTGRES:-} ]]; then
	echo "using MSN_BRIDGE_TEST_POSTGRES from the environment"
else
	if ! have_initdb; then
		echo "installing postgresql from Debian's packages"
		apt_get update
		apt_get install --no-install-recommends postgresql
	fi
	PGDIR=$(mktemp -d "${TMPDIR:-/tmp}/msn-bridge-pg.XXXXXX")
	chmod 755 "$PGDIR"
	MSN_BRIDGE_TEST_POSTGRES=$("$ROOT/scripts/postgres-up.sh" "$PGDIR/cluster")
	PGDIR=$PGDIR/cluster
	export MSN_BRIDGE_TEST_POSTGRES
	echo "throwaway cluster: $MSN_BRIDGE_TEST_POSTGRES"
fi

echo "==> go test -race ($PKGS)"
# shellcheck disable=SC2086
go test -tags "$GOTAGS" -race -count=1 -timeout "$TEST_TIMEOUT" ${TESTFLAGS:-} $PKGS
