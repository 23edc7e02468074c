"""MigrationJob and JobRegistry against a fake libvirt domain whose
migration progresses as it is polled."""
import threading
import types

import libvirt
import pytest

from agent.common.errors import Conflict, InvalidInput, NotFound
from agent.host.migration import job as jobmod
from agent.host.migration import policy

UUID = "5a1d7c1e-3b7f-4a5e-9c43-0f2b1d9e8a01"
DEST = "qemu+tcp://198.18.64.12/system"
MiB = 2 ** 20


def _error(message, code=libvirt.VIR_ERR_OPERATION_FAILED):
    err = libvirt.libvirtError(message)
    err.err = (code, libvirt.VIR_FROM_QEMU, message, 2, None, None, None,
               0, 0)
    return err


class FakeDomain:
    """A running guest: its migration sends 100 MiB per poll of 400 MiB,
    unless ``converge`` is False (the guest dirties memory as fast), in
    which case only post-copy or a pause finishes it."""

    def __init__(self, converge=True, fail_with=None):
        self.converge = converge
        self.fail_with = fail_with
        self.calls = []
        self.remaining = 400 * MiB
        self.started = threading.Event()
        self.finished = threading.Event()
        self.aborted = False
        self.paused = False

    def UUIDString(self):
        return UUID

    def blockInfo(self, target):
        return [128 * MiB, 1024 * MiB, 1024 * MiB]

    def info(self):
        return [libvirt.VIR_DOMAIN_RUNNING, 262144, 262144, 1, 0]

    def state(self):
        return [libvirt.VIR_DOMAIN_PAUSED if self.paused
                else libvirt.VIR_DOMAIN_RUNNING, 0]

    def migrateToURI3(self, uri, params, flags):
        self.calls.append(("migrate", uri, params, flags))
        if self.fail_with:
            raise _error(self.fail_with)
        self.started.set()
        if not self.finished.wait(10):
            raise AssertionError("the fake migration never finished")
        if self.aborted:
            raise _error("operation aborted: migration out job: canceled "
                         "by client", libvirt.VIR_ERR_OPERATION_ABORTED)

    def jobStats(self, flags=0):
        if flags == libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED:
            if self.finished.is_set() and not self.aborted:
                return {"type": libvirt.VIR_DOMAIN_JOB_COMPLETED,
                        "downtime": 42, "data_total": 400 * MiB,
                        "data_processed": 400 * MiB, "data_remaining": 0}
            raise _error("no domain", libvirt.VIR_ERR_NO_DOMAIN)
        if not self.started.is_set() or self.finished.is_set():
            return {"type": libvirt.VIR_DOMAIN_JOB_NONE}
        if self.converge:
            self.remaining = max(self.remaining - 100 * MiB, 0)
            if not self.remaining:
                self.finished.set()
        return {"type": libvirt.VIR_DOMAIN_JOB_UNBOUNDED,
                "data_total": 400 * MiB, "data_remaining": self.remaining,
                "data_processed": 400 * MiB - self.remaining,
                "memory_total": 400 * MiB, "memory_bps": 100 * MiB,
                "memory_iteration": 1}

    def migrateSetMaxDowntime(self, ms, flags):
        self.calls.append(("downtime", ms))

    def abortJob(self):
        self.calls.append(("abort",))
        self.aborted = True
        self.finished.set()

    def migrateStartPostCopy(self, flags):
        self.calls.append(("postcopy",))
        self.finished.set()

    def suspend(self):
        self.calls.append(("suspend",))
        self.paused = True
        self.finished.set()

    def resume(self):
        self.calls.append(("resume",))
        self.paused = False

    def kinds(self):
        return [c[0] for c in self.calls]


class Hypervisor:
    """The source's libvirt connection as the registry sees it."""

    def __init__(self, version=10_000_002):
        self.version = version

    def call(self, fn):
        assert fn is libvirt.virConnect.getVersion
        return self.version


