"""A live migration running inside the agent, and the registry of them.

``MigrationJob`` calls ``virDomain.migrateToURI3`` in one thread while its
monitor (the job's own thread) polls ``jobStats`` every
[migration] monitor_interval and applies what ``policy.decide`` says:
downtime steps, the completion timeout, an operator's abort or
force-complete.  Jobs live in the agent, not in the controller: a
restarted controller asks ``JobRegistry.status(uuid)`` and finds the job
still running or finished.

With a ``dest_watch`` (agent.host.migration.switchover) the job is
completed at the switch-over, when the destination's libvirt runs the
guest, not when migrateToURI3 returns: libvirt's confirm phase on the
source then still stops its paused copy (about 210 ms).  ``wait`` returns
at the outcome, ``released`` once this host has let go of the domain; an
incoming migration of the same instance waits for the latter.
"""
import contextlib
import dataclasses
import logging
import re
import threading
import time

import libvirt

from agent.common import validate
from agent.common.errors import Conflict, InvalidInput, NotFound, one_line
from agent.common.rpc.methods import (ACTIVE, CANCELLED, COMPLETED, FAILED,
                                      POSTCOPY, PREPARING, QUEUED, RUNNING)
from agent.conf import CONF
from agent.host.migration import policy, switchover
from agent.hypervisor import domains

LOG = logging.getLogger(__name__)

BLOCK_FLAGS = libvirt.VIR_MIGRATE_NON_SHARED_INC | \
    libvirt.VIR_MIGRATE_NON_SHARED_DISK
# How long a completed migration waits for libvirt's job-completed event
# (delivered by the event loop, just after migrateToURI3 returns) before
# it asks for the statistics itself.
COMPLETED_EVENT_WAIT_S = 0.5
_DEST_URI = re.compile(r"^qemu(\+(tcp|tls|ssh|libssh|libssh2))?://"
                       r"[A-Za-z0-9.:\[\]@_-]*/system(\?[\x21-\x7e]*)?$")


def check_dest_uri(uri):
    """A libvirt URI of a remote QEMU system daemon, or InvalidInput."""
    if not isinstance(uri, str) or not _DEST_URI.match(uri):
        raise InvalidInput(f"not a remote libvirt URI: {uri!r}")
    return uri


