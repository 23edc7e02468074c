"""Live migration in the agent: the RPC methods the controller calls on
the source and destination hosts.

Source: ``migration.start|status|wait|abort|force_complete|list`` wrap the
JobRegistry (the job and its monitor keep running if the controller goes
away; progress is published as "migration.progress" events),
``live.disk_facts`` describes the disks a block migration recreates,
``live.cleanup_source`` removes the local instance directory once the
guest has left.  Both it and ``live.prepare_dest`` first wait until an
outgoing migration of the instance from this host has let go of its
copy (a job is completed at the switch-over, before libvirt here has
stopped the paused copy).  Destination: ``live.prepare_dest``
(instance directory, block-migration disks, bridge check),
``live.cleanup_dest`` after a failure.  The shared-storage test is
agent.host.storage's.
"""
import logging
import os
import threading
import time
import xml.etree.ElementTree as ET

from agent.common import disk, validate
from agent.common.errors import Conflict, DroverError, NotFound
from agent.conf import CONF
from agent.host import instances
from agent.host.migration import dest_cleanup, inputs
from agent.host.migration import job as jobmod
from agent.hypervisor import domains

LOG = logging.getLogger(__name__)
# How long the destination's clean-up lets libvirt remove its own incoming
# domain after a failed migration before destroying it.
INCOMING_WAIT_S = 15
POLL_S = 0.5
# How long an incoming migration (or the source's clean-up) waits for an
# outgoing one of the same instance to let go of its copy here: libvirt's
# confirm phase, about 210 ms after the switch-over.
RELEASE_WAIT_S = 30


def dest_uri(address):
    """The destination daemon's libvirt URI from [migration]
    dest_uri_template."""
    return jobmod.check_dest_uri(
        CONF.migration.dest_uri_template.format(address=address))


def disk_targets(xml):
    """Targets (vda, ...) of the file-backed disks in a domain's XML."""
    root = ET.fromstring(xml)
    out = []
    for d in root.findall("./devices/disk"):
        if d.get("device", "disk") != "disk" or d.find("source") is None \
                or d.find("source").get("file") is None:
            continue
        out.append(d.find("target").get("dev"))
    return out


