"""diagnose's probe, inside a traced run. Memory and disk stay bounded: nothing is kept but fingerprints, streamed
to a file as the forward runs, in a format of reprocheck's own (the same on every torch version):

  * a fingerprint of every module's output, in the order modules finish, and (with `ops`) of every aten op's
    output, each with the module it ran in, that module's call number and the op's place in that call, and the
    user's source line that called it;
  * which modules ran in training mode, and a digest of every parameter and buffer (random init or loaded);
  * in a targeted re-run (`capture`), the tensors of one module call and one op, nothing else.

A fingerprint is an exact, position-sensitive hash of the bytes (a permutation changes it) with the norm, the
count of non-finite values, the shape and the dtype. The ops come from a dispatch mode of our own rather than
torch's DebugMode: its hash is an XOR-sum that a permutation passes, and older stacks lack it, so both sides of an
upgrade record the same thing."""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from ..files import NotRegular, open_regular
from ..protocol import CAPTURE_FILE, META_FILE, TRACE_FILE, TraceJob

MAX_TRACE_MB = 256  # per traced run, unless the job says otherwise
MAX_CAPTURE_BYTES = 512 * 2**20
# Their outputs are uninitialised memory: different in every run, and meaningless.
UNINITIALISED = frozenset(
    {"aten::empty", "aten::empty_like", "aten::empty_strided", "aten::new_empty", "aten::new_empty_strided"}
    | {"aten::empty_permuted", "aten::resize_", "aten::set_", "aten::_empty_affine_quantized"}
)
_OUR_CODE = (
    str(Path(__file__).resolve().parents[1]) + os.sep,
    str(Path(sysconfig.get_paths()["stdlib"]).resolve()) + os.sep,
)


def fingerprint(t: Any) -> list[Any] | None:
    """[hash, norm, non-finite count, shape, dtype] of a tensor; None where its bytes cannot be read (a sparse,
    quantized or meta tensor, a subclass without storage)."""
    import torch

    try:
        if t.layout is not torch.strided or t.is_quantized or t.device.type == "meta":
            return None
        data = t.detach()
        if data.is_complex():
            data = torch.view_as_real(data)
        raw = data.cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        digest = hashlib.blake2b(raw.data, digest_size=8).hexdigest()
        norm, bad = _norm(data)
        return [digest, norm, bad, list(t.shape), str(t.dtype).removeprefix("torch.")]
    except (RuntimeError, TypeError, ValueError, AttributeError, NotImplementedError):
        return None


def _norm(data: Any) -> tuple[float | None, int]:
    import torch

    if data.numel() == 0:
        return 0.0, 0
    if not data.is_floating_point():
        return float(torch.linalg.vector_norm(data.to(torch.float64))), 0
    finite = torch.isfinite(data)
    bad = int(finite.numel() - finite.sum())
    if bad:
        data = torch.where(finite, data, torch.zeros((), dtype=data.dtype, device=data.device))
    value = float(torch.linalg.vector_norm(data, dtype=torch.float32 if data.element_size() < 4 else None))
    return (value if math.isfinite(value) else None), bad


@dataclass
class _Frame:
    """One module call running: its path, which call of it this is, the ops it has run so far."""

    path: str
    call: int
    ops: int = 0


