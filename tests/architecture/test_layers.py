"""The one-way rule: a module imports only from its own layer or below, and no import cycles.

Layers, bottom to top (docs/architecture.md): core, judge, runtimes, export, benchmarks,
pipeline, cli. Every import counts, module-level and inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: source folder -> package prefix (pyproject.toml package-dir)
FOLDERS = {
    "lightseg": "lightseg",
    "export": "lightseg.export",
    "runtimes": "lightseg.runtimes",
    "benchmarks": "lightseg.benchmarks",
}
LAYERS = ["core", "judge", "runtimes", "export", "benchmarks", "pipeline", "cli"]
CLI = {"lightseg.cli", "lightseg.commands"}


def layer(module: str) -> str:
    if module in CLI:
        return "cli"
    for name in ("judge", "runtimes", "export", "benchmarks", "pipeline"):
        if module == f"lightseg.{name}" or module.startswith(f"lightseg.{name}."):
            return name
    return "core"


def modules() -> dict[str, Path]:
    out = {}
    for folder, package in FOLDERS.items():
        for f in (ROOT / folder).rglob("*.py"):
            rel = f.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if folder == "lightseg" and parts and parts[0] in ("export", "runtimes", "benchmarks"):
                continue
            out[name] = f
    return out


def imports(path: Path, known: set[str]) -> set[str]:
    """lightseg modules imported anywhere in ``path`` (``from a import b`` counts a.b if known)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lightseg")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lightseg"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                found.add(sub if sub in known else node.module)
    return found


def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: {i for i in imports(p, known) if i in known and i != m} for m, p in mods.items()}


def test_the_map_covers_the_code():
    mods = modules()
    assert len(mods) > 60
    assert {
        "lightseg.judge.verdict",
        "lightseg.runtimes.worker",
        "lightseg.pipeline.autopick",
    } <= set(mods)


def test_no_backward_imports():
    backward = []
    for m, deps in graph().items():
        for d in deps:
            if LAYERS.index(layer(d)) > LAYERS.index(layer(m)):
                backward.append(f"{m} ({layer(m)}) imports {d} ({layer(d)})")
    assert backward == [], "\n".join(sorted(backward))


def test_no_import_cycles():
    g = graph()
    # a package __init__ importing its own submodules is not a cycle worth reporting
    g = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in g.items()}
    cycles, state = [], {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g.get(m, ())):
            if state.get(d) == 1:
                cycles.append(" -> ".join(stack[stack.index(d) :] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    assert cycles == [], "\n".join(cycles)


def test_the_checker_catches_a_backward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from lightseg.benchmarks.harness import run_parity\n")
    found = imports(bad, {"lightseg.benchmarks.harness"})
    assert found == {"lightseg.benchmarks.harness"}
    assert LAYERS.index(layer("lightseg.benchmarks.harness")) > LAYERS.index(
        layer("lightseg.export.onnx")
    )
