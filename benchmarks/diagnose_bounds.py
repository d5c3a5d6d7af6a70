"""diagnose's memory and disk, on the founding case, run by hand (not part of the test suite):

    .venv/bin/python benchmarks/diagnose_bounds.py [--pairs N]

The case: examples/retinanet.yaml with seeded random init turned off (`recipe: {seed_rngs: false}`: weights null,
the examples' image), so the runs differ and diagnose traces them. Each pair runs, one after the other,
  A  `reprocheck diagnose` on it,
  B  `reprocheck run` on it (the plain check),
each under /usr/bin/time -v (its "Maximum resident set size" is the largest single process of the tree) with its
own empty TMPDIR, whose size `du` reads every 0.2 s (the peak is what the runs' folders held at once). Every pair is
printed; the medians and the ratio A/B follow, against the targets: A's peak RSS <= 2.5 GB, A's disk <= 1 GB.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPROCHECK = str(Path(sys.executable).parent / "reprocheck")
RSS_CAP_GB, DISK_CAP_GB = 2.5, 1.0


def _spec(folder: Path) -> Path:
    text = (ROOT / "examples" / "retinanet.yaml").read_text()
    text = text.replace("data/chelsea.png", str(ROOT / "examples" / "data" / "chelsea.png"))
    text = text.replace("runs: 2\n", "runs: 2\nrecipe: {seed_rngs: false}\n")
    spec = folder / "retinanet-unseeded.yaml"
    spec.write_text(text)
    return spec


def _du(folder: Path) -> int:
    out = subprocess.run(["du", "-sb", str(folder)], capture_output=True, text=True).stdout
    return int(out.split()[0]) if out else 0


def measure(command: list[str], work: Path) -> tuple[float, float, float, int]:
    """(peak RSS in GB, peak temporary disk in GB, seconds, exit code) of one command."""
    tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=work))
    peak, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _du(tmp))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    t = time.perf_counter()
    r = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmp)}
    )
    seconds = time.perf_counter() - t
    done.set()
    watcher.join()
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    shutil.rmtree(tmp, ignore_errors=True)
    return (int(rss.group(1)) / 2**20 if rss else float("nan")), peak[0] / 2**30, seconds, r.returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reprocheck-bench-") as folder:
        work = Path(folder)
        spec = _spec(work)
        a_cmd = [REPROCHECK, "diagnose", str(spec)]
        b_cmd = [REPROCHECK, "run", "-q", str(spec)]
        rows = []
        for i in range(args.pairs):
            a, b = measure(a_cmd, work), measure(b_cmd, work)
            rows.append((a, b))
            print(
                f"pair {i + 1}: diagnose {a[0]:.2f} GB RSS, {a[1]:.3f} GB disk, {a[2]:.0f} s (exit {a[3]}) | "
                f"run {b[0]:.2f} GB RSS, {b[1]:.3f} GB disk, {b[2]:.0f} s (exit {b[3]}) | "
                f"RSS ratio {a[0] / b[0]:.2f}x",
                flush=True,
            )
    rss = statistics.median(a[0] for a, _ in rows)
    disk = statistics.median(a[1] for a, _ in rows)
    ratio = statistics.median(a[0] / b[0] for a, b in rows)
    print(
        f"diagnose: median peak RSS {rss:.2f} GB (target <= {RSS_CAP_GB} GB), largest {max(a[0] for a, _ in rows):.2f}"
    )
    print(
        f"diagnose: median peak disk {disk:.3f} GB (target <= {DISK_CAP_GB} GB), "
        f"largest {max(a[1] for a, _ in rows):.3f}"
    )
    print(f"diagnose / plain run, peak RSS: median {ratio:.2f}x over {len(rows)} pairs")
    exits = {a[3] for a, _ in rows}
    return 0 if rss <= RSS_CAP_GB and disk <= DISK_CAP_GB and exits == {1} else 1


if __name__ == "__main__":
    sys.exit(main())
