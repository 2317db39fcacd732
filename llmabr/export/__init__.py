"""Export a trained design for players: one ONNX graph (measurement row -> per-level logits) and its layout.

    from llmabr.export import export_policy, ExportError
    data = export_policy("runs/quality/3g-s0", Path("exports/3g"))   # export.json's data

See ``llmabr.export.onnx_export`` for the files written and the parity check.
"""

from llmabr.export.onnx_export import export_policy
from llmabr.export.source import ExportError

__all__ = ["export_policy", "ExportError"]
