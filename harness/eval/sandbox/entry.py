"""The sandbox's first stage: set the sandbox up, load the untrusted program, answer calls.

Its source (after `wire.py`'s) is given to the sandbox's interpreter with `-c`, so nothing
of it is on a path the program could rewrite. The harness writes one JSON header line and
then the program on stdin. In order, before any untrusted line runs:
1. when it is init of a new pid namespace (the `unshare` kind), fork and only reap, since
   init ignores signals such as SIGXCPU;
2. (`unshare` kind, as root) make every mount read-only and mount private size-capped
   tmpfs on /tmp, /var/tmp and /dev/shm, as bubblewrap does, and an empty /dev/pts;
3. move the channel to fd 3, switch to the sandbox's own uid, set rlimits, install the
   seccomp filter (`seccomp.py`).
Then it sends `["started"]` on the channel, runs the program in a fresh `__main__`, sends
`["ready"]` (or `["error", why]`) and answers `["call", name, args, kwargs]` requests from
the checker with `["return", value]`, `["raise", type, message]` or `["notplain", why]`,
until `["stop"]` or the end of the channel. Results that are not plain data stay here and go
as handles (`wire.Ref`): the checker can pass them back or ask their truth, nothing more.

None of this is trusted by the harness: the program runs in this interpreter and can
rewrite any of it, write any frame to the channel, or exit. The checker decides the verdict
from what it asked and what came back (`checker.py`).
"""


def _mount_private(tmpfs_bytes, inodes):
    """Read-only remount of every mount, then private tmpfs (unshare kind, root only)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    flags = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}
    with open("/proc/self/mountinfo") as handle:
        mounts = [line.split() for line in handle]
    for fields in mounts:
        point = fields[4].encode().decode("unicode_escape")
        if point == "/proc" or point.startswith("/proc/"):
            continue  # the new pid namespace's own procfs
        keep = sum(flags.get(option, 0) for option in fields[5].split(","))
        if libc.mount(None, point.encode(), None, 1 | 32 | 4096 | keep, None) != 0:  # RDONLY|REMOUNT|BIND
            raise OSError(ctypes.get_errno(), f"read-only remount of {point}")
    options = f"size={tmpfs_bytes},nr_inodes={inodes},mode=1777".encode()
    import os

    for point in ("/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(point) and libc.mount(b"tmpfs", point.encode(), b"tmpfs", 2 | 4, options) != 0:
            raise OSError(ctypes.get_errno(), f"tmpfs on {point}")
    # The host's /dev/ptmx opens a pty of the host's devpts, whose count (`kernel.pty.max`)
    # every container shares; with no devpts beside it, it opens none (ENODEV).
    empty = b"size=4k,nr_inodes=1,mode=0555"
    if os.path.isdir("/dev/pts") and libc.mount(b"tmpfs", b"/dev/pts", b"tmpfs", 1 | 2 | 4 | 8, empty) != 0:  # RDONLY
        raise OSError(ctypes.get_errno(), "empty /dev/pts")


def _seccomp(program_hex):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    code = bytes.fromhex(program_hex)

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "no_new_privs")
    if libc.prctl(22, 2, ctypes.byref(Program(len(code) // 8, code)), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "seccomp filter")


def _reap_as_init():
    """As pid 1 of a new pid namespace: run the rest in a child, exit with its status."""
    import os

    child = os.fork()
    if child == 0:
        return
    while True:
        pid, status = os.wait()
        if pid == child:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


CPU_MARKER = b"\n\x1emtp-harness: CPU limit\n"


def _on_cpu_limit(signum, frame):
    """Say why on stderr (a program that sets its own handler only loses this label), then
    die of the signal, as without a handler."""
    import os
    import signal

    os.write(2, CPU_MARKER)
    signal.signal(signal.SIGXCPU, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGXCPU)


def _set_up(spec):
    import os
    import resource

    if os.getpid() == 1:
        _reap_as_init()
    if spec.get("private_mounts"):
        _mount_private(*spec["private_mounts"])
        os.chdir("/tmp")
    os.dup2(spec["channel"], 3)
    if spec["channel"] != 3:
        os.close(spec["channel"])
    if spec["uid"] is not None:
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])
    for name, (soft, hard) in spec["limits"].items():
        resource.setrlimit(getattr(resource, name), (soft, hard))
    import signal

    signal.signal(signal.SIGXCPU, _on_cpu_limit)
    if spec["seccomp"]:
        _seccomp(spec["seccomp"])


def _describe(exc):
    """`(type, message)` of an exception, without running the program's own `__str__`."""
    kind = type(exc)
    builtin = getattr(__builtins__, kind.__name__, None) is kind
    try:
        message = str(exc) if builtin else BaseException.__str__(exc)
    except Exception:
        message = ""
    return str(kind.__name__ if builtin else kind.__qualname__)[:100], str(message)[:300]


