"""Core ML: mlprogram ``.mlpackage`` (fp16 or fp32 compute), iOS 16+, fp32 I/O ``image``/``logits``.

Converted from ``torch.jit.trace`` with coremltools. Optional weight compression: int8 linear
quantization or 6-bit palettization (``weights="int8"|"palettize"``). On Linux the spec, I/O types
and the MIL op list are checked; ``MLModel.predict`` needs macOS, and the verification says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections import Counter

from lightseg.errors import BackendUnavailable
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.fileio import atomic_path

#: MIL ops the lightweight U-Net is expected to lower to; Swish becomes mul/sigmoid/mul, or
#: ``silu`` when coremltools sees beta == 1.
EXPECTED_OPS = {"conv", "conv_transpose", "max_pool", "concat"}
ACTIVATION_OPS = ({"sigmoid", "mul"}, {"silu"})
INSTALL = "Core ML export needs: pip install 'lightseg[coreml]' (coremltools==9.0)"


def _ct():
    try:  # on Linux coremltools logs that its native (macOS) parts are missing: expected
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import coremltools as ct
    except ImportError:
        raise BackendUnavailable(INSTALL) from None
    return ct


def convert(ctx: ExportContext, precision: str, weights: str = "none"):
    """The ct.models.MLModel for ``precision`` (fp16|fp32) with metadata filled in."""
    import numpy as np
    import torch

    ct = _ct()
    x = torch.zeros(*ctx.shape)
    quiet = contextlib.redirect_stderr(io.StringIO())  # coremltools' tqdm progress bars
    with torch.no_grad(), warnings.catch_warnings(), quiet:
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(ctx.export_model.eval(), x)
        ml = ct.convert(
            traced,
            inputs=[ct.TensorType(name="image", shape=ctx.shape, dtype=np.float32)],
            outputs=[ct.TensorType(name="logits", dtype=np.float32)],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS16,
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            skip_model_load=True,
        )
        if weights == "int8":
            from coremltools.optimize.coreml import (
                OpLinearQuantizerConfig,
                OptimizationConfig,
                linear_quantize_weights,
            )

            cfg = OptimizationConfig(OpLinearQuantizerConfig(mode="linear_symmetric"))
            ml = linear_quantize_weights(ml, cfg)
        elif weights == "palettize":
            from coremltools.optimize.coreml import (
                OpPalettizerConfig,
                OptimizationConfig,
                palettize_weights,
            )

            ml = palettize_weights(
                ml, OptimizationConfig(OpPalettizerConfig(mode="uniform", nbits=6))
            )
    ml.short_description = "lightseg breast-CT lesion segmentation (logits; argmax = mask)"
    ml.version = ctx.version
    ml.user_defined_metadata["preprocessing"] = json.dumps(ctx.pre.to_dict(), sort_keys=True)
    ml.user_defined_metadata["classes"] = json.dumps(ctx.classes)
    ml.user_defined_metadata["source_sha256"] = ctx.source_sha256
    ml.user_defined_metadata["lightseg_version"] = ctx.version
    return ml


def inspect(ml) -> dict:
    """What Linux can check: I/O names and dtypes, MIL op counts, deployment target."""
    spec = ml.get_spec()
    arr = spec.description.input[0].type.multiArrayType
    dtypes = {0: "INVALID", 65568: "FLOAT32", 65552: "FLOAT16", 131104: "INT32"}

    def io(f):
        t = f.type.multiArrayType
        return {"name": f.name, "dtype": dtypes.get(t.dataType, str(t.dataType))}

    ops: Counter = Counter()
    for fn in ml._mil_program.functions.values():
        for op in fn.operations:
            ops[op.op_type] += 1
    return {
        "inputs": [io(f) for f in spec.description.input],
        "outputs": [io(f) for f in spec.description.output],
        "input_shape": list(arr.shape),
        "spec_version": spec.specificationVersion,
        "mil_ops": dict(sorted(ops.items())),
    }


def build(ctx: ExportContext, precision: str, weights: str = "none") -> None:
    """coreml/model-<precision>.mlpackage; spec checked; numeric check on macOS only."""
    _ct()  # one clear error if coremltools is missing
    import coremltools

    suffix = "" if weights == "none" else f"-w{weights}"
    name = f"coreml-{precision}{suffix}"
    with timer() as t:
        ml = convert(ctx, precision, weights)
        info = inspect(ml)
        path = ctx.out / "coreml" / f"model-{precision}{suffix}.mlpackage"
        with atomic_path(path) as tmp:
            ml.save(str(tmp))
        problems = [f"{d['name']} is {d['dtype']}" for d in info["inputs"] + info["outputs"]]
        problems = [p for p in problems if not p.endswith("FLOAT32")]
        ops = set(info["mil_ops"])
        missing = sorted(EXPECTED_OPS - ops)
        if not any(act <= ops for act in ACTIVATION_OPS):
            missing.append("sigmoid+mul or silu")
        if missing:
            problems.append(f"expected MIL ops missing: {missing}")
    # A failed static check is the verdict; otherwise the runner judges it (macOS only).
    failed = {"status": "fail", "reason": "spec check: " + "; ".join(problems)}
    artifact(
        ctx,
        name,
        path,
        t(),
        backend="coreml",
        precision=precision,
        format="mlpackage",
        tools={"coremltools": coremltools.__version__},
        options={
            "convert_to": "mlprogram",
            "minimum_deployment_target": "iOS16",
            "compute_precision": precision,
            "io_dtype": "float32",
            "weights": weights,
            "source": "torch.jit.trace",
            "spec": info,
            "spec_check": "failed" if problems else "passed",
        },
        verification=failed if problems else {},
    )
