"""``llmabr serve``: rows built exactly as the simulator's, input validation, Pensieve's protocol,
a real server process, and the caged backend for designs that cannot be exported."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests import needs

needs.modules("onnxruntime", "fastapi", "uvicorn", extra="export", module_level=True)
from fastapi.testclient import TestClient

from llmabr.design.format import Design, write_design
from llmabr.export import export_policy
from llmabr.export.parity import onnx_session
from llmabr.serve.app import create_app
from llmabr.serve.backends import BackendError, CagedBackend, OnnxBackend, open_backend
from llmabr.serve.session import CHUNK_FIELDS, SessionHistory, SessionStore
from llmabr.train.caged import train_caged
from llmabr.train.config import load_config
from simulator.config import test_config
from simulator.core import VecSim
from simulator.paths import REPO_ROOT
from simulator.traces import generate
from simulator.video import load_profile
from tests.conftest import wait_for
from tests.llmabr.conftest import train_tiny

TINY = ["warm_start=none", "total_steps=512", "eval_every_steps=512", "ppo.n_envs=4", "ppo.n_steps=64", "ppo.batch_size=128",
        "synthetic_count=6", "val_max_traces=2"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A barely trained pensieve run: the weights are nearly random, which is all serving needs."""
    return train_tiny(tmp_path_factory.mktemp("serve-run") / "pensieve", TINY)


