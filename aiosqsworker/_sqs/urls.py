"""What a queue's URL tells without a call: its name."""

from __future__ import annotations


def queue_name(url: str) -> str:
    """The queue's name, the last segment of its URL (``.../123456789012/jobs`` -> ``jobs``);
    a string without a ``/`` is taken as the name itself."""
    return url.rstrip("/").rpartition("/")[2] or url
