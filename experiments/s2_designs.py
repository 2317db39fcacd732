"""A fixed set of design variants for measuring S2 early stopping (issue #4, point 3).

    python experiments/s2_designs.py --out runs/s2/designs

Writes one complete design folder per variant (design.toml, state.py, net.py: real source that
`llmabr check` and `llmabr train` load like any other design). The set spans what a proposer
produces: good states (Pensieve's, longer/shorter histories, added throughput statistics,
log-scaled throughput), deliberately weak states (no buffer, no throughput), and trunks of
different kinds and sizes (Pensieve's branches at three widths, plain MLPs, a GRU over the
history). It is a stand-in until the offline proposer (issue #5) exists; nothing here is random.
"""

from __future__ import annotations

import argparse
from pathlib import Path

STATE_HEADER = '''"""{doc}"""

import torch

HISTORY = {history}
CHUNK_S = 4.0


def state(m):
    top_kbps = m["ladder_kbps"][:, -1:]
    top_bytes_per_s = top_kbps * 1000.0 / 8.0
    valid = m["valid"][:, -HISTORY:]
    download_s = m["download_time_s"][:, -HISTORY:]
    safe_download_s = torch.where(valid > 0, download_s, torch.ones_like(download_s))
    throughput = m["chunk_bytes"][:, -HISTORY:] / safe_download_s * valid / top_bytes_per_s
    features = {{}}
'''

# Feature lines, each adding entries to ``features`` (names are what the trunks consume).
STATE_BLOCKS = {
    "last_bitrate": '    features["last_bitrate"] = m["bitrate_kbps"][:, -1:] / top_kbps\n',
    "buffer": '    features["buffer"] = m["buffer_s"][:, -1:] / 10.0\n',
    "throughput": '    features["throughput"] = throughput\n',
    "log_throughput": ('    features["throughput"] = torch.log1p(throughput) * valid\n'),
    "download_time": '    features["download_time"] = download_s / 10.0\n',
    "next_sizes": '    features["next_sizes"] = m["next_chunk_bytes"] / (top_bytes_per_s * CHUNK_S)\n',
    "chunks_left": '    features["chunks_left"] = m["chunks_left"] / m["chunks_total"]\n',
    "throughput_stats": (
        '    count = valid.sum(dim=1, keepdim=True).clamp(min=1.0)\n'
        '    mean = throughput.sum(dim=1, keepdim=True) / count\n'
        '    harmonic = count / ((valid / throughput.clamp(min=1e-3)) * valid).sum(dim=1, keepdim=True).clamp(min=1e-3)\n'
        '    spread = (((throughput - mean) * valid) ** 2).sum(dim=1, keepdim=True).div(count).sqrt()\n'
        '    features["throughput_stats"] = torch.cat([mean, harmonic.clamp(max=10.0), spread], dim=1)\n'),
    "buffer_trend": ('    buffer_hist = m["buffer_s"][:, -HISTORY:]\n'
                     '    features["buffer_trend"] = (buffer_hist[:, -1:] - buffer_hist[:, :1]) / 10.0\n'),
}

PENSIEVE = ("last_bitrate", "buffer", "throughput", "download_time", "next_sizes", "chunks_left")

BRANCHES = '''"""Pensieve-style branches at width {width}: Linear for [batch, 1] inputs, Conv1d(k=4) for series."""

import torch
from torch import nn

WIDTH = {width}
KERNEL = 4


class Trunk(nn.Module):
    def __init__(self, feature_dims):
        super().__init__()
        self.names = sorted(feature_dims)
        self.layers = nn.ModuleList()
        merged = 0
        for name in self.names:
            size = feature_dims[name]
            if size >= KERNEL + 1:
                self.layers.append(nn.Conv1d(1, WIDTH, KERNEL))
                merged += WIDTH * (size - KERNEL + 1)
            else:
                self.layers.append(nn.Linear(size, WIDTH))
                merged += WIDTH
        self.merge = nn.Linear(merged, WIDTH)
        self.latent_dim = WIDTH

    def forward(self, features):
        parts = []
        for layer, name in zip(self.layers, self.names):
            value = features[name]
            if isinstance(layer, nn.Conv1d):
                parts.append(torch.relu(layer(value.unsqueeze(1))).flatten(1))
            else:
                parts.append(torch.relu(layer(value)))
        return torch.relu(self.merge(torch.cat(parts, dim=1)))
'''

