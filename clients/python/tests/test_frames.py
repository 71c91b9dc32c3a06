"""The exec stream's framing, byte for byte as crates/verse-api/src/frame.rs writes it."""

from __future__ import annotations

import pytest

from verse_sdk.frames import MAX_PAYLOAD, Decoder, Frame, FrameError, Kind, encode_data


def test_frames_round_trip_through_the_decoder_byte_by_byte() -> None:
    frames = [Frame(Kind.STDOUT, b"hello"), Frame.exit(-3), Frame.resize(24, 80), Frame.signal(9)]
    wire = b"".join(f.encode() for f in frames)
    decoder = Decoder()
    got = []
    for byte in wire:
        decoder.feed(bytes([byte]))
        while (frame := decoder.next_frame()) is not None:
            got.append(frame)
    assert got == frames
    assert got[1].as_i32() == -3
    assert decoder.pending() == 0


def test_the_wire_format_is_kind_then_big_endian_length_then_payload() -> None:
    assert Frame(Kind.STDIN, b"ab").encode() == b"\x00\x00\x00\x00\x02ab"
    assert Frame.exit(256 + 7).encode() == b"\x04\x00\x00\x00\x04\x00\x00\x01\x07"
    assert Frame(Kind.STDIN_EOF).encode() == b"\x05\x00\x00\x00\x00"
    assert Frame.resize(24, 80).encode() == b"\x03\x00\x00\x00\x04\x00\x18\x00\x50"


def test_oversized_and_unknown_frames_are_refused() -> None:
    decoder = Decoder()
    decoder.feed(b"\x01\xff\xff\xff\xff")
    with pytest.raises(FrameError, match="exceeds"):
        decoder.next_frame()
    decoder = Decoder()
    decoder.feed(b"\x63\x00\x00\x00\x00")
    with pytest.raises(FrameError, match="unknown frame kind 99"):
        decoder.next_frame()
    with pytest.raises(FrameError, match="encode_data"):
        Frame(Kind.STDIN, bytes(MAX_PAYLOAD + 1)).encode()


def test_large_data_is_split_at_the_payload_limit() -> None:
    data = bytes(7 for _ in range(MAX_PAYLOAD * 2 + 10))
    decoder = Decoder()
    decoder.feed(encode_data(Kind.STDIN, data))
    sizes = []
    while (frame := decoder.next_frame()) is not None:
        assert frame.kind == Kind.STDIN
        sizes.append(len(frame.payload))
    assert sizes == [MAX_PAYLOAD, MAX_PAYLOAD, 10]
    assert encode_data(Kind.STDIN, b"") == b""


def test_a_partial_frame_waits_for_the_rest() -> None:
    decoder = Decoder()
    decoder.feed(b"\x01\x00\x00\x00\x05hel")
    assert decoder.next_frame() is None
    decoder.feed(b"lo")
    assert decoder.next_frame() == Frame(Kind.STDOUT, b"hello")
