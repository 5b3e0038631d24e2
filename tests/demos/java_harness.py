"""Compile android_demo's plain-Java code with javac and run its JUnit 4 tests (JUnitCore)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "android_demo" / "app" / "src"
CORE = ROOT / "main" / "java" / "org" / "lightseg" / "core"
TESTS = ROOT / "test" / "java" / "org" / "lightseg" / "core"
JARS = ("/usr/share/java/junit4.jar", "/usr/share/java/hamcrest-core.jar")


def missing() -> str | None:
    """Why the Java tests cannot run here, or None."""
    if not shutil.which("javac") or not shutil.which("java"):
        return "javac/java not found (install a JDK, e.g. apt-get install -y default-jdk-headless)"
    for jar in JARS:
        if not Path(jar).is_file():
            return f"{jar} not found (apt-get install -y junit4)"
    return None


def run_junit(build: Path, props: dict[str, str]) -> tuple[int, int, str]:
    """Compile core + tests into ``build`` and run every *Test class; (run, failed, output)."""
    cp = ":".join(JARS)
    sources = sorted(map(str, [*CORE.glob("*.java"), *TESTS.glob("*.java")]))
    subprocess.run(
        [
            "javac",
            "-source",
            "8",
            "-target",
            "8",
            "-Xlint:-options",
            "-encoding",
            "UTF-8",
            "-cp",
            cp,
            "-d",
            str(build),
            *sources,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    classes = sorted(f"org.lightseg.core.{p.stem}" for p in TESTS.glob("*Test.java"))
    defs = [f"-D{k}={v}" for k, v in props.items()]
    proc = subprocess.run(
        ["java", *defs, "-cp", f"{build}:{cp}", "org.junit.runner.JUnitCore", *classes],
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    ok = re.search(r"^OK \((\d+) tests?\)", out, re.M)
    if ok:
        return int(ok.group(1)), 0, out
    bad = re.search(r"^Tests run: (\d+),\s+Failures: (\d+)", out, re.M)
    if not bad:
        raise RuntimeError(f"JUnitCore printed no summary (rc {proc.returncode}):\n{out}")
    return int(bad.group(1)), int(bad.group(2)), out
