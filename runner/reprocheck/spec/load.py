"""Spec files -> validated, located checks: defaults merged into entries, every error found, command-line
overrides, selection. (Model and weight names are asked of a worker: host/checks/names.py.)"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import SpecError, SpecErrors
from .models import CHECK_KEYS, MERGED_KEYS, SPEC_VERSION, Check, Defaults
from .yamlread import Located, read_located


@dataclass(frozen=True)
class LoadedCheck:
    """A validated check and where it was written."""

    check: Check
    file: Path
    line: int
    base_dir: Path
    key_prefix: tuple[Any, ...] = ()  # ("checks", i) inside a multi-check file
    # The file's parsed node tree, shared by its checks: line lookups never re-read the file.
    where: Located | None = field(default=None, compare=False, repr=False)

    @functools.cached_property
    def config_hash(self) -> str:
        # Once per check: it reads (and hashes) every model and input file.
        return self.check.config_hash()

    def key_line(self, *keys: str) -> int:
        """The line of one of this check's keys, falling back to the defaults, then the check."""
        where = self.where or read_located(self.file)[1]
        for path in (self.key_prefix + keys, keys):
            if where.has(path):
                return where.line(path) or self.line
        return self.line

    @property
    def name(self) -> str:
        return self.check.name


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model class that owns the mapping at `loc`, to suggest its keys."""
    cls: Any = root
    keyed = False  # the previous part was a field holding a mapping: this part is one of its keys
    for part in loc:
        if isinstance(part, int) or cls is None or keyed:
            keyed = False
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return None
        keyed = getattr(field.annotation, "__origin__", None) is dict
        cls = _inner_model(field.annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _keys(owner: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in owner.model_fields.items()]


def _inner_model(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _message(err: Mapping[str, Any], owner: type[BaseModel] | None) -> str:
    kind, loc = err["type"], err["loc"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _keys(owner) if owner else []
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
        hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(allowed)}"
        return f"unknown key ({hint})"
    if kind == "missing":
        return "missing (add this key)"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        return msg[len("Value error, ") :]
    got = err.get("input")
    shown = json.dumps(got, default=str) if not isinstance(got, dict) else "a mapping"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "device":
        return f"{shown} is not a device (use cpu, cuda, cuda:N or auto)"
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "factory":
        return f'{shown} is not "module:callable" (e.g. "my_models:build")'
    if kind == "string_pattern_mismatch" and loc and loc[-1] == "name":
        return f"{shown} is not a valid check name (letters, digits, '.', '_', '-'; no spaces)"
    return f"{msg}, got {shown}"


def _key_text(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if k in MERGED_KEYS and isinstance(out.get(k), dict) and isinstance(v, dict):
            merged = dict(out[k])
            for kk, vv in v.items():
                if kk == "outputs" and isinstance(merged.get(kk), dict) and isinstance(vv, dict):
                    # Globs match in order and the first wins: the entry's own patterns go first.
                    merged[kk] = {**vv, **{p: r for p, r in merged[kk].items() if p not in vv}}
                else:
                    merged[kk] = vv
            out[k] = merged
        else:
            out[k] = v
    return out


SPEC_SUFFIXES = (".yaml", ".yml")


def spec_files(paths: Sequence[str | Path]) -> list[tuple[Path, Path | None]]:
    """The spec files named: a file as given, a folder as every *.yaml/*.yml under it (sorted by path; hidden
    files and folders left out, symlinked folders not followed), each with the folder it was found in."""
    found: list[tuple[Path, Path | None]] = []
    for given in paths:
        path = Path(given)
        if not path.is_dir():
            found.append((path, None))
            continue
        inside = _walk(path)
        if not inside:
            raise SpecErrors([SpecError(path, None, "", "a folder without spec files (*.yaml, *.yml) in it")])
        found += [(p, path) for p in sorted(inside, key=lambda p: p.parts)]
    return found


def _walk(folder: Path) -> list[Path]:
    """The spec files under a folder, without recursion (any depth) and without following symlinked folders; a
    name holding a control character is refused (printed, it could act as a CI command or forge a line)."""
    found, pending = [], [folder]
    while pending:
        top = pending.pop()
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError as exc:
            raise SpecErrors([SpecError(top, None, "", f"cannot list the folder ({exc.strerror or exc})")]) from None
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if any(ord(c) < 32 or ord(c) == 127 for c in entry.name):
                shown = ascii(entry.name)
                raise SpecErrors([SpecError(top, None, "", f"holds {shown}, a name with a control character")])
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            elif entry.name.endswith(SPEC_SUFFIXES):
                found.append(Path(entry.path))
    return found


def load_spec(path: str | Path, folder: Path | None = None) -> list[LoadedCheck]:
    """Parse and validate one spec file (found in `folder`, if given). Raises SpecErrors listing every problem."""
    path = Path(path)
    data, where = read_located(path)
    if folder is not None and not (isinstance(data, dict) and "version" in data):
        message = (
            f"not a reprocheck spec (no `version: 1` at the top), found in the folder {folder}: "
            "move it out of that folder, or name the spec files one by one"
        )
        raise SpecErrors([SpecError(path, 1, "", message)])
    if not isinstance(data, dict):
        raise SpecErrors([SpecError(path, 1, "", "a spec is a YAML mapping with `version: 1` at the top")])
    context = {"base_dir": str(path.resolve().parent)}
    version = data.get("version")
    errors: list[SpecError] = []
    if version != SPEC_VERSION:
        shown = "missing" if "version" not in data else f"{version!r} is not supported"
        errors.append(
            SpecError(path, where.line(("version",)) or 1, "version", f"{shown} (write `version: 1` at the top)")
        )
    known = set(CHECK_KEYS) - {"name"} | {"version", "checks"}
    if errors and not known & set(data):  # no key of a spec at all: not one, whatever else it holds
        raise SpecErrors(errors)
    errors += _top_key_errors(path, data, where)
    # The other keys are still checked: one unknown key does not hide the rest of the file's errors.
    entries, entry_errors = _entries(path, {k: v for k, v in data.items() if k in known}, where, context)
    errors += entry_errors
    loaded: list[LoadedCheck] = []
    seen: dict[str, int] = {}
    for prefix, raw in entries:
        try:
            check = Check.model_validate(raw, context=context)
        except ValidationError as exc:
            errors += [_located(path, where, e, prefix, Check) for e in exc.errors()]
            continue
        line = where.line(prefix + ("name",)) if prefix else 1
        if check.name in seen:
            first = f"first on line {seen[check.name]}; names must be unique"
            message = f"duplicate check name '{check.name}' ({first})"
            errors.append(SpecError(path, line, _key_text(prefix + ("name",)), message))
            continue
        seen[check.name] = line or 1
        loaded.append(
            LoadedCheck(
                check=check, file=path, line=line or 1, base_dir=path.resolve().parent, key_prefix=prefix, where=where
            )
        )
    if errors:
        raise SpecErrors(list({str(e): e for e in errors}.values()))  # an inherited default's error once
    return loaded


def _located(
    path: Path, where: Located, err: Mapping[str, Any], prefix: tuple[Any, ...], root: type[BaseModel]
) -> SpecError:
    """A validation error at the line it is about."""
    loc = tuple(err["loc"])
    full = prefix + loc
    line = where.line(full)
    # Keys inherited from the defaults are reported where they were written.
    if prefix and not where.has(full) and where.has(loc):
        line, full = where.line(loc), loc
    return SpecError(
        path,
        line,
        _key_text(full),
        _message(err, _model_at(loc[:-1] if err["type"] == "extra_forbidden" else loc, root)),
    )


def _top_key_errors(path: Path, data: dict[str, Any], where: Located) -> list[SpecError]:
    allowed_top = set(CHECK_KEYS) - {"name"} | {"version", "checks"}
    errors = []
    for key in data:
        if key not in allowed_top:
            close = difflib.get_close_matches(str(key), sorted(allowed_top), n=1, cutoff=0.5)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed keys: {', '.join(sorted(allowed_top))}"
            if key == "name" and data.get("checks") is None:
                hint = "a single-check file's check is named after the file; use `checks:` to name checks"
            errors.append(SpecError(path, where.line((key,)), str(key), f"unknown key ({hint})"))
    return errors


def _entries(
    path: Path, data: dict[str, Any], where: Located, context: dict[str, str]
) -> tuple[list[tuple[tuple[Any, ...], dict[str, Any]]], list[SpecError]]:
    """Each check's raw mapping (the defaults merged in) with its key path; and the entries that are no mapping."""
    top = {k: v for k, v in data.items() if k not in ("version", "checks")}
    checks_raw = data.get("checks")
    if checks_raw is None:
        return [((), {**top, "name": _name_from_file(path)})], []
    if not isinstance(checks_raw, list) or not checks_raw:
        return [], [SpecError(path, where.line(("checks",)), "checks", "must be a non-empty list of checks")]
    # The defaults are checked on their own too (a bad default is wrong even where every entry overrides it),
    # and once: their errors are not repeated for every entry that inherits them (load_spec drops repeats).
    entries, errors = [], []
    try:
        Defaults.model_validate(top, context=context)
    except ValidationError as exc:
        errors += [_located(path, where, e, (), Defaults) for e in exc.errors()]
    for i, entry in enumerate(checks_raw):
        if not isinstance(entry, dict):
            errors.append(
                SpecError(path, where.line(("checks", i)), f"checks.{i}", "each check is a mapping with a `name:`")
            )
            continue
        entries.append((("checks", i), _deep_merge(top, entry)))
    return entries, errors


def _name_from_file(path: Path) -> str:
    name = re.sub(r"[^\w.\-]", "_", path.stem)
    return name if name and name[0].isalnum() else f"check_{name}"


def apply_overrides(loaded: list[LoadedCheck], **overrides: Any) -> list[LoadedCheck]:
    """Command-line overrides (--runs, --device), validated like spec values."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return loaded
    out = []
    for c in loaded:
        data = c.check.model_dump()
        data.update(changes)
        try:
            check = Check.model_validate(data, context={"base_dir": str(c.base_dir)})
        except ValidationError as exc:
            e = exc.errors()[0]
            raise SpecErrors([SpecError("command line", None, f"--{e['loc'][0]}", _message(e, Check))]) from None
        out.append(dataclasses.replace(c, check=check))
    return out


def _named(c: LoadedCheck, name: str) -> bool:
    """`NAME`, or `SPEC:NAME` (check names hold no ':'), the spec compared as a path."""
    spec, colon, check = name.rpartition(":")
    if not colon:
        return c.name == name
    return c.name == check and os.path.realpath(spec) == os.path.realpath(c.file)


def select(loaded: list[LoadedCheck], names: Sequence[str]) -> list[LoadedCheck]:
    """Keep the checks named by --check (NAME or SPEC:NAME); a name that selects nothing is a usage error."""
    if not names:
        return loaded
    missing = [n for n in names if not any(_named(c, n) for c in loaded)]
    if missing:
        # SPEC:NAME is answered with the identities, a bare name with the names
        whole = ":" in missing[0]
        have = list(dict.fromkeys(f"{c.file}:{c.name}" if whole else c.name for c in loaded))
        close = difflib.get_close_matches(missing[0], have, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"checks here: {', '.join(have)}"
        raise SpecErrors([SpecError("command line", None, "--check", f"no check named '{missing[0]}' ({hint})")])
    return [c for c in loaded if any(_named(c, n) for n in names)]
