#!/usr/bin/env bash
# Stop a cluster started by scripts/postgres-up.sh DIR and remove DIR.
# Safe to call twice or on a directory where nothing runs.
set -euo pipefail

dir=${1:?usage: postgres-down.sh DIR}
[[ -d $dir ]] || exit 0

if [[ -f $dir/data/postmaster.pid ]]; then
	pg_ctl=$(command -v pg_ctl 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/pg_ctl 2>/dev/null | sort -V | tail -n 1)
	as_pg=()
	if [[ $(id -u) -eq 0 ]]; then
		as_pg=(runuser -u postgres --)
	fi
	"${as_pg[@]}" "$pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2 ||
		"${as_pg[@]}" "$pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >&2 || true
fi
rm -rf "$dir"
