"""The channel's codec: plain values round-trip, nothing else can be built from the bytes."""

from __future__ import annotations

import collections
import decimal
import fractions
import json
import math
import os

import pytest

from harness.eval.sandbox import wire


class AlwaysEqualStr(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__

    def __str__(self):
        return "overridden"


class LyingList(list):
    def __iter__(self):
        return iter(["lie"])


PLAIN = [None, True, False, 0, -7, 10**5000, 1.5, -0.0, float("inf"), 1 + 2j, "", "a\u2028b\ud800", b"\x00\xff",
         bytearray(b"ab"), [1, [2]], (1, (2,)), {(1, "a"): {3}}, frozenset({1}), set(), range(2, 9, 3)]  # fmt: skip


@pytest.mark.parametrize("value", PLAIN, ids=lambda v: type(v).__name__)
def test_plain_values_round_trip_with_their_types(value):
    back = wire.decode(wire.encode(value))
    assert type(back) is type(value) and back == value


def test_nan_round_trips():
    assert math.isnan(wire.decode(wire.encode(float("nan"))))


def test_subclasses_go_as_their_builtin_base_read_by_the_base_type():
    assert type(wire.decode(wire.encode(AlwaysEqualStr("x")))) is str
    assert wire.decode(wire.encode(AlwaysEqualStr("x"))) == "x"  # not "overridden"
    assert wire.decode(wire.encode(LyingList([1, 2]))) == [1, 2]  # not ["lie"]
    assert wire.decode(wire.encode(collections.Counter("aab"))) == {"a": 2, "b": 1}
    assert wire.decode(wire.encode(collections.namedtuple("P", "x y")(1, 2))) == (1, 2)


def test_iterators_views_and_number_types_keep_their_meaning():
    it = wire.decode(wire.encode(map(str, [1, 2])))
    assert it != ["1", "2"] and list(it) == ["1", "2"]  # an iterator still, as the program returned
    assert wire.decode(wire.encode({1: 2}.keys())) == {1}  # a keys view equals a set
    assert list(wire.decode(wire.encode({1: 2}.items()))) == [(1, 2)]
    assert wire.decode(wire.encode(fractions.Fraction(1, 3))) == fractions.Fraction(1, 3)
    assert wire.decode(wire.encode(decimal.Decimal("0.1"))) == decimal.Decimal("0.1")
    assert wire.decode(wire.encode(collections.deque([1]))) == collections.deque([1])


@pytest.mark.parametrize("value", [object(), len, math, type, lambda: 1])
def test_objects_are_refused_without_a_namer(value):
    with pytest.raises(wire.NotPlain):
        wire.encode(value)


def test_objects_go_by_handle_when_the_sender_names_them():
    handles = []
    named = wire.decode(wire.encode([object(), 1], other=lambda v: handles.append(v) or {"handle": [0, True]}),
                        resolve=lambda tag, body: wire.Ref(tag, body))  # fmt: skip
    assert isinstance(named[0], wire.Ref) and bool(named[0]) and named[0] != True and named[1] == 1  # noqa: E712


def test_self_reference_and_depth_are_refused():
    loop: list = []
    loop.append(loop)
    with pytest.raises(wire.NotPlain, match="nested deeper"):
        wire.encode(loop)


@pytest.mark.parametrize(
    "data",
    [b'{"a": 1, "b": 2}', b'{"eval": "1"}', b'{"ref": "x"}', b'{"handle": [0, true]}', b'{"set": [[1]]}',
     b"[" * 100_000, b"\xff", b'{"dict": [[[1], 2]]}'],
)  # fmt: skip
def test_decoding_builds_nothing_but_plain_values(data):
    with pytest.raises(wire.NotPlain):
        wire.decode(data)


def test_frames_announce_their_size_and_a_too_large_one_is_refused():
    read, write = os.pipe()
    try:
        wire.write_frame(write, json.dumps(["return", 1]).encode())
        assert json.loads(wire.read_frame(read, 100)) == ["return", 1]
        wire.write_frame(write, b"x" * 200)
        with pytest.raises(wire.NotPlain, match="over the limit of 100 bytes"):
            wire.read_frame(read, 100)  # refused from its header, before reading it
    finally:
        os.close(read)
        os.close(write)


def test_the_end_of_the_stream_is_none_even_mid_frame():
    read, write = os.pipe()
    os.write(write, wire.HEADER.pack(10) + b"abc")  # a writer that died mid-frame
    os.close(write)
    try:
        assert wire.read_frame(read, 100) is None
    finally:
        os.close(read)


@pytest.mark.parametrize(
    "data, why",
    [(b'{"range": [0, 200000000, 1]}', "a range of more than 1000000 items"),  # HumanEval/33's tuple(...)
     (b'{"range": [0, 100000000000000000000000, 1]}', "a range of more than"),  # longer than sys.maxsize
     (b'{"int": "0x' + b"f" * 300_000 + b'"}', "an int of more than"),
     (b"9" * 5_000, "an int of more than 4300 digits"),
     (b'{"fraction": "1e100000"}', "a fraction that is not n/d"),  # 1e999999999 would take hours
     (b'{"decimal": "1E+999999999"}', "a decimal past 4300 digits or exponent"),
     (b'{"' + b"T" * 70_000 + b'": 1}', "unknown tag 'TTT")],
)  # fmt: skip
def test_values_that_would_expand_past_the_limits_are_refused_in_a_short_message(data, why):
    """What a value may expand to in the checker is bounded, not only its bytes (issue 24)."""
    with pytest.raises(wire.NotPlain, match=why) as refused:
        wire.decode(data)
    assert len(str(refused.value)) < 100


def test_values_at_the_limits_still_decode():
    assert len(wire.decode(wire.encode(range(wire.MAX_ITEMS)))) == wire.MAX_ITEMS
    assert wire.decode(wire.encode(-(2 ** (wire.MAX_INT_BITS - 1)))) == -(2 ** (wire.MAX_INT_BITS - 1))
    assert wire.decode(b"-" + b"9" * 4300) == -int("9" * 4300)
    assert wire.decode(wire.encode(fractions.Fraction(-(10**4000), 3))) == fractions.Fraction(-(10**4000), 3)
    assert wire.decode(wire.encode(decimal.Decimal("-1.5E-4000"))) == decimal.Decimal("-1.5E-4000")
    assert wire.decode(b'{"decimal": "sNaN"}').is_snan()
