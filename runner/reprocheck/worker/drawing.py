"""The figures of `--pictures`, drawn with matplotlib's Agg backend: headless (no display is ever opened, whatever
DISPLAY says), and deterministic (no timestamp or version in the PNG, so the same outputs draw the same bytes).
Every text from a model or a spec is shown as plain text (never mathtext), its control characters replaced.
pictures.py decides what to draw; this module only draws it, from plain tensors and numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..files import atomic_write
from ..pictures import MAX_SIDE, printable

DPI = 100
# Box styles: (colour, line style). Distinct in colour and in line, and named in the legend.
MATCHED = ("#2ca02c", "solid")  # in both runs (run 1's box)
MISSING = ("#d62728", "solid")  # run 1 only
EXTRA = ("#1f77b4", "dashed")  # the other run only
RELABELLED = ("#ff7f0e", "dashdot")  # the same box, another class (run 1's box; the other run's is dotted)
RELABELLED_OTHER = ("#9467bd", "dotted")
NOT_FINITE = "#00e5ff"  # a heatmap's NaN or infinity in one run only


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)  # never a window, whatever the environment says
    import matplotlib.pyplot as plt

    plt.rcParams["text.parse_math"] = False  # "$x$" in a label is text
    plt.rcParams["svg.hashsalt"] = "reprocheck"
    return plt


def _save(fig: Any, path: Path) -> None:
    plt = _pyplot()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None}))
    finally:
        plt.close(fig)


def _size(height: int, width: int, panels: float = 1) -> tuple[float, float]:
    """A figure size in inches for `panels` images side by side, at most about 1400 x 900 pixels."""
    aspect = height / max(width, 1)
    w = min(14.0, 4.5 * panels + 1.0)
    h = min(9.0, max(3.0, 4.5 * aspect + 1.2))
    return w, h


@dataclass
class Box:
    box: Sequence[float]  # x1, y1, x2, y2
    text: str


@dataclass
class Detections:
    """One image's detections, sorted into what the legend names."""

    matched: list[Box] = field(default_factory=list)
    missing: list[Box] = field(default_factory=list)
    extra: list[Box] = field(default_factory=list)
    relabelled: list[tuple[Box, Box]] = field(default_factory=list)


def detections(
    image: Any, size: tuple[int, int] | None, found: Detections, names: tuple[str, str], title: str, path: Path
) -> None:
    """Boxes over the input image (H x W x 3 in [0, 1], shown at `size`, the run's own: the boxes' coordinates), or
    None: a white canvas that holds every box."""
    plt = _pyplot()
    every = [b.box for b in found.matched + found.missing + found.extra]
    every += [b.box for pair in found.relabelled for b in pair]
    xs = [float(x) for b in every for x in (b[0], b[2]) if abs(float(x)) < 1e7]  # NaN and far-off boxes left out
    ys = [float(y) for b in every for y in (b[1], b[3]) if abs(float(y)) < 1e7]
    height, width = size if image is not None and size is not None else (64, 64)
    # the canvas holds the image and every box (a box beyond the image is still drawn)
    pad = 1.0 if image is not None and max(xs, default=0) <= width and max(ys, default=0) <= height else 1.03
    right, bottom = max([width, *xs]) * pad, max([height, *ys]) * pad
    left, top = min([0.0, *xs]), min([0.0, *ys])
    fig, ax = plt.subplots(figsize=_size(int(bottom - top), int(right - left), 1.6))
    if image is not None:
        ax.imshow(image, extent=(0, width, height, 0), interpolation="nearest")
    ax.set_facecolor("white")
    ax.set_xlim(left, right)
    ax.set_ylim(bottom, top)
    ax.set_xticks([])
    ax.set_yticks([])
    first, other = names
    kinds = [
        (found.matched, MATCHED, f"matched ({len(found.matched)}): in both runs"),
        (found.missing, MISSING, f"missing ({len(found.missing)}): in {first} only"),
        (found.extra, EXTRA, f"extra ({len(found.extra)}): in {other} only"),
        ([a for a, _ in found.relabelled], RELABELLED, f"relabelled ({len(found.relabelled)}): {first}'s box"),
        ([b for _, b in found.relabelled], RELABELLED_OTHER, f"relabelled: {other}'s box"),
    ]
    handles = []
    for boxes, (colour, style), label in kinds:
        for b in boxes:
            _box(ax, b, colour, style)
        handles.append(plt.Line2D([0], [0], color=colour, linestyle=style, linewidth=2.5, label=printable(label, 80)))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.suptitle(printable(title), fontsize=9, wrap=True)
    fig.tight_layout()
    _save(fig, path)