MLP = '''"""A plain MLP over all features concatenated: hidden sizes {hidden}, {activation}."""

import torch
from torch import nn

HIDDEN = {hidden}


class Trunk(nn.Module):
    def __init__(self, feature_dims):
        super().__init__()
        self.names = sorted(feature_dims)
        layers, width = [], sum(feature_dims[name] for name in self.names)
        for size in HIDDEN:
            layers += [nn.Linear(width, size), nn.{module}()]
            width = size
        self.body = nn.Sequential(*layers)
        self.latent_dim = width

    def forward(self, features):
        return self.body(torch.cat([features[name] for name in self.names], dim=1))
'''

GRU = '''"""A GRU (hidden {hidden}) over the per-chunk series, its last state joined with the other inputs."""

import torch
from torch import nn

HIDDEN = {hidden}
SERIES = ("throughput", "download_time")


class Trunk(nn.Module):
    def __init__(self, feature_dims):
        super().__init__()
        self.series = [name for name in SERIES if name in feature_dims]
        self.others = sorted(name for name in feature_dims if name not in self.series)
        self.gru = nn.GRU(len(self.series), HIDDEN, batch_first=True)
        width = HIDDEN + sum(feature_dims[name] for name in self.others)
        self.head = nn.Sequential(nn.Linear(width, 128), nn.ReLU())
        self.latent_dim = 128

    def forward(self, features):
        sequence = torch.stack([features[name] for name in self.series], dim=2)
        _, last = self.gru(sequence)
        rest = [features[name] for name in self.others]
        return self.head(torch.cat([last[0]] + rest, dim=1))
'''

# name: (state blocks, history, trunk template, template values, note)
VARIANTS = {
    "branches128-h8": (PENSIEVE, 8, BRANCHES, {"width": 128}, "Pensieve's state and branches (the seed, reshuffled)"),
    "branches64-h8": (PENSIEVE, 8, BRANCHES, {"width": 64}, "narrower branches"),
    "branches32-h8": (PENSIEVE, 8, BRANCHES, {"width": 32}, "much narrower branches"),
    "branches128-h16": (PENSIEVE, 16, BRANCHES, {"width": 128}, "16-chunk history"),
    "branches64-h4-stats": (PENSIEVE + ("throughput_stats",), 4, BRANCHES, {"width": 64},
                            "short history plus throughput mean / harmonic mean / std"),
    "branches64-h8-logthr": (("last_bitrate", "buffer", "log_throughput", "download_time", "next_sizes",
                              "chunks_left"), 8, BRANCHES, {"width": 64}, "log-scaled throughput"),
    "mlp256x2-h8": (PENSIEVE, 8, MLP, {"hidden": (256, 256), "activation": "ReLU", "module": "ReLU"}, "MLP"),
    "mlp64x2-h8-tanh": (PENSIEVE, 8, MLP, {"hidden": (64, 64), "activation": "Tanh", "module": "Tanh"}, "small tanh MLP"),
    "mlp128-h8-stats": (PENSIEVE + ("throughput_stats", "buffer_trend"), 8, MLP,
                        {"hidden": (128,), "activation": "ReLU", "module": "ReLU"}, "one-layer MLP, extra statistics"),
    "gru64-h8": (PENSIEVE, 8, GRU, {"hidden": 64}, "GRU over the history"),
    "weak-no-buffer": (("last_bitrate", "throughput", "download_time", "next_sizes", "chunks_left"), 8, MLP,
                       {"hidden": (128, 128), "activation": "ReLU", "module": "ReLU"}, "weak: the buffer is missing"),
    "weak-no-throughput": (("last_bitrate", "buffer", "next_sizes", "chunks_left"), 8, MLP,
                           {"hidden": (128, 128), "activation": "ReLU", "module": "ReLU"},
                           "weak: no throughput or download time"),
}


def write_variant(out: Path, name: str) -> Path:
    blocks, history, template, values, note = VARIANTS[name]
    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    doc = f"S2 test design {name}: {note}. Features: {', '.join(blocks)}; history {history} chunks."
    state = STATE_HEADER.format(doc=doc, history=history) + "".join(STATE_BLOCKS[b] for b in blocks)
    state += "    return features\n"
    (folder / "state.py").write_text(state)
    (folder / "net.py").write_text(template.format(**{k: v for k, v in values.items()}))
    (folder / "design.toml").write_text(
        f'name = "{name}"\nkind = "torch"\norigin = "human"\nparent = "pensieve"\nnetwork = "any"\n'
        f'notes = "{note} (experiments/s2_designs.py)"\n')
    return folder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/s2/designs"))
    args = parser.parse_args()
    for name in VARIANTS:
        print(write_variant(args.out, name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
