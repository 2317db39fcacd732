"""``export_policy``: a trained design -> ``policy.onnx`` + ``layout.json`` + ``MODEL_CARD.md`` + parity proof.

The design's code runs only in the cage (``llmabr.export.export_entry``): it loads the policy,
traces it to ONNX and computes torch logits on rows recorded here. This process then runs the
graph with onnxruntime (no Python design code) on the same rows and refuses the export unless
every logit agrees within ``LOGIT_TOLERANCE`` (relative to max(1, |logit|)) and every argmax is the same.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from llmabr.export.model_card import write_model_card
from llmabr.export.parity import compare, decision_latency, onnx_session, random_rows, recorded_rows
from llmabr.export.source import ExportError, PolicySource, layout_info, resolve_source, video_of
from llmabr.sandbox.cage import CageLimits, run_caged

N_RANDOM_ROWS = 256
FILES = ("policy.onnx", "layout.json", "parity_rows.npz", "export.json", "MODEL_CARD.md")


def export_policy(source: str | Path, out_dir: Path, video: str | None = None, wall_s: float = 600.0) -> dict:
    """Export the trained policy at ``source`` into ``out_dir``; returns export.json's data.

    ``source``: a run folder of ``llmabr train`` (``design/``, ``policy_best.pt`` or
    ``policy_final.pt``, ``result.json``) or ``RUN:NAME`` (design NAME of search run RUN, its
    ``train-s0`` run, else the lowest seed trained). ``video``: the profile whose ladder goes into
    layout.json (default: the one the run trained with). Writes ``policy.onnx`` (input ``obs``
    float32 [batch, size], output ``logits`` float32 [batch, n_levels]), ``layout.json``,
    ``parity_rows.npz`` (``obs`` rows and the torch policy's ``logits`` on them), ``export.json``
    and ``MODEL_CARD.md``. Raises ``ExportError`` with the reason (never design tracebacks).
    """
    source_info = resolve_source(source)
    if source_info.design.kind == "nada":
        raise ExportError(
            f"{source_info.run_dir}: design {source_info.design.name!r} is a NADA-style design (per-player Python "
            "state_func); it cannot be traced to ONNX. Serve it through the cage instead: "
            f"llmabr serve --policy {source_info.run_dir}")
    profile = video_of(source_info, video)
    layout = layout_info(source_info, profile)
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in FILES:  # a failed export must not leave an older, valid-looking policy.onnx behind
        (out_dir / name).unlink(missing_ok=True)

    rows = np.concatenate([
        recorded_rows(profile, layout["network"], layout["mode"], history_len=layout["history_len"]),
        random_rows(profile, layout["chunks_total"], N_RANDOM_ROWS, history_len=layout["history_len"]),
    ])
    work = out_dir / ".export-cage"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    try:
        traced = _trace_caged(source_info, layout, rows, work, wall_s)
        shutil.copyfile(work / "policy.onnx", out_dir / "policy.onnx")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    torch_logits = traced["torch_logits"]

    np.savez_compressed(out_dir / "parity_rows.npz", obs=rows, logits=torch_logits)
    try:
        graph = _check_graph(out_dir / "policy.onnx", layout)
        session = onnx_session(out_dir / "policy.onnx")
    except Exception as error:
        (out_dir / "policy.onnx").unlink(missing_ok=True)
        if isinstance(error, ExportError):
            raise
        raise ExportError(f"onnxruntime cannot load the exported graph: {type(error).__name__}: "
                          f"{str(error)[:300]}") from None
    parity = compare(session, rows, torch_logits)
    if not parity["passed"]:
        (out_dir / "policy.onnx").unlink(missing_ok=True)
        raise ExportError(
            f"parity check failed: onnxruntime and torch disagree on measurement rows ({parity['rows']} compared; "
            f"max |logit difference| "
            f"{parity['max_abs_logit_diff']:.3g}, {parity['max_scaled_logit_diff']:.3g} relative to max(1, |logit|), "
            f"tolerance {parity['tolerance']:g}; {parity['argmax_mismatches']} different decisions; finite: "
            f"{parity['finite']}). The traced graph is not the policy"
            + _warnings_hint(traced["info"]) + f"; the rows and torch logits are in {out_dir / 'parity_rows.npz'}")
    latency = decision_latency(session, rows[len(rows) // 2])

    (out_dir / "layout.json").write_text(json.dumps(layout, indent=1))
    data = {
        "source": source_info.spec, "run_dir": str(source_info.run_dir), "source_note": source_info.note,
        "weights": source_info.weights, "design": source_info.design.name, "design_origin": source_info.design.origin,
        "video": profile.name, "files": list(FILES), "onnx_bytes": (out_dir / "policy.onnx").stat().st_size,
        "parameters": traced["info"]["parameters"], "graph": graph, "opset": traced["info"]["opset"],
        "torch": traced["info"]["torch"], "tracer_warnings": traced["info"]["tracer_warnings"],
        "parity": parity, "latency": latency, "cage_wall_s": traced["wall_s"],
    }
    (out_dir / "export.json").write_text(json.dumps(data, indent=1))
    write_model_card(out_dir / "MODEL_CARD.md", source_info, layout, data)
    return data


def _trace_caged(source: PolicySource, layout: dict, rows: np.ndarray, work: Path, wall_s: float) -> dict:
    np.save(work / "rows.npy", rows)
    (work / "request.json").write_text(json.dumps({
        "run_dir": str(source.run_dir), "weights": source.weights, "n_levels": layout["n_levels"],
        "history_len": layout["history_len"], "rows": "rows.npy"}))
    cage = run_caged([sys.executable, "-I", "-m", "llmabr.export.export_entry", "request.json"], work,
                     CageLimits(wall_s=wall_s, cpu_s=int(wall_s * 2), file_bytes=1 << 30))
    error_path = work / "error.json"
    if error_path.exists():
        error = json.loads(error_path.read_text())
        what = {"load": f"loading the design with {source.weights}", "torch": "running the torch policy",
                "trace": "tracing the policy to ONNX"}.get(error["stage"], error["stage"])
        raise ExportError(f"{source.design.name}: {what} failed: {error['reason']}")
    needed = [work / name for name in ("policy.onnx", "torch_logits.npy", "info.json")]
    if cage.returncode != 0 or cage.timed_out or not all(path.exists() for path in needed):
        lines = [line for line in cage.stderr_tail.strip().splitlines() if line.strip()]
        raise ExportError(f"{source.design.name}: the export process was {cage.describe()} before finishing"
                          + (f" ({lines[-1][:300]})" if lines else ""))
    return {"torch_logits": np.load(work / "torch_logits.npy"), "info": json.loads((work / "info.json").read_text()),
            "wall_s": cage.wall_s}


def _check_graph(path: Path, layout: dict) -> dict:
    """The graph's contract: input ``obs`` float32 [batch, size], output ``logits`` float32 [batch, n_levels]."""
    import onnx

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as error:
        raise ExportError(f"{path}: the exported graph is not valid ONNX: {str(error)[:300]}") from None

    def shape(value) -> list:
        return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]

    inputs, outputs = list(model.graph.input), list(model.graph.output)
    expected = ([("obs", ["batch", layout["size"]])], [("logits", ["batch", layout["n_levels"]])])
    found = ([(v.name, shape(v)) for v in inputs], [(v.name, shape(v)) for v in outputs])
    float_types = all(v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT for v in inputs + outputs)
    if found != expected or not float_types:
        raise ExportError(f"{path}: graph signature {found} (float32: {float_types}) is not {expected}: the batch "
                          "axis must stay dynamic")
    initializer_values = int(sum(np.prod(tensor.dims, dtype=np.int64) for tensor in model.graph.initializer))
    return {"input": {"name": "obs", "shape": ["batch", layout["size"]], "dtype": "float32"},
            "output": {"name": "logits", "shape": ["batch", layout["n_levels"]], "dtype": "float32"},
            "nodes": len(model.graph.node), "initializer_values": initializer_values,
            "opset": max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))}


def _warnings_hint(info: dict) -> str:
    warnings = info.get("tracer_warnings") or []
    if not warnings:
        return ""
    return (" (the tracer warned: " + "; ".join(warnings[:2]) + "; data-dependent Python control flow is frozen "
            "at trace time: use tensor operations such as torch.where)")
