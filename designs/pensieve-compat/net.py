"""Pensieve's actor/critic trunk with its original wiring, quirk included.

sim/a3c.py builds the sixth branch from ``inputs[:, 4:5, -1]`` (the last next-chunk size)
instead of ``inputs[:, 5:6, -1]`` (chunks left), so the remaining-chunks input never reaches the
network. This trunk does the same: its third scalar branch reads next_sizes[:, -1:].
"""

import torch
from torch import nn

WIDTH = 128
KERNEL = 4


class Trunk(nn.Module):
    def __init__(self, feature_dims):
        super().__init__()
        self.bitrate = nn.Linear(1, WIDTH)
        self.buffer = nn.Linear(1, WIDTH)
        self.throughput = nn.Conv1d(1, WIDTH, KERNEL)
        self.download_time = nn.Conv1d(1, WIDTH, KERNEL)
        self.next_sizes = nn.Conv1d(1, WIDTH, KERNEL)
        self.sixth = nn.Linear(1, WIDTH)
        merged = WIDTH * 3 + WIDTH * (feature_dims["throughput"] - KERNEL + 1) \
            + WIDTH * (feature_dims["download_time"] - KERNEL + 1) + WIDTH * (feature_dims["next_sizes"] - KERNEL + 1)
        self.merge = nn.Linear(merged, WIDTH)
        self.latent_dim = WIDTH

    def forward(self, features):
        parts = [
            torch.relu(self.bitrate(features["last_bitrate"])),
            torch.relu(self.buffer(features["buffer"])),
            torch.relu(self.throughput(features["throughput"].unsqueeze(1))).flatten(1),
            torch.relu(self.download_time(features["download_time"].unsqueeze(1))).flatten(1),
            torch.relu(self.next_sizes(features["next_sizes"].unsqueeze(1))).flatten(1),
            # the original's quirk: row 4 (next sizes) where row 5 (chunks left) was meant
            torch.relu(self.sixth(features["next_sizes"][:, -1:])),
        ]
        return torch.relu(self.merge(torch.cat(parts, dim=1)))
