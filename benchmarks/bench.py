"""Benchmarks, run by hand (not part of the test suite):

    .venv/bin/python benchmarks/bench.py [--pairs N] [--only NAME ...]

Every figure is a ratio measured side by side in this one launch: A and B alternate, each pair is
printed, and the median of the pairs is reported (the machine is noisy; a ratio per pair cancels drift).
  retinanet   wall time of `reprocheck run -q examples/retinanet.yaml` / a bare script that applies the
              same seeds, builds the model once and runs the same inference twice   (target <= 1.10x)
  resnet50    the same for resnet50 (weights null) on a random [8, 3, 224, 224] input (target <= 1.10x)
  rss         peak RSS of reprocheck's largest process / the bare script's, on retinanet (target <= 1.0x)
  leaves      comparing two output sets of 100,000 scalar leaves (seconds per pair; target <= 5 s)
  compare     comparing 1 GiB of identical outputs / torch.equal on the same tensors    (target <= 2x)
  batch       `invariance: {batch: [1, 8]}` on the resnet50 check / the plain check   (target <= 1.5x)
  compile     `invariance: {compile: true}` (inductor, two compiled runs) / the plain check, on a small MLP and on
              resnet18 (weights null, [4, 3, 224, 224]); each pair also prints one compile's seconds (no target: the
              cost is the compiler's, stated in the README)
  precision   `invariance: {dtype: [bfloat16], autocast: [bfloat16]}` / the plain check, on resnet18
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "runner"))

SEEDS = """
import random, numpy, torch, torchvision
seed = 3407
random.seed(seed); numpy.random.seed(seed); torch.manual_seed(seed)
torch.backends.cudnn.deterministic = True; torch.backends.cudnn.benchmark = False
torch.use_deterministic_algorithms(True)
"""

BARE_RETINANET = (
    SEEDS
    + """
from torchvision.io import decode_image, read_file, ImageReadMode
from torchvision.transforms import v2
model = torchvision.models.get_model("retinanet_resnet50_fpn_v2", weights=None, weights_backbone=None,
                                     score_thresh=0.01, detections_per_img=100).eval()
raw = decode_image(read_file("examples/data/chelsea.png"), mode=ImageReadMode.RGB)
img = v2.ToDtype(torch.float32, scale=True)(raw)
with torch.inference_mode():
    a = model([img]); b = model([img])
assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
"""
)

BARE_RESNET50 = (
    SEEDS
    + """
model = torchvision.models.get_model("resnet50", weights=None).eval()
x = torch.rand([8, 3, 224, 224], generator=torch.Generator().manual_seed(seed))
with torch.inference_mode():
    a = model(x); b = model(x)
assert torch.equal(a, b)
"""
)

RESNET50_SPEC = """version: 1
model: {torchvision: resnet50, kwargs: {weights: null}}
input: {random: {shape: [8, 3, 224, 224]}}
"""

# Runs a command as a child; prints its wall time and the peak RSS of its largest process (children included).
MEASURE = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)
"""


def measure(cmd: list[str], ok: tuple[str, ...] = ("0",)) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, cwd=ROOT, check=True)
    wall, rss, rc = out.stdout.split()
    if rc not in ok:
        raise SystemExit(f"command failed with exit {rc}: {' '.join(cmd)}")
    return float(wall), int(rss)


def paired(
    name: str, a_name: str, a: Callable[[], float], b_name: str, b: Callable[[], float], pairs: int, target: str
) -> float:
    """Alternate A and B (B first in odd pairs), print each pair's ratio A/B, return the median ratio."""
    ratios = []
    for i in range(pairs):
        if i % 2:
            tb, ta = b(), a()
        else:
            ta, tb = a(), b()
        ratios.append(ta / tb)
        print(f"  {name} pair {i + 1}: {a_name} {ta:8.3f}  {b_name} {tb:8.3f}  ratio {ta / tb:.3f}", flush=True)
    median = statistics.median(ratios)
    print(f"{name}: median ratio {median:.3f} over {pairs} pairs ({target})", flush=True)
    return median


def bench_wall(name: str, spec: Path, bare: str, pairs: int, rss: bool = False) -> None:
    ours_cmd = [sys.executable, "-m", "reprocheck", "run", "-q", str(spec)]
    bare_cmd = [sys.executable, "-c", bare]
    peaks: dict[str, list[int]] = {"ours": [], "bare": []}

    def run(which: str, cmd: list[str]) -> float:
        wall, peak = measure(cmd)
        peaks[which].append(peak)
        return wall

    paired(
        name,
        "reprocheck",
        lambda: run("ours", ours_cmd),
        "bare",
        lambda: run("bare", bare_cmd),
        pairs,
        "target <= 1.10x wall",
    )
    if rss:
        ratios = [o / b for o, b in zip(peaks["ours"], peaks["bare"], strict=True)]
        for i, (o, b) in enumerate(zip(peaks["ours"], peaks["bare"], strict=True)):
            print(f"  rss pair {i + 1}: reprocheck {o / 1024:7.0f} MiB  bare {b / 1024:7.0f} MiB  ratio {o / b:.3f}")
        print(f"rss: median ratio {statistics.median(ratios):.3f} over {pairs} pairs (target <= 1.0x)")


