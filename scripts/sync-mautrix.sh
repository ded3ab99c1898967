#!/usr/bin/env bash
# Re-creates third_party/mautrix from an upstream mautrix-go release (third_party/mautrix/README.md
# says why the copy exists):
#
#   scripts/sync-mautrix.sh v0.33.0
#
#   1. downloads the release into the module cache (go mod download) and copies it, without
#      _test.go files, testdata and upstream's repository files;
#   2. changes the build constraints of the five files listed in third_party/mautrix/README.md,
#      and fails if any of them no longer has the line it expects (then read upstream's change
#      and edit this script);
#   3. keeps only the packages the project imports, directly or not, in any build it supports
#      (cgo on and off; default, nocrypto, goolm and libolm tags; tests included);
#   4. sets the version in go.mod's require line and runs go mod tidy.
#
# Afterwards: go build ./... && go vet ./... && CGO_ENABLED=0 go build ./... && go build -tags
# nocrypto ./..., and read upstream's CHANGELOG for the crypto and bridgev2/matrix changes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=${1:?usage: scripts/sync-mautrix.sh vX.Y.Z}
MOD=maunium.net/go/mautrix
DEST=third_party/mautrix

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && go mod init sync >/dev/null 2>&1 && go mod download -json "$MOD@$VERSION") >"$tmp/dl.json"
SRC=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' "$tmp/dl.json")
[[ -d $SRC ]] || { echo "download of $MOD@$VERSION failed" >&2; cat "$tmp/dl.json" >&2; exit 1; }

readme=$(cat "$DEST/README.md")
rm -rf "$DEST"
cp -r "$SRC" "$DEST"
chmod -R u+w "$DEST"
printf '%s\n' "$readme" >"$DEST/README.md"
find "$DEST" -name '*_test.go' -delete
find "$DEST" -type d -name testdata -prune -exec rm -rf {} +
rm -rf "$DEST/.github" "$DEST/.editorconfig" "$DEST/.gitignore" "$DEST/.pre-commit-config.yaml" \
	"$DEST/CHANGELOG.md" "$DEST/CONTRIBUTING.md" "$DEST/go.sum" "$DEST/bridgev2/unorganized-docs"

# retag FILE OLD NEW: replace the file's build constraint line OLD by NEW.
retag() {
	local f=$DEST/$1
	grep -qxF "//go:build $2" "$f" || { echo "$1: expected '//go:build $2' (upstream changed it)" >&2; exit 1; }
	sed -i "s#^//go:build $2\$#//go:build $3#" "$f"
}
retag bridgev2/matrix/crypto.go 'cgo && !nocrypto' '!nocrypto'
retag bridgev2/matrix/cryptostore.go 'cgo && !nocrypto' '!nocrypto'
retag bridgev2/matrix/no-crypto.go '!cgo || nocrypto' 'nocrypto'
retag crypto/registergoolm.go 'goolm' '!libolm'
retag crypto/registerlibolm.go '!goolm' 'libolm'

go mod edit -require="$MOD@$VERSION"
keep=$tmp/keep
for build in "1 " "0 " "1 nocrypto" "0 nocrypto" "1 goolm" "1 libolm"; do
	read -r cgo tags <<<"$build"
	CGO_ENABLED=$cgo go list -e -mod=mod -tags "$tags" -deps -test ./... | grep "^$MOD\(/\|\$\)" >>"$keep" || true
done
sort -u -o "$keep" "$keep"
(cd "$DEST" && find . -type d) | while read -r d; do
	pkg=$MOD${d#.}
	pkg=${pkg%/}
	if compgen -G "$DEST/$d/*.go" >/dev/null && ! grep -qxF "$pkg" "$keep"; then
		find "$DEST/$d" -maxdepth 1 -type f -delete
	fi
done
find "$DEST" -type d -empty -delete
go mod tidy
echo "$DEST is $MOD $VERSION with $(wc -l <"$keep") packages; now build, vet and test (see the top of this script)."
