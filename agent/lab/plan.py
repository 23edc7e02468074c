"""The lab's address and naming plan: pure functions, no I/O.

A lab called NAME on network N (for example 198.18.0.0/24) has a bridge
``NAME-br`` in the root namespace holding N's first address (.1), and host
i (1..MAX_HOSTS) has the network namespace, root-side veth and hostname
``NAME-hI`` and the address .(10+i).  Interface names must fit the kernel's
15 characters, which bounds NAME to 10.  A host's ``eth0`` (its uplink in
its guest bridge) has a MAC the kernel picks, unless the plan chooses one.
"""
import dataclasses
import ipaddress
import re
import uuid

from agent.common.errors import InvalidInput

MAX_HOSTS = 20
IFNAME_MAX = 15
HOST_OFFSET = 10
LAB_RANGE = ipaddress.ip_network("198.18.0.0/15")
GUEST_BRIDGE = "br-guest"
LIBVIRT_TCP_PORT = 16509
SSH_PORT = 22
# Paths inside every lab host.
LOCAL_STORAGE = "/var/lib/drover"
SHARED_STORAGE = "/var/lib/drover-shared"
# virtlockd's leases, on the shared storage (inside every lab host).
LOCKSPACE = f"{SHARED_STORAGE}/lockd"

_NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,9}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_UUID_NS = uuid.UUID("6f3a1c52-1b0e-4d8e-9a37-5c1f0e2b7d44")


@dataclasses.dataclass(frozen=True)
class HostPlan:
    index: int
    name: str            # hostname, network namespace and root-side veth
    address: str
    prefixlen: int
    host_uuid: str
    eth0_mac: str | None = None     # None: the kernel picks one

    @property
    def short(self):
        return f"h{self.index}"

    @property
    def netns(self):
        return self.name

    @property
    def veth(self):
        return self.name

    @property
    def libvirt_uri(self):
        return f"qemu+tcp://{self.address}/system"

    @property
    def migration_uri(self):
        return f"tcp://{self.address}"


@dataclasses.dataclass(frozen=True)
class LabPlan:
    name: str
    network: ipaddress.IPv4Network
    eth0_macs: tuple = ()           # (index, MAC) pairs

    @property
    def bridge(self):
        return f"{self.name}-br"

    @property
    def gateway(self):
        return str(self.network.network_address + 1)

    @property
    def guest_range(self):
        """First and last address left for guests (after the hosts)."""
        first = self.network.network_address + HOST_OFFSET + MAX_HOSTS + 1
        return str(first), str(self.network.broadcast_address - 1)

    def host(self, index):
        if not 1 <= index <= MAX_HOSTS:
            raise InvalidInput(f"lab host index must be 1..{MAX_HOSTS}, "
                               f"not {index}")
        name = f"{self.name}-h{index}"
        return HostPlan(
            index=index, name=name,
            address=str(self.network.network_address + HOST_OFFSET + index),
            prefixlen=self.network.prefixlen,
            host_uuid=str(uuid.uuid5(_UUID_NS, name)),
            eth0_mac=dict(self.eth0_macs).get(index))

    def hosts(self, count):
        check_count(count)
        return [self.host(i) for i in range(1, count + 1)]

    def resolve(self, host):
        """Host plan for an index, ``hI`` or ``NAME-hI``."""
        text = str(host)
        for prefix in (f"{self.name}-h", "h", ""):
            rest = text[len(prefix):] if text.startswith(prefix) else None
            if rest and rest.isdigit():
                return self.host(int(rest))
        raise InvalidInput(f"no lab host {host!r} (use h1, {self.name}-h1 "
                           "or 1)")


def check_count(count):
    if not 1 <= count <= MAX_HOSTS:
        raise InvalidInput(f"lab host count must be 1..{MAX_HOSTS}, "
                           f"not {count}")


def check_mac(mac):
    """The MAC in lower case, if it is a unicast Ethernet address."""
    text = str(mac).lower()
    if not _MAC_RE.match(text) or int(text[:2], 16) & 1 or \
            text == "00:00:00:00:00:00":
        raise InvalidInput(f"{mac!r} is not a unicast MAC address "
                           "(like 02:00:00:00:00:01)")
    return text


def make_plan(name, network, eth0_macs=None):
    """Validate the lab name and network and return a LabPlan;
    ``eth0_macs`` maps host indexes to the MAC their ``eth0`` gets."""
    if not _NAME_RE.match(name or ""):
        raise InvalidInput(f"lab name {name!r} must be 1-10 lower-case "
                           "letters or digits, starting with a letter")
    try:
        net = ipaddress.ip_network(network, strict=True)
    except ValueError as err:
        raise InvalidInput(f"lab network {network!r}: {err}") from None
    if net.version != 4 or not net.subnet_of(LAB_RANGE):
        raise InvalidInput(f"lab network {network} must lie in {LAB_RANGE}")
    if net.num_addresses < 2 * (HOST_OFFSET + MAX_HOSTS + 2):
        raise InvalidInput(f"lab network {network} is too small "
                           f"(/{net.prefixlen}); use /26 or larger")
    macs = {}
    for index, mac in (eth0_macs or {}).items():
        if not isinstance(index, int) or not 1 <= index <= MAX_HOSTS:
            raise InvalidInput(f"lab host index must be 1..{MAX_HOSTS}, "
                               f"not {index!r}")
        macs[index] = check_mac(mac)
    if len(set(macs.values())) < len(macs):
        raise InvalidInput("lab hosts need distinct eth0 MACs")
    plan = LabPlan(name=name, network=net,
                   eth0_macs=tuple(sorted(macs.items())))
    longest = max(len(plan.bridge), len(plan.host(MAX_HOSTS).veth))
    assert longest <= IFNAME_MAX, longest
    return plan
