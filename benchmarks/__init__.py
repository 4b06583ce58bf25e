"""Benchmark harness comparing the hybrid Tornado + Flask server with its peers.

Run ``python -m benchmarks.run --help`` and see ``docs/benchmarks.md``.
"""
