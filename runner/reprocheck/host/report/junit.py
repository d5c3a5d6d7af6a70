"""Check results -> JUnit XML (--junit), for CI systems other than GitHub: one test case per check and one per
invariance variant. A check whose own runs differ (or drifted, or cannot see under strict) is a <failure> with the
summary line; one that could not be judged is an <error>; a variant's case fails, errors or is skipped on its own.
The test's identity is the check's: classname the spec file, name the check (the variant's label after it)."""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

from ..checks.outcome import CheckResult, VariantResult, VariantStatus
from .annotate import check_failures
from .console import render_console
from .text import own_runs_failed, variant_lines

# XML 1.0 cannot hold these at all (not even escaped): model text may print them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _text(value: str) -> str:
    return _NOT_XML.sub("\ufffd", value)


def _case(suite: ET.Element, r: CheckResult, name: str, seconds: float) -> ET.Element:
    return ET.SubElement(
        suite,
        "testcase",
        classname=_text(str(r.file)),
        name=_text(name),
        file=_text(str(r.file)),
        line=str(r.line),
        time=f"{seconds:.3f}",
    )


def _outcome(case: ET.Element, tag: str, title: str, body: str) -> None:
    ET.SubElement(case, tag, message=_text(title), type=tag).text = _text(body)


def _check_case(suite: ET.Element, r: CheckResult) -> str:
    """The check's own case (its runs, baseline, fragile, blind); what it ended as."""
    variant_time = sum(v.run.duration for v in r.invariance if v.run is not None)
    case = _case(suite, r, r.name, max(r.duration - variant_time, 0.0))
    own = check_failures([dataclasses.replace(r, invariance=())])
    console = render_console([r]).rstrip("\n").splitlines()[:-2]  # without the one-check count at its end
    ET.SubElement(case, "system-out").text = _text("\n".join(console) + "\n")
    if not own:
        return "pass"
    tag = "error" if own_runs_failed(r) else "failure"
    _outcome(case, tag, own[0][2], "\n".join(f"{title}: {message}" for _, _, title, message in own))
    return tag


def _variant_case(suite: ET.Element, r: CheckResult, v: VariantResult) -> str:
    case = _case(suite, r, f"{r.name} [{v.label}]", v.run.duration if v.run is not None else 0.0)
    text = "\n".join(line.strip() for line in variant_lines(v))
    if v.status is VariantStatus.SKIPPED:
        ET.SubElement(case, "skipped", message=_text(v.cause))
        return "skipped"
    if v.status is VariantStatus.PASS:
        ET.SubElement(case, "system-out").text = _text(text)
        return "pass"
    tag = "error" if v.status is VariantStatus.ERROR else "failure"
    what = "could not run" if tag == "error" else "is not invariant"
    _outcome(case, tag, f"{r.name} {what} at {v.label}", text)
    return tag


def render_junit(results: list[CheckResult]) -> str:
    suites = ET.Element("testsuites", name="reprocheck")
    suite = ET.SubElement(suites, "testsuite", name="reprocheck")
    ended = []
    for r in results:
        ended.append(_check_case(suite, r))
        ended += [_variant_case(suite, r, v) for v in r.invariance]
    seconds = f"{sum(r.duration for r in results):.3f}"
    for element in (suites, suite):
        element.set("tests", str(len(ended)))
        for tag, attribute in (("failure", "failures"), ("error", "errors"), ("skipped", "skipped")):
            element.set(attribute, str(ended.count(tag)))
        element.set("time", seconds)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
