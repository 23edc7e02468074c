"""A live migration run by MigrationJob between two namespace-lab hosts,
the guest's disk in the lab's shared directory."""
import contextlib
import pathlib
import re
import shutil
import time
import types
import uuid

import pytest

from agent.conf import CONF
from agent.host.migration import job as jobmod
from agent.hypervisor import domains
from agent.hypervisor.connection import Connection
from agent.hypervisor.domain_xml import render_domain
from agent.hypervisor.spec import DiskSpec, DomainSpec

HEARTBEAT = re.compile(r"drover-heartbeat uptime=([0-9.]+) boot=(\S+)")


def _opts(**kw):
    values = dict(downtime=50, downtime_max=500, downtime_steps=10,
                  downtime_delay=75, completion_timeout=800,
                  timeout_action="abort", permit_auto_converge=False,
                  permit_post_copy=False, bandwidth=0,
                  monitor_interval=0.1, max_concurrent=1,
                  permit_tcg_dirty_page_loss=False)
    values.update(kw)
    return types.SimpleNamespace(**values)


@pytest.fixture(scope="module")
def guest_image():
    from agent.lab.image import build_image
    return build_image(CONF.lab.cache_dir)


@pytest.fixture
def libvirt_qemu():
    CONF.set_override("virt_type", "qemu", group="libvirt")
    yield
    CONF.clear_override("virt_type", group="libvirt")


@pytest.fixture
def guest(lab_hosts, guest_image, libvirt_qemu):
    """A running guest on h1 whose disk and console log are in the shared
    directory; removed from every host afterwards."""
    first = lab_hosts[0]
    instance = str(uuid.uuid4())
    inside = pathlib.Path(first["shared_storage"]) / "instances" / instance
    outside = pathlib.Path(first["shared_storage_dir"]) / "instances" / \
        instance
    outside.mkdir(parents=True)
    shutil.copyfile(guest_image, outside / "disk")
    spec = DomainSpec(uuid=instance, name=f"mig-{instance[:8]}", vcpus=1,
                      memory_mib=256,
                      disks=(DiskSpec(path=str(inside / "disk")),),
                      console_log=str(inside / "console.log"),
                      metadata={"dirty_mbps": "4"})
    conns = [Connection(h["libvirt_uri"]) for h in lab_hosts[:2]]
    domains.define(conns[0], render_domain(spec))
    domains.start(conns[0], instance)
    try:
        yield types.SimpleNamespace(uuid=instance, conns=conns,
                                    console=outside / "console.log")
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):
                domains.destroy(conn, instance)
                domains.undefine(conn, instance)
            conn.close()
        shutil.rmtree(outside, ignore_errors=True)


