"""Planted models for test_verdict_power.py: outputs a verdict could pass without seeing them. Each factory is one
way to look reproducible while nothing informative was compared (constant task outputs, Python constants left
beside ignored tensors, caches judged as class scores), or to hide a difference (a key on one side of a batch
variant, a NaN on one stack only)."""

import os

import torch
from torch import nn


class Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.lin = nn.Linear(8, 8)

    def forward(self, x):
        return self.fn(self, x)


def _noise(*shape):
    # Fresh values every run, whatever the recipe seeds: genuine run-to-run variation.
    g = torch.Generator().manual_seed(int.from_bytes(os.urandom(4), "little"))
    return torch.rand(*shape, generator=g)


def _run_count():
    # A counter beside this module: each run sees the next number (run 1 sees 1).
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), ".verdict-counter")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        n = int(os.read(fd, 32) or b"0") + 1
        os.lseek(fd, 0, 0)
        os.ftruncate(fd, 0)
        os.write(fd, str(n).encode())
        return n
    finally:
        os.close(fd)


# --- constant task outputs: blind under a compare rule ----------------------------------------------


def constant_scores():
    # A zero-initialised head judged as classes: every sample's scores are 0 in every run.
    return Fn(lambda m, x: {"logits": torch.zeros(x.shape[0], 5)})


def constant_boxes():
    # A detector whose box head outputs one box, one score and one label for everything.
    return Fn(
        lambda m, x: [{"boxes": torch.zeros(3, 4), "scores": torch.full((3,), 0.5), "labels": torch.ones(3).long()}]
    )


def constant_masks():
    # A segmenter whose class scores are all 0.
    return Fn(lambda m, x: {"out": torch.zeros(1, 3, 8, 8)})


def informative_beside_constant():
    # Real class scores beside one constant output: the check sees, through the task output.
    return Fn(lambda m, x: {"logits": m.lin(x), "zero": torch.zeros(x.shape[0], 5)})


def constant_beside_noise():
    # One constant output beside one that differs every run: the check fails, and still names the constant one.
    return Fn(lambda m, x: {"zero": torch.zeros(4, 5), "noise": _noise(4, 8)})


# --- ignore: what is left must be able to see ---------------------------------------------------------

LEFT = {"str": "resnet", "int": 3, "float": 0.5, "bool": True, "none": None}


def noise_beside(kinds=("str",)):
    # Every tensor differs run to run; `ignore: [noise]` leaves only Python values, or a 0-d tensor.
    def fwd(m, x):
        kept = {k: m.lin(x).sum() if k == "tensor0d" else LEFT[k] for k in kinds}
        return {"noise": _noise(4, 8), **kept}

    return Fn(fwd)


# --- a classification glob over a Hugging Face-like output ------------------------------------------


def scores_cache_and_boxes():
    # Logits the same every run; cache keys/values [B, heads, T, D] and pred_boxes [B, queries, 4] that move by a
    # little every run, never enough to change an argmax: judged as class scores, they would pass.
    def fwd(m, x):
        b = x.shape[0]
        logits = torch.arange(b * 3 * 10, dtype=torch.float32).reshape(b, 3, 10)
        key = torch.arange(b * 2 * 3 * 4, dtype=torch.float32).reshape(b, 2, 3, 4) + 1e-4 * _noise(b, 2, 3, 4)
        boxes = torch.arange(b * 3 * 4, dtype=torch.float32).reshape(b, 3, 4) + 1e-4 * _noise(b, 3, 4)
        cache = {"layers": [{"keys": key, "values": key * 2}]}
        return {"logits": logits, "past_key_values": cache, "pred_boxes": boxes}

    return Fn(fwd)


# --- batch variants ---------------------------------------------------------------------------------------


def key_at_one_batch():
    # At batch 1 the output grows a key: a structure difference, not something to leave out.
    def fwd(m, x):
        out = {"y": x * 2}
        if x.shape[0] == 1:
            out["extra"] = x * 3
        return out

    return Fn(fwd)


def per_sample_cache():
    # `cache` is per-sample (dim 0 is the batch) and ignored by the spec.
    return Fn(lambda m, x: {"y": x * 2, "cache": x * 3})


# --- NaN ----------------------------------------------------------------------------------------------------


def nan_in_run_two():
    # Run 2 has a NaN where run 1 has 1: a NaN mismatch (and nothing else differs).
    def fwd(m, x):
        out = torch.ones(4, 8)
        if _run_count() == 2:
            out[0, 0] = float("nan")
        return out

    return Fn(fwd)


def nan_on_old_stack():
    # The old stack (VERDICT_TEST_STACK=old) computes a NaN in float32 where the float64 reference is finite; the
    # new stack's output is changed everywhere.
    def fwd(m, x):
        old = os.environ.get("VERDICT_TEST_STACK") == "old"
        out = x * 2 if old else x * 2 + 1
        if old and x.dtype == torch.float32:
            out = out.clone()
            out[0, 0] = float("nan")
        return out

    return Fn(fwd)


class _TextAndImages(nn.Module):
    def forward(self, text, images):
        return {"text": text * 2, "images": images * 2}


def text_and_images():
    # Keyword inputs with batches of their own (2 texts, 3 images), as CLIP takes them.
    return _TextAndImages()
