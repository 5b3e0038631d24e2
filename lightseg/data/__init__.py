"""Breast-CT data: preprocessing, synthetic phantoms, readers for real data."""

from lightseg.data.preprocessing import Preprocessing

__all__ = ["Preprocessing"]
