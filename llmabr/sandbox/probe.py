"""S1, the probe: runs INSIDE the cage (``python -I -m llmabr.sandbox.probe request.json``).

It loads the design from the work directory, runs its state function and trunk on the probe
batches, and writes ``report.json`` after every check, so that whatever kills it (deadline,
memory, a crash) the parent still learns which check was running. Checks, in order:

load, features (names, dtype, shape), finite, normalization, determinism, batch_independence,
trunk, parameters, latency, export (ONNX dry run; torch designs only).
"""

from __future__ import annotations

import io
import json
import math
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def _design_frame(error: BaseException) -> str:
    """'state.py line 12' for the innermost traceback frame inside the design, if any."""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename.endswith(("state.py", "net.py")) and "<design>" in frame.filename:
            return f" ({Path(frame.filename).name} line {frame.lineno})"
    return ""


def describe_error(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    if len(text) > 400:
        text = text[:400] + "..."
    return text + _design_frame(error)


class Probe:
    def __init__(self, request: dict, workdir: Path):
        from llmabr.sandbox.report import CheckReport

        self.request, self.workdir = request, workdir
        self.config = request["config"]
        self.report = CheckReport(design=request["design_name"], path=request.get("design_path", ""),
                                  kind=request.get("kind", "torch"), stage_reached="S1")
        self.report.probe_source = request.get("probe_source", "")
        self.running = None

    # -- bookkeeping ----------------------------------------------------------------------
    def save(self) -> None:
        data = self.report.to_dict()
        data["running"] = self.running
        path = self.workdir / "report.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, allow_nan=False, default=str))
        tmp.replace(path)

    def start(self, name: str) -> None:
        self.running = name
        self.save()

    def result(self, name: str, passed: bool, reason: str = "", **details) -> bool:
        self.report.add("S1", name, passed, reason, **details)
        self.running = None
        self.save()
        return passed

    # -- the checks -----------------------------------------------------------------------
    def run(self) -> None:
        import torch

        torch.set_num_threads(1)
        from llmabr.design.format import load_design
        from llmabr.design.loader import load_modules
        from simulator.layout import Layout

        self.start("load")
        try:
            design = load_design(self.workdir / "design")
            loaded = load_modules(design)
        except BaseException as error:  # noqa: BLE001 - design code may raise anything
            self.result("load", False, f"the design failed to load: {describe_error(error)}")
            return
        self.report.exportable = bool(loaded.exportable)
        self.result("load", True)

        layout = Layout(self.request["history_len"], self.request["n_levels"])
        probe = np.load(self.workdir / "probe.npz")
        networks = list(probe.files)
        obs = np.concatenate([probe[name] for name in networks])
        labels = np.concatenate([[name] * len(probe[name]) for name in networks])
        targets = self.request["target_networks"]

        def fields_of(rows: np.ndarray) -> dict:
            return {name: torch.from_numpy(np.array(value)) for name, value in layout.split(rows).items()}

        self.start("features")
        try:
            with torch.no_grad():
                features = loaded.state_fn(fields_of(obs))
        except BaseException as error:  # noqa: BLE001
            self.result("features", False, f"state() raised {describe_error(error)}")
            return
        problem = self._feature_problem(features, len(obs))
        if problem:
            self.result("features", False, problem)
            return
        names = sorted(features)
        dims = {name: int(features[name].shape[1]) for name in names}
        self.result("features", True, features={name: dims[name] for name in names})

        self.start("finite")
        bad = [name for name in names if not bool(torch.isfinite(features[name]).all())]
        if bad:
            where = {}
            for name in bad:
                rows = (~torch.isfinite(features[name])).any(dim=1).numpy()
                where[name] = sorted(set(labels[rows].tolist()))
            self.result("finite", False, "features with NaN or inf values: " + ", ".join(
                f"{name} (on {', '.join(where[name])} rows)" for name in bad)
                + ("; guard divisions (a spread such as np.std of history entries that are all equal is 0)"
                   if loaded.kind == "nada" else
                   "; guard divisions (e.g. by download_time_s, which is 0 in unplayed history slots: use `valid`)"))
            return
        self.result("finite", True)

        self.start("normalization")
        if not self._normalization(features, names, labels, targets):
            return

        # A NADA design's features are cached per row (llmabr.design.nada): each of the next checks
        # starts from an empty cache, so it calls the design again.
        fresh = getattr(loaded.state_fn, "cache_clear", lambda: None)
        self.start("determinism")
        fresh()
        with torch.no_grad():
            again = loaded.state_fn(fields_of(obs))
        changed = [name for name in names if name not in again or not torch.equal(again[name], features[name])]
        if changed:
            self.result("determinism", False, f"features {changed} differ between two calls on the same rows: "
                                              "remove randomness (torch.rand, dropout) from the state function")
            return
        self.result("determinism", True)

        self.start("batch_independence")
        rng = np.random.default_rng(0)
        picks = rng.choice(len(obs), size=min(self.config["alone_rows"], len(obs)), replace=False)
        worst, worst_name = 0.0, ""
        fresh()
        with torch.no_grad():
            for row in picks:
                alone = loaded.state_fn(fields_of(obs[row:row + 1]))
                for name in names:
                    if name not in alone or tuple(alone[name].shape) != (1, dims[name]):
                        self.result("batch_independence", False,
                                    f"feature {name!r} has a different shape when computed for one row alone")
                        return
                    gap = float((alone[name][0] - features[name][row]).abs().max())
                    if not math.isfinite(gap):  # e.g. a std over a batch of one: NaN alone, finite in a batch
                        gap = math.inf
                    scale = 1.0 + float(features[name][row].abs().max())
                    if gap / scale > worst:
                        worst, worst_name = gap / scale, name
        if worst > self.config["batch_tolerance"]:
            self.result("batch_independence", False,
                        f"feature {worst_name!r} of a row changes with the other rows in the batch "
                        f"(relative gap {worst:.2g}; inf: NaN when the row is alone): compute each player's features from its own row only, "
                        "never from batch statistics such as a mean or max over dim 0", relative_gap=worst)
            return
        self.result("batch_independence", True, relative_gap=worst)

        self.start("trunk")
        try:
            trunk = loaded.trunk_cls(dict(dims))
            latent_dim = int(trunk.latent_dim)
            trunk.eval()
            with torch.no_grad():
                latent = trunk(features)
        except BaseException as error:  # noqa: BLE001
            self.result("trunk", False, f"Trunk failed: {describe_error(error)}")
            return
        if not isinstance(latent, torch.Tensor) or tuple(latent.shape) != (len(obs), latent_dim):
            shape = tuple(latent.shape) if isinstance(latent, torch.Tensor) else type(latent).__name__
            self.result("trunk", False, f"Trunk.forward must return a tensor [batch, latent_dim={latent_dim}], got {shape}")
            return
        if not bool(torch.isfinite(latent).all()):
            self.result("trunk", False, "Trunk.forward produced NaN or inf on the probe rows")
            return
        if not 1 <= latent_dim <= self.config["max_latent_dim"]:
            self.result("trunk", False, f"latent_dim {latent_dim} is outside 1..{self.config['max_latent_dim']}")
            return
        self.result("trunk", True, latent_dim=latent_dim)

        self.start("parameters")
        trunk_params = sum(p.numel() for p in trunk.parameters())
        trunks = 1 if self.request.get("shared_trunk") else 2
        heads = latent_dim * layout.n_levels + layout.n_levels + latent_dim + 1
        self.report.param_count = trunk_params * trunks + heads
        if self.report.param_count > self.config["max_params"]:
            self.result("parameters", False, f"{self.report.param_count:,} parameters exceed the cap of "
                                             f"{self.config['max_params']:,}: use fewer or narrower layers",
                        param_count=self.report.param_count)
            return
        self.result("parameters", True, param_count=self.report.param_count)

        self.start("latency")
        if not self._latency(loaded, trunk, obs, fields_of, fresh):
            return

        self.start("export")
        if not loaded.exportable:
            self.result("export", True, "skipped: NADA adapter designs run per player in Python and are not "
                                        "exportable to ONNX; use `llmabr serve` for them", skipped=True)
        else:
            self._export(loaded, trunk, layout, obs)

    def _feature_problem(self, features, n_rows: int) -> str:
        import torch

        if not isinstance(features, dict) or not features:
            return f"state() must return a non-empty dict of name -> tensor, got {type(features).__name__}"
        total = 0
        for name, value in features.items():
            if not isinstance(name, str) or not name.isidentifier():
                return f"feature names must be identifiers, got {name!r}"
            if not isinstance(value, torch.Tensor):
                return f"feature {name!r} is a {type(value).__name__}, not a torch tensor"
            if value.dtype != torch.float32:
                return f"feature {name!r} has dtype {value.dtype}; return float32 (call .float())"
            if value.dim() != 2 or value.shape[0] != n_rows or value.shape[1] < 1:
                return (f"feature {name!r} has shape {tuple(value.shape)}; every feature must be [batch, d] "
                        f"with batch = {n_rows} here and d >= 1 (use .reshape(batch, -1))")
            total += int(value.shape[1])
        if total > self.config["max_feature_dims"]:
            return f"{total} feature dimensions in all exceed the cap of {self.config['max_feature_dims']}"
        return ""

    def _normalization(self, features, names, labels, targets) -> bool:
        limit_p99, limit_abs = self.config["max_abs_p99"], self.config["max_abs"]
        target_rows = np.isin(labels, targets)
        offenders = []
        for name in names:
            values = features[name].numpy().astype(np.float64)
            magnitude = np.abs(values)
            by_network = {net: float(np.percentile(magnitude[labels == net], 99)) for net in sorted(set(labels))}
            from llmabr.sandbox.report import FeatureStats

            self.report.features.append(FeatureStats(
                name=name, dims=values.shape[1], min=float(values.min()), max=float(values.max()),
                mean=float(values.mean()), std=float(values.std()),
                p99_abs=float(np.percentile(magnitude, 99)), p99_abs_by_network=by_network))
            target_magnitude = magnitude[target_rows]
            for column in range(values.shape[1]):
                p99 = float(np.percentile(target_magnitude[:, column], 99))
                peak = float(target_magnitude[:, column].max())
                if p99 > limit_p99 or peak > limit_abs:
                    offenders.append((name, column, p99, peak))
        if offenders:
            name, column, p99, peak = max(offenders, key=lambda item: item[2])
            hint = " - that is the size of raw kbps or bytes" if p99 > 200 else ""
            listed = ", ".join(sorted({f"{o[0]}[{o[1]}]" for o in offenders})[:8])
            warn = self.config.get("normalization", "reject") == "warn"
            return self.result(
                "normalization", warn,
                ("warning (normalization = warn): " if warn else "") + f"features are not normalized: {listed} exceed |x| p99 <= {limit_p99:g} / max <= {limit_abs:g} "
                f"on {', '.join(targets)} probe rows (worst: {name}[{column}] with p99 |x| = {p99:.3g}, "
                f"max {peak:.3g}{hint}); scale each feature into about [-1, 1], e.g. bitrate / top ladder "
                "bitrate, buffer_s / 10, bytes / (top bitrate x 4 s / 8)", offenders=len(offenders))
        return self.result("normalization", True)

    def _latency(self, loaded, trunk, obs, fields_of, fresh) -> bool:
        import torch

        timings = {}
        with torch.no_grad():
            for batch in (1, 256):
                rows = np.resize(obs, (batch, obs.shape[1]))
                samples = []
                for _ in range(20 if batch == 1 else 5):
                    fields = fields_of(rows)
                    fresh()
                    start = time.perf_counter()
                    trunk(loaded.state_fn(fields))
                    samples.append((time.perf_counter() - start) * 1000.0)
                    if sum(samples) > 5000:
                        break
                timings[f"batch_{batch}"] = float(np.median(samples))
        self.report.latency_ms = timings
        nada = loaded.kind == "nada"
        caps = {"batch_1": self.config["max_latency_ms_1"],
                "batch_256": self.config["max_latency_ms_256_nada" if nada else "max_latency_ms_256"]}
        slow = [f"{key} {timings[key]:.1f} ms > {caps[key]:g} ms" for key in caps if timings[key] > caps[key]]
        if slow:
            hint = ("state_func runs once per player: use fewer pandas/scipy calls per player (each costs 0.1-0.5 ms) "
                    "and numpy on the short lists" if nada else
                    "avoid Python loops over rows or time steps, use tensor operations")
            return self.result("latency", False, "forward pass too slow (state + trunk): " + "; ".join(slow)
                               + ": " + hint, **timings)
        return self.result("latency", True, **timings)

    def _export(self, loaded, trunk, layout, obs) -> None:
        import torch

        class ObsToLogits(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.trunk = trunk
                self.head = torch.nn.Linear(int(trunk.latent_dim), layout.n_levels)

            def forward(self, rows):
                fields = {name: rows[:, offset:offset + size] for name, offset, size in layout.fields}
                return self.head(self.trunk(loaded.state_fn(fields)))

        buffer = io.BytesIO()
        try:
            import onnx  # noqa: F401 - the exporter needs it; it comes with the `export` extra
        except ImportError:
            self.result("export", True, "skipped: the onnx package is not installed (pip install 'llmabr[export]')",
                        skipped=True)
            return
        try:
            torch.onnx.export(ObsToLogits().eval(), (torch.from_numpy(obs[:2]),), buffer, dynamo=False,
                              opset_version=17, input_names=["obs"], output_names=["logits"],
                              dynamic_axes={"obs": {0: "batch"}, "logits": {0: "batch"}})
        except BaseException as error:  # noqa: BLE001
            self.result("export", False, f"ONNX export dry run failed: {describe_error(error)}; use plain "
                                         "tensor operations (no Python-side data-dependent control flow, "
                                         "no numpy inside state())")
            return
        self.result("export", True, onnx_bytes=len(buffer.getvalue()))


def main(argv: list[str]) -> int:
    workdir = Path.cwd()
    request = json.loads(Path(argv[0]).read_text())
    probe = Probe(request, workdir)
    started = time.perf_counter()
    try:
        probe.run()
    finally:
        probe.report.s1_s = time.perf_counter() - started
        probe.report.passed = all(check.passed for check in probe.report.checks) and probe.running is None
        probe.save()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

