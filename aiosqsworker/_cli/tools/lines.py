"""Messages from a byte stream, one a line: what `send --file` and `send -` read.

`LineSplitter` cuts the stream into numbered lines and refuses one too long for the queue
before it is read whole; `decode_line` makes a line text; `LineReader` yields the non-empty
lines in the chunks the stream delivers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from ..._errors import ConfigurationError

__all__ = ["LineReader", "LineSplitter", "decode_line"]


class LineSplitter:
    """Numbered lines of a byte stream fed in pieces; ``\\n`` or ``\\r\\n`` ends a line.

    A line still growing past `limit` bytes is refused at once, before the rest of it is read.
    """

    def __init__(self, limit: int) -> None:
        self._pending = bytearray()
        self._number = 0
        self._limit = limit
        self._overflow: ConfigurationError | None = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._overflow is not None:
            raise self._overflow
        self._pending += data
        lines: list[tuple[int, bytes]] = []
        start = 0
        while (end := self._pending.find(b"\n", start)) >= 0:
            lines.append(self._line(bytes(self._pending[start:end])))
            start = end + 1
        del self._pending[:start]
        if len(self._pending) > self._limit + 1:  # + 1: a line may end with CR LF
            self._overflow = ConfigurationError(
                f"line {self._number + 1}: over {self._limit} bytes, "
                "the queue's limit (MaximumMessageSize): store large payloads elsewhere (S3), "
                "send a reference"
            )
            if not lines:
                raise self._overflow
            # The complete lines before the oversized one are good: hand them out first.
        return lines

    def finish(self) -> list[tuple[int, bytes]]:
        """The last line, if the stream does not end with a line break."""
        if self._overflow is not None:
            raise self._overflow
        if not self._pending:
            return []
        line = self._line(bytes(self._pending))
        self._pending.clear()
        return [line]

    def _line(self, raw: bytes) -> tuple[int, bytes]:
        self._number += 1
        return self._number, raw.removesuffix(b"\r")


def decode_line(number: int, raw: bytes) -> str:
    """The text of line `number`; a UTF-8 byte order mark opening the stream is dropped."""
    try:
        text = raw.decode()
    except UnicodeDecodeError as exc:
        raise ConfigurationError(
            f"line {number}: not UTF-8 text (byte {exc.start + 1}): messages are text; encode "
            "binary data (base64) first"
        ) from None
    return text.removeprefix("\ufeff") if number == 1 else text


class LineReader:
    """The non-empty lines of a binary stream, as ``("line N", text)``, in available chunks."""

    def __init__(self, stream: IO[bytes], limit: int, *, chunk_size: int = 1 << 16) -> None:
        self._stream = stream
        self._splitter = LineSplitter(limit)
        self._chunk_size = chunk_size
        self._done = False

    def read_chunk(self) -> list[tuple[str, str]] | None:
        """The next lines (blocking until some come); None at the end of the stream."""
        read: Callable[[int], bytes] = getattr(self._stream, "read1", self._stream.read)
        while not self._done:
            data = read(self._chunk_size)
            if data:
                lines = self._splitter.feed(data)
            else:
                lines = self._splitter.finish()
                self._done = True
            texts = [(f"line {n}", decode_line(n, raw)) for n, raw in lines if raw]
            if texts:
                return texts
        return None
