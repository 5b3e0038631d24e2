"""OpenVINO IR (``.xml`` + ``.bin``) from the fp32, int8 and mixed int8 (QDQ) ONNX models.

``save_model`` compresses weights to fp16 by default: fp32 IR is saved with
``compress_to_fp16=False``. The ``.bin`` weights are a companion file of the artifact: hashed
in the manifest and checked by every consumer.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

from lightseg.errors import BackendUnavailable
from lightseg.export.context import ExportContext, artifact, timer

INSTALL = "OpenVINO export needs: pip install 'lightseg[openvino]'"


def _ov():
    try:
        import openvino as ov
    except ImportError:
        raise BackendUnavailable(INSTALL) from None
    return ov


def save_ir(ov, model, xml: Path) -> None:
    """Save ``model`` as ``xml`` + ``.bin`` with fp32 constants, atomically: both are written in
    a temporary folder beside them and moved in, the ``.xml`` last (it names a complete pair)."""
    xml.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ov.", dir=xml.parent) as tmp:
        ov.save_model(model, str(Path(tmp) / xml.name), compress_to_fp16=False)
        os.replace(Path(tmp) / xml.with_suffix(".bin").name, xml.with_suffix(".bin"))
        os.replace(Path(tmp) / xml.name, xml)


def build(ctx: ExportContext, precision: str, variant: str = "") -> None:
    """openvino/model-<precision><variant>.xml + .bin from onnx-<precision><variant>.

    ``variant`` "-mixed": the mixed-precision int8 ONNX (its float layers stay float here too).
    """
    from lightseg.export.quantize import LAYER_OPTIONS

    ov = _ov()
    name = f"{precision}{variant}"
    src = ctx.files[f"onnx-{name}"]
    src_options = ctx.artifacts[f"onnx-{name}"].options if f"onnx-{name}" in ctx.artifacts else {}
    xml = ctx.out / "openvino" / f"model-{name}.xml"
    with timer() as t:
        save_ir(ov, ov.convert_model(str(src)), xml)
    artifact(
        ctx,
        f"openvino-{name}",
        xml,
        t(),
        backend="openvino",
        precision=precision,
        format="xml",
        tools={"openvino": ov.__version__},
        options={
            "source": src.name,
            "compress_to_fp16": False,
            **{k: src_options[k] for k in LAYER_OPTIONS if k in src_options},
        },
        files=[xml.with_suffix(".bin")],
        **ctx.io("batch"),
    )


def build_int8_mixed(ctx: ExportContext) -> None:
    """openvino-int8-mixed: the IR of model-int8-mixed.onnx."""
    build(ctx, "int8", "-mixed")


def build_bf16(ctx: ExportContext) -> None:
    """openvino-bf16: the fp32 IR compiled with INFERENCE_PRECISION_HINT=bf16 (AMX/AVX512-BF16).

    The same .xml/.bin files as openvino-fp32; the runner reads ``options.run_with``.
    """
    if "openvino-fp32" not in ctx.artifacts:
        build(ctx, "fp32")
    a = copy.deepcopy(ctx.artifacts["openvino-fp32"])
    a.name, a.precision, a.targets, a.verification = "openvino-bf16", "bf16", [], {}
    a.options["run_with"] = {"INFERENCE_PRECISION_HINT": "bf16"}
    ctx.artifacts[a.name] = a
