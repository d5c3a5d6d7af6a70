"""Checks split into jobs, for `matrix --max-jobs N` and `run --shard K/N` alike. One identity, `SPEC:NAME` (SPEC
the spec file's path as named, or as found under a folder of specs), and one order (the spec files as loaded, then
each file's checks in order). One grouping: greedy longest-processing-time, deterministic. The costs come from an
earlier JSON report (`--timings`): untrusted input (in a pull request it may be anyone's), read bounded, every
shape checked, nothing of it echoed; it can only move checks between jobs, never add, drop or repeat one."""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import re
import stat
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...spec import LoadedCheck
from ..exitcodes import UsageError
from .options import Options

MAX_JOBS = 256  # GitHub refuses a matrix of more jobs
# Parsed, a file of this size may take some hundreds of MiB (millions of tiny JSON values); a report of a few
# thousand checks fits, and a larger one can be cut to what is read (TRIM).
MAX_TIMINGS_BYTES = 16 * 1024 * 1024
TRIM = "jq '{checks: [.checks[] | {file, name, duration_s}]}'"
MAX_SECONDS = 1e9  # a duration above this is not one
_COUNT = re.compile(r"[0-9]{1,9}")
_SHARD = re.compile(r"([0-9]{1,9})/([0-9]{1,9})")


def add_matrix_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-jobs",
        metavar="N",
        help=f"at most N jobs (default {MAX_JOBS}, GitHub's limit): with more checks than that, each job runs "
        "several (listed in `checks`, and in `check` joined with commas), balanced by cost",
    )
    _add_timings(p, "jobs")


def add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--shard",
        metavar="K/N",
        help="run only the K-th of N balanced shards (1 <= K <= N; `matrix --max-jobs N`'s grouping): shards 1..N "
        "together run every selected check once. A shard left without a check (N above the number of checks) "
        "says so and exits 0, writing no report",
    )
    _add_timings(p, "shards")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="list the checks this would run, one `SPEC:NAME<TAB>SPEC:LINE<TAB>RUNS runs on DEVICE` line each "
        "(after validation, --check and --shard), and exit 0: nothing runs, no file is written, no torch needed",
    )


def _add_timings(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--timings",
        type=Path,
        metavar="REPORT",
        help=f"balance the {what} by each check's duration in an earlier `run --report` file (a check it lacks "
        "costs the median of the others); without it every check costs the same",
    )


def identity(lc: LoadedCheck) -> str:
    """`SPEC:NAME`, what `--check` takes to name this one check."""
    return f"{lc.file}:{lc.name}"


def max_jobs(text: str | None) -> int:
    if text is None:
        return MAX_JOBS
    if not _COUNT.fullmatch(text) or int(text) < 1:
        raise UsageError(f"--max-jobs must be a whole number of at least 1 in the digits 0-9, got {text!r}")
    return int(text)


def shard(text: str) -> tuple[int, int]:
    """`K/N` -> (K, N), 1 <= K <= N."""
    m = _SHARD.fullmatch(text)
    if not m or not 1 <= int(m[1]) <= int(m[2]):
        raise UsageError(f"--shard must be K/N, whole numbers with 1 <= K <= N (e.g. 2/4), got {text!r}")
    return int(m[1]), int(m[2])


