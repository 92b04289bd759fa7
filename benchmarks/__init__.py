"""Benchmarks of aiosqsworker: `make bench` (see docs/benchmarks.md)."""
