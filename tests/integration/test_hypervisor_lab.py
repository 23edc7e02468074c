"""The hypervisor layer against a lab host's own libvirtd: a tiny domain
(a blank disk, no OS) defined, started, shut down and undefined."""
import os
import time
import uuid
import xml.etree.ElementTree as ET

import libvirt
import pytest

from agent.common import disk
from agent.conf import CONF
from agent.hypervisor import domains
from agent.hypervisor.connection import Connection
from agent.hypervisor.domain_xml import METADATA_NS, render_domain
from agent.hypervisor.instance_dir import InstanceDir
from agent.hypervisor.spec import DiskSpec, DomainSpec, NicSpec
from agent.lab.plan import GUEST_BRIDGE

MiB = 1 << 20


@pytest.fixture
def tcg():
    """Lab hosts have no usable KVM."""
    CONF.set_override("virt_type", "qemu", "libvirt")
    yield
    CONF.clear_override("virt_type", "libvirt")


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_domain_lifecycle_on_a_lab_host(lab_hosts, tcg):
    host = lab_hosts[0]
    u = str(uuid.uuid4())
    # The same instance directory seen from here and from inside the host.
    here = InstanceDir(u, os.path.join(host["local_storage_dir"],
                                       "instances"))
    there = InstanceDir(u, os.path.join(host["local_storage"], "instances"))
    here.create()
    disk.create(here.disk, 16 * MiB, "qcow2")
    here.set_disk_format("qcow2")
    spec = DomainSpec(
        uuid=u, name=f"dhyp-{u[:8]}", vcpus=1, memory_mib=64,
        disks=[DiskSpec(str(there.disk), here.disk_format())],
        nics=[NicSpec("52:54:00:64:00:01", GUEST_BRIDGE)],
        console_log=str(there.console_log),
        metadata={"hostname": "tiny"}, flavor="m1.tiny")
    xml = render_domain(spec)
    here.write_xml(xml)

    conn = Connection(host["libvirt_uri"], events=True)
    events = []
    conn.register_lifecycle_callback(
        lambda dom_uuid, event, detail: events.append((dom_uuid, event)))
    try:
        assert domains.define(conn, xml) == u
        assert domains.define(conn, xml) == u  # again: no error
        dom = domains.lookup(conn, u)
        assert "<flavor>m1.tiny</flavor>" in dom.metadata(
            libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS)
        assert domains.info(conn, u).state == "shutoff"

        assert domains.start(conn, u) is True
        assert domains.start(conn, u) is False
        assert domains.info(conn, u).state == "running"
        assert (u, "running") in [(i.uuid, i.state)
                                  for i in domains.list_domains(conn)]
        live = ET.fromstring(domains.get_xml(conn, u))
        assert live.find("sysinfo/oemStrings/entry").text == \
            "drover.hostname=tiny"
        assert live.find("devices/interface/source").get("bridge") == \
            GUEST_BRIDGE
        assert here.console_log.exists()  # written by the host's virtlogd

        # No OS answers the power button: the timeout destroys the guest.
        started = time.monotonic()
        assert domains.shutdown(conn, u, timeout=2) == domains.DESTROYED
        assert time.monotonic() - started < 15
        assert domains.info(conn, u).state == "shutoff"
        assert domains.shutdown(conn, u, timeout=2) == domains.ALREADY_OFF
        assert domains.destroy(conn, u) is False

        assert domains.start(conn, u) is True
        assert domains.destroy(conn, u) is True
        assert domains.undefine(conn, u) is True
        assert domains.undefine(conn, u) is False
        assert not domains.exists(conn, u)
        assert wait_for(lambda: (u, "undefined") in events), events
        seen = [e for d, e in events if d == u]
        assert seen.count("started") == 2 and seen.count("stopped") == 2
    finally:
        domains.destroy(conn, u)
        domains.undefine(conn, u)
        conn.close()
        here.remove()


def test_lab_guest_through_the_hypervisor_layer(lab, lab_hosts, tcg):
    """The lab guest on a lab host's libvirtd: heartbeat, ping from another
    host, its data area written and read back, a graceful shutdown, and the
    data still there after qcow2 -> raw -> qcow2 conversions."""
    from agent.lab.image import (build_image, data_pattern_sha256,
                                 read_data_area_sha256)
    from helpers import guest_get, wait_guest
    host, other = lab_hosts[0], lab_hosts[1]
    image = build_image(os.environ.get("DROVER_LAB_CACHE",
                                       CONF.lab.cache_dir))
    u = str(uuid.uuid4())
    here = InstanceDir(u, os.path.join(host["local_storage_dir"],
                                       "instances"))
    there = InstanceDir(u, os.path.join(host["local_storage"], "instances"))
    here.create()
    disk.convert(str(image), str(here.disk), "qcow2", "qcow2")
    here.set_disk_format("qcow2")
    ip = lab.plan.network.broadcast_address - 5
    spec = DomainSpec(
        uuid=u, name=f"dhyp-{u[:8]}", vcpus=1, memory_mib=256,
        disks=[DiskSpec(str(there.disk), "qcow2")],
        nics=[NicSpec("52:54:00:64:00:02", GUEST_BRIDGE)],
        console_log=str(there.console_log),
        metadata={"ip": f"{ip}/{lab.plan.network.prefixlen}"})
    conn = Connection(host["libvirt_uri"])
    try:
        domains.define(conn, render_domain(spec))
        domains.start(conn, u)
        first = wait_guest(str(ip), timeout=60)
        assert wait_for(lambda: here.console_log.read_text().count(
            "drover-heartbeat uptime=") >= 2, 10)
        assert lab.host_exec(other["name"], ["ping", "-c", "2", "-W", "1",
                                             str(ip)], check=False)
        written = guest_get(str(ip), "/cgi-bin/data-write?seed=4242",
                            timeout=30)
        assert written == f"sha256={data_pattern_sha256(4242)}"
        assert guest_get(str(ip), "/cgi-bin/data-read",
                         timeout=30) == written
        assert wait_guest(str(ip))["uptime"] > first["uptime"]

        assert domains.shutdown(conn, u, timeout=30) == domains.SHUT_DOWN
        assert read_data_area_sha256(str(here.disk), "qcow2") == \
            data_pattern_sha256(4242)
        raw = str(here.disk) + ".raw"
        disk.convert(str(here.disk), raw, "qcow2", "raw")
        assert read_data_area_sha256(raw, "raw") == data_pattern_sha256(4242)
        disk.convert(raw, str(here.disk), "raw", "qcow2")
        assert read_data_area_sha256(str(here.disk), "qcow2") == \
            data_pattern_sha256(4242)
        assert domains.undefine(conn, u) is True
    finally:
        domains.destroy(conn, u)
        domains.undefine(conn, u)
        conn.close()
        here.remove()
