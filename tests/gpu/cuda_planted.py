"""A planted CUDA nondeterminism: index_add_ on float32 with many colliding indices uses atomicAdd,
so the summation order (and the last bits) vary from run to run unless deterministic algorithms are on."""

import torch
from torch import nn


class CollidingIndexAdd(nn.Module):
    def forward(self, x):
        out = torch.zeros(16, x.shape[1], device=x.device, dtype=x.dtype)
        index = torch.arange(x.shape[0], device=x.device) % 16  # thousands of rows into 16 slots
        return out.index_add_(0, index, x * 1e3)


def build():
    return CollidingIndexAdd()