def _load(source, main):
    """Compile and run the program in `main`; None, or why it could not finish loading."""
    import sys

    try:
        code = compile(source, "<program>", "exec")
        exec(code, main)
    except SystemExit as exc:
        return f"exited with status {exc.code!r} while loading"
    except BaseException as exc:
        import traceback

        name, message = _describe(exc)
        line = next((f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<program>"), None)
        line = getattr(exc, "lineno", None) if isinstance(exc, SyntaxError) else line
        return f"{name}: {message}" + (f" (program line {line})" if line else "")
    finally:
        sys.stdout.flush()
    return None


class _Handles:
    """Results that are not plain data stay here; the checker gets a number and their truth."""

    def __init__(self):
        self.values, self.numbers = [], {}

    def name(self, value):
        number = self.numbers.get(id(value))
        if number is None:
            number = self.numbers[id(value)] = len(self.values)
            self.values.append(value)  # kept alive, so its id stays its own
        try:
            truth = bool(value)
        except BaseException:
            truth = None
        return {"handle": [number, truth]}

    def resolve(self, main):
        import builtins

        def resolve(tag, body):
            if tag == "ref":
                return main[body]
            if tag == "handle":
                return self.values[body[0]]
            return getattr(builtins, body)

        return resolve


def _answer(main, handles, frame):
    """The reply frame to one call request."""
    try:
        _, name, args, kwargs = decode(frame, resolve=handles.resolve(main))
    except (NotPlain, KeyError, IndexError, AttributeError, ValueError) as exc:
        return ["raise", "NameError", f"an argument names nothing in the program ({type(exc).__name__})"]
    function = main.get(name)
    if function is None:
        return ["raise", "NameError", f"name {name!r} is not defined by the program"]
    try:
        value = function(*args, **kwargs)
    except BaseException as exc:
        return ["raise", *_describe(exc)]
    return ["return", value]


def _serve(main, limit):
    handles = _Handles()
    while True:
        frame = read_frame(3, limit)
        if frame is None or frame == b'["stop"]':
            return
        reply = _answer(main, handles, frame)
        try:
            payload = encode(reply, other=handles.name)
        except BaseException as exc:  # NotPlain, or the program's own iterator raising
            payload = json.dumps(["notplain", "%s: %s" % _describe(exc)]).encode()
        write_frame(3, payload)


def _entry():
    import os
    import sys

    spec = json.loads(sys.stdin.buffer.readline())
    source = sys.stdin.buffer.read().decode("utf-8", "replace")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _set_up(spec)
    write_frame(3, b'["started"]')
    import types

    # A fresh `__main__`, as under `python program.py` (pickle and multiprocessing find the
    # program's functions there); this stage's own functions stay in the old module.
    module = types.ModuleType("__main__")
    module.__builtins__ = __builtins__
    sys.modules["__main__"] = module
    main = module.__dict__
    problem = _load(source, main)
    if problem is not None:
        write_frame(3, json.dumps(["error", problem]).encode())
        os._exit(1)
    write_frame(3, b'["ready"]')
    _serve(main, spec["frame_limit"])
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    _entry()
