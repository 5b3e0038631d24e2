"""torch.compile peers: compiled at open (load time), the same logits as eager PyTorch."""

from __future__ import annotations

import numpy as np
import pytest

from lightseg.runtimes.process import IsolatedBackend


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "atol"), [("fp32", 1e-4), ("bf16", 0.15)])
def test_compiled_reference_matches_eager(tiny, tmp_path, mode, atol):
    _, ck = tiny
    x = np.random.default_rng(0).random((1, 3, 32, 32), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for name, extra in (("eager", {}), (mode, {"compile": mode})):
        proc = IsolatedBackend(600)
        try:
            msg = {"cmd": "open", "threads": 1, "kind": "reference", "checkpoint": str(ck)}
            reply = proc.call(msg | extra)
            assert reply["ok"], reply
            if extra:
                assert reply["info"]["precision"] == mode
                assert reply["info"]["autocast"] == ("bf16" if mode == "bf16" else "none")
            out = str(tmp_path / f"{name}.npy")
            assert proc.call({"cmd": "infer", "inputs": str(tmp_path / "x.npy"), "out": out})["ok"]
            outs[name] = np.load(out)
        finally:
            proc.close()
    assert outs[mode].dtype == np.float32
    np.testing.assert_allclose(outs[mode], outs["eager"], atol=atol)
