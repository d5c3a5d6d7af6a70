"""Two traces (probe.py) compared position by position, streamed: the first module, in the order modules finish,
whose output differs; the first aten op whose output differs; or the first place where the two sequences part
(another op, another module: a data-dependent branch, another torch version), which is itself the finding. And a
targeted re-run's kept tensors, compared with the check's tolerance."""

from __future__ import annotations

import json
import pickle
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..diagnosis import Divergence, OpFinding
from ..pictures import printable
from ..protocol import CAPTURE_FILE, TRACE_FILE
from ..results import OutputResult
from . import compare
from .probe import MAX_CAPTURE_BYTES, MAX_LINE, MAX_TRACE_BYTES, Unreadable, open_run_file


def _text(x: Any) -> str:
    """A name from the trace, printable: a module path or file name must not write lines into a report."""
    return printable(str(x), 300)


def _record(line: bytes) -> dict[str, Any]:
    record = json.loads(line)
    if not isinstance(record, dict):
        raise Unreadable("a trace line is not a record")
    if "o" in record or "M" in record:
        op = "o" in record
        for key, kind in (
            ("o" if op else "M", str),
            ("c", int),
            ("f", list),
            *((("m", str), ("i", int)) if op else ()),
        ):
            if not isinstance(record.get(key), kind):
                raise Unreadable(f"a trace record lacks {key!r}")
        # Each output's fingerprint: None (not hashed) or [hash, norm, non-finite, shape, dtype]; a module's are
        # [leaf, fingerprint] pairs.
        prints = record["f"] if op else [p[1] if isinstance(p, list) and len(p) == 2 else 0 for p in record["f"]]
        if not all(x is None or (isinstance(x, list) and len(x) == 5) for x in prints):
            raise Unreadable("a trace record's fingerprint is not the tracer's")
    return record


class _Trace:
    """One trace file read record by record, its source lines collected on the way."""

    def __init__(self, run_dir: Path, limit: int = MAX_TRACE_BYTES) -> None:
        self.path, self.limit = run_dir / TRACE_FILE, limit
        self.locations: list[str] = []
        self.stopped = ""

    def records(self) -> Iterator[dict[str, Any]]:
        with open_run_file(self.path, self.limit) as f:
            while line := f.readline(MAX_LINE):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("no line end")
                    record = _record(line)
                except ValueError:  # a run killed mid-line: the trace ends there
                    self.stopped = "the trace ends in a partial line (the run was stopped)"
                    return
                if "L" in record:
                    self.locations.append(_text(record["L"]))
                elif "stop" in record:
                    self.stopped = _text(record["stop"])
                    return
                else:
                    yield record

    def where(self, record: dict[str, Any]) -> str | None:
        i = record.get("l")
        return self.locations[i] if isinstance(i, int) and 0 <= i < len(self.locations) else None


def _said(r: dict[str, Any] | None) -> str:
    if r is None:
        return "nothing (its trace ends)"
    if "o" in r:
        return f"{_text(r['o'])} in {_text(r['m']) or '(the model itself)'}"
    return f"the end of module {_text(r['M']) or '(the model itself)'}'s call {r['c']}"


def _op(r: dict[str, Any], trace: _Trace, position: int, **more: Any) -> OpFinding:
    return OpFinding(
        op=_text(r["o"]),
        module=_text(r["m"]),
        module_call=r["c"],
        index=r["i"],
        position=position,
        location=trace.where(r),
        **more,
    )


def _fingerprints_differ(fa: list[Any], fb: list[Any]) -> str:
    """What the fingerprints of the first differing output say: shape, or norm and non-finite counts (the trace's
    only numbers; a targeted re-run, where there is one, gives the elementwise ones)."""
    for i, (x, y) in enumerate(zip(fa, fb, strict=False)):
        if x == y:
            continue
        if x is None or y is None:
            return f"out{i}: readable in one run only"
        # Every field is the model's to write: each goes out printable, whatever its type.
        if x[3] != y[3] or x[4] != y[4]:
            return f"out{i}: shape {_text(x[3])} {_text(x[4])} vs {_text(y[3])} {_text(y[4])}"
        bad = f", non-finite values {_text(x[2])} vs {_text(y[2])}" if x[2] != y[2] else ""
        return f"out{i}: norm {_g(x[1])} vs {_g(y[1])}{bad} (bits differ)"
    return f"{len(fa)} vs {len(fb)} outputs"


def _g(x: Any) -> str:
    if x is None:
        return "non-finite"
    return f"{x:.9g}" if isinstance(x, int | float) and not isinstance(x, bool) else _text(x)


