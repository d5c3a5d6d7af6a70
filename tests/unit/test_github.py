"""GitHub I/O helpers: escaping, multiline outputs, the summary cap, annotations."""

import re

from reprocheck.host import github


def test_data_and_property_escaping():
    assert github.escape_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert github.escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    line = github.command("error", "x: 1%\n2", file="dir/spec, v2.yaml", line=7, title="t: x")
    assert line == "::error file=dir/spec%2C v2.yaml,line=7,title=t%3A x::x: 1%25%0A2"


def test_annotations_are_capped_with_a_summary():
    failures = [(f"s{i}.yaml", i, f"check{i}", "differs") for i in range(13)]
    lines = github.error_annotations(failures)
    assert len(lines) == github.MAX_ANNOTATIONS + 1
    assert lines[-1].endswith("3 more failing checks: check10, check11, check12")


def test_single_line_output():
    assert github.output_lines("result", "pass") == "result=pass\n"


def test_multiline_output_uses_a_random_delimiter_not_in_the_value(monkeypatch):
    text = github.output_lines("report", "line1\nline2")
    m = re.fullmatch(r"report<<(ghadelimiter_[0-9a-f]{32})\nline1\nline2\n\1\n", text)
    assert m
    assert github.output_lines("report", "a\nb") != text  # random each time
    tokens = iter(["0" * 32, "1" * 32])
    monkeypatch.setattr(github.secrets, "token_hex", lambda n: next(tokens))
    tricky = "x\nghadelimiter_" + "0" * 32 + "\ny"
    assert "ghadelimiter_" + "1" * 32 in github.output_lines("o", tricky)


def test_outputs_append_to_the_file(tmp_path):
    out = tmp_path / "out"
    out.write_text("earlier=1\n")
    github.write_outputs({"result": "fail", "failed-checks": "a,b"}, str(out))
    assert out.read_text() == "earlier=1\nresult=fail\nfailed-checks=a,b\n"


def test_summary_is_capped_under_one_mib_and_says_so(tmp_path):
    big = "| row |\n" * 300_000  # 2.4 MB
    capped = github.cap_summary(big)
    assert len(capped.encode()) <= github.SUMMARY_LIMIT and "cut to stay under" in capped
    path = tmp_path / "summary.md"
    path.write_text("x" * (github.SUMMARY_LIMIT - 100))
    github.append_summary(big, str(path))
    assert path.stat().st_size <= github.SUMMARY_LIMIT


def test_workspace_relative_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    (tmp_path / "specs").mkdir()
    assert github.workspace_relative(tmp_path / "specs" / "a.yaml") == "specs/a.yaml"
    assert github.workspace_relative("/elsewhere/a.yaml") == "/elsewhere/a.yaml"
