"""Benchmarks, run by hand (not part of the test suite):

    .venv/bin/python benchmarks/bench.py [--repeat N]

Prints, measured side by side in this one launch:
  (a) wall time of `reprocheck run examples/retinanet.yaml` / a bare script that applies the same
      seeds, builds the same model once and runs the same inference twice in one process (target <= 1.15x);
  (b) comparing two output sets of 1 GiB in total with reprocheck's comparison / torch.equal on the
      same tensors (target <= 2x);
  (c) peak RSS of the largest process of (a) / the bare script (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "runner"))

BARE = r"""
import random, numpy, torch, torchvision
from torchvision.io import decode_image, read_file, ImageReadMode
from torchvision.transforms import v2
seed = 3407
random.seed(seed); numpy.random.seed(seed); torch.manual_seed(seed)
torch.backends.cudnn.deterministic = True; torch.backends.cudnn.benchmark = False
torch.use_deterministic_algorithms(True)
model = torchvision.models.get_model("retinanet_resnet50_fpn_v2", weights=None, weights_backbone=None,
                                     score_thresh=0.01, detections_per_img=100).eval()
img = v2.ToDtype(torch.float32, scale=True)(decode_image(read_file("examples/data/chelsea.png"), mode=ImageReadMode.RGB))
with torch.inference_mode():
    a = model([img]); b = model([img])
assert all(torch.equal(a[0][k], b[0][k]) for k in a[0])
"""

# Runs a command as a child and prints its wall time and the peak RSS of its largest descendant.
MEASURE = r"""
import resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)
"""


def measure(cmd: list[str]) -> tuple[float, int]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    wall, rss, rc = out.split()
    if rc != "0":
        raise SystemExit(f"command failed with exit {rc}: {' '.join(cmd)}")
    return float(wall), int(rss)


def bench_run(repeat: int) -> None:
    ours_cmd = [sys.executable, "-m", "reprocheck", "run", "-q", "examples/retinanet.yaml"]
    bare_cmd = [sys.executable, "-c", BARE]
    ours, bare = [], []
    for _ in range(repeat):  # interleaved, so drift on the machine hits both alike
        bare.append(measure(bare_cmd))
        ours.append(measure(ours_cmd))
    ow, bw = statistics.median(w for w, _ in ours), statistics.median(w for w, _ in bare)
    orss, brss = max(r for _, r in ours), max(r for _, r in bare)
    print(
        f"(a) wall time   reprocheck run {ow:6.2f}s   bare script {bw:6.2f}s   ratio {ow / bw:.2f}x  (target <= 1.15x; median of {repeat})"
    )
    print(
        f"(c) peak RSS    reprocheck run {orss / 1024:6.0f} MiB bare script {brss / 1024:6.0f} MiB ratio {orss / brss:.2f}x  (target <= 1.2x)"
    )


def bench_compare(repeat: int) -> None:
    import torch

    from reprocheck import compare
    from reprocheck.outputs import Outputs
    from reprocheck.spec import ToleranceSpec

    n = 16  # tensors per set; 2 sets x 16 x 32 MiB = 1 GiB
    g = torch.Generator().manual_seed(0)
    a = {f"out{i}": torch.randn(8 * 2**20, generator=g) for i in range(n)}
    b = {k: v.clone() for k, v in a.items()}
    tree = {"t": "dict", "type": "dict", "items": [[k, {"t": "tensor", "path": k}] for k in a]}
    ea, eb = Outputs(tree, a), Outputs(tree, b)

    def timed(fn) -> float:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    t_equal = timed(lambda: all(torch.equal(a[k], b[k]) for k in a))
    t_ours = timed(lambda: compare.compare_runs([ea, eb], ToleranceSpec()))
    print(
        f"(b) compare 1 GiB, identical   reprocheck {t_ours * 1000:7.1f} ms   torch.equal {t_equal * 1000:7.1f} ms   ratio {t_ours / t_equal:.2f}x  (target <= 2x)"
    )
    for v in b.values():
        v[::1000] += 1e-3
    t_tol = timed(lambda: compare.compare_runs([ea, eb], ToleranceSpec(atol=1e-4)))
    t_close = timed(lambda: all(torch.allclose(a[k], b[k], atol=1e-4, rtol=0) for k in a))
    print(
        f"    compare 1 GiB, differing   reprocheck {t_tol * 1000:7.1f} ms   torch.allclose {t_close * 1000:7.1f} ms   ratio {t_tol / t_close:.2f}x  (with full stats; no target)"
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    bench_compare(args.repeat)
    bench_run(args.repeat)


if __name__ == "__main__":
    main()
