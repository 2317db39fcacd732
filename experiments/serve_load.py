"""Issue #7, point 2: how many decisions per second ``llmabr serve`` answers, and how fast, under load.

    llmabr export runs/quality/3g-s0 --out exports/3g-s0
    python experiments/serve_load.py --policy exports/3g-s0 --out experiments/results/serve_load

Starts ``llmabr serve --policy POLICY`` on 127.0.0.1 as a separate process, then for 1, 16 and 64
concurrent sessions drives it in a closed loop: every session is a player the simulator plays
(``VecSim``, test protocol, synthetic traces of the policy's network), posting /v1/decide after
each chunk and fetching the next chunk at the level the server answered; a finished video starts a
new session id. There is no think time (a real player asks every ~4 s), so this is the server's
capacity, not a realistic request rate. Latency is measured in the client, from sending the
request to reading the whole answer. The client speaks HTTP/1.1 over one keep-alive connection
per session with asyncio streams: an HTTP library would spend more CPU per request than the
server does, on the same cores. After each level, every answer is checked against onnxruntime
run here on the simulator's own row (outside the timed loop).

Writes ``summary.md`` and ``summary.json`` into ``--out``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

from llmabr.export.parity import onnx_session
from simulator.config import test_config
from simulator.core import VecSim
from simulator.layout import Layout
from simulator.traces import SYNTH_TYPES, generate
from simulator.video import load_profile

CHUNK_FIELDS = ("bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes", "rebuffer_s")


class Connection:
    """One keep-alive HTTP/1.1 connection (the server is uvicorn: every answer has Content-Length)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str):
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection(host, port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, host)

    async def post(self, path: str, payload: bytes) -> tuple[int, bytes]:
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(":", 1)[1]) for line in lines[1:] if line.lower().startswith("content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class Player:
    """A simulated player on one trace: the chunk it just fetched and what it knows about the next."""

    def __init__(self, traces, video, index: int):
        self.sim = VecSim(traces, video, 1, test_config(trace_order="sequential"), seed=index, player_offset=index)
        self.layout: Layout = self.sim.layout
        self.obs = self.sim.reset()[0].copy()
        fields = self.layout.split(self.obs)
        self.chunk = {name: float(fields[name][-1]) for name in CHUNK_FIELDS}  # chunk 0, fetched at level 1
        self.video_count = 1

    def body(self, session_id: str) -> bytes:
        fields = self.layout.split(self.obs)
        return json.dumps({"session_id": session_id, "chunk": self.chunk,
                           "next_chunk_bytes": fields["next_chunk_bytes"].tolist(),
                           "chunks_left": int(fields["chunks_left"][0])}).encode()

    def fetch(self, level: int) -> bool:
        """Fetch the next chunk at ``level``; True when the video ended (the next request starts a new one)."""
        out = self.sim.step(np.array([level], dtype=np.int32))
        done = bool(out.done[0])
        self.chunk = {name: float(getattr(out, name)[0]) for name in CHUNK_FIELDS}
        self.obs = out.obs[0].copy()  # after a finished video: the new video's row, chunk 0 already fetched
        if done:
            fields = self.layout.split(self.obs)
            self.chunk = {name: float(fields[name][-1]) for name in CHUNK_FIELDS}
            self.video_count += 1
        return done


async def run_level(host: str, port: int, n_sessions: int, requests_per_session: int, traces, video,
                    tag: str) -> dict:
    players = [Player(traces, video, index) for index in range(n_sessions)]
    connections = [await Connection.open(host, port) for _ in range(n_sessions)]
    latencies_s: list[float] = []
    checks: list[tuple[np.ndarray, int, list[float]]] = []
    errors = 0

    async def session(index: int) -> None:
        nonlocal errors
        player, connection = players[index], connections[index]
        for _ in range(requests_per_session):
            row = player.obs
            payload = player.body(f"{tag}-{n_sessions}-{index}-{player.video_count}")
            start = time.perf_counter()
            status, body = await connection.post("/v1/decide", payload)
            latencies_s.append(time.perf_counter() - start)
            if status != 200:
                errors += 1
                return
            answer = json.loads(body)
            checks.append((row, answer["level"], answer["logits"]))
            player.fetch(answer["level"])

    started = time.perf_counter()
    await asyncio.gather(*(session(index) for index in range(n_sessions)))
    wall_s = time.perf_counter() - started
    for connection in connections:
        connection.close()
    latencies_ms = np.array(latencies_s) * 1000.0
    return {"sessions": n_sessions, "requests": len(latencies_s), "errors": errors, "wall_s": wall_s,
            "requests_per_s": len(latencies_s) / wall_s, "p50_ms": float(np.percentile(latencies_ms, 50)),
            "p99_ms": float(np.percentile(latencies_ms, 99)), "max_ms": float(latencies_ms.max()),
            "videos": sum(player.video_count for player in players), "checks": checks}


def verify(checks, policy: Path) -> int:
    """Answers whose level or logits differ from onnxruntime here on the simulator's row."""
    session = onnx_session(policy / "policy.onnx")
    rows = np.stack([row for row, _, _ in checks])
    logits = session.run(["logits"], {"obs": rows})[0]
    wrong = 0
    for (row, level, served), local in zip(checks, logits):
        # Batch and single-row runs of one graph may differ in the last float32 bits.
        if level != int(np.argmax(local)) or not np.allclose(served, local, rtol=1e-5, atol=1e-5):
            wrong += 1
    return wrong


def start_server(policy: Path, port: int) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "llmabr.cli.main", "serve", "--policy", str(policy),
                               "--port", str(port)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited: {server.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not answer /healthz within 120 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", type=Path, required=True, help="export folder (llmabr export)")
    parser.add_argument("--sessions", default="1,16,64", help="concurrency levels, comma-separated")
    parser.add_argument("--requests", type=int, default=4000, help="decisions per level (split over its sessions)")
    parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    layout = json.loads((args.policy / "layout.json").read_text())
    video = load_profile(layout["video"])
    network = layout["network"] if layout["network"] in SYNTH_TYPES else "broadband"
    traces = generate(network, 64, seed=2024)
    port = args.port
    if not port:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
    server = start_server(args.policy, port)
    levels = []
    try:
        for n_sessions in [int(value) for value in args.sessions.split(",")]:
            per_session = math.ceil(args.requests / n_sessions)
            asyncio.run(run_level("127.0.0.1", port, n_sessions, min(per_session, 48), traces, video, "warm"))
            level = asyncio.run(run_level("127.0.0.1", port, n_sessions, per_session, traces, video, "load"))
            level["mismatches"] = verify(level.pop("checks"), args.policy)
            levels.append(level)
            print(f"{n_sessions:3d} sessions: {level['requests']} requests, {level['requests_per_s']:.0f} req/s, "
                  f"p50 {level['p50_ms']:.2f} ms, p99 {level['p99_ms']:.2f} ms, errors {level['errors']}, "
                  f"answers unlike local onnxruntime {level['mismatches']}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    write_summary(args, layout, network, levels)
    return 0


def write_summary(args, layout: dict, network: str, levels: list[dict]) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    export = json.loads((args.policy / "export.json").read_text()) if (args.policy / "export.json").exists() else {}
    machine = {"cpus": os.cpu_count(), "load_average_1min_after": os.getloadavg()[0]}
    data = {"policy": str(args.policy), "design": layout["design"], "source": export.get("source", ""),
            "network": network, "machine": machine, "levels": levels,
            "command": "python experiments/serve_load.py " + " ".join(sys.argv[1:])}
    (args.out / "summary.json").write_text(json.dumps(data, indent=1))
    lines = [
        "# llmabr serve under load", "",
        f"Policy: `{args.policy}` (design `{layout['design']}`, exported from `{export.get('source', '?')}`), ONNX "
        f"backend, one uvicorn process. Sessions are simulated players on synthetic `{network}` traces in a closed "
        "loop without think time (each asks again as soon as it has fetched the chunk it was told to), so the rate "
        "is the server's capacity; a real player asks once per chunk (every ~4 s).", "",
        f"Machine: {machine['cpus']} CPUs shared by the server and the load generator (and other jobs: load "
        f"average {machine['load_average_1min_after']:.1f} after the run).", "",
        "| concurrent sessions | requests | requests/s | p50 latency ms | p99 latency ms | max ms | errors | "
        "answers unlike local onnxruntime |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        lines.append(f"| {level['sessions']} | {level['requests']} | {level['requests_per_s']:.0f} | "
                     f"{level['p50_ms']:.2f} | {level['p99_ms']:.2f} | {level['max_ms']:.1f} | {level['errors']} | "
                     f"{level['mismatches']} |")
    if export.get("latency"):
        lines += ["", f"For scale: one onnxruntime decision inside the server takes {export['latency']['median_us']:.0f} "
                  f"us (median, measured by llmabr export); the rest is HTTP, JSON and the row builder."]
    lines += ["", f"Command: `{data['command']}`", ""]
    (args.out / "summary.md").write_text("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
