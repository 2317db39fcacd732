"""Counter-based random streams, bit-identical to ``abr_sim.h``.

Each player owns a stream keyed by (seed, player index): draw number c of a stream is
``splitmix64(key + (c + 1) * GOLDEN)``, so a player's randomness never depends on how many
players run beside it or in which order they are stepped.
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
PLAYER_SALT = 0xD1B54A32D192ED03


def mix64(value: int) -> int:
    """splitmix64's finalizer (Stafford variant 13)."""
    value &= MASK64
    value = ((value ^ (value >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    value = ((value ^ (value >> 27)) * 0x94D049BB133111EB) & MASK64
    return value ^ (value >> 31)


def stream_key(seed: int, player_index: int) -> int:
    """The key of player ``player_index``'s stream under ``seed``."""
    return mix64(mix64(seed & MASK64) ^ ((player_index * PLAYER_SALT) & MASK64))


def uniform(key: int, counter: int) -> float:
    """Draw number ``counter`` of stream ``key`` as a double in [0, 1) (53 random bits)."""
    bits = mix64((key + ((counter + 1) * GOLDEN)) & MASK64)
    return (bits >> 11) * (1.0 / 9007199254740992.0)