def _same_step(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if "o" in a:
        return "o" in b and (a["o"], a["m"], a["c"]) == (b["o"], b["m"], b["c"])
    return "M" in b and (a["M"], a["c"]) == (b["M"], b["c"])


def first_divergence(run_a: Path, run_b: Path) -> Divergence | None:
    """None where the traces agree to the end; else what differs first (see the module's docstring)."""
    ta, tb = _Trace(run_a), _Trace(run_b)
    ops = modules = 0
    op: OpFinding | None = None
    ia, ib = ta.records(), tb.records()
    while True:
        a, b = next(ia, None), next(ib, None)
        if a is None and b is None:
            break
        if a is None or b is None or not _same_step(a, b):
            if ta.stopped or tb.stopped:
                break  # one trace was cut: nothing past it is compared
            parted = _parting(a, b, ta, tb, ops)
            return Divergence(
                call=modules, module="", type="", result=None, op=op or parted, found=False, detail=parted.detail
            )
        if "o" in a:
            if op is None and a["f"] != b["f"]:
                op = _op(a, ta, ops, detail=_fingerprints_differ(a["f"], b["f"]))
            ops += 1
            continue
        if a["f"] != b["f"]:
            detail = "" if [x[0] for x in a["f"]] == [x[0] for x in b["f"]] else "its outputs differ in structure"
            return Divergence(
                call=modules,
                module=_text(a["M"]),
                type=_text(a.get("t", "")),
                result=None,
                module_call=a["c"],
                op=op,
                detail=detail,
            )
        modules += 1
    stopped = ta.stopped or tb.stopped
    if op is None and not stopped:
        return None
    return Divergence(call=modules, module="", type="", result=None, op=op, stopped=stopped, found=False)


def _parting(a: dict[str, Any] | None, b: dict[str, Any] | None, ta: _Trace, tb: _Trace, ops: int) -> OpFinding:
    """Where the sequences part: run 1's step there, and what run 2 did instead."""
    detail = f"the runs part here: run 1 ran {_said(a)}, run 2 ran {_said(b)}"
    first, trace = (a, ta) if a is not None and "o" in a else (b, tb)
    if first is not None and "o" in first:
        return _op(first, trace, ops, parted=True, other=_said(b if first is a else a), detail=detail)
    path = _text((a or b or {}).get("M", ""))
    return OpFinding(
        op="",
        module=path,
        module_call=(a or b or {}).get("c", 1),
        index=0,
        position=ops,
        parted=True,
        other=_said(b),
        detail=detail,
    )


def _capture(path: Path) -> dict[str, Any]:
    """A targeted re-run's kept tensors: a regular file, whose stored (uncompressed) entries fit the cap, loaded
    weights-only; the shape the tracer writes, or Unreadable."""
    import torch

    with open_run_file(path, MAX_CAPTURE_BYTES + (1 << 20)) as f:
        try:
            with zipfile.ZipFile(f) as z:
                if sum(i.file_size for i in z.infolist()) > MAX_CAPTURE_BYTES + (1 << 20):
                    raise Unreadable("the capture unpacks to more than the capture cap")
            f.seek(0)
            payload = torch.load(f, map_location="cpu", weights_only=True)
        except (zipfile.BadZipFile, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            raise Unreadable(f"the capture is not the tracer's: {_text(exc)[:120]}") from None
    ok = isinstance(payload, dict) and isinstance(payload.get("tensors"), dict)
    if not ok or not isinstance(payload.get("too_large"), list):
        raise Unreadable("the capture is not the tracer's")
    payload["too_large"] = [k for k in payload["too_large"] if isinstance(k, str) and k.count("|") >= 1]
    return payload


def captured(run_a: Path, run_b: Path, tolerance: Any) -> tuple[OutputResult | None, OutputResult | None, str]:
    """A targeted re-run's two captures compared: (the module's worst differing leaf, the op's, what is missing)."""
    import torch

    a, b = (_capture(d / CAPTURE_FILE) for d in (run_a, run_b))
    notes = [f"{_text(k.split('|')[1])} of the {k.split('|')[0]} was too large to keep" for k in a["too_large"]]
    worst: dict[str, OutputResult | None] = {"module": None, "op": None}
    for key, ta in a["tensors"].items():
        tb = b["tensors"].get(key)
        kind, leaf = key.split("|", 1)
        if kind not in worst or not isinstance(ta, torch.Tensor) or not isinstance(tb, torch.Tensor):
            raise Unreadable("the capture holds something the tracer does not keep")
        if tb is None:
            notes.append(f"the re-run's second run did not reach the {kind}")
            continue
        r = compare.compare_tensors(leaf, ta, tb, compare.tolerance_for(leaf, tolerance))
        seen = worst[kind]
        if seen is None or (seen and not r) or (not r and r.severity() > seen.severity()):
            worst[kind] = r
    if not a["tensors"]:
        notes.append("the targeted re-run did not reach the module or op (the forward took another path)")
    return worst["module"], worst["op"], "; ".join(dict.fromkeys(notes))