class Live:
    """Bound to the agent's libvirt connection and RPC server."""

    def __init__(self, conn, server, guard=None):
        self.conn = conn
        self.guard = guard      # raises when no guest may start here
        self.server = server
        self.jobs = jobmod.JobRegistry(conn, on_progress=self._progress)
        self._tags = {}         # instance uuid -> migration uuid
        self._lock = threading.Lock()

    def _progress(self, status):
        self.server.publish("migration.progress", self._tag(status))

    def _tag(self, status):
        with self._lock:
            return dict(status, migration_uuid=self._tags.get(
                status["instance_uuid"]))

    # -- source -----------------------------------------------------------

    def start(self, uuid, dest_address, migration_address,
              migration_uuid, block_migration=False,
              shared_storage_checked=False):
        """Start (or find running) the migration ``migration_uuid``."""
        validate.uuid(migration_uuid)
        disks = ()
        if block_migration:
            disks = disk_targets(domains.get_xml(self.conn, uuid))
        with self._lock:
            current = self._tags.get(uuid)
        if current == migration_uuid:
            return self._tag(self.jobs.status(uuid))
        status = self.jobs.start(
            uuid, dest_uri(dest_address), migration_address,
            block_migration=block_migration,
            shared_storage_checked=shared_storage_checked,
            migrate_disks=disks)
        with self._lock:
            self._tags[uuid] = migration_uuid
        return self._tag(status)

    def status(self, uuid):
        return self._tag(self.jobs.status(uuid))

    def wait(self, uuid, wait_s=5.0):
        """The job's status once it has finished, or after ``wait_s``."""
        self.jobs.get(uuid).wait(min(float(wait_s), 60.0))
        return self.status(uuid)

    def abort(self, uuid):
        return self._tag(self.jobs.abort(uuid))

    def force_complete(self, uuid):
        return self._tag(self.jobs.force_complete(uuid))

    def list(self):
        return [self._tag(s) for s in self.jobs.list()]

    def inputs(self, uuid, block_migration=False, seconds=1):
        """A prediction's inputs (agent.host.migration.inputs)."""
        targets = disk_targets(domains.get_xml(self.conn, uuid)) \
            if block_migration else ()
        return inputs.measure(self.conn, uuid, targets, int(seconds),
                              CONF.migration)

    def disk_facts(self, uuid, storage):
        """Size and backing file of the instance's disk, and the disk
        targets a block migration copies."""
        d = instances.idir(uuid, storage)
        info = disk.info(str(d.disk), d.disk_format())
        return {"virtual_size": info.virtual_size, "format": info.format,
                "backing_file": info.backing_file,
                "backing_format": info.backing_format,
                "targets": disk_targets(domains.get_xml(self.conn, uuid))}

    def cleanup_source(self, uuid, storage):
        """After the guest left: its local instance directory goes."""
        self._released(uuid)
        if domains.exists(self.conn, uuid):
            raise Conflict(f"instance {uuid} is still defined on this host")
        if storage != "local":
            return {"removed": False}
        return {"removed": instances.idir(uuid, storage).remove()}

    # -- destination ------------------------------------------------------

    def prepare_dest(self, uuid, storage, block_migration=False,
                     disk_facts=None):
        """Instance directory; for block migration an empty qcow2 disk of
        the source's virtual size over the same backing file; the guest
        bridge present.  Refused on a self-fenced host (a guest would
        start here)."""
        if self.guard is not None:
            self.guard(uuid)
        self._released(uuid)
        bridge = CONF.agent.bridge
        if not os.path.isdir(f"/sys/class/net/{bridge}/bridge"):
            raise DroverError(f"guest bridge {bridge} is missing on "
                              f"{CONF.host or 'this host'}")
        if domains.exists(self.conn, uuid):
            raise Conflict(f"instance {uuid} is already defined on this "
                           "host")
        d = instances.idir(uuid, storage)
        if not block_migration:
            if not d.disk.exists():
                raise DroverError(f"the disk of {uuid} is not visible here "
                                  f"({d.disk}): storage is not shared")
            return {"path": str(d.path), "created": False}
        facts = disk_facts or {}
        backing = facts.get("backing_file")
        if backing and not os.path.exists(backing):
            raise DroverError(f"backing file {backing} is missing here")
        created = d.create()
        disk.create(str(d.disk), size=facts["virtual_size"], fmt="qcow2",
                    backing_file=backing,
                    backing_format=facts.get("backing_format"))
        d.set_disk_format("qcow2")
        return {"path": str(d.path), "created": created}

    def _released(self, uuid):
        """Wait until an outgoing migration of ``uuid`` from here (if any)
        has let go of its copy; Conflict after RELEASE_WAIT_S."""
        try:
            job = self.jobs.get(uuid)
        except NotFound:
            return
        if not job.released(RELEASE_WAIT_S):
            raise Conflict(f"instance {uuid}: libvirt here is still "
                           "stopping its copy after migrating it away")

    def cleanup_dest(self, uuid, storage, source_state=None):
        """After a failed or aborted migration: libvirt's incoming copy
        and the destination's instance directory go, as
        dest_cleanup.decide allows given the source's domain state
        (read by the controller once the job has ended).  libvirt's own
        removal of its incoming domain is waited for first
        (INCOMING_WAIT_S); a domain still there then is destroyed."""
        deadline = time.monotonic() + INCOMING_WAIT_S
        while True:
            dest = domains.state(self.conn, uuid)
            plan = dest_cleanup.decide(dest, source_state, storage)
            if plan.refuse:
                raise Conflict(f"instance {uuid}: {plan.refuse}")
            if not plan.destroy or time.monotonic() >= deadline:
                break
            time.sleep(POLL_S)
        destroyed = plan.destroy and domains.destroy(self.conn, uuid)
        if plan.undefine:
            domains.undefine(self.conn, uuid)
        removed = plan.remove_dir and instances.idir(uuid, storage).remove()
        LOG.info("instance %s: destination cleaned up (domain %s%s, "
                 "directory %s)", uuid, dest, ", destroyed" if destroyed
                 else "", "removed" if removed else "kept")
        return {"removed": bool(removed), "destroyed": bool(destroyed),
                "domain": list(dest) if dest else None}

    def register(self, server):
        server.register_group("migration", self)
        server.register_group("live", self)


def register(server, conn, guard=None):
    """Register the live-migration methods; returns the Live."""
    out = Live(conn, server, guard)
    out.register(server)
    return out
