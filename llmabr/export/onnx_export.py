"""``export_policy``: a trained design -> ``policy.onnx`` + ``layout.json`` + ``MODEL_CARD.md`` + parity proof.

The design's code runs only in the cage (``llmabr.export.export_entry``): it loads the policy,
traces it to ONNX in float32 and in float64 and computes torch logits on rows recorded here in
both. This process rewrites the float64 graph so onnxruntime can run it and its weights stay
small (``llmabr.export.float64``), runs it with onnxruntime (no Python design code) on the same
rows and refuses the export unless every logit agrees with the float64 torch logits within
``LOGIT_TOLERANCE`` and every argmax is the same. A design that only runs in float32 gets the
float32 graph, held to ``LOGIT_TOLERANCE`` x max(1, |logit|).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from llmabr.export.float64 import Float64Unsupported, finish_float64, pack_float32_graph
from llmabr.export.model_card import write_model_card
from llmabr.export.parity import compare, decision_latency, onnx_session, random_rows, recorded_rows
from llmabr.export.source import ExportError, PolicySource, layout_info, resolve_source, video_of
from llmabr.sandbox.cage import CageLimits, run_caged

N_RANDOM_ROWS = 256
FILES = ("policy.onnx", "layout.json", "parity_rows.npz", "export.json", "MODEL_CARD.md")


PRECISIONS = ("auto", "float64", "float32")


def export_policy(source: str | Path, out_dir: Path, video: str | None = None, wall_s: float = 600.0,
                  precision: str = "auto") -> dict:
    """Export the trained policy at ``source`` into ``out_dir``; returns export.json's data.

    ``source``: a run folder of ``llmabr train`` (``design/``, ``policy_best.pt`` or
    ``policy_final.pt``, ``result.json``) or ``RUN:NAME`` (design NAME of search run RUN, its
    ``train-s0`` run, else the lowest seed trained). ``video``: the profile whose ladder goes into
    layout.json (default: the one the run trained with). ``precision``: the graph's arithmetic,
    ``float64`` (refused with the reason when the design does not run in it), ``float32``, or
    ``auto`` (float64 where possible; see ``_verified_graph``). Writes ``policy.onnx`` (input ``obs``
    float32 [batch, size], output ``logits`` float32 [batch, n_levels]), ``layout.json``,
    ``parity_rows.npz`` (``obs`` rows; ``logits``, the torch reference the graph was checked against;
    ``logits_float32`` and, where the design runs in float64, ``logits_float64``), ``export.json``
    and ``MODEL_CARD.md``. Raises ``ExportError`` with the reason (never design tracebacks).
    """
    if precision not in PRECISIONS:
        raise ExportError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
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
        graph, session, parity = _verified_graph(work, out_dir, layout, rows, traced, precision)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    latency = decision_latency(session, rows[len(rows) // 2])

    (out_dir / "layout.json").write_text(json.dumps(layout, indent=1))
    data = {
        "source": source_info.spec, "run_dir": str(source_info.run_dir), "source_note": source_info.note,
        "weights": source_info.weights, "design": source_info.design.name, "design_origin": source_info.design.origin,
        "video": profile.name, "files": list(FILES), "onnx_bytes": (out_dir / "policy.onnx").stat().st_size,
        "parameters": traced["info"]["parameters"], "graph": graph, "opset": traced["info"]["opset"],
        "torch": traced["info"]["torch"], "tracer_warnings": traced["info"]["tracer_warnings"],
        "precision": parity["precision"], "parity": parity, "latency": latency, "cage_wall_s": traced["wall_s"],
    }
    (out_dir / "export.json").write_text(json.dumps(data, indent=1))
    write_model_card(out_dir / "MODEL_CARD.md", source_info, layout, data)
    return data


def _verified_graph(work: Path, out_dir: Path, layout: dict, rows: np.ndarray, traced: dict, precision: str):
    """Put the graph into ``out_dir/policy.onnx`` only once onnxruntime reproduces the torch policy on ``rows``.

    The float64 graph is preferred: compared with the torch policy computed in float64 (both rounded
    to float32 at the output, as the graph's contract says), every logit must match within
    ``LOGIT_TOLERANCE`` absolute. When the design does not run in float64, or the graph cannot be
    made runnable (``Float64Unsupported``), the float32 graph ships, checked within ``LOGIT_TOLERANCE``
    x max(1, |logit|) against the float32 torch policy, and export.json's ``parity`` says why.
    Returns (graph summary, onnxruntime session, parity dict); raises ``ExportError``.
    """
    import onnx

    logits32 = traced["torch_logits"]
    evidence = {"obs": rows, "logits_float32": logits32}
    fallback_reason = traced["info"].get("float64_error")
    if fallback_reason is not None:
        fallback_reason = f"the design does not run in float64: {fallback_reason}"
    if precision == "float32":
        fallback_reason = "asked for (--precision float32)"
    chosen = None
    if fallback_reason is None:
        logits64 = np.load(work / "torch_logits64.npy")
        evidence["logits_float64"] = logits64
        model = onnx.load(str(work / "policy_float64.onnx"))
        try:
            rewrite = finish_float64(model)
            onnx.save(model, str(work / "policy_float64.onnx"))
            session = onnx_session(work / "policy_float64.onnx")  # loads, or the float32 graph ships
            chosen = ("policy_float64.onnx", "float64", logits64.astype(np.float32).astype(np.float64), rewrite,
                      session)
        except Float64Unsupported as error:
            fallback_reason = f"the float64 graph needs a kernel onnxruntime lacks: {error}"
        except Exception as error:  # noqa: BLE001 - onnxruntime's load errors are its own classes
            fallback_reason = (f"the float64 graph could not be rewritten or loaded: {type(error).__name__}: "
                               f"{str(error)[:200]}")
    if chosen is None and precision == "float64":
        raise ExportError(f"no float64 graph: {fallback_reason}; export with --precision auto or float32 for a "
                          "float32 graph")
    if chosen is None:
        model = onnx.load(str(work / "policy.onnx"))
        rewrite = pack_float32_graph(model)
        onnx.save(model, str(work / "policy.onnx"))
        chosen = ("policy.onnx", "float32", logits32.astype(np.float64), rewrite, None)
    name, precision, reference, rewrite, session = chosen
    evidence["logits"] = reference.astype(np.float32)  # float32 values, as the graph returns them
    np.savez_compressed(out_dir / "parity_rows.npz", **evidence)
    shutil.copyfile(work / name, out_dir / "policy.onnx")
    try:
        graph = _check_graph(out_dir / "policy.onnx", layout)
        session = session or onnx_session(out_dir / "policy.onnx")
    except Exception as error:
        (out_dir / "policy.onnx").unlink(missing_ok=True)
        if isinstance(error, ExportError):
            raise
        raise ExportError(f"onnxruntime cannot load the exported graph: {type(error).__name__}: "
                          f"{str(error)[:300]}") from None
    graph["rewrite"] = rewrite
    parity = compare(session, rows, reference, relative=precision == "float32")
    parity.update(precision=precision, float32_fallback_reason=fallback_reason)
    if precision == "float64":  # for the record: how far torch's own float32 evaluation is from it
        batch = session.run(["logits"], {"obs": rows})[0].astype(np.float64)
        parity["versus_float32_torch"] = {
            "max_abs_logit_diff": float(np.max(np.abs(batch - logits32))),
            "argmax_mismatches": int(np.sum(batch.argmax(axis=1) != logits32.argmax(axis=1))),
            "torch_float32_vs_float64_max_abs": float(np.max(np.abs(logits32.astype(np.float64) - logits64)))}
    if not parity["passed"]:
        (out_dir / "policy.onnx").unlink(missing_ok=True)
        raise ExportError(
            f"parity check failed: onnxruntime and torch disagree on measurement rows ({parity['rows']} compared, "
            f"{precision} graph; max |logit difference| {parity['max_abs_logit_diff']:.3g}"
            + (f", {parity['max_scaled_logit_diff']:.3g} relative to max(1, |logit|)" if precision == "float32" else "")
            + f", tolerance {parity['tolerance']:g}; {parity['argmax_mismatches']} different decisions; finite: "
            f"{parity['finite']}). The traced graph is not the policy"
            + _warnings_hint(traced["info"]) + f"; the rows and torch logits are in {out_dir / 'parity_rows.npz'}")
    return graph, session, parity


def _trace_caged(source: PolicySource, layout: dict, rows: np.ndarray, work: Path, wall_s: float) -> dict:
    np.save(work / "rows.npy", rows)
    (work / "request.json").write_text(json.dumps({
        "run_dir": str(source.run_dir), "weights": source.weights, "n_levels": layout["n_levels"],
        "history_len": layout["history_len"], "rows": "rows.npy"}))
    cage = run_caged([sys.executable, "-I", "-m", "llmabr.export.export_entry", "request.json"], work,
                     CageLimits(wall_s=wall_s, cpu_s=int(wall_s * 2), file_bytes=1 << 30,
                                readable=(str(source.run_dir / "design"), str(source.run_dir / source.weights))))
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
    # Stored bytes, not values: packed weights keep 3.5 bytes of uint8/uint16 tensors per value.
    initializer_bytes = int(sum(tensor.ByteSize() for tensor in model.graph.initializer))
    return {"input": {"name": "obs", "shape": ["batch", layout["size"]], "dtype": "float32"},
            "output": {"name": "logits", "shape": ["batch", layout["n_levels"]], "dtype": "float32"},
            "nodes": len(model.graph.node), "initializer_bytes": initializer_bytes,
            "opset": max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx"))}


def _warnings_hint(info: dict) -> str:
    warnings = info.get("tracer_warnings") or []
    if not warnings:
        return ""
    return (" (the tracer warned: " + "; ".join(warnings[:2]) + "; data-dependent Python control flow is frozen "
            "at trace time: use tensor operations such as torch.where)")
