"""android_demo/make_assets.py: the app's assets from an export folder."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import LightsegError
from lightseg.fileio import sha256_path

SCRIPT = Path(__file__).resolve().parents[2] / "android_demo" / "make_assets.py"


def _module():
    spec = importlib.util.spec_from_file_location("make_assets", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_assets_hold_the_exact_ort_file_and_its_reference_mask(tiny_export, tmp_path):
    demo = _module().make_assets(tiny_export, tmp_path, artifact="ort-fp32", seed=3)
    assert sha256_path(tmp_path / "model.ort") == sha256_path(tiny_export / "model.ort")
    assert demo["sha256"] == sha256_path(tmp_path / "model.ort")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    pre = Preprocessing.from_dict(manifest["preprocessing"])
    hu = np.fromfile(tmp_path / "sample_hu.f32", "<f4").reshape(demo["height"], demo["width"])
    assert hu.min() < -500 and hu.max() > 0  # air and tissue: a real phantom slice in HU
    sess = ort.InferenceSession(str(tmp_path / "model.ort"), providers=["CPUExecutionProvider"])
    mask = sess.run(None, {"image": pre(hu)[None]})[0][0].argmax(0)
    assert demo["reference_lesion_pixels"] == int(mask.sum()) > 0
    assert (tmp_path / "reference_overlay.png").stat().st_size > 100


def test_default_artifact_is_the_int8_ort(tiny_export):
    from dataclasses import replace

    from lightseg.artifact import load_manifest

    m = load_manifest(tiny_export)
    pick = _module().pick_artifact
    assert pick(m, None).name == "ort-fp32"  # the only .ort here
    m.artifacts.append(replace(m.artifacts[1], name="ort-int8", precision="int8"))
    assert pick(m, None).name == "ort-int8"
    m.artifacts = [m.artifacts[0]]
    with pytest.raises(LightsegError, match="no .ort artifact"):
        pick(m, None)
