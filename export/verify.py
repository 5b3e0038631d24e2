"""Export verification: a parity run of each new artifact, through its runner and the judge.

Every artifact is run by the same :mod:`lightseg.runtimes` runner ``lightseg parity`` uses, on the
same named ``verification`` input set, and judged by the same
:func:`lightseg.judge.verdict.compare` with the same tolerance file, so the verdict in
manifest.json and the verdict of ``lightseg parity`` agree by construction.
"""

from __future__ import annotations

import numpy as np

from lightseg.artifact import Artifact, Manifest
from lightseg.errors import BackendUnavailable, LightsegError
from lightseg.judge.verdict import compare, load_tolerances
from lightseg.runtimes.base import runner_for


def torch_reference(model, x: np.ndarray) -> np.ndarray:
    """fp32 logits of the PyTorch model (eval mode, no grad)."""
    import torch

    model.eval()
    with torch.no_grad():  # in batches of 8: a 64-slice set at 256 px in one go needs > 10 GB
        ys = [model(torch.from_numpy(x[i : i + 8])).numpy() for i in range(0, len(x), 8)]
    return np.concatenate(ys).astype(np.float32)


def verify_artifact(manifest: Manifest, art: Artifact, ctx) -> dict:
    """The judge's verdict summary for ``art`` on ``ctx``'s verification set."""
    inputs = ctx.verify_set.describe()
    try:
        with runner_for(manifest, art, threads=ctx.threads) as runner:
            y = runner.infer(ctx.x)
    except BackendUnavailable as e:
        return {"status": "skipped", "reason": str(e), "inputs": inputs}
    except LightsegError as e:
        return {"status": "error", "reason": str(e), "inputs": inputs}
    v = compare(ctx.ref, y, ctx.verify_set.masks, load_tolerances(), art.precision, art.name)
    arithmetic = runner.info.get("int8_arithmetic")  # set where the host's int8 conv saturates
    return v.summary(inputs) | ({"int8_arithmetic": arithmetic} if arithmetic else {})


def verify_new(ctx, manifest: Manifest | None = None) -> None:
    """Judge every artifact of ``ctx`` that has no verdict yet (in place).

    ``manifest``: the export's manifest in the making (defaults to one listing ``ctx``'s
    artifacts in ``ctx.out``); runners check each artifact's hashes against it.
    """
    if manifest is None:
        manifest = Manifest(source={}, preprocessing=ctx.pre.to_dict(), classes=ctx.classes)
        manifest.root, manifest.artifacts = ctx.out, list(ctx.artifacts.values())
    for art in ctx.artifacts.values():
        if not art.verification:
            art.verification = verify_artifact(manifest, art, ctx)


def describe(v: dict) -> str:
    """One short line for a summary table."""
    status = v.get("status", "?")
    if "dice_ref_mean" not in v:
        return f"{status}: {v.get('reason', '')}".rstrip(": ")
    line = f"{status}: mask Dice vs fp32 {v['dice_ref_mean']:.4f}, max dp {v['prob_abs_max']:.1e}"
    if v.get("int8_arithmetic"):
        line += f", int8 {v['int8_arithmetic']}"
    return line + (f" ({v['reason']})" if v.get("reason") else "")
