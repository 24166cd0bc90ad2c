"""The exec frame format: what the CLI decodes."""

from __future__ import annotations

import pytest

from control.wire import frames


def stream() -> bytes:
    return (
        frames.encode(frames.STDOUT, b"hello\n")
        + frames.encode(frames.STDERR, b"")
        + frames.encode_error("Command not found: x.")
        + frames.encode_exit(127)
    )


def test_round_trip_fed_one_byte_at_a_time() -> None:
    decoder = frames.FrameDecoder()
    decoded = [frame for byte in stream() for frame in decoder.feed(bytes([byte]))]
    decoder.close()
    assert [(f.kind, f.payload) for f in decoded] == [
        (b"o", b"hello\n"),
        (b"e", b""),
        (b"!", b"Command not found: x."),
        (b"x", b"127"),
    ]
    assert decoder.exit_code == 127
    assert decoded[-1].exit_code == 127


def test_header_layout_is_kind_then_big_endian_length() -> None:
    assert frames.encode(frames.STDOUT, b"ab") == b"o\x00\x00\x00\x02ab"


def test_stream_cut_inside_a_frame_is_an_error() -> None:
    decoder = frames.FrameDecoder()
    list(decoder.feed(stream()[:-2]))
    with pytest.raises(frames.FrameError, match="inside a frame"):
        decoder.close()


def test_stream_without_exit_frame_is_an_error() -> None:
    decoder = frames.FrameDecoder()
    list(decoder.feed(frames.encode(frames.STDOUT, b"x")))
    with pytest.raises(frames.FrameError, match="without an exit frame"):
        decoder.close()


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(frames.FrameError):
        list(frames.FrameDecoder().feed(b"z\x00\x00\x00\x00"))
    with pytest.raises(frames.FrameError):
        frames.encode(b"z", b"")
