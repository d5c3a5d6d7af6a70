"""What a derived image may be asked to install: requirement lines naming packages from PyPI (never a URL, path or
VCS link, which pip would fetch from anywhere), versions the image's pins satisfy, and install folders whose
project is not already a distribution of the image. Standard library only (the Action's step imports it)."""

from __future__ import annotations

import codecs
import configparser
import importlib
import re
import shlex
from pathlib import Path


class DerivedError(ValueError):
    """A requirement file or install folder the image cannot take: one line naming it and the fix."""


# pip options a requirement file may hold for the image; anything that points pip elsewhere is refused.
ALLOWED_OPTIONS = ("--hash",)
FIX = "use a package name from PyPI, or `install:` (--install) for local code"
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_VERSION = r"[A-Za-z0-9_.*+!-]+"
_CLAUSE = rf"(?:~=|===|==|!=|<=|>=|<|>)\s*{_VERSION}"
# PEP 508 without its `name @ URL` form: name, extras, version clauses; the marker (after `;`) is pip's to read.
REQUIREMENT = re.compile(
    rf"^(?P<name>{_NAME})\s*(?:\[\s*(?:{_NAME}(?:\s*,\s*{_NAME})*)?\s*\])?\s*"
    rf"(?P<spec>\(?\s*{_CLAUSE}(?:\s*,\s*{_CLAUSE})*\s*\)?)?\s*$"
)
# A name pip would take for a local archive when such a file exists where it runs (pip's ARCHIVE_EXTENSIONS, eggs).
ARCHIVE = re.compile(r"\.(whl|zip|egg|tar|tgz|tbz|txz|tlz|tar\.gz|tar\.bz2|tar\.xz|tar\.lz|tar\.lzma)$", re.IGNORECASE)
COMMENT = re.compile(r"(^|\s+)#.*$")
# pip's auto_decode: a BOM, else a PEP 263 coding line in the first two lines, else the locale's (UTF-8 in the build).
BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF32, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF32_LE, "utf-32-le"),
)
CODING = re.compile(rb"coding[:=]\s*([-\w.]+)")
# Control characters (and Unicode line separators, which split a line for pip as for this check) but tab, LF, CR.
CONTROL = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def logical_lines(text: str) -> list[tuple[int, str]]:
    """pip's own joining: a line ending in `\\` continues on the next (not a comment line); the number is the
    first line's, comments and surrounding space removed."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.endswith("\\") and not COMMENT.match(line):
            first = first if parts else number
            parts.append(line.strip("\\"))
            continue
        if parts:
            parts.append(" " + line if COMMENT.match(line) else line)
            out.append((first, "".join(parts)))
            parts = []
        else:
            out.append((number, line))
    if parts:
        out.append((first, "".join(parts)))
    return [(n, COMMENT.sub("", line).strip()) for n, line in out if COMMENT.sub("", line).strip()]


def _release(version: str) -> tuple[int, ...] | None:
    """A plain release number (local label dropped), or None where it is more than this check can compare."""
    m = re.fullmatch(r"v?(\d+(?:\.\d+)*)(?:\+[A-Za-z0-9.]+)?", version.strip())
    return tuple(int(p) for p in m.group(1).split(".")) if m else None


def _pad(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    n = max(len(a), len(b))
    return a + (0,) * (n - len(a)), b + (0,) * (n - len(b))


def allows(spec: str, pinned: str) -> bool | None:
    """Whether the version clauses `spec` (e.g. ">=2.0,<3") allow `pinned`; None where it cannot be decided."""
    have = _release(pinned)
    if have is None:
        return None
    for op, version in re.findall(r"(~=|===|==|!=|<=|>=|<|>)\s*([^\s,()]+)", spec):
        if op == "===":
            ok = version == pinned
        elif op in ("==", "!=") and version.endswith(".*"):
            prefix = _release(version[:-2])
            if prefix is None:
                return None
            ok = have[: len(prefix)] + (0,) * max(0, len(prefix) - len(have)) == prefix
            ok = ok if op == "==" else not ok
        else:
            want = _release(version)
            if want is None or (op == "~=" and len(want) < 2):
                return None
            a, b = _pad(have, want)
            ok = {
                "==": a == b,
                "!=": a != b,
                ">=": a >= b,
                "<=": a <= b,
                ">": a > b,
                "<": a < b,
                "~=": a >= b and have[: len(want) - 1] == want[:-1],
            }[op]
        if not ok:
            return False
    return True


def _options(where: str, text: str) -> None:
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise DerivedError(f"{where}: cannot be read ({exc})") from None
    skip = False
    for token in tokens:
        if skip:
            skip = False
        elif token == "--hash":
            skip = True
        elif token.split("=")[0] not in ALLOWED_OPTIONS:
            raise DerivedError(
                f"{where}: {token.split('=')[0]} is not taken for the image; list the packages themselves (from PyPI)"
            )


def decode(data: bytes, where: str) -> str:
    """The text pip reads (its auto_decode), refused where pip would read it otherwise than as plain UTF-8: a
    UTF-16/32 byte-order mark or a coding line (`# -*- coding: utf-7 -*-` turns `+AAo-` in a comment into a
    new line holding an option), or a control character."""
    fix = "save it as UTF-8 without a coding line"
    bom, encoding = next(((b, e) for b, e in BOMS if data.startswith(b)), (b"", "utf-8"))
    data = data[len(bom) :]
    if not bom:  # pip reads a coding line only where there is no BOM
        cookies = [m for line in data.split(b"\n")[:2] if line[:1] == b"#" and (m := CODING.search(line))]
        encoding = cookies[0].group(1).decode("ascii") if cookies else encoding
    try:
        utf8 = codecs.lookup(encoding).name == "utf-8"
    except LookupError:
        utf8 = False
    if not utf8:
        how = "a byte-order mark" if bom else "a coding line"
        raise DerivedError(f"{where}: {how} makes pip read it as {encoding}, not as checked here (UTF-8); {fix}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DerivedError(f"{where}: is not UTF-8 ({exc.reason} at byte {exc.start}); {fix}") from None
    bad = CONTROL.search(text)
    if bad:
        number = text.count("\n", 0, bad.start()) + 1
        raise DerivedError(
            f"{where}:{number}: holds the control character {bad.group()!r}; remove it (only tab and line ends)"
        )
    return text


def check_requirements(path: Path, pins: dict[str, str], shown: Path | str | None = None) -> None:
    """Refuse what would change the image's stack or send pip elsewhere. `pins`: package -> the image's version
    ('?' where it is not known); `shown`: the name in messages (the user's file, for its staged copy)."""
    shown = shown or path
    try:
        text = decode(path.read_bytes(), f"requirements {shown}")
    except OSError as exc:
        raise DerivedError(f"requirements {shown}: cannot be read ({exc.strerror or exc})") from None
    pins = {normalize(k): v for k, v in pins.items()}
    for number, line in logical_lines(text):
        where = f"requirements {shown}:{number}"
        # pip's split: the requirement is the words before the first one starting with '-'.
        words = line.split(" ")
        first = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        requirement, options = " ".join(words[:first]).strip(), " ".join(words[first:])
        _options(where, options)
        if not requirement:
            continue
        spec_part = requirement.split(";", 1)[0].strip()
        m = REQUIREMENT.match(spec_part)
        if not m or "$" in requirement:
            raise DerivedError(
                f"{where}: {requirement[:120]!r} is not a package name from PyPI (a URL, path or VCS link); {FIX}"
            )
        if ARCHIVE.search(m.group("name")):
            raise DerivedError(f"{where}: {m.group('name')!r} looks like a file, not a package name; {FIX}")
        name = normalize(m.group("name"))
        if name not in pins or not m.group("spec"):
            continue
        want = f"{name}=={pins[name]}"
        if pins[name] == "?":  # an image without its version label
            raise DerivedError(f"{where}: {spec_part} would change the image's pinned {name}; remove it")
        ok = allows(m.group("spec"), pins[name])
        if ok is False:
            raise DerivedError(f"{where}: {spec_part} would change the image's pinned {want}; remove it")
        if ok is None:
            raise DerivedError(
                f"{where}: cannot tell whether {spec_part} allows the image's pinned {want}; "
                f"write {want} or remove the line (the image provides {name})"
            )


def project_name(folder: Path, shown: str) -> str:
    """The project an install folder builds: pyproject's [project] (or [tool.poetry]) name, else setup.cfg's
    [metadata] name, else the one `name="..."` of setup.py. Refused when it cannot be read."""
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(errors="replace")
        try:
            data = importlib.import_module("tomllib").loads(text)  # Python 3.11+
            for table in (data.get("project"), data.get("tool", {}).get("poetry")):
                if isinstance(table, dict) and isinstance(table.get("name"), str):
                    return normalize(table["name"])
        except ImportError:  # Python 3.10: the [project] table's name line
            m = re.search(r"^\[(?:project|tool\.poetry)\][^\[]*?^name\s*=\s*[\"']([^\"']+)[\"']", text, re.M | re.S)
            if m:
                return normalize(m.group(1))
        except ValueError as exc:
            raise DerivedError(f"install {shown}: pyproject.toml cannot be read ({exc})") from None
    cfg = folder / "setup.cfg"
    if cfg.is_file():
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(cfg.read_text(errors="replace"))
            if parser.get("metadata", "name", fallback=""):
                return normalize(parser.get("metadata", "name"))
        except configparser.Error:
            pass
    setup = folder / "setup.py"
    text = setup.read_text(errors="replace") if setup.is_file() else ""
    names = set(re.findall(r"\bname\s*=\s*[\"']([A-Za-z0-9._-]+)[\"']", text))
    if len(names) == 1:
        return normalize(names.pop())
    raise DerivedError(
        f"install {shown}: cannot tell the project's name (no [project] name in pyproject.toml, no [metadata] name "
        "in setup.cfg, no single name= in setup.py); declare it in pyproject.toml's [project] table"
    )
