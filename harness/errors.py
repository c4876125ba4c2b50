"""User-facing errors: one line that names the problem and the fix, never a traceback.

Code raises `HarnessError` for anything the user can fix (a malformed recipe, a missing
file, a corrupted checkpoint); the CLI prints its message as a single line and exits with
status 2. Bugs stay ordinary exceptions so that they keep their tracebacks.
"""


class HarnessError(Exception):
    """A problem in the user's input or environment, with the fix in the message."""

    exit_code = 2

    def __init__(self, message: str, *, fix: str | None = None):
        self.problem = message
        self.fix = fix
        super().__init__(f"{message}; fix: {fix}" if fix else message)


def one_line(text: str) -> str:
    """Collapse whitespace so an error message from a library stays on one line."""
    return " ".join(str(text).split())