def _opts(**kw):
    values = dict(downtime=50, downtime_max=500, downtime_steps=2,
                  downtime_delay=0, completion_timeout=0,
                  timeout_action="abort", permit_auto_converge=False,
                  permit_post_copy=False, bandwidth=0,
                  monitor_interval=0.01, max_concurrent=1,
                  permit_tcg_dirty_page_loss=False)
    values.update(kw)
    return types.SimpleNamespace(**values)


@pytest.fixture(autouse=True)
def no_destination(mocker):
    """The destination libvirtd (asked for completed job statistics) is
    unreachable."""
    return mocker.patch.object(jobmod.libvirt, "open",
                               side_effect=_error("cannot connect"))


@pytest.fixture
def dom(mocker):
    fake = FakeDomain()
    mocker.patch.object(jobmod.domains, "lookup", return_value=fake)
    return fake


def _job(flags=None, opts=None, events=None, **kw):
    flags = flags if flags is not None else policy.migration_flags(False, True)
    params = policy.migration_params("198.18.64.12")
    return jobmod.MigrationJob(
        object(), UUID, DEST, flags, params, opts=opts or _opts(),
        on_progress=events.append if events is not None else None,
        data_gb=1, **kw)


def _run(job):
    job.start()
    assert job.wait(10)
    return job.status()


def test_migration_completes_with_progress_and_final_downtime(dom):
    events = []
    status = _run(_job(events=events))
    assert status["status"] == jobmod.COMPLETED
    assert status["reason"] is None
    assert status["final_downtime_ms"] == 42
    assert status["progress"]["percent"] == 100
    assert status["migrate_uri"] == "tcp://198.18.64.12"
    assert status["bandwidth_limit"] == 0       # ran with no cap
    migrate = _migrate_call(dom)
    assert migrate[1:3] == (DEST, {"migrate_uri": "tcp://198.18.64.12"})
    assert migrate[3] & libvirt.VIR_MIGRATE_UNSAFE
    seen = [e["status"] for e in events]
    assert seen[0] == jobmod.PREPARING and seen[-1] == jobmod.COMPLETED
    assert jobmod.RUNNING in seen
    running = [e["progress"]["percent"] for e in events
               if e["status"] == jobmod.RUNNING]
    assert running == sorted(running) and running[0] > 0


def _migrate_call(dom):
    return next(c for c in dom.calls if c[0] == "migrate")


def test_first_downtime_step_holds_from_the_start(dom):
    """Set before migrateToURI3, not at the monitor's first poll (until
    then QEMU's own 300 ms would hold)."""
    _run(_job(opts=_opts(downtime_delay=0.2)))
    assert dom.calls[0] == ("downtime", 50)
    assert dom.calls.index(_migrate_call(dom)) == 1


def test_downtime_steps_reach_the_maximum(dom):
    dom.converge = False
    job = _job(opts=_opts(downtime_delay=0.2))
    job.start()
    assert dom.started.wait(5)
    for _ in range(200):
        if ("downtime", 500) in dom.calls:
            break
        threading.Event().wait(0.01)
    job.force_complete()
    assert job.wait(10)
    assert [c[1] for c in dom.calls if c[0] == "downtime"] == [50, 275, 500]
    assert job.status()["downtime_ms"] == 500


def test_failing_migration_reports_libvirt_reason(dom):
    dom.fail_with = ("Unsafe migration: Migration without shared storage "
                     "is unsafe\nmore detail")
    status = _run(_job())
    assert status["status"] == jobmod.FAILED
    assert status["reason"] == ("Unsafe migration: Migration without "
                                "shared storage is unsafe")


def test_missing_domain_fails_the_job(mocker):
    mocker.patch.object(jobmod.domains, "lookup",
                        side_effect=NotFound(f"no domain with UUID {UUID}"))
    status = _run(_job())
    assert status["status"] == jobmod.FAILED
    assert "no domain" in status["reason"]


def test_operator_abort_cancels_and_guest_stays(dom):
    dom.converge = False
    job = _job()
    job.start()
    assert dom.started.wait(5)
    job.abort()
    assert job.wait(10)
    status = job.status()
    assert status["status"] == jobmod.CANCELLED
    assert status["reason"] == policy.OPERATOR_ABORT
    assert "abort" in dom.kinds() and "postcopy" not in dom.kinds()


