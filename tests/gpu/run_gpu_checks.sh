#!/usr/bin/env bash
# The GPU checks, as one script for a lent GPU machine (no Docker engine there: runs natively).
#   bash tests/gpu/run_gpu_checks.sh        (from the repository root, with torch installed)
# Prints each command's exit code; exits non-zero if any differs from what it must be.
set -u
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD/runner${PYTHONPATH:+:$PYTHONPATH}" NO_COLOR=1
py=${PYTHON:-python3}
fail=0
# The lent GPU machines have torch, torchvision, PyYAML and safetensors but not pydantic, and no network:
# carry its wheels (made here with the line below, for that machine's Python 3.12) in .gpu-wheels/.
#   pip download --python-version 3.12 --platform manylinux2014_x86_64 --only-binary=:all: -d .gpu-wheels pydantic
if ! "$py" -c "import pydantic" 2>/dev/null; then
  [ -d .gpu-wheels ] || { echo "pydantic is missing and no .gpu-wheels/ was carried (see the comment above)"; exit 2; }
  "$py" -m pip install -q --no-index --find-links .gpu-wheels pydantic || exit 2
fi
expect() {  # expect CODE ARGS...
  local want=$1; shift
  echo "=== reprocheck $* (must exit $want)"
  "$py" -m reprocheck "$@"; local got=$?
  echo "=== exit $got"
  [ "$got" -eq "$want" ] || { echo "!!! expected $want"; fail=1; }
}
expect 0 env --cuda
# The preflight names what hides the GPU (exit 3 before the model is built).
CUDA_VISIBLE_DEVICES= expect 3 run tests/gpu/baseline_keyed.yaml --device cuda
# RetinaNet on CUDA, its detections compared as detections (examples/retinanet.yaml's compare:).
tasks=$(mktemp -d)
expect 0 run examples/retinanet.yaml --device cuda --report "$tasks/retinanet.json"
"$py" - "$tasks/retinanet.json" <<'PY'
import json, sys
check = json.load(open(sys.argv[1]))["checks"][0]
task = check["outputs"][0]["task"]
print("detection:", {k: task["stats"][k] for k in ("expected", "matched", "max_box_shift", "max_score_diff")})
print("fragile:", [f["message"] for f in check["fragile"]], "notes:", check["notes"])
assert task["task"] == "detection" and task["stats"]["matched"] == task["stats"]["expected"]
PY
[ $? -eq 0 ] || fail=1
expect 0 run examples/suite.yaml --device cuda
expect 1 run examples/nondeterministic.yaml
expect 1 run tests/gpu/index_add_fragile.yaml
expect 0 run tests/gpu/index_add_recipe.yaml
# Invariance on a GPU: CPU vs CUDA (must differ bitwise, with the float64 reference), and it must not be skipped.
expect 1 run tests/gpu/device_invariance.yaml --require-devices

# Baselines across devices: a CPU golden, compared on CUDA with the spec's baseline tolerance.
golden=$(mktemp -d)
expect 0 run tests/gpu/baseline_cpu.yaml --device cpu --baseline "$golden" --update-baseline
expect 0 run tests/gpu/baseline_cpu.yaml --device cuda --baseline "$golden" --report "$golden/cuda.json"
"$py" - "$golden/cuda.json" <<'PY'
import json, sys
check = json.load(open(sys.argv[1]))["checks"][0]
print("fingerprint gpus:", check["fingerprint"]["gpus"], "driver:", check["fingerprint"]["driver"])
print("baseline:", check["baseline"]["status"], "max abs diff vs CPU golden:",
      max((o["max_abs_diff"] for o in check["baseline"]["outputs"]), default=0))
print("fields that differ from the CPU golden:", [d["field"] for d in check["baseline"]["fingerprint_diff"]])
assert check["fingerprint"]["gpus"], "the fingerprint must name the GPU"
PY
[ $? -eq 0 ] || fail=1

# Goldens per GPU generation: the CPU's, then the first night writes this GPU's (cuda-sm<capability>) and the next
# compares with it, not with the CPU's.
keyed=$(mktemp -d)
expect 0 run tests/gpu/baseline_keyed.yaml --device cpu --baseline "$keyed" --update-baseline
expect 0 run tests/gpu/baseline_keyed.yaml --device cuda --baseline "$keyed" --missing-baseline write --report "$keyed/first.json"
expect 0 run tests/gpu/baseline_keyed.yaml --device cuda --baseline "$keyed" --report "$keyed/second.json"
"$py" - "$keyed/first.json" "$keyed/second.json" <<'PY'
import json, sys
first, second = (json.load(open(p))["checks"][0]["baseline"] for p in sys.argv[1:])
print("first night:", first["status"], first["written"], "then:", second["status"], second["golden_key"])
assert first["status"] == "written" and first["key"].startswith("cuda-sm")
assert second["status"] == "match" and second["golden_key"] == first["key"] and not second["fallback"]
PY
[ $? -eq 0 ] || fail=1

# diagnose on the planted CUDA op must name deterministic algorithms.
expect 0 diagnose tests/gpu/index_add_recipe.yaml --report "$golden/diag.json"
"$py" - "$golden/diag.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))["checks"][0]
broke = [a["knob"] for a in d["ablations"] if a["breaks"]]
print("ablations that break it:", broke, "ops:", d["nondeterministic_ops"])
assert "deterministic_algorithms" in broke
PY
[ $? -eq 0 ] || fail=1
exit $fail
