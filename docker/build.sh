#!/usr/bin/env bash
# Builds the pinned image from docker/versions.env and prints its tag.
#   docker/build.sh                        release build on the pinned public base
#   docker/build.sh --local                on the local base from docker/local-base.sh, with the host's
#                                          CA bundle for pip (machines without a registry)
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/versions.env
[ -f docker/base-digest.env ] && source docker/base-digest.env   # BASE_IMAGE pinned by digest, if resolved
tag="reprocheck:${REPROCHECK_VERSION}-torch${TORCH_VERSION}-${CUDA_TAG}"
base="$BASE_IMAGE"
context=.
cleanup() { :; }
if [ "${1:-}" = "--local" ]; then
  base="${LOCAL_BASE_IMAGE:-reprocheck-local-base:bookworm}"
  bash docker/local-base.sh "$base" >&2
  # A throwaway context, so the CA bundle never touches the repository's empty docker/extra-ca.pem.
  context=$(mktemp -d /tmp/reprocheck-context.XXXXXX)
  cleanup() { rm -rf "$context"; }
  cp -r pyproject.toml README.md runner docker "$context"/
  find "$context/runner" -name __pycache__ -prune -exec rm -rf {} +
  cat "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" > "$context/docker/extra-ca.pem"
fi
trap cleanup EXIT
build() {
  docker build -q -f docker/Dockerfile "$@" \
    --build-arg BASE_IMAGE="$base" \
    --build-arg REPROCHECK_VERSION="$REPROCHECK_VERSION" \
    --build-arg TORCH_VERSION="$TORCH_VERSION" \
    --build-arg TORCHVISION_VERSION="$TORCHVISION_VERSION" \
    --build-arg CUDA_VERSION="$CUDA_VERSION" \
    --build-arg CUDNN_VERSION="$CUDNN_VERSION" \
    --build-arg MIN_DRIVER="$MIN_DRIVER" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$context" >&2
}
# The build stage gets a tag of its own so that it stays as cache; the ones it replaces become
# dangling and are pruned with the replaced final images. Nothing else on the engine is touched.
build --target build -t reprocheck-build-stage:latest
build -t "$tag"
for label in io.reprocheck.stage=build org.opencontainers.image.title=reprocheck; do
  docker image prune -f --filter "label=$label" >/dev/null 2>&1 || true
done
echo "$tag"
