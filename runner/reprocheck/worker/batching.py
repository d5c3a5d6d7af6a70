"""Batch invariance on the torch side: the check's input at another batch size, and its outputs cut back to
the samples both runs share.

The batch is dim 0 of a single tensor argument, the list of a list argument (torchvision detection models), or dim 0
of every keyword tensor together (input_ids and attention_mask are cut or extended as one; each gets its own seeded
new samples, integers within the argument's own range).
A smaller batch takes the first samples. A larger one appends other samples, seeded and different from the
input's, so that cross-sample leakage shows as well as kernel choices:
  * tensors: same shape and dtype, uniform over the input's own value range (integers and bools likewise);
  * image lists: the input's images flipped and cropped, every other one enlarged, so other realistic sizes,
    larger and smaller (detection models pad a batch to its largest image, which is what changes).
Outputs are per-sample when a tensor leaf's dim 0 is the batch size in both runs, or a list's length is; those
are cut to the shared samples and compared, every other leaf is left out and named in the report.
"""

from __future__ import annotations

from typing import Any

from ..spec.types import MAX_ELEMENTS
from ..tree import IGNORED, Outputs, tree_leaves

# Crops of the extra images, as fractions of the original's height and width: other sizes, same content.
CROPS = ((0.9, 0.75), (0.7, 0.95), (0.8, 0.6), (0.6, 0.85))


def samples(args: tuple[Any, ...], kwargs: dict[str, Any]) -> int | None:
    """The input's batch size, or None when it has no batch: one tensor or list argument, or keyword arguments
    whose tensors (those with a dimension) all share dim 0."""
    import torch

    if kwargs and not args:
        sizes = {int(v.shape[0]) for v in kwargs.values() if isinstance(v, torch.Tensor) and v.dim() >= 1}
        return sizes.pop() if len(sizes) == 1 else None
    if kwargs or len(args) != 1:
        return None
    value = args[0]
    if isinstance(value, torch.Tensor) and value.dim() >= 1:
        return int(value.shape[0])
    if isinstance(value, list) and all(isinstance(v, torch.Tensor) for v in value):
        return len(value)
    return None