class MigrationJob:
    """One outgoing live migration of ``instance_uuid`` to ``dest_uri``.

    ``flags`` and ``params`` come from ``policy.migration_flags`` and
    ``policy.migration_params``; ``opts`` are the [migration] options;
    ``on_progress(status)`` is called on every poll and status change;
    ``slots`` (a semaphore) bounds concurrent migrations (queued until one
    is free).  ``data_gb`` defaults to the guest's RAM plus the allocation
    of the disks a block migration copies.  ``dest_watch(dest_uri, uuid,
    on_event)`` returns a switchover.DestWatch or None (none: the job ends
    when migrateToURI3 returns).
    """

    def __init__(self, conn, instance_uuid, dest_uri, flags, params, *,
                 opts=None, on_progress=None, slots=None, data_gb=None,
                 dest_watch=None):
        self.conn = conn
        self.instance_uuid = validate.uuid(instance_uuid)
        self.dest_uri = check_dest_uri(dest_uri)
        self.flags = flags
        self.params = dict(params)
        self.opts = opts or CONF.migration
        self._on_progress = on_progress
        self._slots = slots
        self._data_gb = data_gb
        self._dest_watch = dest_watch
        self._lock = threading.Lock()
        self._done = threading.Event()       # the job's thread has ended
        self._settled = threading.Event()    # the outcome is known
        self._migrated = threading.Event()   # migrateToURI3 returned
        self._wake = threading.Event()       # the monitor has news
        self._switched = False
        self._dest = None                    # the DestWatch, once open
        self._watching = True
        self._event = threading.Event()
        self._event_stats = None
        self._thread = None
        self._state = policy.State()
        self._plan = None
        self._status = QUEUED
        self._reason = None
        self._error = None
        self._abort_reason = None
        self._paused = False
        self._downtime_ms = None
        self._final_downtime_ms = None
        self._progress = policy.progress({})
        self._created = time.time()
        self._started = None
        self._finished = None

    # -- operator and controller interface -------------------------------

    def start(self):
        """Run the job in a thread of its own; returns at once."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, daemon=True,
                name=f"migrate-{self.instance_uuid[:8]}")
        self._thread.start()

    @property
    def active(self):
        return self.status()["status"] in ACTIVE

    def wait(self, timeout=None):
        """Wait for the job's outcome (the switch-over, or the end); True
        once it is known."""
        return self._settled.wait(timeout)

    @property
    def leaving(self):
        """Switched over, while libvirt here still stops its copy."""
        return self._switched and not self._done.is_set()

    def released(self, timeout=None):
        """Wait until the job's thread has ended (libvirt here has let go
        of the domain); True if it has."""
        return self._done.wait(timeout)

    def abort(self):
        """Cancel the migration; the guest keeps running on the source.
        Refused once the guest runs on the destination (post-copy)."""
        with self._lock:
            if self._status not in ACTIVE:
                raise Conflict(f"migration of {self.instance_uuid} is "
                               f"{self._status}; nothing to abort")
            if self._status == POSTCOPY:
                raise Conflict(f"migration of {self.instance_uuid} is in "
                               "post-copy and can no longer be aborted")
            self._state = dataclasses.replace(self._state,
                                              abort_requested=True)
        return self.status()

    def force_complete(self):
        """Make the migration finish: switch to post-copy if it was
        permitted, else pause the guest so that the copy converges."""
        with self._lock:
            if self._status not in ACTIVE:
                raise Conflict(f"migration of {self.instance_uuid} is "
                               f"{self._status}; nothing to force")
            self._state = dataclasses.replace(self._state,
                                              force_requested=True)
        return self.status()

    def status(self):
        """A dict: status, reason, progress, applied and final downtime,
        what was forced, timestamps."""
        with self._lock:
            now = self._finished or time.time()
            return {
                "instance_uuid": self.instance_uuid,
                "status": self._status,
                "reason": self._reason,
                "dest_uri": self.dest_uri,
                "migrate_uri": self.params.get(libvirt.VIR_MIGRATE_PARAM_URI),
                "bandwidth_limit": self.params.get(
                    libvirt.VIR_MIGRATE_PARAM_BANDWIDTH) or 0,
                "flags": self.flags,
                "block_migration": bool(self.flags & BLOCK_FLAGS),
                "progress": dict(self._progress),
                "downtime_ms": self._downtime_ms,
                "final_downtime_ms": self._final_downtime_ms,
                "forced": self._state.forced,
                "abort_requested": self._state.abort_requested,
                "timeout": self._plan.timeout if self._plan else None,
                "switched_over": self._switched,
                "source_released": self._done.is_set(),
                "created_at": self._created,
                "started_at": self._started,
                "finished_at": self._finished,
                "elapsed": round(now - self._started, 3)
                if self._started else 0,
            }

    # -- the job's thread -------------------------------------------------

    def _run(self):
        try:
            if not self._take_slot():
                self._finish(CANCELLED, policy.OPERATOR_ABORT)
                return
            try:
                if self._state.abort_requested:
                    self._finish(CANCELLED, policy.OPERATOR_ABORT)
                else:
                    self._migrate_and_monitor()
            finally:
                if self._slots is not None:
                    self._slots.release()
        except Exception as err:
            LOG.exception("migration job of %s failed", self.instance_uuid)
            if not self._switched:
                self._finish(FAILED, one_line(err))
        finally:
            self._done.set()
            self._settled.set()

    def _take_slot(self):
        """Wait (queued) for a free migration slot; False if aborted
        meanwhile."""
        if self._slots is None:
            return True
        while not self._slots.acquire(timeout=self.opts.monitor_interval):
            if self._state.abort_requested:
                return False
        return True

    def _migrate_and_monitor(self):
        self._set(status=PREPARING, started=time.time())
        dom = domains.lookup(self.conn, self.instance_uuid)
        data_gb = self._data_gb or self._measure(dom)
        self._set(plan=policy.make_plan(self.flags, data_gb, self.opts))
        thread = threading.Thread(
            target=self._migrate, args=(dom,), daemon=True,
            name=f"migrate-call-{self.instance_uuid[:8]}")
        watch = _watch_completion(dom, self._completed_event)
        try:
            with self._lock:
                action, self._state = policy.before_start(self._plan,
                                                          self._state)
            self._apply(dom, action)
            started = time.monotonic()
            thread.start()
            if self._dest_watch is not None:
                # Opened aside: a destination slow to answer must not hold
                # up the monitor (its timeouts, an operator's abort).
                threading.Thread(target=self._open_watch, daemon=True,
                                 name=f"migrate-watch-"
                                 f"{self.instance_uuid[:8]}").start()
            while not self._migrated.is_set():
                self._wake.wait(self.opts.monitor_interval)
                self._wake.clear()
                if self._migrated.is_set():
                    break
                dest = self._dest
                if dest is not None and dest.seen.is_set() and \
                        not self._switched:
                    self._switch(dest)
                if not self._switched:
                    self._tick(dom, time.monotonic() - started)
            thread.join()
            self._conclude(dom, watch is not None)
        finally:
            _unwatch(dom, watch)
            with self._lock:
                self._watching, dest, self._dest = False, self._dest, None
            if dest is not None:
                dest.close()

    def _open_watch(self):
        dest = self._dest_watch(self.dest_uri, self.instance_uuid,
                                self._wake.set)
        if dest is None:
            return
        with self._lock:
            if self._watching:
                self._dest = dest
                return
        dest.close()            # the migration ended meanwhile

    def _completed_event(self, _conn, _dom, stats, _opaque):
        """libvirt's job-completed event: the finished job's statistics,
        sent by the source before it drops the domain."""
        self._event_stats = dict(stats or {})
        self._event.set()

    def _migrate(self, dom):
        called = time.monotonic()
        try:
            dom.migrateToURI3(self.dest_uri, self.params, self.flags)
            LOG.info("migration of %s: migrateToURI3 returned after %.3f s",
                     self.instance_uuid, time.monotonic() - called)
        except libvirt.libvirtError as err:
            self._error = one_line(err)
        except Exception as err:
            LOG.exception("migrateToURI3 of %s", self.instance_uuid)
            self._error = one_line(err)
        finally:
            self._migrated.set()
            self._wake.set()

    def _switch(self, dest):
        """The destination says it runs the guest: the job is completed
        (not in post-copy, whose first resume is not the end)."""
        if self._status == POSTCOPY:
            return
        try:
            final = dest.switched()
        except libvirt.libvirtError as err:
            LOG.info("migration of %s: cannot read the destination: %s",
                     self.instance_uuid, one_line(err))
            return
        if final is None:
            return
        with self._lock:
            self._final(final)
            self._switched = True
        self._finish(COMPLETED, None)
        self._settled.set()
        LOG.info("migration of %s: the guest runs on the destination; "
                 "libvirt here stops its copy", self.instance_uuid)

    def _final(self, stats):
        """Record the finished job's statistics (under the lock)."""
        if not stats:
            return
        self._progress = {
            **policy.final_progress(self._progress or {},
                                    policy.progress(stats)),
            "percent": 100, "eta": 0}
        if "downtime" in stats:
            self._final_downtime_ms = int(stats["downtime"])

    def _tick(self, dom, elapsed):
        stats = _job_stats(dom)
        with self._lock:
            if policy.job_active(stats):
                self._progress = policy.progress(stats)
                if self._status == PREPARING:
                    self._status = RUNNING
            action, self._state = policy.decide(stats, elapsed, self._plan,
                                                self._state)
        self._apply(dom, action)
        self._publish()

    def _apply(self, dom, action):
        try:
            if action.kind == policy.SET_DOWNTIME:
                dom.migrateSetMaxDowntime(action.downtime_ms, 0)
                self._set(downtime_ms=action.downtime_ms)
            elif action.kind == policy.ABORT_JOB:
                self._set(abort_reason=action.reason)
                dom.abortJob()
            elif action.kind == policy.START_POST_COPY:
                dom.migrateStartPostCopy(0)
                self._set(status=POSTCOPY)
            elif action.kind == policy.PAUSE:
                dom.suspend()
                self._set(paused=True)
        except libvirt.libvirtError as err:
            LOG.warning("migration of %s: %s failed: %s", self.instance_uuid,
                        action.kind, one_line(err))
            return
        if action.kind != policy.NOTHING:
            LOG.info("migration of %s: %s %s", self.instance_uuid,
                     action.kind, action.downtime_ms or action.reason or "")

    def _conclude(self, dom, watched=False):
        if self._switched:
            if self._error is not None:
                self._stop_stale_copy()
            return
        if self._error is None:
            final = None
            if watched and self._event.wait(COMPLETED_EVENT_WAIT_S):
                final = self._event_stats
            if not final:       # no event: ask the source, then the dest
                final = _completed_stats(dom, self.dest_uri,
                                         self.instance_uuid)
            with self._lock:
                self._final(final)
            self._finish(COMPLETED, None)
            return
        if self._paused:
            _resume_if_paused(dom)
        if self._abort_reason == policy.OPERATOR_ABORT:
            self._finish(CANCELLED, policy.OPERATOR_ABORT)
        elif self._abort_reason:
            self._finish(FAILED, f"{self._abort_reason}; migration aborted")
        else:
            self._finish(FAILED, self._error)

    def _stop_stale_copy(self):
        """libvirt here failed after the destination ran the guest (its
        confirm phase, or a lost reply that made it resume its copy).
        While the destination still runs the guest, the copy here is
        stale and must not run: stopped and undefined (no disk touched).
        Otherwise (the destination lost it meanwhile, or cannot say) the
        copy here may be the only one running: left as it is, defined,
        so that nothing removes its directory either."""
        dest = self._dest
        try:
            still = dest is not None and dest.switched() is not None
        except libvirt.libvirtError:
            still = False
        if not still:
            LOG.error("migration of %s: libvirt here failed after the "
                      "switch-over (%s) and the destination no longer "
                      "shows the guest running; the copy here is left "
                      "alone", self.instance_uuid, self._error)
            return
        LOG.error("migration of %s: the destination runs the guest but "
                  "libvirt here failed to finish (%s); stopping the copy "
                  "here", self.instance_uuid, self._error)
        try:
            domains.destroy(self.conn, self.instance_uuid)
            domains.undefine(self.conn, self.instance_uuid)
        except (libvirt.libvirtError, NotFound) as err:
            LOG.error("migration of %s: cannot stop the copy here: %s",
                      self.instance_uuid, one_line(err))

    def _measure(self, dom):
        memory = dom.info()[1] * 1024
        disk = 0
        if self.flags & BLOCK_FLAGS:
            for target in self.params.get(
                    libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS, []):
                disk += dom.blockInfo(target)[1]
        return policy.data_gb(memory, disk)

    # -- bookkeeping -------------------------------------------------------

    def _set(self, **changes):
        with self._lock:
            for key, value in changes.items():
                setattr(self, f"_{key}", value)
        if "status" in changes:
            self._publish()

    def _finish(self, status, reason):
        self._set(status=status, reason=reason, finished=time.time())
        LOG.info("migration of %s %s%s", self.instance_uuid, status,
                 f": {reason}" if reason else "")

    def _publish(self):
        if self._on_progress is None:
            return
        try:
            self._on_progress(self.status())
        except Exception:
            LOG.exception("migration progress callback failed")


