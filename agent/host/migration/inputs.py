"""What a migration prediction needs from the source host, measured now:
the guest's memory, how much of it is not zero, its dirty rate, the disk
data a block migration would copy, and this agent's [migration] policy
(the agent's monitor enforces it, so the prediction must model it).

The dirty rate is libvirt's dirty-rate calculation
(``virDomainStartDirtyRateCalc``, ``virsh domdirtyrate-calc``) in
page-sampling mode, the only mode used: with QEMU 7.2 under TCG (the
lab's), the dirty-bitmap mode killed the guest's QEMU ("Unable to read
from monitor: Connection reset by peer") and dirty-ring needs KVM.
Page sampling hashes a sample of pages (512 per GiB) at the start and the
end of the period: it counts the distinct pages changed in the period, so
the figure is also the least working set the guest rewrites per period.

Zero pages cost QEMU almost nothing to send, so what the first pre-copy
round sends is the memory that is not zero: estimated from
``RESIDENT_SAMPLES`` evenly spread peeks of guest physical memory
(``virDomainMemoryPeek``, 64 KiB each), taken while the dirty-rate
calculation runs.
"""
import time

import libvirt

from agent.common.errors import DroverError, InvalidInput, one_line
from agent.hypervisor import domains

PEEK_BYTES = 64 * 1024
PAGE = 4096
RESIDENT_SAMPLES = 48
MiB = 1 << 20
POLICY_OPTS = ("downtime", "downtime_max", "downtime_steps",
               "downtime_delay", "completion_timeout", "timeout_action",
               "permit_auto_converge", "permit_post_copy", "bandwidth",
               "monitor_interval")


def measure(conn, uuid, disk_targets=(), seconds=1, opts=None):
    """The prediction's inputs for the running guest ``uuid``: a dict of
    memory_bytes, resident_bytes, dirty_bytes_per_s, calc_seconds,
    disk_bytes (allocation of ``disk_targets``) and policy (this agent's
    [migration] values)."""
    if not isinstance(seconds, int) or not 1 <= seconds <= 10:
        raise InvalidInput(f"dirty-rate period must be 1..10 s, not "
                           f"{seconds!r}")
    dom = domains.lookup(conn, uuid)
    try:
        if not dom.isActive():
            raise InvalidInput(f"instance {uuid} is not running")
        memory = dom.info()[1] * 1024
        started = time.monotonic()
        dom.startDirtyRateCalc(
            seconds, libvirt.VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING)
        resident = resident_bytes(dom, memory)
        dirty = _dirty_rate(dom, started + seconds)
        disk = sum(dom.blockInfo(t)[1] for t in disk_targets)
    except libvirt.libvirtError as err:
        raise DroverError(f"measuring instance {uuid}: {one_line(err)}") \
            from None
    return {"memory_bytes": memory, "resident_bytes": resident,
            "dirty_bytes_per_s": dirty, "calc_seconds": seconds,
            "disk_bytes": disk,
            "policy": {k: getattr(opts, k) for k in POLICY_OPTS}
            if opts is not None else None}


def resident_bytes(dom, memory):
    """Bytes of guest memory that are not zero, from evenly spread
    samples of its physical memory."""
    stride = max(memory // RESIDENT_SAMPLES, PEEK_BYTES)
    zero = bytes(PAGE)
    pages = nonzero = 0
    for offset in range(stride // 2, memory - PEEK_BYTES + 1, stride):
        chunk = dom.memoryPeek(offset, PEEK_BYTES, libvirt.VIR_MEMORY_PHYSICAL)
        for at in range(0, len(chunk), PAGE):
            pages += 1
            nonzero += chunk[at:at + PAGE] != zero
    return int(memory * nonzero / pages) if pages else memory


def _dirty_rate(dom, ready_at):
    """Bytes per second from the finished calculation."""
    time.sleep(max(0.0, ready_at - time.monotonic()))
    deadline = time.monotonic() + 10
    while True:
        stats = dom.connect().domainListGetStats(
            [dom], libvirt.VIR_DOMAIN_STATS_DIRTYRATE)[0][1]
        if stats.get("dirtyrate.calc_status") == \
                libvirt.VIR_DOMAIN_DIRTYRATE_MEASURED:
            return int(stats.get("dirtyrate.megabytes_per_second", 0)) * MiB
        if time.monotonic() > deadline:
            raise DroverError("libvirt's dirty-rate calculation did not "
                              "finish")
        time.sleep(0.1)
