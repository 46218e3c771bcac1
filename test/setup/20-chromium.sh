#!/usr/bin/env bash
# Headless Debian chromium drives the VS Code workbench (code-server) in the extension and UI tests.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
echo "20-chromium: installing Debian's chromium (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends chromium
/usr/bin/chromium --version 2>/dev/null
