#!/bin/sh
# Regenerates the golden sample bundle in bundles/sample/ deliberately (a format change).
# test/bundle/golden.test.ts rebuilds it in-process and asserts byte equality with this file.
# The signing key is derived from a fixed, public seed: it is INSECURE, for tests only.
set -eu
cd "$(dirname "$0")/.."
SEED=7
JOBS=10
TENANT=golden
KEY_SEED=0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20
npm run build >/dev/null
home=$(mktemp -d -t okit-golden-XXXXXX)
chmod 755 "$home"
trap 'OKIT_HOME="$home/pg" node dist/cli/main.js db stop >/dev/null 2>&1 || true; rm -rf "$home"' EXIT
unset DATABASE_URL
export OKIT_HOME="$home/pg"
okit() { node dist/cli/main.js "$@"; }
okit db start >/dev/null
okit simulate --seed "$SEED" --jobs "$JOBS" --tenant "$TENANT"
okit keys generate --out "$home/key" --seed-hex "$KEY_SEED" 2>/dev/null
rm -f bundles/sample/*.tar bundles/sample/INSECURE-*
mkdir -p bundles/sample
cp "$home/key/okit-signing.key" bundles/sample/INSECURE-test-signing.key
cp "$home/key/okit-signing.pub" bundles/sample/INSECURE-test-signing.pub
okit export --tenant "$TENANT" --key bundles/sample/INSECURE-test-signing.key --out bundles/sample
okit verify bundles/sample/okit-$TENANT-*.tar --pubkey bundles/sample/INSECURE-test-signing.pub
