"""The only data that crosses between a sandboxed program and its checker: plain values, framed.

A value is encoded as JSON in which every JSON object is a one-key tag, so decoding can build
only what the tags name: None, bools, ints, floats (nan and infinities too), complex, str,
bytes, bytearray, lists, tuples, dicts, sets, frozensets, ranges, and the iterator-like results
that builtins return (an iterator over a list, dict key/value/item views). JSON rather than
`repr` + `ast.literal_eval`: the C decoder keeps memory near the size of the values (an AST of
a 1 MB literal takes ~50 MB), and it has NaN and big ints, which literal_eval has not.

What the sandboxed side may send is the *value* of a call, never an object: a subclass of a
builtin (an `int` subclass, a `Counter`, a namedtuple) is sent as its builtin base, so an
`__eq__` that always answers True never reaches the checker; anything else (a class
instance, a function, a module) is refused. Pickle and marshal are never used: both can
build arbitrary objects from bytes.

What the checker decodes is bounded by what the bytes hold, never by what they name: a
frame of `value_kb` decodes to at most ~25x its size (a list of empty lists), and the tags
that could name more are refused past the limits below (issue 24: `range(200_000_000)`
crossed as 40 bytes and made the checker grow to 2 GB when a test took its `tuple`;
`Fraction("1e999999999")` computed a billion-digit int). Ranges are bounded as iterators
are, by MAX_ITEMS; ints (plain and tagged), fractions and decimals by MAX_DIGITS decimal
digits or exponent, the limit Python itself puts on converting a str to an int.

This file is stdlib-only and free of harness imports: its source text is also shipped into
the sandbox and into the checker process (`entry.py`, `checker.py`), and the
sandbox's interpreter may be any Python from 3.9 (no `X | None` annotations here).
"""

import collections
import itertools
import json
import struct

MAX_DEPTH = 100  # nesting; deeper values are refused rather than risk a RecursionError
MAX_ITEMS = 1_000_000  # elements drawn from one iterator (an infinite generator is refused), or in a range
BIG_INT = 10**4000  # json would refuse ints past Python's 4300-digit str limit; sent as hex
MAX_DIGITS = 4300  # decimal digits (Python's int_max_str_digits) of a plain int, fraction, decimal exponent
MAX_INT_BITS = 1 << 20  # a tagged (hex) int: 262,144 hex digits, still quick to multiply
MAX_TAG = 40  # characters of an unknown tag quoted in an error: the program chose them
HEADER = struct.Struct(">I")


class NotPlain(ValueError):
    """A value the channel cannot carry (the checker reports it as a failure)."""


class Ref:
    """A value that stays on the program's side, named in a message by its tag: a global the
    problem's setup code made ({"ref": name}), a result the checker may only pass back or
    truth-test ({"handle": [number, truth]}), or a builtin passed as an argument ({"builtin": name})."""

    __slots__ = ("tag", "body")

    def __init__(self, tag, body):
        self.tag, self.body = tag, body

    def __bool__(self):
        if self.tag != "handle" or not isinstance(self.body[1], bool):
            raise TypeError("the truth of this program value is unknown")
        return self.body[1]

    def __repr__(self):
        return f"<program value {self.tag} {self.body!r}>"


def _tag_items(values, depth, other):
    return [_plain(v, depth + 1, other) for v in values]


def _plain(value, depth=0, other=None):
    """The JSON-ready form of a value: lists, numbers, strings, one-key tag objects.
    `other(value)` names what is not plain data (a Ref, or a handle), or raises NotPlain."""
    if depth > MAX_DEPTH:
        raise NotPlain(f"nested deeper than {MAX_DEPTH}")
    kind = type(value)
    if value is None or kind is bool or kind is str or kind is float:
        return value
    if kind is int:
        return value if -BIG_INT < value < BIG_INT else {"int": hex(value)}
    if kind is list:
        return _tag_items(value, depth, other)
    if kind is tuple:
        return {"tuple": _tag_items(value, depth, other)}
    if kind is dict:
        return {"dict": [[_plain(k, depth + 1, other), _plain(v, depth + 1, other)] for k, v in value.items()]}
    encoder = _ENCODERS.get(kind)
    if encoder is not None:
        return encoder(value, depth, other)
    return _plain_base(value, depth, other)


def _plain_base(value, depth, other):
    """Subclasses of builtins go as their base, read through the base type's own methods (so
    an overridden `__iter__` or `__str__` is never called); numpy scalars as Python numbers;
    iterators are drawn; the rest is `other`'s to name."""
    for base, convert in _BASES:
        if isinstance(value, base):
            return _plain(convert(value), depth + 1, other)
    module = type(value).__module__
    if module == "numpy" and hasattr(value, "item") and getattr(value, "shape", None) == ():
        return _plain(value.item(), depth + 1, other)
    if module in ("fractions", "decimal") and type(value).__name__ in ("Fraction", "Decimal"):
        return {type(value).__name__.lower(): str(value)}
    if isinstance(value, collections.deque):
        return {"deque": _tag_items(list(value), depth, other)}
    if hasattr(type(value), "__next__") and hasattr(type(value), "__iter__"):
        items = list(itertools.islice(value, MAX_ITEMS + 1))
        if len(items) > MAX_ITEMS:
            raise NotPlain(f"an iterator of more than {MAX_ITEMS} items")
        return {"iter": _tag_items(items, depth, other)}
    if other is None:
        raise NotPlain(f"a {module}.{type(value).__qualname__} object is not plain data")
    return other(value)