def rebatch(
    args: tuple[Any, ...], kwargs: dict[str, Any], size: int, seed: int
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The input at batch `size` (see the module's docstring): every batched argument cut or extended together.
    Raises ValueError for inputs without one batch."""
    import zlib

    import torch

    n = samples(args, kwargs)
    if n is None:
        sizes = ", ".join(f"{k}: {v.shape[0]}" for k, v in kwargs.items() if isinstance(v, torch.Tensor) and v.dim())
        raise ValueError(
            "batch invariance needs one tensor or list argument, or keyword tensors sharing dim 0, as the batch"
            + (f" (dim 0 of the keyword inputs: {sizes})" if sizes else "")
        )
    if kwargs:
        out = {
            k: _rebatch(v, n, size, seed + zlib.crc32(k.encode())) if isinstance(v, torch.Tensor) and v.dim() else v
            for k, v in kwargs.items()
        }
        return (), out
    return (_rebatch(args[0], n, size, seed),), {}


def _rebatch(value: Any, n: int, size: int, seed: int) -> Any:
    import torch

    if size <= n:
        return value[:size]
    g = torch.Generator().manual_seed(seed + 7919 * size)  # seeded, and unlike the input's own samples
    if isinstance(value, list):
        extra = []
        for k in range(size - n):
            img = value[k % n].flip(-1)
            fh, fw = CROPS[k % len(CROPS)]
            h, w = max(1, int(img.shape[-2] * fh)), max(1, int(img.shape[-1] * fw))
            top = int(torch.randint(0, img.shape[-2] - h + 1, (1,), generator=g))
            left = int(torch.randint(0, img.shape[-1] - w + 1, (1,), generator=g))
            crop = img[..., top : top + h, left : left + w]
            if k % 2 == 0:  # every other one larger than the input's: the batch is padded to it
                crop = _resize(crop, int(img.shape[-2] * 1.25), int(img.shape[-1] * 1.2))
            extra.append(crop.contiguous())
        return [*value, *extra]
    shape = (size - n, *value.shape[1:])
    if value.numel() // max(n, 1) * size > MAX_ELEMENTS:
        raise ValueError(
            f"batch {size} makes the input {[size, *value.shape[1:]]}, more than {MAX_ELEMENTS:,} elements; "
            "use a smaller invariance.batch"
        )
    if value.dtype == torch.bool:
        more = torch.randint(0, 2, shape, generator=g).bool()
    elif not value.is_floating_point():
        lo, hi = int(value.min()), int(value.max())  # the input's own range: token ids stay in the vocabulary
        more = torch.randint(lo, hi + 1, shape, generator=g, dtype=value.dtype)
    else:
        low, high = float(value.min()), float(value.max())
        # in the input's own dtype: no float64 copy of a large batch first
        work = value.dtype if value.dtype in (torch.float32, torch.float64) else torch.float32
        more = (torch.rand(shape, generator=g, dtype=work) * (high - low) + low).to(value.dtype)
    return torch.cat([value, more.to(value.device)])


def _resize(img: Any, h: int, w: int) -> Any:
    import torch

    as_float = img.to(torch.float32).unsqueeze(0)
    out = torch.nn.functional.interpolate(as_float, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out.round().clamp(0, 255).to(img.dtype) if not img.is_floating_point() else out.to(img.dtype)


def per_sample(expected: Outputs, n: int, obtained: Outputs, b: int) -> tuple[Outputs, Outputs, list[str]]:
    """Both runs' outputs cut to the first min(n, b) samples; the leaves that are not per-sample are dropped
    and returned by path. A key on one side only, or lists of other lengths, stay whole: a structure difference.
    What `ignore:` left out stays as its placeholder (equal on both sides), never "not per-sample"."""
    m = min(n, b)
    left_out: list[str] = []

    def cut(e: dict[str, Any], o: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        if e["t"] != o["t"] or (e["t"] == "value" and e["value"] == IGNORED):
            return e, o  # a structure difference (compared and reported as such), or an ignored output
        if e["t"] in ("list", "tuple") and len(e["items"]) == n and len(o["items"]) == b:
            return ({**e, "items": e["items"][:m]}, {**o, "items": o["items"][:m]})
        if e["t"] == "dict":
            eo, ek = dict(o["items"]), {k for k, _ in e["items"]}
            items_e, items_o = [], []
            for k, child in e["items"]:
                if k not in eo:  # a key on one side only stays whole: a structure difference
                    items_e.append([k, child])
                    continue
                ce, co = cut(child, eo[k])
                if ce is not None and co is not None:
                    items_e.append([k, ce])
                    items_o.append([k, co])
            items_o += [[k, child] for k, child in o["items"] if k not in ek]
            return {**e, "items": items_e}, {**o, "items": items_o}
        if e["t"] in ("list", "tuple"):
            if len(e["items"]) != len(o["items"]):
                return e, o  # lengths that are not the batch: a structure difference
            pairs = [cut(ce, co) for ce, co in zip(e["items"], o["items"], strict=True)]
            kept = [(ce, co) for ce, co in pairs if ce is not None and co is not None]
            return {**e, "items": [ce for ce, _ in kept]}, {**o, "items": [co for _, co in kept]}
        if e["t"] == "tensor":
            te, to = expected.tensors[e["path"]], obtained.tensors[o["path"]]
            if te.dim() >= 1 and te.shape[0] == n and to.dim() >= 1 and to.shape[0] == b:
                tensors_e[e["path"]], tensors_o[o["path"]] = te[:m], to[:m]
                return e, o
            if te.dim() >= 1 and te.shape[0] == n and tuple(to.shape) != tuple(te.shape):
                # Per-sample here, of another shape there that is no batch (a batch dimension squeezed away at
                # batch 1): a structure difference, compared whole. A leaf of the same shape at every batch size is
                # not per-sample and is left out.
                tensors_e[e["path"]], tensors_o[o["path"]] = te, to
                return e, o
        left_out.append(e.get("path", "?"))
        return None, None

    tensors_e: dict[str, Any] = {}
    tensors_o: dict[str, Any] = {}
    tree_e, tree_o = cut(expected.tree, obtained.tree)
    # Leaves inside kept list elements are whole samples: carried over as they are.
    for tree, source, target in ((tree_e, expected, tensors_e), (tree_o, obtained, tensors_o)):
        for path in tree_leaves(tree) if tree is not None else []:
            target.setdefault(path, source.tensors[path])
    empty = {"t": "list", "items": []}
    return Outputs(tree_e or empty, tensors_e), Outputs(tree_o or empty, tensors_o), left_out
