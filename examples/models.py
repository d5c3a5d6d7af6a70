"""Small factory models for the examples (`factory: "models:NAME"`)."""

import random
import threading
import time

import torch
from torch import nn


class RacyAccumulator(nn.Module):
    """Sums per-chunk partial results in the order worker threads finish.

    The same pattern as atomicAdd-based kernels (index_add_, scatter_add_ on CUDA): the
    result depends on scheduling, not on any seed. Each thread sleeps for a moment drawn
    from the OS's entropy (as real scheduling noise would be), so the order varies.
    """

    def __init__(self, chunks: int = 16, features: int = 1000) -> None:
        super().__init__()
        self.chunks = chunks
        self.proj = nn.Linear(features, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = self.proj(x).chunk(self.chunks, dim=0)
        scales = [10.0 ** (i % 8 - 4) for i in range(len(parts))]  # mixed magnitudes: order matters
        total = torch.zeros(x.shape[1], dtype=x.dtype)
        lock = threading.Lock()
        jitter = random.SystemRandom()

        def work(i: int) -> None:
            partial = parts[i].sum(0) * scales[i]
            time.sleep(jitter.random() * 0.02)  # >> thread start-up spacing, so the finishing order is random
            nonlocal total
            with lock:
                total = total + partial

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(parts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return total


def racy_accumulator(chunks: int = 16, features: int = 1000) -> nn.Module:
    return RacyAccumulator(chunks, features)


class NoisyMLP(nn.Module):
    """Dropout applied even in eval mode: random, but drawn from torch's seeded generator."""

    def __init__(self, features: int = 256, p: float = 0.2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(features, features), nn.ReLU(), nn.Linear(features, 10))
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(nn.functional.dropout(x, self.p, training=True))


def noisy_mlp(features: int = 256, p: float = 0.2) -> nn.Module:
    return NoisyMLP(features, p)