class JobRegistry:
    """The agent's migration jobs by instance UUID: the finished ones stay
    until another migration of the same instance starts."""

    def __init__(self, conn, *, opts=None, on_progress=None):
        self.conn = conn
        self.opts = opts or CONF.migration
        # Only a connection with events has libvirt's event loop running.
        self._dest_watch = switchover.watch \
            if getattr(conn, "events", False) else None
        self._on_progress = on_progress
        self._slots = threading.BoundedSemaphore(self.opts.max_concurrent)
        self._jobs = {}
        self._lock = threading.Lock()

    def start(self, instance_uuid, dest_uri, migration_address, *,
              block_migration=False, shared_storage_checked=False,
              migrate_disks=(), dest_name=None, dest_xml=None,
              persistent_xml=None):
        """Start migrating ``instance_uuid`` to ``dest_uri`` (its memory
        stream to ``migration_address``) and return the job's status.
        Idempotent: a migration of the instance that is still running is
        returned as it is (Conflict if it goes elsewhere)."""
        instance_uuid = validate.uuid(instance_uuid)
        check_dest_uri(dest_uri)
        qemu = self.conn.call(libvirt.virConnect.getVersion)
        refusal = policy.emulator_refusal(
            CONF.libvirt.virt_type, qemu,
            self.opts.permit_tcg_dirty_page_loss)
        if refusal:
            raise Conflict(refusal)
        flags = policy.migration_flags(
            block_migration, shared_storage_checked,
            permit_auto_converge=self.opts.permit_auto_converge,
            permit_post_copy=self.opts.permit_post_copy)
        params = policy.migration_params(
            migration_address, bandwidth=self.opts.bandwidth,
            migrate_disks=migrate_disks if block_migration else (),
            dest_name=dest_name, dest_xml=dest_xml,
            persistent_xml=persistent_xml)
        return self.add(MigrationJob(
            self.conn, instance_uuid, dest_uri, flags, params,
            opts=self.opts, on_progress=self._on_progress,
            slots=self._slots, dest_watch=self._dest_watch)).status()

    def add(self, job):
        """Register and start ``job`` unless the instance already has an
        active one, which is returned instead."""
        with self._lock:
            current = self._jobs.get(job.instance_uuid)
            if current is not None and current.active:
                if current.dest_uri != job.dest_uri:
                    raise Conflict(
                        f"instance {job.instance_uuid} is already migrating "
                        f"to {current.dest_uri}")
                return current
            self._jobs[job.instance_uuid] = job
        job.start()
        return job

    def leaving(self):
        """The uuids whose migration from here has switched over while
        libvirt here still stops the copy."""
        with self._lock:
            jobs = list(self._jobs.values())
        return {job.instance_uuid for job in jobs if job.leaving}

    def get(self, instance_uuid):
        """The latest MigrationJob of the instance, or NotFound."""
        uuid = validate.uuid(instance_uuid)
        with self._lock:
            job = self._jobs.get(uuid)
        if job is None:
            raise NotFound(f"no migration of instance {uuid} on this host")
        return job

    def status(self, instance_uuid):
        return self.get(instance_uuid).status()

    def abort(self, instance_uuid):
        return self.get(instance_uuid).abort()

    def force_complete(self, instance_uuid):
        return self.get(instance_uuid).force_complete()

    def list(self):
        """Status of every job held."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [job.status() for job in jobs]


def _watch_completion(dom, callback):
    """Register ``callback`` for the domain's job-completed event; the
    callback id, or None when events cannot be had (no event loop)."""
    try:
        return dom.connect().domainEventRegisterAny(
            dom, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, callback, None)
    except (libvirt.libvirtError, AttributeError, TypeError) as err:
        LOG.debug("no job-completed event: %s", one_line(err))
        return None


def _unwatch(dom, watch):
    if watch is None:
        return
    with contextlib.suppress(libvirt.libvirtError, AttributeError):
        dom.connect().domainEventDeregisterAny(watch)


def _job_stats(dom):
    try:
        return dom.jobStats(0)
    except libvirt.libvirtError as err:
        LOG.debug("jobStats: %s", one_line(err))
        return {}


def _completed_stats(dom, dest_uri, instance_uuid):
    """Statistics of the finished migration: from the source if it still
    knows the domain, else from the destination; {} if neither does."""
    flags = libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED
    with contextlib.suppress(libvirt.libvirtError):
        stats = dom.jobStats(flags)
        if stats.get("type") == libvirt.VIR_DOMAIN_JOB_COMPLETED:
            return stats
    try:
        dest = libvirt.open(dest_uri)
    except libvirt.libvirtError as err:
        LOG.debug("no completed job stats from %s: %s", dest_uri,
                  one_line(err))
        return {}
    try:
        stats = dest.lookupByUUIDString(instance_uuid).jobStats(flags)
        if stats.get("type") == libvirt.VIR_DOMAIN_JOB_COMPLETED:
            return stats
    except libvirt.libvirtError as err:
        LOG.debug("no completed job stats from %s: %s", dest_uri,
                  one_line(err))
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            dest.close()
    return {}


def _resume_if_paused(dom):
    """Resume a guest the monitor paused, after the migration failed."""
    try:
        if dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED:
            dom.resume()
    except libvirt.libvirtError as err:
        LOG.warning("cannot resume %s after a failed migration: %s",
                    dom.UUIDString(), one_line(err))
