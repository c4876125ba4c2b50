"""The trusted first stage inside the sandbox: read the program, drop privileges, set limits, run it.

It is passed to the interpreter with `-c`, so it never touches the disk. The harness writes
one JSON header line (limits, uid, nonce) and then the program on stdin; the program itself
never sees a file or an environment variable holding the nonce. After the program's code has
run to its end, the bootstrap writes the nonce as the last line of stdout: a program that
exits early (`sys.exit(0)`, `os._exit(0)`) before its asserts never produces it, and a
program cannot print a nonce it was never shown. (Deliberate frame inspection could still
find it; the sandbox guards against broken and careless code, not against code written to
defeat this particular check.)
"""

MARKER = "\x1eharness-sandbox-started"

SOURCE = r'''
def _bootstrap():
    import json, os, sys  # local names: the program's __main__ is emptied below
    sys.stderr.write("\x1eharness-sandbox-started\n")
    sys.stderr.flush()
    spec = json.loads(sys.stdin.buffer.readline())
    source = sys.stdin.buffer.read().decode("utf-8", "replace")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    if os.getpid() == 1:
        # We are init of a new pid namespace (the unshare kind): init ignores default-action
        # signals (SIGXCPU, SIGINT...), so run the program as a child and only reap here.
        child = os.fork()
        if child:
            while True:
                pid, status = os.wait()
                if pid == child:
                    code = os.waitstatus_to_exitcode(status)
                    os._exit(code if code >= 0 else 128 - code)
    if spec["uid"] is not None:
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])
    import resource
    for name, value in spec["limits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    nonce = spec.pop("nonce").encode()
    import linecache
    linecache.cache["<program>"] = (len(source), None, source.splitlines(True), "<program>")
    try:
        code = compile(source, "<program>", "exec")
    except (SyntaxError, ValueError):
        import traceback
        traceback.print_exc(limit=0)
        sys.exit(1)
    main = sys.modules["__main__"].__dict__
    for key in [k for k in main if k not in ("__name__", "__builtins__", "__doc__", "__spec__", "__loader__", "__package__")]:
        del main[key]
    del source, spec
    exec(code, main)
    sys.stdout.flush()
    os.write(1, b"\n" + nonce + b"\n")

_bootstrap()
'''
