"""What a domain is made of: the only input the domain templates get.

Every field is checked when a spec is built, so a spec that exists can be
rendered.  Domain type, CPU model, machine type and the default disk cache
mode come from the [libvirt] options at render time.
"""
import dataclasses
import string

from agent.common.errors import InvalidInput
from agent.common import validate

DISK_FORMATS = frozenset({"qcow2", "raw"})
DISK_BUSES = {"virtio": "vd", "sata": "sd"}
CACHE_MODES = frozenset({"none", "writethrough", "writeback", "directsync",
                         "unsafe"})
NIC_MODELS = frozenset({"virtio", "e1000"})
MAX_DISKS = 16


@dataclasses.dataclass(frozen=True)
class DiskSpec:
    """A file-backed guest disk; ``target`` defaults to its position."""
    path: str
    format: str = "qcow2"
    target: str | None = None
    bus: str = "virtio"
    cache: str | None = None

    def __post_init__(self):
        validate.absolute_path(self.path, "disk path")
        validate.choice(self.format, DISK_FORMATS, "disk format")
        validate.choice(self.bus, DISK_BUSES, "disk bus")
        if self.cache is not None:
            validate.choice(self.cache, CACHE_MODES, "disk cache mode")
        if self.target is not None:
            prefix = DISK_BUSES[self.bus]
            if (len(self.target) != 3 or not self.target.startswith(prefix)
                    or self.target[2] not in string.ascii_lowercase):
                raise InvalidInput(f"invalid target {self.target!r} for bus "
                                   f"{self.bus}; expected {prefix}a..z")


@dataclasses.dataclass(frozen=True)
class NicSpec:
    """A NIC on a host bridge."""
    mac: str
    bridge: str
    model: str = "virtio"

    def __post_init__(self):
        object.__setattr__(self, "mac", validate.mac(self.mac))
        validate.bridge(self.bridge)
        validate.choice(self.model, NIC_MODELS, "NIC model")


@dataclasses.dataclass(frozen=True)
class DomainSpec:
    """A guest: the first disk boots; the serial console goes to a log."""
    uuid: str
    name: str
    vcpus: int
    memory_mib: int
    disks: tuple
    console_log: str
    nics: tuple = ()
    metadata: dict = dataclasses.field(default_factory=dict)
    flavor: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "uuid", validate.uuid(self.uuid))
        validate.domain_name(self.name)
        if not isinstance(self.vcpus, int) or not 1 <= self.vcpus <= 64:
            raise InvalidInput(f"vcpus must be 1..64, not {self.vcpus!r}")
        if not isinstance(self.memory_mib, int) or self.memory_mib < 16:
            raise InvalidInput("memory_mib must be an integer of at least "
                               f"16, not {self.memory_mib!r}")
        disks = tuple(self.disks)
        if not 1 <= len(disks) <= MAX_DISKS:
            raise InvalidInput(f"a domain needs 1..{MAX_DISKS} disks")
        object.__setattr__(self, "disks", _with_targets(disks))
        object.__setattr__(self, "nics", tuple(self.nics))
        validate.absolute_path(self.console_log, "console log path")
        for key, value in self.metadata.items():
            validate.metadata_key(key)
            validate.text(value, f"metadata value of {key!r}")
        if self.flavor is not None:
            validate.text(self.flavor, "flavor name")
        macs = [nic.mac for nic in self.nics]
        if len(set(macs)) != len(macs):
            raise InvalidInput("two NICs have the same MAC address")


def _with_targets(disks):
    """Give each disk without a target the next free name on its bus."""
    taken = {d.target for d in disks if d.target}
    if len(taken) != sum(1 for d in disks if d.target):
        raise InvalidInput("two disks have the same target")
    result = []
    for disk in disks:
        if disk.target is None:
            prefix = DISK_BUSES[disk.bus]
            target = next(prefix + c for c in string.ascii_lowercase
                          if prefix + c not in taken)
            taken.add(target)
            disk = dataclasses.replace(disk, target=target)
        result.append(disk)
    return tuple(result)
