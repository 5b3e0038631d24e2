"""lightseg: a lightweight breast-CT tumour U-Net from PyTorch to phones, Jetsons and browsers."""

import importlib.util as _util

__version__ = "0.1.0"

# The top-level folders export/, runtimes/ and benchmarks/ are the subpackages lightseg.export,
# lightseg.runtimes and lightseg.benchmarks of the INSTALLED package (setuptools package-dir). A
# source checkout's lightseg/ folder picked up from the working directory cannot provide them:
# say so in one line instead of failing later with "No module named 'lightseg.export'".
if _util.find_spec(f"{__name__}.export") is None:
    raise ImportError(
        f"lightseg was imported from the source folder {__path__[0]} (the working directory is on "
        "sys.path), where lightseg.export/.runtimes/.benchmarks do not resolve: run the installed "
        "package (.venv/bin/lightseg, .venv/bin/python -I ..., or from another folder); "
        "install it with `make install`"
    )
