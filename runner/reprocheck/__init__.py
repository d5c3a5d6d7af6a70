"""reprocheck: a reproducibility gate for PyTorch inference.

The seeding recipe is public API for use in your own code:

    from reprocheck import seed_everything, make_generator, seed_worker
    seed_everything(3407)
    loader = DataLoader(ds, generator=make_generator(3407), worker_init_fn=seed_worker)
"""

__version__ = "0.1.0"

from .recipe import make_generator, seed_everything, seed_worker, worker_env

__all__ = ["__version__", "make_generator", "seed_everything", "seed_worker", "worker_env"]
