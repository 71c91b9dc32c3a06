"""The framing of Verse's interactive streams (exec), as crates/verse-api/src/frame.rs
defines it.

After the HTTP upgrade both directions carry frames: one kind byte, a big-endian
u32 payload length, the payload. A payload is at most :data:`MAX_PAYLOAD` bytes;
larger data is split over several frames. An unknown kind or an oversized
length is a protocol error, never skipped: the stream cannot be resynchronised.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

#: Upper bound of one frame's payload; larger writes are split.
MAX_PAYLOAD = 64 * 1024

_HEADER = struct.Struct(">BI")


class Kind(IntEnum):
    """What a frame carries, and which way it goes."""

    STDIN = 0
    """client → env: bytes for the process' stdin."""
    STDOUT = 1
    """env → client."""
    STDERR = 2
    """env → client."""
    RESIZE = 3
    """client → env: terminal size, payload rows u16 BE, cols u16 BE."""
    EXIT = 4
    """env → client: the process ended; payload exit code i32 BE (128+signal if killed)."""
    STDIN_EOF = 5
    """client → env: stdin reached end of file."""
    SIGNAL = 6
    """client → env: deliver a signal, payload i32 BE."""
    ERROR = 7
    """env → client: the stream failed; payload is a UTF-8 message."""


class FrameError(ValueError):
    """Bytes that are not a valid frame stream."""


@dataclass(frozen=True)
class Frame:
    """One frame of a stream."""

    kind: Kind
    payload: bytes = b""

    @staticmethod
    def exit(code: int) -> Frame:
        return Frame(Kind.EXIT, struct.pack(">i", code))

    @staticmethod
    def signal(number: int) -> Frame:
        return Frame(Kind.SIGNAL, struct.pack(">i", number))

    @staticmethod
    def resize(rows: int, cols: int) -> Frame:
        return Frame(Kind.RESIZE, struct.pack(">HH", rows, cols))

    def as_i32(self) -> int | None:
        """The i32 carried by EXIT and SIGNAL frames."""
        if len(self.payload) != 4:
            return None
        value: int = struct.unpack(">i", self.payload)[0]
        return value

    def encode(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise FrameError(
                f"a frame of {len(self.payload)} bytes exceeds the {MAX_PAYLOAD} byte limit; "
                "use encode_data to split it"
            )
        return _HEADER.pack(int(self.kind), len(self.payload)) + self.payload


def encode_data(kind: Kind, data: bytes) -> bytes:
    """Encodes ``data`` as frames of ``kind``, split at :data:`MAX_PAYLOAD`."""
    out = bytearray()
    view = memoryview(data)
    for start in range(0, len(data), MAX_PAYLOAD):
        chunk = view[start : start + MAX_PAYLOAD]
        out += _HEADER.pack(int(kind), len(chunk))
        out += chunk
    return bytes(out)


class Decoder:
    """Incremental decoder: :meth:`feed` bytes as they arrive, take whole frames."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or None until more bytes arrive.

        Raises:
            FrameError: on an unknown kind or a length over the limit.
        """
        if len(self._buf) < _HEADER.size:
            return None
        kind_byte, length = _HEADER.unpack_from(self._buf)
        try:
            kind = Kind(kind_byte)
        except ValueError:
            raise FrameError(f"unknown frame kind {kind_byte}") from None
        if length > MAX_PAYLOAD:
            raise FrameError(f"frame of {length} bytes exceeds the {MAX_PAYLOAD} byte limit")
        end = _HEADER.size + length
        if len(self._buf) < end:
            return None
        payload = bytes(self._buf[_HEADER.size : end])
        del self._buf[:end]
        return Frame(kind, payload)

    def pending(self) -> int:
        """Bytes buffered that do not yet make a whole frame."""
        return len(self._buf)
