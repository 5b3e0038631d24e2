"""OpenVINO IR (``.xml`` + ``.bin``) from the fp32 and int8 (QDQ) ONNX models.

``save_model`` compresses weights to fp16 by default: fp32 IR is saved with
``compress_to_fp16=False``. Verification pins ``INFERENCE_PRECISION_HINT=f32`` (on AMX CPUs
OpenVINO otherwise runs bf16 silently).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from lightseg.errors import BackendUnavailable
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.export.manifest import sha256_path
from lightseg.export.verify import compare

INSTALL = "OpenVINO export needs: pip install 'lightseg[openvino]'"


def _ov():
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailable(INSTALL) from None
    return ov


def run(xml, x: np.ndarray) -> np.ndarray:
    """Infer with the CPU plugin, f32 pinned, 1 stream."""
    ov = _ov()
    core = ov.Core()
    compiled = core.compile_model(
        str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": "1"}
    )
    return np.asarray(compiled({"image": x})["logits"], dtype=np.float32)


def build(ctx: ExportContext, precision: str) -> None:
    """openvino/model-<precision>.xml (+ .bin), verified against PyTorch."""
    ov = _ov()
    src = ctx.files["onnx-fp32" if precision == "fp32" else "onnx-int8"]
    folder = ctx.out / "openvino"
    xml = folder / f"model-{precision}.xml"
    with timer() as t:
        model = ov.convert_model(str(src))
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".ov.", dir=folder) as tmp:
            ov.save_model(model, str(Path(tmp) / xml.name), compress_to_fp16=False)
            os.replace(Path(tmp) / xml.with_suffix(".bin").name, xml.with_suffix(".bin"))
            os.replace(Path(tmp) / xml.name, xml)  # the .xml last: it names a complete pair
        v = compare(ctx.ref, run(xml, ctx.x), precision)
    a = artifact(
        ctx,
        f"openvino-{precision}",
        xml,
        t(),
        backend="openvino",
        precision=precision,
        format="xml",
        tools={"openvino": ov.__version__},
        options={
            "source": src.name,
            "compress_to_fp16": False,
            "weights": xml.with_suffix(".bin").name,
            "weights_sha256": sha256_path(xml.with_suffix(".bin")),
            "verified_with": {"INFERENCE_PRECISION_HINT": "f32"},
        },
        verification={**v, "inputs": ctx.inputs_source},
        **ctx.io("batch"),
    )
    a.size_bytes += xml.with_suffix(".bin").stat().st_size  # the pair, as shipped
