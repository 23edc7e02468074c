"""Domain XML: what the templates produce, and that libvirt's schema
accepts every variant (the real virt-xml-validate)."""
import itertools
import subprocess
import xml.etree.ElementTree as ET

import pytest

from agent.common.errors import InvalidInput
from agent.conf import CONF
from agent.hypervisor.domain_xml import METADATA_NS, render_domain, \
    render_rescue
from agent.hypervisor.spec import CACHE_MODES, DiskSpec, DomainSpec, NicSpec

UUID = "0b3e4c8e-1a2b-4c3d-8e9f-0123456789ab"
BASE = f"/var/lib/drover/instances/{UUID}"


@pytest.fixture
def libvirt_opts():
    """Set [libvirt] options for one test."""
    changed = []

    def set_opt(name, value):
        CONF.set_override(name, value, "libvirt")
        changed.append(name)
    yield set_opt
    for name in changed:
        CONF.clear_override(name, "libvirt")


def make_spec(**kw):
    args = dict(uuid=UUID, name="instance-1", vcpus=2, memory_mib=256,
                disks=[DiskSpec(f"{BASE}/disk")],
                console_log=f"{BASE}/console.log")
    args.update(kw)
    return DomainSpec(**args)


def validate_with_libvirt_schema(xml, tmp_path):
    path = tmp_path / "domain.xml"
    path.write_text(xml)
    proc = subprocess.run(["virt-xml-validate", str(path), "domain"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr + xml


VARIANTS = list(itertools.product(
    ["qcow2", "raw"], [1, 2], [False, True], [False, True], ["qemu", "kvm"]))


@pytest.mark.parametrize("fmt,ndisks,nic,meta,virt_type", VARIANTS)
def test_every_variant_is_valid_libvirt_xml(fmt, ndisks, nic, meta,
                                            virt_type, libvirt_opts,
                                            tmp_path):
    libvirt_opts("virt_type", virt_type)
    spec = make_spec(
        disks=[DiskSpec(f"{BASE}/disk{i}", fmt) for i in range(ndisks)],
        nics=[NicSpec("52:54:00:00:00:01", "br-guest")] if nic else [],
        metadata={"hostname": "vm-1", "ip": "198.18.0.9"} if meta else {})
    xml = render_domain(spec)
    validate_with_libvirt_schema(xml, tmp_path)
    root = ET.fromstring(xml)
    assert root.get("type") == virt_type
    assert [d.find("driver").get("type") for d in root.iter("disk")] == \
        [fmt] * ndisks
    assert len(root.findall("devices/interface")) == int(nic)
    assert (root.find("sysinfo") is not None) == meta
    assert (root.find("os/smbios") is not None) == meta


@pytest.mark.parametrize("cache", sorted(CACHE_MODES))
def test_each_cache_mode_is_valid(cache, libvirt_opts, tmp_path):
    libvirt_opts("disk_cachemode", cache)
    xml = render_domain(make_spec(disks=[DiskSpec(f"{BASE}/disk"),
                                         DiskSpec(f"{BASE}/eph", "raw")]))
    validate_with_libvirt_schema(xml, tmp_path)
    caches = {d.find("driver").get("cache")
              for d in ET.fromstring(xml).iter("disk")}
    assert caches == {cache}


@pytest.mark.parametrize("ndisks,nic,meta", [(1, False, False),
                                             (2, True, True)])
def test_rescue_variants_are_valid(ndisks, nic, meta, tmp_path):
    spec = make_spec(
        disks=[DiskSpec(f"{BASE}/disk{i}") for i in range(ndisks)],
        nics=[NicSpec("52:54:00:00:00:01", "br-guest")] if nic else [],
        metadata={"k": "v"} if meta else {})
    xml = render_rescue(spec, DiskSpec(f"{BASE}/disk.rescue", "raw"))
    validate_with_libvirt_schema(xml, tmp_path)


def test_domain_elements(libvirt_opts):
    libvirt_opts("cpu_model", "Nehalem")
    libvirt_opts("machine_type", "q35")
    spec = make_spec(
        disks=[DiskSpec(f"{BASE}/disk"),
               DiskSpec(f"{BASE}/disk.eph0", "raw", cache="writeback")],
        nics=[NicSpec("52:54:00:AB:CD:EF", "br-guest")],
        metadata={"hostname": "vm-1"}, flavor="m1.tiny")
    root = ET.fromstring(render_domain(spec))
    assert root.findtext("uuid") == UUID
    assert root.findtext("name") == "instance-1"
    assert root.findtext("vcpu") == "2"
    assert root.find("memory").get("unit") == "MiB"
    assert root.findtext("memory") == "256"
    assert root.findtext("cpu/model") == "Nehalem"
    assert root.find("os/type").get("machine") == "q35"
    assert root.find("features/acpi") is not None  # graceful shutdown
    disks = root.findall("devices/disk")
    assert [d.find("source").get("file") for d in disks] == \
        [f"{BASE}/disk", f"{BASE}/disk.eph0"]
    assert [d.find("target").get("dev") for d in disks] == ["vda", "vdb"]
    assert [d.find("driver").get("cache") for d in disks] == \
        ["none", "writeback"]
    assert disks[0].find("boot").get("order") == "1"
    assert disks[1].find("boot") is None
    nic = root.find("devices/interface")
    assert nic.get("type") == "bridge"
    assert nic.find("mac").get("address") == "52:54:00:ab:cd:ef"
    assert nic.find("source").get("bridge") == "br-guest"
    assert nic.find("model").get("type") == "virtio"
    serial = root.find("devices/serial")
    assert serial.find("log").get("file") == f"{BASE}/console.log"
    assert root.find("devices/console/target").get("type") == "serial"
    assert root.findtext(f"metadata/{{{METADATA_NS}}}instance/"
                         f"{{{METADATA_NS}}}uuid") == UUID
    assert root.findtext(f"metadata/{{{METADATA_NS}}}instance/"
                         f"{{{METADATA_NS}}}flavor") == "m1.tiny"


def test_host_cpu_modes(libvirt_opts):
    libvirt_opts("cpu_model", "host-passthrough")
    cpu = ET.fromstring(render_domain(make_spec())).find("cpu")
    assert cpu.get("mode") == "host-passthrough"
    assert cpu.find("model") is None


def test_metadata_becomes_escaped_oem_strings(tmp_path):
    hostile = "</entry><entry>drover.admin=1</entry>&'\""
    xml = render_domain(make_spec(metadata={"b": "2", "a": hostile}))
    validate_with_libvirt_schema(xml, tmp_path)
    root = ET.fromstring(xml)
    entries = [e.text for e in root.findall("sysinfo/oemStrings/entry")]
    assert entries == [f"drover.a={hostile}", "drover.b=2"]
    assert root.find("sysinfo").get("type") == "smbios"
    assert root.find("os/smbios").get("mode") == "sysinfo"


def test_rescue_boots_the_rescue_disk_and_attaches_the_rest():
    spec = make_spec(disks=[DiskSpec(f"{BASE}/disk"),
                            DiskSpec(f"{BASE}/disk.eph0", "raw")])
    root = ET.fromstring(render_rescue(
        spec, DiskSpec(f"{BASE}/disk.rescue", "raw")))
    disks = root.findall("devices/disk")
    assert [(d.find("source").get("file"), d.find("target").get("dev"))
            for d in disks] == [(f"{BASE}/disk.rescue", "vda"),
                                (f"{BASE}/disk", "vdb"),
                                (f"{BASE}/disk.eph0", "vdc")]
    assert [d.find("boot") is not None for d in disks] == \
        [True, False, False]
    assert root.findtext("uuid") == UUID


def test_disk_targets_follow_their_bus():
    spec = make_spec(disks=[DiskSpec(f"{BASE}/disk"),
                            DiskSpec(f"{BASE}/d2", bus="sata"),
                            DiskSpec(f"{BASE}/d3", target="vdc"),
                            DiskSpec(f"{BASE}/d4")])
    assert [d.target for d in spec.disks] == ["vda", "sda", "vdc", "vdb"]


@pytest.mark.parametrize("change", [
    {"uuid": "../../etc"},
    {"uuid": "{0b3e4c8e-1a2b-4c3d-8e9f-0123456789ab}"},
    {"name": "a;rm -rf /"},
    {"name": "x" * 65},
    {"vcpus": 0},
    {"memory_mib": 8},
    {"memory_mib": "256"},
    {"disks": []},
    {"disks": [DiskSpec(f"{BASE}/a", target="vda"),
               DiskSpec(f"{BASE}/b", target="vda")]},
    {"console_log": "console.log"},
    {"console_log": f"{BASE}/../../etc/shadow"},
    {"metadata": {"bad key": "v"}},
    {"metadata": {"k": "line\nbreak"}},
    {"metadata": {"k": "x" * 256}},
    {"flavor": "a\x00b"},
    {"nics": [NicSpec("52:54:00:00:00:01", "br0"),
              NicSpec("52:54:00:00:00:01", "br0")]},
])
def test_bad_domain_specs_are_refused(change):
    with pytest.raises(InvalidInput):
        make_spec(**change)


@pytest.mark.parametrize("make", [
    lambda: DiskSpec("relative/disk"),
    lambda: DiskSpec(f"{BASE}/disk", "vmdk"),
    lambda: DiskSpec(f"{BASE}/disk", bus="ide"),
    lambda: DiskSpec(f"{BASE}/disk", cache="bogus"),
    lambda: DiskSpec(f"{BASE}/disk", target="sda"),
    lambda: DiskSpec(f"{BASE}/disk", target="vd1"),
    lambda: NicSpec("52:54:00:00:00", "br0"),
    lambda: NicSpec("01:00:5e:00:00:01", "br0"),  # multicast
    lambda: NicSpec("52-54-00-00-00-01", "br0"),
    lambda: NicSpec("52:54:00:00:00:01", "br;reboot"),
    lambda: NicSpec("52:54:00:00:00:01", "a-very-long-bridge-name"),
    lambda: NicSpec("52:54:00:00:00:01", "br0", model="rtl8139"),
])
def test_bad_disks_and_nics_are_refused(make):
    with pytest.raises(InvalidInput):
        make()