@pytest.fixture(scope="module")
def export_dir(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve-export")
    export_policy(run_dir, out)
    return out


@pytest.fixture(scope="module")
def backend(export_dir):
    return OnnxBackend(export_dir)


@pytest.fixture
def client(backend):
    return TestClient(create_app(backend))


def simulated_session(mode: str, seed: int = 3):
    """(chunk fields of the finished chunk, the simulator's row after it, chunks_total) per decision of
    one player on the deterministic test protocol with random levels."""
    video = load_profile("envivio-synth")
    sim = VecSim(generate("3g", 1, seed=seed), video, 1, test_config(mode=mode), seed=0)
    obs = sim.reset().copy()
    fields = sim.layout.split(obs)
    first = {name: float(fields[name][0, -1]) for name in CHUNK_FIELDS}  # chunk 0, fetched by reset
    steps, rng = [(first, obs[0].copy())], np.random.default_rng(seed)
    for _ in range(sim.n_episode_chunks - 1):
        out = sim.step(rng.integers(0, video.n_levels, 1).astype(np.int32))
        obs = (out.final_obs if out.done[0] else out.obs)[0].copy()
        chunk = {name: float(getattr(out, name)[0]) for name in CHUNK_FIELDS}
        steps.append((chunk, obs))
    return video, sim.layout, steps, sim.n_episode_chunks


@pytest.mark.parametrize("mode", ["default", "pensieve"])
def test_session_history_builds_the_simulators_rows_exactly(mode):
    video, layout, steps, chunks_total = simulated_session(mode)
    history = SessionHistory(layout.history_len, layout.n_levels)
    for chunk, sim_row in steps:
        history.add_chunk(**chunk)
        fields = layout.split(sim_row)
        row = history.row(next_chunk_bytes=fields["next_chunk_bytes"], ladder_kbps=video.bitrates_kbps,
                          chunks_left=int(fields["chunks_left"][0]), chunks_total=chunks_total)
        assert row.dtype == np.float32 and np.array_equal(row, sim_row)
    assert history.chunks_seen == len(steps) > layout.history_len  # the window rolled


def test_session_history_rejects_bad_values_by_name():
    history = SessionHistory(16, 6)
    good = dict(bitrate_kbps=750, buffer_s=4.0, download_time_s=1.0, chunk_bytes=1e5, rebuffer_s=0.0)
    for name, value in [("buffer_s", -1.0), ("download_time_s", float("nan")), ("chunk_bytes", float("inf"))]:
        with pytest.raises(ValueError, match=f"chunk.{name}"):
            history.add_chunk(**{**good, name: value})
    assert history.chunks_seen == 0
    history.add_chunk(**good)
    with pytest.raises(ValueError, match="next_chunk_bytes must hold 6"):
        history.row(next_chunk_bytes=[1.0] * 5, ladder_kbps=[1.0] * 6, chunks_left=1, chunks_total=2)
    with pytest.raises(ValueError, match="chunks_left .* exceeds"):
        history.row(next_chunk_bytes=[1.0] * 6, ladder_kbps=[1.0] * 6, chunks_left=3, chunks_total=2)


def test_session_store_expires_idle_sessions_and_stays_bounded():
    now = [0.0]
    store = SessionStore(16, 6, ttl_s=10.0, max_sessions=3, clock=lambda: now[0])
    store.get("a").history.add_chunk(bitrate_kbps=300, buffer_s=4, download_time_s=1, chunk_bytes=1, rebuffer_s=0)
    now[0] = 5.0
    assert store.get("a").history.chunks_seen == 1  # still there, and touched at t = 5
    now[0] = 6.0
    store.get("b")
    now[0] = 14.0
    store.get("c")
    assert "a" in store and "b" in store  # idle 9 s: kept
    now[0] = 15.5
    store.get("d")
    assert "a" not in store and store.expired == 1 and len(store) == 3
    store.get("e")  # over the bound: the least recently used goes
    assert "b" not in store and store.evicted == 1 and len(store) == 3
    assert store.get("a").history.chunks_seen == 0  # a forgotten session starts again empty


def decide_body(session_id, chunk, row, layout_info) -> dict:
    fields = {f["name"]: row[f["offset"]:f["offset"] + f["size"]] for f in layout_info["fields"]}
    body = {"session_id": session_id, "next_chunk_bytes": fields["next_chunk_bytes"].tolist(),
            "chunks_left": int(fields["chunks_left"][0]), "chunks_total": int(fields["chunks_total"][0]),
            "ladder_kbps": fields["ladder_kbps"].tolist()}
    if chunk is not None:
        body["chunk"] = chunk
    return body


def test_decide_answers_what_the_graph_says_on_the_simulators_row(client, export_dir, backend):
    """Two interleaved sessions replayed from the simulator: every answer equals onnxruntime on the
    simulator's own row (so the server built that row bit for bit and kept the sessions apart)."""
    session = onnx_session(export_dir / "policy.onnx")
    replays = {name: simulated_session("default", seed)[2] for name, seed in (("p1", 1), ("p2", 2))}
    for step in range(len(replays["p1"])):
        for name, steps in replays.items():
            chunk, sim_row = steps[step]
            response = client.post("/v1/decide", json=decide_body(name, chunk, sim_row, backend.layout))
            assert response.status_code == 200, response.text
            expected = session.run(["logits"], {"obs": sim_row[None, :]})[0][0]
            answer = response.json()
            assert answer["logits"] == expected.tolist() and answer["level"] == int(expected.argmax())
            ladder = next(f for f in backend.layout["fields"] if f["name"] == "ladder_kbps")["offset"]
            assert answer["session_id"] == name and answer["bitrate_kbps"] == float(sim_row[ladder + answer["level"]])
    assert client.get("/healthz").json()["sessions"] == 2


def test_first_decision_without_a_chunk_uses_an_empty_history_and_layout_defaults(client, export_dir, backend):
    layout = backend.layout
    sizes = [kbps * 500.0 for kbps in layout["ladder_kbps"]]
    body = {"session_id": "fresh", "next_chunk_bytes": sizes, "chunks_left": layout["chunks_total"]}
    answer = client.post("/v1/decide", json=body).json()
    # the row by hand from layout.json's field table: no chunk played, so every history field and the
    # validity mask are 0; then the next sizes, the ladder, chunks left and total
    row = np.zeros(layout["size"], dtype=np.float32)
    place = {field["name"]: slice(field["offset"], field["offset"] + field["size"]) for field in layout["fields"]}
    row[place["next_chunk_bytes"]] = sizes
    row[place["ladder_kbps"]] = layout["ladder_kbps"]
    row[place["chunks_left"]] = row[place["chunks_total"]] = layout["chunks_total"]
    assert set(place) >= {"valid", "bitrate_kbps", "buffer_s", "download_time_s", "chunk_bytes", "rebuffer_s"}
    expected = onnx_session(export_dir / "policy.onnx").run(["logits"], {"obs": row[None, :]})[0][0]
    assert answer["logits"] == expected.tolist()
    chunk = {"bitrate_kbps": 750.0, "buffer_s": 4.0, "download_time_s": 1.5, "chunk_bytes": 3.7e5, "rebuffer_s": 1.5}
    client.post("/v1/decide", json={**body, "chunk": chunk, "chunks_left": layout["chunks_total"] - 1})
    again = client.post("/v1/decide", json=body).json()  # no chunk again: a new playback, history cleared
    assert again["logits"] == answer["logits"]
    health = client.get("/healthz").json()
    assert health["model_loaded"] and health["design"] == "pensieve" and health["layout_version"] == 1
    assert client.get("/v1/layout").json() == layout


GOOD_CHUNK = {"bitrate_kbps": 750, "buffer_s": 4.0, "download_time_s": 1.2, "chunk_bytes": 375000, "rebuffer_s": 0.0}
GOOD = {"session_id": "s", "chunk": GOOD_CHUNK, "next_chunk_bytes": [1e5, 2e5, 3e5, 4e5, 5e5, 6e5], "chunks_left": 10}


def with_(changes: dict, drop: str | None = None, chunk: dict | None = None, chunk_drop: str | None = None) -> bytes:
    body = {**GOOD, **changes}
    if drop:
        body.pop(drop)
    if chunk is not None or chunk_drop:
        body["chunk"] = {key: value for key, value in {**GOOD_CHUNK, **(chunk or {})}.items() if key != chunk_drop}
    return json.dumps(body).encode()


BAD_DECIDE = [
    (b"", 400, None), (b"null", 400, None), (b"[]", 400, None), (b'"text"', 400, None), (b"{", 400, None),
    (b"\xff\xfe{}", 400, None), (b'{"session_id": NaN}', 400, None), (b'{"chunks_left": Infinity}', 400, None),
    (b"[" * 30000 + b"]" * 30000, 400, None), (b"[" * 20000, 400, None),
    (b'{"session_id": "' + b"x" * 70000 + b'"}', 413, None),
    (with_({}, drop="session_id"), 422, "session_id"), (with_({"session_id": 7}), 422, "session_id"),
    (with_({"session_id": ""}), 422, "session_id"), (with_({"session_id": "x" * 200}), 422, "session_id"),
    (with_({}, drop="next_chunk_bytes"), 422, "next_chunk_bytes"),
    (with_({"next_chunk_bytes": "big"}), 422, "next_chunk_bytes"),
    (with_({"next_chunk_bytes": [1e5] * 5}), 422, "next_chunk_bytes"),
    (with_({"next_chunk_bytes": [1e5] * 7}), 422, "next_chunk_bytes"),
    (with_({"next_chunk_bytes": [1e5, "2", 1e5, 1e5, 1e5, 1e5]}), 422, "next_chunk_bytes[1]"),
    (with_({"next_chunk_bytes": [1e5, 1e5, -3, 1e5, 1e5, 1e5]}), 422, "next_chunk_bytes[2]"),
    (with_({"next_chunk_bytes": [True, 1e5, 1e5, 1e5, 1e5, 1e5]}), 422, "next_chunk_bytes[0]"),
    (with_({"next_chunk_bytes": [1e5, 1e5, 1e5, None, 1e5, 1e5]}), 422, "next_chunk_bytes[3]"),
    (b'{"session_id": "s", "next_chunk_bytes": [1e999, 1, 1, 1, 1, 1], "chunks_left": 1}', 422, "next_chunk_bytes[0]"),
    (with_({}, drop="chunks_left"), 422, "chunks_left"), (with_({"chunks_left": -1}), 422, "chunks_left"),
    (with_({"chunks_left": 2.5}), 422, "chunks_left"), (with_({"chunks_left": "3"}), 422, "chunks_left"),
    (with_({"chunks_left": True}), 422, "chunks_left"), (with_({"chunks_left": 10 ** 9}), 422, "chunks_left"),
    (with_({"chunks_left": 10, "chunks_total": 5}), 422, "chunks_left"),
    (with_({"chunks_total": 0}), 422, "chunks_total"), (with_({"chunks_total": "49"}), 422, "chunks_total"),
    (with_({"chunk": [1, 2]}), 422, "chunk"), (with_({"chunk": "x"}), 422, "chunk"),
    (with_({}, chunk_drop="buffer_s"), 422, "chunk.buffer_s"),
    (with_({}, chunk={"buffer_s": -0.5}), 422, "chunk.buffer_s"),
    (with_({}, chunk={"rebuffer_s": -0.1}), 422, "chunk.rebuffer_s"),
    (with_({}, chunk={"download_time_s": 0}), 422, "chunk.download_time_s"),
    (with_({}, chunk={"bitrate_kbps": "750"}), 422, "chunk.bitrate_kbps"),
    (with_({}, chunk={"chunk_bytes": [1]}), 422, "chunk.chunk_bytes"),
    (with_({}, chunk={"chunk_size": 1}), 422, "chunk.chunk_size"),
    (with_({"ladder_kbps": [300, 750]}), 422, "ladder_kbps"),
    (with_({"ladder_kbps": [300, 750, 700, 1850, 2850, 4300]}), 422, "ladder_kbps"),
    (with_({"ladder_kbps": [0, 750, 1200, 1850, 2850, 4300]}), 422, "ladder_kbps[0]"),
    (with_({"next_chunk_size": [1] * 6}), 422, "next_chunk_size"),
]


@pytest.mark.parametrize("body,status,field", BAD_DECIDE, ids=[f"decide-{i}" for i in range(len(BAD_DECIDE))])
def test_bad_decide_bodies_get_a_4xx_naming_the_field(client, body, status, field):
    response = client.post("/v1/decide", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["field"] == field and isinstance(answer["error"], str) and answer["error"]
    if field:
        assert field.split("[")[0] in answer["error"]
    assert client.app.state.sessions.get("s").history.chunks_seen == 0  # nothing was recorded


PENSIEVE_GOOD = {"lastquality": 1, "buffer": 4.0, "RebufferTime": 1200, "lastChunkStartTime": 1000,
                 "lastChunkFinishTime": 2200, "lastChunkSize": 380000, "lastRequest": 0}
BAD_PENSIEVE = [
    ({"lastquality": None}, "lastquality"), ({"lastquality": 6}, "lastquality"), ({"lastquality": -1}, "lastquality"),
    ({"buffer": -1}, "buffer"), ({"buffer": "4"}, "buffer"), ({"RebufferTime": -5}, "RebufferTime"),
    ({"lastChunkFinishTime": 1000}, "lastChunkFinishTime"), ({"lastChunkStartTime": "t"}, "lastChunkStartTime"),
    ({"lastChunkSize": -1}, "lastChunkSize"), ({"lastRequest": -1}, "lastRequest"), ({"lastRequest": 1.5}, "lastRequest"),
]


@pytest.mark.parametrize("change,field", BAD_PENSIEVE, ids=[f"pensieve-{i}" for i in range(len(BAD_PENSIEVE))])
def test_bad_pensieve_bodies_get_a_4xx_naming_the_field(client, change, field):
    body = {key: value for key, value in {**PENSIEVE_GOOD, **change}.items() if value is not None}
    response = client.post("/", json=body)
    assert response.status_code == 422 and response.json()["field"] == field, response.text


def test_wrong_routes_and_methods_are_4xx(client):
    assert client.get("/v1/decide").status_code == 405
    assert client.post("/v2/decide", json=GOOD).status_code == 404
    assert client.post("/", content=b"not json").status_code == 400


def test_pensieve_protocol_decides_like_v1_decide_and_refreshes_at_the_end(client, backend):
    """Pensieve's player reports cumulative stall in ms and timestamps; the server turns them into the
    same chunk record a /v1/decide client sends, so both routes decide alike on the same playback."""
    layout, rng = backend.layout, np.random.default_rng(5)
    video = load_profile(layout["video"])
    total, rebuffer_ms, clock_ms = layout["chunks_total"], 0.0, 1_000.0
    for index in range(total):
        level, stall_ms, download_ms = int(rng.integers(0, 6)), float(rng.choice([0.0, 350.0])), float(rng.uniform(200, 4000))
        rebuffer_ms += stall_ms
        body = {"lastquality": level, "buffer": float(rng.uniform(0, 30)), "RebufferTime": rebuffer_ms,
                "lastChunkStartTime": clock_ms, "lastChunkFinishTime": clock_ms + download_ms,
                "lastChunkSize": float(video.chunk_bytes[level, index]), "lastRequest": index,
                "bandwidthEst": 1.0, "nextChunkSize": 0, "Type": "ignored"}
        clock_ms += download_ms
        answer = client.post("/", json=body)
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
        if index == total - 1:
            assert answer.text == "REFRESH"
            break
        chunk = {"bitrate_kbps": layout["ladder_kbps"][level], "buffer_s": body["buffer"],
                 "download_time_s": (body["lastChunkFinishTime"] - body["lastChunkStartTime"]) / 1000.0,
                 "chunk_bytes": body["lastChunkSize"],
                 "rebuffer_s": stall_ms / 1000.0}
        decided = client.post("/v1/decide", json={
            "session_id": "twin", "chunk": chunk, "next_chunk_bytes": video.chunk_bytes[:, index + 1].tolist(),
            "chunks_left": total - index - 1}).json()
        assert answer.text == str(decided["level"]), index
    assert client.post("/", json={"pastThroughput": [1, 2]}).text == ""
    assert client.app.state.sessions.get("pensieve").history.chunks_seen == 0  # REFRESH started over


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_real_server_process_over_loopback(export_dir, client):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "llmabr.cli.main", "serve", "--policy", str(export_dir),
                               "--port", str(port)], cwd=REPO_ROOT, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, body = http("GET", f"http://127.0.0.1:{port}/healthz")
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "the server did not come up within 60 s"
                time.sleep(0.2)
        assert status == 200 and json.loads(body)["model_loaded"]
        payload = json.dumps({**GOOD, "session_id": "real"}).encode()
        status, body = http("POST", f"http://127.0.0.1:{port}/v1/decide", payload)
        expected = client.post("/v1/decide", content=payload).json()
        assert status == 200 and json.loads(body) == expected
        status, body = http("POST", f"http://127.0.0.1:{port}/v1/decide", b'{"session_id": 3}')
        assert status == 422 and json.loads(body)["field"] == "session_id"
        assert server.poll() is None  # bad input did not take the server down
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)