def test_force_complete_switches_to_post_copy_when_permitted(dom):
    dom.converge = False
    flags = policy.migration_flags(False, True, permit_post_copy=True)
    events = []
    job = _job(flags=flags, events=events)
    job.start()
    assert dom.started.wait(5)
    job.force_complete()
    assert job.wait(10)
    assert job.status()["status"] == jobmod.COMPLETED
    assert job.status()["forced"] == policy.START_POST_COPY
    assert "postcopy" in dom.kinds() and "suspend" not in dom.kinds()
    assert jobmod.POSTCOPY in [e["status"] for e in events]


def test_force_complete_pauses_without_post_copy(dom):
    dom.converge = False
    job = _job()
    job.start()
    assert dom.started.wait(5)
    job.force_complete()
    assert job.wait(10)
    assert job.status()["status"] == jobmod.COMPLETED
    assert "suspend" in dom.kinds() and "postcopy" not in dom.kinds()


def test_timeout_aborts_and_says_so(dom):
    dom.converge = False
    status = _run(_job(opts=_opts(completion_timeout=0.1)))
    assert status["status"] == jobmod.FAILED
    assert status["reason"] == ("completion timeout of 0.1 s reached; "
                                "migration aborted")
    assert "abort" in dom.kinds()


def test_timeout_force_completes_with_post_copy(dom):
    dom.converge = False
    flags = policy.migration_flags(False, True, permit_post_copy=True)
    status = _run(_job(flags=flags, opts=_opts(
        completion_timeout=0.1, timeout_action="force_complete")))
    assert status["status"] == jobmod.COMPLETED
    assert "postcopy" in dom.kinds() and "abort" not in dom.kinds()


def test_paused_guest_is_resumed_when_the_migration_fails(dom):
    dom.converge = False
    job = _job()
    job.start()
    assert dom.started.wait(5)
    # The pause does not help; then the operator aborts.
    dom.suspend = lambda: (dom.calls.append(("suspend",)),
                           setattr(dom, "paused", True))
    job.force_complete()
    for _ in range(500):
        if dom.paused:
            break
        threading.Event().wait(0.01)
    job.abort()
    assert job.wait(10)
    assert job.status()["status"] == jobmod.CANCELLED
    assert dom.kinds()[-2:] == ["abort", "resume"]
    assert not dom.paused


def _into_post_copy(dom, job):
    """Force-complete into post-copy, which the fake then keeps running
    until ``dom.finished`` is set."""
    dom.migrateStartPostCopy = lambda flags: dom.calls.append(("postcopy",))
    job.force_complete()
    for _ in range(500):
        if job.status()["status"] == jobmod.POSTCOPY:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the job never went into post-copy")


def test_abort_refused_in_post_copy_and_after_the_end(dom):
    dom.converge = False
    flags = policy.migration_flags(False, True, permit_post_copy=True)
    job = _job(flags=flags)
    job.start()
    assert dom.started.wait(5)
    _into_post_copy(dom, job)
    with pytest.raises(Conflict, match="post-copy"):
        job.abort()
    dom.finished.set()
    assert job.wait(10)
    with pytest.raises(Conflict, match="completed"):
        job.abort()
    with pytest.raises(Conflict, match="completed"):
        job.force_complete()


def test_progress_callback_errors_do_not_stop_the_job(dom):
    def broken(_status):
        raise RuntimeError("controller gone")
    job = jobmod.MigrationJob(
        object(), UUID, DEST, policy.migration_flags(False, True),
        policy.migration_params("198.18.64.12"), opts=_opts(),
        on_progress=broken, data_gb=1)
    assert _run(job)["status"] == jobmod.COMPLETED


# -- registry ---------------------------------------------------------------

