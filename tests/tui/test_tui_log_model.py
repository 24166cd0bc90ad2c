"""The log viewer's model: lines, search, filters and error jumps over framed records."""

from __future__ import annotations

import time

from control.logformat import encode_lines, encode_partial
from tui.log_model import BLOCK_BYTES, LogModel, VisibleLines, parse_record


def framed(lines: list[tuple[str, str]], ts: int = 1_795_327_125_611) -> bytes:
    return b"".join(encode_lines(text.encode() + b"\n", stream, ts + n) for n, (stream, text) in enumerate(lines))


def big_log(count: int) -> bytes:
    body = b"".join(b"%07d INFO item %d status=ok\n" % (i, i) for i in range(count))
    return encode_lines(body, "o", 1_795_327_125_611)


def test_lines_come_back_exactly_however_the_bytes_arrive() -> None:
    blob = big_log(50_000) + framed([("e", "boom"), ("o", "tail line")])
    whole = LogModel(blob)
    pieces = LogModel()
    for start in range(0, len(blob), 7_777):  # pieces end in the middle of records
        pieces.extend(blob[start : start + 7_777])
    assert len(whole) == len(pieces) == 50_002
    assert whole.byte_count == len(blob)
    for index in (0, 1, 12_345, 49_999, 50_000, 50_001):
        assert whole.raw(index) == pieces.raw(index)
    assert whole.line(50_000).stream == "e" and whole.line(50_000).text == b"boom"
    assert whole.line(7).text == b"0000007 INFO item 7 status=ok"
    assert len(whole._blocks) > len(blob) // (2 * BLOCK_BYTES)


def test_partial_records_and_malformed_lines() -> None:
    blob = encode_partial(b"progress 50%", "o", 5) + b"not a record\n"
    model = LogModel(blob)
    assert model.line(0) == parse_record(b"5 O progress 50%") and not model.line(0).complete
    assert model.line(1).text == b"not a record" and model.line(1).stream == "o"


def test_search_is_smart_case_wraps_around_and_skips_the_prefix() -> None:
    model = LogModel(framed([("o", "alpha"), ("o", "Beta"), ("e", "beta two"), ("o", "gamma 1795")]))
    assert model.find("beta", -1) == 1  # lower-case needle: any case
    assert model.find("Beta", 1) == 1  # capital: only exact case; wraps around to line 1
    assert model.find("beta", 1) == 2
    assert model.find("beta", 2) == 1  # wrapped
    assert model.find("beta", 2, backwards=True) == 1
    assert model.find("beta", 1, backwards=True) == 2  # wrapped backwards
    assert model.find("1795", -1) == 3  # the timestamp prefix never matches, the text does
    assert model.find("1795327", -1) is None
    assert model.find("missing", 0) is None
    only_stderr = VisibleLines(model.matching(streams="e"))
    assert model.find("beta", -1, allowed=only_stderr) == 2


def test_filters_by_text_and_stream() -> None:
    model = LogModel(framed([("o", "GET /a 200"), ("e", "warning: slow"), ("o", "GET /b 500"), ("e", "error: x")]))
    assert list(model.matching("GET")) == [0, 2]
    assert list(model.matching(streams="e")) == [1, 3]
    assert list(model.matching(streams="o")) == [0, 2]
    assert list(model.matching("500", "o")) == [2]
    assert list(model.matching("slow", "o")) == []
    assert list(model.matching(start=2)) == [2, 3]


def test_error_jump_prefers_error_words_then_stderr() -> None:
    model = LogModel(
        framed([("o", "ok"), ("e", "note"), ("o", "Traceback (most recent call last):"), ("o", "ERROR bad")])
    )
    assert model.first_error() == 2
    assert model.first_error(2) == 3
    assert model.first_error(3) == 2  # wraps around
    quiet = LogModel(framed([("o", "fine"), ("e", "a warning")]))
    assert quiet.first_error() == 1
    assert LogModel(framed([("o", "fine")])).first_error() is None


def test_a_million_lines_index_and_search_fast() -> None:
    blob = big_log(1_000_000)
    began = time.perf_counter()
    model = LogModel(blob)
    built = time.perf_counter() - began
    began = time.perf_counter()
    hit = model.find("item 999998 ", 0)
    searched = time.perf_counter() - began
    assert hit == 999_998
    assert model.line(999_999).text.startswith(b"0999999")
    # Generous bounds for a shared CI machine; bench/tui.py has the real figures.
    assert built < 1.0, built
    assert searched < 1.0, searched


def test_visible_lines_membership_and_rows() -> None:
    from array import array

    shown = VisibleLines(array("q", [2, 5, 9]))
    assert 5 in shown and 6 not in shown
    assert shown.row_of(9) == 2 and shown.row_of(6) == 1 and shown.row_of(0) == 0


def test_a_line_stored_in_pieces_is_one_line_however_the_pieces_arrive() -> None:
    """A progress bar flushed as partial records (``M``) is one line, replaced as it grows;
    the same lines come out whether the records arrive together or one by one."""
    records = [
        b"1 m start\n",
        b"2 M 10%\n",
        b"3 M \r50%\n",
        b"4 m \r100%\n",
        b"5 M prompt> \n",
    ]
    whole = LogModel(b"".join(records))
    pieces = LogModel()
    lines_seen = []
    for record in records:
        pieces.extend(record)
        lines_seen.append(len(pieces))
    for model in (whole, pieces):
        assert [model.line(i).text for i in range(len(model))] == [b"start", b"10%\r50%\r100%", b"prompt> "]
        assert [model.line(i).complete for i in range(len(model))] == [True, True, False]
    assert lines_seen == [1, 2, 2, 2, 3], "the line being drawn is replaced, not added again"
    assert pieces.generation > 0
    assert list(pieces.matching("50%")) == [1]
