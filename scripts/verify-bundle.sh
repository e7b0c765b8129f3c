#!/bin/sh
# Verifies an okit audit bundle without Node: POSIX sh, tar, sha256sum, openssl, coreutils.
#   scripts/verify-bundle.sh BUNDLE PUBKEY
# Checks: exactly the seven v1 entries, all regular files; the Ed25519 signature of
# manifest.json by PUBKEY; the manifest's key id is PUBKEY's; SHA256SUMS and every data file
# have the bytes, line count and sha256 the manifest lists; `sha256sum -c SHA256SUMS`.
# It does not check canonical JSON, sort order, positions, hash chains or the tar layout
# byte for byte: `okit verify` does (see OFFLINE.md). Exit 0 valid, 1 invalid, 2 usage.
set -eu
if [ $# -ne 2 ]; then
  echo "usage: $0 BUNDLE PUBKEY" >&2
  exit 2
fi
case $1 in /*) bundle=$1 ;; *) bundle=$(pwd)/$1 ;; esac
case $2 in /*) pub=$2 ;; *) pub=$(pwd)/$2 ;; esac
if [ ! -r "$bundle" ] || [ ! -r "$pub" ]; then
  echo "cannot read $1 or $2" >&2
  exit 2
fi
fail() {
  echo "INVALID: $*"
  exit 1
}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM

expected='manifest.json manifest.sig SHA256SUMS jobs.jsonl history.jsonl throttles.jsonl snapshots.jsonl'
names=$(tar -tf "$bundle" 2>/dev/null | tr '\n' ' ') || fail "not a tar archive"
[ "$names" = "$expected " ] || fail "entries are not exactly: $expected"
# Every entry a regular file (no links, directories or devices) before anything is extracted.
if tar -tvf "$bundle" | grep -qv '^-'; then fail "an entry is not a regular file"; fi
echo "ok   entries: the seven v1 files, all regular"
(cd "$dir" && tar -xf "$bundle") || fail "cannot extract"
cd "$dir"

openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in manifest.json -sigfile manifest.sig >/dev/null 2>&1 ||
  fail "manifest.sig is not a valid signature of manifest.json by $2"
echo "ok   signature: Ed25519 signature of manifest.json verified with $2"
kid=$(openssl pkey -pubin -in "$pub" -outform DER | sha256sum | cut -c1-64)
grep -qF "\"key_id\":\"$kid\"" manifest.json || fail "the manifest names another key id than $kid"
echo "ok   key id: $kid"

# The manifest is canonical JSON: each file entry reads {"bytes":B,"lines":L,"name":N,"sha256":H}.
for f in SHA256SUMS jobs.jsonl history.jsonl throttles.jsonl snapshots.jsonl; do
  h=$(sha256sum "$f" | cut -c1-64)
  b=$(wc -c <"$f" | tr -d ' ')
  l=$(wc -l <"$f" | tr -d ' ')
  grep -qF "{\"bytes\":$b,\"lines\":$l,\"name\":\"$f\",\"sha256\":\"$h\"}" manifest.json ||
    fail "$f ($b bytes, $l lines, sha256 $h) is not what the manifest lists"
done
echo "ok   manifest: SHA256SUMS and the four data files match their listed bytes, lines and sha256"
[ "$(cut -c67- SHA256SUMS | tr '\n' ' ')" = "jobs.jsonl history.jsonl throttles.jsonl snapshots.jsonl " ] ||
  fail "SHA256SUMS does not list exactly the four data files"
sha256sum -c --quiet SHA256SUMS || fail "sha256sum -c SHA256SUMS failed"
echo "ok   SHA256SUMS: sha256sum -c passed"
echo "VALID $1"
