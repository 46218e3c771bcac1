#!/usr/bin/env bash
# Provisions the real components the test suite needs, on a fresh machine of this kind.
# Each test/setup/NN-*.sh is idempotent: it checks for its component and installs or starts it
# only when missing. Caches live outside the checkout, in $CONVEYOR_TEST_CACHE.
set -euo pipefail
export CONVEYOR_TEST_CACHE="${CONVEYOR_TEST_CACHE:-$HOME/.cache/conveyor-test}"
mkdir -p "$CONVEYOR_TEST_CACHE"
here="$(cd "$(dirname "$0")" && pwd)"
for script in "$here"/setup/[0-9][0-9]-*.sh; do
  [ -e "$script" ] || continue
  echo "provision: $(basename "$script")"
  bash "$script"
done
