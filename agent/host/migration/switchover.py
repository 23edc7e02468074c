"""The switch-over of a live migration, seen from its source.

libvirt's peer-to-peer migration returns from migrateToURI3 only once its
confirm phase has stopped the source's paused copy, and libvirt stops a
QEMU process by sending SIGTERM and looking again 200 ms later
(virProcessKillPainfullyDelay).  Every move so spent about 210 ms after
its guest already ran on the destination: a third of a small guest's
migration on the lab, waited for by virsh and, until now, by drover.

The destination's libvirt says when the guest runs there.  At the end of
its Finish phase, after it has made the domain persistent and QEMU has
received everything, it starts the guest's CPUs with the running reason
MIGRATED and sends a RESUMED/MIGRATED lifecycle event.  From there on it
does not fail the migration any more; the source only stops its copy.
Post-copy differs: its first resume (detail POSTCOPY) comes while the
source still holds memory, and the job is not treated as switched then.

``DestWatch`` opens a connection of its own to the destination's libvirt
(the URI the migration itself uses) and listens for that event for one
domain.  ``switched()`` then reads the domain's state there; nothing here
changes a domain.
"""
import contextlib
import logging
import threading
import time

import libvirt

from agent.common.errors import one_line
from agent.hypervisor import connection

LOG = logging.getLogger(__name__)

# The destination records the finished job's statistics just after it
# starts the guest's CPUs: how long to look for them.
STATS_TRIES = 10
STATS_RETRY_S = 0.005


class DestWatch:
    """The destination's lifecycle events for one domain; ``seen`` is set
    (and ``on_event`` called, in libvirt's event thread) on its
    RESUMED/MIGRATED."""

    def __init__(self, dest_uri, instance_uuid, on_event):
        self.instance_uuid = instance_uuid
        self.seen = threading.Event()
        self._on_event = on_event
        self._conn = libvirt.open(dest_uri)
        try:
            self._id = self._conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event,
                None)
        except libvirt.libvirtError:
            self._conn.close()
            raise

    def _event(self, _conn, dom, event, detail, _opaque):
        if event == libvirt.VIR_DOMAIN_EVENT_RESUMED and \
                detail == libvirt.VIR_DOMAIN_EVENT_RESUMED_MIGRATED and \
                dom.UUIDString() == self.instance_uuid:
            self.seen.set()
            self._on_event()

    def switched(self):
        """The finished job's statistics (maybe {}) when the destination
        runs the guest as a completed migration started it (running,
        reason MIGRATED); None otherwise."""
        dom = self._conn.lookupByUUIDString(self.instance_uuid)
        state, reason = dom.state()
        if state != libvirt.VIR_DOMAIN_RUNNING or \
                reason != libvirt.VIR_DOMAIN_RUNNING_MIGRATED:
            return None
        for _ in range(STATS_TRIES):
            stats = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
            if stats.get("type") == libvirt.VIR_DOMAIN_JOB_COMPLETED:
                return stats
            time.sleep(STATS_RETRY_S)
        return {}

    def close(self):
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.domainEventDeregisterAny(self._id)
        with contextlib.suppress(libvirt.libvirtError):
            self._conn.close()


def watch(dest_uri, instance_uuid, on_event):
    """A DestWatch, or None when the destination cannot be watched (no
    event loop in this process, or its libvirt refused us): the migration
    is then over when migrateToURI3 returns, as with virsh."""
    if not connection.event_loop_running():
        return None
    try:
        return DestWatch(dest_uri, instance_uuid, on_event)
    except libvirt.libvirtError as err:
        LOG.info("migration of %s: not watching %s: %s", instance_uuid,
                 dest_uri, one_line(err))
        return None
