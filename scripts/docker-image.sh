#!/usr/bin/env bash
# Builds rusd's container images without pulling anything from a registry:
#   1. rusd-base:bookworm — a Debian 12 root file system made here with
#      `debootstrap --variant=minbase` from the apt mirror, holding only the runtime libraries
#      the four binaries link (found with ldd on build/bin/rusd*, mapped to their Debian
#      packages with dpkg -S) plus etcd-client's etcdctl, brought up to date from
#      bookworm-security, then `docker import`ed;
#   2. rusd:latest — docker/Dockerfile on top of it: the four binaries, a non-root user, the
#      /var/lib/rusd volume (docs/deployment.md).
# Idempotent: the base is rebuilt only when its package list or recipe changes (a label on
# the image records a hash of both; --rebuild-base forces it), the .debs are cached in
# $BUILD_DIR/docker/debs, and rusd:latest comes from Docker's build cache when the binaries
# did not change. Prints both images' sizes at the end.
#
# Usage: scripts/docker-image.sh [--base-only] [--rebuild-base] [--help]
# Environment: BUILD_DIR (default build; binaries in $BUILD_DIR/bin), MIRROR (default
#   http://deb.debian.org/debian), SECURITY_MIRROR (default http://deb.debian.org/debian-security),
#   IMAGE (default rusd:latest), BASE_IMAGE (default rusd-base:bookworm).
# Needs root (debootstrap, chroot), debootstrap, docker and the binaries built.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$REPO/$BUILD_DIR" ;; esac
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY_MIRROR="${SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
IMAGE="${IMAGE:-rusd:latest}"
BASE_IMAGE="${BASE_IMAGE:-rusd-base:bookworm}"
SUITE=bookworm
BINARIES=(rusd rusd-frontend rusd-raftd rusd-stored)
# Always in the base: etcdctl for operators and the test (docs/deployment.md).
EXTRA_PACKAGES=(etcd-client)
# Bump when the recipe below changes in a way the package list does not show.
BASE_RECIPE_VERSION=1

BASE_ONLY=0
REBUILD_BASE=0
for arg in "$@"; do
  case "$arg" in
    --base-only) BASE_ONLY=1 ;;
    --rebuild-base) REBUILD_BASE=1 ;;
    -h|--help) sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "docker-image.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

