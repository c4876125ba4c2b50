"""The trusted checker: runs a benchmark's test code outside the sandbox and decides the verdict.

One checker process per program, outside the sandbox, under a budget of its own
(`checker_fork.py`: a fork of a server that the harness starts once with its own interpreter,
`python -I -S -c <wire.py + this file + checker_fork.py> FD`, so each check has a fresh
process without paying an interpreter's start). A check reads a JSON spec, runs the trusted
prelude (HumanEval: the prompt, whose helpers such as `poly` or `encode_cyclic` the tests
call; sanitized MBPP: `test_imports`), binds every other global name the tests use to a
`Remote` that calls into the sandboxed program over the channel, runs the tests, and
returns one verdict, which its watcher writes as a JSON line on the job socket (after the
watcher's pid, which the harness needs to kill it at the deadline). A `Remote` sends its arguments as plain
values and gets a plain value back (`wire.py`); it cannot receive an object, so an
always-equal object, a patched `check` or a rewritten `assert` has nothing to act on. The
program can answer each call with any value it likes, which is what solving the problem
means; it cannot see or change the test code, the comparisons or this process.

The test's random inputs are seeded (`seed` in the spec), so a verdict repeats.
"""

import ast
import builtins
import json
import os
import sys


class Stop(BaseException):
    """The program cannot answer any more: the verdict's reason is the message. A
    BaseException, and remembered in STOPPED, so that test code that catches exceptions
    (expecting the program to raise) cannot turn a dead program into a pass."""

    def __init__(self, message, ended=False):
        super().__init__(message)
        self.ended = ended  # the program's side of the channel closed: it exited or was killed
        STOPPED.append(message)


STOPPED = []


class OverBudget(BaseException):
    """The checker's own CPU budget ran out on the program's values (its SIGXCPU): a timeout
    for the program. Remembered in OVERSPENT, as Stop is, so that test code that catches
    everything cannot swallow it."""

    def __init__(self, message):
        super().__init__(message)
        OVERSPENT.append(message)


OVERSPENT = []


class ProgramRaised(Exception):
    """The program's function raised something that is not a builtin exception type."""


# What of the program's own text the verdict may quote: a 70 KB exception class name once
# outgrew the harness's 64 KB read of this process's output, and the verdict was lost
# (status `error`, which the program chose; issue 24).
MAX_NAME, MAX_MESSAGE, MAX_REASON = 100, 300, 1000


def _quoted(value, limit):
    """Bounded text of something the program influenced; never raises (`str` of an int past
    Python's 4300-digit limit does, and would reach the tests as the program's ValueError)."""
    try:
        text = value if type(value) is str else str(value)
    except Exception:
        text = f"<a {type(value).__name__}>"
    return text[:limit]


def _builtin_exception(name, message):
    """The program's exception, for tests that expect one: the builtin type of that name
    (so `except ValueError` works), else ProgramRaised."""
    name, message = name[:MAX_NAME], message[:MAX_MESSAGE]
    kind = getattr(builtins, name, None)
    if isinstance(kind, type) and issubclass(kind, Exception) and not issubclass(kind, (Stop, StopIteration)):
        try:
            error = kind(message)
        except Exception:  # a constructor that wants other arguments (UnicodeDecodeError...)
            error = ProgramRaised(f"{name}: {message}")
    else:
        error = ProgramRaised(f"{name}: {message}")
    error.from_program = True
    return error


