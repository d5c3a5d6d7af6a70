"""`--pictures`: what a picture is (plain data both sides read: the torch side draws it, the reports link or inline
it), the one rule for its file name, and the caps that keep a folder of pictures small whatever the outputs are."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Picture:
    file: str  # its name inside the pictures folder (safe_name, then ".png")
    output: str  # the output path it shows ("" for none in particular)
    caption: str  # what it shows, in words


LIMIT = 8  # pictures per comparison drawn (the first ones; the rest is said in a note)
MAX_SIDE = 1024  # pixels of an image or heatmap drawn: larger ones are max-pooled down, so no difference is lost
MAX_SAMPLES = 4  # classification: samples per picture
MAX_BOXES = 100  # detection: boxes of each kind drawn
MAX_INLINE_BYTES = 8 * 1024 * 1024  # a picture larger than this is linked from the page, never inlined

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,250}\.png$")  # what a picture's file may be called


def safe_name(*parts: str, limit: int = 48) -> str:
    """A file name's stem from check names, output paths and words: letters, digits, `_` and `-` only (no `/`, no
    `.`, so no `..`; no control character, no space), each part cut to `limit` characters, joined by `-`."""
    words = [_UNSAFE.sub("_", p).strip("_")[:limit] or "x" for p in parts]
    return "-".join(words)


def printable(text: str, limit: int | None = 200, *, spaces: bool = False) -> str:
    """Text from a model or a spec fit for a picture's title or a report line: control characters replaced by `?`
    (with `spaces`, a tab or line break by a space), cut at `limit` characters (None: never)."""
    clean = "".join(c if c.isprintable() else " " if spaces and c in "\t\n\r" else "?" for c in text)
    return clean if limit is None or len(clean) <= limit else clean[: limit - 1] + "…"