step() { printf '==> %s\n' "$*"; }
die() { echo "docker-image.sh: $*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (debootstrap and chroot need it)"
command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "the Docker daemon does not answer (docker info failed)"
for b in "${BINARIES[@]}"; do
  [[ -x $BUILD_DIR/bin/$b ]] || die "$BUILD_DIR/bin/$b missing: build first (scripts/setup.sh)"
done

# ---- the runtime packages: every shared library the binaries load, by owning package ----
# Prints "package" lines for the libraries `ldd` resolves for the binaries. A library no
# package owns (built by hand, /usr/local) cannot go into the image: that is an error.
runtime_packages() {
  local libs lib real pkg
  libs=$(for b in "${BINARIES[@]}"; do ldd "$BUILD_DIR/bin/$b"; done |
    awk '/=> not found/ {print "NOTFOUND " $1; next} /=> \// {print $3} /^\t\// {print $1}' |
    sort -u)
  if grep -q '^NOTFOUND' <<<"$libs"; then
    die "ldd cannot resolve: $(grep '^NOTFOUND' <<<"$libs" | cut -d' ' -f2 | tr '\n' ' ')"
  fi
  while read -r lib; do
    [[ -n $lib ]] || continue
    # dpkg knows the path the package installed, which may differ from ldd's by /usr-merge
    # or symlinks: try as given, then the resolved path, then with /usr prefixed or removed.
    real=$(readlink -f "$lib")
    pkg=""
    for p in "$lib" "$real" "/usr$lib" "/usr$real" "${lib#/usr}" "${real#/usr}"; do
      pkg=$(dpkg-query -S "$p" 2>/dev/null | head -n1 | cut -d: -f1) && [[ -n $pkg ]] && break
    done
    [[ -n $pkg ]] || die "no Debian package owns $lib (needed by build/bin/rusd*)"
    echo "$pkg"
  done <<<"$libs"
}

build_base() {
  local packages key have_key
  mapfile -t packages < <({ runtime_packages; printf '%s\n' "${EXTRA_PACKAGES[@]}"; } | sort -u)
  key=$(printf '%s\n' "recipe=$BASE_RECIPE_VERSION" "mirror=$MIRROR" "${packages[@]}" |
    sha256sum | cut -c1-16)
  have_key=$(docker image inspect -f '{{ index .Config.Labels "org.rusd.base-key" }}' \
    "$BASE_IMAGE" 2>/dev/null || true)
  if [[ $REBUILD_BASE == 0 && $have_key == "$key" ]]; then
    step "$BASE_IMAGE is up to date (key $key; --rebuild-base forces a new one)"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  step "building $BASE_IMAGE (key $key) with: ${packages[*]}"
  local started=$SECONDS
  local work cache="$BUILD_DIR/docker/debs"
  mkdir -p "$cache" "$BUILD_DIR/docker"
  work=$(mktemp -d "$BUILD_DIR/docker/rootfs.XXXXXX")
  # The chroot's /proc must be unmounted before the tree is removed, whatever failed.
  # shellcheck disable=SC2064  # expand $work now: it is local to this function
  trap "umount '$work/rootfs/proc' 2>/dev/null || true; rm -rf '$work'" EXIT
  local log="$BUILD_DIR/docker/debootstrap.log"
  step "debootstrap --variant=minbase $SUITE from $MIRROR (log: $log)"
  if ! debootstrap --variant=minbase --cache-dir="$cache" \
      --include="$(IFS=,; echo "${packages[*]}")" \
      "$SUITE" "$work/rootfs" "$MIRROR" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "debootstrap failed (log: $log)"
  fi

  local root="$work/rootfs"
  # Security updates: debootstrap installs from one suite; the point-release and security
  # suites come on top with apt inside the tree (the host's resolver for the duration).
  cat >"$root/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY_MIRROR $SUITE-security main
EOF
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  step "apt-get upgrade from $SUITE-updates and $SUITE-security"
  if ! { chroot "$root" apt-get update &&
         DEBIAN_FRONTEND=noninteractive chroot "$root" apt-get -y \
           -o Dir::Cache::archives=/var/cache/apt/archives upgrade; } >>"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "apt-get upgrade in the base failed (log: $log)"
  fi
  umount "$root/proc"

  # Trim what a server image never reads: apt's lists and caches, documentation, man
  # pages, translations, logs. apt and dpkg stay, so an image can still be extended.
  chroot "$root" apt-get clean
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/var/log/*.log \
    "$root"/var/cache/debconf/*-old "$root"/var/lib/dpkg/*-old
  : >"$root/etc/resolv.conf"  # Docker writes its own at run time
  echo "rusd-base" >"$root/etc/hostname"

  step "docker import -> $BASE_IMAGE"
  tar --numeric-owner --xattrs -C "$root" -c . |
    docker import \
      --change "LABEL org.rusd.base-key=$key" \
      --change "LABEL org.rusd.base-packages=$(IFS=,; echo "${packages[*]}")" \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change 'CMD ["/bin/bash"]' \
      - "$BASE_IMAGE" >/dev/null
  rm -rf "$work"
  trap - EXIT
  step "$BASE_IMAGE built in $((SECONDS - started)) s"
}

build_image() {
  # The build context is a staging directory with just what the Dockerfile copies, so
  # nothing else of the tree (or of build/) is sent to the daemon.
  local ctx="$BUILD_DIR/docker/context"
  rm -rf "$ctx"
  mkdir -p "$ctx"
  for b in "${BINARIES[@]}"; do
    # Release binaries keep their symbol tables; the image does not need them. strip -o
    # writes a new file with the same content for the same input, so the layer cache holds.
    strip --strip-unneeded -o "$ctx/$b" "$BUILD_DIR/bin/$b"
  done
  cp "$REPO/docker/Dockerfile" "$REPO/docker/rusd-healthcheck" "$ctx/"
  local revision
  revision=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
  step "docker build -> $IMAGE (revision $revision)"
  # The classic builder: it takes FROM from the local images as they are (nothing to pull).
  # Its deprecation notice goes to the log with the rest; shown only on failure.
  local log="$BUILD_DIR/docker/build.log"
  if ! DOCKER_BUILDKIT=0 docker build \
      --build-arg BASE_IMAGE="$BASE_IMAGE" \
      --label org.opencontainers.image.revision="$revision" \
      --label org.rusd.binaries-sha256="$(cat "${BINARIES[@]/#/$BUILD_DIR/bin/}" | sha256sum | cut -c1-16)" \
      -t "$IMAGE" "$ctx" >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    die "docker build failed (log: $log)"
  fi
}

# Previous images that a rebuild leaves untagged are removed (only those: `docker image rm`
# without -f refuses an image that is still tagged or used by a container).
old_ids=$(docker image inspect -f '{{.Id}}' "$IMAGE" "$BASE_IMAGE" 2>/dev/null || true)
build_base
[[ $BASE_ONLY == 1 ]] || build_image
for id in $old_ids; do
  if [[ -z $(docker image inspect -f '{{join .RepoTags ","}}' "$id" 2>/dev/null) ]]; then
    docker image rm "$id" >/dev/null 2>&1 || true
  fi
done
step "images:"
for i in "$BASE_IMAGE" "$IMAGE"; do
  [[ $BASE_ONLY == 1 && $i == "$IMAGE" ]] && continue
  docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}  (id {{.ID}}, created {{.CreatedSince}})' "$i" |
    sed 's/^/  /'
done