class _Sink:
    """The trace file, written as the forward runs, up to a cap: past it, one last line says why it stopped."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.file: TextIO = path.open("w", encoding="utf-8")
        self.max_bytes, self.size, self.stopped = max_bytes, 0, False
        self.locations: dict[str, int] = {}

    def write(self, record: dict[str, Any]) -> None:
        if self.stopped:
            return
        line = json.dumps(record, separators=(",", ":"), allow_nan=False) + "\n"
        if self.size + len(line) > self.max_bytes:
            mb = self.max_bytes // 2**20
            self.stop(f"the trace reached its cap of {mb} MB (diagnose --max-trace-mb)")
            return
        self.file.write(line)
        self.size += len(line)

    def location(self, where: str) -> int:
        index = self.locations.get(where)
        if index is None:
            index = self.locations[where] = len(self.locations)
            self.write({"L": where})
        return index

    def stop(self, why: str) -> None:
        if not self.stopped:
            self.file.write(json.dumps({"stop": why}) + "\n")
            self.stopped = True

    def close(self) -> None:
        self.file.close()


class Tracer:
    """Hooks on every module (their output's fingerprints, the module stack the ops run in) and, while recording,
    a dispatch mode for the ops. `recording()` wraps the forward."""

    def __init__(self, model: Any, job: TraceJob, run_dir: Path) -> None:
        import torch

        self.job, self.run_dir = job, run_dir
        self.training: dict[str, str] = {}
        self.params: dict[str, str] = {}
        self.stack: list[_Frame] = []  # the module calls running now, innermost last
        self.calls: dict[str, int] = {}
        self.outside = _Frame("", 1)  # ops outside any module's call (a model that is a plain function)
        self.ops = 0  # ops seen in the forward, in order: a capture names one by this index
        self.busy = False  # our own tensor reads, which must not count as the model's ops
        self.captured: dict[str, Any] = {}
        self.capture_bytes = 0
        self.sink = None if job.capture is not None else _Sink(run_dir / TRACE_FILE, job.max_mb * 2**20)
        if isinstance(model, torch.nn.Module):
            for name, t in [*model.named_parameters(), *model.named_buffers()]:
                data = t.detach().cpu().contiguous().reshape(-1)
                self.params[name] = hashlib.sha256(data.view(torch.uint8).numpy().tobytes()).hexdigest()[:16]
            for path, module in model.named_modules():
                try:
                    module.register_forward_pre_hook(self._enter(path))
                    # also when its forward raises (and the parent catches it): the op stack stays true
                    module.register_forward_hook(self._leave(path), always_call=True)
                except (RuntimeError, AttributeError):
                    pass  # scripted modules may refuse hooks

    def _enter(self, path: str) -> Any:
        def hook(module: Any, args: Any) -> None:
            n = self.calls[path] = self.calls.get(path, 0) + 1
            self.stack.append(_Frame(path, n))

        return hook

    def _leave(self, path: str) -> Any:
        def hook(module: Any, args: Any, output: Any) -> None:
            top = (
                self.stack.pop()
                if self.stack and self.stack[-1].path == path
                else _Frame(path, self.calls.get(path, 1))
            )
            if getattr(module, "training", False):
                self.training[path] = type(module).__name__
            self.busy = True
            try:
                self._module_output(path, type(module).__name__, top.call, output)
            finally:
                self.busy = False

        return hook

    def _module_output(self, path: str, kind: str, call: int, output: Any) -> None:
        from .outputs import UnsupportedOutput, flatten

        try:
            leaves = flatten(output).tensors
        except UnsupportedOutput:
            leaves = {}
        capture = self.job.capture
        if capture is not None:
            if capture.module == path and capture.module_call == call:
                for leaf, t in leaves.items():
                    self._keep(f"module|{leaf}", t)
            return
        assert self.sink is not None
        self.sink.write({"M": path, "t": kind, "c": call, "f": [[leaf, fingerprint(t)] for leaf, t in leaves.items()]})

    def op(self, func: Any, outputs: list[Any]) -> None:
        """One aten op the model ran (from the dispatch mode), with its output tensors."""
        if self.busy:
            return
        index, self.ops = self.ops, self.ops + 1
        frame = self.stack[-1] if self.stack else self.outside
        frame.ops += 1
        capture = self.job.capture
        if capture is not None:
            if capture.op == index:
                for i, t in enumerate(outputs):
                    self._keep(f"op|out{i}", t)
            return
        assert self.sink is not None
        if self.sink.stopped:
            return
        name = func.name().split(".")[0]
        self.busy = True
        try:
            prints = [None if name in UNINITIALISED else fingerprint(t) for t in outputs]
        finally:
            self.busy = False
        where = _caller()
        record = {"o": func.name(), "m": frame.path, "c": frame.call, "i": frame.ops, "f": prints}
        if where is not None:
            record["l"] = self.sink.location(where)
        self.sink.write(record)

    def _keep(self, key: str, t: Any) -> None:
        size = t.numel() * t.element_size()
        if self.capture_bytes + size > MAX_CAPTURE_BYTES:
            self.captured[f"{key}|too-large"] = None
            return
        self.capture_bytes += size
        self.busy = True
        try:
            self.captured[key] = t.detach().cpu().clone()
        finally:
            self.busy = False

    def recording(self) -> Any:
        """The dispatch mode around the forward, where the job traces ops (or counts them for a capture)."""
        import contextlib

        if not (self.job.ops or self.job.capture is not None):
            return contextlib.nullcontext()
        from .op_mode import OpMode

        return OpMode(self)

    def save(self) -> None:
        import torch

        from ..files import atomic_write, atomic_write_text

        if self.sink is not None:
            self.sink.close()
        meta = {"training": self.training, "params": self.params}
        atomic_write_text(self.run_dir / META_FILE, json.dumps(meta))
        if self.job.capture is not None:
            kept = {k: v for k, v in self.captured.items() if v is not None}
            payload = {"tensors": kept, "too_large": sorted(k for k, v in self.captured.items() if v is None)}
            atomic_write(self.run_dir / CAPTURE_FILE, lambda tmp: torch.save(payload, tmp))


class Unreadable(Exception):
    """A file the traced run left is not what the tracer writes (the model's code shares its process)."""


MAX_LINE = 1 << 20  # the tracer's own lines are far shorter
MAX_TRACE_BYTES = 1 << 40


def open_run_file(path: Path, limit: int) -> Any:
    """A file the traced run wrote, opened only as files.open_regular allows; else Unreadable."""
    try:
        return open_regular(path, limit)
    except NotRegular as exc:
        raise Unreadable(str(exc)) from None


def read_meta(run_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """A traced run's training modules and parameter digests, read back; empty where the file is not the tracer's
    (the model shares the run's process), so nothing is flagged from it."""
    try:
        with open_run_file(run_dir / META_FILE, 64 << 20) as f:
            meta = json.loads(f.read())
        training, params = meta["training"], meta["params"]
    except (Unreadable, ValueError, TypeError, KeyError):
        return {}, {}
    if not all(isinstance(x, dict) and all(isinstance(v, str) for v in x.values()) for x in (training, params)):
        return {}, {}
    return {str(k): v for k, v in training.items()}, {str(k): v for k, v in params.items()}


_SKIP: dict[Any, bool] = {}
_PACKAGES = (f"{os.sep}site-packages{os.sep}", f"{os.sep}dist-packages{os.sep}")


def _shown(name: str) -> str:
    """A library's file from its package down (torchvision/models/...); the model's own as it was imported."""
    for marker in _PACKAGES:
        if marker in name:
            return name.split(marker, 1)[1]
    return name


def _caller() -> str | None:
    """The first frame outside torch, reprocheck and the standard library: the model code's line that ran the op."""
    import torch

    roots = (str(Path(torch.__file__).resolve().parent) + os.sep, *_OUR_CODE)
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        skip = _SKIP.get(code)
        if skip is None:
            name = code.co_filename
            skip = _SKIP[code] = name.startswith("<") or os.path.realpath(name).startswith(roots)
        if not skip:
            return f"{_shown(code.co_filename)}:{frame.f_lineno}"
        frame = frame.f_back  # type: ignore[assignment]
    return None
