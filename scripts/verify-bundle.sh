#!/bin/sh
# Verifies an okit audit bundle without Node: POSIX sh, tar, sha256sum, openssl, coreutils.
#   scripts/verify-bundle.sh BUNDLE PUBKEY
# Checks: PUBKEY is a usable Ed25519 key (not small-order, canonical); exactly the entries of
# the manifest's format version (seven for v1 and v2; eight for v3, which adds queues.jsonl),
# all regular files; the Ed25519 signature of manifest.json by PUBKEY; the manifest's
# key id is PUBKEY's; SHA256SUMS and every data file have the bytes, line count and sha256 the
# manifest lists; `sha256sum -c SHA256SUMS`.
# It does NOT check the tar header bytes (so it accepts re-packs that `okit verify` refuses),
# canonical JSON, sort order, positions, hash chains or snapshots: `okit verify` does (see
# OFFLINE.md). Its verdict line says so. Exit 0 valid, 1 invalid, 2 usage.
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
# The raw 32-byte key: the SPKI DER is 302a300506032b6570032100 followed by it.
der=$(openssl pkey -pubin -in "$pub" -outform DER 2>/dev/null | od -An -v -tx1 | tr -d ' \n') ||
  der=''
case $der in
302a300506032b6570032100????????????????????????????????????????????????????????????????) ;;
*) echo "$2 is not an Ed25519 public key (SPKI PEM)" >&2; exit 2 ;;
esac
raw=${der#302a300506032b6570032100}
# Small-order keys ([8]A = identity) let a trivial signature verify for any message; refuse
# them, and non-canonical encodings (y >= p), compared with the sign bit (bit 255) cleared,
# as libsodium does.
head62=$(printf '%s' "$raw" | cut -c1-62)
last=$(printf '%s' "$raw" | cut -c63-64)
masked=$(printf '%s%02x' "$head62" $((0x$last & 0x7f)))
case $masked in
0000000000000000000000000000000000000000000000000000000000000000 | \
0100000000000000000000000000000000000000000000000000000000000000 | \
26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05 | \
c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a | \
ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f | \
e[d-f]ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f | \
f[0-9a-f]ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f)
  echo "INVALID: $2 is a small-order or non-canonical Ed25519 key: any signature of the form R = identity, S = 0 verifies under it"
  exit 1 ;;
esac

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM

v2data='jobs.jsonl history.jsonl throttles.jsonl snapshots.jsonl'
v3data='jobs.jsonl history.jsonl throttles.jsonl queues.jsonl snapshots.jsonl'
names=$(tar -tf "$bundle" 2>/dev/null | tr '\n' ' ') || fail "not a tar archive"
if [ "$names" = "manifest.json manifest.sig SHA256SUMS $v3data " ]; then data=$v3data; versions='3'
elif [ "$names" = "manifest.json manifest.sig SHA256SUMS $v2data " ]; then data=$v2data; versions='1 2'
else fail "entries are not exactly: manifest.json manifest.sig SHA256SUMS $v3data (v3) or the same without queues.jsonl (v1, v2)"; fi
# Every entry a regular file (no links, directories or devices) before anything is extracted.
if tar -tvf "$bundle" | grep -qv '^-'; then fail "an entry is not a regular file"; fi
echo "ok   entries: the $(printf '%s' "$names" | wc -w | tr -d ' ') files of format v$(echo $versions | tr ' ' '/'), all regular"
(cd "$dir" && tar -xf "$bundle") || fail "cannot extract"
cd "$dir"

openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in manifest.json -sigfile manifest.sig >/dev/null 2>&1 ||
  fail "manifest.sig is not a valid signature of manifest.json by $2"
echo "ok   signature: Ed25519 signature of manifest.json verified with $2"
kid=$(openssl pkey -pubin -in "$pub" -outform DER | sha256sum | cut -c1-64)
grep -qF "\"key_id\":\"$kid\"" manifest.json || fail "the manifest names another key id than $kid"
echo "ok   key id: $kid"
# The (signed) manifest's version must be one whose entry list this is.
ok=''
for v in $versions; do grep -qF "\"version\":$v,\"window\":" manifest.json && ok=1; done
[ -n "$ok" ] || fail "the manifest's version is not v$(echo $versions | tr ' ' '/'), the format of these entries"

# The manifest is canonical JSON: each file entry reads {"bytes":B,"lines":L,"name":N,"sha256":H}.
for f in SHA256SUMS $data; do
  h=$(sha256sum "$f" | cut -c1-64)
  b=$(wc -c <"$f" | tr -d ' ')
  l=$(wc -l <"$f" | tr -d ' ')
  grep -qF "{\"bytes\":$b,\"lines\":$l,\"name\":\"$f\",\"sha256\":\"$h\"}" manifest.json ||
    fail "$f ($b bytes, $l lines, sha256 $h) is not what the manifest lists"
done
echo "ok   manifest: SHA256SUMS and the data files ($data) match their listed bytes, lines and sha256"
[ "$(cut -c67- SHA256SUMS | tr '\n' ' ')" = "$data " ] ||
  fail "SHA256SUMS does not list exactly the data files $data"
sha256sum -c --quiet SHA256SUMS || fail "sha256sum -c SHA256SUMS failed"
echo "ok   SHA256SUMS: sha256sum -c passed"
echo "VALID (signature, key id and file hashes only; NOT checked: tar header bytes, canonical JSON, sort order, positions, hash chains, snapshots: run okit verify for those) $1"
