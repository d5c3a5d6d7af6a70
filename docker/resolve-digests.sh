#!/usr/bin/env bash
# Where a registry is reachable: resolve BASE_IMAGE's tag to its digest and record it in
# docker/base-digest.env, which docker/build.sh then uses. Commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
source docker/versions.env
docker pull -q "$BASE_IMAGE" >/dev/null
digest=$(docker image inspect --format '{{index .RepoDigests 0}}' "$BASE_IMAGE")
printf '# Written by docker/resolve-digests.sh on %s\nBASE_IMAGE=%s\n' "$(date -u +%F)" "$digest" > docker/base-digest.env
echo "$digest"
