"""The local web demo: manifest strings stay text, only this server's own Host is answered."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

import pytest
from artifact_helpers import edit_manifest, fake_export, fake_ort_web, flip_byte

from lightseg.benchmarks.webdemo import WEB, DemoServer
from lightseg.errors import LightsegError

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def server(tmp_path: Path):
    root = fake_export(tmp_path / "exp", ("onnx-fp32", "openvino-fp32"))
    edit_manifest(root, lambda d: d["artifacts"][0].update(name=XSS))
    with DemoServer(root, ort_web=fake_ort_web(tmp_path / "ortweb")) as srv:
        yield srv


def get(srv: DemoServer, path: str, host: str | None = "default") -> tuple[int, bytes]:
    port = srv.httpd.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", f"127.0.0.1:{port}" if host == "default" else host)
        conn.endheaders()
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_host_header_must_name_this_server(server):
    port = server.httpd.server_address[1]
    assert get(server, "/model/manifest.json")[0] == 200
    assert get(server, "/", f"localhost:{port}")[0] == 200
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1:1", f"127.0.0.2:{port}", None):
        status, body = get(server, "/model/manifest.json", host)
        assert status == 403 and b"lesion" not in body, host


def test_manifest_strings_are_served_as_data_and_shown_as_text(server):
    status, body = get(server, "/model/manifest.json")
    assert status == 200
    assert json.loads(body)["artifacts"][0]["name"] == XSS  # data, for textContent/Option
    js = (WEB / "app.js").read_text()
    html = (WEB / "index.html").read_text()
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(")
    assert not sinks.search(js) and not sinks.search(html)
    assert "textContent" in js and "new Option(" in js


@pytest.mark.parametrize(
    "path", ["/model/../manifest.json", "/model/%2e%2e/manifest.json", "/ort/../app.js",
             "/model//etc/passwd", "/model/openvino/model-fp32.bin", "/etc/passwd"],
)  # fmt: skip
def test_only_listed_files_are_served(server, path):
    assert get(server, path)[0] == 404


def test_the_served_manifest_is_the_validated_one(server):
    (server.root / "manifest.json").write_text('{"artifacts": [{"path": "/etc/passwd"}]}')
    body = get(server, "/model/manifest.json")[1]
    assert json.loads(body)["artifacts"][0]["name"] == XSS


@pytest.mark.parametrize("rel", ["model.onnx", "openvino/model-fp32.bin"])
def test_a_tampered_file_in_the_folder_stops_the_server(tmp_path, rel):
    root = fake_export(tmp_path / "exp", ("onnx-fp32", "openvino-fp32"))
    flip_byte(root / rel, 0.0001)
    with pytest.raises(LightsegError, match=re.escape(rel)):
        DemoServer(root, ort_web=fake_ort_web(tmp_path / "ortweb"))
