#!/usr/bin/env bash
# A single-node Docker Swarm on the local dockerd (after 40-docker.sh started it), for the swarm
# runtime and the swarm executor of container jobs. The manager advertises 127.0.0.1: the swarm
# never reaches beyond this machine. Services publish in host mode (the ingress routing mesh does
# not answer from the host here) and use images of the local registry (127.0.0.1:5000).
# Idempotent: nothing happens when the daemon is a swarm manager already.
set -euo pipefail

say() { echo "45-swarm: $*"; }
fail() {
  echo "45-swarm: ERROR: $*" >&2
  exit 1
}

docker info >/dev/null 2>&1 || fail "dockerd does not answer: run test/setup/40-docker.sh first"

state() { docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>/dev/null; }

case "$(state)" in
  "active true")
    say "dockerd is a swarm manager already"
    ;;
  "active false")
    fail "dockerd is a worker of another swarm; leave it first (docker swarm leave) or run the tests on a manager"
    ;;
  pending*|locked*|error*)
    fail "the swarm of this dockerd is '$(state)'; see docker info, or reset it with docker swarm leave --force"
    ;;
  *)
    say "docker swarm init --advertise-addr 127.0.0.1"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    [ "$(state)" = "active true" ] || fail "docker swarm init did not make dockerd a manager (state: $(state))"
    ;;
esac
say "ready: single-node swarm, node $(docker info --format '{{.Swarm.NodeID}}')"
