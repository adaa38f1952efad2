"""Measurements of a model or a run: held-out evaluation, label quality, the probe, the report."""
