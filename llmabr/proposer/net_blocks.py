"""Building blocks of policy trunks: a network genome becomes a complete ``net.py``.

A network genome is ``{"type", "width", "activation", "depth", "layernorm", "shared_trunk"}``
with ``type`` one of branches (Pensieve's: a Linear per short feature, a Conv1d per series),
mlp, conv (series of equal length stacked as channels), gru, lstm, attention (self-attention
over time steps). Every trunk works for any feature dict: features of size >= 4 are series,
the rest are concatenated as flat inputs, so any state design fits any trunk.

``TYPE_AFFINITY``, ``WIDTH_AFFINITY`` and ``LAYERNORM_AFFINITY``: which trace signals make a trunk type,
a width or layer norm more likely in the offline proposer (weights ``1 + sum(gain * signal)``; priors, see state_blocks).
"""

from __future__ import annotations

ACTIVATIONS = {"relu": "nn.ReLU", "tanh": "nn.Tanh", "elu": "nn.ELU", "gelu": "nn.GELU", "leaky_relu": "nn.LeakyReLU"}
TYPES = ("branches", "mlp", "conv", "gru", "lstm", "attention")
WIDTHS = (32, 64, 128, 256)
# temporal encoders can smooth a noisy series themselves; an MLP suffices where it is steady
TYPE_AFFINITY: dict[str, dict[str, float]] = {
    "conv": {"variability": 2.0}, "gru": {"variability": 2.0}, "lstm": {"variability": 2.0},
    "attention": {"variability": 1.0, "spread": 1.0}, "mlp": {"stability": 2.0},
}
# with headroom the decision is nearly "hold the top rung or step down on a dip": a narrow trunk
# learns it in a short budget; a constrained ladder asks for finer choices between close levels
WIDTH_AFFINITY: dict[int, dict[str, float]] = {32: {"headroom": 1.5}, 64: {"headroom": 1.0}, 256: {"constrained": 1.0}}
LAYERNORM_AFFINITY = {"spread": 2.0}  # inputs over orders of magnitude: normalize inside the trunk
SEED_NET = {"type": "branches", "width": 128, "activation": "relu", "depth": 1, "layernorm": False, "shared_trunk": False}

HEADER = '''"""{doc}"""

import torch
from torch import nn

WIDTH = {width}
SERIES_MIN = 4  # features at least this long are treated as time series


def split_features(feature_dims):
    """Series grouped by length (stacked as channels) and the flat features, in a fixed order."""
    groups = {{}}
    flat = []
    for name in sorted(feature_dims):
        if feature_dims[name] >= SERIES_MIN:
            groups.setdefault(feature_dims[name], []).append(name)
        else:
            flat.append(name)
    return sorted(groups.items()), flat


def head(width_in, depth, layernorm):
    layers = []
    for _ in range(depth):
        layers.append(nn.Linear(width_in, WIDTH))
        if layernorm:
            layers.append(nn.LayerNorm(WIDTH))
        layers.append({activation}())
        width_in = WIDTH
    return nn.Sequential(*layers)
'''

BRANCHES = '''

class Trunk(nn.Module):
    """Pensieve's trunk for any features: a Conv1d(k=4) branch per series, a Linear per flat feature."""

    def __init__(self, feature_dims):
        super().__init__()
        self.names = sorted(feature_dims)
        self.series = [name for name in self.names if feature_dims[name] >= SERIES_MIN]
        self.branches = nn.ModuleList()
        merged = 0
        for name in self.names:
            size = feature_dims[name]
            if size >= SERIES_MIN:
                self.branches.append(nn.Sequential(nn.Conv1d(1, WIDTH, 4), {activation}(), nn.Flatten()))
                merged += WIDTH * (size - 3)
            else:
                self.branches.append(nn.Sequential(nn.Linear(size, WIDTH), {activation}()))
                merged += WIDTH
        self.merge = head(merged, {depth}, {layernorm})
        self.latent_dim = WIDTH

    def forward(self, features):
        parts = []
        for branch, name in zip(self.branches, self.names):
            value = features[name]
            parts.append(branch(value.unsqueeze(1) if name in self.series else value))
        return self.merge(torch.cat(parts, dim=1))
'''

