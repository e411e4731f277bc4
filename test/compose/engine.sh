#!/usr/bin/env bash
# A Docker Engine and Compose for the compose test: Debian's docker.io (Engine 20.10), docker-compose (1.29) and
# debootstrap (for stand-in images) installed with apt-get when missing, and dockerd started in the background when
# no daemon answers. Every wait is bounded; on failure it exits 1 naming what is missing, never hangs.
set -uo pipefail
fail() {
  echo "compose test: $*" >&2
  exit 1
}

missing=()
command -v docker >/dev/null 2>&1 || missing+=(docker.io)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "missing ${missing[*]}, and they can only be installed as root with apt-get (Debian): apt-get install ${missing[*]}"
  fi
  echo "compose test: installing ${missing[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  timeout 300 apt-get update -q >/dev/null || echo "compose test: apt-get update failed; trying the package lists there are" >&2
  timeout 600 apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    fail "apt-get could not install ${missing[*]}: no Docker Engine or Compose for the compose test"
fi

if ! timeout 20 docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || fail "no Docker daemon answers, and dockerd is not installed (apt-get install docker.io)"
  [ "$(id -u)" = 0 ] || fail "no Docker daemon answers, and only root can start dockerd here"
  log="${TMPDIR:-/tmp}/saga-dockerd.log"
  echo "compose test: no Docker daemon answers; starting dockerd in the background (log: $log)"
  setsid nohup dockerd >"$log" 2>&1 </dev/null &
  deadline=$((SECONDS + 60))
  until timeout 5 docker info >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 20 "$log" >&2
      fail "dockerd did not answer within 60 s (its log above)"
    fi
    sleep 1
  done
fi
echo "compose test: Docker Engine $(docker info --format '{{.ServerVersion}}' 2>/dev/null), compose: $(docker compose version --short 2>/dev/null || docker-compose version --short 2>/dev/null)"
