"""The browser demo: a static page running the exported model with onnxruntime-web (WASM).

``lightseg serve-demo [ARTIFACT_DIR]`` serves, on 127.0.0.1 only, the page (web/), the export
folder's manifest and the artifacts it lists, the onnxruntime-web dist files, and a phantom
sample slice. Every response carries COOP/COEP headers, so the page is cross-origin isolated
and WASM may use threads.

The artifacts are read into memory once, after their paths were confined to the folder and
their bytes matched the manifest's sha256; the manifest served is the validated one. Requests
whose Host is not 127.0.0.1:PORT or localhost:PORT get 403, so a web page that rebinds its own
name to 127.0.0.1 (DNS rebinding) cannot read them.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import sys
import threading
from functools import cached_property
from pathlib import Path

import typer

from lightseg.errors import BackendUnavailable, LightsegError

WEB = Path(__file__).parent / "web"
ORT_WEB_VERSION = "1.31.1"
INSTALL_HINT = (
    f'npm install --prefix "{sys.prefix}/web" onnxruntime-web@{ORT_WEB_VERSION} '
    "(or set LIGHTSEG_ORT_WEB to an onnxruntime-web dist folder)"
)
TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".onnx": "application/octet-stream",
    ".ort": "application/octet-stream",
    ".f32": "application/octet-stream",
    ".png": "image/png",
}


def _verified_bytes(manifest, artifact) -> bytes:
    """The artifact's bytes, read once, and checked against its sha256 (the path is confined)."""
    data = manifest.path_of(artifact).read_bytes()
    if hashlib.sha256(data).hexdigest() != artifact.sha256:
        raise LightsegError(f"artifact {artifact.name}: changed while being read; re-export it")
    return data


def find_ort_web(explicit: str | os.PathLike | None = None) -> Path:
    """The onnxruntime-web ``dist`` folder: ``explicit``, $LIGHTSEG_ORT_WEB, then
    ``<venv>/web/node_modules/onnxruntime-web/dist`` and ``~/.cache/lightseg/web/...``."""
    if explicit:
        if (Path(explicit) / "ort.wasm.min.js").is_file():
            return Path(explicit)
        raise BackendUnavailable(f"{explicit}: no ort.wasm.min.js there (an onnxruntime-web dist?)")
    tail = Path("node_modules") / "onnxruntime-web" / "dist"
    env = os.environ.get("LIGHTSEG_ORT_WEB")
    home = Path.home() / ".cache" / "lightseg" / "web"
    for c in (env, Path(sys.prefix) / "web" / tail, home / tail):
        if c and (Path(c) / "ort.wasm.min.js").is_file():
            return Path(c)
    raise BackendUnavailable(f"onnxruntime-web is not installed: {INSTALL_HINT}")


def sample_slice(size: int, seed: int = 0):
    """A phantom slice with a lesion (HU, float32) at ``size`` pixels, and its mask."""
    from lightseg.data.phantom import synth_slices

    s = synth_slices(1, seed, size=size, lesion=True)[0]
    return s.hu.astype("<f4"), s.mask


class DemoServer:
    """The demo's HTTP server on 127.0.0.1 (``port`` 0 picks a free one); a context manager."""

    def __init__(self, artifact_dir, port: int = 0, ort_web=None, seed: int = 0) -> None:
        from lightseg.artifact import load_manifest

        self.root = Path(artifact_dir)
        self.manifest = load_manifest(self.root)
        runnable = [a for a in self.manifest.artifacts if a.format in ("onnx", "ort")]
        if not runnable:
            raise LightsegError(f"{self.root}: no .onnx or .ort artifact to run in a browser")
        for a in self.manifest.artifacts:  # the whole folder is intact, companions included
            self.manifest.verify(a)
        self.files = {"manifest.json": json.dumps(self.manifest.to_dict()).encode()}
        for a in runnable:
            self.files[a.path] = _verified_bytes(self.manifest, a)
        self.dist = find_ort_web(ort_web)
        self.seed = seed
        try:
            self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        except OSError as e:
            raise LightsegError(f"cannot listen on 127.0.0.1:{port} ({e.strerror})") from None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def host_ok(self, host: str | None) -> bool:
        """Whether a request's Host header names this server (not a rebinding domain)."""
        port = self.httpd.server_address[1]
        return host in (f"127.0.0.1:{port}", f"localhost:{port}")

    @cached_property
    def sample(self) -> tuple[bytes, bytes]:
        from lightseg.data.preprocessing import Preprocessing

        hu, _ = sample_slice(Preprocessing.from_dict(self.manifest.preprocessing).size, self.seed)
        meta = {"height": hu.shape[0], "width": hu.shape[1], "name": f"phantom seed {self.seed}"}
        return json.dumps(meta).encode(), hu.tobytes()

    def resolve(self, path: str) -> tuple[bytes, str] | None:
        """Body and content type for a URL path, or None (404). Only known files are served."""
        path = path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            f = WEB / "index.html"
        elif path == "/app.js":
            f = WEB / "app.js"
        elif path == "/sample.json":
            return self.sample[0], TYPES[".json"]
        elif path == "/sample_hu.f32":
            return self.sample[1], TYPES[".f32"]
        elif path.startswith("/ort/") and "/" not in path[5:]:
            f = self.dist / path[5:]
        elif path.startswith("/model/") and path[7:] in self.files:
            name = path[7:]
            return self.files[name], TYPES.get(Path(name).suffix, "application/octet-stream")
        else:
            return None
        if not f.is_file():
            return None
        return f.read_bytes(), TYPES.get(f.suffix, "application/octet-stream")

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if not server.host_ok(self.headers.get("Host")):
                    self.send_error(403, "Host must be 127.0.0.1:PORT or localhost:PORT")
                    return
                found = server.resolve(self.path)
                if found is None:
                    self.send_error(404)
                    return
                body, ctype = found
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cross-Origin-Opener-Policy", "same-origin")
                self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
                self.send_header("Cross-Origin-Resource-Policy", "same-origin")
                self.send_header("Cache-Control", "no-store")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, fmt: str, *args) -> None:
                pass

        return Handler

    def start(self) -> DemoServer:
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve_demo_cmd(
    artifact_dir: Path = typer.Argument(Path("export"), help="Export folder with manifest.json."),
    port: int = typer.Option(8765, "--port", "-p", help="Port on 127.0.0.1 (0: any free port)."),
    ort_web: Path | None = typer.Option(
        None, "--ort-web", help="onnxruntime-web dist folder. Defaults to the one npm installed."
    ),
    seed: int = typer.Option(0, "--seed", help="Phantom seed of the sample slice."),
) -> None:
    """Serve the browser demo (onnxruntime-web WASM) for an export folder on 127.0.0.1."""
    from lightseg.console import console

    server = DemoServer(artifact_dir, port, ort_web, seed)
    names = ", ".join(a.name for a in server.manifest.artifacts if a.path in server.files)
    console.print(f"serving {artifact_dir} ({names}) at {server.url}  (Ctrl-C stops)")
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
