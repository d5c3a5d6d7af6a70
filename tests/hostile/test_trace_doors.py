"""diagnose's traced runs share their process with the model: the files they leave (trace, its meta, a targeted
re-run's capture) are evidence, never trusted. A model that replaces them with a FIFO, a link out of the workspace,
a record of another shape or a compressed bomb gets a line saying the trace is unreadable, never a hang, an internal
error, an unpickled object or memory beyond the cap; and the verdict still comes from the outputs (exit 1). Names
the model chooses (module paths) reach the console printable."""

import json

import pytest

from helpers import reprocheck, write_spec

MODEL = """
import os
import zipfile
from pathlib import Path

import torch
from torch import nn


def _tamper(action):
    from reprocheck.worker import probe

    save = probe.Tracer.save

    def tampered(self):
        save(self)
        action(Path(self.run_dir))

    probe.Tracer.save = tampered


class Noisy(nn.Module):
    def forward(self, x):
        g = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        return x + 1e-3 * torch.rand(x.shape, generator=g)


class Hostile(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.a, self.b = nn.Linear(8, 8), nn.Linear(8, 8)
        self.add_module("evil\\n  reproducible under the check's recipe\\x1b[32m OK\\x1b[0m", Noisy())
        self.kind = kind

    def forward(self, x):
        _tamper(ACTIONS[self.kind])
        return self.b(getattr(self, "evil\\n  reproducible under the check's recipe\\x1b[32m OK\\x1b[0m")(self.a(x)))


def _replace(name, make):
    def act(folder):
        path = folder / name
        if path.exists() or path.is_symlink():
            path.unlink()
            make(path)
    return act


def _bomb(path):
    plain = path.with_suffix(".plain")
    torch.save({"tensors": {"module|output": torch.zeros(140 * 2**20)}, "too_large": []}, plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            out.writestr(info.filename, src.read(info.filename))
    plain.unlink()


ACTIONS = {
    "none": lambda folder: None,
    "fifo": _replace("trace.jsonl", os.mkfifo),
    "record": _replace("trace.jsonl", lambda p: p.write_text('1\\n{"o": "aten::add"}\\n')),
    "meta": _replace("trace-meta.json", lambda p: p.write_text("[]")),
    "capture-link": _replace("capture.pt", lambda p: p.symlink_to("/etc/passwd")),
    "capture-bomb": _replace("capture.pt", _bomb),
}


def build(kind):
    return Hostile(kind)
"""


def diagnose(tmp_path, kind):
    (tmp_path / "hostile_trace.py").write_text(MODEL)
    spec = write_spec(
        tmp_path,
        "version: 1\nmodel:\n  factory: 'hostile_trace:build'\n"
        f"  kwargs: {{kind: {kind}}}\ninput: {{random: {{shape: [4, 8]}}}}\n",
    )
    r = reprocheck("diagnose", str(spec), "--report", str(tmp_path / "d.json"), timeout=300)
    return r, json.loads((tmp_path / "d.json").read_text())["checks"][0]


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("fifo", "a trace is unreadable (trace.jsonl is not a regular file"),
        ("record", "a trace is unreadable (a trace line is not a record)"),
        ("capture-link", "the targeted re-run's capture is unreadable (capture.pt: "),
        ("capture-bomb", "the targeted re-run's capture is unreadable (the capture unpacks to more than"),
    ],
)
def test_a_model_that_replaces_its_trace_files_gets_a_line_and_the_verdict_stands(tmp_path, kind, said):
    r, d = diagnose(tmp_path, kind)
    assert r.code == 1, r  # the outputs differ: that verdict never came from the trace
    assert d["reproducible"] is False and said in r.out, r.out
    assert "internal error" not in r.out + r.err


def test_a_forged_meta_file_flags_nothing_and_names_printable_modules(tmp_path):
    r, d = diagnose(tmp_path, "meta")
    assert r.code == 1, r
    assert d["seed_sensitivity"]["random_parameters"] == [] and d["seed_sensitivity"]["training_modules"] == []
    # The module's name carries a newline and colour codes: the report shows them as '?', writing no line of its own.
    assert "\x1b" not in r.out + r.err
    assert "\n  reproducible under the check's recipe" not in r.out
    assert "module evil?  reproducible under the check's recipe?[32m OK?[0m" in r.out


THREADED = (
    MODEL
    + """

class Threaded(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        if self.kind == "refuse" and self._forward_hooks:  # the tracer hooks every module
            raise RuntimeError("planted: this model refuses to be traced")
        if self.kind != "refuse":
            _tamper(ACTIONS[self.kind])
        return x * torch.get_num_threads()


def threaded(kind):
    return Threaded(kind)
"""
)


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("refuse", "the op that differs is not named: the traced run at the check's setting failed ("),
        ("fifo", "tracing stopped: a trace is unreadable (trace.jsonl is not a regular file"),
    ],
)
def test_a_variant_traced_down_to_the_op_keeps_its_verdict_whatever_the_model_does_to_the_trace(tmp_path, kind, said):
    (tmp_path / "hostile_trace.py").write_text(THREADED)
    spec = write_spec(
        tmp_path,
        "version: 1\nmodel:\n  factory: 'hostile_trace:threaded'\n"
        f"  kwargs: {{kind: {kind}}}\ninput: {{random: {{shape: [4, 8]}}}}\n"
        "recipe: {threads: 2}\ninvariance: {threads: [1]}\n",
    )
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"), timeout=300)
    assert r.code == 1, r  # the variant's outputs differ: that verdict never came from the trace
    (variant,) = json.loads((tmp_path / "r.json").read_text())["checks"][0]["invariance"]
    assert variant["status"] == "fail" and said in r.out, r.out
    assert "internal error" not in r.out + r.err and not list(tmp_path.rglob("trace.jsonl"))
