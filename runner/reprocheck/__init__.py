"""reprocheck: a reproducibility gate for PyTorch inference.

The seeding recipe is public API for use in your own code:

    from reprocheck import seed_everything, make_generator, seed_worker
    seed_everything(3407)
    loader = DataLoader(ds, generator=make_generator(3407), worker_init_fn=seed_worker)
"""

__version__ = "0.1.0"

from typing import Any

from .environment import worker_env

__all__ = ["__version__", "make_generator", "seed_everything", "seed_worker", "worker_env"]


def __getattr__(name: str) -> Any:
    # The torch-side helpers load on first use: importing reprocheck (the host side) never imports torch.
    if name in ("make_generator", "seed_everything", "seed_worker"):
        from .worker import recipe

        return getattr(recipe, name)
    raise AttributeError(f"module 'reprocheck' has no attribute {name!r}")
