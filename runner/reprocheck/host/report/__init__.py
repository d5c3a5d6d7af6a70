"""Check results -> console text, JSON, Markdown: one module per format over the same result objects
(outcome.CheckResult, and diagnose.Diagnosis for `diagnose`). GitHub's own formats (annotations, step
outputs, the summary cap) live in github.py."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..checks.outcome import CheckResult
from .console import print_console, render_console, render_diagnosis_console
from .json_report import render_diagnosis_json, render_json
from .junit import render_junit
from .markdown import render_diagnosis_markdown, render_markdown
from .text import remedy, run_cause, summarize

if TYPE_CHECKING:
    from ...diagnosis import Diagnosis


class Format(str, enum.Enum):
    CONSOLE = "console"
    JSON = "json"
    MARKDOWN = "markdown"
    JUNIT = "junit"


RENDERERS: dict[Format, Callable[[list[CheckResult]], str]] = {
    Format.CONSOLE: render_console,
    Format.JSON: render_json,
    Format.MARKDOWN: render_markdown,
    Format.JUNIT: render_junit,
}

DIAGNOSIS_RENDERERS: dict[Format, Callable[[list[Diagnosis]], str]] = {
    Format.CONSOLE: render_diagnosis_console,
    Format.JSON: render_diagnosis_json,
    Format.MARKDOWN: render_diagnosis_markdown,
}


def render(fmt: Format, results: list[CheckResult]) -> str:
    return RENDERERS[fmt](results)


__all__ = ["DIAGNOSIS_RENDERERS", "RENDERERS", "Format", "print_console", "remedy", "render", "run_cause", "summarize"]