def _heartbeat(console, newer_than=-1.0, timeout=60):
    """The guest's latest (uptime, boot id) from its serial console, once
    its uptime passes ``newer_than``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = console.read_text(errors="replace") if console.exists() \
            else ""
        beats = HEARTBEAT.findall(text)
        if beats and float(beats[-1][0]) > newer_than:
            return float(beats[-1][0]), beats[-1][1]
        time.sleep(0.3)
    raise AssertionError(f"no guest heartbeat after uptime {newer_than}")


def _shared_storage_checked(lab, source, dest):
    """drover's own check: a file written on the source is seen on the
    destination."""
    probe = f"/var/lib/drover-shared/instances/probe-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    lab.host_exec(source, ["tee", probe], input=token)
    try:
        return lab.host_exec(dest, ["cat", probe], check=False) == token
    finally:
        lab.host_exec(source, ["rm", "-f", probe])


def test_live_migration_moves_a_running_guest(lab, lab_hosts, guest):
    source, dest = lab_hosts[:2]
    uptime, boot = _heartbeat(guest.console, newer_than=2)
    shared = _shared_storage_checked(lab, source["name"], dest["name"])
    assert shared
    events = []
    registry = jobmod.JobRegistry(guest.conns[0], opts=_opts(),
                                  on_progress=events.append)
    started = time.monotonic()
    registry.start(guest.uuid, dest["libvirt_uri"], dest["address"],
                   shared_storage_checked=shared)
    job = registry.get(guest.uuid)
    assert job.wait(120)
    took = time.monotonic() - started
    status = registry.status(guest.uuid)
    assert status["status"] == jobmod.COMPLETED, status["reason"]
    print(f"\nlive migration: {took:.2f} s wall, final downtime "
          f"{status['final_downtime_ms']} ms, progress {status['progress']}")

    moved = domains.info(guest.conns[1], guest.uuid)
    assert moved.state == "running" and moved.persistent
    assert not domains.exists(guest.conns[0], guest.uuid)
    after, boot_after = _heartbeat(guest.console, newer_than=uptime + 1)
    assert boot_after == boot                    # not rebooted
    assert after > uptime                        # uptime kept counting
    assert status["final_downtime_ms"] is not None
    assert 0 <= status["final_downtime_ms"] < 5000
    seen = [e["status"] for e in events]
    assert seen[0] == jobmod.PREPARING and seen[-1] == jobmod.COMPLETED


def test_the_job_ends_at_the_switch_over(lab, lab_hosts, guest):
    """With libvirt's event loop (as in the agent) the job is completed
    when the destination runs the guest, before libvirt here has stopped
    its copy; released() then says when it has."""
    source, dest = lab_hosts[:2]
    uptime, boot = _heartbeat(guest.console, newer_than=2)
    watched = Connection(source["libvirt_uri"], events=True)
    try:
        registry = jobmod.JobRegistry(watched, opts=_opts())
        registry.start(guest.uuid, dest["libvirt_uri"], dest["address"],
                       shared_storage_checked=True)
        job = registry.get(guest.uuid)
        assert job.wait(120)
        status = job.status()
        assert status["status"] == jobmod.COMPLETED, status["reason"]
        assert status["switched_over"], status
        assert domains.info(guest.conns[1], guest.uuid).state == "running"
        assert status["final_downtime_ms"] is not None
        assert job.released(30)
        assert not domains.exists(guest.conns[0], guest.uuid)
        print(f"\nswitch-over seen; released "
              f"{time.time() - status['finished_at']:.3f} s later")
    finally:
        watched.close()
    after, boot_after = _heartbeat(guest.console, newer_than=uptime + 1)
    assert boot_after == boot and after > uptime


def test_aborted_migration_leaves_the_guest_on_the_source(lab_hosts, guest):
    source, dest = lab_hosts[:2]
    uptime, boot = _heartbeat(guest.console, newer_than=2)
    # 1 MiB/s cannot move 256 MiB of memory being dirtied: the job runs
    # until the operator aborts it.
    registry = jobmod.JobRegistry(guest.conns[0], opts=_opts(bandwidth=1))
    registry.start(guest.uuid, dest["libvirt_uri"], dest["address"],
                   shared_storage_checked=True)
    deadline = time.monotonic() + 30
    while registry.status(guest.uuid)["status"] != jobmod.RUNNING:
        assert time.monotonic() < deadline, registry.status(guest.uuid)
        time.sleep(0.1)
    # Under load QEMU may take a while to report the first figures.
    while not registry.status(guest.uuid)["progress"]["memory_total"]:
        assert time.monotonic() < deadline + 30, registry.status(guest.uuid)
        time.sleep(0.2)
    registry.abort(guest.uuid)
    assert registry.get(guest.uuid).wait(60)
    status = registry.status(guest.uuid)
    assert status["status"] == jobmod.CANCELLED
    assert domains.info(guest.conns[0], guest.uuid).state == "running"
    assert not domains.exists(guest.conns[1], guest.uuid)
    _after, boot_after = _heartbeat(guest.console, newer_than=uptime + 1)
    assert boot_after == boot