class Remote:
    """A global name of the sandboxed program: calling it is a request over the channel;
    passing it as an argument passes the program's own value of that name."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<program's {self.name}>"

    def __call__(self, *args, **kwargs):
        _send(["call", self.name, list(args), kwargs])
        reply = _receive()
        if reply[0] == "return" and len(reply) == 2:
            return reply[1]
        if reply[0] == "raise" and len(reply) == 3 and type(reply[1]) is str and type(reply[2]) is str:
            raise _builtin_exception(reply[1], reply[2])
        if reply[0] == "notplain":
            raise Stop(f"{self.name} returned a value the channel cannot carry ({_quoted(reply[1], 160)})")
        raise Stop(f"unexpected reply to a call of {self.name}")


def _name_other(value):
    """How an argument that is not plain data is named to the program (else NotPlain)."""
    if isinstance(value, Remote):
        return {"ref": value.name}
    if isinstance(value, Ref) and value.tag == "handle":
        return {"handle": value.body}
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and getattr(builtins, name, None) is value:
        return {"builtin": name}
    raise NotPlain(f"a {type(value).__name__} object is not plain data")


HANDLES = {}


def _resolve(tag, body):
    """A handle the program sent: one Ref per program value, so `is` works on them."""
    if tag != "handle" or not isinstance(body, list) or len(body) != 2 or type(body[0]) is not int:
        raise NotPlain(f"the program may not send {tag!r}")
    return HANDLES.setdefault(body[0], Ref("handle", body))


CHANNEL = -1  # the spec's fd of the channel's checker end
FRAME_LIMIT = 1 << 20


def _send(message):
    try:
        write_frame(CHANNEL, encode(message, other=_name_other))
    except NotPlain as exc:
        raise Stop(f"the test passed a value the channel cannot carry ({exc}); harness bug") from None
    except OSError:
        raise Stop("the program ended during a call", ended=True) from None


def _receive(expect_calls=True):
    try:
        frame = read_frame(CHANNEL, FRAME_LIMIT)
    except NotPlain as exc:
        raise Stop(f"the program's reply: {exc}") from None
    except OSError:
        frame = None
    if frame is None:
        raise Stop("the program ended during a call" if expect_calls else "the program ended while loading", ended=True)
    try:
        reply = decode(frame, resolve=_resolve)
    except NotPlain as exc:
        raise Stop(f"the program's reply: {exc}") from None
    if not isinstance(reply, list) or not reply or not isinstance(reply[0], str):
        raise Stop("the program's reply is not a message")
    return reply


def _bound_names(tree):
    """Every name the test code binds itself (assignments, defs, imports, parameters)."""
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
    return bound


def _remote_names(tree, namespace, program_names):
    """Names the tests read that neither they, the prelude nor builtins define: the program's.
    Stdlib modules a test uses without importing (MBPP 596's `sys`) are imported here instead.
    `program_names` (from the benchmark's own solution, never from the program) may shadow
    builtins: MBPP 126 defines `sum`."""
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    free = used - _bound_names(tree) - set(namespace)
    modules = {name for name in free if name in sys.stdlib_module_names}
    for name in modules:
        namespace[name] = __import__(name)
    return sorted((free - modules - set(dir(builtins))) | set(program_names))


def _wait_until_loaded():
    """None once the program has loaded and waits for calls, else the verdict. Stage
    `start`: the sandbox never reported (the harness's error, not the program's)."""
    try:
        first = _receive(expect_calls=False)
    except Stop:
        first = None
    if first != ["started"]:
        return {"status": "error", "reason": "the sandbox did not start", "stage": "start"}
    try:
        reply = _receive(expect_calls=False)
    except Stop as exc:
        return {"status": "failed", "reason": str(exc), "stage": "load", "ended": exc.ended}
    if reply[0] == "error" and len(reply) == 2:
        return {"status": "failed", "reason": _quoted(reply[1], MAX_MESSAGE), "stage": "load"}
    if reply != ["ready"]:
        return {"status": "failed", "reason": "the program sent an unexpected message", "stage": "load"}
    return None


def _test_failure(exc, tests):
    """A one-line reason for an exception raised by the test code."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<test>"]
    where = f" at test line {frames[-1].lineno}" if frames else ""
    if isinstance(exc, AssertionError):
        line = tests.splitlines()[frames[-1].lineno - 1].strip() if frames else ""
        return f"AssertionError{where}: {line[:160]}" if line else f"AssertionError{where}"
    if isinstance(exc, ProgramRaised):
        return f"{exc} (raised by the program){where}"
    origin = " (raised by the program)" if getattr(exc, "from_program", False) else ""
    return f"{type(exc).__name__}: {_quoted(exc, 160)}{origin}{where}"


def _run_tests(spec, namespace):
    tree = ast.parse(spec["tests"], "<test>")
    for name in spec["remote"]:
        namespace.pop(name, None)  # HumanEval's prompt defines the entry point as a stub
    for name in _remote_names(tree, namespace, spec["remote"]):
        namespace[name] = Remote(name)
    exec(compile(tree, "<test>", "exec"), namespace)
    if spec["call"]:
        function, argument = spec["call"]
        namespace[function](namespace[argument])


def _check(spec):
    import random

    random.seed(spec["seed"])
    problem = _wait_until_loaded()
    if problem is not None:
        return problem
    namespace = {"__name__": "__main__", "__builtins__": builtins}
    try:
        exec(compile(spec["prelude"], "<prelude>", "exec"), namespace)
    except BaseException as exc:
        return {"status": "error", "reason": f"the benchmark's own prelude failed: {type(exc).__name__}: {exc}"}
    try:
        _run_tests(spec, namespace)
    except Stop as exc:
        return {"status": "failed", "reason": str(exc), "stage": "call", "ended": exc.ended}
    except OverBudget as exc:
        return {"status": "timeout", "reason": str(exc), "stage": "test"}
    except MemoryError:  # RLIMIT_AS: the tests' work on the program's values outgrew the budget
        reason = f"the checker's memory budget of {spec['budget']['memory_bytes'] >> 20} MB ran out on the program's values"
        return {"status": "failed", "reason": reason, "stage": "test"}
    except BaseException as exc:
        return {"status": "failed", "reason": _test_failure(exc, spec["tests"]), "stage": "test"}
    if OVERSPENT:
        return {"status": "timeout", "reason": OVERSPENT[0], "stage": "test"}
    if STOPPED:
        return {"status": "failed", "reason": STOPPED[0], "stage": "call"}
    return {"status": "passed", "reason": ""}


def check(spec, channel_fd):
    """The verdict of one check on the program at the other end of `channel_fd`, its reason
    bounded; the program is told to stop either way."""
    global CHANNEL, FRAME_LIMIT
    CHANNEL, FRAME_LIMIT = channel_fd, spec["frame_limit"]
    try:
        verdict = _check(spec)
    except OverBudget as exc:  # outside the tests (reading a reply): the program's timeout all the same
        verdict = {"status": "timeout", "reason": str(exc)}
    except BaseException as exc:  # a bug here must read as the harness's error, never a pass
        verdict = {"status": "error", "reason": f"checker: {type(exc).__name__}: {_quoted(exc, MAX_REASON)}"}
    verdict["reason"] = str(verdict.get("reason", ""))[:MAX_REASON]  # the line stays a few KB
    try:
        _send(["stop"])
    except Stop:
        pass
    return verdict