def test_registry_start_is_idempotent_while_running(dom):
    dom.converge = False
    registry = jobmod.JobRegistry(Hypervisor(), opts=_opts())
    first = registry.start(UUID, DEST, "198.18.64.12",
                           shared_storage_checked=True)
    assert dom.started.wait(5)
    again = registry.start(UUID.upper().lower(), DEST, "198.18.64.12",
                           shared_storage_checked=True)
    assert again["created_at"] == first["created_at"]
    assert len([c for c in dom.calls if c[0] == "migrate"]) == 1
    with pytest.raises(Conflict, match="already migrating"):
        registry.start(UUID, "qemu+tcp://198.18.64.13/system",
                       "198.18.64.13")
    registry.force_complete(UUID)
    assert registry.get(UUID).wait(10)
    # The finished job is still there for a controller that asks later.
    assert registry.status(UUID)["status"] == jobmod.COMPLETED
    assert [s["status"] for s in registry.list()] == [jobmod.COMPLETED]


def test_registry_builds_flags_and_params_from_options(dom):
    registry = jobmod.JobRegistry(Hypervisor(), opts=_opts(
        bandwidth=64, permit_post_copy=True, completion_timeout=800))
    registry.start(UUID, DEST, "198.18.64.12", block_migration=True,
                   migrate_disks=["vda"])
    assert registry.get(UUID).wait(10)
    # 256 MiB of RAM counts as 2 GiB, plus 1 GiB allocated on vda.
    assert registry.status(UUID)["timeout"] == 3 * 800
    _, uri, params, flags = _migrate_call(dom)
    assert params == {"migrate_uri": "tcp://198.18.64.12", "bandwidth": 64,
                      "migrate_disks": ["vda"]}
    # The cap it ran under, for the prediction's "measured" bandwidth.
    assert registry.status(UUID)["bandwidth_limit"] == 64
    assert flags & libvirt.VIR_MIGRATE_NON_SHARED_INC
    assert flags & libvirt.VIR_MIGRATE_POSTCOPY
    assert not flags & libvirt.VIR_MIGRATE_UNSAFE


def test_registry_queues_beyond_max_concurrent(mocker):
    doms = {}

    def lookup(_conn, uuid):
        return doms.setdefault(uuid, FakeDomain(converge=False))
    mocker.patch.object(jobmod.domains, "lookup", side_effect=lookup)
    registry = jobmod.JobRegistry(Hypervisor(), opts=_opts())
    other = "0d3c9a0e-6f1b-4c2a-8e57-2b9f4a6d1c02"
    registry.start(UUID, DEST, "198.18.64.12", shared_storage_checked=True)
    assert registry.status(UUID)["status"] in (
        jobmod.PREPARING, jobmod.RUNNING)
    second = registry.start(other, DEST, "198.18.64.12",
                            shared_storage_checked=True)
    assert second["status"] == jobmod.QUEUED
    registry.abort(other)                      # cancelled while queued
    assert registry.get(other).wait(5)
    assert registry.status(other)["status"] == jobmod.CANCELLED
    assert other not in doms                   # never touched libvirt
    registry.force_complete(UUID)
    assert registry.get(UUID).wait(10)


def test_registry_unknown_instance_and_bad_input():
    registry = jobmod.JobRegistry(Hypervisor(), opts=_opts())
    with pytest.raises(NotFound):
        registry.status(UUID)
    with pytest.raises(InvalidInput):
        registry.start("not-a-uuid", DEST, "198.18.64.12")
    with pytest.raises(InvalidInput, match="libvirt URI"):
        registry.start(UUID, "qemu:///system; reboot", "198.18.64.12")


class EventingDomain(FakeDomain):
    """A source that sends libvirt's job-completed event (with the
    finished job's statistics) and then forgets the domain, as
    VIR_MIGRATE_UNDEFINE_SOURCE does: its completed stats are gone."""

    def __init__(self):
        super().__init__()
        self.callbacks = {}
        self.deregistered = []

    def connect(self):
        return self

    def domainEventRegisterAny(self, dom, event, callback, opaque):
        assert event == libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED
        self.callbacks[7] = callback
        return 7

    def domainEventDeregisterAny(self, cb_id):
        self.deregistered.append(cb_id)

    def migrateToURI3(self, uri, params, flags):
        super().migrateToURI3(uri, params, flags)
        for callback in self.callbacks.values():
            callback(self, self, {"type": libvirt.VIR_DOMAIN_JOB_COMPLETED,
                                  "downtime": 17, "data_total": 400 * MiB,
                                  "data_processed": 400 * MiB,
                                  "data_remaining": 0}, None)

    def jobStats(self, flags=0):
        if flags == libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED:
            raise _error("no domain", libvirt.VIR_ERR_NO_DOMAIN)
        return super().jobStats(flags)


