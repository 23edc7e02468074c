"""Checks of names and keys a user gives, before they reach the store.

Names (hosts, aggregates, availability zones, flavors, images, instances):
1 to 63 letters, digits, ``-``, ``_`` or ``.``, starting with a letter or a
digit, so that a name is never read as an option, a path or shell syntax.
"""
import re

from agent.common.errors import InvalidInput

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,254}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                   r"[0-9a-f]{12}")


def _shown(value):
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def name(value, what="name"):
    """Return ``value`` if it is a valid name, else raise InvalidInput."""
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise InvalidInput(
            f"invalid {what} {_shown(value)}: use 1 to 63 letters, digits, "
            "'-', '_' or '.', starting with a letter or digit")
    return value


def key(value, what="key"):
    """A metadata or property key: like a name, ``:`` allowed, up to 255."""
    if not isinstance(value, str) or not _KEY.fullmatch(value):
        raise InvalidInput(
            f"invalid {what} {_shown(value)}: use 1 to 255 letters, digits, "
            "'-', '_', '.' or ':', starting with a letter or digit")
    return value


def value(text, what="value"):
    """A metadata or property value: printable, up to 255 characters."""
    if (not isinstance(text, str) or len(text) > 255
            or not text.isprintable()):
        raise InvalidInput(f"invalid {what} {_shown(text)}: use up to 255 "
                           "printable characters")
    return text


def is_uuid(text):
    """True if ``text`` is a lower-case canonical UUID."""
    return isinstance(text, str) and bool(_UUID.fullmatch(text))


def count(number, what, minimum=0):
    """A whole number >= ``minimum`` (flavor sizes, claims)."""
    if isinstance(number, bool) or not isinstance(number, int) \
            or number < minimum:
        raise InvalidInput(f"invalid {what} {_shown(number)}: use a whole "
                           f"number of at least {minimum}")
    return number
