"""What every neighbouring tool has: -V, and --model-cache on every command that runs models (run, diagnose,
calibrate; docker and upgrade have theirs), through the real CLI."""

import pytest

from helpers import reprocheck, write_spec

# A model that needs its weights folder: it builds only when TORCH_HOME is the cache's torch/ and holds the file.
CACHED = """
import os, torch

def build():
    home = os.environ.get("TORCH_HOME", "")
    if not os.path.isfile(os.path.join(home, "weights.txt")):
        raise RuntimeError(f"no weights under TORCH_HOME={home!r}")
    torch.manual_seed(0)
    return torch.nn.Linear(8, 2)
"""


def _cached_spec(folder):
    (folder / "cached.py").write_text(CACHED)
    spec = write_spec(
        folder,
        'version: 1\nmodel: {factory: "cached:build"}\ninput: {random: {shape: [2, 8]}}\nrecipe: {threads: 1}\n',
    )
    cache = folder / "models"
    (cache / "torch").mkdir(parents=True)
    (cache / "torch" / "weights.txt").write_text("w")
    return spec, cache


def test_dash_capital_v_is_the_version():
    r = reprocheck("-V")
    assert r.code == 0 and r.out.startswith("reprocheck "), r


@pytest.mark.parametrize("command", ["run", "diagnose", "calibrate"])
def test_every_command_that_runs_models_takes_the_model_cache(tmp_path, command):
    spec, cache = _cached_spec(tmp_path)
    extra = ["--runs", "2"] if command == "calibrate" else []
    r = reprocheck(command, str(spec), "--model-cache", str(cache), *extra)
    assert r.code == 0, r
    without = reprocheck(command, str(spec), *extra)  # the same model without it cannot build
    assert without.code == 3 and "no weights under TORCH_HOME" in without.out + without.err, without


@pytest.mark.parametrize("command", ["diagnose", "calibrate"])
def test_a_bad_model_cache_is_refused_before_anything_runs(tmp_path, command):
    spec, _ = _cached_spec(tmp_path)
    r = reprocheck(command, str(spec), "--model-cache", str(tmp_path / "nowhere"))
    assert r.code == 2 and "--model-cache" in r.err and "no such folder" in r.err, r
    r = reprocheck(command, str(spec), "--model-cache", "/proc")  # the host's own folders never become the cache
    assert r.code == 2 and "--model-cache" in r.err and "Traceback" not in r.err, r
