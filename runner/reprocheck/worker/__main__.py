"""The worker process, started by reprocheck with the recipe's environment:

    python -m reprocheck.worker JOB.json RUN_DIR                 # one run, in this process
    python -m reprocheck.worker JOB.json --fork TIMEOUT DIR...   # the zygote: torch imported once, a fork per run
    python -m reprocheck.worker --OP REQUEST ANSWER                  # one helper call (protocol.OPS)
    python -m reprocheck.worker --serve                          # helper calls, one JSON line each on stdin

Requests, answers (protocol.Answer) and the lines on the streams are the models of protocol.py.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..protocol import OPS, Call, FingerprintAnswer, FingerprintRequest, RunJob, read_command
from .zygote import answer, die_with_parent, serve_forked


def _helpers() -> dict[str, Callable[[Any], Any]]:
    """op -> its function, from the op's request model (protocol.OPS) to its answer model."""
    from . import fingerprint, names
    from .diagnose import compare_runs, traces
    from .grade import grade
    from .pictures import draw
    from .scaffold import scaffold
    from .verdict import distances, verdict

    def fingerprinted(r: FingerprintRequest) -> FingerprintAnswer:
        if not r.cuda:
            return FingerprintAnswer(fingerprint=fingerprint.collect(cuda=r.cuda))
        from . import cuda_preflight

        facts = cuda_preflight.gather()  # before collect, which initialises CUDA where it can
        return FingerprintAnswer(
            fingerprint=fingerprint.collect(cuda=True),
            cuda=cuda_preflight.verdict_lines(facts),
            cuda_usable=not cuda_preflight.problems(facts),
        )

    return {
        "names": names.name_problems,
        "verdict": verdict,
        "distances": distances,
        "grade": grade,  # the upgrade canary: two stacks' outputs graded
        "fingerprint": fingerprinted,
        "compare": compare_runs,  # diagnose: the check's own comparison of some runs
        "traces": traces,  # diagnose: what two traced runs say
        "scaffold": scaffold,  # init: the input that fits a model
        "draw": draw,  # --pictures: what differs, drawn from the saved outputs
    }


def _call(helpers: dict[str, Callable[[Any], Any]], call: Call) -> Any:
    return helpers[call.op](call.parsed())


def _serve_helpers() -> int:
    """Helper calls while the parent asks (a protocol.Call per line, until an empty line or EOF): torch is imported
    once for all of them. Each answer is written to its file, then an AnsweredEvent is printed."""
    from ..protocol import AnsweredEvent

    helpers = _helpers()
    for line in sys.stdin:
        if not line.strip():
            break
        call = read_command(line)
        if not isinstance(call, Call):
            raise SystemExit(f"--serve answers helper calls, not {call.op}")
        answer(Path(call.answer), functools.partial(_call, helpers, call))
        print(AnsweredEvent(op=call.op).to_json(), flush=True)
    return 0


def main(argv: list[str]) -> int:
    die_with_parent()
    parent = os.environ.pop("REPROCHECK_PARENT_PID", None)  # read once: no model code sees it
    if parent and parent.isdigit() and os.getppid() != int(parent):
        return 1  # reprocheck died before the signal was armed: nobody waits for this run
    if argv[0] == "--serve":
        return _serve_helpers()
    if argv[0].startswith("--"):  # one helper call: --OP REQUEST ANSWER
        op, request, out = argv[0][2:], Path(argv[1]), Path(argv[2])
        answer(out, lambda: _helpers()[op](OPS[op][0].read(request)))
        return 0
    job = RunJob.read(Path(argv[0]))
    if argv[1] == "--fork":
        return serve_forked(job, float(argv[2]), [Path(p) for p in argv[3:]])
    from .boundary import preload, reap, seal
    from .one_run import run_once

    run_dir = Path(argv[1]).absolute()  # before any model code can change the working folder
    run_dir.mkdir(parents=True, exist_ok=True)
    preload()
    seal()
    try:
        return run_once(job, run_dir)
    finally:
        reap()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
