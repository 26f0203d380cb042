"""Benchmark of oncall-router against a minimal aiohttp relay; run with `python -m bench`."""
