"""drover's RPC protocol: JSON lines over a byte stream (the agents' RPC,
and the controller's API socket).

Request:      {"id": N, "method": "name", "params": {...}}
Reply:        {"id": N, "result": ...}
Error reply:  {"id": N, "error": {"type": "NotFound", "message": "one line"}}
Notification: {"event": "name", "data": {...}}   (to subscribers only)

Error types are the names of the classes in agent.common.errors; anything
else is "InternalError".
"""
import json

from agent.common import errors
from agent.common.errors import one_line

INTERNAL_ERROR = "InternalError"
MESSAGE_LIMIT = 2000     # characters of an error message on the wire

# Wire name -> class, for every DroverError class in agent.common.errors.
ERROR_CLASSES = {
    name: cls for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, errors.DroverError)
}


class ProtocolError(ValueError):
    """A line that is not a valid message."""


def encode(message):
    """Return ``message`` (a dict) as one JSON line (bytes)."""
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def decode(line):
    """Return the dict held by one line; ProtocolError if it is not one."""
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtocolError(f"not JSON: {err}") from None
    if not isinstance(message, dict):
        raise ProtocolError("not a JSON object")
    return message


def error_type(exc):
    """Wire type of ``exc``: its nearest class in agent.common.errors."""
    for cls in type(exc).__mro__:
        if ERROR_CLASSES.get(cls.__name__) is cls:
            return cls.__name__
    return INTERNAL_ERROR


def error_body(exc):
    """The "error" member of a reply for ``exc``."""
    kind = error_type(exc)
    message = one_line(exc, limit=MESSAGE_LIMIT)
    if kind == INTERNAL_ERROR and message != type(exc).__name__:
        message = f"{type(exc).__name__}: {message}"
    return {"type": kind, "message": message}


def error_from_body(body, fallback):
    """Rebuild the exception an error reply describes.

    Known types become their agent.common.errors class; "InternalError"
    and unknown types become ``fallback`` (a DroverError subclass).
    """
    if not isinstance(body, dict):
        body = {}
    kind = str(body.get("type") or INTERNAL_ERROR)
    message = one_line(body.get("message") or kind, limit=MESSAGE_LIMIT)
    cls = ERROR_CLASSES.get(kind)
    if cls is None:
        return fallback(message)
    exc = cls.__new__(cls)
    # Bypass constructors with their own arguments (CommandFailed): the
    # message is all that crosses the wire.
    Exception.__init__(exc, message)
    return exc
