"""The trace's fingerprints and the comparison of two traces, in process: position-sensitive hashes, what cannot be
hashed, where sequences part, a cut or cropped trace."""

import json

import torch

from reprocheck.worker.probe import TRACE_FILE, fingerprint
from reprocheck.worker.trace_diff import first_divergence


def test_the_hash_sees_a_permutation_that_an_xor_sum_would_pass():
    t = torch.arange(16, dtype=torch.float32)
    a, b = fingerprint(t), fingerprint(t.flip(0))
    assert a is not None and b is not None
    assert a[0] != b[0] and a[1] == b[1]  # same norm, other order: only the hash tells them apart
    assert (
        fingerprint(t.reshape(4, 4).t())[0] == fingerprint(t.reshape(4, 4).t().contiguous())[0]
    )  # values, not strides


def test_odd_tensors_are_fingerprinted_or_skipped_never_raised():
    nan = fingerprint(torch.tensor([1.0, float("nan"), float("inf")]))
    assert nan[2] == 2 and nan[1] == 1.0  # the norm of the finite values, the rest counted
    for t in (torch.zeros(0), torch.tensor(3), torch.ones(2, dtype=torch.bfloat16), torch.ones(2, dtype=torch.bool)):
        assert fingerprint(t) is not None
    assert fingerprint(torch.ones(2, dtype=torch.complex64)) is not None
    assert fingerprint(torch.ones(2, 2).to_sparse()) is None
    assert fingerprint(torch.empty(2, device="meta")) is None


def _trace(folder, *records):
    folder.mkdir()
    (folder / TRACE_FILE).write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _op(name, module="m", fp="h1", i=1):
    return {"o": name, "m": module, "c": 1, "i": i, "f": [[fp, 1.0, 0, [2], "float32"]]}


def test_the_first_differing_op_and_module_and_where_sequences_part(tmp_path):
    same, other = _op("aten::add.Tensor"), _op("aten::mul.Tensor", fp="h2", i=2)
    module = {"M": "m", "t": "Linear", "c": 1, "f": [["output", ["x", 1.0, 0, [2], "float32"]]]}
    moved = dict(module, f=[["output", ["y", 1.0, 0, [2], "float32"]]])
    a = _trace(tmp_path / "a", {"L": "model.py:3"}, dict(same, l=0), _op("aten::mul.Tensor", i=2), module)
    b = _trace(tmp_path / "b", {"L": "model.py:3"}, dict(same, l=0), other, moved)
    d = first_divergence(a, b)
    assert (d.found, d.module, d.module_call, d.op.op, d.op.position, d.op.index) == (
        True,
        "m",
        1,
        "aten::mul.Tensor",
        1,
        2,
    )
    c = _trace(tmp_path / "c", same, _op("aten::relu"))
    parted = first_divergence(a, c).op
    assert parted.parted and parted.op == "aten::mul.Tensor" and "run 2 ran aten::relu in m" in parted.detail
    assert first_divergence(a, a) is None


def test_a_trace_cut_by_its_cap_or_mid_line_stops_the_comparison_there(tmp_path):
    a = _trace(tmp_path / "a", _op("aten::add.Tensor"), {"stop": "the trace reached its cap of 1 MB"})
    b = _trace(tmp_path / "b", _op("aten::add.Tensor"), _op("aten::relu"))
    d = first_divergence(a, b)
    assert d is not None and not d.found and d.op is None and "cap of 1 MB" in d.stopped
    (tmp_path / "b" / TRACE_FILE).write_text(json.dumps(_op("aten::add.Tensor")) + '\n{"o": "aten::re')
    d = first_divergence(b, b)
    assert d is not None and "partial line" in d.stopped