def test_final_statistics_come_from_the_job_completed_event(mocker,
                                                            no_destination):
    fake = EventingDomain()
    mocker.patch.object(jobmod.domains, "lookup", return_value=fake)
    job = _job()
    job.start()
    assert job.wait(10)
    status = job.status()
    assert status["status"] == "completed"
    assert status["final_downtime_ms"] == 17
    # No second connection to the destination was needed.
    no_destination.assert_not_called()
    assert fake.deregistered == [7]


@pytest.mark.parametrize("virt_type, version, permit, refused", [
    ("qemu", 7_002_000, False, True),     # Debian 12's QEMU under TCG
    ("qemu", 8_002_002, False, True),
    ("qemu", 9_000_000, False, False),    # the fix
    ("qemu", 10_000_002, False, False),
    ("kvm", 7_002_000, False, False),     # the kernel tracks dirty pages
    ("qemu", 7_002_000, True, False),     # the operator accepted the risk
])
def test_tcg_guests_are_not_live_migrated_by_a_qemu_that_loses_pages(
        mocker, dom, virt_type, version, permit, refused):
    mocker.patch.object(jobmod.CONF.libvirt, "virt_type", virt_type)
    registry = jobmod.JobRegistry(Hypervisor(version), opts=_opts(
        permit_tcg_dirty_page_loss=permit))
    if refused:
        with pytest.raises(Conflict, match=r"QEMU 7\.2\.0|QEMU 8\.2\.2"):
            registry.start(UUID, DEST, "198.18.64.12")
        assert registry.list() == []
        assert not dom.calls
    else:
        registry.start(UUID, DEST, "198.18.64.12")
        assert dom.started.wait(5)
        dom.finished.set()
        assert registry.get(UUID).wait(10)


class FakeWatch:
    """The destination's libvirt as switchover.DestWatch shows it:
    ``fire()`` sends its RESUMED/MIGRATED event; ``running`` is what
    ``switched()`` then finds there."""

    def __init__(self, running=True):
        self.running = running
        self.seen = threading.Event()
        self.on_event = None
        self.closed = False
        self.asked = 0

    def factory(self, dest_uri, uuid, on_event):
        assert (dest_uri, uuid) == (DEST, UUID)
        self.on_event = on_event
        return self

    def fire(self):
        self.seen.set()
        self.on_event()

    def switched(self):
        self.asked += 1
        if not self.running:
            return None
        return {"type": libvirt.VIR_DOMAIN_JOB_COMPLETED, "downtime": 17,
                "data_total": 400 * MiB, "data_processed": 400 * MiB,
                "data_remaining": 0}

    def close(self):
        self.closed = True


def _watched(dom, watch, **kw):
    """A job under way whose migrateToURI3 has not returned."""
    dom.converge = False
    job = _job(dest_watch=watch.factory, **kw)
    job.start()
    assert dom.started.wait(5)
    for _ in range(500):
        if watch.on_event is not None:
            break
        threading.Event().wait(0.01)
    return job


def test_the_job_is_completed_at_the_switch_over(dom):
    """The destination runs the guest: completed now, while libvirt here
    still stops its copy (migrateToURI3 has not returned)."""
    watch = FakeWatch()
    job = _watched(dom, watch)
    assert not job.wait(0.05)
    watch.fire()
    assert job.wait(5)
    status = job.status()
    assert status["status"] == jobmod.COMPLETED and status["reason"] is None
    assert status["switched_over"] and not status["source_released"]
    assert status["final_downtime_ms"] == 17
    assert status["progress"]["percent"] == 100
    assert not job.released(0.05)
    assert job.leaving
    calls = len(dom.calls)
    dom.finished.set()                  # libvirt's confirm phase ends
    assert job.released(5)
    status = job.status()
    assert status["status"] == jobmod.COMPLETED
    assert status["source_released"] and watch.closed
    assert not job.leaving
    assert len(dom.calls) == calls      # nothing applied after the switch


