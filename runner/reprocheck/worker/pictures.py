"""`--pictures` on the torch side (the `draw` helper call): what differs between two saved output sets (run 1 and
another run, a variant, or two stacks' goldens) drawn from the files the runs saved, never by running the model
again. Loaded with reprocheck's own loaders (weights-only `torch.load`, safetensors): nothing is unpickled.

  * detection (a `compare:` rule's dicts): the input image, rebuilt as the run built it (inputs.build, from the spec
    and the seed: no model code runs), with both runs' boxes: matched, missing, extra and relabelled, each its own
    colour and line style;
  * segmentation: each run's classes, and where they disagree over the image;
  * classification: each differing sample's best classes in both runs;
  * any other floating output that differs: a heatmap of |difference| (a [N, C, H, W] output: its most differing
    sample, the largest over its channels; a 1-d one: a curve), max-pooled down to MAX_SIDE pixels a side;
  * with a float64 reference (invariance variants, upgrade): each side's |error| against it, on one scale.
A picture that cannot be drawn is a note, never a failure: pictures only illustrate a verdict made elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..pictures import LIMIT, MAX_BOXES, MAX_SAMPLES, MAX_SIDE, Picture, safe_name
from ..protocol import DrawAnswer, DrawRequest
from ..tree import Outputs
from . import drawing

CHUNK = 1 << 23  # elements of one slice of a difference computed at a time (float64: 64 MiB)
SCAN = 1024  # samples of an output searched for the one that differs most
CURVE = 4096  # points of a 1-d output's curve


def load(path: str) -> Outputs:
    """A run's outputs.pt or a golden (.safetensors), with the loaders the comparison uses."""
    if path.endswith(".safetensors"):
        from . import goldens

        return goldens.load(Path(path))[0]
    from . import outputs

    return outputs.load(Path(path))


def draw(request: DrawRequest) -> DrawAnswer:
    ref = load(request.reference) if request.reference else None
    d = _Drawer(request, load(request.expected), load(request.obtained), ref)
    claimed = d.tasks()
    d.values(claimed)
    if d.skipped:
        d.notes.append(f"pictures: {d.skipped} more differing output(s) not drawn; the first {d.limit} are")
    return DrawAnswer(pictures=d.pictures, notes=d.notes)


