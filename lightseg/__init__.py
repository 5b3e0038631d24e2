"""lightseg: a lightweight breast-CT tumour U-Net from PyTorch to phones, Jetsons and browsers."""

__version__ = "0.1.0"