def test_the_registry_names_the_copies_leaving(dom):
    watch = FakeWatch()
    registry = jobmod.JobRegistry(Hypervisor(), opts=_opts())
    job = registry.add(_watched(dom, watch))
    assert registry.leaving() == set()
    watch.fire()
    assert job.wait(5)
    assert registry.leaving() == {UUID}
    dom.finished.set()
    assert job.released(5)
    assert registry.leaving() == set()


def test_no_switch_over_when_the_destination_does_not_run_the_guest(dom):
    watch = FakeWatch(running=False)
    job = _watched(dom, watch)
    watch.fire()
    assert not job.wait(0.2)
    assert watch.asked
    dom.finished.set()
    assert job.wait(5)
    status = job.status()
    assert status["status"] == jobmod.COMPLETED
    assert not status["switched_over"] and status["source_released"]
    assert status["final_downtime_ms"] == 42     # the source's figures


def test_post_copy_resume_is_not_the_switch_over(dom):
    """In post-copy the guest resumes on the destination while the source
    still holds its memory: the job waits for migrateToURI3."""
    watch = FakeWatch()
    flags = policy.migration_flags(False, True, permit_post_copy=True)
    job = _watched(dom, watch, flags=flags)
    _into_post_copy(dom, job)
    watch.fire()
    assert not job.wait(0.2)
    assert watch.asked == 0
    dom.finished.set()
    assert job.wait(5)
    assert not job.status()["switched_over"]


class ConfirmFails(FakeDomain):
    """libvirt's confirm phase here fails once the migration is done."""

    def migrateToURI3(self, uri, params, flags):
        super().migrateToURI3(uri, params, flags)
        raise _error("confirm failed")


@pytest.fixture
def late_failure(mocker):
    """A job switched over whose libvirt here then fails: (job, watch,
    fake domain, destroy mock, undefine mock)."""
    fake = ConfirmFails()
    mocker.patch.object(jobmod.domains, "lookup", return_value=fake)
    destroy = mocker.patch.object(jobmod.domains, "destroy")
    undefine = mocker.patch.object(jobmod.domains, "undefine")
    watch = FakeWatch()
    job = _watched(fake, watch)
    watch.fire()
    assert job.wait(5)
    return job, watch, fake, destroy, undefine


def test_a_failure_after_the_switch_over_stops_the_stale_copy(late_failure):
    """libvirt here fails after the destination ran the guest (a lost
    Finish reply would even resume the copy here): the copy here is
    stopped and undefined, no disk touched, and the migration stays
    completed."""
    job, _watch, fake, destroy, undefine = late_failure
    destroy.assert_not_called()
    fake.finished.set()
    assert job.released(5)
    status = job.status()
    assert status["status"] == jobmod.COMPLETED and status["reason"] is None
    destroy.assert_called_once_with(job.conn, UUID)
    undefine.assert_called_once_with(job.conn, UUID)


def test_a_failure_after_the_switch_over_keeps_a_copy_the_destination_lost(
        late_failure):
    """The destination no longer runs the guest when libvirt here fails:
    the copy here may be the only one running, and is left alone."""
    job, watch, fake, destroy, undefine = late_failure
    watch.running = False               # the destination lost it
    fake.finished.set()
    assert job.released(5)
    destroy.assert_not_called()
    undefine.assert_not_called()


def test_without_a_watch_the_job_ends_with_migrate_to_uri3(dom):
    job = _job()
    status = _run(job)
    assert status["status"] == jobmod.COMPLETED
    assert not status["switched_over"] and status["source_released"]
    assert job.released(0)
