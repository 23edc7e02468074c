"""What a migration prediction needs from the source host, measured now:
the guest's memory, how much of it is not zero, its dirty rate, the disk
data a block migration would copy, and this agent's [migration] policy
(the agent's monitor enforces it, so the prediction must model it).

The dirty rate is libvirt's dirty-rate calculation
(``virDomainStartDirtyRateCalc``, ``virsh domdirtyrate-calc``) in
page-sampling mode, the only mode used: with QEMU 7.2 under TCG (the
lab's), the dirty-bitmap mode killed the guest's QEMU ("Unable to read
from monitor: Connection reset by peer"), and on QEMU 10 it reads 0
under TCG; dirty-ring needs KVM.  Page sampling hashes a sample of pages
at the start and the end of the period: it counts the distinct pages
changed in the period, so the figure is also the least working set the
guest rewrites per period.

QEMU samples 512 pages per GiB, 128 for a 256 MiB guest: too few.  The
lab guest rewriting 16 MiB/s read 8 to 31 MiB/s in eight calculations
(standard deviation 6), and near a bandwidth cap that flips the verdict.
So while libvirt calculates, the agent takes a larger sample of its own
over the same period: ``SAMPLE_CHUNKS`` evenly spread peeks of guest
physical memory (``virDomainMemoryPeek``, 64 KiB, 16 pages each: 2,048
pages) at the start and again one period later; the pages that differ
give a second estimate (the same guest: 17.2 MiB/s, deviation 1.0; at 4,
8 and 64 MiB/s, 4.3, 10.4 and 65.5 against libvirt's 4, 9 and 80 with
deviations 2.3, 6.6 and 7.8).  The rate reported is the two pooled by
their page counts.  The first peeks also give the memory that is not
zero: zero pages cost QEMU almost nothing to send, so what the first
pre-copy round sends is the rest.
"""
import time

import libvirt

from agent.common.errors import DroverError, InvalidInput, one_line
from agent.hypervisor import domains

PEEK_BYTES = 64 * 1024
PAGE = 4096
SAMPLE_CHUNKS = 128
# QEMU's page-sampling default (calc-dirty-rate's sample-pages), per GiB.
QEMU_SAMPLE_PAGES_PER_GIB = 512
MiB = 1 << 20
GiB = 1 << 30
POLICY_OPTS = ("downtime", "downtime_max", "downtime_steps",
               "downtime_delay", "completion_timeout", "timeout_action",
               "permit_auto_converge", "permit_post_copy", "bandwidth",
               "monitor_interval")


def measure(conn, uuid, disk_targets=(), seconds=1, opts=None):
    """The prediction's inputs for the running guest ``uuid``: a dict of
    memory_bytes, resident_bytes, dirty_bytes_per_s (pooled, see the
    module's docstring; libvirt_dirty_bytes_per_s and
    sampled_dirty_bytes_per_s are its two parts), calc_seconds,
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
        first = snapshot(dom, memory)
        time.sleep(max(0.0, started + seconds - time.monotonic()))
        again = time.monotonic()
        second = snapshot(dom, memory)
        libvirt_rate = _dirty_rate(dom, started + seconds)
        disk = sum(dom.blockInfo(t)[1] for t in disk_targets)
    except libvirt.libvirtError as err:
        raise DroverError(f"measuring instance {uuid}: {one_line(err)}") \
            from None
    sampled = sampled_rate(first, second, memory, again - started)
    return {"memory_bytes": memory,
            "resident_bytes": resident_bytes(first, memory),
            "dirty_bytes_per_s": pooled_rate(libvirt_rate, sampled, memory,
                                             len(first)),
            "libvirt_dirty_bytes_per_s": libvirt_rate,
            "sampled_dirty_bytes_per_s": sampled,
            "calc_seconds": seconds, "disk_bytes": disk,
            "policy": {k: getattr(opts, k) for k in POLICY_OPTS}
            if opts is not None else None}


def snapshot(dom, memory):
    """Guest physical memory at ``SAMPLE_CHUNKS`` evenly spread places,
    as pages (bytes of PAGE each), in address order."""
    stride = max(memory // SAMPLE_CHUNKS, PEEK_BYTES)
    pages = []
    for offset in range((stride - PEEK_BYTES) // 2,
                        memory - PEEK_BYTES + 1, stride):
        chunk = dom.memoryPeek(offset, PEEK_BYTES, libvirt.VIR_MEMORY_PHYSICAL)
        pages += [chunk[at:at + PAGE] for at in range(0, len(chunk), PAGE)]
    return pages


def resident_bytes(pages, memory):
    """Bytes of guest memory that are not zero, from a snapshot."""
    zero = bytes(PAGE)
    if not pages:
        return memory
    return int(memory * sum(p != zero for p in pages) / len(pages))


def sampled_rate(first, second, memory, seconds):
    """Bytes per second of distinct pages changed between two snapshots
    taken ``seconds`` apart."""
    if not first or seconds <= 0:
        return 0
    changed = sum(a != b for a, b in zip(first, second, strict=True))
    return int(memory * changed / len(first) / seconds)


def pooled_rate(libvirt_rate, sampled, memory, sampled_pages):
    """libvirt's and the agent's estimates of the same fraction of pages,
    weighted by how many pages each sampled."""
    qemu_pages = max(1, QEMU_SAMPLE_PAGES_PER_GIB * memory // GiB)
    return int((libvirt_rate * qemu_pages + sampled * sampled_pages)
               / (qemu_pages + sampled_pages))


def _dirty_rate(dom, ready_at):
    """Bytes per second from libvirt's finished calculation."""
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
