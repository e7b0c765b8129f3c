#!/bin/sh
# Installs an unpacked offline kit. Needs Node.js >= 20 and nothing from any network.
#
#   ./install.sh [PREFIX]    (default /opt/okit; the kit is copied to PREFIX/<version>,
#                             PREFIX/current points at it, and PREFIX/bin/okit runs it)
set -eu
KIT=$(cd "$(dirname "$0")" && pwd)
PREFIX=${1:-/opt/okit}
VERSION=$(node -p "require('$KIT/package.json').version")

node -e 'const [maj,min]=process.versions.node.split(".").map(Number); if (maj<20||(maj===20&&min<19)) { console.error("okit needs Node.js >= 20.19, found "+process.version); process.exit(1) }'

echo "install: checking SHA256SUMS"
(cd "$KIT" && sha256sum --quiet -c SHA256SUMS)

DEST="$PREFIX/$VERSION"
mkdir -p "$PREFIX/bin"
if [ "$KIT" != "$DEST" ]; then
  rm -rf "$DEST.tmp"
  cp -R "$KIT" "$DEST.tmp"
  rm -rf "$DEST"
  mv "$DEST.tmp" "$DEST"
fi
# The embedded Postgres runs as an unprivileged user when installed by root: keep it reachable.
chmod -R a+rX "$DEST"
ln -sfn "$DEST" "$PREFIX/current"
cat > "$PREFIX/bin/okit" <<SH
#!/bin/sh
exec node "$PREFIX/current/dist/cli/main.js" "\$@"
SH
chmod 755 "$PREFIX/bin/okit"
echo "installed okit $VERSION in $DEST"
echo "run: $PREFIX/bin/okit --help"
