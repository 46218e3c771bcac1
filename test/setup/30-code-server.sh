#!/usr/bin/env bash
# code-server 4.100.3 (VS Code 1.100.3, the last release that runs on Node 20): a real VS Code
# workbench and extension host for the extension tests, installed offline into the test cache.
# Kept out of the project's dependencies on purpose: users never get it from `npm install`.
set -euo pipefail
VERSION=4.100.3
CACHE="${CONVEYOR_TEST_CACHE:-$HOME/.cache/conveyor-test}"
DEST="$CACHE/code-server-$VERSION"
ENTRY="$DEST/node_modules/code-server/out/node/entry.js"
if [ -f "$ENTRY" ]; then
  exit 0
fi

mkdir -p "$CACHE"
# One install at a time: a second provisioning run waits here, then finds the install done.
exec 9>"$CACHE/.code-server-$VERSION.lock"
flock 9
if [ -f "$ENTRY" ]; then
  echo "30-code-server: installed meanwhile by another run"
  exit 0
fi
echo "30-code-server: installing code-server $VERSION into $DEST (1-3 minutes)"

# Build and runtime needs: kerberos headers for the kerberos module, Debian's rg to stand in for
# the ripgrep binary that @vscode/ripgrep would otherwise download from GitHub.
need=()
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
[ -x /usr/bin/rg ] || need+=(ripgrep)
for tool in g++ make python3 pkg-config; do
  command -v "$tool" >/dev/null || need+=("$([ "$tool" = g++ ] && echo build-essential || echo "$tool")")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "30-code-server: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${need[@]}"
fi

# Install into a fresh temporary folder beside the destination, then rename: an interrupted
# install leaves only a .partial-* folder behind, never a half-filled $DEST.
rm -rf "$CACHE"/code-server-"$VERSION".partial-*
WORK="$(mktemp -d "$CACHE/code-server-$VERSION.partial-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
mkdir -p "$WORK/tmp"

# @vscode/ripgrep's postinstall looks for its download in $TMPDIR/vscode-ripgrep-cache-<version>/
# before fetching it: pre-seed that cache with a tarball holding Debian's rg at its root.
RGC="$WORK/tmp/vscode-ripgrep-cache-1.15.11"
mkdir -p "$RGC" "$WORK/tmp/rgpkg"
cp /usr/bin/rg "$WORK/tmp/rgpkg/rg"
tar czf "$RGC/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$WORK/tmp/rgpkg" rg

cat >"$WORK/package.json" <<JSON
{ "name": "conveyor-test-code-server", "version": "1.0.0", "private": true }
JSON

# npm_config_unsafe_perm: code-server's postinstall refuses to run as root without it.
# npm_config_yes: node-pty's postinstall runs `npx node-gyp`, which otherwise waits for a TTY.
# TMPDIR: where @vscode/ripgrep looks for its cache (and keeps npm's temp files out of /tmp).
(
  cd "$WORK"
  export npm_config_unsafe_perm=true npm_config_yes=true TMPDIR="$WORK/tmp"
  npm install "code-server@$VERSION" --foreground-scripts --no-audit --no-fund --loglevel=warn
)
if [ ! -f "$WORK/node_modules/code-server/out/node/entry.js" ]; then
  echo "30-code-server: install finished without out/node/entry.js" >&2
  exit 1
fi
rm -rf "$WORK/tmp"

rm -rf "$DEST"
mv "$WORK" "$DEST"
trap - EXIT
echo "30-code-server: code-server $VERSION ready in $DEST"
