"""The public recipe API, used in-process and in real subprocesses."""

import os
import subprocess
import sys
import warnings

import pytest
import torch

from reprocheck import make_generator, seed_everything, seed_worker, worker_env
from reprocheck.spec import RecipeSpec


def test_seed_everything_makes_torch_numpy_random_repeat():
    import random

    import numpy as np

    def draw():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seed_everything(7, threads=1)
        return torch.randn(3).tolist(), np.random.rand(), random.random()

    assert draw() == draw()
    assert torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert torch.get_num_threads() == 1
    torch.use_deterministic_algorithms(False)


def test_seed_everything_warns_when_the_hash_seed_cannot_follow():
    env_seed = os.environ.get("PYTHONHASHSEED")
    with pytest.warns(RuntimeWarning, match="PYTHONHASHSEED"):
        seed_everything(12345 if env_seed != "12345" else 54321)
    torch.use_deterministic_algorithms(False)


def test_generator_and_worker_init_fn_make_dataloaders_repeat():
    from torch.utils.data import DataLoader, Dataset

    class Noise(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            import numpy as np

            return torch.tensor([np.random.rand(), float(torch.rand(1))])

    def epoch():
        loader = DataLoader(
            Noise(), batch_size=4, num_workers=2, generator=make_generator(3), worker_init_fn=seed_worker
        )
        return torch.cat(list(loader)).tolist()

    assert epoch() == epoch()


def test_worker_env_sets_what_must_be_set_before_start():
    env = worker_env(42, RecipeSpec(), 3, base={"PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": ":16:8"})
    assert (
        env["PYTHONHASHSEED"] == "42" and env["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8" and env["OMP_NUM_THREADS"] == "3"
    )
    off = worker_env(
        42,
        RecipeSpec(hash_seed=False, cublas_workspace=False),
        1,
        base={"PYTHONHASHSEED": "0", "CUBLAS_WORKSPACE_CONFIG": "x"},
    )
    assert off["PYTHONHASHSEED"] == "random" and "CUBLAS_WORKSPACE_CONFIG" not in off


def test_hash_seed_only_works_before_interpreter_start():
    code = "import os; os.environ['PYTHONHASHSEED'] = '1'; print(hash('reprocheck'))"
    late = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "random"},
        ).stdout
        for _ in range(3)
    }
    early = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env=worker_env(1, RecipeSpec(), 1, base={"PATH": "/usr/bin:/bin"}),
        ).stdout
        for _ in range(3)
    }
    assert len(late) > 1 and len(early) == 1
