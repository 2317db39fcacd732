"""Browser harness shared by the dash.js test and the latency benchmark.

Makes a real multi-bitrate DASH stream with ffmpeg, serves it through the pacing server next to
the test page, dash.js, onnxruntime-web and the plugin (all from local folders: nothing comes
from the internet), and drives headless Chromium through sessions with a node script.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.players.pacing_server import PacedLink, PacingServer, Routes

REPO = Path(__file__).resolve().parents[2]
PLUGIN_DIR = REPO / "llmabr" / "players" / "dashjs"
NODE_MODULES = PLUGIN_DIR / "node_modules"
PAGE_DIR = Path(__file__).resolve().parent / "page"
DRIVER = Path(__file__).resolve().parent / "drive_chromium.mjs"
CHROMIUM = Path("/usr/bin/chromium")
NODE_PACKAGES = ("dashjs", "onnxruntime-web", "playwright-core")
SEGMENT_NAME = re.compile(r"chunk-(\d+)-(\d+)\.m4s$")
# Cross-origin isolation gives the page 5 us performance.now() instead of 100 us, which the
# sub-millisecond latency numbers need; every resource is same-origin, so nothing breaks.
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp"}


def missing_tools() -> list[str]:
    """What the browser test cannot run without, each with how to get it (empty when all there)."""
    missing = []
    if shutil.which("ffmpeg") is None:
        missing.append("ffmpeg (apt-get install -y ffmpeg)")
    if not CHROMIUM.exists():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if shutil.which("node") is None:
        missing.append("node (apt-get install -y nodejs npm)")
    absent = [name for name in NODE_PACKAGES if not (NODE_MODULES / name / "package.json").exists()]
    if absent:
        missing.append(f"{', '.join(absent)} in {NODE_MODULES} (cd {PLUGIN_DIR.relative_to(REPO)} && npm ci)")
    return missing


def make_dash_stream(out_dir: Path, ladder_kbps: list[float], duration_s: float, segment_s: float = 4.0,
                     fps: int = 24, size: str = "320x180") -> Path:
    """Encode a noisy test pattern at every ladder bitrate into one DASH video adaptation set.

    Noise keeps x264 from undershooting its target on a synthetic picture, so segment sizes
    follow the ladder as a real video's would. Every level has the same small frame size: the
    test is about bitrates, and decoding 1080p would only load the CPU. Returns the manifest path
    and writes ``sizes.json`` ({"chunk_bytes": [[bytes per segment] per level]}) next to it.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    gop_frames = int(round(segment_s * fps))  # one keyframe per segment, as DASH switching needs
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
           "-i", f"testsrc2=size={size}:rate={fps}:duration={duration_s},noise=alls=30:allf=t"]
    for _ in ladder_kbps:
        cmd += ["-map", "0:v"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-profile:v", "main"]
    for index, kbps in enumerate(ladder_kbps):
        cmd += [f"-b:v:{index}", f"{kbps:g}k", f"-maxrate:v:{index}", f"{kbps * 1.1:g}k",
                f"-bufsize:v:{index}", f"{kbps * 2:g}k"]
    cmd += ["-g", str(gop_frames), "-keyint_min", str(gop_frames), "-sc_threshold", "0",
            "-f", "dash", "-seg_duration", f"{segment_s:g}", "-use_template", "1", "-use_timeline", "0",
            "-adaptation_sets", "id=0,streams=v",
            "-init_seg_name", "init-$RepresentationID$.m4s",
            "-media_seg_name", "chunk-$RepresentationID$-$Number%05d$.m4s",
            str(out_dir / "manifest.mpd")]
    subprocess.run(cmd, check=True, timeout=600)
    table = segment_size_table(out_dir, len(ladder_kbps))
    (out_dir / "sizes.json").write_text(json.dumps({"chunk_bytes": table.tolist()}))
    return out_dir / "manifest.mpd"


def segment_size_table(stream_dir: Path, n_levels: int) -> np.ndarray:
    """Bytes of every media segment, [level, segment index] (index 0 is $Number$ 1)."""
    found: dict[tuple[int, int], int] = {}
    for path in stream_dir.glob("chunk-*.m4s"):
        match = SEGMENT_NAME.search(path.name)
        found[(int(match[1]), int(match[2]))] = path.stat().st_size
    n_segments = max(number for _, number in found)
    table = np.zeros((n_levels, n_segments), dtype=np.int64)
    for (level, number), size_bytes in found.items():
        table[level, number - 1] = size_bytes
    if (table == 0).any():
        raise RuntimeError(f"{stream_dir}: some segments are missing from the ffmpeg output")
    return table


def write_layout(out_dir: Path, history_len: int, n_levels: int, ladder_kbps: list[float], chunk_s: float,
                 chunks_total: int) -> dict:
    """A layout.json in export's shape, for hand-made reference models."""
    from simulator.layout import Layout

    layout = Layout(history_len, n_levels).describe()
    layout.update({"ladder_kbps": list(ladder_kbps), "chunk_s": chunk_s, "chunks_total": chunks_total,
                   "input": "obs", "output": "logits"})
    (out_dir / "layout.json").write_text(json.dumps(layout, indent=1))
    return layout


@dataclass
class Session:
    """One playback: a trace (list of (duration_s, mbps) steps), a model folder, page options."""

    name: str
    trace: list[tuple[float, float]]
    model: str               # key into run_sessions' models
    sizes: bool = True       # give the plugin the segment-size table
    timeout_s: float = 120.0
    latency_s: float = 0.08
    query: dict = field(default_factory=dict)
    bench_runs: int = 0      # extra session.run calls timed in the page after the session


def run_sessions(stream_dir: Path, models: dict[str, Path], sessions: list[Session], work_dir: Path,
                 driver_timeout_s: float = 600.0) -> dict[str, dict]:
    """Play every session in headless Chromium; returns name -> page log, summary and server log."""
    work_dir.mkdir(parents=True, exist_ok=True)
    routes = Routes(
        static={"page": PAGE_DIR, "plugin": PLUGIN_DIR,
                "dashjs": NODE_MODULES / "dashjs" / "dist" / "modern" / "umd",
                "ort": NODE_MODULES / "onnxruntime-web" / "dist",
                **{f"model/{name}": folder for name, folder in models.items()}},
        paced={"stream": stream_dir},
    )
    links = {session.name: PacedLink(session.trace, session.latency_s) for session in sessions}
    with PacingServer(routes, links, extra_headers=ISOLATION_HEADERS) as server:
        config_sessions = []
        for session in sessions:
            query = {"mpd": f"/stream/{session.name}/manifest.mpd",
                     "model": f"/model/{session.model}/policy.onnx",
                     "layout": f"/model/{session.model}/layout.json", **session.query}
            if session.sizes:
                query["sizes"] = f"/stream/{session.name}/sizes.json"
            url = f"{server.base_url}/page/index.html?" + "&".join(f"{k}={v}" for k, v in query.items())
            config_sessions.append({"name": session.name, "url": url, "timeout_s": session.timeout_s,
                                    "bench_runs": session.bench_runs})
        config = {"node_modules": str(NODE_MODULES), "executable": str(CHROMIUM),
                  "sessions": config_sessions, "out": str(work_dir / "browser.json")}
        (work_dir / "driver.json").write_text(json.dumps(config, indent=1))
        completed = subprocess.run(["node", str(DRIVER), str(work_dir / "driver.json")], capture_output=True,
                                   text=True, timeout=driver_timeout_s, cwd=work_dir,
                                   env={**os.environ, "PLAYWRIGHT_BROWSERS_PATH": "0"})
        if completed.returncode != 0:
            raise RuntimeError(f"the Chromium driver failed (exit {completed.returncode}):\n"
                               f"{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
        results = {r["name"]: r for r in json.loads((work_dir / "browser.json").read_text())}
        for session in sessions:
            results[session.name]["server"] = [vars(r) for r in server.responses(session.name)]
    return results


def onnx_logits(model_dir: Path, rows: np.ndarray) -> np.ndarray:
    """The same rows through onnxruntime in Python (the reference for the browser's logits)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model_dir / "policy.onnx"), options,
                                           providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"obs": rows.astype(np.float32)})[0]


def qoe_lin(bitrate_kbps: list[float], rebuffer_s: float) -> float:
    """Pensieve's linear QoE over a whole session: sum R/1000 - 4.3 x stall_s - sum |dR|/1000."""
    rates_mbps = np.asarray(bitrate_kbps, dtype=float) / 1000.0
    return float(rates_mbps.sum() - 4.3 * rebuffer_s - np.abs(np.diff(rates_mbps)).sum())
