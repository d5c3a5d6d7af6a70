#!/usr/bin/env bash
# Builds the pinned image of one flavour from docker/versions.env and prints its tag
# (reprocheck:<version>-torch<torch>-<flavour>).
#   docker/build.sh                        release build on the pinned public base, the default flavour (cu130)
#   docker/build.sh --flavour cu126|cpu    another flavour: its CUDA build of torch (or none), its own lock
#   docker/build.sh --local                on the local base from docker/local-base.sh, with the host's
#                                          CA bundle for pip (machines without a registry)
#   docker/build.sh --print                check the flavour and its lock, print the tag, build nothing
# A flavour's lock (<FLAVOUR>_LOCK in docker/versions.env) must exist: `docker/lock.sh --flavour F` writes it.
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/versions.env
source docker/flavour.sh
[ -f docker/base-digest.env ] && source docker/base-digest.env   # BASE_IMAGE pinned by digest, if resolved
flavour="$DEFAULT_FLAVOUR" local=false print=false
while [ $# -gt 0 ]; do
  case "$1" in
    --local) local=true ;;
    --print) print=true ;;
    --flavour) [ $# -ge 2 ] || { echo "build.sh: --flavour needs one of ${FLAVOURS//,/, }" >&2; exit 2; }; flavour="$2"; shift ;;
    --flavour=*) flavour="${1#--flavour=}" ;;
    *) echo "build.sh: unknown argument (use --flavour F, --local, --print)" >&2; exit 2 ;;
  esac
  shift
done
check_flavour build.sh "$flavour"
lock="$(pin LOCK)"
[ -n "$lock" ] && [ -f "$lock" ] || {
  echo "build.sh: no lock for flavour $flavour (${lock:-${key}_LOCK unset}); generate it with: docker/lock.sh --flavour $flavour" >&2
  exit 1
}
# cuDNN as the lock resolved it (none for cpu); where versions.env pins one, the two must agree.
cudnn=$(lock_cudnn "$lock")
[ -z "$(pin CUDNN_VERSION)" ] || [ "$cudnn" = "$(pin CUDNN_VERSION)" ] \
  || { echo "build.sh: $lock has cuDNN ${cudnn:-none}, docker/versions.env pins ${key}_CUDNN_VERSION=$(pin CUDNN_VERSION)" >&2; exit 1; }
tag="reprocheck:${REPROCHECK_VERSION}-torch${TORCH_VERSION}-${flavour}"
if $print; then echo "$tag"; exit 0; fi
base="$BASE_IMAGE"
# A throwaway context holding what the image is made of, the flavour's lock as docker/requirements.lock (so the
# Dockerfile's pip layer, 6 GB for CUDA, is cached per lock content) and, with --local, the host's CA bundle.
context=$(mktemp -d /tmp/reprocheck-context.XXXXXX)
trap 'rm -rf "$context"' EXIT
cp -r pyproject.toml README.md runner docker "$context"/
find "$context/runner" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
cp "$lock" "$context/docker/requirements.lock"
if $local; then
  base="${LOCAL_BASE_IMAGE:-reprocheck-local-base:bookworm}"
  bash docker/local-base.sh "$base" >&2
  # Only in the throwaway context: the repository's docker/extra-ca.pem stays empty.
  cat "${PIP_CERT:-/etc/ssl/certs/ca-certificates.crt}" > "$context/docker/extra-ca.pem"
fi
build() {
  docker build -q -f "$context/docker/Dockerfile" "$@" \
    --build-arg BASE_IMAGE="$base" \
    --build-arg REPROCHECK_VERSION="$REPROCHECK_VERSION" \
    --build-arg TORCH_VERSION="$TORCH_VERSION" \
    --build-arg TORCHVISION_VERSION="$TORCHVISION_VERSION" \
    --build-arg FLAVOUR="$flavour" \
    --build-arg CUDA_VERSION="$(pin CUDA_VERSION)" \
    --build-arg CUDNN_VERSION="$cudnn" \
    --build-arg MIN_DRIVER="$(pin MIN_DRIVER)" \
    --build-arg REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
    --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$context" >&2
}
# The build stage gets a tag of its own (per flavour) so that it stays as cache; the ones it replaces become
# dangling and are pruned with the replaced final images. Nothing else on the engine is touched.
build --target build -t "reprocheck-build-stage:$( [ "$flavour" = "$DEFAULT_FLAVOUR" ] && echo latest || echo "$flavour")"
build -t "$tag"
for label in io.reprocheck.stage=build org.opencontainers.image.title=reprocheck; do
  docker image prune -f --filter "label=$label" >/dev/null 2>&1 || true
done
echo "$tag"
