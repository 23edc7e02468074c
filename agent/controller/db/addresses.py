"""Guest addresses: pick a free IP from the configured range and a random
locally administered MAC (QEMU's 52:54:00 prefix)."""
import ipaddress
import secrets

from agent.common.errors import InvalidInput


def parse_range(text):
    """``"first-last"`` -> (first, last) ip_address objects."""
    try:
        first, last = (ipaddress.ip_address(p.strip())
                       for p in text.split("-"))
    except ValueError as err:
        raise InvalidInput(f"invalid guest_address_range {text!r}: "
                           "use FIRST-LAST, e.g. 198.18.0.100-198.18.0.250"
                           ) from err
    if first.version != last.version or first > last:
        raise InvalidInput(f"invalid guest_address_range {text!r}: the "
                           "first address must not be after the last")
    return first, last


def first_free(address_range, used):
    """The lowest address of ``address_range`` not in ``used`` (strings),
    or None when every address is taken."""
    first, last = parse_range(address_range)
    addr = first
    while addr <= last:
        if str(addr) not in used:
            return str(addr)
        addr += 1
    return None


def random_mac():
    return "52:54:00:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