class _Drawer:
    def __init__(self, request: DrawRequest, exp: Outputs, obt: Outputs, ref: Outputs | None) -> None:
        self.request, self.exp, self.obt, self.ref = request, exp, obt, ref
        self.folder = Path(request.folder)
        self.names = (request.names[0], request.names[1])
        self.limit = min(request.limit, LIMIT * 4)
        self.pictures: list[Picture] = []
        self.notes: list[str] = []
        self.skipped = 0
        self._images: list[tuple[Any, tuple[int, int]]] | None = None

    def wanted(self, path: str) -> bool:
        return not self.request.paths or path in self.request.paths

    def add(self, output: str, kind: str, caption: str, draw: Any) -> None:
        """One picture, named from the prefix, the output and its kind; a failure to draw it is a note."""
        if len(self.pictures) >= self.limit:
            self.skipped += 1
            return
        stem = safe_name(self.request.prefix, output or "output", kind)
        name, n = f"{stem}.png", 1
        while any(p.file == name for p in self.pictures):
            n += 1
            name = f"{stem}-{n}.png"
        try:
            draw(self.folder / name)
        except Exception as exc:
            self.notes.append(f"pictures: {output or 'output'} not drawn ({type(exc).__name__}: {exc})"[:300])
            return
        self.pictures.append(Picture(file=name, output=output, caption=caption))

    # --- the task outputs (compare: rules) ------------------------------------------------------------------

    def tasks(self) -> set[str]:
        """Each `compare:` rule's outputs drawn as its task; the leaves they took (not drawn again as values)."""
        from .tasks import RuleError, select
        from .tasks.select import node_at

        check = self.request.check
        rules = check.compare.outputs if check is not None else {}
        try:
            selection = select(self.exp, rules) if rules else []
        except RuleError as exc:
            self.notes.append(f"pictures: {exc}")
            return set()
        claimed: set[str] = set()
        images = 0
        for sel in selection:
            try:
                node_e, node_o = node_at(self.exp.tree, sel.path), node_at(self.obt.tree, sel.path)
            except KeyError:
                continue
            if sel.rule.as_ == "detection":
                claimed |= {c["path"] for _, c in node_e.get("items", ()) if c["t"] in ("tensor", "scalar")}
                if self.wanted(sel.name):
                    self.detection(sel, node_e, node_o, images)
                images += 1
                continue
            if node_e["t"] != "tensor" or node_o["t"] != "tensor":
                continue
            claimed.add(node_e["path"])
            e, o = self.exp.tensors[node_e["path"]], self.obt.tensors[node_o["path"]]
            if not self.wanted(sel.name) or e.shape != o.shape:
                continue
            if sel.rule.as_ == "classification":
                self.classification(sel, e, o)
            else:
                self.segmentation(sel, e, o)
        return claimed

    def detection(self, sel: Any, node_e: dict[str, Any], node_o: dict[str, Any], index: int) -> None:
        from .tasks import RuleError, dict_tensors
        from .tasks import detection as det

        e_d, o_d = dict_tensors(node_e, self.exp.tensors), dict_tensors(node_o, self.obt.tensors)
        try:
            result, pairs = det.compare(sel, e_d, o_d, (1, 2))
        except RuleError:
            return
        if pairs is None:
            self.notes.append(f"pictures: {sel.name}: the detections' structure differs ({result.detail}): not drawn")
            return
        if result:
            return
        exp = det.parse(e_d, sel.name, sel.tensor_keys)[0]
        obt = det.parse(o_d, sel.name, tuple(k for k in sel.tensor_keys if k in o_d))[0]
        assert exp is not None and obt is not None
        found = _sorted_detections(exp, obt, pairs)
        images = self.images()
        image, size = images[index] if index < len(images) else (None, None)
        stats = result.task.stats if result.task is not None else {}
        caption = (
            f"{sel.name}: {stats.get('matched', 0) - stats.get('label_change_count', 0)} matched, "
            f"{stats.get('missing_count', 0)} missing, "
            f"{stats.get('extra_count', 0)} extra, {stats.get('label_change_count', 0)} relabelled "
            f"({self.names[0]} vs {self.names[1]})"
        )
        self.add(
            sel.name, "detection", caption, lambda p: drawing.detections(image, size, found, self.names, caption, p)
        )

    def classification(self, sel: Any, e: Any, o: Any) -> None:
        from .tasks.classification import ranked, sample_index, scores_by_sample

        dim = -1 if sel.rule.dim is None else sel.rule.dim
        k = sel.rule.top_k or 1
        es, os_ = scores_by_sample(e, dim), scores_by_sample(o, dim)
        lead = tuple(e.movedim(dim, -1).shape[:-1])
        shown = min(max(k, 3), 10, es.shape[1])
        _, ec = ranked(es, shown)
        _, oc = ranked(os_, shown)
        kk = min(k, ec.shape[1])
        differ = (ec[:, :kk] != oc[:, :kk]).any(dim=1).nonzero().flatten().tolist()
        if not differ:
            return
        samples = []
        for s in differ[:MAX_SAMPLES]:
            classes = list(dict.fromkeys(ec[s, :shown].tolist() + oc[s, :shown].tolist()))
            if es.shape[1] == 1:  # a binary score: one bar, its value
                classes = [0]
            first = es[s, classes].nan_to_num(nan=0.0).tolist()
            other = os_[s, classes].nan_to_num(nan=0.0).tolist()
            samples.append(drawing.Sample(f"sample {sample_index(s, lead)}", classes, first, other))
        caption = (
            f"{sel.name}: {len(differ)} of {es.shape[0]} samples changed their top-{k} classes; "
            f"the first {len(samples)} drawn, {self.names[0]} and {self.names[1]}"
        )
        self.add(sel.name, "classes", caption, lambda p: drawing.classification(samples, self.names, caption, p))

    def segmentation(self, sel: Any, e: Any, o: Any) -> None:
        import torch

        from .tasks.segmentation import labels

        dim = -3 if sel.rule.dim is None else sel.rule.dim
        le, lo = labels(e, dim), labels(o, dim)
        if le.dim() != 3 or le.shape != lo.shape:
            return
        changed = le != lo
        counts = changed.flatten(1).sum(dim=1)
        s = int(counts.argmax())
        if not int(counts[s]):
            return
        rh, rw = drawing.pooled(le[s])
        first, other = le[s, ::rh, ::rw].numpy(), lo[s, ::rh, ::rw].numpy()
        pooled = torch.nn.functional.max_pool2d(
            changed[s][None, None].float(), (rh, rw), stride=(rh, rw), ceil_mode=True
        )[0, 0]
        mask = (pooled[: first.shape[0], : first.shape[1]] > 0).numpy()
        images = self.images()
        image = _fit(images[min(s, len(images) - 1)][0], first.shape) if images else None
        where = f"sample {s} of {le.shape[0]}, " if le.shape[0] > 1 else ""
        caption = f"{sel.name}: {where}{int(counts[s])} of {le[s].numel()} pixels changed class"
        self.add(
            sel.name,
            "segmentation",
            caption,
            lambda p: drawing.segmentation(image, first, other, mask, self.names, caption, p),
        )

    # --- every other floating output ------------------------------------------------------------------------

    def values(self, claimed: set[str]) -> None:
        for path, e in self.exp.tensors.items():
            o = self.obt.tensors.get(path)
            if path in claimed or not self.wanted(path) or o is None or o.shape != e.shape or not e.numel():
                continue
            if not (e.is_floating_point() and o.is_floating_point()):
                continue
            n, count = _most_differing(e, o)
            if not count:
                continue
            r = self.ref.tensors.get(path) if self.ref is not None else None
            if r is not None and (r.shape != e.shape or not r.is_floating_point()):
                r = None
            self.value(path, e, o, r, n, count)

    def value(self, path: str, e: Any, o: Any, r: Any, n: int, count: int) -> None:
        a, b = self.names
        pairs = [(e, o, f"|{a} - {b}|")] if r is None else [(e, r, f"|{a} - float64|"), (o, r, f"|{b} - float64|")]
        kind = "difference" if r is None else "reference"
        where = f"{count} of {e.numel()} elements differ"
        if e.dim() < 2 or min(e.shape[-2], e.shape[-1]) < 2:
            panels = [(_curve(x, y), label) for x, y, label in pairs]
            title = f"{path}: {where}" + ("" if r is None else "; error against the float64 reference")
            self.add(path, kind, title, lambda p: drawing.curves(panels, title, p))
            return
        grid = _nchw(e)
        sample = f"sample {n} of {grid.shape[0]}, " if grid.shape[0] > 1 else ""
        channels = f"largest over {grid.shape[1]} channels, " if grid.shape[1] > 1 else ""
        rh, rw = drawing.pooled(grid[n])
        pooled = f"max-pooled {rh}x{rw}, " if rh * rw > 1 else ""
        note = f"{sample}{channels}{pooled}shape {list(e.shape)}"
        heat = [(_heat(_nchw(x)[n], _nchw(y)[n], (rh, rw)), label) for x, y, label in pairs]
        title = f"{path}: {where}" + ("" if r is None else "; each side's error against the float64 reference")
        self.add(path, kind, f"{title} ({note})", lambda p: drawing.heatmaps(heat, title, p, note))

    # --- the input, rebuilt ---------------------------------------------------------------------------------

    def images(self) -> list[tuple[Any, tuple[int, int]]]:
        """The input's images (H x W x 3 in [0, 1], and the size the run saw), rebuilt from the spec and the seed
        as the run built them."""
        if self._images is not None:
            return self._images
        self._images = []
        check = self.request.check
        if check is None:
            return self._images
        from .inputs import build
        from .models import BuiltModel

        seed = check.seed if self.request.input_seed is None else self.request.input_seed
        try:
            args, kwargs = build(check.input, seed, "cpu", BuiltModel(module=None, is_detection=False, weights=None))
        except Exception as exc:
            self.notes.append(f"pictures: the input could not be rebuilt to draw on ({type(exc).__name__}): {exc}")
            return self._images
        for value in [*args, *kwargs.values()]:
            self._images = _image_list(value)
            if self._images:
                break
        return self._images


