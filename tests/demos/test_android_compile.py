"""Optional compile check: the Android-facing classes against android.jar (API 23), Java 8.

android.jar comes from Debian bullseye's libandroid-23-java (android_demo/fetch_android_jar.sh).
There is no Maven here, so ONNX Runtime's Java API is replaced by signature-only stubs of the few
calls the app makes (copied from onnxruntime's java/ sources): this checks the Android API use, the
resources the code names and Java 8 source level, not ORT itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "android_demo" / "app" / "src" / "main"
JAR = Path(
    os.environ.get("LIGHTSEG_ANDROID_JAR", Path.home() / ".cache/lightseg/android-23/android.jar")
)

ORT_STUBS = {
    "OrtException": "public class OrtException extends Exception {}",
    "OnnxValue": "public interface OnnxValue extends AutoCloseable { void close(); }",
    "OnnxTensor": """public class OnnxTensor implements OnnxValue {
        public static OnnxTensor createTensor(OrtEnvironment e, java.nio.FloatBuffer b, long[] s)
            throws OrtException { return null; }
        public java.nio.FloatBuffer getFloatBuffer() { return null; }
        public void close() {} }""",
    "OrtEnvironment": """public class OrtEnvironment implements AutoCloseable {
        public static OrtEnvironment getEnvironment() { return null; }
        public OrtSession createSession(byte[] m, OrtSession.SessionOptions o) throws OrtException
            { return null; }
        public void close() {} }""",
    "OrtSession": """public class OrtSession implements AutoCloseable {
        public java.util.Set<String> getInputNames() { return null; }
        public Result run(java.util.Map<String, ? extends OnnxTensor> in) throws OrtException
            { return null; }
        public void close() throws OrtException {}
        public static class Result implements AutoCloseable {
            public OnnxValue get(int i) { return null; }
            public void close() {} }
        public static class SessionOptions implements AutoCloseable {
            public void addXnnpack(java.util.Map<String, String> o) throws OrtException {}
            public void addNnapi() throws OrtException {}
            public void setIntraOpNumThreads(int n) throws OrtException {}
            public void addConfigEntry(String k, String v) throws OrtException {}
            public void close() {} } }""",
}


def _r_java(out: Path) -> Path:
    """org/lightseg/demo/R.java with the ids and layouts the resources declare (as aapt would)."""
    ids = sorted({m for f in (APP / "res").rglob("*.xml") for m in
                  re.findall(r'@\+id/(\w+)', f.read_text())})  # fmt: skip
    layouts = sorted(p.stem for p in (APP / "res" / "layout").glob("*.xml"))
    body = "public final class R {\n"
    body += (
        "public static final class id {\n"
        + "".join(f"public static final int {n} = 0x7f08{i:04x};\n" for i, n in enumerate(ids))
        + "}\n"
    )
    body += (
        "public static final class layout {\n"
        + "".join(f"public static final int {n} = 0x7f0b{i:04x};\n" for i, n in enumerate(layouts))
        + "}\n}\n"
    )
    f = out / "R.java"
    f.write_text("package org.lightseg.demo;\n" + body)
    return f


@pytest.mark.skipif(not shutil.which("javac"), reason="javac not found (install a JDK)")
@pytest.mark.skipif(
    not JAR.is_file(), reason=f"{JAR} missing (optional: android_demo/fetch_android_jar.sh)"
)
def test_app_compiles_against_android_api_23(tmp_path):
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, src in ORT_STUBS.items():
        (stubs / f"{name}.java").write_text(f"package ai.onnxruntime;\n{src}\n")
    sources = [*stubs.glob("*.java"), _r_java(tmp_path), *(APP / "java").rglob("*.java")]
    proc = subprocess.run(
        ["javac", "-source", "8", "-target", "8", "-Xlint:-options", "-encoding", "UTF-8",
         "-bootclasspath", str(JAR), "-d", str(tmp_path / "classes"), *map(str, sources)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    built = {p.stem for p in (tmp_path / "classes" / "org" / "lightseg").rglob("*.class")}
    assert {"MainActivity", "Segmenter", "Preprocessing", "Pack", "Overlay"} <= built
    # no lambdas: dx (the dexer that exists for Java 8 here) rejects invokedynamic
    javap = subprocess.run(
        ["javap", "-c", "-p", *map(str, (tmp_path / "classes").rglob("*.class"))],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "invokedynamic" not in javap.stdout
