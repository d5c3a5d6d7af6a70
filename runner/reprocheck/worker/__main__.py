"""The worker process, started by reprocheck with the recipe's environment:

    python -m reprocheck.worker JOB.json RUN_DIR                 # one run, in this process
    python -m reprocheck.worker JOB.json --fork TIMEOUT DIR...   # the zygote: torch imported once, a fork per run
    python -m reprocheck.worker --names|--verdict|--distances|--grade|--fingerprint REQUEST ANSWER  # one helper call
    python -m reprocheck.worker --serve                          # helper calls, one JSON line each on stdin

An answer file holds {"ok": true, "value": {"answer": ...}} or {"ok": false, "error": ...} (serve.answer).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .serve import answer, die_with_parent, serve_forked


def _helpers() -> dict[str, Callable[[Any], Any]]:
    from . import fingerprint, models
    from .diagnose import compare_runs, traces
    from .grade import grade
    from .verdict import distances, verdict

    return {
        "names": models.name_problems,
        "verdict": verdict,
        "distances": distances,
        "grade": grade,  # the upgrade canary: two stacks' outputs graded
        "fingerprint": lambda r: fingerprint.collect(cuda=r.get("cuda")),
        "compare": compare_runs,  # diagnose: the check's own comparison of some runs
        "traces": traces,  # diagnose: what two traced runs say
    }


def _serve_helpers() -> int:
    """Helper calls while the parent asks ({"op", "request", "answer"} per line, until an empty line or EOF): torch is
    imported once for all of them. Each answer is written to its file, then {"event": "answered"} is printed."""
    helpers = _helpers()
    for line in sys.stdin:
        if not line.strip():
            break
        message = json.loads(line)
        fn = helpers[message["op"]]
        answer(Path(message["answer"]), lambda r, fn=fn: {"answer": fn(r)}, message["request"])
        print(json.dumps({"event": "answered"}), flush=True)
    return 0


def main(argv: list[str]) -> int:
    die_with_parent()
    parent = os.environ.get("REPROCHECK_PARENT_PID")
    if parent and parent.isdigit() and os.getppid() != int(parent):
        return 1  # reprocheck died before the signal was armed: nobody waits for this run
    if argv[0] == "--serve":
        return _serve_helpers()
    if argv[0].startswith("--"):
        fn = _helpers()[argv[0][2:]]
        answer(Path(argv[2]), lambda r: {"answer": fn(r)}, json.loads(Path(argv[1]).read_text()))
        return 0
    job = json.loads(Path(argv[0]).read_text())
    if argv[1] == "--fork":
        return serve_forked(job, float(argv[2]), [Path(p) for p in argv[3:]])
    from .one_run import run_once

    run_dir = Path(argv[1])
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_once(job, run_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