def bench_batch(spec: Path, pairs: int) -> None:
    with_batch = spec.with_name("resnet50-batch.yaml")
    with_batch.write_text(RESNET50_SPEC + "invariance: {batch: [1, 8]}\n")
    plain_cmd = [sys.executable, "-m", "reprocheck", "run", "-q", str(spec)]
    batch_cmd = [sys.executable, "-m", "reprocheck", "run", "-q", str(with_batch)]
    paired(
        "batch",
        "with batch [1, 8]",
        lambda: measure(batch_cmd, ("0", "1"))[0],  # exit 1 is a finding here (batch-of-one kernels), not a failure
        "plain",
        lambda: measure(plain_cmd)[0],
        pairs,
        "target <= 1.5x: two more runs, forked from the check's worker",
    )


MLP_FACTORY = """import torch
def build():
    return torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))
"""
RESNET18_SPEC = """version: 1
model: {torchvision: resnet18, kwargs: {weights: null}}
input: {random: {shape: [4, 3, 224, 224]}}
"""
MLP_SPEC = """version: 1
model: {factory: "mlp:build"}
input: {random: {shape: [8, 64]}}
"""


def bench_variant(name: str, folder: Path, spec_text: str, invariance: str, pairs: int) -> None:
    """A check with deployed variants / the same check without them; one compile's seconds from the report."""
    import json

    plain, varied = folder / f"{name}-plain.yaml", folder / f"{name}-varied.yaml"
    plain.write_text(spec_text)
    varied.write_text(spec_text + invariance)
    report = folder / f"{name}.json"
    varied_cmd = [sys.executable, "-m", "reprocheck", "run", "-q", str(varied), "--report", str(report)]
    plain_cmd = [sys.executable, "-m", "reprocheck", "run", "-q", str(plain)]

    def run_varied() -> float:
        wall = measure(varied_cmd, ("0", "1"))[0]  # exit 1: a variant below `require` is a finding, not a failure
        for v in json.loads(report.read_text())["checks"][0]["invariance"]:
            extra = f", one compile {v['compiled']['seconds']:.1f} s" if v.get("compiled") else ""
            print(f"    {v['kind']}={v['variant']}: {v['status']}{extra}")
        return wall

    paired(name, "with the variants", run_varied, "plain", lambda: measure(plain_cmd)[0], pairs, "no target")


def bench_leaves(pairs: int) -> None:
    import torch

    from reprocheck.spec import ToleranceSpec
    from reprocheck.worker import compare
    from reprocheck.worker.outputs import flatten

    n = 100_000
    a = flatten({f"k{i}": float(i) for i in range(n)})
    b = flatten({f"k{i}": float(i) + (1e-3 if i % 1000 == 0 else 0.0) for i in range(n)})
    assert len(a.tensors) == n and isinstance(a.tensors["k1"], torch.Tensor)
    times = []
    for i in range(pairs):
        t = time.perf_counter()
        c = compare.compare_runs([a, b], ToleranceSpec())
        times.append(time.perf_counter() - t)
        print(f"  leaves pair {i + 1}: {times[-1]:.2f} s ({len(c.failures)} of {len(c.outputs)} outputs differ)")
    print(f"leaves: median {statistics.median(times):.2f} s for {n:,} scalar leaves per pair (target <= 5 s)")


def bench_compare(pairs: int) -> None:
    import torch

    from reprocheck.spec import ToleranceSpec
    from reprocheck.worker import compare
    from reprocheck.worker.outputs import Outputs

    n = 16  # tensors per set; 2 sets x 16 x 32 MiB = 1 GiB
    g = torch.Generator().manual_seed(0)
    a = {f"out{i}": torch.randn(8 * 2**20, generator=g) for i in range(n)}
    b = {k: v.clone() for k, v in a.items()}
    tree = {"t": "dict", "type": "dict", "items": [[k, {"t": "tensor", "path": k}] for k in a]}
    ea, eb = Outputs(tree, a), Outputs(tree, b)

    def timed(fn: Callable[[], object]) -> Callable[[], float]:
        def run() -> float:
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

        return run

    paired(
        "compare",
        "reprocheck",
        timed(lambda: compare.compare_runs([ea, eb], ToleranceSpec())),
        "torch.equal",
        timed(lambda: all(torch.equal(a[k], b[k]) for k in a)),
        pairs,
        "target <= 2x",
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--only", nargs="*", default=["retinanet", "resnet50", "leaves", "compare"])
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        resnet = Path(tmp) / "resnet50.yaml"
        resnet.write_text(RESNET50_SPEC)
        if "retinanet" in args.only:
            bench_wall("retinanet", ROOT / "examples" / "retinanet.yaml", BARE_RETINANET, args.pairs, rss=True)
        if "resnet50" in args.only:
            bench_wall("resnet50", resnet, BARE_RESNET50, args.pairs)
        if "batch" in args.only:
            bench_batch(resnet, args.pairs)
        if "compile" in args.only:
            (Path(tmp) / "mlp.py").write_text(MLP_FACTORY)
            bench_variant("compile-mlp", Path(tmp), MLP_SPEC, "invariance: {compile: true}\n", args.pairs)
            bench_variant("compile-resnet18", Path(tmp), RESNET18_SPEC, "invariance: {compile: true}\n", args.pairs)
        if "precision" in args.only:
            both = "invariance: {dtype: [bfloat16], autocast: [bfloat16]}\n"
            bench_variant("precision-resnet18", Path(tmp), RESNET18_SPEC, both, args.pairs)
        if "leaves" in args.only:
            bench_leaves(args.pairs)
        if "compare" in args.only:
            bench_compare(args.pairs)


if __name__ == "__main__":
    main()
