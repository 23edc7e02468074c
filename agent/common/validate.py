"""Checks for every name and value that reaches a path or domain XML.

Each returns the value in canonical form or raises InvalidInput.
"""
import os
import re
import uuid as uuidlib

from agent.common.errors import InvalidInput

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_DOMAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_BRIDGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")
_METADATA_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def uuid(value):
    """A UUID in its lower-case 8-4-4-4-12 form (the only names in paths)."""
    try:
        parsed = uuidlib.UUID(str(value))
    except ValueError:
        raise InvalidInput(f"not a UUID: {value!r}") from None
    text = str(parsed)
    if str(value).lower() != text:
        raise InvalidInput(f"not a UUID in 8-4-4-4-12 form: {value!r}")
    return text


def mac(value):
    """A unicast MAC address, lower case, colon separated."""
    text = str(value).lower()
    if not _MAC.match(text):
        raise InvalidInput(f"not a MAC address: {value!r}")
    if int(text[:2], 16) & 1:
        raise InvalidInput(f"multicast MAC address not allowed: {value!r}")
    return text


def domain_name(value):
    """A libvirt domain name: letters, digits, '_', '.', '-'; 64 at most."""
    if not _DOMAIN_NAME.match(str(value)):
        raise InvalidInput(f"invalid domain name: {value!r}")
    return value


def bridge(value):
    """A Linux bridge name (15 characters at most)."""
    if not _BRIDGE.match(str(value)):
        raise InvalidInput(f"invalid bridge name: {value!r}")
    return value


def metadata_key(value):
    """A key of an SMBIOS OEM string ``drover.KEY=VALUE``."""
    if not _METADATA_KEY.match(str(value)):
        raise InvalidInput(f"invalid metadata key: {value!r}")
    return value


def text(value, what, max_len=255):
    """Free text for XML: printable, one line, bounded length."""
    value = str(value)
    if _CONTROL.search(value) or len(value) > max_len:
        raise InvalidInput(f"invalid {what}: control characters or longer "
                           f"than {max_len} characters")
    return value


def choice(value, allowed, what):
    if value not in allowed:
        raise InvalidInput(f"invalid {what} {value!r}; expected one of "
                           + ", ".join(sorted(allowed)))
    return value


def absolute_path(value, what):
    """An absolute, normalised path without control characters."""
    value = text(value, what, max_len=4096)
    if not value.startswith("/") or os.path.normpath(value) != value \
            or value.startswith("//"):
        raise InvalidInput(f"{what} must be an absolute normalised path: "
                           f"{value!r}")
    return value