def test_caged_backend_serves_a_run_folder_restarts_a_dead_child_and_answers_503_when_out_of_restarts(run_dir, backend):
    caged = open_backend(run_dir)
    assert isinstance(caged, CagedBackend)
    try:
        assert caged.layout == backend.layout  # the same layout.json data, built from the run
        client = TestClient(create_app(caged))
        reference = TestClient(create_app(backend))

        def decide_and_compare(step: int) -> None:
            body = {**GOOD, "session_id": "c", "chunks_left": 10 - step}
            answer, expected = client.post("/v1/decide", json=body), reference.post("/v1/decide", json=body).json()
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["logits"], expected["logits"], rtol=1e-5, atol=1e-5)
            assert answer.json()["level"] == expected["level"]

        for step in range(3):
            decide_and_compare(step)
        assert client.get("/healthz").json()["backend"] == "caged"
        caged.max_restarts = 1
        first_child = caged.process.pid
        os.kill(first_child, signal.SIGKILL)  # the jail we started: the worker dies with it
        caged.process.wait(timeout=10)
        assert client.get("/healthz").status_code == 200  # dead, but the next request restarts it
        decide_and_compare(3)  # answered by a fresh child, the session's history kept by the server
        assert caged.restarts == 1 and caged.process.pid != first_child
        os.kill(caged.process.pid, signal.SIGKILL)  # again: no restart left
        caged.process.wait(timeout=10)
        answer = client.post("/v1/decide", json={**GOOD, "session_id": "c"})
        assert answer.status_code == 503 and "caged policy process" in answer.json()["error"]
        assert "restarts were used" in answer.json()["error"]
        health = client.get("/healthz")
        assert health.status_code == 503 and not health.json()["model_loaded"] and health.json()["reason"]
    finally:
        caged.close()
    assert not caged.workdir.exists()


