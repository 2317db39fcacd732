"""Pensieve's actor/critic trunk: one branch per input row, merged, one hidden layer.

Scalars (last bitrate, buffer, chunks left) go through Linear(1, 128); series (throughput and
download time over 8 chunks, next sizes over the levels) through Conv1d(1, 128, kernel 4); the
branches are concatenated and mapped to 128 units. SB3 adds the action and value heads; the
actor and the critic each get their own trunk (about 531k parameters in all on a 6-level ladder).
"""

import torch
from torch import nn

SCALARS = ("last_bitrate", "buffer", "chunks_left")
SERIES = ("throughput", "download_time", "next_sizes")
WIDTH = 128
KERNEL = 4


class Trunk(nn.Module):
    def __init__(self, feature_dims):
        super().__init__()
        self.scalars = nn.ModuleList([nn.Linear(1, WIDTH) for _ in SCALARS])
        self.series = nn.ModuleList([nn.Conv1d(1, WIDTH, KERNEL) for _ in SERIES])
        merged = WIDTH * len(SCALARS) + sum(WIDTH * (feature_dims[name] - KERNEL + 1) for name in SERIES)
        self.merge = nn.Linear(merged, WIDTH)
        self.latent_dim = WIDTH

    def forward(self, features):
        parts = [torch.relu(layer(features[name][:, -1:])) for layer, name in zip(self.scalars, SCALARS)]
        for layer, name in zip(self.series, SERIES):
            parts.append(torch.relu(layer(features[name].unsqueeze(1))).flatten(1))
        return torch.relu(self.merge(torch.cat(parts, dim=1)))