def _sorted_detections(exp: dict[str, Any], obt: dict[str, Any], pairs: list[tuple[int, int]]) -> drawing.Detections:
    def text(d: dict[str, Any], i: int) -> str:
        label = f"{int(d['labels'][i])}" if "labels" in d else "box"
        return label + (f" {float(d['scores'][i]):.2f}" if "scores" in d else "")

    def box(d: dict[str, Any], i: int, words: str = "") -> drawing.Box:
        return drawing.Box([float(x) for x in d["boxes"][i]], words or text(d, i))

    found = drawing.Detections()
    for i, j in pairs:
        if "labels" in exp and int(exp["labels"][i]) != int(obt["labels"][j]):
            change = f"{int(exp['labels'][i])}→{int(obt['labels'][j])}"
            found.relabelled.append((box(exp, i, change), box(obt, j, text(obt, j))))
        else:
            found.matched.append(box(exp, i))
    used_e, used_o = {i for i, _ in pairs}, {j for _, j in pairs}
    found.missing = [box(exp, i) for i in range(exp["boxes"].shape[0]) if i not in used_e]
    found.extra = [box(obt, j) for j in range(obt["boxes"].shape[0]) if j not in used_o]
    for kind in ("matched", "missing", "extra", "relabelled"):
        setattr(found, kind, getattr(found, kind)[:MAX_BOXES])
    return found


def _nchw(t: Any) -> Any:
    """[N, C, H, W]: a [H, W] output is one sample of one channel, [C, H, W] one sample, more leading dims samples."""
    if t.dim() == 2:
        return t[None, None]
    if t.dim() == 3:
        return t[None]
    return t.reshape(-1, t.shape[-3], t.shape[-2], t.shape[-1])


