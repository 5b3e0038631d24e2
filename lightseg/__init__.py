"""lightseg: a lightweight breast-CT tumour U-Net from PyTorch to phones, Jetsons and browsers."""

import os as _os

__version__ = "0.1.0"

# Installed, lightseg.export / .runtimes / .benchmarks live inside this package (setuptools maps the
# top-level folders export/, runtimes/, benchmarks/ into it). When Python picks the package straight
# from a source checkout instead (`python -m ...` or `python -c` run in the repository root put the
# checkout first on sys.path), the same names must resolve to those folders: add the root to the
# package path in that case only.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "pyproject.toml")) and _os.path.isfile(
    _os.path.join(_root, "export", "__init__.py")
):
    __path__.append(_root)  # noqa: F821 (the package's own __path__)