_BASES = (  # (builtin, its exact-type copy of a subclass instance)
    (int, int.__int__),
    (float, float.__float__),
    (str, str.__str__),
    (bytes, lambda v: bytes(memoryview(v))),
    (bytearray, lambda v: bytearray(memoryview(v))),
    (tuple, lambda v: tuple(tuple.__iter__(v))),
    (list, lambda v: list(list.__iter__(v))),
    (dict, lambda v: dict(dict.items(v))),  # Counter, OrderedDict, defaultdict: as a dict
    (set, lambda v: set(set.__iter__(v))),
    (frozenset, lambda v: frozenset(frozenset.__iter__(v))),
)
_ENCODERS = {
    complex: lambda v, d, o: {"complex": [v.real, v.imag]},
    bytes: lambda v, d, o: {"bytes": v.decode("latin-1")},
    bytearray: lambda v, d, o: {"bytearray": bytes(v).decode("latin-1")},
    set: lambda v, d, o: {"set": _tag_items(v, d, o)},
    frozenset: lambda v, d, o: {"frozenset": _tag_items(v, d, o)},
    range: lambda v, d, o: {"range": [v.start, v.stop, v.step]},
    type({}.keys()): lambda v, d, o: {"keys": _tag_items(v, d, o)},
    type({}.values()): lambda v, d, o: {"values": _tag_items(v, d, o)},
    type({}.items()): lambda v, d, o: {"items": [[_plain(k, d + 1, o), _plain(x, d + 1, o)] for k, x in v]},
}


def encode(value, other=None) -> bytes:
    """One value as tagged JSON bytes (see `_plain` for `other`)."""
    return json.dumps(_plain(value, 0, other), allow_nan=True).encode()


def _build(tag: str, body, resolve):
    if tag == "tuple":
        return tuple(body)
    if tag == "dict":
        return {k: v for k, v in body}
    if tag in ("set", "frozenset"):
        return set(body) if tag == "set" else frozenset(body)
    if tag == "int":
        if not isinstance(body, str) or len(body) > MAX_INT_BITS // 4 + 3:  # "-0x" and the digits
            raise NotPlain(f"an int of more than {MAX_INT_BITS} bits")
        return int(body, 16)
    if tag == "complex":
        return complex(*body)
    if tag in ("bytes", "bytearray"):
        data = body.encode("latin-1")
        return data if tag == "bytes" else bytearray(data)
    if tag == "range":
        return _bounded_range(range(*body))
    if tag == "iter":
        return iter(body)
    if tag == "deque":
        return collections.deque(body)
    if tag in ("keys", "values", "items"):
        table = dict(body) if tag == "items" else dict.fromkeys(body) if tag == "keys" else dict(enumerate(body))
        return getattr(table, tag)()
    if tag in ("fraction", "decimal"):
        return _number(tag, body)
    if tag in ("ref", "handle", "builtin") and resolve is not None:
        return resolve(tag, body)
    raise NotPlain(f"unknown tag {tag[:MAX_TAG]!r}")


def _bounded_range(value):
    """A range the tests may expand (`tuple(r)`, `list(r)`) no further than MAX_ITEMS."""
    try:
        size = len(value)
    except OverflowError:  # longer than sys.maxsize
        size = MAX_ITEMS + 1
    if size > MAX_ITEMS:
        raise NotPlain(f"a range of more than {MAX_ITEMS} items")
    return value


_FRACTION = r"-?[0-9]{1,%d}(/[0-9]{1,%d})?" % (MAX_DIGITS, MAX_DIGITS)


def _number(tag, body):
    """A Fraction as `str(Fraction)` writes it (no exponent: "1e999999999" would build
    10**999999999), or a Decimal whose digits and exponent an int conversion could bear."""
    import re

    if not isinstance(body, str) or len(body) > 2 * MAX_DIGITS + 16:
        raise NotPlain(f"a {tag} longer than {MAX_DIGITS} digits")
    if tag == "fraction":
        import fractions

        if not re.fullmatch(_FRACTION, body):
            raise NotPlain("a fraction that is not n/d")
        return fractions.Fraction(body)
    import decimal

    value = decimal.Decimal(body)  # parsing keeps the exponent as a number: cheap whatever its size
    if value.is_finite() and (len(value.as_tuple().digits) > MAX_DIGITS or abs(value.adjusted()) > MAX_DIGITS):
        raise NotPlain(f"a decimal past {MAX_DIGITS} digits or exponent")
    return value


def _plain_int(text):
    """json's reading of a plain int, bounded whatever the interpreter's own str limit."""
    if len(text) > MAX_DIGITS + 1:
        raise NotPlain(f"an int of more than {MAX_DIGITS} digits")
    return int(text)


def decode(data: bytes, resolve=None):
    """The value of tagged JSON, else NotPlain. `resolve(tag, body)` builds ref/handle/builtin."""

    def hook(obj):
        if len(obj) != 1:
            raise NotPlain("a JSON object must be one tag")
        ((tag, body),) = obj.items()
        return _build(tag, body, resolve)

    try:
        return json.loads(data, object_hook=hook, parse_int=_plain_int)
    except NotPlain:
        raise
    except Exception as exc:  # ValueError, TypeError, RecursionError, MemoryError...
        raise NotPlain(f"unreadable value ({type(exc).__name__})") from None


def write_frame(fd: int, payload: bytes) -> None:
    import os

    data = memoryview(HEADER.pack(len(payload)) + payload)
    while data:
        data = data[os.write(fd, data) :]


def read_frame(fd: int, limit: int):
    """One frame's payload; None at end of stream; NotPlain when it announces more than limit."""
    header = _read_exactly(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise NotPlain(f"a value of {size} bytes is over the limit of {limit} bytes")
    payload = _read_exactly(fd, size)
    if payload is None:
        return None
    return payload


def _read_exactly(fd: int, size: int):
    import os

    chunks, missing = [], size
    while missing:
        chunk = os.read(fd, min(missing, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)
