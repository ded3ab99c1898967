#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for tests.
#
#   scripts/postgres-up.sh DIR     # prints the DSN on stdout, also writes DIR/dsn
#   scripts/postgres-down.sh DIR   # stops it and removes DIR
#
# The cluster lives in DIR (created if missing), listens on 127.0.0.1 only, on
# a free port, with trust authentication for the superuser "msnbridge", and
# with durability off (fsync etc.): it is for tests only. As root it runs as
# the "postgres" system user, since PostgreSQL refuses to run as root.
# Diagnostics go to stderr; the server log is DIR/postgres.log.
set -euo pipefail

dir=${1:?usage: postgres-up.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

pg_bin() {
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v pg_ctl)"
		return
	fi
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
	if [[ -n $d && -x $d/initdb ]]; then
		echo "$d"
		return
	fi
	echo "postgres-up: initdb not found (install Debian's postgresql package)" >&2
	return 1
}
bin=$(pg_bin)

as_pg=()
if [[ $(id -u) -eq 0 ]]; then
	if ! id postgres >/dev/null 2>&1; then
		echo "postgres-up: running as root but there is no postgres system user" >&2
		exit 1
	fi
	chown postgres: "$dir"
	as_pg=(runuser -u postgres --)
fi

if [[ ! -f $dir/data/PG_VERSION ]]; then
	"${as_pg[@]}" "$bin/initdb" -D "$dir/data" -U msnbridge -A trust -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 || {
		cat "$dir/initdb.log" >&2
		echo "postgres-up: initdb failed" >&2
		exit 1
	}
fi

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

for attempt in $(seq 1 20); do
	port=$((RANDOM % 30000 + 20000))
	port_in_use "$port" && continue
	if "${as_pg[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
		-o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
		>&2; then
		dsn="postgres://msnbridge@127.0.0.1:$port/postgres?sslmode=disable"
		echo "$dsn" >"$dir/dsn"
		echo "$dsn"
		exit 0
	fi
	if ! grep -q "could not bind\|Address already in use" "$dir/postgres.log" 2>/dev/null; then
		break
	fi
	echo "postgres-up: port $port taken (attempt $attempt), trying another" >&2
done
tail -n 30 "$dir/postgres.log" >&2 || true
echo "postgres-up: failed to start PostgreSQL" >&2
exit 1
