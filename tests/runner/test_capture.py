"""Secret masking over a byte stream that arrives in pieces (the run worker's reads)."""

from __future__ import annotations

import random

from runner.capture import SecretMasker, masker

SECRETS = ["Sup3rS3cretValue42", "sk-live-abc", "abcab"]


def masked_in_pieces(data: bytes, cuts: list[int], secrets: list[str] = SECRETS) -> bytes:
    stream = SecretMasker(secrets)
    out = []
    start = 0
    for cut in [*cuts, len(data)]:
        out.append(stream.feed(data[start:cut]))
        start = cut
    out.append(stream.flush())
    return b"".join(out)


def test_a_secret_split_across_writes_is_masked() -> None:
    stream = SecretMasker(SECRETS)
    first = stream.feed(b"A:Sup3rS3cr")
    assert first == b"A:", "the start of a secret is held back until it is known not to be one"
    assert stream.feed(b"etValue42\n") == b"***\n"
    assert stream.flush() == b""


def test_a_held_prefix_that_never_completes_comes_out_unchanged() -> None:
    stream = SecretMasker(SECRETS)
    assert stream.feed(b"progress Sup3r") == b"progress "
    assert stream.feed(b"ior\n") == b"Sup3rior\n"
    assert stream.feed(b"50% sk-") == b"50% "
    assert stream.flush() == b"sk-"


def test_any_split_masks_like_one_piece() -> None:
    whole = masker(SECRETS)
    rng = random.Random(7)
    alphabet = [b"Sup3rS3cretValue42", b"Sup3r", b"sk-live-abc", b"sk-", b"ab", b"abcab", b"c", b"x\n", b"\xff"]
    for _ in range(400):
        data = b"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 30)))
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data), rng.randint(0, 6))))
        expected = whole(data)
        assert masked_in_pieces(data, cuts) == expected, (data, cuts)
        for secret in SECRETS:
            assert secret.encode() not in masked_in_pieces(data, cuts)


def test_byte_by_byte_never_releases_a_secret() -> None:
    data = b"key=Sup3rS3cretValue42 and sk-live-abc!"
    out = masked_in_pieces(data, list(range(1, len(data))))
    assert out == b"key=*** and ***!"


def test_short_values_are_not_masked() -> None:
    stream = SecretMasker(["ab", ""])
    assert stream.feed(b"abc") == b"abc"
