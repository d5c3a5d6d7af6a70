#!/usr/bin/env bash
# Builds a local stand-in for the pinned public base image, for machines that
# cannot reach a container registry (docker pull fails). Release builds never
# use it: they take the Dockerfile's default BASE_IMAGE.
#   usage: docker/local-base.sh [TAG]     (default reprocheck-local-base:bookworm)
set -euo pipefail
tag="${1:-reprocheck-local-base:bookworm}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "local base $tag already present"
  exit 0
fi
command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
# The mirror apt already uses on this host (deb822 or one-line sources).
mirror=$(grep -hoE '^URIs: *http[^ ]+/debian$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | sed 's/^URIs: *//')
[ -n "$mirror" ] || mirror=$(grep -hoE '^deb +http[^ ]+/debian ' /etc/apt/sources.list 2>/dev/null | head -n1 | awk '{print $2}')
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
rootfs=$(mktemp -d /tmp/reprocheck-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$mirror" >/tmp/reprocheck-debootstrap.log 2>&1 \
  || { tail -n 20 /tmp/reprocheck-debootstrap.log >&2; exit 1; }
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*
tar -C "$rootfs" -c . | docker import --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "built local base $tag"
