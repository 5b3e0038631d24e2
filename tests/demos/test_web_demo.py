"""The browser demo in headless Debian Chromium (playwright, no browser download) vs Python."""

from __future__ import annotations

import os
import shutil
import urllib.request

import numpy as np
import onnxruntime as ort
import pytest

from lightseg.benchmarks.webdemo import DemoServer, find_ort_web, sample_slice
from lightseg.data.preprocessing import Preprocessing
from lightseg.errors import BackendUnavailable, LightsegError

CHROMIUM = os.environ.get("LIGHTSEG_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def _why_not() -> str | None:
    if not shutil.which(CHROMIUM):
        return f"{CHROMIUM} not found (apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; no browser download needed)"
    try:
        find_ort_web()
    except BackendUnavailable as e:
        return str(e)
    return None


needs_browser = pytest.mark.skipif(_why_not() is not None, reason=str(_why_not()))


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium; playwright gives each launch a fresh temporary profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


def _page_result(browser, url: str, script: str | None = None, arg=None) -> dict:
    page = browser.new_page(viewport={"width": 900, "height": 420})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(url)
        page.wait_for_function("window.lightseg && ['done', 'error'].includes(lightseg.state)",
                               timeout=60_000)  # fmt: skip
        state = page.evaluate("[lightseg.state, lightseg.error]")
        assert state[0] == "done", f"page error: {state[1]} {errors}"
        if script:
            page.evaluate(script, arg)
        return page.evaluate(
            """() => { const r = lightseg.result; return {
                input: Array.from(r.input), logits: Array.from(r.logits), dims: r.dims,
                mask: Array.from(r.mask), latency_ms: r.latency_ms, artifact: r.artifact,
                threads: r.threads, isolated: crossOriginIsolated, p50: r.p50 }; }"""
        ) | {"page": page}
    except BaseException:
        page.close()
        raise


def _reference(export, artifact: str, hu: np.ndarray, pre: Preprocessing):
    x = pre(hu)[None]
    sess = ort.InferenceSession(str(export / artifact), providers=["CPUExecutionProvider"])
    return x, sess.run(None, {"image": x})[0]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    inter, total = np.logical_and(a, b).sum(), a.sum() + b.sum()
    return 1.0 if total == 0 else 2.0 * inter / total


def _check(r: dict, x: np.ndarray, ref: np.ndarray) -> dict:
    got = np.asarray(r["logits"], np.float32).reshape(r["dims"])
    np.testing.assert_array_equal(np.asarray(r["input"], np.float32).reshape(x.shape), x)
    prob_err = float(np.abs(_softmax(got) - _softmax(ref)).max())
    ref_mask = ref.argmax(1)[0]
    mask = np.asarray(r["mask"]).reshape(ref_mask.shape)
    dice = _dice(mask == 1, ref_mask == 1)
    print(f"\n{r['artifact']}: Dice {dice:.6f}, max |p - p_ref| {prob_err:.2e}, "
          f"max |logit diff| {np.abs(got - ref).max():.2e}, p50 {r['p50']:.2f} ms, "
          f"{r['threads']} threads, isolated {r['isolated']}")  # fmt: skip
    assert ref_mask.sum() > 20, "the reference mask must hold a lesion"
    assert dice >= 0.999
    assert prob_err < 1e-4
    assert (mask == ref_mask).all()
    return {"dice": dice, "prob_err": prob_err}


@needs_browser
@pytest.mark.parametrize("artifact", ["onnx-fp32", "ort-fp32"])
def test_page_matches_python_onnxruntime(browser, tiny_export, artifact):
    pre = Preprocessing.from_dict({"size": 64, "channels": 3})
    hu, _ = sample_slice(pre.size, seed=0)
    x, ref = _reference(tiny_export, "model.onnx", hu, pre)
    with DemoServer(tiny_export) as srv:
        r = _page_result(browser, f"{srv.url}?artifact={artifact}&runs=3")
        r.pop("page").close()
    assert r["artifact"] == artifact and len(r["latency_ms"]) == 3
    assert r["isolated"] is True  # COOP/COEP headers made the page cross-origin isolated
    _check(r, x, ref)


@needs_browser
def test_page_preprocesses_a_user_slice_like_python(browser, tiny_export, tmp_path):
    """A 48 x 80 slice (padded in height, cropped in width) handed to the page as HU."""
    from demo_data import PRE, synthetic_slice

    hu, _ = synthetic_slice(48, 80, seed=5)
    x, ref = _reference(tiny_export, "model.onnx", hu, PRE)
    with DemoServer(tiny_export) as srv:
        r = _page_result(
            browser,
            f"{srv.url}?runs=2",
            "([hu, h, w]) => lightseg.runHU(new Float32Array(hu), h, w)",
            [hu.ravel().tolist(), 48, 80],
        )
        r.pop("page").close()
    _check(r, x, ref)


@needs_browser
def test_page_refuses_a_modified_model(browser, tiny_export, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_export, bad)
    with DemoServer(bad) as srv:
        srv.files["model.onnx"] += b"\0"  # the bytes served no longer match the manifest
        page = browser.new_page()
        page.goto(f"{srv.url}?artifact=onnx-fp32")
        page.wait_for_function("window.lightseg && lightseg.state === 'error'", timeout=30_000)
        msg = page.evaluate("lightseg.error")
        page.close()
    assert "sha256" in msg and "refused" in msg


def test_server_serves_only_listed_files_with_isolation_headers(tiny_export, tmp_path):
    try:
        srv = DemoServer(tiny_export)
    except BackendUnavailable as e:
        pytest.skip(str(e))
    (tiny_export / "secret.txt").write_text("not for the browser")
    with srv:
        with urllib.request.urlopen(srv.url + "model/manifest.json") as resp:
            assert resp.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
            assert resp.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        with urllib.request.urlopen(srv.url + "sample.json") as resp:
            assert resp.read().startswith(b'{"height": 64')
        for path in ("model/secret.txt", "model/../manifest.json", "ort/../package.json"):
            with pytest.raises(urllib.error.HTTPError, match="404"):
                urllib.request.urlopen(srv.url + path)
    (tiny_export / "secret.txt").unlink()


def test_server_refuses_a_folder_without_manifest_and_a_bad_ort_web(tmp_path, tiny_export):
    with pytest.raises(LightsegError, match="no manifest.json"):
        DemoServer(tmp_path)
    with pytest.raises(BackendUnavailable, match="ort.wasm.min.js"):
        find_ort_web(tmp_path)


def test_cli_serve_demo_bad_folder_is_one_line_exit_2(tmp_path, capsys):
    from lightseg.cli import main

    assert main(["serve-demo", str(tmp_path), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no manifest.json" in err
