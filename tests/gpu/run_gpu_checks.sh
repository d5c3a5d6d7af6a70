#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (no Docker engine there: runs natively).
#   bash tests/gpu/run_gpu_checks.sh        (from the repository root, with torch installed)
# Prints each command's exit code; exits non-zero if any differs from what it must be.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/runner${PYTHONPATH:+:$PYTHONPATH}" NO_COLOR=1
py=${PYTHON:-python3}
fail=0
expect() {  # expect CODE ARGS...
  local want=$1; shift
  echo "=== reprocheck $* (must exit $want)"
  "$py" -m reprocheck "$@"; local got=$?
  echo "=== exit $got"
  [ "$got" -eq "$want" ] || { echo "!!! expected $want"; fail=1; }
}
"$py" -m reprocheck env --cuda
expect 0 run examples/retinanet.yaml --device cuda
expect 0 run examples/suite.yaml --device cuda
expect 1 run examples/nondeterministic.yaml
expect 1 run tests/gpu/index_add_fragile.yaml
expect 0 run tests/gpu/index_add_recipe.yaml
exit $fail
