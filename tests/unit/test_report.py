"""Renderers: every format handled, colour rules, JSON without NaN, Markdown under GitHub's cap."""

import io
import json

import pytest
import torch

from helpers import check_result
from reprocheck.host import report
from reprocheck.host.checks.outcome import Status
from reprocheck.host.commands import main as cli
from reprocheck.host.report import console, json_report, markdown
from reprocheck.spec import ToleranceSpec
from reprocheck.worker import compare
from reprocheck.worker.outputs import flatten


def _result(comp, name="c", line=3, status=Status.FAIL):
    return check_result(comp, name=name, line=line, status=status)


def make_result(status=Status.FAIL, n_outputs=3, name="c"):
    runs = [
        flatten({f"out{i}": torch.arange(5.0) for i in range(n_outputs)}),
        flatten({f"out{i}": torch.arange(5.0) + torch.tensor([0, 0, float("nan"), 0, 1e-3]) for i in range(n_outputs)}),
    ]
    return _result(compare.compare_runs(runs, ToleranceSpec()), name=name, status=status)


def make_result_inf():
    runs = [flatten({"x": torch.zeros(2)}), flatten({"x": torch.tensor([0.0, 1.0])})]
    return _result(compare.compare_runs(runs, ToleranceSpec()), name="i", line=1)


def test_every_format_and_command_is_handled():
    assert set(report.RENDERERS) == set(report.Format)
    assert set(cli.HANDLERS) == set(cli.Command)


def test_console_has_summary_table_and_remedy_without_colour():
    text = console.render_console([make_result()])
    assert text.startswith("FAIL  c ") and "remedy:" in text and "\033[" not in text
    assert "3 of 3 outputs differ" in text
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("output  result"))
    assert lines[header].split() == [
        "output",
        "result",
        "shape",
        "dtype",
        "mismatched",
        "max",
        "abs",
        "max",
        "rel",
        "first",
        "at",
        "passing",
        "tolerance",
    ]
    rows = [line.split() for line in lines[header + 1 : header + 4]]
    # The NaN in one run only shows beside the largest finite difference
    assert rows == [
        [f"out{i}", "values", "[5]", "float32", "2/5", "0.001+NaN/inf", "0.00025", "[2]", "-"] for i in range(3)
    ]


def test_colour_only_on_a_tty_and_never_with_no_color(monkeypatch):
    class Tty:
        def isatty(self):
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert console._use_colour(Tty())
    assert not console._use_colour(io.StringIO())  # a pipe or file: no escape codes
    monkeypatch.setenv("NO_COLOR", "1")
    assert not console._use_colour(Tty())


def test_json_is_strict_json():
    data = json.loads(
        json_report.render_json([make_result()]), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c))
    )
    out = data["checks"][0]["outputs"][0]
    assert out["status"] == "values"
    # index 2 is NaN in one run only, index 4 off by 1e-3; no zero denominator, so the ratio is finite.
    assert isinstance(out["max_rel_diff"], float) and out["nan_count"] == 0
    assert out["max_abs_diff"] == pytest.approx(1e-3, rel=1e-3) and out["mismatched"] == 2
    inf = json.loads(json_report.render_json([make_result_inf()]))["checks"][0]["outputs"][0]
    assert inf["max_rel_diff"] == "inf"  # non-finite numbers become strings, never bare Infinity


def test_markdown_stays_under_githubs_limit():
    # One comparison of 200 outputs, shared by 400 checks: the renderer's size is the point, not 80,000 comparisons.
    comp = make_result(n_outputs=200).comparison
    results = [_result(comp, name=f"check{i}") for i in range(400)]
    text = markdown.render_markdown(results)
    assert len(text.encode()) < 1024 * 1024
    assert "left out to stay under GitHub's 1 MiB summary limit" in text
    assert text.count("| `check") == 400  # every check keeps its summary row


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "s.yaml", "--check", "a", "--invariance", "batch", "--keep", "k"],
        ["docker", "s.yaml", "--requirements", "r.txt", "--install", "pkg", "--image", "i"],
        ["validate", "s.yaml"],
        ["schema", "--report"],
        ["env", "--json"],
        ["matrix", "s.yaml", "--github-output", "checks"],
        ["diagnose", "s.yaml"],
        ["calibrate", "s.yaml", "--runs", "5"],
        ["upgrade", "s.yaml", "--from", "python:/a", "--to", "image:b", "--noise-k", "2"],
    ],
)
def test_every_commands_options_are_typed(argv):
    # Every option any command parses has a typed field; repeatable ones arrive as tuples.
    from reprocheck.host.commands.options import Options

    opts = Options.parsed(cli._parser().parse_args(argv))
    assert opts.command == argv[0] and all(not isinstance(v, list) for v in vars(opts).values())


def test_a_whole_number_stays_whole_and_nan_becomes_a_string():
    # Reports are written from their models: a count must not turn into 3.0 on the way, nor NaN into bare NaN.
    from reprocheck.host.report import shape

    text = shape.written(shape.ReferenceDistance(path="x", expected=3, obtained=float("nan")))
    assert json.loads(text) == {"path": "x", "expected": 3, "obtained": "nan"} and '"expected": 3,' in text


def test_a_traced_variant_says_its_first_op_in_every_format_and_a_note_when_there_is_none():
    import dataclasses

    from reprocheck.diagnosis import Divergence, OpFinding
    from reprocheck.host.checks.outcome import VariantKind, VariantResult, VariantStatus
    from reprocheck.host.report import junit, text

    runs = [flatten({"y": torch.zeros(3)}), flatten({"y": torch.tensor([0.0, 0.5, 0.0])})]
    comp = compare.compare_runs(runs, ToleranceSpec())
    op = OpFinding("aten::addmm", "fc", 2, 1, 41, location="model.py:12", detail="out0: norm 1 vs 2 (bits differ)")
    change = Divergence(call=3, module="fc", type="Linear", result=None, module_call=2, op=op)
    v = VariantResult(VariantKind.THREADS, "1", "2", VariantStatus.FAIL, comp, change=change)
    lines = text.variant_lines(v)
    assert "  first divergence: module fc (Linear), in its 2nd call in the forward" in lines
    assert any(
        x.startswith("    first differing op: aten::addmm in module fc's 2nd call, its 1st op (op 42") for x in lines
    )
    assert lines[-1].startswith("  remedy: ")  # the remedy closes it, after the finding
    r = dataclasses.replace(_result(None), invariance=(v,))
    report_json = json.loads(json_report.render_json([r]))["checks"][0]["invariance"][0]
    assert report_json["first_change"]["op"]["location"] == "model.py:12" and report_json["first_change_note"] == ""
    assert "aten::addmm" in markdown.render_markdown([r]) and "aten::addmm" in junit.render_junit([r])
    note = "the op that differs is not named: the traced run at threads=1 failed (exit 1)"
    lines = text.variant_lines(dataclasses.replace(v, change=None, change_note=note))
    assert f"  {note}" in lines and not any("first differing op" in x for x in lines)
