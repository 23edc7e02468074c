"""Errors a user or operator can cause or act on.

Each carries one clear line (``str(err)``); the CLI prints it and exits
with ``exit_code`` instead of showing a traceback.
"""


class DroverError(Exception):
    """An operation failed (exit 1)."""
    exit_code = 1


class InvalidInput(DroverError):
    """Bad input or a refused request (exit 2)."""
    exit_code = 2


class NotFound(InvalidInput):
    """A named thing does not exist (exit 2)."""


class Conflict(InvalidInput):
    """The request conflicts with the current state (exit 2)."""


class CommandFailed(DroverError):
    """A subprocess exited non-zero."""

    def __init__(self, argv, returncode, stderr):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = (stderr or "").strip()
        last = self.stderr.splitlines()[-1] if self.stderr else ""
        super().__init__(f"{self.argv[0]} failed (exit {returncode})"
                         + (f": {last}" if last else ""))