def _most_differing(e: Any, o: Any) -> tuple[int, int]:
    """The sample (of _nchw, the first SCAN) whose elements differ most often, and how many elements differ in all."""
    from .tasks.select import nan_aware_diff

    if e.dim() < 2 or min(e.shape[-2], e.shape[-1]) < 2:
        flat_e, flat_o = e.reshape(-1), o.reshape(-1)
        total = sum(
            int((nan_aware_diff(flat_e[i : i + CHUNK], flat_o[i : i + CHUNK]) > 0).sum())
            for i in range(0, flat_e.numel(), CHUNK)
        )
        return 0, total
    ge, go = _nchw(e), _nchw(o)
    best, best_count, total = 0, -1, 0
    for n in range(ge.shape[0]):
        count = sum(int((d > 0).sum()) for d in _diff_rows(ge[n], go[n]))
        total += count
        if n < SCAN and count > best_count:
            best, best_count = n, count
    return best, total


def _diff(x: Any, y: Any) -> Any:
    """|x - y| in float64 by the elementwise NaN rule, infinite where a NaN or an infinity is on one side only."""
    import torch

    from .tasks.select import nan_aware_diff

    d = nan_aware_diff(x, y)  # its NaN-in-one-side is the largest float64: drawn as what it is
    return torch.where(d >= torch.finfo(torch.float64).max, torch.full_like(d, float("inf")), d)


def _diff_rows(x: Any, y: Any, step: int = 1) -> Any:
    """|x - y| of a [C, H, W] pair, largest over C, a slice of rows (a multiple of `step`) at a time."""
    c, h, w = x.shape
    rows = max(step, (CHUNK // max(c * w, 1)) // step * step)
    for r0 in range(0, h, rows):
        yield _diff(x[:, r0 : r0 + rows], y[:, r0 : r0 + rows]).amax(dim=0)


def _heat(x: Any, y: Any, window: tuple[int, int]) -> Any:
    """|x - y| of a [C, H, W] pair, largest over channels, max-pooled by `window`, as a float64 array (inf: a NaN
    or infinity in one side only)."""
    import torch

    parts = [
        torch.nn.functional.max_pool2d(d[None, None], window, stride=window, ceil_mode=True)[0, 0]
        for d in _diff_rows(x, y, window[0])
    ]
    return torch.cat(parts).numpy()


def _curve(x: Any, y: Any) -> Any:
    """A 1-d output's |x - y|, max-pooled to at most CURVE points."""
    import torch

    d = _diff(x.reshape(-1), y.reshape(-1))
    step = -(-d.numel() // CURVE)
    if step > 1:
        d = torch.nn.functional.max_pool1d(d[None, None], step, stride=step, ceil_mode=True)[0, 0]
    return d.numpy()


def _image_list(value: Any) -> list[tuple[Any, tuple[int, int]]]:
    """The images in one input argument (a CHW tensor, an NCHW batch, a list of CHW tensors), at most LIMIT, each
    H x W x 3 in [0, 1] (stretched to its own range: a normalised input shows as the picture it was) and at most
    MAX_SIDE pixels a side, with its size as the run saw it."""
    import torch

    if isinstance(value, (list, tuple)):
        return [img for v in value[:LIMIT] for img in _image_list(v)][:LIMIT]
    if not isinstance(value, torch.Tensor) or value.is_complex() or value.dtype == torch.bool:
        return []
    if value.dim() == 4 and value.shape[1] in (1, 3):
        return [img for v in value[:LIMIT] for img in _image_list(v)]
    if value.dim() != 3 or value.shape[0] not in (1, 3) or min(value.shape[1:]) < 2:
        return []
    t = value.detach().cpu().double().nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)
    size = (int(t.shape[1]), int(t.shape[2]))
    side = max(t.shape[1:])
    if side > MAX_SIDE:
        small = (max(1, t.shape[1] * MAX_SIDE // side), max(1, t.shape[2] * MAX_SIDE // side))
        t = torch.nn.functional.interpolate(t[None], size=small, mode="area")[0]
    low, high = float(t.min()), float(t.max())
    t = (t - low) / (high - low) if high > low else torch.zeros_like(t)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return [(t.permute(1, 2, 0).numpy(), size)]


def _fit(image: Any, shape: tuple[int, int]) -> Any:
    """An image (H x W x 3) resized to a map's shape, to lie under it."""
    import torch

    t = torch.from_numpy(image).permute(2, 0, 1)[None]
    return torch.nn.functional.interpolate(t, size=tuple(shape), mode="bilinear")[0].permute(1, 2, 0).numpy()
