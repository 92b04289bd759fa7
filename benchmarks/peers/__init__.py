"""Drivers of peer libraries, each run with the Python of that peer's own virtual environment.

Standard library imports only at this level: a driver imports its peer, `benchmarks._probe`
and `benchmarks.handlers`, nothing of the project or of the main environment.
"""
