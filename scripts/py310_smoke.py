"""Python 3.10 smoke (JetPack 6): import every module, run the core units that need no torch.

Run by tests/architecture/test_py310.py in the light 3.10 venv scripts/install.sh makes where a
3.10 interpreter exists (numpy, scipy, tomli, pillow, rich, typer, click; no torch, no runtimes):
a module that fails only because a heavy third-party package is missing is listed as such;
any other import error (a SyntaxError, a 3.11-only stdlib import such as tomllib) fails.
Prints one JSON object.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
import tempfile
import traceback
from pathlib import Path

HEAVY = {
    "torch", "onnx", "onnxruntime", "onnxsim", "onnxscript", "onnxconverter_common", "openvino",
    "executorch", "coremltools", "litert_torch", "ai_edge_litert", "tensorrt", "safetensors",
    "pydicom", "nibabel", "highdicom", "matplotlib", "playwright", "ray",
}  # fmt: skip


def import_all() -> dict:
    import lightseg

    result = {"ok": [], "needs": {}, "errors": {}}
    names = [m.name for m in pkgutil.walk_packages(lightseg.__path__, "lightseg.")]
    for name in ["lightseg", *sorted(names)]:
        try:
            importlib.import_module(name)
            result["ok"].append(name)
        except ModuleNotFoundError as e:
            top = (e.name or "").split(".")[0]
            if top in HEAVY:
                result["needs"][name] = top
            else:
                result["errors"][name] = f"ModuleNotFoundError: {e}"
        except Exception as e:  # noqa: BLE001 (reported, not raised)
            result["errors"][name] = "".join(traceback.format_exception_only(type(e), e)).strip()
    return result


def core_units() -> dict:
    """The judge, the tolerance file, atomic writes, the manifest contract, the input sets."""
    import numpy as np

    from lightseg.artifact import Artifact, Manifest, load_manifest
    from lightseg.data.preprocessing import Preprocessing
    from lightseg.data.sets import input_set
    from lightseg.fileio import atomic_write_text, sha256_path
    from lightseg.judge.verdict import compare, load_tolerances

    tol = load_tolerances()
    ref = np.zeros((2, 2, 16, 16), np.float32)
    ref[:, 1, 4:10, 4:10] = 6.0
    same = compare(ref, ref.copy(), None, tol, "fp32")
    bad = ref.copy()
    bad[:, 1] = -6.0
    worse = compare(ref, bad, None, tol, "int8")
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "a.bin"
        atomic_write_text(f, "x")
        art = Artifact("a", "a.bin", "onnxruntime", "fp32", "onnx", sha256_path(f))
        Manifest({}, {}, ["background", "lesion"], artifacts=[art]).save(tmp)
        m = load_manifest(tmp)
        m.verify(m.artifact("a"))
    s = input_set("verification", Preprocessing(size=32), 2)
    return {
        "judge_same": same.status,
        "judge_wrong": worse.status,
        "manifest_roundtrip": True,
        "input_set_shape": list(s.x.shape),
        "input_set_lesion_pixels": int(s.masks.sum()),
    }


def main() -> int:
    out = {"python": sys.version.split()[0], "imports": import_all()}
    try:
        out["core"] = core_units()
    except Exception as e:  # noqa: BLE001
        out["core_error"] = "".join(traceback.format_exception_only(type(e), e)).strip()
    print(json.dumps(out))
    return 0 if not out["imports"]["errors"] and "core" in out else 1


if __name__ == "__main__":
    sys.exit(main())
