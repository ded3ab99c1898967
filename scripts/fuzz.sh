#!/usr/bin/env bash
# Run every fuzz target in the module, one at a time, for $FUZZTIME each
# (default 60s). A fuzz target is a `func FuzzXxx(f *testing.F)` in a _test.go
# file; go test can fuzz only one target per invocation. New crashers land in
# the package's testdata/fuzz and fail the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

go=${GO:-go}
fuzztime=${FUZZTIME:-60s}
failed=()
count=0

while IFS= read -r file; do
	pkg=./$(dirname "${file#./}")
	while IFS= read -r name; do
		count=$((count + 1))
		echo "=== fuzz $pkg $name for $fuzztime"
		if ! "$go" test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$pkg"; then
			failed+=("$pkg $name")
		fi
	done < <(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(.*/\1/p' "$file")
done < <(grep -rlE --include='*_test.go' --exclude-dir=testdata --exclude-dir=vendor --exclude-dir=.git '^func Fuzz[A-Za-z0-9_]*\(' . | sort)

echo "fuzz: $count target(s) run, ${#failed[@]} failed"
if ((${#failed[@]} > 0)); then
	printf '  FAIL %s\n' "${failed[@]}"
	exit 1
fi
