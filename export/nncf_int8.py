"""OpenVINO int8 IR quantized by NNCF post-training quantization, with bias correction.

The fp32 ONNX model (Swish beta folded) is converted to OpenVINO and quantized by
``nncf.quantize``: preset MIXED (asymmetric activations, symmetric per-channel int8 weights),
calibrated on the export's calibration images one at a time, then bias correction (fast by
default). NNCF's only cross-layer rescaling, ChannelAlignment, matches conv -> conv pairs with no
activation between them; this U-Net has a SiLU after every conv, so it is left off. The IR is
saved like :mod:`lightseg.export.openvino` saves IR (fp32 constants kept, atomic pair).
"""

from __future__ import annotations

from lightseg.errors import BackendUnavailable, LightsegError
from lightseg.export.context import ExportContext, artifact, timer
from lightseg.export.openvino import _ov, save_ir

INSTALL = "NNCF int8 needs: pip install 'lightseg[openvino]' (openvino, nncf==3.4.0)"
NAME = "openvino-int8-nncf"
#: --calibration -> NNCF activation range estimator (RangeEstimatorParametersSet member).
#: "minmax": min/max over all images (as ORT MinMax); "percentile": per-image 1e-4 quantiles,
#: averaged. Methods NNCF lacks (entropy, trained ranges) get its default, per-image min/max
#: averaged over the images; the options record which one ran.
RANGES = {"minmax": "MINMAX", "percentile": "MEAN_QUANTILE"}
DEFAULT_RANGES = "MEAN_MINMAX"


def _nncf():
    try:
        import nncf
    except ImportError:
        raise BackendUnavailable(INSTALL) from None
    return nncf


def quantize(ov_model, calib, calibration: str = "minmax", fast_bias_correction: bool = True):
    """``ov_model`` quantized by NNCF (preset MIXED, CPU) on ``calib`` (N x C x S x S float32)."""
    nncf = _nncf()
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    if len(calib) == 0:
        raise LightsegError(f"{NAME}: the calibration set holds no images")
    ranges = getattr(RangeEstimatorParametersSet, RANGES.get(calibration, DEFAULT_RANGES))
    data = nncf.Dataset([calib[i : i + 1] for i in range(len(calib))])
    return nncf.quantize(
        ov_model,
        data,
        preset=nncf.QuantizationPreset.MIXED,
        target_device=nncf.TargetDevice.CPU,
        subset_size=len(calib),
        fast_bias_correction=fast_bias_correction,
        advanced_parameters=AdvancedQuantizationParameters(
            activations_range_estimator_params=ranges
        ),
    )


def build(ctx: ExportContext) -> None:
    """openvino/model-int8-nncf.xml + .bin: NNCF PTQ of the fp32 ONNX model's IR."""
    ov = _ov()
    nncf = _nncf()
    src = ctx.files["onnx-fp32"]
    xml = ctx.out / "openvino" / "model-int8-nncf.xml"
    with timer() as t:
        save_ir(ov, quantize(ov.convert_model(str(src)), ctx.calib, ctx.calibration), xml)
    artifact(
        ctx,
        NAME,
        xml,
        t(),
        backend="openvino",
        precision="int8",
        format="xml",
        tools={"openvino": ov.__version__, "nncf": nncf.__version__},
        options={
            "source": src.name,
            "quantizer": "nncf.quantize",
            "preset": "mixed",
            "target_device": "CPU",
            "bias_correction": "fast",
            "channel_alignment": False,
            "subset_size": len(ctx.calib),
            "calibration": ctx.calibration,
            "activation_ranges": RANGES.get(ctx.calibration, DEFAULT_RANGES),
            "calibration_images": len(ctx.calib),
            "compress_to_fp16": False,
        },
        files=[xml.with_suffix(".bin")],
        **ctx.io("batch"),
    )
