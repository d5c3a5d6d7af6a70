#!/usr/bin/env bash
# The composite action's one step (action.yml): runs the pinned image with `docker run`, so GPUs can be
# passed (`runs: using: docker` cannot) and the container writes the step's outputs, summary and
# annotations through the runner's file-command files, mounted at the same paths.
set -uo pipefail

die() {  # one message, result=error, failed step
  printf '::error title=reprocheck::%s\n' "$1"
  printf 'result=error\nfailed-checks=\nmax-abs-diff=0\nreport=\n' >> "$GITHUB_OUTPUT"
  exit 1
}
boolean() {  # strictly true or false: anything else is a mistake, not "true"
  case "$2" in true|false) printf '%s' "$2" ;; *) die "input $1 must be true or false, got '$2'" ;; esac
}

fail_on_mismatch=$(boolean fail-on-mismatch "${INPUT_FAIL_ON_MISMATCH:-true}") || exit 1
build=$(boolean build "${INPUT_BUILD:-false}") || exit 1
update_baseline=$(boolean update-baseline "${INPUT_UPDATE_BASELINE:-false}") || exit 1

image="${INPUT_IMAGE:-}"
if [ "$build" = true ]; then
  image=$(bash "$GITHUB_ACTION_PATH/docker/build.sh" ${REPROCHECK_LOCAL_BASE:+--local}) || die "building the image from $GITHUB_ACTION_PATH/docker/Dockerfile failed"
elif [ -z "$image" ]; then
  [ -n "${ACTION_REPOSITORY:-}" ] && [ -n "${ACTION_REF:-}" ] \
    || die "no image to run: set the 'image' input or 'build: true' (a local 'uses: ./' has no released image)"
  image="ghcr.io/${ACTION_REPOSITORY,,}:${ACTION_REF}"
fi

gpu_args=()
case "${INPUT_GPUS:-none}" in
  none) ;;
  all) gpu_args=(--gpus all) ;;
  ''|*[!0-9]*|0) die "input gpus must be none, all or a positive count, got '${INPUT_GPUS}'" ;;
  *) gpu_args=(--gpus "$INPUT_GPUS") ;;
esac

args=(run --github)
while IFS= read -r spec; do
  spec="${spec#"${spec%%[![:space:]]*}"}"; spec="${spec%"${spec##*[![:space:]]}"}"
  [ -n "$spec" ] && args+=("$spec")
done <<< "${INPUT_SPEC:-}"
[ "${#args[@]}" -gt 2 ] || die "input spec is empty: name at least one spec file"
for name in $(printf '%s' "${INPUT_CHECKS:-}" | tr ',' ' '); do args+=(--check "$name"); done
if [ -n "${INPUT_RUNS:-}" ]; then
  case "$INPUT_RUNS" in *[!0-9]*) die "input runs must be a whole number >= 2, got '$INPUT_RUNS'" ;; esac
  args+=(--runs "$INPUT_RUNS")
fi
[ -n "${INPUT_DEVICE:-}" ] && args+=(--device "$INPUT_DEVICE")

if [ -n "${INPUT_BASELINE:-}" ]; then
  baseline=$(realpath -m "$INPUT_BASELINE")
  case "$baseline/" in "$GITHUB_WORKSPACE"/*) ;; *) die "input baseline must be inside the workspace, got '$INPUT_BASELINE'" ;; esac
  mkdir -p "$baseline"
  args+=(--baseline "$baseline")
  [ "$update_baseline" = true ] && args+=(--update-baseline)
elif [ "$update_baseline" = true ]; then
  die "input update-baseline needs the baseline input (the folder to write the goldens to)"
fi

report=$(realpath -m "${INPUT_REPORT:-reprocheck-report.json}")
mkdir -p "$(dirname "$report")"
args+=(--report "$report")

mounts=(-v "$GITHUB_WORKSPACE:$GITHUB_WORKSPACE")
for dir in "$(dirname "$report")" "$(dirname "$GITHUB_OUTPUT")" "$(dirname "$GITHUB_STEP_SUMMARY")"; do
  case "$dir/" in "$GITHUB_WORKSPACE"/*) ;; *) mounts+=(-v "$dir:$dir") ;; esac
done

docker run --rm --user "$(id -u):$(id -g)" --network "${INPUT_NETWORK:-none}" "${gpu_args[@]}" "${mounts[@]}" \
  -w "$GITHUB_WORKSPACE" -e HOME=/tmp -e NO_COLOR=1 \
  -e GITHUB_ACTIONS -e GITHUB_OUTPUT -e GITHUB_STEP_SUMMARY -e GITHUB_WORKSPACE \
  "$image" "${args[@]}"
rc=$?
# reprocheck --github writes the outputs itself; a usage error in its own arguments cannot.
if [ "$rc" -ne 125 ] && ! grep -q '^result' "$GITHUB_OUTPUT" 2>/dev/null; then
  printf 'result=%s\nfailed-checks=\nmax-abs-diff=0\nreport=\n' "$([ "$rc" -eq 0 ] && echo pass || echo error)" >> "$GITHUB_OUTPUT"
fi
case "$rc" in
  0|2|3) exit "$rc" ;;
  1) if [ "$fail_on_mismatch" = true ]; then exit 1; fi
     echo "::warning title=reprocheck::outputs differ, but fail-on-mismatch is false"
     exit 0 ;;
  *) die "the container could not run (docker exit $rc): is $image available here? Pull or build it, or set the image input" ;;
esac