def within_s(timeout_s: float, call):
    """``call()``'s result, from a thread given ``timeout_s``: a request that hangs fails the test instead
    of hanging the suite (the thread is left behind, a daemon)."""
    import threading

    box = []

    def run():
        try:
            box.append((True, call()))
        except BaseException as error:  # noqa: BLE001 - re-raised in the test's thread
            box.append((False, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s)
    assert box, f"no answer within {timeout_s} s: the request hangs"
    answered, value = box[0]
    if not answered:
        raise value
    return value


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def worker_of(caged) -> int:
    """The caged worker's pid: the jail's one child (read from /proc, not by searching for a name)."""
    jail = caged.process.pid
    [child] = Path(f"/proc/{jail}/task/{jail}/children").read_text().split()
    return int(child)


def test_caged_backend_replaces_a_silent_worker_and_says_why_a_replacement_could_not_start(run_dir, backend):
    """A worker that stops answering (SIGSTOP) is killed at the answer deadline and replaced, and the request
    is answered by the replacement; a replacement that fails to start makes the request a 503 that says
    which restart failed and why."""
    caged = open_backend(run_dir)
    caged.answer_timeout_s = 2.0
    try:
        client, reference = TestClient(create_app(caged)), TestClient(create_app(backend))
        body = {**GOOD, "session_id": "h"}
        assert client.post("/v1/decide", json=body).status_code == 200
        reference.post("/v1/decide", json=body)  # the reference session keeps the same history
        first_jail, silent = caged.process.pid, worker_of(caged)
        os.kill(silent, signal.SIGSTOP)  # alive, holds its pipes, answers nothing
        answer = within_s(60, lambda: client.post("/v1/decide", json={**body, "chunks_left": 9}))
        assert answer.status_code == 200, answer.text
        expected = reference.post("/v1/decide", json={**body, "chunks_left": 9}).json()
        np.testing.assert_allclose(answer.json()["logits"], expected["logits"], rtol=1e-5, atol=1e-5)
        assert caged.restarts == 1 and caged.process.pid != first_jail
        assert wait_for(lambda: gone(silent), timeout_s=10)  # killed, not left stopped

        request = json.loads((caged.workdir / "request.json").read_text())
        (caged.workdir / "request.json").write_text(json.dumps({**request, "weights": "no_such_weights.pt"}))
        os.kill(caged.process.pid, signal.SIGKILL)
        caged.process.wait(timeout=10)
        failed = client.post("/v1/decide", json={**body, "chunks_left": 8})
        assert failed.status_code == 503
        error = failed.json()["error"]
        assert "restart 2 of 3 failed" in error and "no_such_weights.pt" in error, error
    finally:
        if caged.child is not None:  # without the backend's lock, which a request stuck on the pipe would hold
            caged.child.kill()
        caged.close()
    assert not caged.workdir.exists()


NADA_STATE = '''
def state_func(bit_rate_kbps_list, buffer_size_second_list, delay_second_list, video_chunk_size_bytes_list,
               next_chunk_bytes_sizes, video_chunk_remain_num, total_chunk_num, all_bit_rate_kbps):
    top = max(all_bit_rate_kbps)
    return {"normal_states": [[bit_rate_kbps_list[-1] / top], [buffer_size_second_list[-1] / 10.0]],
            "time_series_states": [[d / 10.0 for d in delay_second_list], [s / 1e6 for s in next_chunk_bytes_sizes]]}
'''


def test_a_nada_design_is_served_through_the_cage(tmp_path):
    """The case the cage exists for: a per-player Python design that export refuses."""
    design_dir = write_design(Design(name="nada-tiny", state_source=NADA_STATE, kind="nada"), tmp_path / "design")
    result = train_caged(design_dir, load_config(None, TINY), tmp_path / "run", wall_s=300)
    assert result["status"] == "ok", result.get("reason")
    caged = open_backend(tmp_path / "run")
    try:
        client = TestClient(create_app(caged))
        answer = client.post("/v1/decide", json={**GOOD, "session_id": "n"})
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["logits"]) == 6 and answer.json()["level"] == int(np.argmax(answer.json()["logits"]))
    finally:
        caged.close()


def test_unusable_policy_folders_are_refused_with_a_reason(tmp_path):
    with pytest.raises(BackendError, match="neither an export folder"):
        open_backend(tmp_path)
    (tmp_path / "layout.json").write_text("{}")
    (tmp_path / "policy.onnx").write_bytes(b"not a graph")
    with pytest.raises(BackendError, match="missing layout_version"):
        open_backend(tmp_path)
