"""What a host tells the controller about itself: its facts (resources,
versions, domains, load) and its inventory (domains and instance
directories, for ``drover fleet audit``)."""
import os
import re
import socket
import time

from agent.conf import CONF
from agent.hypervisor import domains, stats


def _meminfo_mb():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 0


def _disk_gb(path):
    os.makedirs(path, exist_ok=True)
    st = os.statvfs(path)
    return (st.f_blocks * st.f_frsize) >> 30, \
        ((st.f_blocks - st.f_bavail) * st.f_frsize) >> 30


def _cpu_jiffies():
    """(busy, total) jiffies of all CPUs since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def load_sample():
    """Counters the controller turns into rates (agent.controller.load):
    this host's monotonic clock, its CPU's busy and total jiffies (the
    whole machine's: hosts sharing one kernel, as in the lab, report the
    same), and each running guest's CPU time and memory."""
    busy, total = _cpu_jiffies()
    return {"clock": time.monotonic(), "cpu_busy": busy, "cpu_total": total,
            "ncpus": os.cpu_count() or 1}


def _version(number):
    major, rest = divmod(number, 1000000)
    minor, micro = divmod(rest, 1000)
    return f"{major}.{minor}.{micro}"


def host_facts(conn):
    """Resources, versions, paths and domains of this host."""
    doms = domains.list_domains(conn)
    running = [d for d in doms if d.state in ("running", "paused",
                                               "blocked")]
    disk_total, disk_used = _disk_gb(CONF.agent.instances_path)
    virt = conn.get()
    return {
        "hostname": CONF.host or socket.gethostname(),
        "vcpus": CONF.agent.reported_vcpus or os.cpu_count() or 1,
        "memory_mb": CONF.agent.reported_memory_mb or _meminfo_mb(),
        "disk_gb": CONF.agent.reported_disk_gb or disk_total,
        "vcpus_used": sum(d.vcpus for d in running),
        "memory_mb_used": sum(d.memory_mib for d in running),
        "disk_gb_used": disk_used,
        "hypervisor_type": virt.getType(),
        "libvirt_version": _version(virt.getLibVersion()),
        "qemu_version": _version(virt.getVersion()),
        "cpu_model": CONF.libvirt.cpu_model,
        "virt_type": CONF.libvirt.virt_type,
        "instances_path": CONF.agent.instances_path,
        "shared_instances_path": CONF.agent.shared_instances_path,
        "image_cache_path": CONF.agent.image_cache_path,
        "migration_address": CONF.agent.migration_address,
        "domains": [{"uuid": d.uuid, "name": d.name, "state": d.state}
                    for d in doms],
        "load": dict(load_sample(), guests=stats.domain_load(conn)),
    }


_INSTANCE_DIR = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-"
                           r"[0-9a-f]{4}-[0-9a-f]{12}(_resize|_copying)?$")


def instance_dirs(base):
    """Names of the instance directories (``<uuid>``, ``<uuid>_resize``,
    ``<uuid>_copying``) under ``base``."""
    try:
        names = os.listdir(base)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if _INSTANCE_DIR.match(n)
                  and os.path.isdir(os.path.join(base, n)))


def inventory(conn, leaving=()):
    """``host.inventory``: every domain with its state, and the instance
    directories of each storage this host has.  ``leaving``: the uuids
    whose migration away has switched over while libvirt here still
    stops the copy (marked so: the guest runs on its destination)."""
    dirs = {"local": instance_dirs(CONF.agent.instances_path)}
    if CONF.agent.shared_instances_path:
        dirs["shared"] = instance_dirs(CONF.agent.shared_instances_path)
    return {"host": CONF.host or socket.gethostname(),
            "domains": [{"uuid": d.uuid, "name": d.name, "state": d.state,
                         "leaving": d.uuid in leaving}
                        for d in domains.list_domains(conn)],
            "directories": dirs}
