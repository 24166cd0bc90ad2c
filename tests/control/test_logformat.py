"""The stored log format: framing, decoding and the fast path must agree byte for byte."""

from __future__ import annotations

import random

from control.logformat import complete_only, decode, encode_lines, encode_partial, raw_output, tail_records


def slow_raw(blob: bytes, stream: str) -> bytes:
    return b"".join(r.raw for r in decode(blob) if r.stream == stream)


def test_fast_path_agrees_with_decode_on_random_logs() -> None:
    rng = random.Random(7)
    alphabet = [b"a", b"b", b" ", b"o", b"1", b"\x1b[31m", b"\r", b"\xff", b"0 o ", b"12 e "]
    for _ in range(3000):
        blob = b""
        ts = 1_700_000_000_000
        for _ in range(rng.randint(0, 6)):
            ts += rng.choice([0, 0, 1, 5])
            lines = b"".join(
                b"".join(rng.choices(alphabet, k=rng.randint(0, 8))) + b"\n" for _ in range(rng.randint(1, 5))
            )
            stream = rng.choice("ooooe")
            if rng.random() < 0.1:
                blob += encode_partial(lines.replace(b"\n", b""), stream, ts)
            else:
                blob += encode_lines(lines, stream, ts)
        for stream in "oe":
            fast = complete_only(blob, stream)
            if fast is not None:
                assert fast == slow_raw(blob, stream)
        assert raw_output(blob, "o") == slow_raw(blob, "o")


def test_partial_and_tail() -> None:
    blob = encode_lines(b"one\ntwo\n", "o", 5) + encode_partial(b"thr", "e", 6) + encode_lines(b"ee\n", "e", 7)
    assert raw_output(blob, "e") == b"three\n"
    assert raw_output(tail_records(blob, 2)) == b"three\n"
    assert complete_only(blob, "o") is None
