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


class HostGone(DroverError):
    """A host is down or cannot be reached: work on it cannot be done now.
    ``host`` names it; ``leftover`` says what stays there to be cleaned up
    when it returns (a dict such as {"uuid", "storage"}), or None."""

    def __init__(self, message, host=None, leftover=None):
        super().__init__(message)
        self.host = host
        self.leftover = leftover


class NotOwner(Conflict):
    """A task changed an instance that another task owns now (it was
    superseded, or it ended): the change is refused."""


class Deposed(NotOwner):
    """A controller that is no longer the leader tried to write: another
    controller took the leader's lock (a later term); the write is refused
    and the deposed controller's engine stops."""


class NotLeader(Conflict):
    """This controller is a standby: the message says where the leader
    is."""


class CommandFailed(DroverError):
    """A subprocess exited non-zero."""

    def __init__(self, argv, returncode, stderr):
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = (stderr or "").strip()
        last = self.stderr.splitlines()[-1] if self.stderr else ""
        super().__init__(f"{self.argv[0]} failed (exit {returncode})"
                         + (f": {last}" if last else ""))


def one_line(err, limit=500):
    """The one line that tells what ``err`` (an exception or text) is: its
    first non-blank line, or the exception's class name when it has no
    message (``TimeoutError()``), cut to ``limit`` characters.  A libvirt
    error's own message is used when it has one."""
    text = str(err)
    libvirt_message = getattr(err, "get_error_message", None)
    if callable(libvirt_message):
        text = libvirt_message() or text
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:limit]
    return (type(err).__name__ if isinstance(err, BaseException)
            else "error")[:limit]
