"""`--html`: one self-contained page for `run`, `diagnose` and `upgrade`. The verdict first, then per check its
outputs, what the text reports say of it (through the same formatters, so what they learn to say shows here too)
and its pictures. Nothing is fetched and nothing runs: the CSS is inline, the pictures are data: URIs, no script,
and a Content-Security-Policy allows nothing else. Every string that comes from a spec, a model or an error (check
names, output paths, labels, module names, messages) is escaped; a picture is inlined only when it is a PNG file
of at most MAX_INLINE_BYTES, directly in the pictures folder and not a link."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ... import __version__
from ...files import open_regular
from ...pictures import MAX_INLINE_BYTES, NAME, Picture
from ..checks.outcome import CheckResult, Status, exit_code
from .console import render_console
from .text import diagnosis_lines, output_rows, plural

if TYPE_CHECKING:
    from ...diagnosis import Diagnosis
    from ..analyses.upgrade import Upgrade

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
PNG = b"\x89PNG\r\n\x1a\n"
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #1b1b1b; }
h1 { font-size: 1.5em; } h2 { font-size: 1.15em; margin-top: 2em; border-top: 1px solid #ddd; padding-top: 1em; }
.verdict { font-size: 1.2em; padding: .6em 1em; border-radius: 6px; font-weight: 600; }
.pass { background: #e6f4ea; color: #0b5323; } .fail { background: #fce8e6; color: #8a1c12; }
.error { background: #fff4e5; color: #7a4100; }
.tag { font-size: .8em; padding: .1em .5em; border-radius: 4px; margin-left: .5em; vertical-align: middle; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; white-space: pre-wrap; word-break: break-word; }
figure { margin: 1em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .9em; color: #444; } .muted { color: #666; font-size: .9em; }
"""


def esc(text: object) -> str:
    """Any text as HTML text (or a quoted attribute value)."""
    return html.escape(str(text), quote=True)


def page(title: str, status: str, verdict: str, body: Sequence[str]) -> str:
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{esc(title)}</title>",
            f"<style>{STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{esc(title)}</h1>",
            f'<p class="verdict {esc(status)}">{esc(verdict)}</p>',
            *body,
            f'<p class="muted">reprocheck {esc(__version__)}</p>',
            "</body>",
            "</html>",
            "",
        ]
    )


def table(rows: list[list[str]]) -> str:
    if len(rows) < 2:
        return ""
    head = "".join(f"<th>{esc(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline(folder: Path, name: str) -> str | None:
    """A picture's data: URI, or None when it is not a plain PNG file of its folder, or too large to inline."""
    if not NAME.match(name):
        return None
    try:
        with open_regular(folder / name, MAX_INLINE_BYTES) as f:
            data = f.read(MAX_INLINE_BYTES + 1)
    except OSError:
        return None
    if not data.startswith(PNG) or len(data) > MAX_INLINE_BYTES:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figures(folder: Path | None, pictures: Sequence[Picture]) -> list[str]:
    out = []
    for p in pictures:
        uri = _inline(folder, p.file) if folder is not None else None
        if uri is None:
            out.append(f'<p class="muted">picture {esc(p.file)} not inlined (missing, not a PNG, or too large)</p>')
            continue
        out.append(
            f'<figure><img src="{uri}" alt="{esc(p.caption)}"><figcaption>{esc(p.caption)}</figcaption></figure>'
        )
    return out


def _status_line(counts: dict[str, int], total: int, noun: str) -> str:
    return f"{plural(total, noun)}: " + ", ".join(f"{n} {word}" for word, n in counts.items())


def render_run(results: list[CheckResult], folder: Path | None) -> str:
    code = int(exit_code(results))
    status = {0: "pass", 1: "fail"}.get(code, "error")
    counts = {"passed": 0, "failed": 0, "errors": 0}
    for r in results:
        counts[{Status.PASS: "passed", Status.FAIL: "failed", Status.ERROR: "errors"}[r.status]] += 1
    verdict = f"{status.upper()}: " + _status_line(counts, len(results), "check")
    body = []
    for r in results:
        body.append(f'<h2>{esc(r.name)}<span class="tag {esc(r.status.value)}">{esc(r.status.value)}</span></h2>')
        body.append(f'<p class="muted">{esc(r.file)}:{r.line} · seed {r.seed} · {esc(r.device)}</p>')
        if r.comparison is not None:
            body.append(table(output_rows(list(r.comparison.outputs))))
        body.append(f"<pre>{esc(render_console([r]))}</pre>")
        body += figures(folder, r.pictures)
    return page("reprocheck run", status, verdict, body)


def render_diagnosis(diagnoses: list[Diagnosis], folder: Path | None) -> str:
    code = max((d.exit_code for d in diagnoses), default=0)
    status = {0: "pass", 1: "fail"}.get(code, "error")
    bad = sum(1 for d in diagnoses if d.exit_code)
    words = "reproducible under its recipe" if code == 0 else f"{bad} not reproducible or failed"
    verdict = f"{status.upper()}: {plural(len(diagnoses), 'check')} diagnosed, {words}"
    body = []
    for d in diagnoses:
        tag = "error" if d.error else ("pass" if d.reproducible else "fail")
        body.append(f'<h2>{esc(d.name)}<span class="tag {tag}">{tag}</span></h2>')
        body.append(f'<p class="muted">{esc(d.file)}:{d.line} · seed {d.check_seed}</p>')
        if d.comparison is not None:
            body.append(table(output_rows(list(d.comparison.outputs))))
        body.append("<ul>" + "".join(f"<li>{esc(line.strip())}</li>" for line in diagnosis_lines(d)) + "</ul>")
        body += figures(folder, d.pictures)
    return page("reprocheck diagnose", status, verdict, body)


def render_upgrade(u: Upgrade, folder: Path | None) -> str:
    from .upgrade import overall
    from .upgrade import render_console as upgrade_console

    status = {0: "pass", 1: "fail"}.get(int(u.exit_code), "error")
    body = [f"<pre>{esc(upgrade_console(u))}</pre>"]
    for c in u.checks:
        if not c.pictures:
            continue
        body.append(f'<h2>{esc(c.name)}<span class="tag">{esc(c.verdict.value)}</span></h2>')
        body += figures(folder, c.pictures)
    return page("reprocheck upgrade", status, f"{status.upper()}: {overall(u)}", body)