def _box(ax: Any, b: Box, colour: str, style: str) -> None:
    from matplotlib import patches

    x1, y1, x2, y2 = (float(v) for v in b.box)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return  # a NaN or infinite box has no place to be drawn (the report says so)
    rect = patches.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linestyle=style, linewidth=2.5)
    ax.add_patch(rect)
    ax.text(
        x1,
        y1,
        printable(b.text, 40),
        color="white",
        fontsize=7,
        va="bottom",
        bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0, "alpha": 0.85},
        clip_on=True,
    )


def segmentation(
    image: Any, first: Any, other: Any, changed: Any, names: tuple[str, str], title: str, path: Path
) -> None:
    """Three panels: each run's classes, and where they disagree (red) over the image (or run 1's classes)."""
    plt = _pyplot()
    import numpy as np

    height, width = first.shape
    fig, axes = plt.subplots(1, 3, figsize=_size(height, width, 3))
    top = max(int(first.max()), int(other.max()), 1)
    for ax, classes, name in ((axes[0], first, names[0]), (axes[1], other, names[1])):
        ax.imshow(classes, cmap="tab20", vmin=0, vmax=max(top, 19), interpolation="nearest")
        ax.set_title(printable(f"{name}: classes"), fontsize=9)
    # under the red: the image (or run 1's classes) in pale grey, so that a changed pixel stands out
    grey = image.mean(axis=2) if image is not None else first / top
    axes[2].imshow(0.55 + 0.45 * grey, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    overlay = np.zeros((*changed.shape, 4))
    overlay[changed] = (1.0, 0.0, 0.0, 1.0)
    axes[2].imshow(overlay, interpolation="nearest")
    rows, cols = np.nonzero(changed)
    if rows.size:  # a frame around the changed pixels: one pixel of a thousand is still found
        from matplotlib import patches

        r0, r1, c0, c1 = rows.min() - 1.5, rows.max() + 1.5, cols.min() - 1.5, cols.max() + 1.5
        frame = patches.Rectangle((c0, r0), c1 - c0, r1 - r0, fill=False, edgecolor="red", linestyle="dashed")
        axes[2].add_patch(frame)
    axes[2].set_title(printable(f"red: the classes differ ({int(changed.sum())} pixels shown)"), fontsize=9)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(printable(title), fontsize=9, wrap=True)
    fig.tight_layout()
    _save(fig, path)


def _frame(ax: Any, where: Any, colour: str = NOT_FINITE) -> None:
    """A dashed frame around what differs, when it is a small part of the picture: one pixel of a million is
    still found."""
    import numpy as np
    from matplotlib import patches

    rows, cols = np.nonzero(where)
    if not rows.size or rows.size > 0.05 * where.size:
        return
    r0, r1, c0, c1 = rows.min() - 1.5, rows.max() + 1.5, cols.min() - 1.5, cols.max() + 1.5
    pad = 0.01 * max(where.shape)
    box = (c0 - pad, r0 - pad), c1 - c0 + 2 * pad, r1 - r0 + 2 * pad
    ax.add_patch(patches.Rectangle(*box, fill=False, edgecolor=colour, linestyle="dashed", linewidth=1.5))


def heatmaps(panels: Sequence[tuple[Any, str]], title: str, path: Path, note: str = "") -> None:
    """|difference| heatmaps side by side, one colour scale for all; a non-finite value (NaN or infinity in one run
    only) drawn in its own colour, never as a number."""
    plt = _pyplot()
    import matplotlib
    import numpy as np

    finite = [p[np.isfinite(p)] for p, _ in panels]
    top = max([float(f.max()) for f in finite if f.size] + [0.0]) or 1.0
    cmap = matplotlib.colormaps["magma"].with_extremes(bad=NOT_FINITE)
    height, width = panels[0][0].shape
    fig, axes = plt.subplots(1, len(panels), figsize=_size(height, width, len(panels) + 0.6), squeeze=False)
    image = None
    for ax, (values, label) in zip(axes[0], panels, strict=True):
        shown = np.ma.masked_invalid(values)
        image = ax.imshow(shown, cmap=cmap, vmin=0.0, vmax=top, interpolation="nearest")
        _frame(ax, values != 0)
        ax.set_title(printable(label, 90), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
    if any(not np.isfinite(p).all() for p, _ in panels):
        note += ("; " if note else "") + "cyan: NaN or infinity on one side only"
    fig.suptitle(printable(title, 160), fontsize=9, wrap=True)
    fig.text(0.5, 0.02, printable(note, 200), ha="center", fontsize=8, wrap=True)
    _save(fig, path)


def curves(panels: Sequence[tuple[Any, str]], title: str, path: Path) -> None:
    """A 1-d output's |difference| per element (non-finite values marked at the top), one line per panel."""
    plt = _pyplot()
    import numpy as np

    fig, ax = plt.subplots(figsize=(10, 4))
    top = max([float(p[np.isfinite(p)].max()) for p, _ in panels if np.isfinite(p).any()] + [0.0]) or 1.0
    for values, label in panels:
        marker = "o" if values.size <= 64 else None  # a few elements (a scalar): points, not an invisible line
        shown = np.where(np.isfinite(values), values, np.nan)
        line = ax.plot(shown, linewidth=1, marker=marker, markersize=5, label=printable(label, 80))
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            ax.plot(bad, np.full(bad.shape, top), "x", color=line[0].get_color(), label="non-finite")
    ax.set_xlabel("element (max over each group where the output was pooled)")
    ax.legend(fontsize=8)
    fig.suptitle(printable(title, 160), fontsize=9, wrap=True)
    fig.tight_layout()
    _save(fig, path)


@dataclass
class Sample:
    """One classification sample: each run's best classes with their scores."""

    name: str
    classes: list[int]  # the union of both runs' top classes, run 1's order first
    first: list[float]
    other: list[float]


def classification(samples: Sequence[Sample], names: tuple[str, str], title: str, path: Path) -> None:
    """Per sample, a bar pair per class: run 1's score and the other run's."""
    plt = _pyplot()
    import numpy as np

    fig, axes = plt.subplots(1, len(samples), figsize=(min(14, max(7, 3.6 * len(samples) + 1)), 4), squeeze=False)
    for ax, s in zip(axes[0], samples, strict=True):
        y = np.arange(len(s.classes))
        ax.barh(y - 0.2, s.first, height=0.4, color=MISSING[0], label=printable(names[0], 40))
        ax.barh(y + 0.2, s.other, height=0.4, color=EXTRA[0], hatch="//", label=printable(names[1], 40))
        ax.set_yticks(y, [f"class {c}" for c in s.classes], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(printable(s.name, 60), fontsize=9)
        ax.legend(fontsize=7)
    fig.suptitle(printable(title), fontsize=9, wrap=True)
    fig.tight_layout()
    _save(fig, path)


def pooled(values: Any, side: int = MAX_SIDE) -> tuple[int, int]:
    """The pooling window (rows, columns; square, so the aspect stays) that brings a [H, W] array within `side`
    pixels a side."""
    height, width = values.shape[-2], values.shape[-1]
    k = max(-(-height // side), -(-width // side))
    return k, k