MLP = '''

class Trunk(nn.Module):
    """An MLP over all features concatenated ({depth} hidden layers of WIDTH)."""

    def __init__(self, feature_dims):
        super().__init__()
        self.names = sorted(feature_dims)
        self.body = head(sum(feature_dims[name] for name in self.names), {depth}, {layernorm})
        self.latent_dim = WIDTH

    def forward(self, features):
        return self.body(torch.cat([features[name] for name in self.names], dim=1))
'''

SEQUENCE = '''

class Trunk(nn.Module):
    """{summary}"""

    def __init__(self, feature_dims):
        super().__init__()
        self.groups, self.flat = split_features(feature_dims)
        self.encoders = nn.ModuleList()
        width = sum(feature_dims[name] for name in self.flat)
        for length, names in self.groups:
{init}
        self.merge = head(width, {depth}, {layernorm})
        self.latent_dim = WIDTH

    def forward(self, features):
        parts = [features[name] for name in self.flat]
        for encoder, (length, names) in zip(self.encoders, self.groups):
            sequence = torch.stack([features[name] for name in names], dim=2)  # [batch, time, channels]
{forward}
        return self.merge(torch.cat(parts, dim=1))
'''

ENCODERS = {
    "conv": ("Conv1d (kernel 3) over series of equal length, stacked as channels; flat features joined after.",
             "            self.encoders.append(nn.Sequential(nn.Conv1d(len(names), WIDTH, 3, padding=1), {activation}(),\n"
             "                                               nn.Flatten()))\n"
             "            width += WIDTH * length",
             "            parts.append(encoder(sequence.transpose(1, 2)))"),
    "gru": ("A GRU over series of equal length (channels per time step); its last state joined with the flat features.",
            "            self.encoders.append(nn.GRU(len(names), WIDTH, batch_first=True))\n"
            "            width += WIDTH",
            "            _, last = encoder(sequence)\n"
            "            parts.append(last[0])"),
    "lstm": ("An LSTM over series of equal length; its last hidden state joined with the flat features.",
             "            self.encoders.append(nn.LSTM(len(names), WIDTH, batch_first=True))\n"
             "            width += WIDTH",
             "            _, (last, _cell) = encoder(sequence)\n"
             "            parts.append(last[0])"),
    "attention": ("Single-head self-attention over time steps (learned positions), mean-pooled; flat features joined.",
                  "            self.encoders.append(Attention(len(names), length))\n"
                  "            width += WIDTH",
                  "            parts.append(encoder(sequence))"),
}

ATTENTION = '''

class Attention(nn.Module):
    """Self-attention over the time steps of a [batch, time, channels] sequence, mean-pooled to [batch, WIDTH]."""

    def __init__(self, channels, length):
        super().__init__()
        self.embed = nn.Linear(channels, WIDTH)
        self.position = nn.Parameter(torch.zeros(1, length, WIDTH))
        self.query, self.key, self.value = nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, WIDTH), nn.Linear(WIDTH, WIDTH)
        self.scale = WIDTH ** -0.5

    def forward(self, sequence):
        tokens = self.embed(sequence) + self.position
        weights = torch.softmax(self.query(tokens) @ self.key(tokens).transpose(1, 2) * self.scale, dim=-1)
        return (tokens + weights @ self.value(tokens)).mean(dim=1)
'''


def validate_net(genome: dict) -> None:
    if (genome["type"] not in TYPES or genome["width"] not in WIDTHS or genome["activation"] not in ACTIVATIONS
            or genome["depth"] not in (1, 2, 3)):
        raise ValueError(f"bad network genome {genome}")


def net_source(genome: dict, title: str = "") -> str:
    validate_net(genome)
    activation = ACTIVATIONS[genome["activation"]]
    values = {"activation": activation, "depth": genome["depth"], "layernorm": genome["layernorm"]}
    kind = genome["type"]
    doc = (f"{title or 'Trunk'} (offline proposer): {kind}, width {genome['width']}, {genome['activation']}, "
           f"{genome['depth']} merge layer(s){', layer norm' if genome['layernorm'] else ''}"
           f"{', one trunk shared by actor and critic' if genome['shared_trunk'] else ''}.")
    source = HEADER.format(doc=doc, width=genome["width"], activation=activation)
    if kind == "branches":
        return source + BRANCHES.format(**values)
    if kind == "mlp":
        return source + MLP.format(**values)
    summary, init, forward = ENCODERS[kind]
    extra = ATTENTION if kind == "attention" else ""
    return source + extra + SEQUENCE.format(summary=summary, init=init.format(**values), forward=forward, **values)
