"""The simulated fleet's physical world: hosts, their domains, the
instance directories on each storage, image caches, power and network.

Storage is a set of namespaces of directories: ``local/<host>`` for each
host's own disk, ``shared`` for the one file system every host with
shared storage sees.  A directory holds a disk (its format, size,
backing file, and a ``data`` token naming whose data it is: a copy has
the original's token), so a test can tell where a guest's only copy is.

Nothing here sleeps or reads the wall clock; long jobs advance when the
controller asks about them (or when the test says so).
"""
import dataclasses
import itertools

from agent.common.errors import DroverError

LOCAL_BASE = "/var/lib/drover/instances"
SHARED_BASE = "/srv/drover/shared"
IMAGE_CACHE = "/var/lib/drover/images"
GIB = 1 << 30
RUNNING_STATES = ("running", "paused", "blocked")


@dataclasses.dataclass
class Disk:
    """One instance directory's disk."""
    fmt: str = "qcow2"
    size: int = 0
    backing: str | None = None
    data: str | None = None         # whose data; None: an empty disk
    xml: bool = False               # libvirt.xml written
    rescue: str | None = None       # disk.rescue beside it: its backing


@dataclasses.dataclass
class Domain:
    uuid: str
    name: str
    vcpus: int
    memory_mib: int
    storage: str
    flavor: str | None = None
    state: str = "shutoff"
    persistent: bool = True
    rescue: bool = False            # defined to boot disk.rescue

    @property
    def running(self):
        return self.state in RUNNING_STATES


class Job:
    """A long agent job (disk copy, live migration): ``steps`` more
    questions about it before it ends; ``finish`` decides how."""

    def __init__(self, steps, finish):
        self.steps = steps
        self.finish = finish
        self.state = "running"
        self.result = None
        self.error = None

    def advance(self):
        if self.state != "running":
            return
        self.steps -= 1
        if self.steps <= 0:
            try:
                self.result = self.finish()
                self.state = "done"
            except DroverError as err:
                self.error = str(err)
                self.state = "failed"


class Host:
    """One simulated hypervisor host."""

    def __init__(self, name, address, *, vcpus=8, memory_mb=8192,
                 disk_gb=100, shared=True):
        self.name = name
        self.address = address
        self.vcpus, self.memory_mb, self.disk_gb = vcpus, memory_mb, disk_gb
        self.shared = shared            # sees the shared namespace
        self.powered = True
        self.linked = True              # network reachable
        self.agent_up = True
        self.disk_full = False
        self.domains = {}               # uuid -> Domain
        self.images = set()             # cached image uuids
        self.uploads = set()            # image uuids with a .part file
        self.image_data = {}            # cached image uuid -> whose data
        self.snapshots = {}             # image uuid -> (storage, data)
        self.copy_jobs = {}             # key -> Job
        self.live_jobs = {}             # instance uuid -> (mig uuid, Job)
        self.failures = []              # [method, error, times]

    @property
    def reachable(self):
        return self.powered and self.linked and self.agent_up

    def ns(self, storage):
        return "shared" if storage == "shared" else f"local/{self.name}"

    def base(self, storage):
        return SHARED_BASE if storage == "shared" else LOCAL_BASE

    def lose_volatile(self):
        """What a power cut takes: running guests, the agent's jobs;
        transient domains are gone."""
        for uuid, dom in list(self.domains.items()):
            dom.state = "shutoff"
            if not dom.persistent:
                del self.domains[uuid]
        self.lose_jobs()

    def lose_jobs(self):
        self.copy_jobs.clear()
        self.live_jobs.clear()


class World:
    def __init__(self):
        self.hosts = {}
        self.storage = {"shared": {}}   # namespace -> {dirname: Disk}
        self.probes = {"shared": set()}
        self.calls = []                 # (host, method) in order
        self._probe_ids = itertools.count(1)

    def add_host(self, name, **kwargs):
        address = kwargs.pop("address", f"198.18.0.{len(self.hosts) + 11}")
        host = Host(name, address, **kwargs)
        self.hosts[name] = host
        self.storage[f"local/{name}"] = {}
        self.probes[f"local/{name}"] = set()
        return host

    def host_by_address(self, address):
        for host in self.hosts.values():
            if host.address == address:
                return host
        raise DroverError(f"ssh: connect to host {address}: No route to "
                          "host")

    def dirs(self, host, storage):
        return self.storage[host.ns(storage)]

    def lock_holder(self, ns, dirname, but=None):
        """The host running a domain on disk ``ns``/``dirname``, if any."""
        for host in self.hosts.values():
            if host is but or not host.powered:
                continue
            for dom in host.domains.values():
                if dom.running and dom.uuid == dirname and \
                        host.ns(dom.storage) == ns:
                    return host
        return None

    def link_ok(self, a, b):
        """Host-to-host traffic (disk copies, migration streams)."""
        return a.powered and a.linked and b.powered and b.linked

    def next_probe(self):
        return f".drover-probe-{next(self._probe_ids):016x}"

    # -- what a test reads ----------------------------------------------------

    def where_defined(self, uuid):
        return sorted(h.name for h in self.hosts.values()
                      if uuid in h.domains)

    def where_running(self, uuid):
        return sorted(h.name for h in self.hosts.values()
                      if uuid in h.domains and h.domains[uuid].running)

    def dirs_of(self, uuid):
        """Every (namespace, dirname) holding a directory of ``uuid``."""
        return sorted((ns, name) for ns, dirs in self.storage.items()
                      for name in dirs if name.startswith(uuid))