def group(costs: Sequence[float], jobs: int) -> list[list[int]]:
    """The indices of `costs` (the canonical order) in at most `jobs` groups, none empty: the costliest first
    (ties: the earlier first), each to the job with the least cost so far (ties: fewer checks, then the earlier
    job); each group in canonical order, the groups ordered by their first index."""
    count = min(jobs, len(costs))
    heap = [(0.0, 0, j) for j in range(count)]
    members: list[list[int]] = [[] for _ in range(count)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, size, j = heapq.heappop(heap)
        members[j].append(i)
        heapq.heappush(heap, (load + costs[i], size + 1, j))
    return sorted((sorted(m) for m in members), key=lambda m: m[0])


@dataclass
class Timings:
    """Seconds per check of an earlier report: by (absolute spec path, name), and by name (path, seconds)."""

    by_place: dict[tuple[str, str], float] = field(default_factory=dict)
    by_name: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def seconds(self, lc: LoadedCheck) -> float | None:
        for place in (os.path.abspath(lc.file), os.path.realpath(lc.file)):
            if (place, lc.name) in self.by_place:
                return self.by_place[(place, lc.name)]
        # Written elsewhere (another checkout, the container): the same relative spec path at its end.
        given = os.path.normpath(lc.file)
        if os.path.isabs(given):
            return None
        return next((s for f, s in self.by_name.get(lc.name, []) if f.endswith(os.sep + given)), None)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number")


_KEPT = frozenset({"checks", "file", "name", "duration_s"})
_NOTHING: dict[str, Any] = {}  # shared, never changed


def _kept(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Each JSON object as parsed: only the keys read here, so that the rest is dropped as soon as it is parsed (a
    file of millions of tiny objects would otherwise take gigabytes)."""
    kept = {k: v for k, v in pairs if k in _KEPT}
    return kept or _NOTHING


def _read_bounded(path: Path) -> bytes:
    """A regular file's bytes, at most MAX_TIMINGS_BYTES: never a FIFO (it would block) or a device (endless)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UsageError(f"--timings {path}: not a regular file (a FIFO, a device or a folder)")
            data = f.read(MAX_TIMINGS_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"--timings {path}: cannot read it ({exc.strerror or exc})") from None
    if len(data) > MAX_TIMINGS_BYTES:
        limit = MAX_TIMINGS_BYTES // 1024 // 1024
        raise UsageError(f"--timings {path}: larger than {limit} MiB; keep only what it reads: {TRIM} REPORT")
    return data


def _duration(entry: Any) -> tuple[str, str, float] | None:
    if not isinstance(entry, dict):
        return None
    file, name, seconds = entry.get("file"), entry.get("name"), entry.get("duration_s")
    if not (isinstance(file, str) and isinstance(name, str)) or isinstance(seconds, bool):
        return None
    if not isinstance(seconds, (int, float)) or not (math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS):
        return None
    return file, name, float(seconds)


def read_timings(path: Path) -> Timings:
    """The checks' durations of a JSON report (`run --report`); any other file is a UsageError naming --timings."""
    data = _read_bounded(path)
    what = "is not a reprocheck JSON report (`reprocheck run --report FILE`)"
    try:
        report = json.loads(data, parse_constant=_no_constant, object_pairs_hook=_kept)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, NaN, nested past the parser's stack
        raise UsageError(f"--timings {path}: {what}: not valid JSON") from None
    entries = report.get("checks") if isinstance(report, dict) else None
    if not isinstance(entries, list):
        raise UsageError(f"--timings {path}: {what}: no list of checks")
    timings = Timings()
    for i, entry in enumerate(entries):
        found = _duration(entry)
        if found is None:
            raise UsageError(f"--timings {path}: {what}: checks[{i}] has no file, name and duration_s in seconds")
        file, name, seconds = found
        place = os.path.abspath(file)
        timings.by_place[(place, name)] = max(seconds, timings.by_place.get((place, name), 0.0))
        timings.by_name.setdefault(name, []).append((place, seconds))
    return timings


def costs(checks: Sequence[LoadedCheck], timings: Path | None) -> list[float]:
    """Each check's cost: its duration in the --timings report (a check it lacks: their median, or 1.0), or 1.0."""
    if timings is None:
        return [1.0] * len(checks)
    known = read_timings(timings)
    found = [known.seconds(lc) for lc in checks]
    have = [s for s in found if s is not None]
    fill = statistics.median(have) if have else 1.0
    return [fill if s is None else s for s in found]


def _listable(ids: list[str]) -> None:
    """A grouped entry names its checks in one comma-separated `check` (the Action splits on commas and newlines,
    and trims): an identity that would split or change there is refused, not silently run as another."""
    for i in ids:
        if "," in i or i != i.strip():
            raise UsageError(
                f"matrix: the check {i!r} cannot be listed in a grouped job: its spec path has a comma or begins or "
                "ends with a space, which the Action's checks input splits or trims; rename the spec file"
            )


def matrix_include(checks: Sequence[LoadedCheck], args: Options) -> list[dict[str, object]]:
    """One entry per job. One check: check (its name), spec, line, device, runs as they are. Several: check is
    their identities joined with commas (what the Action's `checks:` input takes), spec the spec files one per line
    (its `spec:` input), line the first's, device and runs the shared value or null (an override would change the
    others). Every entry: name (for the job's title) and checks (the identities)."""
    jobs = max_jobs(args.max_jobs)
    include: list[dict[str, object]] = []
    for members in group(costs(checks, args.timings), jobs):
        mine = [checks[i] for i in members]
        first, ids = mine[0], [identity(lc) for lc in mine]
        if len(mine) > 1:
            _listable(ids)
        devices = {lc.check.device for lc in mine}
        runs = {lc.check.runs for lc in mine}
        include.append(
            {
                "name": first.name if len(mine) == 1 else f"{first.name} +{len(mine) - 1} more",
                "check": first.name if len(mine) == 1 else ",".join(ids),
                "spec": "\n".join(dict.fromkeys(str(lc.file) for lc in mine)),
                "line": first.line,
                "device": devices.pop() if len(devices) == 1 else None,
                "runs": runs.pop() if len(runs) == 1 else None,
                "checks": ids,
            }
        )
    return include


def take_shard(checks: list[LoadedCheck], args: Options) -> list[LoadedCheck]:
    """--shard K/N: the K-th of `group`'s N groups (none when there are fewer checks than N)."""
    if args.shard is None:
        if args.timings is not None:
            raise UsageError("--timings needs --shard K/N (it balances the shards)")
        return checks
    k, n = shard(args.shard)
    groups = group(costs(checks, args.timings), n)
    return [checks[i] for i in groups[k - 1]] if k <= len(groups) else []


def list_only(args: Options, checks: Sequence[LoadedCheck]) -> int:
    """--dry-run, or a shard without a check: what would run, on stdout; nothing run, no file written."""
    for lc in checks:
        print(f"{identity(lc)}\t{lc.file}:{lc.line}\t{lc.check.runs} runs on {lc.check.device}")
    where = f" in shard {args.shard}" if args.shard else ""
    if not checks:
        print(f"reprocheck: no check{where} (more shards than checks): nothing to run", file=sys.stderr)
    else:
        plural = "" if len(checks) == 1 else "s"
        print(f"reprocheck: --dry-run: {len(checks)} check{plural}{where}, none run", file=sys.stderr)
    if any((args.report, args.summary, args.junit, args.keep, args.baseline)):
        print("reprocheck: no report, summary, JUnit, kept run or golden written", file=sys.stderr)
    return 0
