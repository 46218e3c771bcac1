#!/usr/bin/env bash
# git is needed by every engine test (real repositories in temporary folders).
set -euo pipefail
if ! command -v git >/dev/null; then
  apt-get update -qq && apt-get install -y -qq git
fi
