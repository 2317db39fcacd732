"""Video profiles: a bitrate ladder and the byte size of every chunk at every level. Data, not code.

Built-in profiles (``load_profile(name)``; every one has 49 chunks of 4 s):

| name                    | ladder (kbps)                                | sizes from                                  | for                 |
|-------------------------|----------------------------------------------|---------------------------------------------|---------------------|
| ``envivio``             | 300, 750, 1200, 1850, 2850, 4300             | ``../shared/video/envivio`` (Pensieve's     | broadband, 3g       |
|                         |                                              | real VBR encode); never stored in the repo  |                     |
| ``envivio-synth``       | 300, 750, 1200, 1850, 2850, 4300             | ``generate_vbr_profile`` (seed 1)           | broadband, 3g       |
|                         |                                              |                                             | without ../shared   |
| ``service-4g``          | 600, 1600, 3400, 5800, 11600, 16800          | ``generate_vbr_profile`` (seed 5)           | 4g                  |
| ``service-5g``          | 900, 4500, 16800, 40000, 80000, 160000       | ``generate_vbr_profile`` (seed 6)           | 5g                  |
| ``service-satellite``   | 900, 4500, 16800, 40000, 68000, 110000       | ``generate_vbr_profile`` (seed 7)           | satellite           |
| ``high-4g``             | 2000, 4000, 8000, 12000, 16000, 20000        | ``generate_vbr_profile`` (seed 2)           | 4g, SIGCOMM'21 set  |
| ``high-5g``             | 20000, 40000, 60000, 80000, 110000, 160000   | ``generate_vbr_profile`` (seed 3)           | 5g, SIGCOMM'21 set  |
| ``high-satellite``      | 5000, 10000, 20000, 40000, 70000, 110000     | ``generate_vbr_profile`` (seed 4)           | satellite, earlier  |

* The ``service-*`` ladders (the 4g / 5g / satellite defaults) are rungs real services publish,
  so a dip has a rung under 1 Mbps while the top stays high (``traces/README.md`` cites each rung):
  Apple's "HLS Authoring Specification for Apple Devices" HEVC ladder (540p 600, 900, 1600; 720p
  3400; 1080p 4500, 5800; 2160p 11600, 16800 kbps) and, above it, YouTube Help's "Recommended
  upload encoding settings" (SDR 4K 35-45 Mbps at 24-30 fps, 53-68 at 48-60 fps; 8K 80-160 Mbps):
  40000, 68000, 80000, 110000, 160000 kbps (160 Mbps is also the SIGCOMM'21 study's 5G top).
  YouTube's are upload bitrates: they stand for a service that streams at source quality.
* ``high-4g`` and ``high-5g`` are the 4G and 5G ladders of the SIGCOMM'21 5G study whose
  Lumos5G traces sit in ../shared/traces (its ``mpc_server.py``; no video was copied); they and
  ``high-satellite`` were the 4g / 5g / satellite defaults before the ``service-*`` ladders and
  stay, unchanged, for that study's setting and earlier results (``--video high-4g``). In a dip
  their bottom rungs (2, 20, 5 Mbps) are the lowest there is.
* ``high-satellite`` is ours, chosen from the Starlink traces (pooled, time-weighted: p10 20,
  median 138, p90 235 Mbps): the bottom rung (5 Mbps) is under the p10 and is sustained ~96% of
  the time, the top rung (110 Mbps) sits under the median and is sustained ~62% of the time.
* Synthetic sizes are variable-bitrate like Envivio's: per-chunk sizes are lognormal around the
  nominal ``bitrate x chunk_s`` with a per-chunk "scene complexity" shared by all levels. The
  coefficient of variation of chunk sizes (0.095) and the mean correlation between levels (0.87)
  are measured on Envivio (``envivio_vbr_stats``; ``tests/simulator/test_video.py`` checks both
  against the real files when ../shared is present). Envivio's chunk sizes show no lag-1
  autocorrelation (|r| < 0.15), so chunks are drawn independently.
* ``hd_reward`` (the HD QoE variant's per-level utility): Pensieve's table [1, 2, 3, 12, 15, 20]
  rewards ladder *positions* (the top three rungs are "HD"), so every 6-level ladder reuses it
  by rank; ladders of another length get none (pick QoE lin or log for them).

Profile JSON files (``save_profile`` / ``load_profile``) hold ``name``, ``description``,
``chunk_s``, ``bitrates_kbps``, ``hd_reward`` (or null), ``chunk_bytes`` (levels x chunks) and,
for generated profiles, the ``generator`` settings that rebuild them
(``python -m simulator.video`` regenerates ``simulator/profiles/``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.paths import shared_dir

log = logging.getLogger(__name__)

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
PROFILE_FORMAT = "llmabr-video-profile"
PROFILE_FORMAT_VERSION = 1


class VideoProfileError(ValueError):
    """A video profile that cannot be loaded, naming the file at fault."""


@dataclass(frozen=True)
class VideoProfile:
    """A video as the simulator sees it.

    ``bitrates_kbps[l]`` is level l's nominal bitrate (lowest first); ``chunk_bytes[l, c]`` is
    the size of chunk c at level l; every chunk lasts ``chunk_s`` seconds. ``hd_reward`` is the
    per-level utility of the HD QoE variant.
    """

    name: str
    bitrates_kbps: np.ndarray
    chunk_bytes: np.ndarray
    chunk_s: float = 4.0
    hd_reward: tuple[float, ...] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        bitrates = np.ascontiguousarray(self.bitrates_kbps, dtype=np.float64)
        sizes = np.ascontiguousarray(self.chunk_bytes, dtype=np.float64)
        object.__setattr__(self, "bitrates_kbps", bitrates)
        object.__setattr__(self, "chunk_bytes", sizes)
        if bitrates.ndim != 1 or len(bitrates) < 2:
            raise VideoProfileError(f"profile {self.name!r}: need at least two ladder levels")
        if np.any(np.diff(bitrates) <= 0) or bitrates[0] <= 0:
            raise VideoProfileError(f"profile {self.name!r}: ladder must be positive and increasing, got {bitrates}")
        if sizes.ndim != 2 or sizes.shape[0] != len(bitrates) or sizes.shape[1] < 2:
            raise VideoProfileError(
                f"profile {self.name!r}: chunk_bytes must be (levels={len(bitrates)}, chunks>=2), got {sizes.shape}"
            )
        if not np.all(np.isfinite(sizes)) or np.any(sizes <= 0):
            raise VideoProfileError(f"profile {self.name!r}: chunk sizes must be positive and finite")
        if self.hd_reward is not None and len(self.hd_reward) != len(bitrates):
            raise VideoProfileError(f"profile {self.name!r}: hd_reward needs one value per level")
        if self.chunk_s <= 0:
            raise VideoProfileError(f"profile {self.name!r}: chunk_s must be positive")

    @property
    def n_levels(self) -> int:
        return len(self.bitrates_kbps)

    @property
    def n_chunks(self) -> int:
        return self.chunk_bytes.shape[1]


def load_pensieve_dir(folder: str | Path, bitrates_kbps=None, name: str | None = None) -> VideoProfile:
    """Read Pensieve's ``video_size_0 .. video_size_{L-1}`` files (one byte count per line)."""
    folder = Path(folder)
    files = sorted(folder.glob("video_size_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    if not files:
        raise VideoProfileError(f"{folder}: no video_size_N files found")
    rows = []
    for path in files:
        values = []
        for line_no, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                values.append(float(line.split()[0]))
            except ValueError as error:
                raise VideoProfileError(f"{path}:{line_no}: not a byte count: {line!r}") from error
        rows.append(values)
    if len({len(r) for r in rows}) != 1:
        raise VideoProfileError(f"{folder}: video_size files have different chunk counts")
    if bitrates_kbps is None:
        if len(rows) != 6:
            raise VideoProfileError(f"{folder}: {len(rows)} levels; pass bitrates_kbps for a non-Envivio ladder")
        bitrates_kbps = ENVIVIO_LADDER_KBPS
    return VideoProfile(
        name=name or folder.name,
        bitrates_kbps=np.array(bitrates_kbps, dtype=np.float64),
        chunk_bytes=np.array(rows, dtype=np.float64),
        hd_reward=ENVIVIO_HD_REWARD if len(rows) == 6 else None,
        description=f"Pensieve video_size files from {folder}",
    )


ENVIVIO_LADDER_KBPS = (300.0, 750.0, 1200.0, 1850.0, 2850.0, 4300.0)
ENVIVIO_HD_REWARD = (1.0, 2.0, 3.0, 12.0, 15.0, 20.0)

# Measured on ../shared/video/envivio with ``envivio_vbr_stats``: mean over levels of the
# per-level coefficient of variation of chunk sizes (0.0945), and mean of the 15 pairwise
# correlations between levels' chunk sizes (0.867).
ENVIVIO_SIZE_CV = 0.095
ENVIVIO_CROSS_LEVEL_CORR = 0.87

N_CHUNKS = 49
CHUNK_S = 4.0

# name -> (ladder kbps, seed, description); the JSON files in simulator/profiles/ are built from this.
SYNTHETIC_PROFILES: dict[str, tuple[tuple[float, ...], int, str]] = {
    "envivio-synth": (
        ENVIVIO_LADDER_KBPS, 1,
        "Envivio's ladder with synthetic VBR chunk sizes (CV and cross-level correlation of Envivio's)",
    ),
    "high-4g": (
        (2000.0, 4000.0, 8000.0, 12000.0, 16000.0, 20000.0), 2,
        "4G ladder of the SIGCOMM'21 5G study (2-20 Mbps), synthetic VBR chunk sizes",
    ),
    "high-5g": (
        (20000.0, 40000.0, 60000.0, 80000.0, 110000.0, 160000.0), 3,
        "5G ladder of the SIGCOMM'21 5G study (20-160 Mbps), synthetic VBR chunk sizes",
    ),
    "high-satellite": (
        (5000.0, 10000.0, 20000.0, 40000.0, 70000.0, 110000.0), 4,
        "Starlink ladder (5-110 Mbps: bottom under the traces' p10, top under their median), synthetic VBR",
    ),
    "service-4g": (
        (600.0, 1600.0, 3400.0, 5800.0, 11600.0, 16800.0), 5,
        "Apple HLS Authoring Specification HEVC rungs, 540p-2160p (0.6-16.8 Mbps), synthetic VBR chunk sizes",
    ),
    "service-5g": (
        (900.0, 4500.0, 16800.0, 40000.0, 80000.0, 160000.0), 6,
        "Apple HLS HEVC rungs 540p-2160p and YouTube's recommended 4K / 8K upload bitrates (0.9-160 Mbps), "
        "synthetic VBR chunk sizes",
    ),
    "service-satellite": (
        (900.0, 4500.0, 16800.0, 40000.0, 68000.0, 110000.0), 7,
        "Apple HLS HEVC rungs 540p-2160p and YouTube's recommended 4K / 8K upload bitrates (0.9-110 Mbps), "
        "synthetic VBR chunk sizes",
    ),
}

DEFAULT_PROFILE_BY_NETWORK = {
    "broadband": "envivio",
    "3g": "envivio",
    "4g": "service-4g",
    "5g": "service-5g",
    "satellite": "service-satellite",
}


# -- loading -----------------------------------------------------------------------------------

def list_profiles() -> list[str]:
    """Names ``load_profile`` accepts: ``envivio`` (needs ../shared) and every built-in JSON profile."""
    return ["envivio"] + sorted(path.stem for path in PROFILE_DIR.glob("*.json"))


def envivio_dir() -> Path | None:
    """``../shared/video/envivio`` when present, else None."""
    base = shared_dir()
    if base is None:
        return None
    folder = base / "video" / "envivio"
    return folder if folder.is_dir() else None


def load_envivio() -> VideoProfile:
    """Pensieve's Envivio video, read from ../shared (never stored in the repository)."""
    folder = envivio_dir()
    if folder is None:
        raise VideoProfileError(
            "video profile 'envivio' needs ../shared/video/envivio (Pensieve's video_size_0..5), which is "
            "absent here; use 'envivio-synth' (same ladder, synthetic VBR sizes) or pass a folder of "
            "video_size_N files"
        )
    return load_pensieve_dir(folder, name="envivio")


def load_profile(name_or_path: str | Path) -> VideoProfile:
    """A profile by built-in name (see ``list_profiles``), a ``.json`` file, or a folder.

    A folder holds Pensieve ``video_size_N`` files (6 levels, Envivio's ladder) or a
    ``profile.json``. Raises ``VideoProfileError`` saying what is missing and what to use instead.
    """
    if isinstance(name_or_path, VideoProfile):
        return name_or_path
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text == "envivio":
        return load_envivio()
    if path.is_dir():
        if (path / "profile.json").is_file():
            return load_profile_json(path / "profile.json")
        return load_pensieve_dir(path)
    if path.is_file():
        return load_profile_json(path)
    builtin = PROFILE_DIR / f"{text}.json"
    if "/" not in text and builtin.is_file():
        return load_profile_json(builtin)
    raise VideoProfileError(
        f"video profile {text!r}: not a built-in name ({', '.join(list_profiles())}), "
        "nor an existing folder of video_size_N files, nor a profile .json file"
    )


def default_profile_name(network_type: str) -> str:
    """The profile name to use for a network type (broadband, 3g, 4g, 5g, satellite).

    Broadband and 3G get Pensieve's ``envivio`` when ../shared has it, else ``envivio-synth``
    (with a logged notice, since results then differ from the literature's).
    """
    key = network_type.strip().lower()
    if key not in DEFAULT_PROFILE_BY_NETWORK:
        raise ValueError(f"unknown network type {network_type!r}; known: {', '.join(DEFAULT_PROFILE_BY_NETWORK)}")
    name = DEFAULT_PROFILE_BY_NETWORK[key]
    if name == "envivio" and envivio_dir() is None:
        log.warning("../shared/video/envivio is absent: using the 'envivio-synth' profile for %s "
                    "(Envivio's ladder, synthetic sizes); QoE will differ slightly from Envivio's", key)
        return "envivio-synth"
    return name


def default_profile(network_type: str) -> VideoProfile:
    """The loaded profile for a network type; see ``default_profile_name``."""
    return load_profile(default_profile_name(network_type))


def load_profile_json(path: str | Path) -> VideoProfile:
    """Read a profile written by ``save_profile``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise VideoProfileError(f"{path}: cannot read the profile: {error}") from error
    except json.JSONDecodeError as error:
        raise VideoProfileError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from error
    if not isinstance(data, dict):
        raise VideoProfileError(f"{path}: a profile is a JSON object, got {type(data).__name__}")
    missing = [key for key in ("name", "bitrates_kbps", "chunk_bytes") if key not in data]
    if missing:
        raise VideoProfileError(f"{path}: missing field(s) {', '.join(missing)}")
    try:
        bitrates = np.array(data["bitrates_kbps"], dtype=np.float64)
        sizes = np.array(data["chunk_bytes"], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise VideoProfileError(f"{path}: bitrates_kbps / chunk_bytes must be numbers: {error}") from error
    hd_reward = data.get("hd_reward")
    try:
        return VideoProfile(
            name=str(data["name"]),
            bitrates_kbps=bitrates,
            chunk_bytes=sizes,
            chunk_s=float(data.get("chunk_s", CHUNK_S)),
            hd_reward=None if hd_reward is None else tuple(float(v) for v in hd_reward),
            description=str(data.get("description", "")),
        )
    except VideoProfileError as error:
        raise VideoProfileError(f"{path}: {error}") from error


def save_profile(profile: VideoProfile, path: str | Path, generator: dict | None = None) -> Path:
    """Write ``profile`` as JSON (byte counts as integers where they are whole)."""
    path = Path(path)
    sizes = profile.chunk_bytes
    whole = bool(np.all(sizes == np.round(sizes)))
    data = {
        "format": PROFILE_FORMAT,
        "format_version": PROFILE_FORMAT_VERSION,
        "name": profile.name,
        "description": profile.description,
        "chunk_s": profile.chunk_s,
        "bitrates_kbps": [float(v) for v in profile.bitrates_kbps],
        "hd_reward": None if profile.hd_reward is None else list(profile.hd_reward),
        "generator": generator,
        "chunk_bytes": [[int(v) if whole else float(v) for v in row] for row in sizes],
    }
    # One level per line keeps the committed files diffable.
    body = json.dumps({k: v for k, v in data.items() if k != "chunk_bytes"}, indent=2)[:-2]
    rows = ",\n".join("    " + json.dumps(row) for row in data["chunk_bytes"])
    path.write_text(f'{body},\n  "chunk_bytes": [\n{rows}\n  ]\n}}\n')
    return path


# -- synthetic VBR profiles --------------------------------------------------------------------

def envivio_vbr_stats(chunk_bytes: np.ndarray) -> tuple[float, float]:
    """(mean per-level CV of chunk sizes, mean pairwise correlation between levels' sizes)."""
    sizes = np.asarray(chunk_bytes, dtype=np.float64)
    cv = sizes.std(axis=1) / sizes.mean(axis=1)
    corr = np.corrcoef(sizes)
    upper = np.triu_indices(len(sizes), 1)
    return float(cv.mean()), float(corr[upper].mean())


def _standardized(values: np.ndarray) -> np.ndarray:
    centered = values - values.mean(axis=-1, keepdims=True)
    return centered / centered.std(axis=-1, keepdims=True)


def generate_vbr_profile(name: str, bitrates_kbps, n_chunks: int = N_CHUNKS, chunk_s: float = CHUNK_S,
                         seed: int = 0, size_cv: float = ENVIVIO_SIZE_CV,
                         cross_level_corr: float = ENVIVIO_CROSS_LEVEL_CORR,
                         hd_reward: tuple[float, ...] | None = None, description: str = "") -> VideoProfile:
    """A variable-bitrate video: chunk sizes lognormal around ``bitrate x chunk_s``.

    log(size[l, c] / nominal[l]) = sigma x (sqrt(rho) z[c] + sqrt(1 - rho) e[l, c]), with z the
    per-chunk complexity shared by every level, e each level's own noise (both drawn with
    ``seed`` and standardized over the chunks so a short video hits the targets closely),
    rho = ``cross_level_corr`` and sigma the lognormal shape giving ``size_cv``. Each level is
    then rescaled so its mean bitrate equals the nominal one. ``hd_reward`` defaults to
    Envivio's table for 6-level ladders (by rank), else None.
    """
    bitrates = np.asarray(bitrates_kbps, dtype=np.float64)
    if n_chunks < 2:
        raise ValueError(f"n_chunks must be >= 2, got {n_chunks}")
    if not 0.0 <= cross_level_corr <= 1.0 or size_cv < 0:
        raise ValueError("need 0 <= cross_level_corr <= 1 and size_cv >= 0")
    rng = np.random.default_rng(seed)
    sigma = np.sqrt(np.log1p(size_cv ** 2))
    shared = _standardized(rng.standard_normal(n_chunks))
    own = _standardized(rng.standard_normal((len(bitrates), n_chunks)))
    factor = np.exp(sigma * (np.sqrt(cross_level_corr) * shared + np.sqrt(1.0 - cross_level_corr) * own))
    factor /= factor.mean(axis=1, keepdims=True)
    nominal_bytes = bitrates * 1000.0 / 8.0 * chunk_s
    sizes = np.round(nominal_bytes[:, None] * factor)
    if hd_reward is None and len(bitrates) == len(ENVIVIO_HD_REWARD):
        hd_reward = ENVIVIO_HD_REWARD
    return VideoProfile(
        name=name, bitrates_kbps=bitrates, chunk_bytes=sizes, chunk_s=chunk_s,
        hd_reward=hd_reward, description=description,
    )


def build_builtin_profiles(out_dir: str | Path = PROFILE_DIR) -> list[Path]:
    """(Re)write every synthetic built-in profile's JSON file; deterministic (fixed seeds)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (ladder_kbps, seed, description) in SYNTHETIC_PROFILES.items():
        profile = generate_vbr_profile(name, ladder_kbps, seed=seed, description=description)
        generator = {
            "function": "simulator.video.generate_vbr_profile", "seed": seed, "n_chunks": N_CHUNKS,
            "chunk_s": CHUNK_S, "size_cv": ENVIVIO_SIZE_CV, "cross_level_corr": ENVIVIO_CROSS_LEVEL_CORR,
        }
        written.append(save_profile(profile, out_dir / f"{name}.json", generator=generator))
    return written


if __name__ == "__main__":
    for written_path in build_builtin_profiles():
        print(written_path)
