#!/usr/bin/env bash
# A real Docker daemon, a real local registry on 127.0.0.1:5000 and two base images built offline
# (nothing is pulled: this machine reaches no image registry):
#   conveyor-test/busybox:1  FROM scratch + the static busybox (about 2 MB)
#   conveyor-test/node:20    a Node rootfs (/usr/bin/node and the libraries it links), CMD node
# Idempotent: each part is checked first and only installed, started or built when missing.
set -euo pipefail
cache="${CONVEYOR_TEST_CACHE:-$HOME/.cache/conveyor-test}"
REGISTRY_ADDR="${CONVEYOR_TEST_REGISTRY:-127.0.0.1:5000}"
export DOCKER_BUILDKIT=0

say() { echo "40-docker: $*"; }
fail() {
  echo "40-docker: ERROR: $*" >&2
  exit 1
}

# -- packages --------------------------------------------------------------------------------
missing=()
[ -x /usr/sbin/dockerd ] || missing+=(docker.io)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # No init system here: keep the packages' scripts from starting services (exit 101 = not allowed).
  policy=/usr/sbin/policy-rc.d
  added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod +x "$policy"
    added_policy=1
  fi
  trap '[ "$added_policy" = 1 ] && rm -f "$policy"' EXIT
  apt-get update -qq
  apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
  [ "$added_policy" = 1 ] && rm -f "$policy"
  trap - EXIT
fi
[ -x /usr/sbin/dockerd ] || fail "dockerd is not installed (apt-get install docker.io failed)"
[ -x /usr/bin/docker-registry ] || fail "docker-registry is not installed (apt-get install docker-registry failed)"
[ -x /bin/busybox ] || fail "/bin/busybox is missing (apt-get install busybox-static failed)"

# -- the daemon ------------------------------------------------------------------------------
mkdir -p "$cache/docker"
if docker info >/dev/null 2>&1; then
  say "dockerd answers"
else
  # /etc/init.d/docker fails here (its ulimit call is not permitted) and there is no systemd:
  # start the daemon directly, in its own session so that it outlives this script.
  say "starting dockerd (log: $cache/docker/dockerd.log)"
  setsid nohup /usr/sbin/dockerd >>"$cache/docker/dockerd.log" 2>&1 </dev/null &
  echo $! >"$cache/docker/dockerd.pid"
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! docker info >/dev/null 2>&1; then
    echo "---- last lines of $cache/docker/dockerd.log ----" >&2
    tail -n 20 "$cache/docker/dockerd.log" >&2 || true
    fail "dockerd did not answer within 30 s (see $cache/docker/dockerd.log)"
  fi
  say "dockerd is up (pid $(cat "$cache/docker/dockerd.pid"))"
fi

# -- the registry ----------------------------------------------------------------------------
registry_up() { curl -fsS -m 2 -o /dev/null "http://$REGISTRY_ADDR/v2/" 2>/dev/null; }
if registry_up; then
  say "the registry at $REGISTRY_ADDR answers"
else
  mkdir -p "$cache/registry/storage"
  # The Debian package's own config turns on htpasswd auth; this one has none.
  cat >"$cache/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $cache/registry/storage
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
  say "starting the registry on $REGISTRY_ADDR (log: $cache/registry/registry.log)"
  setsid nohup /usr/bin/docker-registry serve "$cache/registry/config.yml" >>"$cache/registry/registry.log" 2>&1 </dev/null &
  echo $! >"$cache/registry/registry.pid"
  for _ in $(seq 1 40); do
    registry_up && break
    sleep 0.25
  done
  if ! registry_up; then
    tail -n 20 "$cache/registry/registry.log" >&2 || true
    fail "the registry did not answer on http://$REGISTRY_ADDR/v2/ within 10 s (see $cache/registry/registry.log)"
  fi
  say "the registry is up (pid $(cat "$cache/registry/registry.pid"))"
fi

# -- base images, built offline --------------------------------------------------------------
if docker image inspect conveyor-test/busybox:1 >/dev/null 2>&1; then
  say "conveyor-test/busybox:1 is there"
else
  say "building conveyor-test/busybox:1 (FROM scratch + /bin/busybox)"
  ctx="$(mktemp -d)"
  cp /bin/busybox "$ctx/busybox"
  cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN mkdir -p /tmp /etc && echo 'root:x:0:0:root:/root:/bin/sh' >/etc/passwd && echo 'nobody:x:65534:65534:nobody:/:/bin/false' >>/etc/passwd && \
    echo 'root:x:0:' >/etc/group && echo 'nogroup:x:65534:' >>/etc/group && chmod 1777 /tmp
LABEL conveyor.test.base=true
CMD ["/bin/sh"]
EOF
  if ! docker build -t conveyor-test/busybox:1 "$ctx" >"$ctx.log" 2>&1; then
    cat "$ctx.log" >&2
    fail "could not build conveyor-test/busybox:1"
  fi
  rm -f "$ctx.log"
  rm -rf "$ctx"
fi

if docker image inspect conveyor-test/node:20 >/dev/null 2>&1; then
  say "conveyor-test/node:20 is there"
else
  node_bin="$(readlink -f /usr/bin/node 2>/dev/null || command -v node)"
  [ -x "$node_bin" ] || fail "no node binary to put in conveyor-test/node:20"
  say "importing conveyor-test/node:20 ($node_bin $("$node_bin" --version) and its libraries)"
  root="$(mktemp -d)"
  mkdir -p "$root/usr/bin" "$root/bin" "$root/tmp" "$root/etc" "$root/app"
  chmod 1777 "$root/tmp"
  cp "$node_bin" "$root/usr/bin/node"
  cp /bin/busybox "$root/bin/busybox"
  for tool in sh ls cat wget env sleep ps kill; do ln -s busybox "$root/bin/$tool"; done
  # Each library `ldd` lists, at the same path, plus the dynamic loader.
  ldd "$node_bin" | grep -o '/[^ ]*' | sort -u | while read -r lib; do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000:node:/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnode:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
  tar -C "$root" -cf "$root.tar" .
  docker import \
    --change 'ENV PATH=/usr/bin:/bin' \
    --change 'WORKDIR /app' \
    --change 'LABEL conveyor.test.base=true' \
    --change 'CMD ["node"]' \
    "$root.tar" conveyor-test/node:20 >/dev/null
  rm -rf "$root" "$root.tar"
fi
say "ready: dockerd $(docker version --format '{{.Server.Version}}' 2>/dev/null), registry http://$REGISTRY_ADDR, images conveyor-test/busybox:1 conveyor-test/node:20"
