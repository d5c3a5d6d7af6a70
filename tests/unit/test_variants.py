"""Which variants a fork of the check's zygote may run: only those that keep the environment torch was imported
with. Spawn isolation here: nothing is started, the choice is all that is tested (the runs are in tests/cli)."""

import dataclasses

from helpers import planted_spec
from reprocheck.host.workers.isolated import CheckWorkers, Isolation
from reprocheck.spec import load_spec


def _prepared(tmp_path, env=None):
    (lc,) = load_spec(str(planted_spec(tmp_path, "mlp", extra="recipe: {threads: 2}\n")))
    return lc, CheckWorkers(lc, tmp_path / "work", Isolation.SPAWN, env=env)


def _changed(lc, **update):
    return dataclasses.replace(lc, check=lc.check.model_copy(update=update)).check


def test_a_variant_in_the_same_environment_may_fork(tmp_path):
    lc, prepared = _prepared(tmp_path)
    assert prepared.shares_environment(lc.check)
    assert prepared.shares_environment(_changed(lc, runs=1, device="cpu"))  # batch, device, float64 variants


def test_another_thread_count_or_a_varied_environment_needs_a_fresh_worker(tmp_path):
    lc, prepared = _prepared(tmp_path)
    threads = lc.check.recipe.model_copy(update={"threads": 1})
    assert not prepared.shares_environment(_changed(lc, recipe=threads))
    assert not prepared.shares_environment(_changed(lc, seed=lc.check.seed + 1))  # the hash seed follows the seed
    _, varied = _prepared(tmp_path, env={"PYTHONHASHSEED": "5"})  # diagnose's variations
    assert not varied.shares_environment(lc.check)
