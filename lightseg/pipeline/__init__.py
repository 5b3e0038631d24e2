"""Pipelines on top of the layers: demo, auto-pick, predict, the performance table."""
