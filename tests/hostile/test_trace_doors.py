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


PLANTING = """
import os
import sys
from pathlib import Path

import torch
from torch import nn


def _run():
    # The worker's run folder and tracer, as a hostile model finds them: up its own call stack.
    f = sys._getframe(1)
    while f is not None:
        if f.f_code.co_name == "run_once" and "run_dir" in f.f_locals:
            return Path(f.f_locals["run_dir"]), f.f_locals.get("tracer")
        f = f.f_back
    return None, None


class Planting(nn.Module):
    def __init__(self, kind, outside):
        super().__init__()
        self.kind, self.outside = kind, Path(outside)

    def forward(self, x):
        run_dir, tracer = _run()
        n = torch.get_num_threads()
        if self.kind == "guesses" and tracer is not None:
            # Every name a later step might use beside this traced run: FIFOs, files and links out.
            traced = run_dir.parent.parent
            for name in ("traces-threads-1", "threads-1", "check", "traces"):
                target = traced / name
                if not os.path.lexists(target):
                    target.mkdir()
                os.mkfifo(target / "answer.json") if not os.path.lexists(target / "answer.json") else None
            for name in ("traces-threads-1x", "threads-1x"):
                if not os.path.lexists(traced / name):
                    os.symlink(self.outside, traced / name)
        if self.kind == "root-link" and tracer is None and n == 2:
            # The check's own run plants the traced runs' folder as a link out, before any exists.
            root = run_dir.parent / "traced"
            if not os.path.lexists(root):
                os.symlink(self.outside, root)
        if self.kind == "forged" and tracer is not None and tracer.sink is not None:
            fake = f"float32\\nINJECTED LINE {n}\\x1b[31m RED\\x1b[0m"
            prints = [["%016x" % n, 1.0, 0, [4, 8], fake]]
            tracer.sink.write({"o": "aten::add.Tensor", "m": "", "c": 1, "i": 1, "f": prints})
        if self.kind == "forged-shape" and tracer is not None and tracer.sink is not None:
            tracer.sink.write({"o": "aten::add.Tensor", "m": "", "c": 1, "i": 1, "f": [n]})
        if self.kind == "result-fifo":
            os.mkfifo(run_dir / "result.json")
            if os.path.lexists(run_dir / "log.txt"):  # the run's log, read for its last lines: a FIFO too
                os.unlink(run_dir / "log.txt")
                os.mkfifo(run_dir / "log.txt")
            os._exit(0)
        if self.kind == "ansi" and tracer is not None and n == 1:
            raise RuntimeError("\\x1b[2K\\x1b[1G\\x1b[32mPASS\\x1b[0m  everything is fine\\x07\\nINJECTED")
        return x * n


def build(kind, outside):
    return Planting(kind, outside)
"""


def _planting(tmp_path, kind):
    case, outside = tmp_path / "case", tmp_path / "outside"
    case.mkdir()
    outside.mkdir()
    (case / "planting.py").write_text(PLANTING)
    spec = write_spec(
        case,
        "version: 1\nmodel:\n  factory: 'planting:build'\n"
        f"  kwargs: {{kind: {kind}, outside: '{outside}'}}\ninput: {{random: {{shape: [4, 8]}}}}\n"
        "recipe: {threads: 2}\ninvariance: {threads: [1]}\n",
    )
    r = reprocheck("run", str(spec), "--report", str(case / "r.json"), "--summary", str(case / "s.md"), timeout=300)
    assert r.code == 1, r  # the variant's outputs differ: no plant changes that, hangs it or makes it exit 4
    assert "internal error" not in r.out + r.err and "Traceback" not in r.out + r.err
    (variant,) = json.loads((case / "r.json").read_text())["checks"][0]["invariance"]
    assert variant["status"] == "fail"
    return r, variant, outside, (case / "s.md").read_text()


def test_names_a_traced_run_could_guess_are_never_used_and_nothing_is_written_through_a_link(tmp_path):
    r, variant, outside, _ = _planting(tmp_path, "guesses")
    assert variant["first_change"]["op"]["op"].startswith("aten::mul"), r.out  # the plants were not in the way
    assert list(outside.iterdir()) == []


def test_a_traced_runs_folder_planted_as_a_link_out_is_refused_with_a_note(tmp_path):
    _, variant, outside, _ = _planting(tmp_path, "root-link")
    assert variant["first_change"] is None and variant["first_change_note"].startswith(
        "the op that differs is not named"
    )
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("kind", ["forged", "ansi"])
def test_what_a_traced_model_writes_reaches_every_format_printable(tmp_path, kind):
    r, variant, _, md = _planting(tmp_path, kind)
    for text in (r.out, r.err, md, json.dumps(variant)):
        assert "\x1b" not in text and "\x07" not in text and "\\u001b" not in text
    assert "\nINJECTED" not in r.out + md  # never a line of its own
    said = "INJECTED LINE" if kind == "forged" else "PASS?[0m  everything is fine?"
    assert said in r.out, r.out  # but said, on the line it belongs to


def test_a_forged_fingerprint_of_another_shape_is_an_unreadable_trace(tmp_path):
    r, _, _, _ = _planting(tmp_path, "forged-shape")
    assert "a trace record's fingerprint is not the tracer's" in r.out, r.out


def test_a_run_that_leaves_a_fifo_for_its_result_is_a_failed_run_never_a_hang(tmp_path):
    (tmp_path / "planting.py").write_text(PLANTING)
    spec = write_spec(
        tmp_path,
        "version: 1\nmodel:\n  factory: 'planting:build'\n"
        f"  kwargs: {{kind: result-fifo, outside: '{tmp_path}'}}\ninput: {{random: {{shape: [4, 8]}}}}\n",
    )
    r = reprocheck("run", str(spec), timeout=120)
    assert r.code == 3 and "exited with code 0 without writing its result" in r.out + r.err, r
