"""Benchmarks: what trainlab costs next to a bare PyTorch loop (run ``python -m benchmarks``)."""
